"""CC-Neg (Singh et al., "Learning the Power of 'No'", WACV 2025; CoN-CLIP) -> a binary-MCQ task.

Source of the layout: jaisidhsingh/CoN-CLIP, `ccneg_dataset/README.md` (the annotation file
`ccneg_preprocessed.pt`, images in `ccneg_images/cc3m_subset_images_extracted_final/`) and
`src/data/evaluation_datasets.py` (`CCNegEvalDataset`): the .pt file is a dict with
`image_paths` (list of absolute paths written on the authors' machine, under
`/workspace/datasets/cc3m/`) and `annotations` (list, same order) where the true caption is
`annotations[i]["json"]["caption"]` and the negated caption is
`annotations[i]["sop_data"]["negative-prompt"]` with its commas removed; the evaluation split is
the LAST 40,000 entries (`configs.num_ccneg_eval_samples` in src/configs/data_configs.py).
The file is read with torch.load(weights_only=True): plain dicts, lists and strings load.

Paths: the authors' prefix `/workspace/datasets/cc3m/` is replaced by --image-root (as their
loader does with `configs.ccneg_root_folder`); other absolute paths are kept. Not verified here:
the file names inside `cc3m_subset_images_extracted_final/` and whether the released .pt holds
other keys (`num_ops` is used by their loader for an optional filter, not here).

Metric (their README snippet and ClipRunner.score_over_loader): argmax over [true, negated]
similarity, right when it is 0; the true caption is written at index 0, so ties count as right
there and here alike.
"""
from __future__ import annotations

import re

from pathlib import Path

from negbench.inputs.benchmarks.common import (BenchmarkFileError, ImportedTask, ImportResult, Pair,
                                               base_manifest, parse_entries, require, write_pair_task,
                                               finish_import, require_items)

BENCHMARK = "CC-Neg"
DEFAULT_FILE = "ccneg_preprocessed.pt"
EVAL_SAMPLES = 40_000
AUTHORS_PREFIX = "/workspace/datasets/cc3m/"
DOWNLOAD = ("https://github.com/jaisidhsingh/CoN-CLIP/tree/main/ccneg_dataset (ccneg_preprocessed.pt + "
            "ccneg_images)")


def _torch_reason(exc: Exception) -> str:
    """torch's own reason, without its advice to load with weights_only=False (never safe here:
    the file comes from outside, and unpickling runs its code)."""
    text = " ".join(str(exc).split())
    if "Unsupported global" in text:
        bad = text.split("Unsupported global:", 1)[1].split(" was not an allowed global", 1)[0].strip()
        return (f"it holds a Python object ({bad}), and negbench loads only plain data "
                f"(dicts, lists, strings, tensors), never code")
    return re.sub(r"\x1b\[[0-9;]*m", "", text.split(" Re-running `torch.load`")[0])[:200]


def load_annotations(path: Path) -> dict:
    import pickle

    import torch

    if not path.is_file():
        raise BenchmarkFileError(path, None, None, "file does not exist")
    try:
        doc = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError) as exc:
        raise BenchmarkFileError(path, None, None, f"not a torch file of plain data: {_torch_reason(exc)}") from None
    for key in ("image_paths", "annotations"):
        if not isinstance(doc, dict) or key not in doc:
            found = sorted(doc) if isinstance(doc, dict) else type(doc).__name__
            raise BenchmarkFileError(path, None, key, f"missing key; found {found}")
        if not isinstance(doc[key], (list, tuple)):
            raise BenchmarkFileError(path, None, key, f"expected a list, got {type(doc[key]).__name__}")
    if len(doc["image_paths"]) != len(doc["annotations"]):
        raise BenchmarkFileError(path, None, "annotations", f"{len(doc['annotations'])} annotations for "
                                                            f"{len(doc['image_paths'])} image_paths")
    return doc


def _media(raw: str) -> str:
    return raw[len(AUTHORS_PREFIX):] if raw.startswith(AUTHORS_PREFIX) else raw


def read_pairs(path: Path, *, eval_samples: int = EVAL_SAMPLES,
               skip_invalid: bool = False) -> tuple[list[Pair], list[dict]]:
    doc = load_annotations(path)
    n = len(doc["image_paths"])
    start = max(0, n - eval_samples)
    def parse(i, rec) -> Pair:
        raw = doc["image_paths"][i]
        if not isinstance(raw, str) or not raw.strip():
            raise BenchmarkFileError(path, i, "image_paths", f"expected a path string, got {raw!r}")
        caption = require(path, i, require(path, i, rec, "json", dict), "caption")
        negated = require(path, i, require(path, i, rec, "sop_data", dict), "negative-prompt")
        return Pair(str(i), _media(raw.strip()), caption.strip(), negated.replace(",", "").strip())

    return parse_entries(((i, doc["annotations"][i]) for i in range(start, n)), parse, skip_invalid)


def import_ccneg(src: Path, out: Path, *, image_root: Path | None = None, skip_invalid: bool = False,
                 eval_samples: int = EVAL_SAMPLES) -> ImportResult:
    src = Path(src).expanduser()
    path = src / DEFAULT_FILE if src.is_dir() else src
    pairs, skipped = read_pairs(path, eval_samples=eval_samples, skip_invalid=skip_invalid)
    require_items(path, pairs, skipped)
    out = Path(out)
    task = ImportedTask("ccneg_eval", "binary-mcq", "ccneg_eval.csv", "CC-Neg",
                        f"CC-Neg evaluation split (last {eval_samples} entries): true vs negated caption")
    write_pair_task(out / task.file, pairs, correct_first=True,
                    manifest=base_manifest(BENCHMARK, [path], eval_samples=eval_samples, skipped=skipped))
    return finish_import(out, BENCHMARK, [(task, len(pairs))], skipped, media_root=image_root or path.parent,
                         header=f"CC-Neg, imported from {path}\nDownload: {DOWNLOAD}")
