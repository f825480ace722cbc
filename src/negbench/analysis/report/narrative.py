"""Sentences of the report computed from the numbers, never written in advance: which wrong-answer
type dominates, and whether a before/after change is larger than its paired interval."""
from __future__ import annotations

from typing import Sequence

from negbench.analysis.report.load import ReportData
from negbench.analysis.report.tables import DiffRow, wrong_count
from negbench.analysis.results import Result

# what choosing each option type means, for a reader who has not seen the templates
ERROR_MEANING = {
    "positive": "an affirmative option naming the absent object (\"This image features N.\")",
    "negative": "an option negating an object that is present (\"This image does not feature A.\")",
    "hybrid": "an option affirming the absent object and negating a present one (\"This image features N, "
              "but not B.\")",
}


def dominant_error(r: Result) -> tuple[str, float] | None:
    """(option type, share of wrong answers) chosen most often among wrong answers."""
    shares = (r.data.get("breakdowns") or {}).get("wrong_answer_type_shares") or {}
    shares = {t: float(s) for t, s in shares.items() if s is not None}
    if not shares or not any(shares.values()):
        return None
    top = max(sorted(shares), key=lambda t: shares[t])
    return top, shares[top]


def error_sentence(r: Result) -> str | None:
    """'Of before's 120 wrong answers on world_coco_mcq, 62% chose the Negation-type option: …'."""
    found = dominant_error(r)
    if found is None:
        return None
    t, share = found
    n = wrong_count(r)
    of = f"{n} wrong answers" if n is not None else "wrong answers"
    tail = "most often" if share < 0.5 else "mostly"
    return (f"Of {r.label}'s {of} on {r.task_name}, {100 * share:.0f}% chose the {r.type_name(t)}-type option "
            f"({ERROR_MEANING.get(t, t)}): {r.type_name(t)}-type errors dominate {tail}.")


def change_sentence(row: DiffRow, before_label: str, after_label: str) -> str:
    """The change of one metric, and whether its paired 95% interval excludes zero."""
    b, a = 100 * float(row.before["value"]), 100 * float(row.after["value"])
    head = f"{row.dataset}, {row.task}, {row.metric}: {b:.1f}% ({before_label}) → {a:.1f}% ({after_label})"
    d = row.diff
    if d is None:
        return head + f", {a - b:+.1f} pp; no per-item predictions, so no interval for the difference."
    ci = f"{100 * d['value']:+.1f} pp, paired 95% CI [{100 * d['ci_low']:+.1f}, {100 * d['ci_high']:+.1f}]"
    if d["excludes_zero"]:
        verdict = "an improvement larger than its interval" if d["value"] > 0 else "a drop larger than its interval"
    else:
        verdict = "the interval includes 0, so this run cannot tell the change from noise"
    return f"{head} ({ci}): {verdict}."


def headline_sentences(data: ReportData, rows: Sequence[DiffRow]) -> list[str]:
    """One sentence per headline metric (all questions, Negation, negated retrieval R@5) per dataset."""
    if not rows:
        return []
    lb, la = data.label(data.before), data.label(data.after)
    keep = [r for r in rows if r.metric in ("accuracy: all questions", "accuracy: Negation", "text→media R@5")]
    out = [change_sentence(r, lb, la) for r in keep]
    better = [r for r in keep if r.diff and r.diff["excludes_zero"] and r.diff["value"] > 0]
    worse = [r for r in keep if r.diff and r.diff["excludes_zero"] and r.diff["value"] < 0]
    out.append(f"In all, {len(better)} of these {len(keep)} numbers improve beyond their interval and "
               f"{len(worse)} drop beyond it.")
    return out


def error_sentences(data: ReportData, tasks: Sequence[str]) -> list[str]:
    """The dominant error type of each model on each given 4-way MCQ task."""
    out = []
    for task in tasks:
        for m in data.models:
            r = data.get(m, task)
            if r is not None and r.answer_bias:
                s = error_sentence(r)
                if s:
                    out.append(s)
    return out
