"""Every number a table shows has its own n: the metric's (a question type's questions, t2i recall's caption
queries, i2t recall's media), recounted here naively from the per-item Parquet of real runs of a tiny
open_clip model; table.csv keeps the bare task name (the marks go to `flags`); the report shows the same n
everywhere, with an interval beside every per-type number, and a paired interval for tie-aware credit."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import write_sample_tasks
from negbench.analysis.leaderboard import make_table
from negbench.analysis.results import load_results
from negbench.evaluation.engine import evaluate_task
from negbench.inputs.tasks import load_task_file

QUICK = dict(bootstrap_samples=20, progress=False, num_workers=0)
TASKS = ("sample_mcq", "sample_retrieval", "sample_binary")


@pytest.fixture(scope="module")
def second_model(tiny_openclip_arch, tmp_path_factory) -> str:
    """Another random tiny open_clip checkpoint (other seed): the 'after' of a before/after pair."""
    import open_clip
    import torch

    torch.manual_seed(7)
    model = open_clip.create_model(tiny_openclip_arch, pretrained=None)
    path = tmp_path_factory.mktemp("second_ckpt") / "tiny_after.pt"
    torch.save({"epoch": 1, "state_dict": model.state_dict()}, path)
    return f"openclip:{tiny_openclip_arch}@{path}"


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_openclip_model, second_model) -> Path:
    """Both models on an MCQ, a retrieval task whose images share caption texts (12 images, 8 objects:
    24 caption queries, 16 distinct texts) and a binary MCQ; plus a --limit run of the first model."""
    root = tmp_path_factory.mktemp("table_n")
    specs = {s.name: s for s in load_task_file(write_sample_tasks(root / "tasks", n_images=12, n_questions=40))}
    for model in (tiny_openclip_model, second_model):
        for name in TASKS:
            evaluate_task(specs[name], model, results_dir=root / "results", **QUICK)
    evaluate_task(specs["sample_mcq"], tiny_openclip_model, results_dir=root / "limited", limit=7, **QUICK)
    return root


def _per_item(result) -> pd.DataFrame:
    return pd.read_parquet(result.predictions_path())


def naive_counts(result) -> dict[str, tuple[int, float]]:
    """metric -> (n, value) recounted from the per-item Parquet with plain loops."""
    df = _per_item(result)
    out = {}
    if result.kind == "retrieval":
        ranks = list(df["t2i_rank"])
        for k in (1, 5, 10):
            hits = [1 if 0 <= r < k else 0 for r in ranks]
            out[f"t2i_recall@{k}"] = (len(hits), sum(hits) / len(hits))
        return out
    rows = list(zip(df["is_correct"], df["template"]))
    out["accuracy"] = (len(rows), sum(bool(c) for c, _ in rows) / len(rows))
    for t in {t for _, t in rows if t}:
        mine = [bool(c) for c, tt in rows if tt == t]
        out[f"accuracy_{t}"] = (len(mine), sum(mine) / len(mine))
    credit = []
    for scores, correct in zip(df["scores"], df["correct_answer"]):
        s = [np.float32(x) for x in scores]
        top = [j for j, x in enumerate(s) if x == max(s)]
        credit.append(1 / len(top) if correct in top else 0.0)
    out["accuracy_tie_aware"] = (len(credit), sum(credit) / len(credit))
    return out


def test_every_metric_records_its_own_n_equal_to_a_recount(runs):
    results = load_results([runs / "results"])
    assert len(results) == 2 * len(TASKS)
    for r in results:
        for name, m in r.data["metrics"].items():
            assert isinstance(m.get("n"), int), (r.task_name, name, m)
        for name, (n, value) in naive_counts(r).items():
            assert r.data["metrics"][name]["n"] == n and r.metric_n(name) == n, (r.task_name, name)
            assert r.data["metrics"][name]["value"] == pytest.approx(value), (r.task_name, name)
        if r.kind == "retrieval":
            df = _per_item(r)
            # t2i over every caption query (24), more than the distinct texts the counts hold (16):
            # the 299-vs-300 of the audit; i2t over the media (12)
            assert r.metric_n("t2i_recall@5") == len(df) == 24 > r.data["counts"]["unique_captions"] == 16
            assert r.metric_n("i2t_recall@5") == df["media"].nunique() == r.data["counts"]["unique_media"] == 12
        else:
            types = r.templates()
            assert types and all(r.metric_n(f"accuracy_{t}") < r.n for t in types)


def test_table_csv_n_is_the_metrics_and_task_is_joinable(runs, tmp_path):
    table = make_table([runs / "results", runs / "limited"], out=tmp_path)
    rows = list(csv.DictReader((tmp_path / "table.csv").open()))
    assert list(rows[0]) == ["model", "task", "metric", "value", "ci_low", "ci_high", "n", "flags"]
    assert {r["task"] for r in rows} == set(TASKS)   # bare names, the --limit run's too
    limited = [r for r in rows if r["flags"]]
    assert limited and all(r["flags"] == "--limit 7: first 7 items only" and r["task"] == "sample_mcq"
                           for r in limited)
    full = load_results([runs / "results"])
    by_key = {(r.model, r.task_name): r for r in full}
    checked = 0
    for row in rows:
        if row["flags"] or row["metric"] in ("ties", "skipped", "unparsed"):
            continue
        result = by_key[(row["model"], row["task"])]
        assert int(row["n"]) == naive_counts(result).get(row["metric"], (result.metric_n(row["metric"]),))[0]
        checked += 1
    assert checked > 20
    # per-type accuracy: the type's questions, not the task's
    neg = next(r for r in rows if r["task"] == "sample_mcq" and r["metric"] == "accuracy_negative" and not r["flags"])
    assert int(neg["n"]) == sum(_per_item(by_key[(neg["model"], "sample_mcq")])["template"] == "negative") < 40
    # the long Markdown and the DataFrame carry the same columns
    assert "| n | flags |" in table.long_md.splitlines()[0]


def test_wide_view_has_interval_n_and_flags(runs, tmp_path):
    wide = make_table([runs / "results", runs / "limited"]).wide_md
    lines = wide.splitlines()
    header = lines[0]
    assert "sample_mcq (accuracy" in header and "sample_retrieval (t2i_recall@5, n=24)" in header
    assert header.rstrip(" |").endswith("flags")
    # the limited run (it replaces the first model's full one) has another n than the second model's: n
    # moves into the cells, and the flag is said
    full, = [r for r in load_results([runs / "results"]) if r.task_name == "sample_mcq" and "tiny_after" in r.model]
    cell = f"[{100 * full.metric('accuracy')['ci_low']:.1f}, {100 * full.metric('accuracy')['ci_high']:.1f}] (n=40)"
    assert any(cell in line for line in lines)
    assert any("(n=7)" in line and "sample_mcq: --limit 7: first 7 items only" in line for line in lines)
    assert "† the mean includes an incomplete or --limit result" in wide and "Values in %" in wide


def test_report_shows_one_n_per_metric_everywhere(runs, tmp_path, tiny_openclip_model, second_model):
    pytest.importorskip("matplotlib")
    from negbench.analysis.report import SECTIONS, make_report
    from report_checks import section, tables

    labels = {tiny_openclip_model: "before", second_model: "after"}
    pair = make_report([runs / "results"], tmp_path / "pair", labels=labels).with_name("report.md").read_text()
    mine = [r.path for r in load_results([runs / "results"]) if r.model == tiny_openclip_model]
    one = make_report(mine, tmp_path / "one").with_name("report.md").read_text()
    diff = tables(section(pair, SECTIONS["headline"]))[0]
    chance = tables(section(one, SECTIONS["headline"]))[0]
    t2i_pair = next(r for r in diff if r["metric"].startswith("t2i_recall@5"))
    t2i_one = next(r for r in chance if r["metric"].startswith("t2i_recall@5"))
    assert t2i_pair["n"] == t2i_one["n"] == "24"
    # tie-aware credit gets its paired interval from the Parquet's option scores, like accuracy
    tie = next(r for r in diff if r["metric"].startswith("accuracy_tie_aware"))
    assert "no CI" not in tie["difference (paired 95% CI)"] and tie["n"] == "40", tie
    mcq_of = {r.model: r for r in load_results([runs / "results"]) if r.task_name == "sample_mcq"}
    credit = {m: naive_counts(r)["accuracy_tie_aware"][1] for m, r in mcq_of.items()}
    change = 100 * (credit[second_model] - credit[tiny_openclip_model])
    assert tie["difference (paired 95% CI)"].startswith(f"{change:+.1f} pp ["), (tie, change)
    # All measured results: every per-type number with its interval and n; the headline with its own n
    measured = tables(section(pair, SECTIONS["measured"]))[0]
    mcq = next(r for r in measured if r["task"] == "sample_mcq" and r["model"] == "before")
    result = next(r for r in load_results([runs / "results"]) if r.task_name == "sample_mcq"
                  and r.model == tiny_openclip_model)
    for column, t in (("Affirmation", "positive"), ("Negation", "negative"), ("Hybrid", "hybrid")):
        n = naive_counts(result)[f"accuracy_{t}"][0]
        assert mcq[column].endswith(f"], n={n}"), (column, mcq[column])
    assert "n=40" in mcq["accuracy / t2i_recall@5 [95% CI], n"]
    assert "accuracy_tie_aware" in mcq["other metrics"] and "], n=40" in mcq["other metrics"]
    retr = next(r for r in measured if r["task"] == "sample_retrieval" and r["model"] == "before")
    assert retr["accuracy / t2i_recall@5 [95% CI], n"].endswith(", n=24")
    assert "i2t_recall@5" in retr["other metrics"] and "n=12" in retr["other metrics"]


def test_old_results_without_metric_n_fall_back(runs, tmp_path):
    """A results file written before metrics carried n: per-type from its group, t2i from the Parquet rows."""
    for r in load_results([runs / "results"]):
        if r.model.endswith("tiny_after.pt"):
            continue
        doc = json.loads(r.path.read_text())
        for name, m in doc["metrics"].items():
            if not name.startswith("accuracy_") or name == "accuracy_tie_aware":
                m.pop("n", None)
        dest = tmp_path / r.path.name
        dest.write_text(json.dumps(doc))
        dest.with_suffix(".parquet").write_bytes(r.path.with_suffix(".parquet").read_bytes())
        old = load_results([dest])[0]
        if old.kind == "retrieval":
            assert old.metric_n("t2i_recall@1") == 24 and old.metric_n("i2t_recall@1") == 12
        else:
            assert old.metric_n("accuracy") == old.n
