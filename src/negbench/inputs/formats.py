"""Read, validate and write NegBench task files. The only module that knows the columns.

Formats (compatible with the published NegBench CSVs; docs/contracts.md has the columns):
- MCQ (4-way): image_path, correct_answer, caption_0..caption_3, correct_answer_template
  (+ optional `caption_types`, a JSON list naming each option's type, written by negbench)
- binary MCQ:  image_path, caption_0, caption_1, correct_answer (0/1)
- retrieval:   filepath, captions (a JSON or Python-literal list of strings)
`filepath` and `image_path` are accepted interchangeably. Relative media paths resolve
against a data root (default: the task file's folder); absolute paths from another machine
are rewritten once per file (negbench.inputs.paths).
"""
from __future__ import annotations

import ast
import csv
import io
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Iterable, Sequence

from negbench.core.errors import TaskFileError
from negbench.core.io import atomic_path, write_json_atomic
from negbench.inputs.kinds import KINDS, TaskKind, kind_names
from negbench.inputs.paths import PathResolver, build_resolver

MCQ_TEMPLATES = ("positive", "negative", "hybrid", "modified_positive")
OPTION_TYPES = ("positive", "negative", "hybrid")
# the layouts this module reads and writes; t2i-selection files live in negbench.inputs.selection
FILE_LAYOUTS = ("options", "captions")
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
    resolver: PathResolver | None = None                # how this file's media paths resolve
    suspicious: list[dict] = field(default_factory=list)  # negbench.inputs.audit records
    excluded: list[dict] = field(default_factory=list)    # suspicious rows left out (exclude_suspicious)

    def media_path(self, media: str) -> Path:
        if self.resolver is not None:
            return self.resolver.resolve(media)
        return resolve_media(media, self.data_root)

    @property
    def path_rewrite(self) -> dict | list | None:
        """The foreign-prefix rewrite applied to this file's media paths (None: none needed)."""
        return self.resolver.record() if self.resolver is not None else None


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

# csv's default field limit (131,072 chars) is below a long caption list; beyond this one a
# cell is not a caption but a broken file (an unclosed quote swallowing the rest)
MAX_FIELD_CHARS = 16 * 1024 * 1024
_BOMS = ((b"\xef\xbb\xbf", "utf-8"), (b"\xff\xfe\x00\x00", "utf-32-le"), (b"\x00\x00\xfe\xff", "utf-32-be"),
         (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"))


def _decode_text(path: Path, raw: bytes) -> str:
    """File bytes -> text: a BOM names the encoding, else UTF-8, else a clear error.

    No guessing among 8-bit encodings: latin-1 decodes any bytes, so a guess would turn a
    wrong encoding into wrong captions without a word.
    """
    for bom, encoding in _BOMS:
        if raw.startswith(bom):
            try:
                return raw[len(bom):].decode(encoding)
            except UnicodeDecodeError as exc:
                raise _decode_error(path, raw, exc, encoding) from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _decode_error(path, raw, exc, "utf-8") from None


def _decode_error(path: Path, raw: bytes, exc: UnicodeDecodeError, encoding: str) -> TaskFileError:
    line = raw.count(b"\n", 0, exc.start)  # the header is line 0, like data rows count from 1
    bad = raw[exc.start:exc.start + 4]
    return TaskFileError(path, line if line else None, None,
                         f"not valid {encoding} text at byte {exc.start} ({bad!r}); re-save the file as "
                         f"UTF-8 (e.g. `iconv -f latin1 -t utf-8`)")


def _check_header(path: Path, header: list[str]) -> None:
    seen: set[str] = set()
    for name in header:
        if name in seen:
            raise TaskFileError(path, None, name, "duplicate column name in the header; "
                                "which one holds the data is ambiguous")
        seen.add(name)


def _csv_records(path: Path, text: str) -> tuple[list[str], list[dict]]:
    """Header + one dict per data row; a row with more fields than the header gets a `None`
    key holding the extras (checked per row, so --skip-invalid can skip it)."""
    # the limit is process-wide and other readers set their own: set ours for every read
    csv.field_size_limit(MAX_FIELD_CHARS)
    reader = csv.reader(io.StringIO(text, newline=""))
    rows: list[dict] = []
    header: list[str] = []
    try:
        for cells in reader:
            if not header:
                header = [h.strip() for h in cells]
                _check_header(path, header)
                continue
            if not cells:  # csv yields [] for a blank line; DictReader skips those too
                continue
            rec = dict(zip(header, cells))
            if len(cells) > len(header):
                rec[None] = cells[len(header):]
            rows.append(rec)
    except csv.Error as exc:
        raise TaskFileError(path, len(rows) + 1 if header else None, None,
                            f"malformed CSV near line {reader.line_num}: {exc} "
                            f"(a cell is limited to {MAX_FIELD_CHARS:,} characters)") from None
    return header, rows


def _read_rows(path: Path) -> tuple[list[str], list[dict]]:
    if not path.exists():
        raise TaskFileError(path, None, None, "file does not exist")
    if not path.is_file():
        raise TaskFileError(path, None, None, "not a file")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise TaskFileError(path, None, None, f"cannot read: {exc.strerror or exc}") from None
    return _csv_records(path, _decode_text(path, raw))


def read_csv_rows(path) -> tuple[list[str], list[dict]]:
    """(header, rows) of any CSV with the task files' decoding rules (BOM, UTF-8/16, duplicate
    headers and oversized cells are TaskFileErrors; extra fields land under the key None)."""
    return _read_rows(Path(path))


def _check_row_shape(path: Path, row: int, rec: dict) -> dict:
    """A row with more fields than the header: the extras would be lost, so it is an error."""
    extra = rec.get(None)
    if extra is not None:
        raise TaskFileError(path, row, None, f"{len(rec) - 1 + len(extra)} fields but the header has "
                            f"{len(rec) - 1}; extra values {extra[:3]!r} (an unquoted comma?)")
    return rec


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


MAX_NESTING = 32   # brackets deep a list cell may be: a list of strings needs 1


def check_nesting(text: str, limit: int = MAX_NESTING) -> None:
    """ValueError when `text` nests brackets deeper than `limit` outside quoted strings: the
    parsers recurse per level, and a cell of 200,000 '[' would end in RecursionError."""
    if sum(text.count(c) for c in "[{(") <= limit:  # nearly every cell: no scan needed
        return
    depth, quote, escaped = 0, None, False
    for ch in text:
        if quote:
            escaped, quote = (False, quote) if escaped else (ch == "\\", None if ch == quote else quote)
        elif ch in "\"'":
            quote = ch
        elif ch in "[{(":
            depth += 1
            if depth > limit:
                raise ValueError(f"nested deeper than {limit} levels: {text[:40]!r}...")
        elif ch in "]})":
            depth -= 1


def parse_caption_list(text: str) -> list[str]:
    """Captions cell -> list of strings. JSON first, then a Python literal; never eval.
    Nesting is bounded (check_nesting): every failure is a ValueError."""
    text = (text or "").strip()
    check_nesting(text)
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError, MemoryError, RecursionError) as exc:
            raise ValueError(f"unparsable caption list ({type(exc).__name__}): {text[:60]!r}") from None
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"captions must be a list of strings, got {type(value).__name__}: {text[:60]!r}")
    return list(value)


def media_path_problem(media: str) -> str | None:
    """Why a media path read from a data file may not be used, or None: a relative path with a
    '..' part would leave the media root (absolute paths, as in the published files, are fine).
    The COCO/VOC readers refuse the same; CSV build sources can call this too."""
    parts = PurePosixPath(media.replace("\\", "/")).parts
    if ".." in parts and not PurePosixPath(media.replace("\\", "/")).is_absolute():
        return f"path {media!r} leaves the media root ('..'); give it relative to the root, or absolute"
    return None


def _check_media(path: Path, row: int, column: str, media: str, resolver: PathResolver) -> None:
    if not media.strip():
        raise TaskFileError(path, row, column, "empty media path")
    if (problem := media_path_problem(media)) is not None:
        raise TaskFileError(path, row, column, problem)
    full = resolver.resolve(media)
    if not full.is_file():
        raise TaskFileError(path, row, column, f"media file not found: {full}")
    if full.stat().st_size == 0:
        raise TaskFileError(path, row, column, f"media file is empty (unreadable): {full}")
    if full.suffix.lower() in {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}:
        from PIL import UnidentifiedImageError  # header read only; cheap

        from negbench.inputs.media import MediaError, open_image_checked
        try:
            with open_image_checked(full) as im:
                im.verify()
        except MediaError as exc:
            raise TaskFileError(path, row, column, str(exc)) from None
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            raise TaskFileError(path, row, column, f"unreadable image {full}: {exc}") from None


def _caption(path: Path, row: int, rec: dict, col: str) -> str:
    value = rec.get(col)
    if value is None or not value.strip():
        raise TaskFileError(path, row, col, "empty caption")
    return value.strip()


def _answer(path: Path, row: int, rec: dict, n_options: int) -> int:
    raw = (rec.get("correct_answer") or "").strip()
    try:
        number = float(raw)
        # inf / 1e400 / nan are floats but no answer index (int() would overflow)
        if not math.isfinite(number) or number != int(number):
            raise ValueError
        value = int(number)
    except ValueError:
        raise TaskFileError(path, row, "correct_answer", f"not an integer: {raw!r}") from None
    if not 0 <= value < n_options:
        raise TaskFileError(path, row, "correct_answer",
                            f"{value} out of range; allowed 0..{n_options - 1}")
    return value


def _parse_mcq_row(path, row, rec, path_col, kind: TaskKind, resolver, check_media, header) -> MCQItem:
    media = (rec.get(path_col) or "").strip()
    if check_media:
        _check_media(path, row, path_col, media, resolver)
    elif not media:
        raise TaskFileError(path, row, path_col, "empty media path")
    elif (problem := media_path_problem(media)) is not None:
        raise TaskFileError(path, row, path_col, problem)
    n_options = kind.options
    captions = tuple(_caption(path, row, rec, f"caption_{i}") for i in range(n_options))
    answer = _answer(path, row, rec, n_options)
    template = _template(path, row, rec, kind, header)
    types = None
    if "caption_types" in header and (rec.get("caption_types") or "").strip():
        try:
            types = tuple(parse_caption_list(rec["caption_types"]))
        except ValueError as exc:
            raise TaskFileError(path, row, "caption_types", str(exc)) from None
        _check_caption_types(path, row, types, n_options, answer, template)
    return MCQItem(row, media, captions, answer, template, types)


def _template(path, row: int, rec: dict, kind: TaskKind, header) -> str | None:
    """The row's correct_answer_template; None where the kind's file may go without one."""
    # binary files carry the template only in some releases (CheXpert per finding)
    if kind.templates != "always" and "correct_answer_template" not in header:
        return None
    template = (rec.get("correct_answer_template") or "").strip() or (None if kind.templates != "always" else "")
    if template is not None and template not in MCQ_TEMPLATES:
        raise TaskFileError(path, row, "correct_answer_template",
                            f"unknown template label {template!r}; allowed {list(MCQ_TEMPLATES)}")
    return template


def _check_caption_types(path, row: int, types: tuple, n_options: int, answer: int, template) -> None:
    bad = [t for t in types if t not in OPTION_TYPES]
    if len(types) != n_options or bad:
        raise TaskFileError(path, row, "caption_types",
                            f"need {n_options} types from {list(OPTION_TYPES)}, got {list(types)}")
    # the breakdowns group by these types: the correct option's type must be its template's
    expected = {"modified_positive": "positive"}.get(template, template)
    if expected is not None and types[answer] != expected:
        raise TaskFileError(path, row, "caption_types",
                            f"option {answer} is the correct answer with template {template!r} but its "
                            f"type is {types[answer]!r}; got {list(types)}")


def _parse_retrieval_row(path, row, rec, path_col, resolver, check_media) -> RetrievalItem:
    media = (rec.get(path_col) or "").strip()
    if check_media:
        _check_media(path, row, path_col, media, resolver)
    elif not media:
        raise TaskFileError(path, row, path_col, "empty media path")
    elif (problem := media_path_problem(media)) is not None:
        raise TaskFileError(path, row, path_col, problem)
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
                   check_media: bool = True, path_map=None, exclude_suspicious: bool = False) -> TaskData:
    """Read and validate a task file of `kind` ('mcq' | 'binary-mcq' | 'retrieval').

    Raises TaskFileError on the first bad row, or with skip_invalid records it in
    `TaskData.skipped` and goes on. Structural problems (missing columns) always raise.
    path_map: [(OLD, NEW)] prefix rewrites that win over the automatic one (paths module).
    Suspicious rows (negbench.inputs.audit) are listed in `.suspicious`; exclude_suspicious
    moves them from `.items` to `.excluded`.
    """
    kind_ = file_kind(kind)
    path = Path(path)
    data_root = Path(data_root).expanduser() if data_root else path.parent
    header, rows = _read_rows(path)
    path_col = _path_column(path, header)
    resolver = build_resolver(path, path_col, [(i, (rec.get(path_col) or "").strip())
                                               for i, rec in enumerate(rows, start=1)], data_root, path_map)
    data = TaskData(kind, path, data_root, resolver=resolver)
    _require_columns(path, header, kind_.columns)
    if kind_.is_choice:
        parse = lambda row, rec: _parse_mcq_row(path, row, rec, path_col, kind_, resolver, check_media, header)
    else:
        parse = lambda row, rec: _parse_retrieval_row(path, row, rec, path_col, resolver, check_media)
    for i, rec in enumerate(rows, start=1):
        try:
            data.items.append(parse(i, _check_row_shape(path, i, rec)))
        except TaskFileError as err:
            if not skip_invalid:
                raise
            data.skipped.append(err.as_record())
    _audit(data, exclude_suspicious)
    return data


def _audit(data: TaskData, exclude_suspicious: bool) -> None:
    from negbench.inputs.audit import audit_items

    data.suspicious = audit_items(data.items)
    if exclude_suspicious and data.suspicious:
        flagged = {rec["row"] for rec in data.suspicious}
        data.excluded = [rec for rec in data.suspicious]
        data.items = [it for it in data.items if it.row not in flagged]


# ---------------------------------------------------------------- writing

def mcq_columns(kind: TaskKind, with_types: bool) -> list[str]:
    cols = ["image_path", "correct_answer"] + [f"caption_{i}" for i in range(kind.options)]
    if kind.templates == "always":
        cols.append("correct_answer_template")
    if with_types:
        cols.append("caption_types")
    return cols


def _mcq_record(item: MCQItem, kind: TaskKind, with_types: bool) -> dict:
    rec = {"image_path": item.media, "correct_answer": item.correct_answer}
    rec.update({f"caption_{i}": c for i, c in enumerate(item.captions)})
    if kind.templates == "always":
        rec["correct_answer_template"] = item.template or ""
    if with_types:
        rec["caption_types"] = json.dumps(list(item.caption_types or []))
    return rec


def file_kind(name: str) -> TaskKind:
    """The kind of a task file this module reads and writes; ValueError for any other name."""
    if name not in KINDS or KINDS.get(name).layout not in FILE_LAYOUTS:
        raise ValueError(f"unknown task kind {name!r}; allowed {kind_names(FILE_LAYOUTS)}")
    return KINDS.get(name)


def write_task_file(path, kind: str, items: Sequence, manifest: dict | None = None) -> Path:
    """Atomically write items (MCQItem or RetrievalItem) as a task CSV (+ manifest JSON)."""
    path = Path(path)
    kind_ = file_kind(kind)
    if kind_.is_choice:
        with_types = bool(items) and all(it.caption_types for it in items)
        columns = mcq_columns(kind_, with_types)
        records = [_mcq_record(it, kind_, with_types) for it in items]
    else:
        columns = ["filepath", "captions"]
        records = [{"filepath": it.media, "captions": json.dumps(list(it.captions), ensure_ascii=False)}
                   for it in items]
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
