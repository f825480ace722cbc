"""NegVQA (Zhang et al., ACL 2025 Findings) -> a two-choice task for generative models.

Source of the layout: yuhui-zh15/NegVQA, `add_negation.ipynb` (the cells that write
`NegVQA-7379.jsonl`, `NegVQA-7379-negated.jsonl` and `NegVQA-7379-original.jsonl`): JSON lines
built from VMCBench rows, each with `question`, the two choices `A` and `B`, `answer` ("A" or "B"),
`category` (source dataset, e.g. "VQAv2"), plus `original_question`, `negated_question`,
`original_answer`, `negated_answer` and the other VMCBench fields. The README points to the
Hugging Face dataset yuhuizhang/NegVQA, evaluated with VLMEvalKit (`--data NegVQA-negated`).
Not verified here: how the image is stored in the released files. This reader takes either an
`image` field holding base64 image bytes (VLMEvalKit's TSV/JSONL convention, written out to
OUT/negvqa_images/) or an `image_path` field with a path relative to --image-root; `index` is
used as the id when present, else the line number.

Metric (the paper): accuracy of the chosen letter against `answer`; chance 1/2. The task needs a
generative model (question + two choices in the prompt): the written task is binary-MCQ shaped
(`caption_0` = choice A, `caption_1` = choice B, `correct_answer` 0/1, plus `question` and
`category` columns) and marked `needs_generative: true`; evaluated with a dual encoder it is
skipped with a recorded reason (negbench.evaluation.selection.run_special).
"""
from __future__ import annotations

import base64
import binascii
import io
import json
from pathlib import Path

from negbench.inputs.benchmarks.common import (BenchmarkFileError, ImportedTask, ImportResult,
                                               base_manifest, parse_entries, require, write_csv,
                                               finish_import, require_items)

BENCHMARK = "NegVQA"
FILES = {"negvqa_negated": "NegVQA-7379-negated.jsonl", "negvqa_original": "NegVQA-7379-original.jsonl"}
DOWNLOAD = "https://huggingface.co/datasets/yuhuizhang/NegVQA"
COLUMNS = ("image_path", "caption_0", "caption_1", "correct_answer", "question", "category", "entry")


def _lines(path: Path):
    if not path.is_file():
        raise BenchmarkFileError(path, None, None, "file does not exist")
    with open(path, encoding="utf-8-sig") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                yield n, json.loads(line)
            except json.JSONDecodeError as exc:
                raise BenchmarkFileError(path, f"line {n}", None, f"not valid JSON: {exc.msg}") from None
            except RecursionError:
                raise BenchmarkFileError(path, f"line {n}", None, "not valid JSON: nested too deeply") from None


def _image(path: Path, entry: str, rec: dict, images_dir: Path) -> str:
    """The row's media path: a decoded base64 `image` written under images_dir, or `image_path`."""
    if isinstance(rec.get("image_path"), str) and rec["image_path"].strip():
        return rec["image_path"].strip()
    data = require(path, entry, rec, "image")
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise BenchmarkFileError(path, entry, "image", "neither base64 image bytes nor given with "
                                                       "image_path") from None
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(raw)) as im:
            ext = (im.format or "png").lower().replace("jpeg", "jpg")
    except (UnidentifiedImageError, OSError):
        raise BenchmarkFileError(path, entry, "image", "base64 data is not an image") from None
    return str(_store_image(images_dir, entry, raw, ext).resolve())


def _store_image(images_dir: Path, entry: str, raw: bytes, ext: str) -> Path:
    """The image's file: named from the entry id made safe (no separators, no '..') plus a digest of
    its bytes, so two entries with one id never share a file and a re-import with other bytes
    never finds an old image under the name."""
    import hashlib

    from negbench.core.io import safe_file_stem, write_bytes_atomic

    target = images_dir / f"{safe_file_stem(entry)[:100]}-{hashlib.sha256(raw).hexdigest()[:16]}.{ext}"
    if not (target.is_file() and target.stat().st_size == len(raw)):
        write_bytes_atomic(target, raw)
    return target


def read_rows(path: Path, images_dir: Path, *, skip_invalid: bool = False) -> tuple[list[dict], list[dict]]:
    def parse(entry, rec) -> dict:
        answer = require(path, entry, rec, "answer").strip()
        if answer not in ("A", "B"):
            raise BenchmarkFileError(path, entry, "answer", f"{answer!r} is not one of 'A', 'B'")
        return {"image_path": _image(path, entry, rec, images_dir),
                "caption_0": require(path, entry, rec, "A", (str, int, float)),
                "caption_1": require(path, entry, rec, "B", (str, int, float)),
                "correct_answer": "AB".index(answer), "question": require(path, entry, rec, "question"),
                "category": str(rec.get("category", "")), "entry": entry}

    entries = ((str(rec.get("index", n)) if isinstance(rec, dict) else f"line {n}", rec) for n, rec in _lines(path))
    return parse_entries(entries, parse, skip_invalid)


def import_negvqa(src: Path, out: Path, *, image_root: Path | None = None,
                  skip_invalid: bool = False) -> ImportResult:
    """src: a folder with NegVQA-7379-negated.jsonl (and optionally -original.jsonl), or one JSONL file."""
    src = Path(src).expanduser()
    out = Path(out)
    chosen = {"negvqa_negated": src} if src.is_file() else {
        name: src / f for name, f in FILES.items() if (src / f).is_file() or name == "negvqa_negated"}
    written, skipped = [], []
    for name, path in chosen.items():
        rows, bad = read_rows(path, out / "negvqa_images", skip_invalid=skip_invalid)
        skipped += bad
        require_items(path, rows, bad, "lines")
        task = ImportedTask(name, "binary-mcq", f"{name}.csv", "NegVQA",
                            f"NegVQA {name.split('_')[1]} questions, two choices (generative models)",
                            negated=name.endswith("negated"), needs_generative=True)
        write_csv(out / task.file, COLUMNS, rows, base_manifest(BENCHMARK, [path], items=len(rows), skipped=bad))
        written.append((task, len(rows)))
    return finish_import(out, BENCHMARK, written, skipped, media_root=image_root or (src if src.is_dir() else src.parent),
                         header=f"NegVQA, imported from {src}\nDownload: {DOWNLOAD}")
