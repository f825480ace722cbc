"""EvalConfig, lazy model loading (a fully cached run loads no weights), model identities."""
from __future__ import annotations

import pytest

from negbench.core.errors import ConfigError
from negbench.evaluation.config import EvalConfig
from negbench.evaluation.engine import evaluate_task, evaluate_tasks
from negbench.evaluation.lazy_model import LazyModel
from negbench.inputs.tasks import load_task_file
from negbench.models.base import load_model, model_identity


@pytest.fixture(scope="module")
def specs(sample_tasks):
    return {s.name: s for s in load_task_file(sample_tasks)}


def test_eval_config_overrides_and_unknown_names():
    cfg = EvalConfig(batch_size=8).with_overrides(seed=3)
    assert (cfg.batch_size, cfg.seed) == (8, 3)
    with pytest.raises(ConfigError, match="unknown evaluation setting 'batch'.*did you mean 'batch_size'"):
        EvalConfig().with_overrides(batch=3)
    with pytest.raises(ConfigError, match="frames must be >= 1"):
        EvalConfig(frames=0)
    with pytest.raises(TypeError):
        EvalConfig(8)  # keyword-only
    assert EvalConfig().workers >= 1


def test_evaluate_task_rejects_unknown_keyword(specs, tiny_openclip_model):
    with pytest.raises(ConfigError, match="unknown evaluation setting 'bootstrap'"):
        evaluate_task(specs["sample_mcq"], tiny_openclip_model, bootstrap=5)


def test_model_identity_matches_the_loaded_adapter(tiny_openclip_model, tiny_hf_dir, tiny_openclip_arch):
    for string in (tiny_openclip_model, f"openclip:{tiny_openclip_arch}@random", f"hf:{tiny_hf_dir}"):
        assert model_identity(string) == load_model(string, device="cpu").identity()


@pytest.mark.parametrize("task", ["sample_mcq", "sample_retrieval", "sample_video_mcq"])
def test_warm_run_loads_no_weights(specs, tiny_openclip_model, tmp_path, task):
    cfg = EvalConfig(cache_dir=tmp_path / "cache", bootstrap_samples=20, progress=False, num_workers=1)
    cold = evaluate_task(specs[task], load_model(tiny_openclip_model, device="cpu"), cfg)  # a loaded adapter
    warm_model = LazyModel(tiny_openclip_model, device="cpu")
    warm = evaluate_task(specs[task], warm_model, cfg, results_dir=tmp_path / "res")
    assert not warm_model.loaded
    assert warm["cache"]["media_misses"] == warm["cache"]["text_misses"] == 0
    assert warm["metrics"] == cold["metrics"] and warm["model_identity"] == cold["model_identity"]
    # a LazyModel on an empty cache loads on its first miss and computes the same
    lazy = LazyModel(tiny_openclip_model, device="cpu")
    fresh = evaluate_task(specs[task], lazy, cfg, cache_dir=tmp_path / "other")
    assert lazy.loaded and fresh["cache"]["media_hits"] == 0 and fresh["metrics"] == cold["metrics"]


def test_evaluate_tasks_loads_once_on_first_miss(specs, tiny_openclip_model, tmp_path):
    chosen = [specs["sample_mcq"], specs["sample_binary"]]
    kw = dict(cache_dir=tmp_path / "cache", bootstrap_samples=5, progress=False)
    first = evaluate_tasks(chosen, tiny_openclip_model, **kw)
    lazy = LazyModel(tiny_openclip_model, device="cpu")
    again = evaluate_tasks(chosen, lazy, EvalConfig(**kw))
    assert not lazy.loaded
    assert [r["metrics"] for r in again] == [r["metrics"] for r in first]
