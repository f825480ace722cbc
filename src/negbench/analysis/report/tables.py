"""The report's tables (header, rows of strings) and the before/after differences behind them."""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from negbench.analysis.report.load import ReportData, datasets, group_of, headline_tasks, tasks_of
from negbench.analysis.results import TYPE_NAMES, Result
from negbench.inputs.kinds import metric_label, metric_template, template_metric
from negbench.analysis.stats import paired_bootstrap_diff
from negbench.evaluation.metrics import tie_aware_credit
from negbench.evaluation.selection import tie_aware_credit as selection_credit

PUBLISHED_CSV = Path(__file__).resolve().parent.parent.parent / "data" / "published" / "negbench_published.csv"
COUNT_KEYS = ("ties", "unparsed")


def pct(m: dict | None, ci: bool = True, n: int | None = None) -> str:
    """'41.2% [38.0, 44.5]' from a {value, ci_low, ci_high} metric; with n, ', n=58' after it."""
    if not m:
        return "–"
    v = f"{100 * float(m['value']):.1f}%"
    if ci and m.get("ci_low") is not None and m.get("ci_high") is not None:
        v += f" [{100 * float(m['ci_low']):.1f}, {100 * float(m['ci_high']):.1f}]"
    return v + ("" if n is None else f", n={n}")


def metric_value(r: Result, key: str) -> float | None:
    """A metric's value (None when the result lacks it)."""
    m = r.metric(key)
    return None if not m else float(m["value"])


# Below this many items an interval is wide enough that a reader must be told (the Wilson interval
# of 8 of 8 right is [68%, 100%]); the number is shown beside it anyway.
SMALL_N = 30


def gallery_size(r: Result, key: str) -> int | None:
    """What a recall@k ranks among: images for text->media, captions for media->text; None otherwise."""
    counts = r.data.get("counts") or {}
    if key.startswith("t2i_recall@"):
        return counts.get("gallery", counts.get("unique_media"))
    if key.startswith("i2t_recall@"):
        return counts.get("unique_captions")
    return None


def meaningless(r: Result, key: str) -> str | None:
    """Why a metric measures nothing here (R@k over a gallery of at most k items: every item is in the
    top k, so any model scores 100%), or None."""
    size = gallery_size(r, key)
    k = int(key.rsplit("@", 1)[1]) if "@" in key else None
    if size is not None and k is not None and size <= k:
        return f"gallery of {size} <= k={k}: R@{k} is 100% for any model"
    return None


def metric_n(r: Result, key: str) -> int | None:
    """How many items a metric is the mean of (Result.metric_n: the metric's own recorded n)."""
    return r.metric_n(key)


def result_flags(r: Result, key: str | None = None) -> list[str]:
    """What a reader must know beside a result's numbers: incomplete, --limit, small n, R@k over a
    gallery no larger than k."""
    flags = list(r.marks)
    n = metric_n(r, key) if key else r.n
    if n is not None and n < SMALL_N:
        flags.append(f"small n ({n} < {SMALL_N}): wide interval")
    keys = [key] if key else [k for k in r.metric_names() if "@" in k]
    flags += list(dict.fromkeys(m for k in keys if (m := meaningless(r, k))))
    return flags


def shown_metric(key: str, type_name=lambda t: TYPE_NAMES.get(t, t)) -> str:
    """A metric as every table of the report names it: its results key (the one name it has in
    JSON, `negbench table`, the demo and console lines), with the paper's words beside it:
    'accuracy (all questions)', 'accuracy_negative (Negation)', 't2i_recall@5 (text→media)'."""
    label = metric_label(key, type_name)
    if label == key:
        return key
    words = label.split(": ", 1)[1] if label.startswith("accuracy: ") else label.rsplit(" R@", 1)[0]
    return f"{key} ({words})"


def compared_metrics(r: Result) -> list[tuple[str, str]]:
    """(metric key, display name) worth comparing for one result, in the paper's vocabulary."""
    kind = r.task_kind
    keys = [k for k in (kind.compared if kind else ("accuracy",)) if k == "accuracy" or r.metric(k)]
    if r.is_choice:
        keys += [template_metric(t) for t in r.templates()]
    return [(k, shown_metric(k, r.type_name)) for k in keys]


def paired_scores(data: ReportData, rb: Result, ra: Result, key: str):
    """Per-item scores of both models on the same items, aligned, or None without them (no_pair_reason
    says why)."""
    db, da = data.items(rb), data.items(ra)
    if db is None or da is None or len(db) != len(da) or list(db["row"]) != list(da["row"]):
        return None
    if rb.is_choice or rb.kind == "t2i-selection":
        keep = _question_subset(db, key)
        per_item = _choice_item_scores(key, selection_credit if rb.kind == "t2i-selection" else tie_aware_credit)
        if keep is None or per_item is None or any(per_item(d) is None for d in (db, da)):
            return None
        return per_item(db)[keep], per_item(da)[keep]
    if key.startswith("t2i_recall@") and "t2i_rank" in db:
        k = int(key.split("@")[1])
        hit = lambda d: ((d["t2i_rank"].to_numpy() >= 0) & (d["t2i_rank"].to_numpy() < k)).astype(float)  # noqa: E731
        return hit(db), hit(da)
    return None


def _question_subset(items, key: str):
    """bool mask of the questions a choice metric is the mean over (a question type's, or all), or None."""
    template = metric_template(key)
    if template is not None:
        return (items["template"].astype(str) == template).to_numpy() if "template" in items else None
    if key in ("accuracy", "accuracy_tie_aware"):
        return np.ones(len(items), dtype=bool)
    return None


def _choice_item_scores(key: str, credit_of):
    """The per-item score a choice metric averages, read from the per-item table: is_correct, or the
    tie-aware credit (1/t when the correct option is one of t sharing the top score) recomputed from
    the stored option scores by the scorer's own function (credit_of). None for another metric."""
    if key == "accuracy_tie_aware":
        def credit(d):
            if "scores" not in d or "correct_answer" not in d:
                return None
            correct = d["correct_answer"].to_numpy()
            # rows may differ in K (t2i-selection): one row at a time
            return np.array([credit_of(np.asarray(s, dtype=np.float64)[None], [c])[0]
                             for s, c in zip(d["scores"], correct)], dtype=float)
        return credit
    if key == "accuracy" or metric_template(key) is not None:
        return lambda d: d["is_correct"].to_numpy(float)
    return None


def no_pair_reason(data: ReportData, rb: Result, ra: Result, key: str) -> str:
    """Why a before/after difference has no paired interval (said in its table cell)."""
    db, da = data.items(rb), data.items(ra)
    if db is None or da is None:
        return "no per-item Parquet for " + " and ".join(r.label or r.model for r, d in ((rb, db), (ra, da))
                                                          if d is None)
    if len(db) != len(da) or list(db["row"]) != list(da["row"]):
        return "the two runs scored different items"
    if key.startswith("i2t_recall@"):
        return "the per-item Parquet holds one row per caption (text→media ranks), not media→text hits"
    template = metric_template(key)
    if template is not None and ("template" not in db or not (db["template"].astype(str) == template).any()):
        return f"the per-item Parquet's template column marks no {template} question (grouped by answer type)"
    if key == "accuracy_tie_aware":
        return "the per-item Parquet has no option scores"
    return f"the per-item Parquet does not hold {key} per item"


@dataclass
class DiffRow:
    dataset: str
    task: str
    metric: str
    before: dict
    after: dict
    diff: dict | None  # paired bootstrap {value, ci_low, ci_high, excludes_zero}; None without items
    key: str = ""
    flags: tuple[str, ...] = ()
    n: int | None = None
    no_ci_reason: str = ""  # why diff is None

    @property
    def verdict(self) -> str:
        """'better' / 'worse' (the paired interval excludes 0), 'noise' (it includes 0), 'unchanged'
        (no item changed: the interval is [0, 0]), 'no interval' (no per-item data) or 'meaningless'
        (R@k over a gallery of at most k items). The table's last column and the narrative both read it."""
        if any("gallery of" in f for f in self.flags):
            return "meaningless"
        d = self.diff
        if d is None:
            return "no interval"
        if d["ci_low"] == d["ci_high"] == d["value"] == 0:
            return "unchanged"
        if d["excludes_zero"]:
            return "better" if d["value"] > 0 else "worse"
        return "noise"


VERDICT_CELL = {"better": "yes (better)", "worse": "yes (worse)", "noise": "no", "unchanged": "no (no item changed)",
                "no interval": "", "meaningless": "meaningless (gallery <= k)"}


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
                flags = tuple(dict.fromkeys(result_flags(rb, key) + result_flags(ra, key)))
                n = diff["n"] if diff else metric_n(rb, key)
                why = "" if diff else no_pair_reason(data, rb, ra, key)
                rows.append(DiffRow(group, task, name, mb, ma, diff, key, flags, n, why))
    return rows


def pp(x: float) -> str:
    """A difference in percentage points, signed, one decimal; a value that rounds to 0 is +0.0 (not -0.0)."""
    text = f"{100 * float(x):+.1f}"
    return "+0.0" if text == "-0.0" else text


def diff_cell(d: dict | None, before: dict, after: dict, why: str = "no per-item data") -> str:
    if d is None:  # no paired per-item scores: the plain difference, without an interval, and why
        return f"{pp(float(after['value']) - float(before['value']))} pp (no CI: {why})"
    return f"{pp(d['value'])} pp [{pp(d['ci_low'])}, {pp(d['ci_high'])}]"


def diff_table(data: ReportData, rows: Sequence[DiffRow]) -> tuple[list[str], list[list[str]]]:
    lb, la = data.label(data.before), data.label(data.after)
    header = ["dataset", "task", "metric", "n", lb, la, "difference (paired 95% CI)", "beyond its CI?", "flags"]
    body = [[r.dataset, r.task, r.metric, "" if r.n is None else str(r.n), pct(r.before), pct(r.after),
             diff_cell(r.diff, r.before, r.after, r.no_ci_reason), VERDICT_CELL[r.verdict], "; ".join(r.flags)]
            for r in rows]
    return header, body


def ordered_results(data: ReportData) -> list[Result]:
    """Datasets in reading order, then tasks (base wording first), then models in report order."""
    order = {g: i for i, g in enumerate(datasets(data.results))}
    task_rank = {t: i for g in order for i, t in enumerate(tasks_of(data, g))}
    return sorted(data.results, key=lambda r: (order[group_of(r)], task_rank[r.task_name],
                                                data.models.index(r.model)))


def measured_table(data: ReportData) -> tuple[list[str], list[list[str]]]:
    """Every result: its headline metric, the paper's question types, and extra metrics and counts, each
    number with its interval and its own n (a question type's questions, t2i recall's caption queries)."""
    header = ["dataset", "task", "model", "accuracy / t2i_recall@5 [95% CI], n", "Affirmation", "Negation",
              "Hybrid", "other metrics", "flags"]
    rows = []
    for r in ordered_results(data):
        head_key = (r.headline() or ("accuracy",))[0]
        by = {t: r.metric(template_metric(t)) for t in r.templates()}
        shown = {head_key} | {template_metric(t) for t in by}
        extra = [f"{k} {pct(m, n=r.metric_n(k))}" for k, m in (r.data.get("metrics") or {}).items()
                 if k not in shown and isinstance(m, dict) and ("tie" in k or not r.is_choice)]
        counts = r.data.get("counts") or {}
        extra += [f"{k} {counts[k]} of {r.n}" for k in COUNT_KEYS if k in counts]
        rows.append([group_of(r), r.task_name, r.label, pct(r.metric(head_key), n=r.metric_n(head_key))]
                    + [pct(by[t], n=r.metric_n(template_metric(t))) if t in by else ""
                       for t in ("positive", "negative", "hybrid")]
                    + ["; ".join(extra), "; ".join(result_flags(r))])
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
    """A published row's metric: stored under the results' own key (accuracy, accuracy_negative,
    t2i_recall@5), shown as the tables show that key."""
    return shown_metric(metric)


# ---------------------------------------------------------------- one model: against chance and published

# The published rows' (dataset, task) -> the negbench task that evaluates the same released file: the
# paper's MCQ and retrieval numbers are on the LLM-paraphrased files (Table 1), so only those names match.
PUBLISHED_TASKS = {("COCO", "mcq"): "coco_mcq", ("VOC2007", "mcq"): "voc2007_mcq", ("MSR-VTT", "mcq"): "msrvtt_mcq",
                   ("COCO", "negated_retrieval"): "coco_negated_retrieval", ("COCO", "retrieval"): "coco_retrieval",
                   ("MSR-VTT", "negated_retrieval"): "msrvtt_negated_retrieval",
                   ("MSR-VTT", "retrieval"): "msrvtt_retrieval"}


def builtin_task_files() -> dict[str, str]:
    """name -> file of the packaged NegBench tasks (the published release's file names)."""
    import yaml

    from negbench.inputs.tasks import BUILTIN_TASK_DIR

    doc = yaml.safe_load((BUILTIN_TASK_DIR / "negbench.yaml").read_text(encoding="utf-8")) or {}
    return {t["name"]: t["file"] for t in doc.get("tasks") or []}


def is_published_task(r: Result) -> bool:
    """The result is on one of the released NegBench files (a built-in task name with its own file),
    not on NegWorld or a user's build that reuses a name."""
    files = builtin_task_files()
    return r.task_name in files and Path(str(r.task.get("file", ""))).as_posix().endswith(files[r.task_name])


def published_for(r: Result, key: str, published: Sequence[dict]) -> list[dict]:
    """Published rows of known models for this result's task and metric (empty unless the result is
    on a released NegBench file that the paper reports)."""
    if not is_published_task(r):
        return []
    return [p for p in published if PUBLISHED_TASKS.get((p["dataset"], p["task"])) == r.task_name
            and p["metric"] == key]


@dataclass
class ChanceRow:
    dataset: str
    task: str
    label: str
    key: str
    metric_name: str
    metric: dict
    n: int | None
    chance: float | None
    flags: tuple[str, ...]

    @property
    def verdict(self) -> str:
        """'meaningless' (R@k over <= k items), 'above' / 'below' (the interval excludes chance), 'chance'."""
        if any("gallery of" in f for f in self.flags):
            return "meaningless"
        if self.chance is None:
            return "no chance level"
        lo, hi = float(self.metric["ci_low"]), float(self.metric["ci_high"])
        return "above" if lo > self.chance else "below" if hi < self.chance else "chance"


def chance_of(r: Result, key: str) -> float | None:
    """Chance level of a metric: the task's (1/4, 1/2, mean 1/K) for accuracies; k / gallery for R@k
    (a random ranking puts the own item in the top k that often)."""
    size = gallery_size(r, key)
    if size:
        return min(1.0, int(key.rsplit("@", 1)[1]) / size)
    return r.data.get("chance")


def chance_rows(data: ReportData) -> list[ChanceRow]:
    """Every model on each dataset's headline tasks: accuracy (all, per question type) or t2i_recall@5."""
    rows = []
    for group in datasets(data.results):
        for task in (t for t in headline_tasks(data, group).values() if t):
            for m in data.models:
                r = data.get(m, task)
                if r is None:
                    continue
                keys = [k for k, _ in compared_metrics(r)] if r.is_choice else ["t2i_recall@5"]
                for key in keys:
                    metric = r.metric(key)
                    if metric and metric.get("ci_low") is not None:
                        rows.append(ChanceRow(group, r.task_shown, r.label, key, shown_metric(key, r.type_name),
                                              metric, metric_n(r, key), chance_of(r, key),
                                              tuple(result_flags(r, key))))
    return rows


CHANCE_CELL = {"above": "above chance", "below": "below chance", "chance": "cannot tell from chance",
               "meaningless": "meaningless (gallery <= k)", "no chance level": ""}


def chance_table(rows: Sequence[ChanceRow]) -> tuple[list[str], list[list[str]]]:
    header = ["dataset", "task", "model", "metric", "n", "value [95% CI]", "chance", "against chance", "flags"]
    # the bare task name: its marks (--limit, incomplete) are in the flags cell (the sentence keeps them)
    body = [[r.dataset, r.task.split(" [", 1)[0], r.label, r.metric_name, "" if r.n is None else str(r.n), pct(r.metric),
             "" if r.chance is None else f"{100 * r.chance:.1f}%", CHANCE_CELL[r.verdict], "; ".join(r.flags)]
            for r in rows]
    return header, body
