"""`negbench table`: results JSON files -> a long table (one row per model x task x metric) and a
wide Markdown view (one row per model, one column per task).

Long format, as `clip_benchmark build` users expect: `model, task, metric, value, ci_low,
ci_high, n`, values as fractions (counts such as `ties` or `unparsed` as integers, without a
CI). Every metric a results file holds is listed, whatever backend wrote it. The wide view
shows one metric per task (the task's headline by default) and means only within one metric
and one task kind, never across MCQ accuracy and retrieval recall.
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

LONG_COLUMNS = ("model", "task", "metric", "value", "ci_low", "ci_high", "n")
# counts a results file may hold that are worth a row (ties: i10's MCQ ties; unparsed: VLM answers)
COUNT_METRICS = ("ties", "unparsed", "skipped")


@dataclass(frozen=True)
class Row:
    model: str
    task: str
    kind: str
    metric: str
    value: float
    ci_low: float | None
    ci_high: float | None
    n: int | None

    @property
    def is_count(self) -> bool:
        return self.metric in COUNT_METRICS


def long_rows(results: Sequence[Result]) -> list[Row]:
    """Every metric (and count) of every result, in results order."""
    rows = []
    for r in results:
        for name, m in (r.data.get("metrics") or {}).items():
            if isinstance(m, dict) and "value" in m:
                rows.append(Row(r.label or r.model, r.task_shown, r.kind, name, float(m["value"]),
                                m.get("ci_low"), m.get("ci_high"), r.n))
        counts = r.data.get("counts") or {}
        for name in COUNT_METRICS:
            if name in counts:
                rows.append(Row(r.label or r.model, r.task_shown, r.kind, name, int(counts[name]), None, None, r.n))
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
    lines = ["| model | task | metric | value (%) | 95% CI (%) | n |", "|---|---|---|---:|---|---:|"]
    for r in rows:
        ci = "" if r.ci_low is None else f"[{_fmt(r.ci_low)}, {_fmt(r.ci_high)}]"
        lines.append(f"| {r.model} | {r.task} | {r.metric} | {_fmt(r.value, r.is_count)} | {ci} | {r.n or ''} |")
    return "\n".join(lines) + "\n"


def long_csv(rows: Sequence[Row]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(LONG_COLUMNS)
    for r in rows:
        w.writerow([r.model, r.task, r.metric, r.value if r.is_count else round(r.value, 6),
                    "" if r.ci_low is None else round(r.ci_low, 6),
                    "" if r.ci_high is None else round(r.ci_high, 6), "" if r.n is None else r.n])
    return buf.getvalue()


def wide_markdown(rows: Sequence[Row], metric: str | None = None) -> str:
    """Models x tasks with one metric per task, then one mean column per (task kind, metric)."""
    cells: dict[tuple[str, str], Row] = {}
    for r in rows:
        if r.metric == (metric or headline_metric(r.kind)):
            cells[(r.model, r.task)] = r
    tasks = list(dict.fromkeys(t for _, t in cells))
    models = list(dict.fromkeys(m for m, _ in cells))
    groups = list(dict.fromkeys((c.kind, c.metric) for c in cells.values() if not c.is_count))
    header = ["model"] + [f"{t} ({cells_metric(cells, t)})" for t in tasks]
    header += [f"mean {kind} {m} ({sum(1 for t in tasks if cells_key(cells, t) == (kind, m))} tasks)"
               for kind, m in groups]
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    for model in models:
        vals = [_fmt(cells[(model, t)].value, cells[(model, t)].is_count) if (model, t) in cells else "–"
                for t in tasks]
        for kind, m in groups:
            xs = [c.value for (mm, _), c in cells.items() if mm == model and (c.kind, c.metric) == (kind, m)]
            vals.append(_fmt(sum(xs) / len(xs)) if xs else "–")
        lines.append("| " + " | ".join([model] + vals) + " |")
    return "\n".join(lines) + "\n"


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
    (table.csv + table.md in long format, table_wide.md). Incomplete and --limit results keep
    their marks in the task column. skipped: see load_results (unreadable files left out)."""
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
