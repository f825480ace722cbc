"""The on-disk embedding cache: keyed by content, verified on read.

- media: blake2b of the file bytes (negbench.core.filehash, memoised per path + stat stamp),
  so an edit is seen even when the size and mtime are put back, and a copy of a file
  shares its embedding;
- text: sha256 of the caption string;
- namespace: the model's identity (a digest of everything that changes its outputs),
  preprocessing, precision and media kind.
A shard that cannot be read or whose checksum does not match is dropped with a warning and
its embeddings are recomputed; a cache that cannot be written only costs speed (warning).
"""
from __future__ import annotations

import contextlib
import hashlib
import logging
import time
import uuid
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from negbench.core.errors import NegbenchError
from negbench.core.filehash import file_digest
from negbench.core.io import atomic_path, stable_hash, write_json_atomic

log = logging.getLogger(__name__)
MAX_SHARDS = 8  # compact a cache namespace into one shard beyond this many


def _checksum(keys: np.ndarray, emb: np.ndarray) -> str:
    h = hashlib.blake2b(digest_size=16)
    h.update("\n".join(keys.tolist()).encode())
    h.update(str(emb.shape).encode())
    h.update(np.ascontiguousarray(emb, dtype=np.float32).tobytes())
    return h.hexdigest()


class EmbeddingCache:
    """Embeddings of one (model identity, preprocessing, input kind) on disk.

    A namespace folder holds shards `shard-*.npz`, each {keys: (n,) str, emb: (n, D) float32,
    check: blake2b of both}, written atomically; a run that computes new embeddings adds one
    shard, and the namespace is compacted into one shard when it has more than MAX_SHARDS.
    """

    def __init__(self, root, namespace_parts: Sequence[Any]):
        self.dir = Path(root).expanduser() / stable_hash(*namespace_parts)
        self.namespace_parts = [str(p) for p in namespace_parts]
        self._warned_write = False

    def _shards(self) -> list[Path]:
        return sorted(self.dir.glob("shard-*.npz")) if self.dir.is_dir() else []

    def _read_shard(self, shard: Path) -> tuple[np.ndarray, np.ndarray] | None:
        """(keys, emb) of a verified shard; None (shard dropped) when it is corrupt."""
        try:
            with np.load(shard, allow_pickle=False) as z:
                keys, emb, check = z["keys"], z["emb"], str(z["check"])
        except FileNotFoundError:  # removed by a concurrent compaction
            return None
        except Exception as exc:  # noqa: BLE001 - truncated zip, bad header, missing array: all "corrupt"
            return self._drop(shard, f"{type(exc).__name__}: {exc}")
        if keys.ndim != 1 or emb.ndim != 2 or len(keys) != len(emb) or emb.dtype != np.float32:
            return self._drop(shard, f"bad shapes keys {keys.shape} emb {emb.shape} {emb.dtype}")
        if _checksum(keys, emb) != check:
            return self._drop(shard, "checksum mismatch")
        return keys, emb

    def _drop(self, shard: Path, why: str) -> None:
        log.warning("embedding cache shard %s is corrupt (%s); dropped, its embeddings are recomputed",
                    shard, why)
        with contextlib.suppress(OSError):
            shard.unlink()
        return None

    def get(self, keys: Sequence[str]) -> tuple[np.ndarray | None, np.ndarray]:
        """(embeddings (n, D) with rows for found keys filled, found mask (n,))."""
        found = np.zeros(len(keys), dtype=bool)
        out = None
        want = {k: i for i, k in enumerate(keys)}
        for shard in self._shards():
            if found.all():
                break
            loaded = self._read_shard(shard)
            if loaded is None:
                continue
            skeys, emb = loaded
            pairs = [(want[k], r) for r, k in enumerate(skeys.tolist()) if k in want and not found[want[k]]]
            if not pairs:
                continue
            if out is not None and emb.shape[1] != out.shape[1]:
                self._drop(shard, f"width {emb.shape[1]} differs from the namespace's {out.shape[1]}")
                continue
            dst, src = np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])
            if out is None:
                out = np.zeros((len(keys), emb.shape[1]), dtype=np.float32)
            out[dst] = emb[src]
            found[dst] = True
        return out, found

    def put(self, keys: Sequence[str], emb: np.ndarray) -> None:
        if not len(keys):
            return
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            meta = self.dir / "namespace.json"
            if not meta.exists():
                write_json_atomic(meta, {"parts": self.namespace_parts})
            self._write_shard(np.asarray(keys, dtype=str), np.asarray(emb, dtype=np.float32))
            shards = self._shards()
            if len(shards) > MAX_SHARDS:
                self._compact(shards)
        except OSError as exc:  # read-only folder, a file in the way, disk full: results stay right
            if not self._warned_write:
                log.warning("embedding cache %s not written (%s); results are unaffected, reruns recompute",
                            self.dir, exc.strerror or exc)
                self._warned_write = True

    def _write_shard(self, keys: np.ndarray, emb: np.ndarray) -> Path:
        path = self.dir / f"shard-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.npz"
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, keys=keys, emb=emb, check=np.array(_checksum(keys, emb)))
        return path

    def _compact(self, shards: list[Path]) -> None:
        keys, embs, seen = [], [], set()
        for shard in shards:
            loaded = self._read_shard(shard)
            if loaded is None:
                continue
            k, e = loaded
            if embs and e.shape[1] != embs[0].shape[1]:
                continue
            keep = [i for i, key in enumerate(k.tolist()) if key not in seen]
            seen.update(k[keep].tolist())
            keys.append(k[keep])
            embs.append(e[keep])
        if keys:
            self._write_shard(np.concatenate(keys), np.concatenate(embs))
        for shard in shards:
            with contextlib.suppress(OSError):
                shard.unlink()


CACHE_ENV = "NEGBENCH_CACHE_DIR"


def default_cache_dir() -> Path:
    """$NEGBENCH_CACHE_DIR, else ~/.cache/negbench/embeddings."""
    import os

    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "negbench" / "embeddings"


def media_key(path: Path) -> str:
    """Content key of a media file (blake2b of its bytes, memoised per path + stat stamp)."""
    try:
        return "b2:" + file_digest(path)
    except OSError as exc:
        # unreadable now: a key no cache holds, so decoding reports the real problem for its row
        return f"unreadable:{path}:{exc.errno}"


def text_key(caption: str) -> str:
    return hashlib.sha256(caption.encode("utf-8")).hexdigest()[:32]
