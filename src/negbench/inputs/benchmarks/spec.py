"""SPEC existence subset (Peng et al., "Synthesize, Diagnose, and Optimize", CVPR 2024) -> two tasks.

Source of the layout: wjpoom/SPEC, `spec/dataset.py` (`Image2TextDataset`, `Text2ImageDataset`,
`get_data`) and README ("prepare data": `data.zip` from the Hugging Face dataset wjpoom/SPEC).
Each subset is a folder under the data root (`existence/`, also `count/`, `absolute_size/`, ...)
holding `image2text.json` and `text2image.json`, both JSON lists of
`{"query": ..., "keys": [...], "label": int}`: in image2text `query` is an image path relative
to the subset folder and `keys` the candidate texts; in text2image `query` is a text and `keys`
the candidate image paths. `label` is the index of the right key.

Metric (their `spec/models/clip_wrapper.py`): argmax over the candidates of the L2-normalised
similarity, right when it equals `label` (torch argmax: ties -> lowest index, as negbench's).
Image-to-text becomes a binary-MCQ task when every sample has two candidate texts; text-to-image
becomes a `t2i-selection` task (negbench.inputs.selection, scored by
negbench.evaluation.selection). Not verified here: the number of candidates per existence sample
(a sample with other than two texts is an error naming it, since negbench's MCQ files hold 2 or 4
options and 4-way ones need template labels) and the image file names in data.zip.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from negbench.inputs.benchmarks.common import (BenchmarkFileError, ImportedTask, ImportResult,
                                               base_manifest, load_json, parse_entries, require,
                                               finish_import, require_items)

BENCHMARK = "SPEC"
SUBSET = "existence"
DOWNLOAD = "https://huggingface.co/datasets/wjpoom/SPEC (data.zip; subset folder existence/)"


def _samples(path: Path) -> list:
    doc = load_json(path)
    if not isinstance(doc, list):
        raise BenchmarkFileError(path, None, None, f"expected a JSON list of samples, got {type(doc).__name__}")
    return doc


def _keys_and_label(path: Path, i: int, rec) -> tuple[list[str], int]:
    keys = require(path, i, rec, "keys", list)
    if len(keys) < 2 or not all(isinstance(k, str) and k.strip() for k in keys):
        raise BenchmarkFileError(path, i, "keys", f"need >= 2 non-empty strings, got {str(keys)[:80]}")
    label = require(path, i, rec, "label", int)
    if not 0 <= label < len(keys):
        raise BenchmarkFileError(path, i, "label", f"{label} is not an index into {len(keys)} keys")
    return [k.strip() for k in keys], label


def read_image2text(path: Path, *, skip_invalid: bool = False):
    from negbench.inputs.formats import MCQItem

    def parse(i, rec) -> MCQItem:
        query = require(path, i, rec, "query").strip()
        keys, label = _keys_and_label(path, i, rec)
        if len(keys) != 2:
            raise BenchmarkFileError(path, i, "keys", f"{len(keys)} candidate texts; the image-to-text "
                                                      "reader handles the existence subset's 2")
        return MCQItem(0, query, tuple(keys), label)

    return _numbered(*parse_entries(enumerate(_samples(path)), parse, skip_invalid))


def read_text2image(path: Path, *, skip_invalid: bool = False):
    from negbench.inputs.selection import SelectionItem

    def parse(i, rec) -> SelectionItem:
        query = require(path, i, rec, "query").strip()
        keys, label = _keys_and_label(path, i, rec)
        return SelectionItem(0, query, tuple(keys), label)

    return _numbered(*parse_entries(enumerate(_samples(path)), parse, skip_invalid))


def _numbered(items: list, skipped: list[dict]) -> tuple[list, list[dict]]:
    """Items numbered 1.. in the order kept: the rows of the task file they are written to."""
    return [dataclasses.replace(it, row=row) for row, it in enumerate(items, start=1)], skipped


def import_spec(src: Path, out: Path, *, image_root: Path | None = None,
                skip_invalid: bool = False) -> ImportResult:
    """src: the SPEC data root (holding existence/) or the existence/ folder itself."""
    from negbench.inputs.formats import write_task_file
    from negbench.inputs.selection import write_selection_file

    src = Path(src).expanduser()
    subset = src if (src / "image2text.json").is_file() else src / SUBSET
    i2t_path, t2i_path = subset / "image2text.json", subset / "text2image.json"
    i2t, bad_i2t = read_image2text(i2t_path, skip_invalid=skip_invalid)
    t2i, bad_t2i = read_text2image(t2i_path, skip_invalid=skip_invalid)
    for path, items, bad in ((i2t_path, i2t, bad_i2t), (t2i_path, t2i, bad_t2i)):
        require_items(path, items, bad, "samples")
    out = Path(out)
    tasks = [ImportedTask("spec_existence_i2t", "binary-mcq", "spec_existence_i2t.csv", "SPEC-existence",
                          "SPEC existence, image-to-text: pick the right text for the image"),
             ImportedTask("spec_existence_t2i", "t2i-selection", "spec_existence_t2i.csv", "SPEC-existence",
                          "SPEC existence, text-to-image: pick the right image for the text")]
    write_task_file(out / tasks[0].file, "binary-mcq", i2t, base_manifest(BENCHMARK, [i2t_path], skipped=bad_i2t))
    write_selection_file(out / tasks[1].file, t2i, base_manifest(BENCHMARK, [t2i_path], skipped=bad_t2i))
    return finish_import(out, BENCHMARK, [(tasks[0], len(i2t)), (tasks[1], len(t2i))], bad_i2t + bad_t2i,
                         media_root=image_root or subset,
                         header=f"SPEC existence, imported from {subset}\nDownload: {DOWNLOAD}")
