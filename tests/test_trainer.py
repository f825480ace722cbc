"""Trainer: 2-process torchrun (gloo) equals 1 process with the doubled batch; resume is exact."""
import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from _train_fixtures import TINY_MODEL, make_tiny_data
from negbench.models.builtin import create_builtin_model
from negbench.train.trainer import TrainConfig, train


def losses(run):
    recs = [json.loads(l) for l in open(run / "train" / "log.jsonl")]
    return [r["loss"] for r in recs if "loss" in r]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("trainer")
    data = make_tiny_data(root / "data", n=16)
    model = create_builtin_model(root / "init", seed=0, **TINY_MODEL)
    return root, data, model


def common(data, model, out, **kw):
    return dict(model=model, out=str(out), negcap=str(data["negcap"]), negmcq=str(data["negmcq"]), clw=0.5,
                mlw=0.5, steps=4, lr=1e-3, warmup_steps=1, log_every=1, train_text_layers=1, seed=3, **kw)


def test_two_process_torchrun_matches_one_process_doubled_batch(setup):
    root, data, model = setup
    train(TrainConfig(**common(data, model, root / "one"), batch_size=8, mcq_batch_size=4))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "negbench.train", "--model", model, "--negcap", str(data["negcap"]), "--negmcq", str(data["negmcq"]),
           "--out", str(root / "two"), "--clw", "0.5", "--mlw", "0.5", "--steps", "4", "--lr", "1e-3",
           "--warmup-steps", "1", "--log-every", "1", "--train-text-layers", "1", "--seed", "3",
           "--batch-size", "4", "--mcq-batch-size", "2", "--device", "cpu", "--threads", "1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=env)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    one, two = losses(root / "one"), losses(root / "two")
    assert len(one) == len(two) == 4
    assert one == pytest.approx(two, rel=1e-4, abs=1e-5)
    w1, w2 = load_file(str(root / "one" / "model.safetensors")), load_file(str(root / "two" / "model.safetensors"))
    for k in w1:
        assert torch.allclose(w1[k], w2[k], atol=1e-5), k


def test_kill_and_resume_is_bit_identical(setup):
    root, data, model = setup
    kw = dict(batch_size=4, mcq_batch_size=2, save_every=1)
    train(TrainConfig(**common(data, model, root / "full"), **kw))
    train(TrainConfig(**common(data, model, root / "cut"), **kw), stop_when=lambda step: step == 2)
    assert not (root / "cut" / "model.safetensors").exists()
    train(TrainConfig(**common(data, model, root / "cut"), **kw), resume=True)
    a, b = load_file(str(root / "full" / "model.safetensors")), load_file(str(root / "cut" / "model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert losses(root / "full") == losses(root / "cut")


def test_cli_augment_wordings_adds_questions_and_captions(setup, caplog):
    import logging

    from negbench.cli import main as cli_main

    root, data, model = setup
    counts = {}
    for k in (0, 1):
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="negbench.train"):
            assert cli_main(["finetune", "--model", model, "--negcap", str(data["negcap"]), "--negmcq",
                             str(data["negmcq"]), "--out", str(root / f"aug{k}"), "--steps", "1",
                             "--batch-size", "4", "--mcq-batch-size", "2", "--clw", "0.5", "--mlw", "0.5",
                             "--augment-wordings", str(k), "--device", "cpu"]) == 0
        line = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("training data:"))
        counts[k] = [int(w) for w in line.replace(",", " ").split() if w.isdigit()]
        assert json.loads((root / f"aug{k}" / "train" / "config.json").read_text())["augment_wordings"] == k
    (img0, caps0, q0), (img1, caps1, q1) = counts[0], counts[1]
    assert img1 == img0 and caps1 > caps0 and q1 == 2 * q0, counts
