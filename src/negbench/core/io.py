"""Atomic writes and small file helpers shared by every writer in the package."""
from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Iterator


@functools.lru_cache(maxsize=1)
def _current_umask() -> int:
    # the only portable way to read the umask is to set it and put it back; done once, since
    # the umask is process-wide and another thread could create a file in between
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path next to `path`; rename it onto `path` only if the block succeeds.

    Readers never see a half-written file, and an interrupted job leaves no output, so
    "the output exists" can safely mean "this step is done" (resumable pipelines rely on it).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    # mkstemp makes the file 0600; outputs (reports, results, checkpoints) get the usual
    # permissions instead, as open() would give them, so colleagues can read them
    os.chmod(tmp, 0o666 & ~_current_umask())
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except OSError as exc:
        # a full disk fails in write(), whose error names no file: name the output, not the temp
        if exc.filename is None or str(exc.filename) == str(tmp_path):
            raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc
        raise
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text_atomic(path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_bytes_atomic(path, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_json_atomic(path, obj: Any) -> Path:
    """Deterministic JSON (sorted keys, fixed indent) so same inputs give identical bytes."""
    return write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def read_json(path) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def sha256_file(path, chunk: int = 1 << 20) -> str:
    """sha256 of a file's bytes (task files in fingerprints and manifests)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def stable_hash(*parts: Any) -> str:
    """Short hash of JSON-able parts; used for cache keys."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:24]


def safe_file_stem(name: str) -> str:
    """A name usable as one file name inside a folder: no separators, no '..', no leading dot;
    a name that had to change gets a hash suffix so two names never collide."""
    import re

    stem = re.sub(r"[^A-Za-z0-9._@+-]+", "_", name).strip("._") or "unnamed"
    if stem != name:
        stem = f"{stem[:80]}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"
    return stem


def git_hash() -> str | None:
    """The package's git commit, when it runs from a checkout (recorded in results)."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True,
                             text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None
