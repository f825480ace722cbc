"""Unknown commands and flags get a did-you-mean, lm-eval's and CLIP_benchmark's spellings included."""
from __future__ import annotations

import pytest

from negbench.cli import COMMANDS, main
from negbench.cli._common import suggest_command, suggest_flag


def _error(argv, capsys) -> str:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    return err[-1]


@pytest.mark.parametrize("argv,expected", [
    (["eval", "--output_path", "res"], "--output_path: did you mean --out?"),                  # lm-eval
    (["eval", "--batchsize", "8"], "--batchsize: did you mean --batch-size?"),               # a typo
    (["eval", "--dataset_root", "d"], "--dataset_root: did you mean --data-root?"),          # CLIP_benchmark
    (["eval", "--dataset", "coco_mcq"], "--dataset: did you mean --tasks?"),
    (["eval", "--include_path", "t.yaml"], "--include_path: did you mean --tasks-file?"),
    (["eval", "--model", "ViT-B-32", "--pretrained", "openai"],
     "did you mean --model openclip:ViT-B-32@openai?"),
    (["eval", "--model_args", "pretrained=x"], "a model is one string: --model openclip:ARCH@TAG"),
    (["table", "results", "--outt", "x"], "--outt: did you mean --out?"),                    # a typo
    (["data", "check", "--dataroot", "d"], "--dataroot: did you mean --data-root?"),         # before 'required'
])
def test_unknown_flag_gets_a_suggestion(argv, expected, capsys):
    line = _error(argv, capsys)
    command = " ".join(a for a in argv[:2] if a in ("eval", "table", "data", "check"))
    assert line.startswith(f"negbench {command}: error: ")  # the subcommand's usage, not the top level's
    assert "unrecognized arguments" in line and expected in line


def test_unknown_command_gets_a_suggestion(capsys):
    line = _error(["evaluate", "--tasks", "coco_mcq"], capsys)
    assert "unknown command 'evaluate'; did you mean 'eval'?" in line
    assert "unknown command 'tabel'; did you mean 'table'?" in _error(["tabel", "r"], capsys)


def test_nothing_close_says_nothing_wrong():
    known = ["--out", "--tasks", "--model"]
    assert suggest_flag("--frobnicate", known) is None
    assert suggest_flag("--output_path", ["--tasks"]) is None  # --out is not this command's flag
    assert suggest_command("zzz", list(COMMANDS)) is None
    assert suggest_flag("--outt=x", known) == "did you mean --out?"
