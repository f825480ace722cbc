"""Paired bootstrap against a naive loop, and `negbench table` on hand-made results."""
from __future__ import annotations

import json
import random

import numpy as np
import pytest

from negbench.analysis.stats import paired_bootstrap_diff
from negbench.cli import main


def _naive_paired(before, after, n_samples, seed):
    """The same resampling written as a plain loop over resamples and items."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(before), size=(n_samples, len(before)))
    diffs = []
    for row in idx:
        a = sum(after[i] for i in row) / len(row)
        b = sum(before[i] for i in row) / len(row)
        diffs.append(a - b)
    diffs.sort()
    return sum(after) / len(after) - sum(before) / len(before), np.quantile(diffs, [0.025, 0.975])


@pytest.mark.parametrize("n,seed,p_before,p_after", [(5, 0, 0.5, 0.5), (37, 1, 0.2, 0.8), (120, 2, 0.6, 0.55)])
def test_paired_bootstrap_matches_a_naive_loop(n, seed, p_before, p_after):
    r = random.Random(seed)
    before = [int(r.random() < p_before) for _ in range(n)]
    after = [int(r.random() < p_after) for _ in range(n)]
    got = paired_bootstrap_diff(before, after, n_samples=300, seed=seed)
    value, (lo, hi) = _naive_paired(before, after, 300, seed)
    assert got["value"] == pytest.approx(value) and got["n"] == n
    assert got["ci_low"] == pytest.approx(lo) and got["ci_high"] == pytest.approx(hi)
    assert got["excludes_zero"] == (lo > 0 or hi < 0)


def test_paired_bootstrap_rejects_unpaired_input():
    with pytest.raises(ValueError, match="one length"):
        paired_bootstrap_diff([1, 0], [1, 0, 1])
    assert paired_bootstrap_diff([], [])["n"] == 0


def _m(v):
    return {"value": v, "ci_low": v - 0.05, "ci_high": v + 0.05}


def _result(folder, model, task, kind, metrics, counts=None, **extra):
    doc = {"schema_version": 1, "model": model, "task": {"name": task, "kind": kind, "negated": True},
           "metrics": metrics, "counts": {"items": 40, "skipped": 0, **(counts or {})}, **extra}
    path = folder / f"{model.replace(':', '_')}__{task}.json"
    path.write_text(json.dumps(doc))


@pytest.fixture
def results(tmp_path):
    d = tmp_path / "results"
    d.mkdir()
    for model, acc in (("openclip:ViT-B-32@openai", 0.4), ("vlm:hf:tiny", 0.6)):
        extra = {"protocol": "choice-letter"} if model.startswith("vlm") else {}
        counts = {"unparsed": 4} if model.startswith("vlm") else {"ties": 3}
        _result(d, model, "coco_mcq", "mcq", {"accuracy": _m(acc), "accuracy_tie_aware": _m(acc - 0.02)},
                counts, **extra)
        _result(d, model, "voc_mcq", "mcq", {"accuracy": _m(acc + 0.1)})
        _result(d, model, "coco_retrieval", "retrieval", {"t2i_recall@5": _m(0.9), "t2i_recall@1": _m(0.5)})
    (d / "other.json").write_text('{"not": "results"}')
    return d


def test_table_long_format_and_wide_view(results, tmp_path, capsys):
    out = tmp_path / "table"
    assert main(["table", str(results), "--out", str(out), "--label", "vlm:hf:tiny=tiny VLM"]) == 0
    wide = capsys.readouterr().out
    lines = (out / "table.csv").read_text().splitlines()
    assert lines[0] == "model,task,metric,value,ci_low,ci_high,n,flags"
    # files written before metrics carried their n: the task's items (40), an empty flags cell
    assert "openclip:ViT-B-32@openai,coco_mcq,accuracy_tie_aware,0.38,0.33,0.43,40," in lines
    assert "openclip:ViT-B-32@openai,coco_mcq,ties,3,,,40," in lines
    assert "tiny VLM,coco_mcq,unparsed,4,,,40," in lines
    # means only within one metric and one task kind: MCQ accuracy over 2 tasks, R@5 apart
    assert "mean mcq accuracy (2 tasks)" in wide and "mean retrieval t2i_recall@5 (1 tasks)" in wide
    vlm_row = next(line for line in wide.splitlines() if line.startswith("| tiny VLM |"))
    assert vlm_row.split(" | ")[-2:] == ["65.0", "90.0 |"]
    assert wide.startswith((out / "table_wide.md").read_text())
    long_md = (out / "table.md").read_text()
    assert "| tiny VLM | coco_mcq | accuracy | 60.0 | [55.0, 65.0] | 40 |  |" in long_md
    # the wide view: value [95% CI], the column's n in its header, units in a footnote
    assert "| model | coco_mcq (accuracy, n=40) |" in wide and "| 60.0 [55.0, 65.0] |" in vlm_row
    assert "Values in % with their 95% interval" in wide


def test_table_metric_is_validated_with_a_suggestion(results, capsys):
    assert main(["table", str(results), "--metric", "acc"]) == 2
    err = capsys.readouterr().err
    assert "--metric 'acc' is in none of the results; did you mean 'accuracy'" in err
    assert main(["table", str(results), "--metric", "accuracy_tie_aware", "--long"]) == 0
    out = capsys.readouterr().out
    assert "accuracy_tie_aware" in out and "| accuracy |" not in out
    assert main(["table", str(results), "--label", "nobody=x"]) == 2
    assert "--label names models with no results" in capsys.readouterr().err
