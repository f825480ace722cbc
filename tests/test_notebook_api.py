"""The notebook API: negbench.evaluate / load_results, readable reprs, and the README example run as written."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import negbench

README = Path(__file__).resolve().parents[1] / "README.md"


def _readme_example() -> str:
    text = README.read_text()
    section = text.split("## Use it from a notebook", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_import_negbench_stays_light():
    code = ("import sys, negbench; heavy = [m for m in ('torch', 'pandas', 'open_clip', 'transformers') "
            "if m in sys.modules]; print(heavy, callable(negbench.evaluate))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.startswith("[]")  # negbench.evaluate itself is there, its imports happen on call


def test_readme_notebook_example_runs(sample_tasks, tiny_openclip_model, capsys):
    code = _readme_example()
    assert len(code.strip().splitlines()) == 5
    code = (code.replace("builtin:demo-out/models/pretrained", tiny_openclip_model)
                .replace("world_coco_mcq,world_voc_mcq", "sample_mcq,sample_binary")
                .replace("demo-out/tasks", str(sample_tasks.parent)))
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)  # noqa: S102 - the README's own example
    run = scope["run"]
    printed = capsys.readouterr().out
    assert "<Result " in printed and "sample_mcq (mcq): accuracy=" in printed
    assert [r.task_name for r in run.results] == ["sample_mcq", "sample_binary"]
    assert len(run.predictions) == 50 + 12 and set(run.predictions["task"]) == {"sample_mcq", "sample_binary"}
    assert {"model", "is_correct", "chosen_type", "predicted"} <= set(run.predictions.columns)
    assert (run.predictions.groupby("task")["is_correct"].mean()["sample_mcq"]
            == run.results[0].metric("accuracy")["value"])
    table = run.table()
    assert list(table.columns) == ["model", "task", "metric", "value", "ci_low", "ci_high", "n", "flags"]
    assert "<EvalRun 2 results, 62 per-item predictions>" in repr(run)


def test_evaluate_writes_when_asked_and_load_results_reads_back(sample_tasks, tiny_openclip_model, tmp_path):
    run = negbench.evaluate(tiny_openclip_model, [str(sample_tasks)], results_dir=tmp_path, limit=5,
                            progress=False, bootstrap_samples=10)
    assert len(run.results) == 4 and all(r.n == 5 or r.kind == "retrieval" for r in run.results)
    back = negbench.load_results(tmp_path)
    assert sorted(r.task_name for r in back) == sorted(r.task_name for r in run.results)
    assert repr(back[0]).startswith(f"<Result {tiny_openclip_model} on ")


def test_adapter_repr_names_the_model(tiny_openclip_model):
    adapter = negbench.load_model(tiny_openclip_model, device="cpu")
    assert repr(adapter).startswith("<") and "object at 0x" not in repr(adapter) and "on cpu" in repr(adapter)


def test_retrieval_rows_have_their_own_frame_and_is_correct_stays_boolean(sample_tasks, tiny_openclip_model,
                                                                        tmp_path):
    run = negbench.evaluate(tiny_openclip_model, "sample_mcq,sample_retrieval", data_root=sample_tasks.parent,
                            cache_dir=tmp_path / "cache", progress=False, bootstrap_samples=10, num_workers=0)
    assert run.predictions["is_correct"].dtype == bool and set(run.predictions["task"]) == {"sample_mcq"}
    assert len(run.predictions.query("not is_correct")) == int((~run.predictions["is_correct"]).sum())
    assert set(run.rankings["task"]) == {"sample_retrieval"} and "t2i_rank" in run.rankings
    assert "ranked captions" in repr(run)
