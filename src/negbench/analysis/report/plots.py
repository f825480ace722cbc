"""The report's figures. One colour meaning per family: in model comparisons colour = model (before
grey, after blue, others fixed), in the wrong-answer figure colour = option type, in training
curves colour = loss term. Percent axes everywhere, values written on bars, no figure taller
than a screen (MAX_HEIGHT_IN at DPI)."""
from __future__ import annotations

import io
import math
import textwrap
from pathlib import Path
from typing import Sequence

from negbench.analysis.report.load import ReportData, TrainLog, headline_tasks, tasks_of
from negbench.analysis.report.tables import published_metric_name
from negbench.inputs.kinds import template_metric
from negbench.core.io import write_bytes_atomic

DPI = 100
MAX_HEIGHT_IN = 7.5   # 750 px: fits a laptop screen with the browser's chrome
WIDTH_IN = 11.0
TYPE_COLORS = {"positive": "#D55E00", "negative": "#0072B2", "hybrid": "#009E73"}
TERM_COLORS = {"loss": "#000000", "contrastive_loss": "#0072B2", "mcq_loss": "#D55E00"}


def _plt():
    import logging

    import matplotlib

    matplotlib.use("Agg")
    logging.getLogger("matplotlib").setLevel(logging.WARNING)  # font-cache INFO is not the user's business
    import matplotlib.pyplot as plt

    return plt


def save(fig, path: Path) -> Path:
    buf = io.BytesIO()
    # no "Software" metadata: same inputs give byte-identical PNGs across matplotlib versions
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    _plt().close(fig)
    return write_bytes_atomic(path, buf.getvalue())


def panels(n: int, ncols: int = 3, height: float = 3.6):
    """n axes in rows of ncols, at most MAX_HEIGHT_IN tall in all."""
    plt = _plt()
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(WIDTH_IN, min(MAX_HEIGHT_IN, height * nrows + 0.9)),
                             squeeze=False)
    flat = [ax for row in axes for ax in row]
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def percent_axis(ax, top: float = 1.0) -> None:
    from matplotlib.ticker import PercentFormatter

    ax.set_ylim(0, top * 1.12)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)


def grouped_bars(ax, categories: Sequence[str], series: Sequence[tuple], chance: float | None = None,
                 chance_upto: int | None = None) -> None:
    """series: (label, colour, [metric dict or None per category], hatch). Whiskers = 95% CI;
    every bar carries its value, so a 0% bar is still seen. The chance line spans the first
    `chance_upto` categories (the MCQ ones), or all."""
    width = min(0.8 / max(1, len(series)), 0.25 * len(categories))  # one category: no bars a third of a page wide
    for i, (label, color, metrics, hatch) in enumerate(series):
        xs = [j + (i - (len(series) - 1) / 2) * width for j in range(len(categories))]
        vals = [float(m["value"]) if m else math.nan for m in metrics]
        lo = [max(0.0, v - float(m.get("ci_low", v))) if m else 0 for v, m in zip(vals, metrics)]
        hi = [max(0.0, float(m.get("ci_high", v)) - v) if m else 0 for v, m in zip(vals, metrics)]
        ax.bar(xs, vals, width * 0.95, color=color, label=label, hatch=hatch, edgecolor="#333333", linewidth=0.5,
               yerr=[lo, hi], capsize=2, error_kw={"lw": 0.8, "ecolor": "#333333"})
        for x, v, h in zip(xs, vals, hi):
            if not math.isnan(v):
                ax.text(x, v + h + 0.015, f"{100 * v:.0f}%", ha="center", va="bottom", fontsize=9)
    if chance:
        end = len(categories) if chance_upto is None else chance_upto
        ax.hlines(chance, -0.5, end - 0.5, linestyles="--", color="black", lw=1, label=f"chance ({100 * chance:.0f}%)")
        ax.set_xlim(-0.5, len(categories) - 0.5)
    ax.set_xticks(range(len(categories)), [textwrap.fill(c, 14) for c in categories], fontsize=10)
    ax.tick_params(axis="y", labelsize=10)
    percent_axis(ax)


def legend_below(fig, axes) -> None:
    handles, labels = [], []
    for ax in axes:
        for h, lb in zip(*ax.get_legend_handles_labels()):
            if lb not in labels:
                handles.append(h)
                labels.append(lb)
    fig.legend(handles, labels, loc="lower center", ncol=min(5, len(labels)), frameon=False, fontsize=10)


def headline_figure(data: ReportData, group: str, path: Path) -> Path | None:
    """One dataset's story: before vs after on its MCQ (all, per question type) and retrieval."""
    main = headline_tasks(data, group)
    models = [data.before, data.after] if data.before and data.after else data.models
    cats, keys = [], []
    if main["mcq"]:
        ref = next(r for r in data.results if r.task_name == main["mcq"])
        cats += ["MCQ: all questions"] + [f"MCQ: {ref.type_name(t)}" for t in ref.templates()]
        keys += [(main["mcq"], "accuracy")] + [(main["mcq"], template_metric(t)) for t in ref.templates()]
    for k, name in (("retrieval", "t2i_recall@5: original captions"), ("negated_retrieval", "t2i_recall@5: negated")):
        if main[k]:
            cats.append(name)
            keys.append((main[k], "t2i_recall@5"))
    if not cats:
        return None
    series = [(data.label(m), data.color(m), [data.get(m, t).metric(k) if data.get(m, t) else None
                                               for t, k in keys], None) for m in models]
    fig, (ax,) = panels(1, height=4.2)
    chance = next((r.data.get("chance") for r in data.results if r.task_name == main["mcq"]), None)
    grouped_bars(ax, cats, series, chance, chance_upto=sum(c.startswith("MCQ") for c in cats))
    ax.set_ylabel("accuracy / t2i_recall@5" if any(k == "t2i_recall@5" for _, k in keys) else "accuracy", fontsize=10)
    ax.set_title(f"{group}: before vs after negation fine-tuning (95% CIs)", fontsize=12)
    legend_below(fig, [ax])
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return save(fig, path)


def mcq_figure(data: ReportData, group: str, path: Path) -> Path | None:
    """Every MCQ task of one dataset: accuracy over all questions and per question type, per model."""
    tasks = tasks_of(data, group, lambda r: r.is_choice)
    if not tasks:
        return None
    fig, axes = panels(len(tasks), height=3.4)
    for ax, task in zip(axes, tasks):
        rs = [data.get(m, task) for m in data.models if data.get(m, task)]
        temps = rs[0].templates()
        cats = ["all"] + [rs[0].type_name(t) for t in temps]
        series = [(r.label, data.color(r.model), [r.metric("accuracy")] + [r.metric(template_metric(t))
                                                                            for t in temps], None) for r in rs]
        grouped_bars(ax, cats, series, rs[0].data.get("chance"))
        ax.set_ylabel("accuracy", fontsize=10)
        ax.set_xlabel("question type", fontsize=10)
        ax.set_title(task, fontsize=10)
    legend_below(fig, axes)
    fig.tight_layout(rect=(0, 0.09, 1, 1))
    return save(fig, path)


def bias_figure(data: ReportData, rows: Sequence, path: Path) -> Path | None:
    """Share of wrong answers per chosen option type; rows = (label, Result). Colour = option type."""
    if not rows:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(WIDTH_IN, min(MAX_HEIGHT_IN, 0.42 * len(rows) + 1.4)))
    left = [0.0] * len(rows)
    for t, color in TYPE_COLORS.items():
        vals = [float(r.data["breakdowns"]["wrong_answer_type_shares"].get(t, 0.0)) for _, r in rows]
        ax.barh(range(len(rows)), vals, left=left, color=color, label=f"{rows[0][1].type_name(t)}-type option")
        for i, v in enumerate(vals):
            if v >= 0.06:
                ax.text(left[i] + v / 2, i, f"{100 * v:.0f}%", ha="center", va="center", fontsize=10, color="white")
        left = [a + b for a, b in zip(left, vals)]
    ax.set_yticks(range(len(rows)), [lb for lb, _ in rows], fontsize=10)
    ax.tick_params(axis="x", labelsize=10)
    ax.invert_yaxis()
    from matplotlib.ticker import PercentFormatter

    ax.xaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of the wrong answers, by the type of option chosen", fontsize=10)
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=3, frameon=False, fontsize=10)
    fig.tight_layout()
    return save(fig, path)


def heatmap_figure(data: ReportData, group: str, path: Path) -> Path | None:
    """Question type x chosen option (row shares) per model, 4-way negated MCQ of one dataset only."""
    tables = []
    for m in data.models:
        total: dict = {}
        for r in data.results:
            if r.model == m and r.answer_bias and r.task.get("negated", True) and r.task.get("group") == group:
                for q, row in ((r.data.get("breakdowns") or {}).get("confusion") or {}).items():
                    for c, n in row.items():
                        total.setdefault(q, {}).setdefault(c, 0)
                        total[q][c] += int(n)
        if total:
            tables.append((m, total, next(r for r in data.results if r.model == m).type_name))
    if not tables:
        return None
    fig, axes = panels(len(tables), ncols=min(3, len(tables)), height=3.6)
    fig.set_layout_engine("constrained")  # room for both axis labels and the colour bar
    im = None
    for ax, (m, table, name) in zip(axes, tables):
        qs = [t for t in ("positive", "negative", "hybrid", "modified_positive") if t in table]
        cols = ["correct", "positive", "negative", "hybrid"]
        mat = [[table[q].get(c, 0) / (sum(table[q].values()) or 1) for c in cols] for q in qs]
        im = ax.imshow(mat, cmap="Greys", vmin=0, vmax=1, aspect="auto")
        for i, row in enumerate(mat):
            for j, v in enumerate(row):
                ax.text(j, i, f"{100 * v:.0f}%", ha="center", va="center", fontsize=10,
                        color="white" if v > 0.55 else "black")
        ax.set_xticks(range(4), ["correct"] + [f"{textwrap.fill(name(c), 12)}\n-type" for c in cols[1:]], fontsize=9)
        ax.set_yticks(range(len(qs)), [textwrap.fill(name(q), 14) for q in qs], fontsize=9)
        ax.set_xlabel("option chosen", fontsize=10)
        ax.set_ylabel("question type", fontsize=10)
        ax.set_title(data.label(m), fontsize=10)
    fig.colorbar(im, ax=axes, shrink=0.8, label="share of the row's questions", format="{x:.0%}")
    return save(fig, path)


def retrieval_figure(data: ReportData, group: str, path: Path) -> Path | None:
    """Text→media R@5 on the original and negated captions of one dataset; colour = model."""
    tasks = tasks_of(data, group, lambda r: r.is_ranking and not r.task.get("negated", True)) + \
        tasks_of(data, group, lambda r: r.is_ranking and r.task.get("negated", True))
    if not tasks:
        return None
    series = [(data.label(m), data.color(m), [data.get(m, t).metric("t2i_recall@5") if data.get(m, t) else None
                                               for t in tasks], None) for m in data.models]
    fig, (ax,) = panels(1, height=3.8)
    grouped_bars(ax, [retrieval_name(data, t) for t in tasks], series)
    ax.set_ylabel("t2i_recall@5 (text→media R@5)", fontsize=10)
    ax.set_title(f"{group}: retrieval with original vs negated captions (95% CIs)", fontsize=10)
    legend_below(fig, [ax])
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    return save(fig, path)


def retrieval_name(data: ReportData, task: str) -> str:
    """'negated captions (without)' / 'original captions' / 'HardNeg captions' for an x label."""
    r = next(r for r in data.results if r.task_name == task)
    if not r.task.get("negated", True):
        return "original captions"
    kind = "hard-negative captions" if r.task.get("hard_negative") else "negated captions"
    word = r.task.get("wording", "default")
    return f"{kind} ('{word}' wording)" if word != "default" else kind


def training_figure(logs: Sequence[TrainLog], path: Path) -> Path | None:
    """Loss per logged step of each training run; colour = loss term."""
    logs = [lg for lg in logs if lg.records]
    if not logs:
        return None
    fig, axes = panels(len(logs), ncols=min(2, len(logs)), height=3.4)
    for ax, lg in zip(axes, logs):
        steps = [r["step"] for r in lg.records]
        for term, color in TERM_COLORS.items():
            vals = [r.get(term) for r in lg.records]
            same_as_total = all(v == r.get("loss") for v, r in zip(vals, lg.records))
            if any(v is not None for v in vals) and (term == "loss" or not same_as_total):
                ax.plot(steps, [math.nan if v is None else v for v in vals], marker="o", markersize=4, color=color,
                        label="weighted total" if term == "loss" else term.replace("_", " "),
                        lw=2 if term == "loss" else 1)
        ax.set_xlabel("step", fontsize=10)
        ax.set_ylabel("loss", fontsize=10)
        ax.tick_params(labelsize=10)
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if len(steps) == 1:  # one logged point: a marker in the middle of a step axis, not a lone dot at 0
            ax.set_xlim(steps[0] - 1, steps[0] + 1)
        ax.set_title(f"{lg.name} ({len(steps)} logged step{'s' if len(steps) != 1 else ''})", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=10)
    fig.tight_layout()
    return save(fig, path)


def published_figure(pairs: Sequence[tuple], path: Path) -> Path | None:
    """pairs: (title, [(label, colour, metric)] measured, [(model, value)] published)."""
    if not pairs:
        return None
    fig, axes = panels(len(pairs), ncols=min(2, len(pairs)), height=3.6)
    for ax, (title, measured, published) in zip(axes, pairs):
        names = [lb for lb, _, _ in measured] + [f"{m} (published)" for m, _ in published]
        vals = [float(m["value"]) for _, _, m in measured] + [v for _, v in published]
        colors = [c for _, c, _ in measured] + ["#F2D7A6"] * len(published)
        hatches = [""] * len(measured) + ["//"] * len(published)
        ys = range(len(names))
        ax.barh(ys, vals, color=colors, hatch=hatches, edgecolor="#333333", linewidth=0.5)
        for y, v in zip(ys, vals):
            ax.text(v + 0.01, y, f"{100 * v:.1f}%", va="center", fontsize=9)
        ax.set_yticks(list(ys), names, fontsize=9)
        ax.invert_yaxis()
        from matplotlib.ticker import PercentFormatter

        ax.xaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
        ax.set_xlim(0, 1.15)
        ax.set_xlabel(title.rsplit(", ", 1)[-1], fontsize=10)
        ax.set_title(textwrap.fill(title, 60), fontsize=10)
        ax.tick_params(axis="x", labelsize=9)
    fig.suptitle("solid = measured by this run; hatched = published by the NegBench authors (same released files)",
                 fontsize=11, color="#8a5a00")
    fig.tight_layout()
    return save(fig, path)


def published_pairs(data: ReportData, published: Sequence[dict]) -> list[tuple]:
    """(title, measured, published) for each result on a released NegBench file that the paper reports
    (tables.published_for): NegWorld or a user's own build never stands beside a published number."""
    from negbench.analysis.report.tables import published_for, shown_metric

    out = []
    for task in dict.fromkeys(r.task_name for r in data.results):
        for key in ("accuracy", "t2i_recall@5"):
            mine = [data.get(m, task) for m in data.models if data.get(m, task) and data.get(m, task).metric(key)]
            pub = published_for(mine[0], key, published) if mine else []
            if pub:
                measured = [(f"{data.label(r.model)} (measured)", data.color(r.model), r.metric(key)) for r in mine]
                out.append((f"{task}, {shown_metric(key)}", measured,
                            [(f"{p['model']} {p['backbone']}", float(p["value"])) for p in pub][:8]))
    return out[:4]
