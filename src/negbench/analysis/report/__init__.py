"""The report: results JSON (+ per-item Parquet, training logs, probes) -> report.html (self-contained),
report.md and PNGs.

    make_report(["results/"], "report/", labels={"builtin:/a": "before", "builtin:/b": "after"},
                train_logs={"fine-tuning": "runs/ft/train/log.jsonl"})

Read as a researcher reads it: the headline first (per dataset, COCO first: the before/after
figure with CIs and chance, then the before/after table with paired-bootstrap CIs on the
differences and sentences computed from those numbers), then one section per area, then every
measured number, and the published numbers apart, in a clearly labelled chart. Modules:
load (inputs), tables, narrative (text from data), plots, gallery, html (the document).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from negbench.analysis.report import plots
from negbench.analysis.report.gallery import galleries
from negbench.analysis.report.html import Doc, gallery_block
from negbench.analysis.report.load import (ReportData, datasets, headline_tasks, load_report_data, tasks_of,
                                           wording_of, wording_variants)
from negbench.analysis.published import published_rows
from negbench.analysis.report.narrative import (HEADLINE_KEYS, chance_sentence, error_sentences, headline_sentences,
                                                tally_sentence)
from negbench.analysis.report.tables import (PUBLISHED_CSV, bias_table, chance_rows, chance_table, diff_rows,
                                             diff_table, measured_table, metric_value, ordered_results, pct,
                                             published_for, published_numbers, shown_metric)
from negbench.analysis.results import TYPE_EXPLAINED, load_results, parse_labels
from negbench.core.io import write_text_atomic
from negbench.models.names import canonical_model_string

__all__ = ["SECTIONS", "ReportOptions", "index_results", "load_results", "make_report", "metric_value",
           "parse_labels", "published_numbers"]

SECTIONS = {  # anchor -> heading, in reading order; every report has all (empty ones say why)
    "headline": "Headline",
    "mcq": "MCQ accuracy by question type",
    "bias": "Which wrong answer is chosen",
    "objects": "Negated objects most often got wrong",
    "retrieval": "Retrieval: original vs negated captions",
    "wordings": "Trained vs held-out wordings",
    "training": "Training curves",
    "gallery": "Galleries: errors, fixed by fine-tuning, still wrong",
    "probe": "Text-encoder negation probe",
    "measured": "All measured results",
    "published": "Published NegBench numbers (real data; not measured here)",
}


@dataclass
class ReportOptions:
    """title; labels: model -> display label; before/after: models or labels to compare (default:
    the models labelled 'before…'/'after…'); train_logs: {name: log.jsonl or run folder};
    trained_wordings: template sets the fine-tuning data used (the rest are held out);
    probes: probe.json files of `negbench probe-text`; gallery_size: questions per gallery."""

    title: str = "negbench report"
    labels: dict = field(default_factory=dict)
    before: str | None = None
    after: str | None = None
    train_logs: dict | Sequence = ()
    trained_wordings: Sequence[str] | None = None
    probes: Sequence = ()
    gallery_size: int = 4
    published_csv: str | Path = PUBLISHED_CSV


class ResultIndex(dict):
    """(model, task name) -> result; a model looked up by any spelling of its path finds it
    (keys are canonical model strings, models/names.py)."""

    def __missing__(self, key):
        model, task = key
        canonical = (canonical_model_string(model), task)
        if canonical == key:
            raise KeyError(key)
        return self[canonical]

    def get(self, key, default=None):
        try:
            return self[key]
        except KeyError:
            return default


def index_results(results) -> ResultIndex:
    """(model, task name) -> result."""
    return ResultIndex({(r.model, r.task_name): r for r in results})


def make_report(results_paths, out_dir, options: ReportOptions | None = None, **kw) -> Path:
    """Write report.html, report.md and the PNGs under out_dir; returns the report.html path.
    Options are ReportOptions fields, given as an object or as keywords."""
    opts = options or ReportOptions(**kw)
    out = Path(out_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    data = load_report_data(results_paths, labels=opts.labels, before=opts.before, after=opts.after,
                            train_logs=opts.train_logs, probes=opts.probes, trained_wordings=opts.trained_wordings)
    doc = Doc(SECTIONS)
    doc.raw(f"<h1>{opts.title}</h1>", f"# {opts.title}\n")
    who = "; ".join(f"{data.label(m)} = {m}" if data.label(m) != m else m for m in data.models)
    doc.para(f"{len(data.results)} results, {len(data.models)} model(s): {who}. All numbers are percentages with "
             f"95% intervals over questions (or captions), n beside them: {_interval_methods(data)}; a paired "
             "bootstrap for differences between two models.")
    marked = [r for r in data.results if r.marks]
    if marked:
        doc.para("Not full task scores: " + "; ".join(f"{r.label} on {r.task_shown}" for r in marked) + ".")
    for key, build in _SECTION_BUILDERS.items():
        doc.section(key)
        build(doc, data, out, opts)
    doc.raw(f'<p class="footnote">Question types: {TYPE_EXPLAINED}</p>', f"\n---\nQuestion types: {TYPE_EXPLAINED}\n")
    write_text_atomic(out / "report.md", "\n".join(doc.md))
    return write_text_atomic(out / "report.html", doc.page(opts.title))


def _interval_methods(data: ReportData) -> str:
    """How the results' intervals were computed, as recorded in them (results written before ci_method
    existed used the percentile bootstrap)."""
    methods = {m.get("ci_method", "bootstrap") for r in data.results for m in (r.data.get("metrics") or {}).values()
               if isinstance(m, dict) and m.get("ci_low") is not None}
    words = {"wilson": "Wilson score intervals for accuracies and recalls",
             "bootstrap": "percentile bootstrap intervals" + (" for real-valued scores (tie-aware accuracy)"
                                                               if "wilson" in methods else "")}
    return "; ".join(words.get(m, f"{m} intervals") for m in sorted(methods, key=lambda m: m != "wilson")) or \
        "no intervals"


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text.lower()).strip("_")


def _headline(doc: Doc, data: ReportData, out: Path, opts) -> None:
    if not (data.before and data.after):
        _headline_against_chance(doc, data, out, opts)
        return
    rows = diff_rows(data)
    for group in datasets(data.results):
        png = plots.headline_figure(data, group, out / f"headline_{_slug(group)}.png")
        if png is None or not any(r.dataset == group for r in rows):
            continue
        doc.sub(group)
        doc.figure(png, f"{group}: before vs after")
        doc.bullets(headline_sentences(data, [r for r in rows if r.dataset == group]))
    doc.sub("Before / after, every headline number")
    doc.para("Differences are after − before in percentage points; their 95% interval comes from a paired "
             "bootstrap over the same questions (1000 resamples), so it is narrower than two separate intervals.")
    doc.table(*diff_table(data, rows))
    doc.bullets([tally_sentence(rows)])


def _headline_against_chance(doc: Doc, data: ReportData, out: Path, opts) -> None:
    """No before/after pair (one model, or several unlabelled): each model against chance and, on the
    released NegBench files only, beside the published numbers of known models."""
    rows = chance_rows(data)
    if not rows:
        doc.para("No headline task (MCQ or retrieval) in the inputs.", "empty")
        return
    doc.para("Each model against chance on each dataset's main tasks (95% intervals: Wilson for accuracies and "
             "recalls). To compare two models, label them: --label MODEL_A=before --label MODEL_B=after.")
    for group in datasets(data.results):
        mine = [r for r in rows if r.dataset == group]
        if mine:
            doc.sub(group)
            doc.bullets([chance_sentence(r) for r in mine if r.key in HEADLINE_KEYS])
    doc.table(*chance_table(rows))
    pub = published_rows(opts.published_csv)
    measured, published = [], []
    for r in data.results:
        for key in HEADLINE_KEYS:
            theirs = published_for(r, key, pub) if r.metric(key) else []
            if theirs:
                measured.append([r.task_shown, shown_metric(key), f"{data.label(r.model)} (measured)",
                                 pct(r.metric(key), n=r.metric_n(key)), "this run"])
                published += [[r.task_name, shown_metric(key), f"{p['model']} {p['backbone']} (published)",
                               f"{100 * float(p['value']):.1f}%", p["source"]] for p in theirs]
    if measured:
        doc.sub("Beside the published numbers of known models (same released files)")
        doc.para("Published = reported by the NegBench authors, NOT measured by this run; measured = this run.")
        unique = [list(row) for row in dict.fromkeys(tuple(row) for row in published)]  # once per task, not per model
        doc.table(["task", "metric", "model", "value", "source"], measured + unique)


def _mcq(doc: Doc, data: ReportData, out: Path, opts) -> None:
    done = False
    for group in datasets(data.results):
        png = plots.mcq_figure(data, group, out / f"mcq_{_slug(group)}.png")
        if png:
            doc.sub(group)
            doc.figure(png, f"{group} MCQ accuracy by question type")
            done = True
    if done:
        doc.para("Bars: accuracy over all questions and per question type (the type of the correct option); "
                 "whiskers: 95% CI; dashed line: chance; colour = model.")
    else:
        doc.para("No MCQ results in the inputs.", "empty")


def _bias(doc: Doc, data: ReportData, out: Path, opts) -> None:
    mains = [headline_tasks(data, g)["mcq"] for g in datasets(data.results)]
    mains = [t for t in mains if t and any(r.task_name == t and r.answer_bias for r in data.results)]
    rows = [(f"{r.label} · {r.task_name}", r) for r in ordered_results(data) if r.task_name in mains
            and (r.data.get("breakdowns") or {}).get("wrong_answer_type_shares")]
    if not rows:
        doc.para("No 4-way MCQ breakdowns in the inputs.", "empty")
        return
    doc.bullets(error_sentences(data, mains))
    doc.figure(plots.bias_figure(data, rows, out / "wrong_answer_types.png"), "Wrong-answer type shares")
    for group in datasets(data.results):
        png = plots.heatmap_figure(data, group, out / f"confusion_{_slug(group)}.png")
        if png:
            doc.sub(f"{group}: question type × option chosen")
            doc.figure(png, f"{group} question type x chosen option")
    doc.table(*bias_table(data))


def _retrieval(doc: Doc, data: ReportData, out: Path, opts) -> None:
    done = False
    for group in datasets(data.results):
        if not tasks_of(data, group, lambda r: r.is_ranking and r.task.get("negated", True)):
            continue
        png = plots.retrieval_figure(data, group, out / f"retrieval_{_slug(group)}.png")
        if png:
            doc.figure(png, f"{group} retrieval original vs negated")
            done = True
    if not done:
        doc.para("No negated retrieval results in the inputs.", "empty")


def _wordings(doc: Doc, data: ReportData, out: Path, opts) -> None:
    header = ["dataset", "task", "wording", "in the fine-tuning data?"] + [data.label(m) for m in data.models]
    rows = []
    for group in datasets(data.results):
        for base in (t for t in headline_tasks(data, group).values() if t):
            variants = wording_variants(data, base)
            if len(variants) < 2:
                continue
            for t in variants:
                w = wording_of(data, t, base)
                seen = "unknown" if data.trained_wordings is None else \
                    ("trained" if w in data.trained_wordings else "held out")
                first = data.get(data.models[0], t)
                key = first.headline()[0] if first and first.headline() else "accuracy"
                rows.append([group, t, w, seen] + [_pct_n(data.get(m, t), key) for m in data.models])
    if not rows:
        doc.para("No task was evaluated in more than one negation wording.", "empty")
        return
    doc.para("The same questions in other negation wordings (accuracy, or t2i_recall@5 for retrieval). A wording "
             "the fine-tuning never saw tests whether the model learned negation or one phrase.")
    doc.table(header, rows)


def _pct_n(r, key: str) -> str:
    """A result's metric as 'value% [CI], n=..' ('–' without the result)."""
    return pct(r.metric(key), n=r.metric_n(key)) if r is not None else "–"


def _training(doc: Doc, data: ReportData, out: Path, opts) -> None:
    png = plots.training_figure(data.logs, out / "training_curves.png")
    if png is None:
        doc.para("No training log given (pass --train-log RUN/train/log.jsonl).", "empty")
        return
    doc.para("Loss per logged step from each trainer's train/log.jsonl: " +
             "; ".join(f"{lg.name} = {lg.path} ({len(lg.records)} points)" for lg in data.logs) + ".")
    doc.figure(png, "Training curves")
    short = [lg.name for lg in data.logs if 0 < len(lg.records) < 3]
    if short:
        doc.para(f"{', '.join(short)}: fewer than 3 logged steps, so no curve to read; the trainer logs every "
                 "--log-every steps (default 10): a short run needs a smaller --log-every.")


def _gallery(doc: Doc, data: ReportData, out: Path, opts) -> None:
    found = galleries(data, opts.gallery_size)
    if not found:
        doc.para("No MCQ results with per-item predictions.", "empty")
        return
    before = data.before or data.models[0]
    lb, la = data.label(before), (data.label(data.after) if data.after else None)
    for g in found:
        ref = data.get(before, g.task)
        what = {"errors": f"{lb}'s most common error, choosing the {ref.type_name(g.error_type or '')}-type option",
                "fixed": f"wrong for {lb}, right for {la}", "still wrong": f"wrong for both {lb} and {la}"}
        doc.sub(f"{g.dataset} ({g.task}): {what[g.kind]}")
        gallery_block(doc, out, g, ref.type_name, lb, la)


from negbench.analysis.report.sections import probe_section, published_section  # noqa: E402

from negbench.analysis.report.objects import objects_section  # noqa: E402

_SECTION_BUILDERS = {"headline": _headline, "mcq": _mcq, "bias": _bias, "objects": objects_section,
                     "retrieval": _retrieval,
                     "wordings": _wordings, "training": _training, "gallery": _gallery, "probe": probe_section,
                     "measured": lambda doc, data, out, opts: doc.table(*measured_table(data)),
                     "published": published_section}
