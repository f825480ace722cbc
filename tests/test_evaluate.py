"""The evaluation engine: equals a naive per-question loop; caches; writes the contract's outputs."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from negbench.evaluation.engine import EmbeddingCache, evaluate_task, evaluate_tasks, model_slug, result_paths
from negbench.inputs.formats import read_task_file
from negbench.inputs.media import load_image, sample_video_frames, uniform_indices
from negbench.inputs.tasks import load_task_file


@pytest.fixture(scope="module")
def specs(sample_tasks):
    return {s.name: s for s in load_task_file(sample_tasks)}


def naive_mcq_accuracy(adapter, spec, frames=4):
    """The published evaluation's shape: per question, encode its media and its options again."""
    data = read_task_file(spec.resolve_file(), spec.kind, spec.resolve_media_root())
    preds = []
    with torch.inference_mode():
        for it in data.items:
            path = data.media_path(it.media)
            if spec.modality == "video":
                imgs = sample_video_frames(path, frames)
                f = torch.nn.functional.normalize(adapter.encode_images(torch.stack([adapter.preprocess(i) for i in imgs])), dim=-1)
                img = f.mean(0, keepdim=True)
            else:
                img = adapter.encode_images(adapter.preprocess(load_image(path)).unsqueeze(0))
            txt = adapter.encode_texts(list(it.captions))
            img = img / img.norm(dim=-1, keepdim=True)
            txt = txt / txt.norm(dim=-1, keepdim=True)
            preds.append(int((img @ txt.T).argmax()))
    correct = np.array([it.correct_answer for it in data.items])
    return np.array(preds), correct


def test_mcq_engine_equals_per_question_loop(adapter, specs, tmp_path):
    spec = specs["sample_mcq"]
    res = evaluate_task(spec, adapter, results_dir=tmp_path, batch_size=5, progress=False,
                        bootstrap_samples=100)
    assert res["counts"]["items"] == 50 and res["counts"]["unique_media"] == 12
    preds, correct = naive_mcq_accuracy(adapter, spec)
    df = pd.read_parquet(tmp_path / model_slug(adapter.model_string) / "sample_mcq.parquet")
    np.testing.assert_array_equal(df["predicted"].to_numpy(), preds)
    assert res["metrics"]["accuracy"]["value"] == pytest.approx((preds == correct).mean())
    m = res["metrics"]["accuracy"]
    assert m["ci_low"] <= m["value"] <= m["ci_high"]
    # contract: metric names, breakdowns, parquet columns
    for t in ("positive", "negative", "hybrid"):
        assert f"accuracy_{t}" in res["metrics"]
    conf = res["breakdowns"]["confusion"]
    assert sum(sum(r.values()) for r in conf.values()) == 50
    assert sum(r["correct"] for r in conf.values()) == int((preds == correct).sum())
    shares = res["breakdowns"]["wrong_answer_type_shares"]
    assert sum(shares.values()) == pytest.approx(1.0 if (preds != correct).any() else 0.0)
    assert {"row", "media", "media_path", "correct_answer", "predicted", "is_correct", "template",
            "chosen_type", "caption_0", "caption_3", "scores"} <= set(df.columns)
    assert len(df["scores"][0]) == 4
    saved = json.loads((tmp_path / model_slug(adapter.model_string) / "sample_mcq.json").read_text())
    for key in ("schema_version", "negbench_version", "git_hash", "created", "model", "model_identity", "task",
                "seed", "bootstrap_samples", "chance", "counts", "skipped_rows", "metrics", "breakdowns",
                "predictions_file", "timings", "cache"):
        assert key in saved, key
    assert saved["chance"] == 0.25 and saved["task"]["resolved_file"].endswith("sample_mcq.csv")


def test_video_mcq_equals_per_question_loop(adapter, specs):
    spec = specs["sample_video_mcq"]
    res = evaluate_task(spec, adapter, progress=False, bootstrap_samples=10, frames=3)
    preds, correct = naive_mcq_accuracy(adapter, spec, frames=3)
    assert res["metrics"]["accuracy"]["value"] == pytest.approx((preds == correct).mean())
    assert res["counts"]["unique_media"] == 3 and res["frames"] == 3


def test_cache_hit_on_second_run_and_same_metrics(adapter, specs, tmp_path):
    spec = specs["sample_retrieval"]
    kw = dict(cache_dir=tmp_path / "cache", progress=False, bootstrap_samples=50)
    first = evaluate_task(spec, adapter, **kw)
    second = evaluate_task(spec, adapter, **kw)
    assert first["cache"] == {"media_hits": 0, "media_misses": 12, "text_hits": 0, "text_misses": 16}
    assert second["cache"] == {"media_hits": 12, "media_misses": 0, "text_hits": 16, "text_misses": 0}
    assert first["metrics"] == second["metrics"]
    assert set(first["metrics"]) == {f"{d}_recall@{k}" for d in ("t2i", "i2t") for k in (1, 5, 10)}
    # no cache when asked, or when the adapter has no identity (e.g. weights in training)
    assert evaluate_task(spec, adapter, progress=False, bootstrap_samples=5)["cache"]["media_hits"] == 0

    class Training:
        def __init__(self, inner):
            self.inner, self.model_string, self.device = inner, "trainer:step3", inner.device

        def identity(self):
            return None

        def __getattr__(self, name):
            return getattr(self.inner, name)

    res = evaluate_task(spec, Training(adapter), progress=False, bootstrap_samples=5, cache_dir=tmp_path / "cache")
    assert res["cache"]["media_hits"] == 0 and res["model"] == "trainer:step3"


def test_cache_keys_on_content_same_size_edit_with_restored_mtime(adapter, sample_tasks, tmp_path):
    import os
    import shutil

    from conftest import make_image

    root = tmp_path / "copy"
    shutil.copytree(sample_tasks.parent, root)
    spec = {s.name: s for s in load_task_file(root / "tasks.yaml")}["sample_binary"]
    kw = dict(cache_dir=tmp_path / "cache", progress=False, bootstrap_samples=5)
    first = evaluate_task(spec, adapter, **kw)
    img = root / "images" / "img0.png"
    st = img.stat()
    os.utime(img, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # touched, same bytes: still a hit
    assert evaluate_task(spec, adapter, **kw)["cache"]["media_hits"] == 12
    # a different picture of exactly the same size, mtime put back: must be re-encoded
    # (PNG readers ignore bytes after the IEND chunk, so padding keeps it a valid image)
    data = next(b for b in (make_image(tmp_path / f"o{i}.png", i, size=40).read_bytes() for i in range(1, 40))
                if len(b) <= st.st_size and b != img.read_bytes()[:len(b)])
    data = data + bytes(st.st_size - len(data))
    img.write_bytes(bytes(data))
    os.utime(img, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert img.stat().st_size == st.st_size and img.stat().st_mtime_ns == st.st_mtime_ns
    res = evaluate_task(spec, adapter, **kw)
    assert res["cache"]["media_misses"] == 1 and res["cache"]["media_hits"] == 11
    assert res["cache"]["text_misses"] == 0


def test_retrieval_parquet_and_ranks(adapter, specs, tmp_path):
    spec = specs["sample_retrieval"]
    res = evaluate_task(spec, adapter, results_dir=tmp_path, progress=False, bootstrap_samples=20)
    df = pd.read_parquet(tmp_path / model_slug(adapter.model_string) / "sample_retrieval.parquet")
    assert list(df.columns) == ["row", "media", "media_path", "caption", "t2i_rank", "negated_object"]
    assert len(df) == 24
    for k in (1, 5, 10):
        hits = ((df["t2i_rank"] >= 0) & (df["t2i_rank"] < k)).mean()
        assert res["metrics"][f"t2i_recall@{k}"]["value"] == pytest.approx(hits)


def test_skip_existing_and_evaluate_tasks(specs, tiny_openclip_model, tmp_path, monkeypatch):
    chosen = [specs["sample_binary"], specs["sample_retrieval"]]
    out = evaluate_tasks(chosen, tiny_openclip_model, results_dir=tmp_path, progress=False, bootstrap_samples=5)
    assert [r["task"]["name"] for r in out] == ["sample_binary", "sample_retrieval"]
    assert out[0]["chance"] == 0.5 and set(out[0]["metrics"]) == {"accuracy", "accuracy_tie_aware"}
    import negbench.models.base as base

    monkeypatch.setattr(base, "load_model", lambda *a, **k: pytest.fail("model loaded despite skip_existing"))
    again = evaluate_tasks(chosen, tiny_openclip_model, results_dir=tmp_path, skip_existing=True, progress=False,
                           bootstrap_samples=5)
    assert again[0]["created"] == out[0]["created"]


def test_uniform_indices():
    assert uniform_indices(8, 4) == [1, 3, 5, 7]
    assert uniform_indices(2, 4) == [0, 0, 1, 1]
    assert uniform_indices(0, 4) == []


def test_embedding_cache_roundtrip_and_compaction(tmp_path, monkeypatch):
    import negbench.evaluation.cache as cache_module

    monkeypatch.setattr(cache_module, "MAX_SHARDS", 2)
    cache = EmbeddingCache(tmp_path, ["x", 1])
    for i in range(4):
        cache.put([f"k{i}"], np.full((1, 3), i, dtype=np.float32))
    assert len(list(cache.dir.glob("shard-*.npz"))) <= 2
    emb, found = cache.get(["k3", "nope", "k0"])
    assert found.tolist() == [True, False, True]
    assert emb[0].tolist() == [3, 3, 3] and emb[2].tolist() == [0, 0, 0]


def test_result_paths_slug():
    j, p = result_paths("res", "openclip:ViT-B-32@openai", "coco_mcq")
    assert j.as_posix() == "res/openclip_ViT-B-32@openai/coco_mcq.json" and p.suffix == ".parquet"
    a = model_slug("openclip:ViT-B-32@/a/b/negclip.pt")
    b = model_slug("openclip:ViT-B-32@/c/b/negclip.pt")
    assert a != b and "/" not in a


def test_encode_texts_batches_by_length_but_returns_input_order(tiny_hf_dir):
    from negbench.evaluation.engine import encode_texts
    from negbench.models import load_model

    adapter = load_model(f"hf:{tiny_hf_dir}", device="cpu")
    texts = ["This image does not feature a dog, but a cat and a car.", "A dog.",
             "This image features a cat.", "A car and no dog.", "Dog."]
    got = encode_texts(adapter, texts, batch_size=2, progress=False)
    with torch.inference_mode():
        one_by_one = np.concatenate([adapter.encode_texts([t]).numpy() for t in texts])
    np.testing.assert_allclose(got, one_by_one, rtol=1e-5, atol=1e-6)
