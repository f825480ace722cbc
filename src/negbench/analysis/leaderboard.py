"""`negbench table`: results JSON files -> a long table (one row per model x task x metric) and a
wide Markdown view (one row per model, one column per task).

Long format, as `clip_benchmark build` users expect: `model, task, metric, value, ci_low,
ci_high, n, flags`, values as fractions (counts such as `ties` or `unparsed` as integers, without a
CI); n is the metric's own (a question type's questions, t2i recall's caption queries), and
`task` stays the bare task name (joinable), the marks of an incomplete or --limit run in `flags`.
Every metric a results file holds is listed, whatever backend wrote it. The wide view shows one
metric per task (the task's headline by default), with its interval and n, and means only within
one metric and one task kind, never across MCQ accuracy and retrieval recall.
"""
from __future__ import annotations

import csv
import difflib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from negbench.analysis.results import Result, assign_labels, load_results
from negbench.core.errors import ConfigError
from negbench.core.io import write_text_atomic
from negbench.inputs.kinds import KINDS

LONG_COLUMNS = ("model", "task", "metric", "value", "ci_low", "ci_high", "n", "flags")
# counts a results file may hold that are worth a row (ties: i10's MCQ ties; unparsed: VLM answers)
COUNT_METRICS = ("ties", "unparsed", "skipped")


@dataclass(frozen=True)
class Row:
    model: str
    task: str            # the bare task name: joinable across tables and runs
    kind: str
    metric: str
    value: float
    ci_low: float | None
    ci_high: float | None
    n: int | None        # the items this value is a mean over (a count's: the items it counts among)
    flags: str = ""      # incomplete, --limit, regenerated images ('; '-joined); '' for a full result
    partial: bool = False  # incomplete or --limit: not the task's score

    @property
    def is_count(self) -> bool:
        return self.metric in COUNT_METRICS


def long_rows(results: Sequence[Result]) -> list[Row]:
    """Every metric (and count) of every result, in results order, each with its own n."""
    rows = []
    for r in results:
        common = dict(model=r.label or r.model, task=r.task_name, kind=r.kind, flags=r.flags,
                      partial=r.limited or r.status != "complete")
        for name, m in (r.data.get("metrics") or {}).items():
            if isinstance(m, dict) and "value" in m:
                rows.append(Row(metric=name, value=float(m["value"]), ci_low=m.get("ci_low"),
                                ci_high=m.get("ci_high"), n=r.metric_n(name), **common))
        counts = r.data.get("counts") or {}
        for name in COUNT_METRICS:
            if name in counts:
                rows.append(Row(metric=name, value=int(counts[name]), ci_low=None, ci_high=None, n=r.n, **common))
    return rows


def check_metrics(wanted: Sequence[str], rows: Sequence[Row]) -> None:
    """ConfigError naming the closest metric for every name no result holds."""
    present = sorted({r.metric for r in rows})
    for name in wanted:
        if name not in present:
            close = difflib.get_close_matches(name, present, n=3, cutoff=0.5)
            hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
            raise ConfigError(f"--metric {name!r} is in none of the results{hint} metrics present: "
                              f"{', '.join(present)}")


def _fmt(v, count: bool = False) -> str:
    if v is None:
        return ""
    return str(int(v)) if count else f"{100 * float(v):.1f}"


def long_markdown(rows: Sequence[Row]) -> str:
    lines = ["| model | task | metric | value (%) | 95% CI (%) | n | flags |", "|---|---|---|---:|---|---:|---|"]
    for r in rows:
        ci = "" if r.ci_low is None else f"[{_fmt(r.ci_low)}, {_fmt(r.ci_high)}]"
        n = "" if r.n is None else r.n
        lines.append(f"| {r.model} | {r.task} | {r.metric} | {_fmt(r.value, r.is_count)} | {ci} | {n} | {r.flags} |")
    return "\n".join(lines) + "\n"


def long_csv(rows: Sequence[Row]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(LONG_COLUMNS)
    for r in rows:
        w.writerow([r.model, r.task, r.metric, r.value if r.is_count else round(r.value, 6),
                    "" if r.ci_low is None else round(r.ci_low, 6),
                    "" if r.ci_high is None else round(r.ci_high, 6), "" if r.n is None else r.n, r.flags])
    return buf.getvalue()


def _cell(r: Row, n_in_header: bool) -> str:
    """A wide-view cell: value [95% CI] in %, or a count; n beside it unless the column header has it."""
    text = _fmt(r.value, r.is_count)
    if r.ci_low is not None and r.ci_high is not None:
        text += f" [{_fmt(r.ci_low)}, {_fmt(r.ci_high)}]"
    if not n_in_header and r.n is not None:
        text += f" (n={r.n})"
    return text


def wide_markdown(rows: Sequence[Row], metric: str | None = None) -> str:
    """Models x tasks with one metric per task (value [95% CI], n in the header when every model's is the
    same, else in the cell), then one mean column per (task kind, metric), a flags column when a result
    has marks, and a footnote with the units."""
    cells: dict[tuple[str, str], Row] = {}
    for r in rows:
        if r.metric == (metric or headline_metric(r.kind)):
            cells[(r.model, r.task)] = r
    tasks = list(dict.fromkeys(t for _, t in cells))
    models = list(dict.fromkeys(m for m, _ in cells))
    groups = list(dict.fromkeys((c.kind, c.metric) for c in cells.values() if not c.is_count))
    column_n = {t: _common_n([c for (_, tt), c in cells.items() if tt == t]) for t in tasks}
    header = ["model"] + [f"{t} ({cells_metric(cells, t)}" + (f", n={column_n[t]})" if column_n[t] else ")")
                          for t in tasks]
    header += [f"mean {kind} {m} ({sum(1 for t in tasks if cells_key(cells, t) == (kind, m))} tasks)"
               for kind, m in groups]
    with_flags = any(c.flags for c in cells.values())
    header += ["flags"] if with_flags else []
    lines = ["| " + " | ".join(header) + " |",
             "|---|" + "---:|" * (len(header) - 1 - with_flags) + ("---|" if with_flags else "")]
    any_partial_mean = False
    for model in models:
        vals = [_cell(cells[(model, t)], column_n[t] is not None) if (model, t) in cells else "–" for t in tasks]
        for kind, m in groups:
            mine = [c for (mm, _), c in cells.items() if mm == model and (c.kind, c.metric) == (kind, m)]
            partial = any(c.partial for c in mine)
            any_partial_mean |= partial
            vals.append(_fmt(sum(c.value for c in mine) / len(mine)) + ("†" if partial else "") if mine else "–")
        if with_flags:
            vals.append("; ".join(f"{t}: {cells[(model, t)].flags}" for t in tasks
                                  if (model, t) in cells and cells[(model, t)].flags))
        lines.append("| " + " | ".join([model] + vals) + " |")
    return "\n".join(lines) + "\n" + _wide_footnote(list(cells.values()), any_partial_mean)


def _common_n(column: Sequence[Row]) -> int | None:
    """The n every model's cell in a column shares (the usual case: one task, the same items), or None."""
    ns = {c.n for c in column}
    return ns.pop() if len(ns) == 1 and None not in ns else None


def _wide_footnote(cells: Sequence[Row], partial_mean: bool) -> str:
    units = []
    if any(not c.is_count for c in cells):
        units.append("values in % with their 95% interval; n = the items each value is a mean over (questions; "
                     "caption queries for t2i recall, media for i2t); a mean column is the unweighted mean over "
                     "tasks, without an interval")
    if any(c.is_count for c in cells):
        units.append("counts, n = the task's items they are counted among")
    said = "; ".join(units)
    text = f"\n{said[:1].upper()}{said[1:]}.\n" if units else ""
    if partial_mean:
        text += "\n† the mean includes an incomplete or --limit result (see flags): not a task score.\n"
    return text


def headline_metric(kind: str) -> str:
    """The metric the wide view shows for a kind (accuracy for a kind this negbench does not know)."""
    return KINDS.get(kind).headline if kind in KINDS else "accuracy"


def cells_metric(cells: dict, task: str) -> str:
    return next(c.metric for (_, t), c in cells.items() if t == task)


def cells_key(cells: dict, task: str) -> tuple[str, str]:
    c = next(c for (_, t), c in cells.items() if t == task)
    return c.kind, c.metric


@dataclass
class Table:
    long_md: str
    long_csv: str
    wide_md: str


def make_table(paths: Iterable[str | Path], *, metrics: Sequence[str] = (),
               labels: dict[str, str] | None = None, out: str | Path | None = None,
               skipped: list | None = None) -> Table:
    """Read results, check --metric names, build both views; write them under `out` when given
    (table.csv + table.md in long format, table_wide.md). The task column is the bare task name;
    incomplete, --limit and regenerated-image results are marked in the flags column.
    skipped: see load_results (unreadable files left out)."""
    results = load_results(paths, skipped=skipped)
    assign_labels(results, labels)  # checks that every label names a model
    for r in results:  # a table keeps full model strings unless the caller renames them
        r.label = (labels or {}).get(r.model, r.model)
    rows = long_rows(results)
    check_metrics(metrics, rows)
    # the long view lists every metric asked for; the wide view shows the first
    shown = [r for r in rows if r.metric in metrics] if metrics else rows
    table = Table(long_markdown(shown), long_csv(shown), wide_markdown(rows, metrics[0] if metrics else None))
    if out is not None:
        d = Path(out).expanduser()
        write_text_atomic(d / "table.csv", table.long_csv)
        write_text_atomic(d / "table.md", table.long_md)
        write_text_atomic(d / "table_wide.md", table.wide_md)
    return table
