"""What every benchmark importer shares: reading the released files with errors that name
file and key, and writing negbench task files plus the task YAML that registers them."""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from negbench.core.errors import NegbenchError, located
from negbench.core.io import atomic_path, write_text_atomic


class BenchmarkFileError(NegbenchError, ValueError):
    """A released benchmark file that does not have the layout its reader expects.

    The message names the file, the entry (id or line) and the key, and says what was found.
    """

    def __init__(self, file, entry, key: str | None, reason: str):
        self.file, self.entry, self.key, self.reason = str(file), entry, key, reason
        super().__init__(f"{located(file, entry=entry, key=key)}: {reason}")

    def as_record(self) -> dict:
        return {"file": self.file, "row": self.entry, "column": self.key, "reason": self.reason}


@dataclass
class ImportedTask:
    """One task file written by an importer, with what its YAML entry needs."""
    name: str
    kind: str
    file: str                    # relative to the output folder
    group: str
    description: str
    negated: bool = True
    variant: str = "original"
    needs_generative: bool = False


@dataclass
class ImportResult:
    benchmark: str
    out: Path
    tasks_yaml: Path
    tasks: list[ImportedTask]
    counts: dict[str, int] = field(default_factory=dict)   # items written per task
    skipped: list[dict] = field(default_factory=list)      # BenchmarkFileError.as_record() per skipped entry
    dropped: dict[str, int] = field(default_factory=dict)  # entries left out on purpose, by reason


def load_json(path: Path) -> Any:
    """A JSON file, or a BenchmarkFileError naming the file and where the parse failed."""
    path = Path(path)
    if not path.is_file():
        raise BenchmarkFileError(path, None, None, "file does not exist")
    try:
        return json.loads(path.read_text(encoding="utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise BenchmarkFileError(path, None, None, f"not UTF-8 text: {exc}") from None
    except json.JSONDecodeError as exc:
        raise BenchmarkFileError(path, None, None, f"not valid JSON (line {exc.lineno}, column {exc.colno}: "
                                                   f"{exc.msg})") from None
    except RecursionError:  # json recurses per level: 200,000 '[' is a hostile file, not a bug of ours
        raise BenchmarkFileError(path, None, None, "not valid JSON: nested too deeply") from None


def require(path: Path, entry, record: Any, key: str, kinds: type | tuple = str) -> Any:
    """record[key], checked to exist and be of `kinds` (strings must be non-empty)."""
    if not isinstance(record, dict):
        raise BenchmarkFileError(path, entry, None, f"expected an object, got {type(record).__name__}")
    if key not in record:
        raise BenchmarkFileError(path, entry, key, f"missing key; found keys {sorted(record)}")
    value = record[key]
    # bool is an int subclass: a JSON true is never a valid count or index
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in _as_tuple(kinds)):
        raise BenchmarkFileError(path, entry, key, f"expected {_kind_names(kinds)}, got "
                                                   f"{type(value).__name__} {str(value)[:60]!r}")
    if isinstance(value, str) and not value.strip():
        raise BenchmarkFileError(path, entry, key, "empty string")
    return value


def _as_tuple(kinds) -> tuple:
    return kinds if isinstance(kinds, tuple) else (kinds,)


def _kind_names(kinds) -> str:
    return " or ".join(k.__name__ for k in _as_tuple(kinds))


def write_csv(path: Path, columns: Sequence[str], records: Sequence[dict], manifest: dict | None = None) -> Path:
    """A task CSV with extra columns kept (the task readers ignore columns they do not know),
    plus `<file>.manifest.json` when a manifest is given."""
    from negbench.core.io import write_json_atomic
    from negbench.inputs.formats import manifest_path

    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=list(columns), lineterminator="\n")
            writer.writeheader()
            writer.writerows(records)
    if manifest is not None:
        write_json_atomic(manifest_path(path), manifest)
    return path


def require_items(path: Path, items: Sequence, malformed: Sequence, what: str = "entries") -> None:
    """A release file that yields nothing valid is an error, whatever --skip-invalid says."""
    if not items:
        raise BenchmarkFileError(path, None, None, f"no valid {what} ({len(malformed)} malformed)")


def finish_import(out: Path, benchmark: str, written: Sequence[tuple[ImportedTask, int]], skipped: list[dict], *,
                  media_root: Path, header: str, dropped: dict | None = None) -> ImportResult:
    """Write OUT/<benchmark>.yaml registering the task files written ((task, items) pairs) -> the result."""
    tasks = [t for t, _ in written]
    root = str(Path(media_root).expanduser().resolve())
    yaml_path = write_tasks_yaml(out / f"{suite_name(benchmark)}.yaml", benchmark, tasks, media_root=root,
                                 header=header)
    return ImportResult(benchmark, out, yaml_path, tasks, {t.name: n for t, n in written}, skipped, dropped or {})


def suite_name(benchmark: str) -> str:
    """'CC-Neg' -> 'ccneg': the suite, and the YAML file, of an imported benchmark."""
    return benchmark.lower().replace("-", "")


def write_tasks_yaml(path: Path, benchmark: str, tasks: Sequence[ImportedTask], *, media_root: str,
                     header: str) -> Path:
    """The task YAML that registers the imported tasks (`negbench eval --tasks-file PATH`)."""
    import yaml

    entries = []
    for t in tasks:
        entry = {"name": t.name, "kind": t.kind, "modality": "image", "file": t.file, "group": t.group,
                 "benchmark": benchmark, "variant": t.variant, "negated": t.negated,
                 "data_root": media_root, "description": t.description}
        if t.needs_generative:
            entry["needs_generative"] = True
        entries.append(entry)
    doc = {"tasks": entries, "suites": {suite_name(benchmark): [t.name for t in tasks]}}
    text = "".join(f"# {line}\n" for line in header.strip().splitlines())
    return write_text_atomic(path, text + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=100))


def parse_entries(entries: Iterable[tuple[Any, Any]], parse: Callable[[Any, Any], Any],
                  skip_invalid: bool) -> tuple[list, list[dict]]:
    """parse(entry id, record) of every entry of a release file -> (items, skipped): a malformed
    entry raises its BenchmarkFileError, or with skip_invalid is listed and left out."""
    items: list = []
    skipped: list[dict] = []
    for entry, rec in entries:
        try:
            items.append(parse(entry, rec))
        except BenchmarkFileError as err:
            skip_or_raise(err, skip_invalid, skipped)
    return items, skipped


def skip_or_raise(err: BenchmarkFileError, skip_invalid: bool, skipped: list[dict]) -> None:
    if not skip_invalid:
        raise err
    skipped.append(err.as_record())


@dataclass(frozen=True)
class Pair:
    """One image with its true caption and one distractor caption (foil / negated / hard negative)."""
    entry: str          # the id (or line) of the entry in the released file
    media: str          # image path relative to the media root, or absolute
    caption: str
    distractor: str


def write_pair_task(path: Path, pairs: Sequence[Pair], *, correct_first: bool, manifest: dict) -> Path:
    """A binary-MCQ task file from caption/distractor pairs.

    correct_first: put the true caption at index 0. negbench's argmax sends exact ties to index 0,
    so True reproduces a published `argmax([true, distractor])` rule (ties count as correct) and
    False reproduces a published strict `score(true) > score(distractor)` rule (ties count as wrong).
    """
    from negbench.inputs.formats import MCQItem, write_task_file

    items = []
    for row, p in enumerate(pairs, start=1):
        captions = (p.caption, p.distractor) if correct_first else (p.distractor, p.caption)
        items.append(MCQItem(row, p.media, captions, 0 if correct_first else 1))
    manifest = {**manifest, "items": len(items), "entry_ids": [p.entry for p in pairs]}
    return write_task_file(path, "binary-mcq", items, manifest)


def base_manifest(benchmark: str, sources: Sequence[Path], **extra) -> dict:
    from negbench import __version__

    return {"benchmark": benchmark, "sources": [str(Path(s).resolve()) for s in sources],
            "negbench_version": __version__, **extra}
