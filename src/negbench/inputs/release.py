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
    from negbench.inputs.formats import read_task_file

    path = spec.resolve_file(data_root)
    status = TaskStatus(spec.name, spec.group, path)
    if not path.is_file():
        return status
    status.csv_found = True
    pairs = list(path_map or []) + spec.path_map_pairs()
    try:
        data = read_task_file(path, spec.kind, spec.resolve_media_root(data_root), skip_invalid=True,
                              check_media=False, path_map=pairs)
    except NegbenchError as err:
        status.error = str(err)
        return status
    status.rows = len(data.items) + len(data.skipped)
    status.invalid_rows = len(data.skipped)
    status.rewrite = data.path_rewrite
    status.suspicious = suspicious_rows(data.suspicious)
    media = list(dict.fromkeys(str(data.media_path(it.media)) for it in data.items))
    status.media = len(media)
    status.missing = [m for m in media if not Path(m).is_file()]
    return status


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

def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _release_csvs(src: Path) -> dict[str, bytes]:
    """{path inside the release (posix): bytes} of every CSV in a folder or zip."""
    if src.is_dir():
        return {p.relative_to(src).as_posix(): p.read_bytes() for p in sorted(src.rglob("*.csv"))
                if "__MACOSX" not in p.parts}
    if zipfile.is_zipfile(src):
        with zipfile.ZipFile(src) as zf:
            return {n: zf.read(n) for n in sorted(zf.namelist())
                    if n.lower().endswith(".csv") and "__MACOSX" not in n}
    raise ConfigError(f"{src}: not a folder or a zip file of the NegBench CSV release")


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
    other content is refused unless force; CSVs no task names are listed as unmatched."""
    src, root = Path(src).expanduser(), Path(data_root).expanduser()
    if not src.exists():
        raise ConfigError(f"release not found: {src}")
    csvs = _release_csvs(src)
    keys = _spec_keys(specs)
    placed: dict[str, dict] = {}
    unmatched = []
    for rel, data in csvs.items():
        spec = _match(rel, keys)
        if spec is None:
            unmatched.append(rel)
            continue
        digest = _sha256(data)
        if spec.name in placed and placed[spec.name]["sha256"] != digest:
            raise NegbenchError(f"{src}: two different files for task {spec.name}: "
                                f"{placed[spec.name]['from']} and {rel}")
        dest = root / spec.file
        _place(dest, data, digest, force)
        placed[spec.name] = {"task": spec.name, "file": spec.file, "from": rel, "sha256": digest,
                             "bytes": len(data)}
    manifest = {"source": str(src), "data_root": str(root),
                "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                "files": list(placed.values()), "unmatched": unmatched}
    write_json_atomic(root / MANIFEST_NAME, manifest)
    return manifest


def _place(dest: Path, data: bytes, digest: str, force: bool) -> None:
    if dest.exists():
        if _sha256(dest.read_bytes()) == digest:
            return
        if not force:
            raise NegbenchError(f"{dest} exists with other content; pass --force to replace it")
    dest.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(dest) as tmp:
        Path(tmp).write_bytes(data)

