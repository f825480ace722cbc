"""Fingerprints: what a stored output was computed from, to tell a reusable output from a stale one."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def folder_or_file_digest(path) -> str | None:
    """Content digest of a data file or folder (every file in it), None when it does not exist."""
    from negbench.core.filehash import file_digest, files_digest

    if path is None:
        return None
    p = Path(path).expanduser()
    if p.is_file():
        return file_digest(p)
    if p.is_dir():
        return files_digest([f for f in p.rglob("*") if f.is_file() and not f.name.startswith(".")], root=p)
    return None


def differing_keys(stored: dict, current: dict) -> list[str]:
    """'key: old -> new' for every key whose value differs (JSON-normalised, so 1e-5 == 1e-05)."""
    def norm(v: Any) -> str:
        return json.dumps(v, sort_keys=True, default=str)

    out = []
    for key in sorted(set(stored) | set(current)):
        old, new = stored.get(key, "<absent>"), current.get(key, "<absent>")
        if norm(old) != norm(new):
            out.append(f"{key}: {str(old)[:80]} -> {str(new)[:80]}")
    return out
