"""Every entry point: a NegbenchError or a refused file operation is one line, exit code 2."""
from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from negbench.cli import main


def _env():
    return {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


def test_python_m_negbench_train_prints_one_line(tmp_path):
    cmd = [sys.executable, "-m", "negbench.train", "--model", "nosuchbackend:x", "--negmcq", str(tmp_path),
           "--out", str(tmp_path / "o"), "--device", "cpu", "--clw", "0", "--mlw", "1"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=_env())
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr
    errors = [line for line in res.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and "nosuchbackend" in errors[0]


def test_torchrun_ranks_print_one_line_each(tmp_path):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m",
           "negbench.train", "--model", "nosuchbackend:x", "--negmcq", str(tmp_path), "--out", str(tmp_path / "o"),
           "--device", "cpu", "--clw", "0", "--mlw", "1"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=_env())
    assert res.returncode != 0
    # one error per rank; counted by message, not by line: the two ranks write stderr at once and,
    # on a loaded machine, one rank's message can land before the other's newline
    out = res.stdout + res.stderr
    errors = re.findall(r"(\[rank\d\]: )?error: unknown model backend 'nosuchbackend'", out)
    assert len(errors) == 2 and "[rank1]: " in errors
    # torchrun's launcher reports the failed children with its own traceback; the ranks print none
    assert "negbench/models" not in res.stdout + res.stderr and "negbench/train/trainer.py" not in res.stderr


@pytest.mark.parametrize("make_blocker", ["file", "readonly"])
def test_results_dir_that_cannot_be_written_is_one_line(tmp_path, capsys, tiny_openclip_model, sample_tasks,
                                                        make_blocker):
    target = tmp_path / "results"
    if make_blocker == "file":
        target.write_text("not a folder")
    else:
        target.mkdir()
        target.chmod(0o500)
        if os.access(target, os.W_OK):  # running as root: permissions do not bind
            pytest.skip("root ignores folder permissions")
    rc = main(["eval", "--model", tiny_openclip_model, "--tasks-file", str(sample_tasks), "--task", "sample_binary",
               "--results-dir", str(target), "--no-cache", "--quiet", "--bootstrap-samples", "5"])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and "cannot access" in err and "results" in err
