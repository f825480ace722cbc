"""Training never ends silently wrong: non-finite values stop it in one line, flags are checked
before any work, a used --out is refused (or --force starts clean), and a run killed with -9
resumes bit-identically on CPU (pretraining, and fine-tuning with a locked image tower)."""
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from _train_fixtures import TINY_MODEL, make_tiny_data
from negbench.cli import main
from negbench.models.builtin import create_builtin_model

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("guards")
    data = make_tiny_data(root / "data", n=16)
    model = create_builtin_model(root / "init", seed=0, **TINY_MODEL)
    return root, data, model


TQDM_LINE = re.compile(r"^(training|caching frozen text layers|locked image features): +\d+%\|")


def ft_args(data, model, out, *extra):
    return ["--model", model, "--negcap", str(data["negcap"]), "--negmcq", str(data["negmcq"]), "--out", str(out),
            "--clw", "0.5", "--mlw", "0.5", "--batch-size", "4", "--mcq-batch-size", "2", "--warmup-steps", "1",
            "--log-every", "1", "--device", "cpu", "--threads", "1", *extra]


def log_steps(out) -> list[int]:
    return [json.loads(l)["step"] for l in open(Path(out) / "train" / "log.jsonl") if '"loss"' in l]


def one_line_error(capsys) -> str:
    """The one line of the error, beside the progress bars (tqdm redraws, on stderr as usual)."""
    err = [line for line in capsys.readouterr().err.replace("\r", "\n").strip().splitlines()
           if line.strip() and not TQDM_LINE.match(line)]
    assert len(err) == 1 and "Traceback" not in err[0], err
    return err[0]


def test_huge_lr_stops_at_the_first_non_finite_step_and_saves_nothing_newer(setup, capsys):
    root, data, model = setup
    out = root / "nan"
    assert main(["finetune", *ft_args(data, model, out, "--steps", "8", "--lr", "1e30", "--save-every", "1")]) == 2
    line = one_line_error(capsys)
    assert "step " in line and "lr 1e+30" in line and "lower --lr" in line, line
    assert not (out / "model.safetensors").exists() and not (out / "train" / "final.json").exists()
    bad_step = int(line.split("step ")[1].split(":")[0])
    ck = torch.load(out / "train" / "checkpoint.pt", map_location="cpu", weights_only=True)
    assert ck["step"] < bad_step
    assert all(torch.isfinite(v).all() for v in ck["model"].values() if v.is_floating_point())
    assert all(math.isfinite(r["loss"]) for r in map(json.loads, open(out / "train" / "log.jsonl")) if "loss" in r)


@pytest.mark.parametrize("flags, words", [
    (["--lr", "1e39"], "--lr 1e+39"), (["--lr", "inf"], "--lr inf"), (["--lr", "nan"], "--lr nan"), (["--lr", "-1"], "--lr -1"),
    (["--steps", "0"], "--steps 0"), (["--batch-size", "0"], "--batch-size 0"),
    (["--accum-steps", "-2"], "--accum-steps -2"), (["--warmup-steps", "-1"], "--warmup-steps -1"),
    (["--device", "cuda:7"], "devices here: cpu"), (["--device", "tpu9"], "--device 'tpu9'"),
    (["--threads", "0"], "--threads 0"), (["--log-every", "0"], "--log-every 0"),
])
def test_bad_flags_are_refused_before_any_work(setup, capsys, flags, words):
    root, data, model = setup
    if "cuda:7" in flags and torch.cuda.device_count() > 7:
        pytest.skip("this machine has a cuda:7")
    out = root / f"bad{abs(hash(tuple(flags)))}"
    assert main(["finetune", *ft_args(data, model, out, "--steps", "2", *flags)]) == 2
    assert words in one_line_error(capsys)
    assert not out.exists()


def test_pretrain_flags_are_checked_before_the_fresh_model_is_written(setup, capsys):
    root, data, _ = setup
    out = root / "pre_bad"
    assert main(["pretrain", "--corpus", str(data["corpus"]), "--out", str(out), "--lr", "inf"]) == 2
    assert "--lr inf" in one_line_error(capsys) and not out.exists()
    assert main(["pretrain", "--corpus", str(data["corpus"]), "--out", str(out), "--device", "cuda:7"]) == 2
    assert "devices here" in one_line_error(capsys) and not out.exists()


def test_rerun_into_a_used_out_is_refused_and_force_starts_clean(setup, capsys):
    root, data, model = setup
    out = root / "rerun"
    assert main(["finetune", *ft_args(data, model, out, "--steps", "3")]) == 0
    before = (out / "train" / "log.jsonl").read_text()
    bars = capsys.readouterr().err.replace("\r", "\n")   # no silent phase: the steps have a bar
    assert "training: 100%" in bars and "3/3" in bars
    assert main(["finetune", *ft_args(data, model, out, "--steps", "3")]) == 2
    line = one_line_error(capsys)
    assert "--resume" in line and "--force" in line and str(out) in line
    assert (out / "train" / "log.jsonl").read_text() == before
    assert main(["finetune", *ft_args(data, model, out, "--steps", "2", "--force")]) == 0
    assert log_steps(out) == [1, 2]


def _pretrain_cfg(data, out, seed, steps=4, **kw):
    from negbench.train.pretrain import PretrainConfig

    return PretrainConfig(corpus=str(data["corpus"]), out=str(out), steps=steps, batch_size=4, lr=1e-3, seed=seed,
                          device="cpu", log_every=1, model=dict(TINY_MODEL), **kw)


def test_pretrain_with_another_seed_never_reuses_the_old_initial_model(setup):
    from negbench.core.errors import ConfigError
    from negbench.train.pretrain import pretrain

    root, data, _ = setup
    pretrain(_pretrain_cfg(data, root / "reused", seed=0))
    with pytest.raises(ConfigError, match="--force"):
        pretrain(_pretrain_cfg(data, root / "reused", seed=1))
    pretrain(_pretrain_cfg(data, root / "reused", seed=1), force=True)
    pretrain(_pretrain_cfg(data, root / "clean", seed=1))
    a, b = (load_file(str(root / d / "model.safetensors")) for d in ("reused", "clean"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    # an init left by a run killed before its first checkpoint, resumed with another seed: rebuilt
    (root / "early" / "train" / "init").parent.mkdir(parents=True)
    create_builtin_model(root / "early" / "train" / "init", seed=0, **TINY_MODEL)
    pretrain(_pretrain_cfg(data, root / "early", seed=1), resume=True)
    c = load_file(str(root / "early" / "model.safetensors"))
    assert all(torch.equal(a[k], c[k]) for k in a)


# ---- kill -9 and resume ---------------------------------------------------------------------
PRETRAIN_SCRIPT = """
import sys, torch
sys.path.insert(0, {tests!r})
from _train_fixtures import TINY_MODEL
from negbench.train.pretrain import PretrainConfig, pretrain
torch.set_num_threads(1)
out, resume = sys.argv[1], sys.argv[2] == "1"
pretrain(PretrainConfig(corpus={corpus!r}, out=out, steps={steps}, batch_size=4, lr=1e-3, seed=5, device="cpu",
                        log_every=1, save_every=1, model=dict(TINY_MODEL)), resume=resume)
"""


def _kill_when_logged(cmd, out: Path, at_least: int) -> int:
    """Start cmd, SIGKILL it once its log has `at_least` steps; the step it was killed after."""
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    log = out / "train" / "log.jsonl"
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if log.exists() and log.read_text().count('"loss"') >= at_least:
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.005)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL, f"not killed mid-run (rc {proc.returncode}): {proc.stderr.read()[-2000:]}"
    assert not (out / "model.safetensors").exists()
    return torch.load(out / "train" / "checkpoint.pt", map_location="cpu", weights_only=True)["step"]


def _run(cmd):
    res = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]


@pytest.fixture
def one_thread():
    """The uninterrupted reference runs in this process, single-threaded like the killed one."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _same_run(a: Path, b: Path):
    wa, wb = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    assert wa.keys() == wb.keys()
    diff = [k for k in wa if not torch.equal(wa[k], wb[k])]
    assert not diff, diff[:5]
    la = [json.loads(l)["loss"] for l in open(a / "train" / "log.jsonl") if '"loss"' in l]
    lb = [json.loads(l)["loss"] for l in open(b / "train" / "log.jsonl") if '"loss"' in l]
    assert la == lb


def test_finetune_locked_image_tower_killed_with_sigkill_resumes_bit_identical(setup, one_thread):
    root, data, model = setup
    steps = "12"
    base = [sys.executable, "-m", "negbench.train"]
    flags = ["--steps", steps, "--lr", "1e-3", "--lock-image", "--seed", "2", "--save-every", "1"]
    assert main(["finetune", *ft_args(data, model, root / "ft_full", *flags)]) == 0
    killed_at = _kill_when_logged(base + ft_args(data, model, root / "ft_cut", *flags), root / "ft_cut", 3)
    assert 1 <= killed_at < int(steps)
    _run(base + ft_args(data, model, root / "ft_cut", *flags, "--resume"))
    _same_run(root / "ft_full", root / "ft_cut")


def test_pretrain_killed_with_sigkill_resumes_bit_identical(setup, one_thread):
    from negbench.train.pretrain import pretrain

    root, data, _ = setup
    script = PRETRAIN_SCRIPT.format(tests=str(Path(__file__).parent), corpus=str(data["corpus"]), steps=12)
    cmd = [sys.executable, "-c", script]
    pretrain(_pretrain_cfg(data, root / "pre_full", seed=5, steps=12, save_every=1))
    killed_at = _kill_when_logged(cmd + [str(root / "pre_cut"), "0"], root / "pre_cut", 3)
    assert 1 <= killed_at < 12
    _run(cmd + [str(root / "pre_cut"), "1"])
    _same_run(root / "pre_full", root / "pre_cut")
