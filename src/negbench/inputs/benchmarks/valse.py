"""VALSE existence piece (Parcalabescu et al., ACL 2022) -> a binary-MCQ task (caption vs foil).

Source of the layout: Heidelberg-NLP/VALSE, README.md ("Data Instructions"). The release is
`data/existence.json`, one object keyed by sample id (e.g. "existence_test_0"), each value with
`dataset`, `original_split`, `dataset_idx`, `linguistic_phenomena`, `image_file`, `caption`,
`classes`, `classes_foil`, `foil` and `mturk` = {"foil": n, "caption": n, "other": n} (votes of
3 annotators). The README defines the valid set as `sample["mturk"]["caption"] >= 2`; entries
below that are left out and counted in the manifest (`dropped`). Only `image_file`, `caption`,
`foil` and `mturk.caption` are used here.

Images come from the original dataset named in `dataset` (Visual7W for existence, whose images
are COCO images); `image_file` is resolved against --image-root. Not verified here: the exact
form of `image_file` in existence.json (file name only vs. a sub-folder), so give --image-root
the folder that `image_file` is relative to.

Metric (VALSE paper, pairwise ranking accuracy acc_r): an entry is right when the model scores
the caption strictly above the foil. The foil is written at index 0 so that negbench's argmax
(exact ties -> index 0) counts ties as wrong, as the strict ">" does.
"""
from __future__ import annotations

from pathlib import Path

from negbench.inputs.benchmarks.common import (BenchmarkFileError, ImportedTask, ImportResult, Pair,
                                               base_manifest, load_json, require, skip_or_raise,
                                               write_pair_task, finish_import)

BENCHMARK = "VALSE"
DEFAULT_FILE = "existence.json"
MIN_CAPTION_VOTES = 2   # README: at least two of three annotators chose the caption, not the foil
DOWNLOAD = "https://github.com/Heidelberg-NLP/VALSE (data/existence.json); images: Visual7W / COCO"


def find_file(src: Path) -> Path:
    src = Path(src).expanduser()
    if src.is_dir():
        for cand in (src / DEFAULT_FILE, src / "data" / DEFAULT_FILE):
            if cand.is_file():
                return cand
        raise BenchmarkFileError(src / DEFAULT_FILE, None, None, "file does not exist (looked in "
                                 f"{src} and {src / 'data'})")
    return src


def read_pairs(path: Path, *, skip_invalid: bool = False) -> tuple[list[Pair], dict, list[dict]]:
    """(valid pairs, dropped counts by reason, skipped malformed entries)."""
    doc = load_json(path)
    if not isinstance(doc, dict):
        raise BenchmarkFileError(path, None, None, f"expected an object keyed by sample id, got "
                                                   f"{type(doc).__name__}")
    check_piece(path, doc)
    pairs, skipped, dropped = [], [], {"below_annotator_agreement": 0}
    for sid, rec in doc.items():
        try:
            votes = _caption_votes(path, sid, rec)
            pair = Pair(sid, require(path, sid, rec, "image_file").strip(),
                        require(path, sid, rec, "caption").strip(), require(path, sid, rec, "foil").strip())
        except BenchmarkFileError as err:
            skip_or_raise(err, skip_invalid, skipped)
            continue
        if votes < MIN_CAPTION_VOTES:
            dropped["below_annotator_agreement"] += 1
            continue
        pairs.append(pair)
    return pairs, dropped, skipped


PIECE = "existence"
OTHER_PIECES = ("plurals", "counting", "relations", "actions", "coreference", "foil-it", "foil_it")


def check_piece(path: Path, doc: dict) -> None:
    """BenchmarkFileError unless the file is VALSE's existence piece: every piece has the same
    layout, so only `linguistic_phenomena` (or, without it, the file name) tells them apart."""
    named = {rec.get("linguistic_phenomena") for rec in doc.values() if isinstance(rec, dict)} - {None}
    others = sorted(str(n) for n in named if str(n).strip().lower() != PIECE)
    if others:
        raise BenchmarkFileError(path, None, "linguistic_phenomena", f"this is VALSE's {', '.join(others)} piece, "
                                 f"not {PIECE}; the importer reads data/{DEFAULT_FILE} only")
    stem = path.stem.lower()
    if not named and any(stem.startswith(p) for p in OTHER_PIECES):
        raise BenchmarkFileError(path, None, None, f"named like VALSE's {stem} piece and without "
                                 f"linguistic_phenomena; the importer reads data/{DEFAULT_FILE} only")


def _caption_votes(path: Path, sid: str, rec) -> int:
    mturk = require(path, sid, rec, "mturk", dict)
    votes = mturk.get("caption")
    if not isinstance(votes, int) or isinstance(votes, bool):
        raise BenchmarkFileError(path, sid, "mturk.caption", f"expected an int vote count, got {votes!r}; "
                                                              f"mturk has keys {sorted(mturk)}")
    return votes


def import_valse(src: Path, out: Path, *, image_root: Path | None = None,
                 skip_invalid: bool = False) -> ImportResult:
    path = find_file(src)
    pairs, dropped, skipped = read_pairs(path, skip_invalid=skip_invalid)
    if not pairs:
        raise BenchmarkFileError(path, None, None, f"no valid entries (dropped {dropped}, "
                                                   f"{len(skipped)} malformed)")
    out = Path(out)
    task = ImportedTask("valse_existence", "binary-mcq", "valse_existence.csv", "VALSE-existence",
                        "VALSE existence piece: caption vs foil, valid set (mturk.caption >= 2)")
    write_pair_task(out / task.file, pairs, correct_first=False,
                    manifest=base_manifest(BENCHMARK, [path], dropped=dropped, skipped=skipped))
    return finish_import(out, BENCHMARK, [(task, len(pairs))], skipped, media_root=image_root or path.parent,
                         header=f"VALSE existence, imported from {path}\nDownload: {DOWNLOAD}", dropped=dropped)
