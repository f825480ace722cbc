"""Evaluation precision: weights cast once at load (bf16), `auto`, the cache keeping precisions
apart, and near-tie counting (issue 29)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from _train_fixtures import TINY_MODEL
from negbench.core.errors import ConfigError
from negbench.evaluation.encoding import encode_media, encode_texts
from negbench.evaluation.metrics import near_tie_bound, near_tie_count, near_ties
from negbench.models import base
from negbench.models.base import load_model, model_identity, resolve_precision

TEXTS = ["This image features dog and cat.", "This image does not feature tree.", "a picture of the car"]


@pytest.fixture(scope="module")
def model_strings(tiny_openclip_model, tiny_hf_dir, tmp_path_factory) -> dict[str, str]:
    from negbench.models.builtin import create_builtin_model

    builtin = create_builtin_model(tmp_path_factory.mktemp("builtin") / "m", seed=0, **TINY_MODEL)
    return {"openclip": tiny_openclip_model, "hf": f"hf:{tiny_hf_dir}", "builtin": builtin}


# ---------------------------------------------------------------- every embedding backend

@pytest.mark.parametrize("backend", ["openclip", "hf", "builtin"])
def test_bf16_casts_weights_once_and_embeds_close_to_fp32(backend, model_strings, image_dir):
    fp32 = load_model(model_strings[backend], device="cpu")
    bf16 = load_model(model_strings[backend], device="cpu", precision="bf16")
    assert {p.dtype for p in fp32.module.parameters()} == {torch.float32}
    assert {p.dtype for p in bf16.module.parameters()} == {torch.bfloat16}  # cast once, at load
    paths = sorted(image_dir.iterdir())
    with torch.inference_mode():  # inputs follow the weights: the towers run in bf16, no autocast
        pixels = torch.stack([bf16.preprocess(Image.open(p).convert("RGB")) for p in paths])
        assert bf16.encode_images(pixels).dtype == torch.bfloat16
        assert bf16.encode_texts(TEXTS).dtype == torch.bfloat16

    media32, _ = encode_media(fp32, paths, batch_size=2, progress=False)
    media16, failed = encode_media(bf16, paths, batch_size=2, precision="bf16", progress=False)
    text32 = encode_texts(fp32, TEXTS, progress=False)
    text16 = encode_texts(bf16, TEXTS, precision="bf16", progress=False)
    assert not failed and media16.dtype == np.float32 and text16.dtype == np.float32  # the engine's contract
    for a, b in ((media32, media16), (text32, text16)):
        cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
        assert cos.min() > 0.99 and not np.array_equal(a, b)  # bf16 really ran, and stayed close

    # precision is part of the identity (cache key), and known before loading (lazy loading)
    assert bf16.identity() != fp32.identity()
    assert model_identity(model_strings[backend], precision="bf16") == bf16.identity()
    assert model_identity(model_strings[backend], precision="fp32") == fp32.identity()


def test_fp32_adapter_at_bf16_still_autocasts(adapter, image_dir):
    """The trainer's adapters keep fp32 weights; evaluating one at bf16 autocasts, weights untouched."""
    paths = sorted(image_dir.iterdir())
    ref, _ = encode_media(adapter, paths, progress=False)
    auto, _ = encode_media(adapter, paths, precision="bf16", progress=False)
    assert {p.dtype for p in adapter.module.parameters()} == {torch.float32}
    assert not np.array_equal(ref, auto) and np.allclose(ref, auto, atol=0.05)


# ---------------------------------------------------------------- the engine and the cache

@pytest.fixture(scope="module")
def world_task(tmp_path_factory):
    from negbench.inputs.tasks import load_task_file
    from negbench.world import generate_world
    from negbench.world.suite import build_world_suite

    root = tmp_path_factory.mktemp("world")
    generate_world(root / "world", seed=0, size="tiny", workers=1)
    yaml_path = build_world_suite(root / "world", root / "suite", seed=0, template_sets=("default",), hardneg=False)
    return {s.name: s for s in load_task_file(yaml_path)}["world_coco_mcq"]


def test_cache_keeps_fp32_and_bf16_apart_and_results_record_precision(world_task, tiny_openclip_model, tmp_path):
    from negbench.evaluation.engine import evaluate_task

    def run(precision):
        return evaluate_task(world_task, tiny_openclip_model, cache_dir=tmp_path / "cache", precision=precision,
                             progress=False)

    fp32 = run("fp32")
    bf16 = run("bf16")
    again = run("bf16")
    assert fp32["precision"] == "fp32" and bf16["precision"] == "bf16"
    # the second precision finds nothing of the first in the cache; its own rerun finds everything
    assert bf16["cache"]["media_hits"] == 0 and bf16["cache"]["text_hits"] == 0
    assert bf16["cache"]["media_misses"] == fp32["cache"]["media_misses"] > 0
    assert again["cache"]["media_misses"] == 0 and again["cache"]["text_misses"] == 0
    assert again["metrics"] == bf16["metrics"]


def test_auto_resolves_and_the_engine_records_the_choice(world_task, tiny_openclip_model, tmp_path):
    from negbench.evaluation.engine import evaluate_task

    precision, note = resolve_precision("auto", "cpu")
    fast = bool(base.cpu_flags() & {"amx_bf16", "avx512_bf16"})
    assert precision == ("bf16" if fast else "fp32") and note.startswith(f"auto: {precision} (CPU with ")
    res = evaluate_task(world_task, tiny_openclip_model, precision=precision, progress=False)
    assert res["precision"] == precision


# ---------------------------------------------------------------- resolve_precision

def test_resolve_precision_on_cpus_with_and_without_a_bf16_path(monkeypatch):
    assert resolve_precision("fp32", "cpu") == ("fp32", None)
    with pytest.raises(ConfigError, match=r"precision 'half' not in \['fp32', 'fp16', 'bf16', 'auto'\]"):
        resolve_precision("half", "cpu")
    # CPUs this machine is not: flags as /proc/cpuinfo names them
    monkeypatch.setattr(base, "cpu_flags", lambda: frozenset({"avx2", "amx_bf16", "avx512_bf16", "avx512f"}))
    assert resolve_precision("auto", "cpu") == ("bf16", "auto: bf16 (CPU with AMX-BF16, AVX512-BF16, AVX512, "
                                                        "AVX2 has a fast bf16 path)")
    assert resolve_precision("bf16", "cpu") == ("bf16", None)
    monkeypatch.setattr(base, "cpu_flags", lambda: frozenset({"avx2"}))
    assert resolve_precision("auto", "cpu") == ("fp32", "auto: fp32 (CPU with AVX2: no fast bf16 path)")
    precision, note = resolve_precision("bf16", "cpu")
    assert precision == "bf16" and note == ("bf16 will be slow here: CPU with AVX2 has no native bf16 path "
                                            "(fp32 may be faster)")


def test_cpu_flags_agree_with_torch_probes():
    flags = base.cpu_flags()
    if hasattr(torch.cpu, "_is_avx512_bf16_supported"):
        assert ("avx512_bf16" in flags) == torch.cpu._is_avx512_bf16_supported()
    if hasattr(torch.cpu, "_is_avx2_supported"):
        assert ("avx2" in flags) == torch.cpu._is_avx2_supported()


# ---------------------------------------------------------------- near-ties

def _naive_near_ties(scores, bound):
    out = []
    for row in scores.tolist():
        ordered = sorted(row, reverse=True)
        out.append(len(ordered) >= 2 and ordered[0] - ordered[1] < bound)
    return np.array(out, dtype=bool)


@pytest.mark.parametrize("precision", ["bf16", "fp16", "fp32"])
@pytest.mark.parametrize("seed", range(4))
def test_near_ties_match_a_naive_reference(precision, seed):
    rng = np.random.default_rng(seed)
    scores = rng.uniform(-1, 1, size=(200, 4)).astype(np.float32)
    # plant gaps just under and just over the bound, and exact ties
    bound = near_tie_bound(precision)
    scores[:20, 1] = scores[:20, 0] - np.float32(bound) * 0.5
    scores[20:40, 1] = scores[20:40, 0] + np.float32(bound) * 2
    scores[40:50, 2] = scores[40:50].max(axis=1)
    expected = _naive_near_ties(scores.astype(np.float64), bound)
    assert np.array_equal(near_ties(scores, precision), expected)
    assert near_tie_count(scores, precision) == int(expected.sum()) >= 10


def test_near_tie_bounds_and_edges():
    assert near_tie_bound("bf16") == 2 ** -8 and near_tie_bound("fp16") == 2 ** -11 and near_tie_bound("fp32") == 2 ** -24
    one_apart = np.array([[0.5, 0.5 - 2 ** -10, 0.0]], dtype=np.float32)  # within bf16 rounding, not fp16's
    assert near_tie_count(one_apart, "bf16") == 1 and near_tie_count(one_apart, "fp16") == 0
    # fp32: a float32 step below 0.25 (2**-26) is under the bound; the step below 1 (2**-24) is not
    below = [np.nextafter(np.float32(x), np.float32(0)) for x in (0.25, 1.0)]
    assert near_tie_count(np.array([[0.25, below[0]], [1.0, below[1]]], dtype=np.float32), "fp32") == 1
    assert near_tie_count(np.zeros((0, 4)), "bf16") == 0 and near_tie_count(np.ones((3, 1)), "bf16") == 0
    with pytest.raises(ValueError, match="precision 'auto' not in"):
        near_tie_count(one_apart, "auto")
