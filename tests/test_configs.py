"""Configs as data: recipes, pre-training defaults and size presets are YAML files under
negbench/data/, loadable by name or path; config dataclasses are built by keyword; a sweep
resumes finished runs from the model string they saved."""
import dataclasses
import json

import pytest
import yaml

from _train_fixtures import TINY_MODEL, make_tiny_data
from negbench.core.configs import DATA_DIR
from negbench.core.errors import ConfigError
from negbench.train.finetune import load_recipe, recipe_config, recipe_names, sweep_weights
from negbench.train.trainer import TrainConfig, finished_model


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from negbench.models.builtin import create_builtin_model

    root = tmp_path_factory.mktemp("configs")
    return root, make_tiny_data(root / "data", n=8), create_builtin_model(root / "init", seed=0, **TINY_MODEL)


def test_shipped_recipes_are_valid_train_configs():
    assert {"paper", "negworld"} <= set(recipe_names())
    for name in recipe_names():
        cfg = recipe_config(name, model="builtin:x", out="o", negcap="nc", negmcq="nm")
        assert cfg.recipe == name
        on_disk = yaml.safe_load((DATA_DIR / "recipes" / f"{name}.yaml").read_text())
        assert {k: getattr(cfg, k) for k in on_disk} == on_disk
    assert load_recipe("paper") == {"clw": 0.99, "mlw": 0.01}


def test_recipe_from_a_file_and_its_errors(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("clw: 0.7\nmlw: 0.3\nsteps: 3\n")
    cfg = recipe_config(str(path), model="builtin:x", out="o", negcap="nc", negmcq="nm", steps=5)
    assert (cfg.clw, cfg.mlw, cfg.steps, cfg.recipe) == (0.7, 0.3, 5, str(path))   # explicit options win
    path.write_text("clw: 0.7\nlearning_rate: 1\n")
    with pytest.raises(ConfigError, match=r"learning_rate.*mine\.yaml"):
        recipe_config(str(path), model="builtin:x", out="o", negcap="nc")
    path.write_text("- clw\n")
    with pytest.raises(ConfigError, match="mine.yaml: expected a mapping"):
        load_recipe(str(path))
    with pytest.raises(ConfigError, match=r"unknown recipe 'negwrld'; available: \['negworld', 'paper'\]"):
        load_recipe("negwrld")
    with pytest.raises(ConfigError, match="does not exist"):
        load_recipe(str(tmp_path / "missing.yaml"))


def test_config_dataclasses_take_keywords_only():
    from negbench.construct.build import BuildConfig
    from negbench.construct.negdata import NegdataConfig
    from negbench.train.pretrain import PretrainConfig

    with pytest.raises(TypeError):
        TrainConfig("builtin:x", "out")
    with pytest.raises(TypeError):
        BuildConfig(("mcq",))
    with pytest.raises(dataclasses.FrozenInstanceError):
        NegdataConfig().seed = 3
    assert BuildConfig(tasks=["mcq"], shard="1/4").tasks == ("mcq",)
    assert BuildConfig(shard="1/4").shard == (1, 4)
    assert PretrainConfig(corpus="c.tsv").steps == yaml.safe_load((DATA_DIR / "pretrain.yaml").read_text())["train"]["steps"]


def test_size_presets_are_data():
    from negbench.demo import SIZES as DEMO_SIZES
    from negbench.world import SIZES as WORLD_SIZES

    demo = yaml.safe_load((DATA_DIR / "sizes" / "demo.yaml").read_text())
    assert set(DEMO_SIZES) == set(demo) >= {"tiny", "small"}
    assert DEMO_SIZES["tiny"].finetune == demo["tiny"]["finetune"]
    assert set(WORLD_SIZES) == {"tiny", "small", "full"}
    assert all(DEMO_SIZES[s].world in WORLD_SIZES for s in DEMO_SIZES)


def test_cli_finetune_takes_a_recipe_file(tiny, tmp_path):
    from negbench.cli import main

    root, data, model = tiny
    recipe = tmp_path / "quick.yaml"
    recipe.write_text("clw: 0.5\nmlw: 0.5\nsteps: 1\nbatch_size: 4\nmcq_batch_size: 2\nwarmup_steps: 1\n")
    out = tmp_path / "run"
    assert main(["finetune", "--model", model, "--negcap", str(data["negcap"]), "--negmcq", str(data["negmcq"]),
                 "--out", str(out), "--recipe", str(recipe), "--device", "cpu"]) == 0
    saved = json.loads((out / "train" / "config.json").read_text())
    assert (saved["steps"], saved["clw"], saved["recipe"]) == (1, 0.5, str(recipe))
    assert finished_model(out) == f"builtin:{out}"


def test_sweep_reuses_finished_runs_from_their_saved_model_string(tiny, tmp_path):
    root, data, model = tiny
    scored = []

    def eval_fn(m):
        scored.append(m)
        return {"score": 1.0}

    kw = dict(weights=((1.0, 0.0), (0.0, 1.0)), eval_fn=eval_fn, steps=1, batch_size=4, mcq_batch_size=2,
              warmup_steps=1, device="cpu")
    first = sweep_weights(model, data["negcap"], data["negmcq"], tmp_path / "sweep", **kw)
    logs = {r["model"]: (tmp_path / "sweep" / r["model"].split("/")[-1] / "train" / "log.jsonl").read_text()
            for r in first}
    again = sweep_weights(model, data["negcap"], data["negmcq"], tmp_path / "sweep", **kw)
    assert [r["model"] for r in again] == [r["model"] for r in first] == \
        [finished_model(tmp_path / "sweep" / d) for d in ("clw1_mlw0", "clw0_mlw1")]
    for r in again:   # not trained a second time: the logs did not grow
        assert (tmp_path / "sweep" / r["model"].split("/")[-1] / "train" / "log.jsonl").read_text() == logs[r["model"]]
    assert scored == [r["model"] for r in first] * 2
