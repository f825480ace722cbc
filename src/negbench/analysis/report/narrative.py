"""Sentences of the report computed from the numbers, never written in advance: which wrong-answer
type dominates, and whether a before/after change's paired interval excludes 0."""
from __future__ import annotations

from typing import Sequence

from negbench.analysis.report.load import ReportData
from negbench.analysis.report.tables import DiffRow, pp, wrong_count
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
    tail = "more than half of them" if share > 0.5 else "the most common wrong choice"
    return (f"Of {r.label}'s {of} on {r.task_name}, {100 * share:.0f}% chose the {r.type_name(t)}-type option "
            f"({ERROR_MEANING.get(t, t)}): {tail}.")


HEADLINE_KEYS = ("accuracy", "accuracy_negative", "t2i_recall@5")

VERDICT_WORDS = {
    "better": "an improvement: its paired interval excludes 0",
    "worse": "a drop: its paired interval excludes 0",
    "noise": "the interval includes 0, so this run cannot tell the change from noise",
    "unchanged": "no item changed between the two models, so there is no change to measure",
    "meaningless": "not a measurement",
}


def change_sentence(row: DiffRow, before_label: str, after_label: str) -> str:
    """The change of one metric, and what its paired 95% interval says (row.verdict, which the
    table's "beyond its CI?" column shows too)."""
    b, a = 100 * float(row.before["value"]), 100 * float(row.after["value"])
    n = f", n={row.n}" if row.n is not None else ""
    head = f"{row.dataset}, {row.task}, {row.metric}: {b:.1f}% ({before_label}) → {a:.1f}% ({after_label})"
    verdict = row.verdict
    if verdict == "meaningless":
        why = next(f for f in row.flags if "gallery of" in f)
        return f"{head}{n}: {why}, so this is {VERDICT_WORDS[verdict]}."
    d = row.diff
    if d is None:
        return head + f", {pp((a - b) / 100)} pp{n}; no per-item predictions, so no interval for the difference."
    ci = f"{pp(d['value'])} pp, paired 95% CI [{pp(d['ci_low'])}, {pp(d['ci_high'])}]{n}"
    return f"{head} ({ci}): {VERDICT_WORDS[verdict]}."


def tally_sentence(rows: Sequence[DiffRow]) -> str:
    """How the rows of the table above it split by verdict; counts the same rows the table shows."""
    count = {v: sum(r.verdict == v for r in rows) for v in ("better", "worse", "noise", "unchanged",
                                                              "no interval", "meaningless")}
    parts = [f"{count['better']} improve with a paired interval above 0", f"{count['worse']} drop with one below 0",
             f"{count['noise']} cannot be told from noise"]
    parts += [f"{count[v]} {w}" for v, w in (("unchanged", "did not change on any item"),
                                             ("no interval", "have no per-item data for an interval"),
                                             ("meaningless", "are R@k over a gallery of at most k items"))
              if count[v]]
    return f"Of the {len(rows)} rows of this table, " + ", ".join(parts[:-1]) + f" and {parts[-1]}."


def headline_sentences(data: ReportData, rows: Sequence[DiffRow]) -> list[str]:
    """One sentence per headline metric (all questions, Negation, negated retrieval R@5) of the rows."""
    lb, la = data.label(data.before), data.label(data.after)
    return [change_sentence(r, lb, la) for r in rows if r.key in HEADLINE_KEYS]


def chance_sentence(row) -> str:
    """One model against chance on one metric (a ChanceRow of tables.chance_rows)."""
    m = row.metric
    v, lo, hi = (100 * float(m[k]) for k in ("value", "ci_low", "ci_high"))
    head = f"{row.label} on {row.task}, {row.metric_name}: {v:.1f}% [{lo:.1f}, {hi:.1f}], n={row.n}"
    if row.verdict == "meaningless":
        return f"{head}: {row.flags[-1]}, so this is not a measurement."
    if row.chance is None:
        return head + "."
    c = 100 * row.chance
    c = f"{c:.1f}".rstrip("0").rstrip(".")
    words = {"above": f"above chance ({c}%) beyond its interval",
             "below": f"below chance ({c}%) beyond its interval",
             "chance": f"its interval includes chance ({c}%), so this run cannot tell it from guessing"}
    return f"{head}: {words[row.verdict]}."


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
