"""Content digests of files, remembered so a warm run does not re-read unchanged files.

A digest is blake2b of the file bytes. It is memoised in a small SQLite index keyed by
(path, size, mtime_ns, ctime_ns, inode): an edit that keeps the size and puts the mtime back
still moves the ctime (the kernel sets it on every write and utime, and no user call can
restore it), so the memo never hands out the digest of older bytes.
"""
from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import sqlite3
import threading
from pathlib import Path

log = logging.getLogger(__name__)
INDEX_ENV = "NEGBENCH_HASH_INDEX"
_CHUNK = 1 << 20
_lock = threading.Lock()


INDEX_NAME = "file-digests.sqlite"
CACHE_ENV = "NEGBENCH_CACHE_DIR"   # the embedding cache's folder: the index lives beside it
_cache_dir_override: Path | None = None


def use_cache_dir(cache_dir) -> None:
    """Keep the digest index in `cache_dir` (a command's --cache-dir) for the rest of the
    process; None goes back to the environment's choice."""
    global _cache_dir_override
    _cache_dir_override = Path(cache_dir).expanduser() if cache_dir else None


def default_index_path() -> Path:
    """$NEGBENCH_HASH_INDEX; else in the cache folder a command was given (use_cache_dir), else in
    $NEGBENCH_CACHE_DIR; else ~/.cache/negbench/file-digests.sqlite. Nothing is written to the
    home folder when the user said where caches go."""
    env = os.environ.get(INDEX_ENV)
    if env:
        return Path(env).expanduser()
    cache = _cache_dir_override or (Path(os.environ[CACHE_ENV]).expanduser() if os.environ.get(CACHE_ENV) else None)
    return cache / INDEX_NAME if cache is not None else Path.home() / ".cache" / "negbench" / INDEX_NAME


def hash_bytes_of(path: Path) -> str:
    h = hashlib.blake2b(digest_size=20)
    with open(path, "rb") as f:
        while block := f.read(_CHUNK):
            h.update(block)
    return h.hexdigest()


def _stamp(path: Path) -> tuple:
    st = path.stat()
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


class DigestIndex:
    """path -> digest, valid while the file's stat stamp is unchanged. Shared safely by
    concurrent processes (SQLite locking); an unusable index degrades to hashing every time."""

    def __init__(self, path=None):
        self.path = Path(path) if path is not None else default_index_path()
        self._db: sqlite3.Connection | None = None
        self._broken = False

    def _connect(self) -> sqlite3.Connection | None:
        if self._db is None and not self._broken:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                db = sqlite3.connect(str(self.path), timeout=30, check_same_thread=False)
                db.execute("CREATE TABLE IF NOT EXISTS digests (path TEXT PRIMARY KEY, stamp TEXT, digest TEXT)")
                self._db = db
            except (OSError, sqlite3.Error) as exc:
                log.warning("file digest index %s unusable (%s); hashing without memo", self.path, exc)
                self._broken = True
        return self._db

    def digest(self, path) -> str:
        path = Path(os.path.abspath(path))
        stamp = repr(_stamp(path))
        with _lock:
            db = self._connect()
            if db is not None:
                with contextlib.suppress(sqlite3.Error):
                    row = db.execute("SELECT stamp, digest FROM digests WHERE path = ?", (str(path),)).fetchone()
                    if row is not None and row[0] == stamp:
                        return row[1]
        digest = hash_bytes_of(path)
        # a file changed while we read it gets no memo: its next stat differs, so it is re-read
        if repr(_stamp(path)) == stamp:
            self._remember(path, stamp, digest)
        return digest

    def _remember(self, path: Path, stamp: str, digest: str) -> None:
        with _lock:
            db = self._connect()
            if db is None:
                return
            try:
                with db:
                    db.execute("INSERT OR REPLACE INTO digests VALUES (?, ?, ?)", (str(path), stamp, digest))
            except sqlite3.Error as exc:
                log.debug("digest index write failed: %s", exc)


_default: DigestIndex | None = None


def file_digest(path, index: DigestIndex | None = None) -> str:
    """blake2b content digest of one file (memoised in the default index unless one is given)."""
    global _default
    if index is None:
        if _default is None or _default.path != default_index_path():
            _default = DigestIndex()
        index = _default
    return index.digest(path)


def files_digest(paths, root=None, index: DigestIndex | None = None) -> str:
    """One digest over several files: their names (relative to root) and contents, in name order."""
    h = hashlib.blake2b(digest_size=20)
    for p in sorted(Path(x) for x in paths):
        name = str(p.relative_to(root)) if root is not None else p.name
        h.update(name.encode() + b"\0" + file_digest(p, index).encode() + b"\0")
    return h.hexdigest()
