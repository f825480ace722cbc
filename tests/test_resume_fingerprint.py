"""finetune --resume refuses changed settings (naming the keys); the log holds each step once."""
import json

import pytest

from _train_fixtures import TINY_MODEL, make_tiny_data
from negbench.core.errors import ConfigError
from negbench.models.builtin import create_builtin_model
from negbench.train.trainer import TrainConfig, train


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume")
    data = make_tiny_data(root / "data", n=8)
    model = create_builtin_model(root / "init", seed=0, **TINY_MODEL)
    return root, data, model


def cfg(data, model, out, **kw):
    base = dict(model=model, out=str(out), negcap=str(data["negcap"]), negmcq=str(data["negmcq"]), clw=0.5,
                mlw=0.5, steps=3, lr=1e-3, warmup_steps=1, log_every=1, train_text_layers=1, seed=3,
                batch_size=4, mcq_batch_size=2, save_every=1)
    return TrainConfig(**{**base, **kw})


def test_resume_with_other_lr_and_seed_is_refused_and_force_overrides(setup, caplog):
    root, data, model = setup
    out = root / "run"
    train(cfg(data, model, out), stop_when=lambda s: s >= 1)
    config_before = (out / "train" / "config.json").read_text()
    with pytest.raises(ConfigError) as info:
        train(cfg(data, model, out, lr=5e-4, seed=4), resume=True)
    msg = str(info.value)
    assert "lr: 0.001 -> 0.0005" in msg and "seed: 3 -> 4" in msg and "--force" in msg
    assert (out / "train" / "config.json").read_text() == config_before  # nothing overwritten
    # settings that do not change numbers (logging, eval cadence) are not a reason to refuse
    train(cfg(data, model, out, log_every=2), resume=True, stop_when=lambda s: s >= 2)
    with caplog.at_level("WARNING"):
        assert train(cfg(data, model, out, lr=5e-4), resume=True, force=True)
    assert "resuming anyway" in caplog.text


def test_changed_training_data_is_refused(setup, tmp_path):
    root, data, model = setup
    import shutil

    negmcq = tmp_path / "negmcq"
    shutil.copytree(data["negmcq"], negmcq)
    out = tmp_path / "run"
    train(cfg(data, model, out, negmcq=str(negmcq)), stop_when=lambda s: s >= 1)
    victim = next(p for p in sorted(negmcq.rglob("*")) if p.is_file())
    victim.write_bytes(victim.read_bytes() + b"\n")
    with pytest.raises(ConfigError, match="negmcq_digest"):
        train(cfg(data, model, out, negmcq=str(negmcq)), resume=True)


def test_log_is_not_duplicated_on_resume(setup):
    root, data, model = setup
    full, cut = root / "full", root / "cut"
    train(cfg(data, model, full))
    train(cfg(data, model, cut), stop_when=lambda s: s >= 1)
    # killed after step 2 was logged but before its checkpoint: the resumed run replays step 2
    log = cut / "train" / "log.jsonl"
    with open(log, "a") as f:
        f.write(json.dumps({"step": 2, "loss": 99.0}) + "\n" + '{"step": 3, "lo')
    train(cfg(data, model, cut), resume=True)
    steps = [json.loads(line)["step"] for line in log.read_text().splitlines()]
    assert steps == [1, 2, 3]
    full_losses = [json.loads(line)["loss"] for line in (full / "train" / "log.jsonl").read_text().splitlines()]
    assert [json.loads(line)["loss"] for line in log.read_text().splitlines()] == full_losses


def test_default_save_every_checkpoints_during_a_run():
    assert TrainConfig(model="m", out="o").save_every > 0
