"""bf16 with its near ties answered at fp32 (evaluation/rescore.py), on a real tiny open_clip model.

The tiny random model gives many near-tied options (the worst case): a plain bf16 pass changes
answers against fp32, the rescored one changes none of them, and only near ties are touched."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import write_sample_tasks
from negbench.evaluation.engine import evaluate_task
from negbench.evaluation.metrics import near_ties
from negbench.evaluation.rescore import RESCORE_MARGIN
from negbench.inputs.tasks import load_task_file

QUICK = dict(bootstrap_samples=10, progress=False, num_workers=0)


@pytest.fixture(scope="module")
def mcq(tmp_path_factory):
    root = tmp_path_factory.mktemp("rescore")
    specs = {s.name: s for s in load_task_file(write_sample_tasks(root, n_images=12, n_questions=120, n_videos=1))}
    return specs["sample_mcq"]


def _predictions(result) -> pd.DataFrame:
    return pd.read_parquet(Path(result["results_file"]).with_suffix(".parquet"))


def test_near_ties_get_the_fp32_answer_and_nothing_else_changes(mcq, tiny_openclip_model, tmp_path):
    run = dict(QUICK, cache_dir=tmp_path / "cache")
    fp32 = _predictions(evaluate_task(mcq, tiny_openclip_model, precision="fp32", results_dir=tmp_path / "a", **run))
    plain = evaluate_task(mcq, tiny_openclip_model, precision="bf16", rescore_near_ties=False,
                          results_dir=tmp_path / "b", **run)
    fixed = evaluate_task(mcq, tiny_openclip_model, precision="bf16", results_dir=tmp_path / "c", **run)
    p_plain, p_fixed = _predictions(plain), _predictions(fixed)

    # what the bf16 pass could not be trusted to order
    tied = near_ties(np.stack(p_plain["scores"].to_numpy()), "bf16", margin=RESCORE_MARGIN)
    assert "rescored_fp32" not in plain["counts"] and fixed["counts"]["rescored_fp32"] == int(tied.sum()) > 0
    assert (p_plain["predicted"] != fp32["predicted"]).any()                # plain bf16 changes answers here
    assert (p_fixed["predicted"] == fp32["predicted"]).all()                # rescored: none
    untouched = ~tied   # every other question keeps its bf16 scores, bit for bit
    assert np.array_equal(np.stack(p_fixed["scores"][untouched]), np.stack(p_plain["scores"][untouched]))
    assert fixed["cache"]["rescore_media_hits"] > 0                         # the fp32 run's embeddings, reused
    # the two bf16 settings are two results: neither is reused for the other
    assert fixed["fingerprint"]["rescore_near_ties"] is True and plain["fingerprint"]["rescore_near_ties"] is False


def test_fp32_runs_and_adapters_are_not_rescored(mcq, tiny_openclip_model, tmp_path):
    from negbench.models.base import load_model

    fp32 = evaluate_task(mcq, tiny_openclip_model, precision="fp32", results_dir=tmp_path / "a", **QUICK)
    assert "rescored_fp32" not in fp32["counts"] and "rescore_near_ties" not in fp32["fingerprint"]
    adapter = load_model(tiny_openclip_model, precision="bf16")
    res = evaluate_task(mcq, adapter, **QUICK)
    assert res["counts"]["rescored_fp32"] == 0
    assert any("no fp32 copy to load" in w for w in res.get("warnings", [])), res.get("warnings")


def test_the_cli_flag_keeps_the_low_precision_answers(mcq, tiny_openclip_model, tmp_path, capsys):
    import json

    from negbench.cli import main

    args = ["eval", "--tasks-file", str(Path(mcq.spec_dir) / "tasks.yaml"), "--tasks", "sample_mcq", "--model",
            tiny_openclip_model, "--precision", "bf16", "--bootstrap-samples", "10", "--no-progress",
            "--no-cache", "--out"]
    assert main([*args, str(tmp_path / "r"), "--no-rescore-near-ties"]) == 0
    assert main([*args, str(tmp_path / "s")]) == 0
    off, on = (json.loads(next((tmp_path / d).rglob("sample_mcq.json")).read_text()) for d in ("r", "s"))
    assert "rescored_fp32" not in off["counts"] and on["counts"]["rescored_fp32"] > 0
