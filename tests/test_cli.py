"""The console script: every subcommand is installed, --help is instant and honest."""
from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

from negbench.cli import COMMANDS


@pytest.mark.parametrize("name,module", sorted(COMMANDS.items()))
def test_every_subcommand_module_exists_with_the_cli_contract(name, module):
    mod = importlib.import_module(module)
    assert isinstance(mod.HELP, str) and mod.HELP
    assert callable(mod.add_arguments) and callable(mod.run)


def test_help_does_not_import_heavy_backends():
    code = ("import sys; from negbench.cli import build_parser; build_parser(); "
            "heavy = [m for m in ('torch', 'open_clip', 'transformers', 'matplotlib', 'av') if m in sys.modules]; "
            "print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"--help imported {out.stdout.strip()}"


def test_help_lists_every_subcommand():
    out = subprocess.run([sys.executable, "-m", "negbench", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    for name in COMMANDS:
        assert name in out.stdout


def test_tasks_command_lists_the_suite_and_missing_files(tmp_path):
    out = subprocess.run([sys.executable, "-m", "negbench", "tasks", "--suite", "negbench",
                          "--data-root", str(tmp_path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "26 tasks" in out.stdout and "CSV missing" in out.stdout
    assert "COCO_val_mcq_llama3.1_rephrased.csv" in out.stdout


def test_unknown_task_is_one_clear_line(tmp_path):
    out = subprocess.run([sys.executable, "-m", "negbench", "tasks", "--suite", "negbenc"],
                         capture_output=True, text=True)
    assert out.returncode == 2
    assert "unknown suite 'negbenc'" in out.stderr and "Traceback" not in out.stderr
