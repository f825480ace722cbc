"""The authors' NegBench release on this machine: `negbench data check` and `data import`.

check: per task, is its CSV where its spec expects it, how many rows, are all media found
(after the foreign-prefix rewrite of negbench.inputs.paths), how many rows look suspicious
(negbench.inputs.audit); then what is missing and where to get it.
import: the CSV release as downloaded (a folder or a zip, any nesting) -> each CSV under the
name its task spec expects, with a manifest of sha256s.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Sequence

from negbench.core.errors import ConfigError, NegbenchError
from negbench.core.io import atomic_path, write_json_atomic
from negbench.inputs.audit import suspicious_rows
from negbench.inputs.download import MEDIA_SOURCES, source_present
from negbench.inputs.tasks import TaskSpec

# Which media source each task group's files point into.
GROUP_SOURCE = {"COCO": "coco", "VOC2007": "voc", "MSR-VTT": "msrvtt", "CheXpert": "chexpert",
                "HardNeg-Syn": "release"}
MANIFEST_NAME = "negbench-release.manifest.json"
MISSING_SHOWN = 3


@dataclass
class TaskStatus:
    name: str
    group: str
    file: Path
    csv_found: bool = False
    rows: int = 0
    invalid_rows: int = 0
    media: int = 0                                   # unique media files named by the rows
    missing: list[str] = field(default_factory=list)  # unique media not found (resolved paths)
    rewrite: dict | list | None = None
    suspicious: int = 0
    error: str | None = None

    @property
    def ready(self) -> bool:
        return self.csv_found and self.error is None and self.rows > 0 and not self.missing

    def summary(self) -> str:
        """One line: 'ready', or what stops the task."""
        if not self.csv_found:
            return f"CSV missing: {self.file}"
        if self.error:
            return f"media not found: {self.error}"
        parts = [f"{self.rows} rows", f"media {self.media - len(self.missing)}/{self.media} found"]
        if self.invalid_rows:
            parts.append(f"{self.invalid_rows} invalid rows")
        if self.rewrite:
            rws = self.rewrite if isinstance(self.rewrite, list) else [self.rewrite]
            parts.append("paths " + "; ".join(f"{r['from']} -> {r['to']} ({r['source']})" for r in rws))
        parts.append(f"{self.suspicious} suspicious rows")
        head = "ready" if self.ready else "media missing"
        text = f"{head}: " + ", ".join(parts)
        if self.missing:
            text += "; e.g. " + ", ".join(self.missing[:MISSING_SHOWN])
        return text


def check_task(spec: TaskSpec, data_root, path_map: Sequence[tuple[str, str]] | None = None) -> TaskStatus:
    """Status of one task under data_root (reads the CSV, stats every media file once)."""
    path = spec.resolve_file(data_root)
    status = TaskStatus(spec.name, spec.group, path)
    if not path.is_file():
        return status
    status.csv_found = True
    pairs = list(path_map or []) + spec.path_map_pairs()
    try:
        data = _read_for_check(spec, path, data_root, pairs)
    except NegbenchError as err:
        status.error = str(err)
        return status
    status.rows = len(data.items) + len(data.skipped)
    status.invalid_rows = len(data.skipped)
    status.rewrite = data.path_rewrite
    status.suspicious = suspicious_rows(data.suspicious)
    media = list(dict.fromkeys(str(data.media_path(m)) for it in data.items
                               for m in (it.media if isinstance(it.media, tuple) else (it.media,))))
    status.media = len(media)
    status.missing = [m for m in media if not Path(m).is_file()]
    return status


def _read_for_check(spec: TaskSpec, path: Path, data_root, path_map):
    """The task file's rows by its kind's layout, media not checked (check_task stats them)."""
    from negbench.inputs.formats import TaskData, read_task_file
    from negbench.inputs.selection import read_selection_file

    root = spec.resolve_media_root(data_root)
    if spec.task_kind.layout == "candidates":   # t2i-selection: one caption, K candidate images
        items, skipped, sel_root = read_selection_file(path, root, skip_invalid=True, check_media=False)
        return TaskData(spec.kind, path, sel_root, items=items, skipped=skipped)
    return read_task_file(path, spec.kind, root, skip_invalid=True, check_media=False, path_map=path_map)


def check_release(specs: Sequence[TaskSpec], data_root, path_map=None) -> list[TaskStatus]:
    return [check_task(s, data_root, path_map) for s in specs]


def _what_to_get(statuses: Sequence[TaskStatus], data_root) -> list[str]:
    """For each source a not-ready task needs and the data root lacks: what, and from where."""
    need: dict[str, list[str]] = {}
    for st in statuses:
        if st.ready:
            continue
        media = GROUP_SOURCE.get(st.group)
        if not st.csv_found:
            need.setdefault("release", []).append(st.name)
        if media and media != "release" and not source_present(MEDIA_SOURCES[media], data_root):
            need.setdefault(media, []).append(st.name)
    lines = []
    for source, names in need.items():
        src = MEDIA_SOURCES[source]
        lines.append(f"  {src.title} (for {len(names)} tasks): {src.how_to_get}")
    return lines


def format_check(statuses: Sequence[TaskStatus], data_root) -> str:
    """The text `negbench data check` prints: a line per task, a summary line, what to get."""
    width = max([len(s.name) for s in statuses] + [4])
    lines = [f"{s.name:<{width}}  {s.summary()}" for s in statuses]
    ready = [s for s in statuses if s.ready]
    missing = [s.name for s in statuses if not s.ready]
    summary = f"{len(ready)}/{len(statuses)} tasks ready"
    if missing:
        summary += f"; {len(missing)} missing: " + ", ".join(missing)
    lines += ["", summary]
    get = _what_to_get(statuses, data_root)
    if get:
        lines += ["To get what is missing:"] + get
    return "\n".join(lines)


# ---------------------------------------------------------------- import

MAX_MEMBER_BYTES = 256 << 20   # one release CSV (the largest published one is a few MB)
MAX_TOTAL_BYTES = 1 << 30      # all CSVs of one import together
_COPY_CHUNK = 1 << 20


class ReleaseArchiveError(NegbenchError):
    """A release zip or folder that cannot be imported: a corrupt or oversized member."""


def _release_members(src: Path):
    """(path inside the release (posix), opener) of every CSV in a folder or zip, sorted; the
    opener gives a binary stream, so no member is ever held in memory whole."""
    if src.is_dir():
        return [(p.relative_to(src).as_posix(), p.stat().st_size, lambda p=p: open(p, "rb"))
                for p in sorted(src.rglob("*.csv")) if "__MACOSX" not in p.parts]
    if zipfile.is_zipfile(src):
        try:
            zf = zipfile.ZipFile(src)
            infos = sorted((i for i in zf.infolist() if i.filename.lower().endswith(".csv")
                            and "__MACOSX" not in i.filename and not i.is_dir()), key=lambda i: i.filename)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
            raise ReleaseArchiveError(f"{src}: unreadable zip ({exc})") from None
        return [(i.filename, i.file_size, lambda i=i: zf.open(i)) for i in infos]
    raise ConfigError(f"{src}: not a folder or a zip file of the NegBench CSV release")


def _copy_capped(src: Path, rel: str, opener, tmp: Path, budget: int) -> tuple[str, int]:
    """Stream one member into `tmp` -> (sha256, bytes); refused past MAX_MEMBER_BYTES or `budget`
    (a zip bomb stops there), and every archive error is one ReleaseArchiveError naming the member."""
    import zlib

    h, n = hashlib.sha256(), 0
    limit = min(MAX_MEMBER_BYTES, budget)
    try:
        with opener() as f, open(tmp, "wb") as out:
            while block := f.read(_COPY_CHUNK):
                n += len(block)
                if n > limit:
                    raise ReleaseArchiveError(f"{src}: {rel}: over {limit >> 20} MiB unpacked "
                                              f"({'per file' if limit == MAX_MEMBER_BYTES else 'in all'}); "
                                              f"not a NegBench release CSV (a zip bomb?)")
                h.update(block)
                out.write(block)
    except ReleaseArchiveError:
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as exc:
        raise ReleaseArchiveError(f"{src}: {rel}: corrupt archive member ({exc})") from None
    return h.hexdigest(), n


def _spec_keys(specs: Sequence[TaskSpec]) -> dict[tuple[str, ...], TaskSpec]:
    """Match key -> spec: the file name, or folder/file name where several specs share a name
    (the per-finding CheXpert files)."""
    names: dict[str, int] = {}
    for s in specs:
        names[PurePosixPath(s.file).name] = names.get(PurePosixPath(s.file).name, 0) + 1
    keys = {}
    for s in specs:
        parts = PurePosixPath(s.file).parts
        keys[parts[-1:] if names[parts[-1]] == 1 else parts[-2:]] = s
    return keys


def _match(rel: str, keys: dict[tuple[str, ...], TaskSpec]) -> TaskSpec | None:
    parts = PurePosixPath(rel).parts
    return keys.get(parts[-2:]) or keys.get(parts[-1:])


def import_release(src, data_root, specs: Sequence[TaskSpec], *, force: bool = False) -> dict:
    """Place each CSV of the release under data_root/<its spec's file>; write and return the
    manifest (data_root/negbench-release.manifest.json). A destination that already holds
    other content is refused unless force; CSVs no task names are listed as unmatched.

    Members are streamed (never read whole) into a staging folder under data_root, each within
    MAX_MEMBER_BYTES and all within MAX_TOTAL_BYTES; only when every member has been read and
    checked are they moved into place, so a corrupt or oversized archive leaves nothing behind."""
    import shutil
    import tempfile

    src, root = Path(src).expanduser(), Path(data_root).expanduser()
    if not src.exists():
        raise ConfigError(f"release not found: {src}")
    members = _release_members(src)
    keys = _spec_keys(specs)
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".negbench-import-", dir=root))
    try:
        placed, staged, unmatched = _stage(src, members, keys, staging)
        todo = [name for name, info in placed.items() if _needs_write(root / info["file"], info["sha256"], force)]
        for name in todo:  # every conflict is known before the first file moves
            _place(root / placed[name]["file"], staged[name])
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    manifest = {"source": str(src), "data_root": str(root),
                "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                "files": list(placed.values()), "unmatched": unmatched}
    write_json_atomic(root / MANIFEST_NAME, manifest)
    return manifest


def _stage(src: Path, members, keys, staging: Path) -> tuple[dict, dict, list]:
    """Stream every matched member into `staging` -> (manifest entries, staged paths, unmatched)."""
    placed: dict[str, dict] = {}
    staged: dict[str, Path] = {}
    unmatched, total = [], 0
    for k, (rel, declared, opener) in enumerate(members):
        spec = _match(rel, keys)
        if spec is None:
            unmatched.append(rel)
            continue
        if declared > MAX_MEMBER_BYTES:
            raise ReleaseArchiveError(f"{src}: {rel}: {declared} bytes unpacked, over {MAX_MEMBER_BYTES >> 20} "
                                      f"MiB per file; not a NegBench release CSV")
        tmp = staging / f"{k:05d}.csv"
        try:
            digest, n = _copy_capped(src, rel, opener, tmp, MAX_TOTAL_BYTES - total)
        except OSError as exc:  # a full disk: name the folder being written, not a temp file
            raise OSError(exc.errno, exc.strerror or str(exc), str(staging.parent / spec.file)) from None
        total += n
        if spec.name in placed:
            if placed[spec.name]["sha256"] != digest:
                raise NegbenchError(f"{src}: two different files for task {spec.name}: "
                                    f"{placed[spec.name]['from']} and {rel}")
            continue
        staged[spec.name] = tmp
        placed[spec.name] = {"task": spec.name, "file": spec.file, "from": rel, "sha256": digest, "bytes": n}
    return placed, staged, unmatched


def _needs_write(dest: Path, digest: str, force: bool) -> bool:
    from negbench.core.io import sha256_file

    if not dest.exists():
        return True
    if sha256_file(dest) == digest:
        return False
    if not force:
        raise NegbenchError(f"{dest} exists with other content; pass --force to replace it")
    return True


def _place(dest: Path, staged: Path) -> None:
    import os

    dest.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(dest) as tmp:
        os.replace(staged, tmp)
