"""Read, validate and write NegBench task files. The only module that knows the columns.

Formats (compatible with the published NegBench CSVs; docs/contracts.md has the columns):
- MCQ (4-way): image_path, correct_answer, caption_0..caption_3, correct_answer_template
  (+ optional `caption_types`, a JSON list naming each option's type, written by negbench)
- binary MCQ:  image_path, caption_0, caption_1, correct_answer (0/1)
- retrieval:   filepath, captions (a JSON or Python-literal list of strings)
`filepath` and `image_path` are accepted interchangeably. Relative media paths resolve
against a data root (default: the task file's folder).
"""
from __future__ import annotations

import ast
import csv
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from negbench.core.errors import TaskFileError
from negbench.core.io import atomic_path, write_json_atomic

MCQ_TEMPLATES = ("positive", "negative", "hybrid", "modified_positive")
OPTION_TYPES = ("positive", "negative", "hybrid")
KINDS = ("mcq", "binary-mcq", "retrieval")
PATH_COLUMNS = ("image_path", "filepath")


@dataclass(frozen=True)
class MCQItem:
    row: int                      # 1-based data row number in the file (header is row 0)
    media: str                    # as written in the file
    captions: tuple[str, ...]
    correct_answer: int
    template: str | None = None   # correct_answer_template (None for binary MCQ)
    caption_types: tuple[str, ...] | None = None


@dataclass(frozen=True)
class RetrievalItem:
    row: int
    media: str
    captions: tuple[str, ...]


@dataclass
class TaskData:
    kind: str
    path: Path
    data_root: Path
    items: list = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)   # TaskFileError.as_record() per skipped row

    def media_path(self, media: str) -> Path:
        return resolve_media(media, self.data_root)


def resolve_media(media: str, data_root: Path) -> Path:
    p = Path(media).expanduser()
    return p if p.is_absolute() else Path(data_root) / p


# ---------------------------------------------------------------- option types

_NEGATION_CUE = re.compile(
    r"\b(no|not|without|none|nothing|never|neither|nor|except|absent|lacks?|lacking|free of|isn't|"
    r"aren't|doesn't|don't|does not|do not|is not|are not)\b|n't\b", re.IGNORECASE)
_HYBRID_JOIN = re.compile(r"\b(but|while|although|yet|though|however|whereas)\b|,", re.IGNORECASE)


def infer_option_type(caption: str) -> str:
    """Linguistic type of an MCQ option, for files without a `caption_types` column.

    positive: no negation cue; negative: a negation cue and nothing affirmed before it;
    hybrid: an affirmative clause joined to a negated one ("features B, but not N").
    Exact for the templates in data/templates; a heuristic for free paraphrases.
    """
    cue = _NEGATION_CUE.search(caption)
    if cue is None:
        return "positive"
    # an affirmed clause either before the negation ("B, but not N") or after it ("no N, but B")
    if _HYBRID_JOIN.search(caption[:cue.start()]) or _HYBRID_JOIN.search(caption[cue.end():]):
        return "hybrid"
    return "negative"


# ---------------------------------------------------------------- reading

def _read_rows(path: Path) -> tuple[list[str], list[dict]]:
    if not path.exists():
        raise TaskFileError(path, None, None, "file does not exist")
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        header = [h.strip() for h in (reader.fieldnames or [])]
        reader.fieldnames = header
        return header, list(reader)


def _path_column(path: Path, header: Sequence[str]) -> str:
    for name in PATH_COLUMNS:
        if name in header:
            return name
    raise TaskFileError(path, None, "image_path",
                        f"missing column: need one of {list(PATH_COLUMNS)}; found {list(header)}")


def _require_columns(path: Path, header: Sequence[str], needed: Iterable[str]) -> None:
    for col in needed:
        if col not in header:
            raise TaskFileError(path, None, col, f"missing column '{col}'; found {list(header)}")


def parse_caption_list(text: str) -> list[str]:
    """Captions cell -> list of strings. JSON first, then a Python literal; never eval."""
    text = (text or "").strip()
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError, MemoryError, RecursionError) as exc:
            raise ValueError(f"unparsable caption list ({type(exc).__name__}): {text[:60]!r}") from None
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"captions must be a list of strings, got {type(value).__name__}: {text[:60]!r}")
    return list(value)


def _check_media(path: Path, row: int, column: str, media: str, data_root: Path) -> None:
    if not media.strip():
        raise TaskFileError(path, row, column, "empty media path")
    full = resolve_media(media, data_root)
    if not full.is_file():
        raise TaskFileError(path, row, column, f"media file not found: {full}")
    if full.stat().st_size == 0:
        raise TaskFileError(path, row, column, f"media file is empty (unreadable): {full}")
    if full.suffix.lower() in {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}:
        from PIL import Image, UnidentifiedImageError  # header read only; cheap
        try:
            with Image.open(full) as im:
                im.verify()
        except (UnidentifiedImageError, OSError, SyntaxError) as exc:
            raise TaskFileError(path, row, column, f"unreadable image {full}: {exc}") from None


def _caption(path: Path, row: int, rec: dict, col: str) -> str:
    value = rec.get(col)
    if value is None or not value.strip():
        raise TaskFileError(path, row, col, "empty caption")
    return value.strip()


def _answer(path: Path, row: int, rec: dict, n_options: int) -> int:
    raw = (rec.get("correct_answer") or "").strip()
    try:
        value = int(float(raw))
        if float(raw) != value:
            raise ValueError
    except ValueError:
        raise TaskFileError(path, row, "correct_answer", f"not an integer: {raw!r}") from None
    if not 0 <= value < n_options:
        raise TaskFileError(path, row, "correct_answer",
                            f"{value} out of range; allowed 0..{n_options - 1}")
    return value


def _parse_mcq_row(path, row, rec, path_col, n_options, data_root, check_media, header) -> MCQItem:
    media = (rec.get(path_col) or "").strip()
    if check_media:
        _check_media(path, row, path_col, media, data_root)
    elif not media:
        raise TaskFileError(path, row, path_col, "empty media path")
    captions = tuple(_caption(path, row, rec, f"caption_{i}") for i in range(n_options))
    answer = _answer(path, row, rec, n_options)
    template = None
    if n_options == 4:
        template = (rec.get("correct_answer_template") or "").strip()
        if template not in MCQ_TEMPLATES:
            raise TaskFileError(path, row, "correct_answer_template",
                                f"unknown template label {template!r}; allowed {list(MCQ_TEMPLATES)}")
    types = None
    if "caption_types" in header and (rec.get("caption_types") or "").strip():
        try:
            types = tuple(parse_caption_list(rec["caption_types"]))
        except ValueError as exc:
            raise TaskFileError(path, row, "caption_types", str(exc)) from None
        bad = [t for t in types if t not in OPTION_TYPES]
        if len(types) != n_options or bad:
            raise TaskFileError(path, row, "caption_types",
                                f"need {n_options} types from {list(OPTION_TYPES)}, got {list(types)}")
    return MCQItem(row, media, captions, answer, template, types)


def _parse_retrieval_row(path, row, rec, path_col, data_root, check_media) -> RetrievalItem:
    media = (rec.get(path_col) or "").strip()
    if check_media:
        _check_media(path, row, path_col, media, data_root)
    elif not media:
        raise TaskFileError(path, row, path_col, "empty media path")
    try:
        captions = parse_caption_list(rec.get("captions") or "")
    except ValueError as exc:
        raise TaskFileError(path, row, "captions", str(exc)) from None
    if not captions:
        raise TaskFileError(path, row, "captions", "empty caption list")
    for c in captions:
        if not c.strip():
            raise TaskFileError(path, row, "captions", "empty caption in list")
    return RetrievalItem(row, media, tuple(c.strip() for c in captions))


def read_task_file(path, kind: str, data_root=None, *, skip_invalid: bool = False,
                   check_media: bool = True) -> TaskData:
    """Read and validate a task file of `kind` ('mcq' | 'binary-mcq' | 'retrieval').

    Raises TaskFileError on the first bad row, or with skip_invalid records it in
    `TaskData.skipped` and goes on. Structural problems (missing columns) always raise.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown task kind {kind!r}; allowed {list(KINDS)}")
    path = Path(path)
    data_root = Path(data_root).expanduser() if data_root else path.parent
    header, rows = _read_rows(path)
    path_col = _path_column(path, header)
    data = TaskData(kind, path, data_root)
    if kind == "retrieval":
        _require_columns(path, header, ["captions"])
        parse = lambda row, rec: _parse_retrieval_row(path, row, rec, path_col, data_root, check_media)
    else:
        n = 4 if kind == "mcq" else 2
        needed = [f"caption_{i}" for i in range(n)] + ["correct_answer"]
        if kind == "mcq":
            needed.append("correct_answer_template")
        _require_columns(path, header, needed)
        parse = lambda row, rec: _parse_mcq_row(path, row, rec, path_col, n, data_root, check_media, header)
    for i, rec in enumerate(rows, start=1):
        try:
            data.items.append(parse(i, rec))
        except TaskFileError as err:
            if not skip_invalid:
                raise
            data.skipped.append(err.as_record())
    return data


# ---------------------------------------------------------------- writing

def mcq_columns(n_options: int, with_types: bool) -> list[str]:
    cols = ["image_path", "correct_answer"] + [f"caption_{i}" for i in range(n_options)]
    if n_options == 4:
        cols.append("correct_answer_template")
    if with_types:
        cols.append("caption_types")
    return cols


def _mcq_record(item: MCQItem, with_types: bool) -> dict:
    rec = {"image_path": item.media, "correct_answer": item.correct_answer}
    rec.update({f"caption_{i}": c for i, c in enumerate(item.captions)})
    if len(item.captions) == 4:
        rec["correct_answer_template"] = item.template or ""
    if with_types:
        rec["caption_types"] = json.dumps(list(item.caption_types or []))
    return rec


def write_task_file(path, kind: str, items: Sequence, manifest: dict | None = None) -> Path:
    """Atomically write items (MCQItem or RetrievalItem) as a task CSV (+ manifest JSON)."""
    path = Path(path)
    if kind == "retrieval":
        columns = ["filepath", "captions"]
        records = [{"filepath": it.media, "captions": json.dumps(list(it.captions), ensure_ascii=False)}
                   for it in items]
    elif kind in ("mcq", "binary-mcq"):
        n = 4 if kind == "mcq" else 2
        with_types = bool(items) and all(it.caption_types for it in items)
        columns = mcq_columns(n, with_types)
        records = [_mcq_record(it, with_types) for it in items]
    else:
        raise ValueError(f"unknown task kind {kind!r}; allowed {list(KINDS)}")
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=columns, lineterminator="\n")
            writer.writeheader()
            writer.writerows(records)
    if manifest is not None:
        write_json_atomic(manifest_path(path), manifest)
    return path


def manifest_path(task_file) -> Path:
    task_file = Path(task_file)
    return task_file.with_name(task_file.name + ".manifest.json")
