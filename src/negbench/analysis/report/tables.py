"""The report's tables (header, rows of strings) and the before/after differences behind them."""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from negbench.analysis.report.load import ReportData, datasets, group_of, headline_tasks, tasks_of
from negbench.analysis.results import Result
from negbench.inputs.kinds import metric_label, metric_template, template_metric
from negbench.analysis.stats import paired_bootstrap_diff

PUBLISHED_CSV = Path(__file__).resolve().parent.parent.parent / "data" / "published" / "negbench_published.csv"
COUNT_KEYS = ("ties", "unparsed")


def pct(m: dict | None, ci: bool = True) -> str:
    """'41.2% [38.0, 44.5]' from a {value, ci_low, ci_high} metric."""
    if not m:
        return "–"
    v = f"{100 * float(m['value']):.1f}%"
    if ci and m.get("ci_low") is not None and m.get("ci_high") is not None:
        v += f" [{100 * float(m['ci_low']):.1f}, {100 * float(m['ci_high']):.1f}]"
    return v


def metric_value(r: Result, key: str) -> float | None:
    """A metric's value (None when the result lacks it)."""
    m = r.metric(key)
    return None if not m else float(m["value"])


def compared_metrics(r: Result) -> list[tuple[str, str]]:
    """(metric key, display name) worth comparing for one result, in the paper's vocabulary."""
    kind = r.task_kind
    keys = [k for k in (kind.compared if kind else ("accuracy",)) if k == "accuracy" or r.metric(k)]
    if r.is_choice:
        keys += [template_metric(t) for t in r.templates()]
    return [(k, metric_label(k, r.type_name)) for k in keys]


def paired_scores(data: ReportData, rb: Result, ra: Result, key: str):
    """Per-item scores of both models on the same items, aligned, or None without predictions."""
    db, da = data.items(rb), data.items(ra)
    if db is None or da is None or len(db) != len(da) or list(db["row"]) != list(da["row"]):
        return None
    if rb.is_choice:
        template = metric_template(key)
        if template is not None:
            keep = (db["template"].astype(str) == template).to_numpy()
        elif key == "accuracy":
            keep = np.ones(len(db), dtype=bool)
        else:
            return None
        return db["is_correct"].to_numpy(float)[keep], da["is_correct"].to_numpy(float)[keep]
    if key.startswith("t2i_recall@") and "t2i_rank" in db:
        k = int(key.split("@")[1])
        hit = lambda d: ((d["t2i_rank"].to_numpy() >= 0) & (d["t2i_rank"].to_numpy() < k)).astype(float)  # noqa: E731
        return hit(db), hit(da)
    return None


@dataclass
class DiffRow:
    dataset: str
    task: str
    metric: str
    before: dict
    after: dict
    diff: dict | None  # paired bootstrap {value, ci_low, ci_high, excludes_zero}; None without items


def diff_rows(data: ReportData, tasks: Sequence[str] | None = None, seed: int = 0) -> list[DiffRow]:
    """Before/after rows of the headline tasks (or `tasks`), datasets in reading order."""
    if not (data.before and data.after):
        return []
    rows = []
    for group in datasets(data.results):
        chosen = [t for t in headline_tasks(data, group).values() if t] if tasks is None else \
            [t for t in tasks_of(data, group) if t in tasks]
        for task in chosen:
            rb, ra = data.get(data.before, task), data.get(data.after, task)
            if rb is None or ra is None:
                continue
            for key, name in compared_metrics(rb):
                mb, ma = rb.metric(key), ra.metric(key)
                if not (mb and ma):
                    continue
                pair = paired_scores(data, rb, ra, key)
                diff = paired_bootstrap_diff(*pair, n_samples=1000, seed=seed) if pair and len(pair[0]) else None
                rows.append(DiffRow(group, task, name, mb, ma, diff))
    return rows


def diff_cell(d: dict | None, before: dict, after: dict) -> str:
    if d is None:  # no per-item predictions: the plain difference, without an interval
        return f"{100 * (float(after['value']) - float(before['value'])):+.1f} pp (no per-item data for a CI)"
    return f"{100 * d['value']:+.1f} pp [{100 * d['ci_low']:+.1f}, {100 * d['ci_high']:+.1f}]"


def diff_table(data: ReportData, rows: Sequence[DiffRow]) -> tuple[list[str], list[list[str]]]:
    lb, la = data.label(data.before), data.label(data.after)
    header = ["dataset", "task", "metric", lb, la, "difference (paired 95% CI)", "beyond its CI?"]
    body = [[r.dataset, r.task, r.metric, pct(r.before), pct(r.after), diff_cell(r.diff, r.before, r.after),
             "" if r.diff is None else ("yes" if r.diff["excludes_zero"] else "no")] for r in rows]
    return header, body


def ordered_results(data: ReportData) -> list[Result]:
    """Datasets in reading order, then tasks (base wording first), then models in report order."""
    order = {g: i for i, g in enumerate(datasets(data.results))}
    task_rank = {t: i for g in order for i, t in enumerate(tasks_of(data, g))}
    return sorted(data.results, key=lambda r: (order[group_of(r)], task_rank[r.task_name],
                                                data.models.index(r.model)))


def measured_table(data: ReportData) -> tuple[list[str], list[list[str]]]:
    """Every result: its headline metric, the paper's question types, and extra metrics and counts."""
    header = ["dataset", "task", "model", "n", "accuracy / text→media R@5", "Affirmation", "Negation", "Hybrid",
              "other metrics"]
    rows = []
    for r in ordered_results(data):
        head_key = (r.headline() or ("accuracy",))[0]
        by = {t: r.metric(template_metric(t)) for t in r.templates()}
        shown = {head_key} | {template_metric(t) for t in by}
        extra = [f"{k} {pct(m, ci=False)}" for k, m in (r.data.get("metrics") or {}).items()
                 if k not in shown and isinstance(m, dict) and ("tie" in k or not r.is_choice)]
        extra += [f"{k} {(r.data.get('counts') or {})[k]}" for k in COUNT_KEYS if k in (r.data.get("counts") or {})]
        rows.append([group_of(r), r.task_name, r.label, str(r.n or ""), pct(r.metric(head_key))]
                    + [pct(by.get(t), ci=False) if t in by else "" for t in ("positive", "negative", "hybrid")]
                    + ["; ".join(extra)])
    return header, rows


def bias_table(data: ReportData) -> tuple[list[str], list[list[str]]]:
    header = ["dataset", "task", "model", "wrong answers", "→ Affirmation-type", "→ Negation-type", "→ Hybrid-type"]
    rows = []
    for r in ordered_results(data):
        s = (r.data.get("breakdowns") or {}).get("wrong_answer_type_shares")
        if r.answer_bias and r.task.get("negated", True) and s:
            wrong = wrong_count(r)
            rows.append([group_of(r), r.task_name, r.label, "" if wrong is None else str(wrong)]
                        + [f"{100 * float(s.get(t, 0)):.1f}%" for t in ("positive", "negative", "hybrid")])
    return header, rows


def wrong_count(r: Result) -> int | None:
    conf = (r.data.get("breakdowns") or {}).get("confusion") or {}
    if not conf:
        return None
    return sum(int(n) for row in conf.values() for c, n in row.items() if c != "correct")


def published_numbers(path: str | Path = PUBLISHED_CSV) -> list[dict]:
    """Rows of the shipped published-numbers file (model, backbone, dataset, task, metric, value, source)."""
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def published_metric_name(metric: str) -> str:
    """The authors' metric names in negbench's vocabulary (their t2v_ is text→video = our t2i_)."""
    names = {"total_accuracy": "accuracy: all questions", "positive_accuracy": "accuracy: Affirmation",
             "negative_accuracy": "accuracy: Negation", "hybrid_accuracy": "accuracy: Hybrid"}
    if metric in names:
        return names[metric]
    return metric.replace("t2v_recall@", "text→media R@").replace("t2i_recall@", "text→media R@")
