"""The embedding cache keys on content and never serves a broken or stale shard."""
from __future__ import annotations

import logging

import numpy as np
import pytest

from negbench.core.filehash import DigestIndex
from negbench.evaluation.cache import EmbeddingCache
from negbench.evaluation.engine import evaluate_task


@pytest.fixture
def binary_spec(sample_copy):
    root, specs = sample_copy
    return specs["sample_binary"], root


def test_truncated_shard_is_dropped_with_warning_and_recomputed(adapter, binary_spec, tmp_path, caplog):
    spec, _ = binary_spec
    kw = dict(cache_dir=tmp_path / "cache", progress=False, bootstrap_samples=5)
    first = evaluate_task(spec, adapter, **kw)
    shards = sorted((tmp_path / "cache").glob("*/shard-*.npz"))
    assert len(shards) == 2  # one media, one text namespace
    for shard in shards:
        shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    with caplog.at_level(logging.WARNING, logger="negbench.evaluation.cache"):
        again = evaluate_task(spec, adapter, **kw)
    assert sum("is corrupt" in r.getMessage() and "recomputed" in r.getMessage() for r in caplog.records) == 2
    assert again["cache"]["media_hits"] == 0 and again["cache"]["text_hits"] == 0
    assert again["metrics"] == first["metrics"]
    assert evaluate_task(spec, adapter, **kw)["cache"]["media_misses"] == 0  # rewritten, good again


def test_flipped_bytes_in_a_shard_fail_the_checksum(tmp_path, caplog):
    cache = EmbeddingCache(tmp_path, ["x"])
    cache.put(["a", "b"], np.ones((2, 4), dtype=np.float32))
    shard = next(cache.dir.glob("shard-*.npz"))
    # rewrite with the same checksum but other embeddings: a silent bit rot
    with np.load(shard) as z:
        keys, check = z["keys"], z["check"]
    with open(shard, "wb") as f:
        np.savez(f, keys=keys, emb=np.zeros((2, 4), dtype=np.float32), check=check)
    with caplog.at_level(logging.WARNING):
        emb, found = cache.get(["a", "b"])
    assert not found.any() and "checksum mismatch" in caplog.text and not shard.exists()


def test_undecodable_new_image_while_cache_is_warm(adapter, binary_spec, tmp_path):
    spec, root = binary_spec
    kw = dict(cache_dir=tmp_path / "cache", progress=False, bootstrap_samples=5)
    evaluate_task(spec, adapter, **kw)
    (root / "images" / "img3.png").write_bytes(b"\x89PNG\r\n\x1a\n this is no longer an image")
    res = evaluate_task(spec, adapter, **kw, skip_invalid=True)
    assert res["counts"]["skipped"] >= 1 and res["cache"]["media_hits"] == 11
    assert all("img3.png" in r["reason"] for r in res["skipped_rows"])


def test_cache_dir_that_is_a_file_warns_and_still_evaluates(adapter, binary_spec, tmp_path, caplog):
    spec, _ = binary_spec
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    with caplog.at_level(logging.WARNING, logger="negbench.evaluation.cache"):
        res = evaluate_task(spec, adapter, cache_dir=blocker, progress=False, bootstrap_samples=5)
    assert res["counts"]["items"] > 0 and "not written" in caplog.text


def test_digest_index_memo_survives_runs_and_sees_restored_mtime_edits(tmp_path):
    import os

    f = tmp_path / "a.bin"
    f.write_bytes(b"one")
    index = DigestIndex(tmp_path / "idx.sqlite")
    d1 = index.digest(f)
    assert DigestIndex(tmp_path / "idx.sqlite").digest(f) == d1  # a new process reads the memo
    st = f.stat()
    f.write_bytes(b"two")
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert DigestIndex(tmp_path / "idx.sqlite").digest(f) != d1
