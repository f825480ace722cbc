"""Where a task file's media paths point on this machine: one decision per file.

The published NegBench CSVs carry absolute paths from their writers' machines
(`/mnt/hhc_data/NegBench/images/val2017/X.jpg`, `/data/healthy-ml/...`). Rather than asking
users to rewrite ~20,000 paths, a `PathResolver` is decided once per file:

- a relative path resolves against the data root;
- an absolute path that exists is used as it is;
- an absolute path that does not exist has its foreign prefix replaced by the folder under
  the data root where its suffix exists. The prefix is found from the first missing paths
  (every suffix of the path is tried under the data root, the folders users naturally keep the
  datasets in (`VOCdevkit/`, `CheXpert-v1.0-small/`, `MSRVTT/videos/all/`, ...), then every
  folder under the data root down to SEARCH_DEPTH levels, so `msrvtt/TestVideo/` is found
  too) and must hold for all of them; zero or several different matches is an error that
  names the file, the foreign prefix and the folders tried.

`--path-map OLD=NEW` rewrites win over the automatic search.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Sequence

from negbench.core.errors import ConfigError, TaskFileError

# Folders (relative to the data root) where users keep the datasets whose published paths
# name another folder: VOC as VOCdevkit/VOC2007, CheXpert as CheXpert-v1.0-small/valid,
# MSR-VTT's test videos as MSRVTT/videos/all or TestVideo, COCO as coco/val2017.
NATURAL_ROOTS = ("images", "videos", "VOCdevkit", "CheXpert-v1.0-small", "chexpert", "coco", "COCO",
                 "MSRVTT/videos/all", "MSRVTT/videos", "MSRVTT", "TestVideo", "videos/all",
                 "msrvtt/videos")
PROBE_PATHS = 20  # missing absolute paths used to decide (and cross-check) the rewrite
SEARCH_DEPTH = 4     # folder levels under the data root searched for a file's tail
SEARCH_FOLDERS = 5000  # at most this many folders are tried (a data root may hold whole datasets)


@dataclass(frozen=True)
class PathRewrite:
    """Replace the leading `old` of a media path by `new`."""
    old: str
    new: str
    source: str  # "auto" | "path-map"

    def applies(self, media: str) -> bool:
        return media == self.old or media.startswith(self.old.rstrip("/") + "/")

    def apply(self, media: str) -> Path:
        return Path(self.new) / media[len(self.old.rstrip("/")):].lstrip("/")

    def to_dict(self) -> dict:
        return {"from": self.old, "to": self.new, "source": self.source}


@dataclass
class PathResolver:
    """Media string as written in a task file -> the file on this machine."""
    data_root: Path
    rewrites: list[PathRewrite] = field(default_factory=list)

    def resolve(self, media: str) -> Path:
        for rw in self.rewrites:
            if rw.applies(media):
                return rw.apply(media)
        p = Path(media).expanduser()
        return p if p.is_absolute() else Path(self.data_root) / p

    def record(self) -> dict | list | None:
        """What the results JSON stores as `path_rewrite`: one rewrite, a list, or None."""
        if not self.rewrites:
            return None
        return self.rewrites[0].to_dict() if len(self.rewrites) == 1 else [r.to_dict() for r in self.rewrites]


def parse_path_map(entries: Sequence[str] | None) -> list[tuple[str, str]]:
    """['OLD=NEW', ...] (the --path-map flag) -> [(OLD, NEW)]; ConfigError on a malformed entry."""
    pairs = []
    for entry in entries or []:
        old, sep, new = entry.partition("=")
        if not sep or not old.strip() or not new.strip():
            raise ConfigError(f"--path-map {entry!r}: expected OLD=NEW, e.g. "
                              f"/mnt/hhc_data/NegBench/images=/data/negbench/images")
        pairs.append((old.strip(), str(Path(new.strip()).expanduser())))
    return pairs


def _candidate_bases(data_root: Path) -> list[Path]:
    """The data root, the natural dataset folders, then every folder below (breadth first, sorted,
    hidden ones left out), bounded in depth and number."""
    bases = [data_root] + [data_root / r for r in NATURAL_ROOTS if (data_root / r).is_dir()]
    seen = {os.path.realpath(b) for b in bases}
    level = [data_root]
    for _ in range(SEARCH_DEPTH):
        below = []
        for folder in level:
            try:
                subdirs = sorted(e.path for e in os.scandir(folder) if e.is_dir() and not e.name.startswith("."))
            except OSError:
                continue
            below += [Path(d) for d in subdirs]
        for d in below:
            if len(bases) >= SEARCH_FOLDERS:
                return bases
            if os.path.realpath(d) not in seen:
                seen.add(os.path.realpath(d))
                bases.append(d)
        level = below
    return bases


def _matches(media: str, bases: Sequence[Path]) -> dict[str, PathRewrite]:
    """Every rewrite (foreign prefix -> local folder) under which `media` exists, keyed by the
    real file it reaches; the longest suffix wins among rewrites reaching the same file."""
    parts = PurePosixPath(media).parts
    found: dict[str, PathRewrite] = {}
    for k in range(1, len(parts)):          # shortest prefix first = longest suffix first
        suffix = Path(*parts[k:])
        prefix = str(PurePosixPath(*parts[:k]))
        for base in bases:
            target = base / suffix
            if target.is_file():
                found.setdefault(os.path.realpath(target), PathRewrite(prefix, str(base), "auto"))
    return found


def _missing_absolute(media_values: Sequence[tuple[int, str]], limit: int) -> list[tuple[int, str]]:
    out = []
    for row, media in media_values:
        if media.startswith("/") and not Path(media).exists():
            out.append((row, media))
            if len(out) >= limit:
                break
    return out


def find_rewrite(file, column: str, media_values: Sequence[tuple[int, str]], data_root) -> PathRewrite | None:
    """The one automatic prefix rewrite for a file, or None when no absolute path is missing.

    media_values: (row, media) pairs in file order. Raises TaskFileError (file, row, column)
    when no folder under data_root holds the first missing path's suffix, or when several
    rewrites reaching different files fit every probed path.
    """
    data_root = Path(data_root).expanduser()
    probes = _missing_absolute(media_values, PROBE_PATHS)
    if not probes:
        return None
    bases = _candidate_bases(data_root)
    row, first = probes[0]
    candidates = list(_matches(first, bases).values())
    tried = ", ".join(str(b) for b in bases[:8]) + (f" and {len(bases) - 8} more below it" if len(bases) > 8 else "")
    if not candidates:
        raise TaskFileError(file, row, column,
                            f"media file not found: {first}; no folder under the data root holds any suffix "
                            f"of it (foreign prefix {str(PurePosixPath(first).parent)!r}; folders tried: {tried}). "
                            f"Get the media (`negbench data check` says from where) or pass --path-map OLD=NEW")
    fitting = [c for c in candidates if all(c.applies(m) and c.apply(m).is_file() for _, m in probes)]
    if len(fitting) == 1:
        return fitting[0]
    if not fitting:
        bad_row, bad = next((r, m) for r, m in probes if not candidates[0].apply(m).is_file())
        raise TaskFileError(file, bad_row, column,
                            f"media file not found: {bad}; the rewrite {candidates[0].old!r} -> "
                            f"{candidates[0].new!r} that fits row {row} does not fit this row (folders tried: "
                            f"{tried}); pass --path-map OLD=NEW")
    options = "; ".join(f"{c.old!r} -> {c.new!r}" for c in fitting)
    raise TaskFileError(file, row, column,
                        f"ambiguous media location for {first}: several folders under the data root hold it "
                        f"({options}); pass --path-map OLD=NEW to choose")


def build_resolver(file, column: str, media_values: Sequence[tuple[int, str]], data_root,
                   path_map: Sequence[tuple[str, str]] | None = None) -> PathResolver:
    """Decide how a file's media paths resolve: --path-map entries that match its paths
    (longest OLD first), else the automatic rewrite of find_rewrite."""
    data_root = Path(data_root).expanduser()
    mapped = sorted((PathRewrite(o, n, "path-map") for o, n in (path_map or [])),
                    key=lambda r: len(r.old), reverse=True)
    used = [r for r in mapped if any(r.applies(m) for _, m in media_values)]
    if used:
        return PathResolver(data_root, used)
    auto = find_rewrite(file, column, media_values, data_root)
    return PathResolver(data_root, [auto] if auto else [])
