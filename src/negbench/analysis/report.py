"""Tables and plots from results files: `report.html` (self-contained), `report.md`, PNGs.

    make_report(["results/"], "report/", labels={"builtin:/a": "before", "builtin:/b": "after"})

Inputs are the results JSON files written by `negbench.evaluation.engine` (schema in
docs/contracts.md) and, for the gallery, the per-item Parquet beside each of them.
Sections, in order:

1. Measured results: one row per model x task with its headline metrics and 95% CIs.
2. MCQ accuracy by question type (Affirmation / Negation / Hybrid) per model, with the
   bootstrap intervals and the chance line.
3. Affirmation bias: which type of wrong option a model picks, and the question-type x
   chosen-type heatmap (the paper's finding: models pick the affirmative option).
4. Retrieval, original vs negated captions: each negated retrieval task is paired with the
   plain retrieval task of the same `group` (the paper's Fig. 3 shape).
5. Before / after fine-tuning deltas, when results for both models are present.
6. A gallery of MCQ items for the most common error type.
7. Published NegBench numbers for real models, in a separate table: they come from the
   paper and the authors' repository, never from this run, and are never mixed into 1-6.

The HTML embeds every image as a base64 data URI and uses no scripts or network, so one
file can be mailed or opened offline.
"""
from __future__ import annotations

import base64
import csv
import html
import io
import logging
import math
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from negbench.analysis.published import published_rows
from negbench.core.errors import ConfigError
from negbench.core.io import read_json, write_bytes_atomic, write_text_atomic

log = logging.getLogger(__name__)

PUBLISHED_CSV = Path(__file__).parent.parent / "data" / "published" / "negbench_published.csv"
TEMPLATE_ORDER = ("positive", "negative", "hybrid", "modified_positive")
CHOSEN_ORDER = ("correct", "positive", "negative", "hybrid")
DEFAULT_TYPE_NAMES = {"positive": "Affirmation", "negative": "Negation", "hybrid": "Hybrid",
                      "modified_positive": "Affirmation (1 object)"}
MCQ_KINDS = ("mcq", "binary-mcq")
SECTIONS = {  # anchor -> heading; every report has all of them (empty ones say why)
    "measured": "Measured results",
    "mcq": "MCQ accuracy by question type",
    "bias": "Affirmation bias: which wrong answer is chosen",
    "retrieval": "Retrieval: original vs negated captions",
    "finetune": "Before / after fine-tuning",
    "gallery": "Gallery: the most common error",
    "probe": "Text-encoder negation probe",
    "published": "Published NegBench numbers (not measured here)",
}
_PALETTE = ["#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C",
            "#CCB974", "#64B5CD"]


# ---------------------------------------------------------------- loading


@dataclass
class Result:
    """One results JSON (model x task) and where it lives."""

    path: Path
    data: dict
    label: str = ""

    @property
    def model(self) -> str:
        return self.data["model"]

    @property
    def task(self) -> dict:
        return self.data["task"]

    @property
    def task_name(self) -> str:
        return self.task["name"]

    @property
    def kind(self) -> str:
        return self.task.get("kind", "")

    def metric(self, name: str) -> dict | None:
        return (self.data.get("metrics") or {}).get(name)

    def type_name(self, template: str) -> str:
        names = {**DEFAULT_TYPE_NAMES, **(self.task.get("answer_type_names") or {})}
        return names.get(template, template)

    def predictions_path(self) -> Path | None:
        name = self.data.get("predictions_file")
        if not name:
            return None
        p = Path(name)
        return p if p.is_absolute() else self.path.parent / p


def _is_results_json(obj) -> bool:
    return isinstance(obj, dict) and {"schema_version", "model", "task", "metrics"} <= set(obj)


def load_results(paths: Iterable[str | Path]) -> list[Result]:
    """Results JSON files, or folders searched recursively for them (other JSON is ignored).

    When the same model x task appears twice, the last one given wins (with a warning).
    """
    found: dict[tuple[str, str], Result] = {}
    for p in paths:
        p = Path(p).expanduser()
        if not p.exists():
            raise ConfigError(f"results path not found: {p}")
        files = sorted(p.rglob("*.json")) if p.is_dir() else [p]
        for f in files:
            if f.name.startswith(".") or f.name.endswith(".manifest.json"):
                continue
            try:
                obj = read_json(f)
            except (OSError, ValueError) as err:
                if p.is_dir():
                    continue
                raise ConfigError(f"{f}: not a readable results JSON ({err})") from err
            if not _is_results_json(obj):
                if not p.is_dir():
                    raise ConfigError(f"{f}: not a negbench results JSON (needs keys schema_version, "
                                      f"model, task, metrics)")
                continue
            r = Result(f.resolve(), obj)
            key = (r.model, r.task_name)
            if key in found:
                log.warning("results for %s on %s given twice; using %s", *key, f)
                del found[key]
            found[key] = r
    if not found:
        raise ConfigError(f"no negbench results JSON found in {[str(p) for p in paths]}")
    return list(found.values())


def _short_model(model: str, width: int = 36) -> str:
    if len(model) <= width:
        return model
    backend, _, spec = model.partition(":")
    tail = "/".join(Path(spec).parts[-2:])
    return f"{backend}:…/{tail}"


def assign_labels(results: Sequence[Result], labels: dict[str, str] | None = None,
                  extra_models: Sequence[str] = ()) -> list[str]:
    """Give every model a display label (caller's labels first); returns models in order."""
    labels = dict(labels or {})
    models: list[str] = []
    for r in results:
        if r.model not in models:
            models.append(r.model)
    unknown = sorted(set(labels) - set(models) - set(extra_models))
    if unknown:
        raise ConfigError(f"--label names models with no results: {unknown}; models found: {models}")
    shown = {m: labels.get(m) or _short_model(m) for m in models}
    if len(set(shown.values())) < len(shown):  # shortened names collided: fall back to full
        shown = {m: labels.get(m) or m for m in models}
    for r in results:
        r.label = shown[r.model]
    return models


def parse_labels(items: Sequence[str]) -> dict[str, str]:
    """['builtin:/a=before', ...] -> {'builtin:/a': 'before'} (split on the last '=')."""
    out = {}
    for item in items:
        model, sep, label = item.rpartition("=")
        if not sep or not model or not label:
            raise ConfigError(f"label {item!r} must look like MODEL=LABEL, e.g. builtin:/runs/a=before")
        out[model] = label
    return out


# ---------------------------------------------------------------- figures


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    buf = io.BytesIO()
    # no "Software" metadata: same inputs give byte-identical PNGs across matplotlib versions
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    _plt().close(fig)
    return write_bytes_atomic(path, buf.getvalue())


def _err(m: dict | None) -> tuple[float, float, float]:
    if not m:
        return math.nan, 0.0, 0.0
    v = float(m["value"])
    lo = m.get("ci_low")
    hi = m.get("ci_high")
    return v, max(0.0, v - lo) if lo is not None else 0.0, max(0.0, hi - v) if hi is not None else 0.0


def _grid(n: int, ncols: int = 3, w: float = 5.2, h: float = 3.6):
    plt = _plt()
    ncols = min(ncols, n)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(w * ncols, h * nrows), squeeze=False)
    flat = [ax for row in axes for ax in row]
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def _tasks_in_order(results: Sequence[Result], pred) -> list[str]:
    out: list[str] = []
    for r in results:
        if pred(r) and r.task_name not in out:
            out.append(r.task_name)
    return out


def by_task_then_model(results: Sequence[Result], models: Sequence[str]) -> list[Result]:
    """Rows of a comparison table: each task's models next to each other, in `models` order."""
    tasks = _tasks_in_order(results, lambda r: True)
    return sorted(results, key=lambda r: (tasks.index(r.task_name), models.index(r.model)))


def index_results(results: Sequence[Result]) -> dict[tuple[str, str], Result]:
    """(model, task name) -> result."""
    return {(r.model, r.task_name): r for r in results}


def _mcq_templates(rs: Sequence[Result]) -> list[str]:
    present = set()
    for r in rs:
        present |= set(((r.data.get("breakdowns") or {}).get("accuracy_by_template") or {}))
    return [t for t in TEMPLATE_ORDER if t in present] + sorted(present - set(TEMPLATE_ORDER))


def plot_mcq(results: Sequence[Result], models: Sequence[str], path: Path) -> Path | None:
    """One panel per MCQ task: total and per-question-type accuracy, bars per model, CI whiskers."""
    tasks = _tasks_in_order(results, lambda r: r.kind in MCQ_KINDS)
    if not tasks:
        return None
    by = index_results(results)
    fig, axes = _grid(len(tasks))
    for ax, task in zip(axes, tasks):
        rs = [by[(m, task)] for m in models if (m, task) in by]
        templates = _mcq_templates(rs)
        cats = ["Total"] + [rs[0].type_name(t) for t in templates]
        width = 0.8 / max(1, len(rs))
        for i, r in enumerate(rs):
            bt = (r.data.get("breakdowns") or {}).get("accuracy_by_template") or {}
            vals = [_err(r.metric("accuracy"))] + [_err(bt.get(t)) for t in templates]
            xs = [j + (i - (len(rs) - 1) / 2) * width for j in range(len(cats))]
            ax.bar(xs, [v[0] for v in vals], width, label=r.label, color=_PALETTE[models.index(r.model) % 10],
                   yerr=[[v[1] for v in vals], [v[2] for v in vals]], capsize=2, error_kw={"lw": 0.8})
        chance = rs[0].data.get("chance")
        if chance:
            ax.axhline(chance, ls="--", color="black", lw=1, label="chance")
        ax.set_xticks(range(len(cats)), [textwrap.fill(c, 12) for c in cats], fontsize=8)
        ax.set_ylim(0, 1.05)
        ax.set_ylabel("accuracy")
        ax.set_title(task, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    handles, lbls = axes[0].get_legend_handles_labels()
    for ax in axes[1:]:  # one legend with every model
        for h, lb in zip(*ax.get_legend_handles_labels()):
            if lb not in lbls:
                handles.append(h)
                lbls.append(lb)
    fig.legend(handles, lbls, loc="lower center", ncol=min(4, len(lbls)), bbox_to_anchor=(0.5, -0.02),
               frameon=False)
    fig.suptitle("MCQ accuracy by question type (95% bootstrap CI)")
    fig.tight_layout(rect=(0, 0.06, 1, 0.97))
    return _save(fig, path)


def _confusion_by_model(results: Sequence[Result], models: Sequence[str]) -> dict[str, dict]:
    """Question template -> chosen type counts, summed over each model's 4-way MCQ tasks."""
    out: dict[str, dict] = {}
    for m in models:
        total: dict[str, dict[str, int]] = {}
        for r in results:
            if r.model != m or r.kind != "mcq" or not r.task.get("negated", True):
                continue
            for q, row in ((r.data.get("breakdowns") or {}).get("confusion") or {}).items():
                acc = total.setdefault(q, {})
                for c, n in row.items():
                    acc[c] = acc.get(c, 0) + int(n)
        if total:
            out[m] = total
    return out


def plot_bias(results: Sequence[Result], models: Sequence[str], path_shares: Path,
              path_heatmap: Path) -> tuple[Path | None, Path | None]:
    """Wrong-answer type shares (stacked bars) and question x chosen-type heatmaps."""
    plt = _plt()
    rows = [r for r in results if r.kind == "mcq" and r.task.get("negated", True)
            and (r.data.get("breakdowns") or {}).get("wrong_answer_type_shares")]
    shares_png = heat_png = None
    if rows:
        rows.sort(key=lambda r: (models.index(r.model), r.task_name))
        types = [t for t in ("positive", "negative", "hybrid")]
        fig, ax = plt.subplots(figsize=(8, 0.45 * len(rows) + 1.6))
        left = [0.0] * len(rows)
        colors = {"positive": "#DD8452", "negative": "#4C72B0", "hybrid": "#55A868"}
        for t in types:
            vals = [float(r.data["breakdowns"]["wrong_answer_type_shares"].get(t, 0.0)) for r in rows]
            ax.barh(range(len(rows)), vals, left=left, color=colors[t], label=rows[0].type_name(t))
            for i, v in enumerate(vals):
                if v >= 0.08:
                    ax.text(left[i] + v / 2, i, f"{v:.0%}", ha="center", va="center", fontsize=8, color="white")
            left = [a + b for a, b in zip(left, vals)]
        ax.set_yticks(range(len(rows)), [f"{r.label} · {r.task_name}" for r in rows], fontsize=8)
        ax.invert_yaxis()
        ax.set_xlim(0, 1)
        ax.set_xlabel("share of wrong answers, by the type of option chosen")
        ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=3, frameon=False)
        fig.tight_layout()
        shares_png = _save(fig, path_shares)
    conf = _confusion_by_model(results, models)
    if conf:
        fig, axes = _grid(len(conf), ncols=3, w=4.6, h=3.6)
        for ax, (m, table) in zip(axes, conf.items()):
            label = next(r.label for r in results if r.model == m)
            name_of = next(r for r in results if r.model == m).type_name
            qs = [t for t in TEMPLATE_ORDER if t in table] + sorted(set(table) - set(TEMPLATE_ORDER))
            cols = list(CHOSEN_ORDER)
            mat = []
            for q in qs:
                n = sum(table[q].values()) or 1
                mat.append([table[q].get(c, 0) / n for c in cols])
            ax.imshow(mat, cmap="Oranges", vmin=0, vmax=1, aspect="auto")
            for i, row in enumerate(mat):
                for j, v in enumerate(row):
                    ax.text(j, i, f"{v:.0%}", ha="center", va="center", fontsize=8,
                            color="white" if v > 0.6 else "black")
            ax.set_xticks(range(len(cols)), ["Correct"] + [name_of(c) for c in cols[1:]], fontsize=8)
            ax.set_yticks(range(len(qs)), [name_of(q) for q in qs], fontsize=8)
            ax.set_xlabel("chosen option")
            ax.set_ylabel("question type")
            ax.set_title(label, fontsize=9)
        fig.suptitle("Question type x chosen option (row shares, all negated 4-way MCQ tasks)")
        fig.tight_layout()
        heat_png = _save(fig, path_heatmap)
    return shares_png, heat_png


def retrieval_pairs(results: Sequence[Result]) -> list[tuple[str, str | None, list[str]]]:
    """(group, plain task or None, [negated tasks]) for every group with a negated retrieval task."""
    by_group: dict[str, dict] = {}
    for r in results:
        if r.kind != "retrieval":
            continue
        g = by_group.setdefault(r.task.get("group") or r.task_name, {"plain": [], "neg": []})
        bucket = g["neg"] if r.task.get("negated", True) else g["plain"]
        if r.task_name not in bucket:
            bucket.append(r.task_name)
    out = []
    for group, g in by_group.items():
        if not g["neg"]:
            continue
        plain = None
        if g["plain"]:
            originals = [t for t in g["plain"] for r in results
                         if r.task_name == t and r.task.get("variant") == "original"]
            plain = (originals or g["plain"])[0]
        out.append((group, plain, g["neg"]))
    return out


def plot_retrieval(results: Sequence[Result], models: Sequence[str], path: Path) -> Path | None:
    """Per group: text->media R@1 and R@5 for the plain task and each negated task, per model."""
    pairs = retrieval_pairs(results)
    if not pairs:
        return None
    by = index_results(results)
    fig, axes = _grid(len(pairs), ncols=2, w=max(5.5, 2.6 * len(models)), h=3.8)
    neg_colors = ["#DD8452", "#C44E52", "#937860", "#DA8BC3"]
    for ax, (group, plain, negs) in zip(axes, pairs):
        tasks = ([plain] if plain else []) + negs
        cats = [(m, k) for m in models for k in (1, 5) if any((m, t) in by for t in tasks)]
        width = 0.8 / len(tasks)
        for i, t in enumerate(tasks):
            vals = [_err(by[(m, t)].metric(f"t2i_recall@{k}")) if (m, t) in by else (math.nan, 0, 0)
                    for m, k in cats]
            xs = [j + (i - (len(tasks) - 1) / 2) * width for j in range(len(cats))]
            color = "#4C72B0" if t == plain else neg_colors[(i - (1 if plain else 0)) % len(neg_colors)]
            name = f"{t} (original)" if t == plain else f"{t} (negated)"
            ax.bar(xs, [v[0] for v in vals], width, color=color, label=name,
                   yerr=[[v[1] for v in vals], [v[2] for v in vals]], capsize=2, error_kw={"lw": 0.8})
        labels = {m: next(r.label for r in results if r.model == m) for m in models}
        ax.set_xticks(range(len(cats)), [f"{textwrap.fill(labels[m], 14)}\nR@{k}" for m, k in cats], fontsize=8)
        ax.set_ylim(0, 1.05)
        ax.set_ylabel("text→media recall")
        ax.set_title(group, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=7, loc="upper left")
    fig.suptitle("Retrieval with original vs negated captions (95% bootstrap CI)")
    fig.tight_layout()
    return _save(fig, path)


# ---------------------------------------------------------------- before / after


@dataclass
class DeltaRow:
    task: str
    metric: str
    before: float
    after: float

    @property
    def delta(self) -> float:
        return self.after - self.before


def headline_metrics(r: Result) -> list[tuple[str, str]]:
    """(metric key, display name) pairs worth comparing for one result."""
    if r.kind == "retrieval":
        return [("t2i_recall@1", "R@1"), ("t2i_recall@5", "R@5")]
    out = [("accuracy", "accuracy")]
    for t in _mcq_templates([r]):
        out.append((f"template:{t}", r.type_name(t)))
    return out


def metric_value(r: Result, key: str) -> float | None:
    """A metric's value; 'template:T' reads the per-question-type accuracy of template T."""
    if key.startswith("template:"):
        m = ((r.data.get("breakdowns") or {}).get("accuracy_by_template") or {}).get(key.split(":", 1)[1])
    else:
        m = r.metric(key)
    return None if not m else float(m["value"])


def before_after(results: Sequence[Result], before: str, after: str) -> list[DeltaRow]:
    """Headline metrics of every task both models were evaluated on."""
    by = index_results(results)
    rows = []
    for task in _tasks_in_order(results, lambda r: True):
        if (before, task) not in by or (after, task) not in by:
            continue
        rb, ra = by[(before, task)], by[(after, task)]
        for key, name in headline_metrics(rb):
            vb, va = metric_value(rb, key), metric_value(ra, key)
            if vb is not None and va is not None:
                rows.append(DeltaRow(task, name, vb, va))
    return rows


def resolve_model(x: str, models: Sequence[str], labels: dict[str, str], what: str = "model") -> str:
    """A model string given as itself or as one of the caller's labels."""
    if x in models:
        return x
    hits = [m for m in models if labels.get(m) == x]
    if not hits:
        raise ConfigError(f"{what} {x!r} is neither a model nor a label in the results; "
                          f"models: {list(models)}, labels: {labels}")
    return hits[0]


def resolve_before_after(models: Sequence[str], labels: dict[str, str], before: str | None,
                         after: str | None) -> tuple[str | None, str | None]:
    """Model strings for the comparison: given as models or labels, else labels 'before…'/'after…'."""
    def find(x: str | None, word: str) -> str | None:
        if x:
            return resolve_model(x, models, labels, f"{word} model")
        hits = [m for m in models if (labels.get(m) or "").lower().startswith(word)]
        return hits[0] if len(hits) == 1 else None

    b, a = find(before, "before"), find(after, "after")
    return (b, a) if b and a and b != a else (None, None)


def plot_deltas(rows: Sequence[DeltaRow], path: Path, before_label: str, after_label: str) -> Path | None:
    if not rows:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 0.32 * len(rows) + 1.4))
    vals = [100 * r.delta for r in rows]
    ax.barh(range(len(rows)), vals, color=["#55A868" if v >= 0 else "#C44E52" for v in vals])
    ax.set_yticks(range(len(rows)), [f"{r.task} · {r.metric}" for r in rows], fontsize=8)
    ax.invert_yaxis()
    ax.axvline(0, color="black", lw=0.8)
    ax.set_xlabel(f"{after_label} − {before_label} (percentage points)")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


# ---------------------------------------------------------------- gallery


@dataclass
class GalleryItem:
    task: str
    row: int
    media: str
    media_path: str
    options: list[str]
    option_types: list[str]
    correct: int
    chosen: int
    question_type: str
    chosen_after: int | None = None
    thumbnail_png: bytes | None = None
    thumb_file: str | None = None


def _option_types(rec: dict, options: Sequence[str]) -> list[str]:
    from negbench.inputs.formats import infer_option_type

    types = rec.get("caption_types")
    if types is not None and len(list(types)) == len(options):
        return [str(t) for t in types]
    return [infer_option_type(o) for o in options]


def _thumbnail(path: str, size: int = 180) -> bytes | None:
    try:
        from PIL import Image

        with Image.open(path) as im:
            im = im.convert("RGB")
            im.thumbnail((size, size))
            buf = io.BytesIO()
            im.save(buf, format="PNG")
            return buf.getvalue()
    except Exception:  # videos and unreadable media get no preview, not a broken report
        return None


def _read_items(r: Result):
    p = r.predictions_path()
    if p is None or not p.exists():
        return None
    import pandas as pd

    return pd.read_parquet(p)


def gallery(results: Sequence[Result], model: str, *, after: str | None = None,
            n: int = 8) -> tuple[str | None, list[GalleryItem]]:
    """Items of `model`'s 4-way MCQ tasks where it chose the most common wrong option type.

    Returns (error type, items): image tasks first, then by task order and row, so the
    gallery is the same every run.
    """
    rs = [r for r in results if r.model == model and r.kind == "mcq"]
    frames = []
    for r in rs:
        df = _read_items(r)
        if df is not None and len(df):
            frames.append((r, df))
    wrong_counts: dict[str, int] = {}
    for _, df in frames:
        for t in df.loc[~df["is_correct"].astype(bool), "chosen_type"].astype(str):
            wrong_counts[t] = wrong_counts.get(t, 0) + 1
    if not wrong_counts:
        return None, []
    error_type = max(sorted(wrong_counts), key=lambda t: wrong_counts[t])
    after_preds: dict[tuple[str, int], int] = {}
    if after:
        for r in results:
            if r.model == after and r.kind == "mcq":
                df = _read_items(r)
                if df is not None:
                    after_preds.update({(r.task_name, int(row)): int(p)
                                        for row, p in zip(df["row"], df["predicted"])})
    frames.sort(key=lambda x: x[0].task.get("modality") == "video")
    items: list[GalleryItem] = []
    for r, df in frames:
        sel = df[(~df["is_correct"].astype(bool)) & (df["chosen_type"].astype(str) == error_type)]
        ncap = sum(1 for c in df.columns if str(c).startswith("caption_") and str(c)[8:].isdigit())
        for rec in sel.sort_values("row").to_dict("records"):
            if len(items) >= n:
                break
            options = [str(rec[f"caption_{i}"]) for i in range(ncap)]
            items.append(GalleryItem(
                task=r.task_name, row=int(rec["row"]), media=str(rec.get("media", "")),
                media_path=str(rec.get("media_path", "")), options=options,
                option_types=_option_types(rec, options), correct=int(rec["correct_answer"]),
                chosen=int(rec["predicted"]), question_type=str(rec.get("template") or ""),
                chosen_after=after_preds.get((r.task_name, int(rec["row"]))),
                thumbnail_png=_thumbnail(str(rec.get("media_path", "")))))
    return error_type, items


# ---------------------------------------------------------------- published numbers


def published_numbers(path: str | Path = PUBLISHED_CSV) -> list[dict]:
    """Rows of the shipped published-numbers file (model, backbone, dataset, task, metric, value, source)."""
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


# ---------------------------------------------------------------- tables


def _pct(m: dict | None, ci: bool = True) -> str:
    if not m:
        return "–"
    v = f"{100 * float(m['value']):.1f}"
    if ci and m.get("ci_low") is not None and m.get("ci_high") is not None:
        v += f" [{100 * float(m['ci_low']):.1f}, {100 * float(m['ci_high']):.1f}]"
    return v


def measured_table(results: Sequence[Result], models: Sequence[str]) -> tuple[list[str], list[list[str]]]:
    header = ["model", "task", "kind", "items", "accuracy / t2i R@1", "Affirmation", "Negation", "Hybrid",
              "t2i R@5", "i2t R@5"]
    rows = []
    for r in by_task_then_model(results, models):
        bt = (r.data.get("breakdowns") or {}).get("accuracy_by_template") or {}
        n = (r.data.get("counts") or {}).get("items", "")
        if r.kind == "retrieval":
            rows.append([r.label, r.task_name, r.kind, str(n), _pct(r.metric("t2i_recall@1")), "", "", "",
                         _pct(r.metric("t2i_recall@5")), _pct(r.metric("i2t_recall@5"))])
        else:
            rows.append([r.label, r.task_name, r.kind, str(n), _pct(r.metric("accuracy")),
                         _pct(bt.get("positive")) if bt else "", _pct(bt.get("negative")) if bt else "",
                         _pct(bt.get("hybrid")) if bt else "", "", ""])
    return header, rows


def bias_table(results: Sequence[Result], models: Sequence[str]) -> tuple[list[str], list[list[str]]]:
    header = ["model", "task", "wrong → Affirmation", "wrong → Negation", "wrong → Hybrid"]
    rows = []
    for r in by_task_then_model(results, models):
        s = (r.data.get("breakdowns") or {}).get("wrong_answer_type_shares")
        if r.kind == "mcq" and r.task.get("negated", True) and s:
            rows.append([r.label, r.task_name] + [f"{100 * float(s.get(t, 0)):.1f}%"
                                                  for t in ("positive", "negative", "hybrid")])
    return header, rows


def retrieval_table(results: Sequence[Result], models: Sequence[str]) -> tuple[list[str], list[list[str]]]:
    header = ["model", "group", "task", "captions", "t2i R@1", "t2i R@5", "Δ R@5 vs original"]
    by = index_results(results)
    rows = []
    for group, plain, negs in retrieval_pairs(results):
        for m in models:
            base = by.get((m, plain)) if plain else None
            for t in ([plain] if plain else []) + negs:
                r = by.get((m, t))
                if r is None:
                    continue
                d = ""
                if base is not None and t != plain and r.metric("t2i_recall@5") and base.metric("t2i_recall@5"):
                    d = f"{100 * (r.metric('t2i_recall@5')['value'] - base.metric('t2i_recall@5')['value']):+.1f}"
                rows.append([r.label, group, t, "original" if t == plain else "negated",
                             _pct(r.metric("t2i_recall@1")), _pct(r.metric("t2i_recall@5")), d])
    return header, rows


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    esc = lambda s: str(s).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    lines = ["| " + " | ".join(esc(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _html_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    h = "".join(f"<th>{html.escape(str(c))}</th>" for c in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{h}</tr></thead><tbody>{body}</tbody></table>"


# ---------------------------------------------------------------- the report


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1200px;
     padding:0 1em;color:#222;line-height:1.45}
h1{margin-bottom:.2em} h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.8em 0;font-size:13px}
th,td{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f4f4f4} img.fig{max-width:100%;height:auto;display:block;margin:.6em 0}
.note{color:#555;font-size:13px} .empty{color:#888;font-style:italic}
.published{background:#fff8e6;border:2px dashed #d9a400;padding:.2em 1em 1em;margin-top:2em}
.gallery{display:flex;flex-wrap:wrap;gap:12px}
.card{border:1px solid #ddd;border-radius:6px;padding:8px;width:360px;font-size:12.5px}
.card img{width:180px;height:auto;display:block;margin-bottom:6px}
.card ol{padding-left:1.4em;margin:.3em 0} .card li{margin:2px 0}
.chosen{background:#fde2e1} .correct{background:#dff3e0} .tag{font-size:11px;color:#555}
"""


@dataclass
class _Doc:
    md: list[str] = field(default_factory=list)
    html: list[str] = field(default_factory=list)

    def section(self, key: str):
        title = SECTIONS[key]
        self.md.append(f"\n## {title}\n")
        self.html.append(f'<h2 id="{key}">{html.escape(title)}</h2>')

    def para(self, text: str, cls: str = "note"):
        self.md.append(text + "\n")
        self.html.append(f'<p class="{cls}">{html.escape(text)}</p>')

    def table(self, header, rows):
        self.md.append(_md_table(header, rows) + "\n")
        self.html.append(_html_table(header, rows))

    def figure(self, png: Path | None, alt: str):
        if png is None:
            return
        self.md.append(f"![{alt}]({png.name})\n")
        data = base64.b64encode(png.read_bytes()).decode()
        self.html.append(f'<img class="fig" alt="{html.escape(alt)}" src="data:image/png;base64,{data}">')


def make_report(results_paths: Sequence[str | Path], out_dir: str | Path, *, title: str = "negbench report",
                labels: dict[str, str] | None = None, before: str | None = None, after: str | None = None,
                gallery_model: str | None = None, gallery_size: int = 8, probes: Sequence = (),
                published_csv: str | Path = PUBLISHED_CSV) -> Path:
    """Write report.html, report.md and the PNGs under out_dir; returns the report.html path.

    results_paths: results JSON files or folders holding them. labels: model string ->
    display label. before/after: model strings or labels to compare (default: the models
    labelled 'before…' and 'after…'). gallery_model: whose errors to show (default: the
    'before' model, else the first model). probes: probe.json files (or dicts) written by
    `negbench probe-text`, shown in their own section.
    """
    out = Path(out_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    results = load_results(results_paths)
    labels = dict(labels or {})
    probe_docs = [p if isinstance(p, dict) else read_json(Path(p).expanduser()) for p in probes]
    models = assign_labels(results, labels, [d.get("model", "") for d in probe_docs if isinstance(d, dict)])
    label_of = {r.model: r.label for r in results}
    b, a = resolve_before_after(models, labels, before, after)
    if b and a:  # before, after, then the rest: bars and tables read left to right in time
        models = [b, a] + [m for m in models if m not in (b, a)]

    doc = _Doc()
    doc.md.append(f"# {title}\n")
    doc.html.append(f"<h1>{html.escape(title)}</h1>")
    doc.para(f"{len(results)} results files, {len(models)} model(s): " +
             "; ".join(f"{label_of[m]} = {m}" if label_of[m] != m else m for m in models) +
             ". Percentages with 95% bootstrap intervals over items.")
    toc = " · ".join(f'<a href="#{k}">{html.escape(v)}</a>' for k, v in SECTIONS.items())
    doc.html.append(f'<p class="note">{toc}</p>')

    doc.section("measured")
    doc.table(*measured_table(results, models))

    doc.section("mcq")
    png = plot_mcq(results, models, out / "mcq_accuracy.png")
    if png:
        doc.para("Bars: accuracy over all questions and per question type (the type of the correct "
                 "option); whiskers: 95% bootstrap CI; dashed line: chance.")
        doc.figure(png, "MCQ accuracy by question type")
    else:
        doc.para("No MCQ results in the inputs.", "empty")

    doc.section("bias")
    shares_png, heat_png = plot_bias(results, models, out / "wrong_answer_types.png", out / "confusion_heatmap.png")
    if shares_png or heat_png:
        doc.para("Among wrong answers, the linguistic type of the option chosen. The paper found CLIP models "
                 "mostly pick the Affirmation-type distractor, which names the absent object (affirmation "
                 "bias); rows of the heatmap are question types, columns the option chosen.")
        doc.figure(shares_png, "Wrong-answer type shares")
        doc.figure(heat_png, "Question type x chosen option heatmap")
        doc.table(*bias_table(results, models))
    else:
        doc.para("No 4-way MCQ breakdowns in the inputs.", "empty")

    doc.section("retrieval")
    png = plot_retrieval(results, models, out / "retrieval.png")
    if png:
        doc.para("Text→image (or video) recall; each negated task is paired with the plain retrieval "
                 "task of the same dataset group.")
        doc.figure(png, "Retrieval original vs negated")
        doc.table(*retrieval_table(results, models))
    else:
        doc.para("No negated retrieval results in the inputs.", "empty")

    doc.section("finetune")
    rows = before_after(results, b, a) if b and a else []
    if rows:
        lb, la = label_of[b], label_of[a]
        doc.para(f"Before: {lb} ({b}). After: {la} ({a}). Δ in percentage points.")
        doc.figure(plot_deltas(rows, out / "finetune_deltas.png", lb, la), "Before/after fine-tuning deltas")
        doc.table(["task", "metric", lb, la, "Δ (pp)"],
                  [[r.task, r.metric, f"{100 * r.before:.1f}", f"{100 * r.after:.1f}", f"{100 * r.delta:+.1f}"]
                   for r in rows])
    else:
        doc.para("No before/after pair: label two models, e.g. --label MODEL_A=before --label "
                 "MODEL_B=after (or pass --before/--after), evaluated on the same tasks.", "empty")

    doc.section("gallery")
    gm = resolve_model(gallery_model, models, labels, "gallery model") if gallery_model else (b or models[0])
    error_type, items = gallery(results, gm, after=a if gm == b else None, n=gallery_size)
    if items:
        _gallery(doc, out, items, error_type, label_of[gm], label_of.get(a) if gm == b and a else None,
                 next(r for r in results if r.model == gm).type_name)
    else:
        doc.para(f"No wrong MCQ answers with per-item predictions for {label_of.get(gm, gm)}.", "empty")

    doc.section("probe")
    _probe_section(doc, out, probe_docs, labels)

    doc.section("published")
    pub = published_rows(published_csv)
    doc.html.append('<div class="published">')
    doc.para("Numbers published by the NegBench authors for real models on the real benchmark data "
             "(arXiv 2501.09425 Table 1 and the authors' results/mcq CSVs). They were NOT measured by "
             "this run and are not comparable with NegWorld results; they are shown for orientation only.")
    doc.table(["model", "backbone", "dataset", "task", "metric", "value (%)", "source"],
              [[p["model"], p["backbone"], p["dataset"], p["task"], p["metric"],
                f"{100 * float(p['value']):.1f}", p["source"]] for p in pub])
    doc.html.append("</div>")

    md = "\n".join(doc.md)
    page = ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
            + "\n".join(doc.html) + "</body></html>\n")
    write_text_atomic(out / "report.md", md)
    return write_text_atomic(out / "report.html", page)


def _gallery(doc: _Doc, out: Path, items: list[GalleryItem], error_type: str, model_label: str,
             after_label: str | None, type_name) -> None:
    doc.para(f"{model_label}: the most common error is choosing the {type_name(error_type)}-type option; "
             f"{len(items)} such questions" + (f", with {after_label}'s choice on the same question." if after_label else "."))
    gdir = out / "gallery"
    cards, md_rows = [], []
    for k, it in enumerate(items):
        img_html, img_md = '<div class="tag">(no preview)</div>', "(no preview)"
        if it.thumbnail_png:
            f = gdir / f"item_{k:02d}.png"
            write_bytes_atomic(f, it.thumbnail_png)
            it.thumb_file = f"gallery/{f.name}"
            b64 = base64.b64encode(it.thumbnail_png).decode()
            img_html = f'<img alt="{html.escape(it.media)}" src="data:image/png;base64,{b64}">'
            img_md = f"![{it.media}]({it.thumb_file})"
        lis = []
        for i, (opt, t) in enumerate(zip(it.options, it.option_types)):
            marks = []
            if i == it.correct:
                marks.append("correct")
            if i == it.chosen:
                marks.append(f"{model_label}'s choice")
            if after_label and it.chosen_after == i:
                marks.append(f"{after_label}'s choice")
            cls = "correct" if i == it.correct else ("chosen" if i == it.chosen else "")
            tag = f' <span class="tag">[{html.escape(type_name(t))}{"; " + html.escape(", ".join(marks)) if marks else ""}]</span>'
            lis.append(f'<li class="{cls}">{html.escape(opt)}{tag}</li>')
        cards.append(f'<div class="card">{img_html}<div class="tag">{html.escape(it.task)} row {it.row} · '
                     f'question type: {html.escape(type_name(it.question_type))}</div><ol start="0">'
                     + "".join(lis) + "</ol></div>")
        opts = "<br>".join(f"{i}. {o}" for i, o in enumerate(it.options))
        after = "" if it.chosen_after is None else str(it.chosen_after)
        md_rows.append([img_md, f"{it.task} row {it.row}", opts, str(it.correct), str(it.chosen)]
                       + ([after] if after_label else []))
    doc.html.append('<div class="gallery">' + "".join(cards) + "</div>")
    doc.md.append(_md_table(["image", "item", "options", "correct", f"{model_label} chose"]
                            + ([f"{after_label} chose"] if after_label else []), md_rows) + "\n")


def _probe_section(doc: _Doc, out: Path, probes: Sequence, labels: dict[str, str]) -> None:
    loaded = []
    for p in probes:
        res = p if isinstance(p, dict) else read_json(Path(p).expanduser())
        if not isinstance(res, dict) or "cosine" not in res or "probes" not in res:
            raise ConfigError(f"{p}: not a probe.json written by negbench probe-text")
        loaded.append(res)
    if not loaded:
        doc.para("No probe results given (run `negbench probe-text --model M --out DIR`, then pass "
                 "DIR/probe.json with --probe).", "empty")
        return
    doc.para("Text tower only, on template captions (data/probe_templates.json). If 'X' vs 'no X' is as "
             "close as a rewording of 'X', the embedding barely moves when an object is negated. Linear "
             "probes are cross-validated over held-out wordings; chance is the majority-class rate.")
    header = ["model", "cos X / no X", "cos X / X reworded", "cos X / Y", "cos X / not no X",
              "probe: negated?", "probe: which object?", "probe: type (4-way)"]
    rows = []
    for res in loaded:
        c, pr = res["cosine"], res["probes"]
        name = labels.get(res["model"]) or _short_model(res["model"])
        rows.append([name] + [f"{c[k]:.3f}" for k in ("affirmative_vs_negated", "affirmative_vs_affirmative_reworded",
                                                       "affirmative_vs_other_object",
                                                       "affirmative_vs_double_negation")]
                    + [f"{100 * pr[k]['accuracy']:.1f}% (chance {100 * pr[k]['majority_baseline']:.1f}%)"
                       for k in ("negated", "object", "type")])
    doc.table(header, rows)
    for k, res in enumerate(loaded):
        plot = (res.get("pca") or {}).get("plot")
        if plot and Path(plot).exists():
            dest = out / f"probe_pca_{k}.png"
            if Path(plot).resolve() != dest.resolve():
                write_bytes_atomic(dest, Path(plot).read_bytes())
            name = labels.get(res["model"]) or _short_model(res["model"])
            doc.para(f"PCA of caption embeddings: {name}")
            doc.figure(dest, f"PCA of caption embeddings: {name}")
