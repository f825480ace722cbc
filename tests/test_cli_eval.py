"""End-to-end `negbench eval` / `negbench table` on generated sample tasks."""
from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest

from negbench.cli import main
from negbench.evaluation.engine import model_slug


def test_eval_writes_json_parquet_and_second_run_hits_cache(sample_tasks, tiny_openclip_model, tmp_path, capsys):
    results, cache = tmp_path / "results", tmp_path / "cache"
    argv = ["eval", "--model", tiny_openclip_model, "--tasks-file", str(sample_tasks), "--results-dir", str(results),
            "--cache-dir", str(cache), "--quiet", "--bootstrap-samples", "50", "--batch-size", "8"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "sample_mcq" in out and "accuracy" in out and "t2i_recall@5" in out and "Negation (negative, n=" in out
    folder = results / model_slug(tiny_openclip_model)
    for task in ("sample_mcq", "sample_retrieval", "sample_video_mcq", "sample_binary"):
        doc = json.loads((folder / f"{task}.json").read_text())
        assert doc["model"] == tiny_openclip_model and doc["schema_version"] == 2
        assert len(pd.read_parquet(folder / f"{task}.parquet")) > 0
    first = json.loads((folder / "sample_mcq.json").read_text())
    assert first["cache"]["media_misses"] == 12

    assert main(argv + ["--task", "sample_mcq"]) == 0   # only this task, recomputed from the cache
    second = json.loads((folder / "sample_mcq.json").read_text())
    assert second["cache"] == {"media_hits": 12, "media_misses": 0, "text_hits": first["counts"]["unique_captions"],
                               "text_misses": 0}
    assert second["metrics"] == first["metrics"]

    capsys.readouterr()
    assert main(argv + ["--skip-existing", "--no-cache"]) == 0
    assert capsys.readouterr().out.count("\n  reused ") == 4

    # the table: long format on disk, the wide view printed
    assert main(["table", str(results / "**" / "*.json"), "--out", str(tmp_path / "board")]) == 0
    md = capsys.readouterr().out
    assert md.startswith("| model | sample_binary (accuracy, n=12) |") and tiny_openclip_model in md
    assert (tmp_path / "board" / "table_wide.md").read_text() in md
    csv_text = (tmp_path / "board" / "table.csv").read_text().splitlines()
    assert csv_text[0] == "model,task,metric,value,ci_low,ci_high,n,flags"
    assert any(line.startswith(f"{tiny_openclip_model},sample_retrieval,t2i_recall@5,") for line in csv_text)


def test_user_errors_are_one_line(sample_tasks, tiny_openclip_model, tmp_path, capsys):
    assert main(["eval", "--model", tiny_openclip_model, "--task", "no_such_task", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "unknown task 'no_such_task'" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert main(["eval", "--model", "nonsense", "--tasks-file", str(sample_tasks)]) == 2
    assert "BACKEND:SPEC" in capsys.readouterr().err
    assert main(["eval", "--model", tiny_openclip_model]) == 2
    assert "nothing to evaluate" in capsys.readouterr().err
    assert main(["table", str(tmp_path / "nothing*.json")]) == 2
    assert "no results JSON" in capsys.readouterr().err


def test_help_lists_commands_and_is_light():
    code = ("import sys; from negbench.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "heavy = [m for m in ('open_clip', 'transformers', 'torch') if m in sys.modules]\n"
            "print('HEAVY', heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60).stdout
    assert "eval" in out and "table" in out and "tasks" in out
    assert "HEAVY []" in out


@pytest.mark.parametrize("cmd", ["eval", "table"])
def test_subcommand_help(cmd, capsys):
    with pytest.raises(SystemExit):
        main([cmd, "--help"])
    assert "usage" in capsys.readouterr().out
