"""CLI conventions (issue 14): no prefix matching, one list convention, --out, --limit, repeatable
--model, `negbench tasks` / `--tasks list`, honest help defaults, quiet third-party output."""
from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import re
import subprocess
import sys

import pytest

from negbench.cli import build_parser, main
from negbench.cli._common import HelpFormatter, split_list
from negbench.evaluation.engine import model_slug


def _all_parsers(parser=None, prefix="negbench"):
    parser = parser or build_parser()
    yield prefix, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _all_parsers(sub, f"{prefix} {name}")


def test_every_parser_has_no_abbreviations_the_formatter_and_help_on_every_flag():
    for name, p in _all_parsers():
        assert p.allow_abbrev is False, name
        assert issubclass(p.formatter_class, HelpFormatter), name
        for a in p._actions:
            if a.option_strings and a.help is not argparse.SUPPRESS:
                assert a.help, f"{name} {a.option_strings} has no help"


def test_tasks_is_never_abbreviated_to_tasks_file_and_lists_accumulate():
    p = build_parser()
    args = p.parse_args(["eval", "--model", "m", "--tasks", "a,b", "--tasks", "c", "--task", "a,d"])
    assert args.tasks == ["a", "b", "c", "d"] and args.tasks_file == []
    with pytest.raises(SystemExit):
        p.parse_args(["eval", "--model", "m", "--tasks-fil", "x.yaml"])  # no prefix matching
    assert split_list(["x, y", "", "y,z"]) == ["x", "y", "z"]
    # --results-dir still works, as an alias of --out; --quiet of --no-progress
    args = p.parse_args(["eval", "--model", "m,n", "--results-dir", "R", "--quiet"])
    assert args.out == "R" and args.no_progress is True and args.model == ["m", "n"]


def test_tasks_listing_from_both_spellings(capsys):
    assert main(["tasks"]) == 0
    listing = capsys.readouterr().out
    assert main(["eval", "--tasks", "list"]) == 0
    assert capsys.readouterr().out == listing
    assert "coco_mcq " in listing and "Suites (tasks): " in listing and "negbench (" in listing


def test_missing_data_root_names_the_flag(capsys):
    assert main(["eval", "--model", "builtin:/nowhere", "--tasks", "coco_mcq"]) == 2
    err = capsys.readouterr().err
    assert "--data-root" in err and "coco_mcq" in err and len(err.strip().splitlines()) == 1


def test_limit_is_recorded_and_never_mixed_with_full_runs(sample_tasks, tiny_openclip_model, tmp_path, capsys):
    out = tmp_path / "res"
    base = ["eval", "--model", tiny_openclip_model, "--tasks", "sample_mcq", "--data-root", str(sample_tasks.parent),
            "--out", str(out), "--no-cache", "--no-progress", "--bootstrap-samples", "20"]
    assert main(base + ["--limit", "7"]) == 0  # tasks.yaml in --data-root registers sample_mcq
    doc = json.loads((out / model_slug(tiny_openclip_model) / "sample_mcq.json").read_text())
    assert doc["limit"] == 7 and doc["counts"]["items"] == 7
    capsys.readouterr()
    assert main(base + ["--skip-existing"]) == 0  # a full run does not reuse the 7-item result
    assert "  reused " not in capsys.readouterr().out
    doc = json.loads((out / model_slug(tiny_openclip_model) / "sample_mcq.json").read_text())
    assert doc["limit"] is None and doc["counts"]["items"] == 50
    assert main(base + ["--skip-existing"]) == 0
    assert "  reused " in capsys.readouterr().out


def test_repeated_model_prints_one_summary_table(sample_tasks, tiny_openclip_model, tiny_hf_dir, tmp_path, capsys):
    models = [tiny_openclip_model, f"hf:{tiny_hf_dir}"]
    argv = ["eval", "--model", models[0], "--model", models[1], "--tasks", "sample_mcq,sample_binary",
            "--tasks-file", str(sample_tasks), "--out", str(tmp_path / "r"), "--no-cache", "--no-progress",
            "--bootstrap-samples", "20", "--limit", "10"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    summary = out[out.index("model "):]
    assert out.count("95% CI") == 1
    assert len([ln for ln in summary.splitlines() if "sample_" in ln]) == 4


def test_progress_bars_name_the_task(sample_tasks, tiny_openclip_model, tmp_path, capsys):
    assert main(["eval", "--model", tiny_openclip_model, "--tasks", "sample_binary", "--tasks-file",
                 str(sample_tasks), "--out", str(tmp_path), "--no-cache", "--bootstrap-samples", "10"]) == 0
    err = capsys.readouterr().err
    assert "sample_binary: encode images" in err and "sample_binary: encode captions" in err


def _help_defaults(argv) -> dict[str, str]:
    """dest -> the default a --help text states."""
    p = build_parser()
    sub = p
    for word in argv:
        sub = next(a for a in sub._actions if isinstance(a, argparse._SubParsersAction)).choices[word]
    fmt = sub._get_formatter()
    out = {}
    for a in sub._actions:
        if not a.option_strings:
            continue
        text = fmt._get_help_string(a) % {**vars(a), "default": a.default}
        m = re.search(r"\(default: ([^;)]+)[;)]", text)
        if m:
            out[a.dest] = m.group(1).strip()
    return out


def _same(shown: str, value) -> bool:
    try:
        return float(shown) == float(value)
    except (TypeError, ValueError):
        return shown == str(value)


def test_help_defaults_are_the_code_defaults():
    from negbench.evaluation.engine import evaluate_task
    from negbench.train.pretrain import pretrain
    from negbench.train.trainer import TrainConfig
    from negbench.world.generate import DEFAULTS

    code = {
        ("pretrain",): {k: v.default for k, v in inspect.signature(pretrain).parameters.items()},
        ("finetune",): {f.name: f.default for f in dataclasses.fields(TrainConfig)},
        ("world", "generate"): dict(DEFAULTS),
        ("eval",): {k: v.default for k, v in inspect.signature(evaluate_task).parameters.items()},
    }
    checked = 0
    for argv, defaults in code.items():
        for dest, shown in _help_defaults(argv).items():
            # a None default is described in words ("the TSV's folder"); literals must match
            if dest in defaults and defaults[dest] not in (None, inspect.Parameter.empty):
                assert _same(shown, defaults[dest]), f"{' '.join(argv)} --{dest}: help says {shown}, code {defaults[dest]}"
                checked += 1
    assert checked >= 12
    assert _help_defaults(["pretrain"])["steps"] == "200"


def test_third_party_output_is_silenced_unless_verbose():
    code = ("import logging, sys; from negbench.cli import configure_output; configure_output({v}); "
            "logging.getLogger('matplotlib.font_manager').info('FONTCACHE'); "
            "logging.getLogger('negbench.x').info('OURS'); "
            "import transformers.utils.logging as tl; print('BARS', tl.is_progress_bar_enabled())")
    quiet = subprocess.run([sys.executable, "-c", code.format(v=False)], capture_output=True, text=True, timeout=120)
    assert "OURS" in quiet.stderr and "FONTCACHE" not in quiet.stderr and "BARS False" in quiet.stdout
    loud = subprocess.run([sys.executable, "-c", code.format(v=True)], capture_output=True, text=True, timeout=120)
    assert "FONTCACHE" in loud.stderr


def test_model_loading_failures_are_one_line(sample_tasks, tmp_path, capsys):
    assert main(["eval", "--model", f"hf:{tmp_path / 'no_such_model'}", "--tasks-file", str(sample_tasks),
                 "--tasks", "sample_binary", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "no_such_model" in err and "Traceback" not in err
    assert main(["probe-text", "--model", "st:" + str(tmp_path / "nonexistent")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("probe-text: loading ") and "Traceback" not in err  # the progress line, then one error
    errors = [ln for ln in err.splitlines() if "error:" in ln]
    assert len(errors) == 1 and "nonexistent" in errors[0] and len(err.strip().splitlines()) == 2
    assert main(["probe-text", "--model", "nope:x"]) == 2
    assert "st (st:PATH_OR_ID)" in capsys.readouterr().err


def test_build_csv_without_objects_exits_nonzero_and_says_why(tmp_path, capsys):
    from PIL import Image

    rows = ["filepath,caption"]
    for i in range(4):
        Image.new("RGB", (32, 32), (60 * i, 20, 20)).save(tmp_path / f"im{i}.png")
        rows.append(f"im{i}.png,a dog and a cat on a bench")
    (tmp_path / "data.csv").write_text("\n".join(rows) + "\n")
    rc = main(["build", "csv", "--src", str(tmp_path / "data.csv"), "--out", str(tmp_path / "out"), "--tasks", "mcq"])
    err = capsys.readouterr().err
    assert rc == 1 and "0 items" in err and "`objects` column" in err and "--verifier" in err
    with pytest.raises(SystemExit):
        main(["build", "--help"])
    assert "objects      exhaustive object labels" in capsys.readouterr().out


def test_negdata_warns_when_the_vocabulary_misses_most_rows():
    from negbench.cli.negdata import vocab_warning

    assert vocab_warning(100, 10, None) is None
    text = vocab_warning(100, 34, None)
    assert "34 of 100" in text and "--vocab" in text and "WORLD/vocab.txt" in text


def test_offline_pretrained_tag_fails_once_in_one_line(sample_tasks, tmp_path):
    import os

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "XDG_CACHE_HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-m", "negbench", "eval", "--model", "openclip:ViT-B-32@openai",
                          "--tasks-file", str(sample_tasks), "--tasks", "sample_binary", "--out", str(tmp_path / "r")],
                         capture_output=True, text=True, timeout=180, env=env)
    assert out.returncode == 2
    lines = [ln for ln in out.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, lines
    assert "'openai' is a known tag for ViT-B-32" in lines[0] and "Known tags" not in lines[0]
