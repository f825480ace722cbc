"""SugarCrepe object pieces (Hsieh et al., NeurIPS 2023 D&B) -> binary-MCQ control tasks.

Source of the layout: the SugarCrepe release's data folder as read by its evaluation script
(mirrored in jaisidhsingh/CoN-CLIP, src/eval/sugar_crepe_utils/main_eval.py, and by
mlfoundations open_clip's clip_benchmark `datasets/sugar_crepe.py`): one JSON per piece
(`add_obj.json`, `replace_obj.json`, `swap_obj.json`, also `add_att`, `replace_att`,
`replace_rel`, `swap_att`), each an object `{id: {"filename", "caption", "negative_caption"}}`
with ids "0", "1", ...; `filename` is a COCO val2017 image name (`000000397133.jpg`) resolved
against the COCO val2017 folder (--image-root).

These pieces contain no negation: they are controls (variant `control`, negated: false) that
show whether a negation fine-tune lost compositional skill. Metric (their main_eval.py): an entry
is right when score(caption) > score(negative_caption), strictly; the negative caption is written
at index 0 so negbench's argmax (ties -> index 0) counts ties as wrong, as ">" does.
"""
from __future__ import annotations

from pathlib import Path

from negbench.inputs.benchmarks.common import (BenchmarkFileError, ImportedTask, ImportResult, Pair,
                                               base_manifest, load_json, parse_entries, require,
                                               write_pair_task, finish_import, require_items)

BENCHMARK = "SugarCrepe"
PIECES = ("add_obj", "replace_obj", "swap_obj")
DOWNLOAD = "https://github.com/RAIVNLab/sugar-crepe (data/*.json); images: COCO val2017"


def read_piece(path: Path, *, skip_invalid: bool = False) -> tuple[list[Pair], list[dict]]:
    doc = load_json(path)
    if not isinstance(doc, dict):
        raise BenchmarkFileError(path, None, None, f"expected an object keyed by id, got {type(doc).__name__}")
    return parse_entries(doc.items(), lambda key, rec: Pair(
        key, require(path, key, rec, "filename").strip(), require(path, key, rec, "caption").strip(),
        require(path, key, rec, "negative_caption").strip()), skip_invalid)


def import_sugarcrepe(src: Path, out: Path, *, image_root: Path | None = None,
                      skip_invalid: bool = False) -> ImportResult:
    """src: the folder holding add_obj.json, replace_obj.json, swap_obj.json (or a `data/` below it)."""
    src = Path(src).expanduser()
    folder = src / "data" if not (src / f"{PIECES[0]}.json").is_file() and (src / "data").is_dir() else src
    out = Path(out)
    written, skipped = [], []
    for piece in PIECES:
        path = folder / f"{piece}.json"
        pairs, bad = read_piece(path, skip_invalid=skip_invalid)
        skipped += bad
        require_items(path, pairs, bad)
        task = ImportedTask(f"sugarcrepe_{piece}", "binary-mcq", f"sugarcrepe_{piece}.csv", "SugarCrepe",
                            f"SugarCrepe {piece}: caption vs hard negative (no negation; control)",
                            negated=False, variant="control")
        write_pair_task(out / task.file, pairs, correct_first=False,
                        manifest=base_manifest(BENCHMARK, [path], piece=piece, skipped=bad))
        written.append((task, len(pairs)))
    return finish_import(out, BENCHMARK, written, skipped, media_root=image_root or folder,
                         header=f"SugarCrepe object pieces, imported from {folder}\nDownload: {DOWNLOAD}")
