"""MCQ ties: counted, scored 1/t by the tie-aware rule, and a constant text tower exposed."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from negbench.evaluation import metrics
from negbench.evaluation.engine import evaluate_task
from negbench.inputs.tasks import TaskSpec
from negbench.models.base import load_model

from published_fixtures import write_media, write_release


def _naive(scores, correct):
    """Deliberately plain loops: (tie count per question, tie-aware credit per question)."""
    counts, credit = [], []
    for row, c in zip(scores, correct):
        top = max(row)
        tied = [j for j, v in enumerate(row) if v == top]
        counts.append(len(tied))
        credit.append(1.0 / len(tied) if c in tied else 0.0)
    return counts, credit


@pytest.mark.parametrize("seed,levels", list(itertools.product(range(4), (2, 3, 1000))))
def test_tie_functions_match_a_naive_reference(seed, levels):
    rng = np.random.default_rng(seed)
    scores = (rng.integers(0, levels, size=(40, 4)) / levels).astype(np.float32)  # few levels -> many ties
    correct = rng.integers(0, 4, size=40)
    counts, credit = _naive(scores.tolist(), correct.tolist())
    np.testing.assert_array_equal(metrics.tie_counts(scores), counts)
    np.testing.assert_array_equal(metrics.tied_questions(scores), np.array(counts) >= 2)
    np.testing.assert_allclose(metrics.tie_aware_credit(scores, correct), credit)
    # without ties the tie-aware rule is the published one
    no_tie = ~metrics.tied_questions(scores)
    pred = metrics.mcq_predictions(scores)
    np.testing.assert_array_equal(metrics.tie_aware_credit(scores, correct)[no_tie], (pred == correct)[no_tie])


def test_ties_need_exact_float32_equality():
    s = np.array([[0.5, np.nextafter(np.float32(0.5), np.float32(0)), 0.1]], dtype=np.float32)
    assert metrics.tie_counts(s).tolist() == [1]
    assert metrics.tie_counts(np.array([[0.5, 0.5, 0.1]], dtype=np.float32)).tolist() == [2]


def test_constant_text_tower_scores_100_published_and_chance_tie_aware(tmp_path, tiny_openclip_arch, caplog):
    data_root = write_media(tmp_path / "data", "natural")
    release = write_release(tmp_path / "release") / "NegBench"
    adapter = load_model(f"openclip:{tiny_openclip_arch}@random", device="cpu")
    with torch.no_grad():  # a real model whose text tower ends in a constant: every caption, one vector
        adapter.module.ln_final.weight.zero_()
        adapter.module.ln_final.bias.copy_(torch.linspace(-1, 1, adapter.module.ln_final.bias.numel()))
    spec = TaskSpec(name="coco_mcq", kind="mcq", file=str(release / "images/COCO_val_mcq_llama3.1_rephrased.csv"))
    res = evaluate_task(spec, adapter, data_root=data_root, results_dir=tmp_path / "results",
                        bootstrap_samples=20, progress=False)
    n = res["counts"]["items"]
    assert res["metrics"]["accuracy"]["value"] == 1.0          # the published rule: ties -> option 0
    assert res["counts"]["ties"] == n == 4
    assert res["metrics"]["accuracy_tie_aware"]["value"] == pytest.approx(0.25)
    assert res["metrics"]["accuracy_tie_aware"]["ci_low"] == pytest.approx(0.25)
    assert any("tied top scores" in r.getMessage() for r in caplog.records)
    assert res["path_rewrite"]["source"] == "auto"
