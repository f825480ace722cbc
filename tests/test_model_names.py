"""One model, one name: local paths in model strings are resolved, so the same weights named by a
relative path, an absolute path, a trailing slash or a symlink are one results folder, one
`negbench table` row and one report model. And the per-item Parquet names the negated object."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pandas as pd
import pytest

from conftest import write_sample_tasks
from negbench.cli import main
from negbench.evaluation.engine import evaluate_task
from negbench.inputs.tasks import load_task_file
from negbench.models.names import canonical_model_string

QUICK = dict(bootstrap_samples=10, progress=False, num_workers=0)


@pytest.fixture
def weights(tmp_path, monkeypatch) -> Path:
    """A folder `runs/model` (with a file) under a working directory the test moved into."""
    folder = tmp_path / "work" / "runs" / "model"
    folder.mkdir(parents=True)
    (folder / "weights.safetensors").write_bytes(b"x")
    (folder / "ckpt.pt").write_bytes(b"x")
    monkeypatch.chdir(tmp_path / "work")
    return folder.resolve()


@pytest.mark.parametrize("template", [
    "builtin:{p}", "hf:{p}", "vlm:hf:{p}", "vlm:hf:{p}#choice+shuffle3", "openclip:ViT-B-32@{p}/ckpt.pt",
    "openclip:local-dir:{p}", "negaware:decompose:builtin:{p}", "negaware:project,beta=0.5:openclip:ViT-B-32@{p}/ckpt.pt",
    "negaware:decompose,llm=gpt-4o-mini@http://127.0.0.1:9/v1:hf:{p}",
])
def test_every_spelling_of_a_local_path_is_one_name(weights, tmp_path, template):
    link = tmp_path / "link"
    link.symlink_to(weights)
    spellings = ["runs/model", "./runs/model", "runs/model/", "runs/../runs/model", str(weights), str(link)]
    names = {canonical_model_string(template.format(p=s)) for s in spellings}
    assert names == {template.format(p=weights)}
    (name,) = names
    assert canonical_model_string(name) == name                      # idempotent


@pytest.mark.parametrize("model", [
    "hf:openai/clip-vit-base-patch32", "openclip:ViT-B-32@openai", "openclip:hf-hub:timm/ViT-B-16-SigLIP",
    "vlm:openai:gpt-4o@http://127.0.0.1:8000/v1", "vlm:hf:llava-hf/llava-1.5-7b-hf#likelihood",
    "builtin:does/not/exist", "negaware:decompose:openclip:ViT-B-32@openai", "myplugin:./runs/model",
    "negaware:nonsense", "not a model string",
])
def test_names_that_are_not_local_paths_stay_as_written(weights, model):
    assert canonical_model_string(model) == model


def test_relative_and_absolute_paths_share_one_result_and_one_table_row(tmp_path, tiny_openclip_arch,
                                                                        tiny_openclip_checkpoint, monkeypatch, capsys):
    tasks_yaml = write_sample_tasks(tmp_path / "tasks", n_images=4, n_questions=6, n_videos=1)
    spec = next(s for s in load_task_file(tasks_yaml) if s.name == "sample_mcq")
    monkeypatch.chdir(tiny_openclip_checkpoint.parent)
    relative = f"openclip:{tiny_openclip_arch}@{tiny_openclip_checkpoint.name}"
    absolute = f"openclip:{tiny_openclip_arch}@{tiny_openclip_checkpoint}"
    results = tmp_path / "results"
    first = evaluate_task(spec, relative, results_dir=results, **QUICK)
    written = os.stat(first["results_file"]).st_mtime_ns
    again = evaluate_task(spec, absolute, results_dir=results, skip_existing=True, **QUICK)
    assert first["model"] == absolute and again["results_file"] == first["results_file"]
    assert os.stat(again["results_file"]).st_mtime_ns == written          # reused, not rerun
    assert len([p for p in results.iterdir() if p.is_dir()]) == 1

    # a result written by an older negbench under the relative spelling: still the same model row
    old = Path(first["results_file"])
    elsewhere = results / "older" / old.name
    elsewhere.parent.mkdir()
    doc = json.loads(old.read_text())
    elsewhere.write_text(json.dumps({**doc, "model": relative}))
    elsewhere.with_suffix(".parquet").write_bytes(old.with_suffix(".parquet").read_bytes())
    assert main(["table", str(results), "--out", str(tmp_path / "t"), "--label", f"{relative}=mine"]) == 0
    long = pd.read_csv(tmp_path / "t" / "table.csv")
    assert set(long["model"]) == {"mine"} and not long.duplicated(["model", "task", "metric"]).any()


def test_per_item_predictions_name_the_negated_object(tmp_path, tiny_openclip_model):
    tasks_yaml = write_sample_tasks(tmp_path / "tasks", n_images=4, n_questions=12, n_videos=1)
    specs = {s.name: s for s in load_task_file(tasks_yaml)}
    mcq = evaluate_task(specs["sample_mcq"], tiny_openclip_model, results_dir=tmp_path / "r", **QUICK)
    df = pd.read_parquet(Path(mcq["results_file"]).with_suffix(".parquet"))
    for _, row in df.iterrows():   # the object the correct option's template negates ("... not [feature] N.")
        correct = row[f"caption_{row['correct_answer']}"]
        expected = None if row["template"] == "positive" else re.search(r"not (?:feature )?(.+)\.$", correct)[1]
        found = None if pd.isna(row["negated_object"]) else row["negated_object"]
        assert found == expected, (row["template"], correct)
    assert df["negated_object"].notna().sum() == (df["template"] != "positive").sum() > 0

    ret = evaluate_task(specs["sample_retrieval"], tiny_openclip_model, results_dir=tmp_path / "r", **QUICK)
    df = pd.read_parquet(Path(ret["results_file"]).with_suffix(".parquet"))
    negated = df[df["caption"].str.contains(" no ")]
    assert len(negated) == 4 and (negated["negated_object"] == negated["caption"].str.extract(r"no (\w+)\.")[0]).all()
    assert df.loc[~df.index.isin(negated.index), "negated_object"].isna().all()
