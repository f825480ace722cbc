"""Per negated object: which absent objects a model most often gets wrong.

The object is the per-item Parquet's `negated_object` column (the scorer writes it); per-item files
written before that column existed get it the same way here: from the correct option of an MCQ
question (Negation and Hybrid questions negate one object: "This image does not feature N.") or the
caption of a negated-retrieval query ("... There is no N in the image."), by negbench's rule-based
negation parser (negbench.core.negation_parse). Questions whose text negates nothing (Affirmation)
are left out.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from negbench.analysis.report.load import ReportData, datasets, group_of, headline_tasks
from negbench.analysis.report.tables import SMALL_N, pct
from negbench.analysis.results import Result
from negbench.core.negation_parse import single_negated_object

MIN_ITEMS = 5       # an object asked about fewer times says little on its own
SHOWN = 8           # objects per (model, task), hardest first
RECALL_K = 5


@dataclass
class ObjectRow:
    dataset: str
    task: str
    label: str
    obj: str
    n: int
    metric: dict        # {value, ci_low, ci_high}: accuracy (MCQ) or t2i_recall@5 (retrieval)
    key: str


def _column_objects(column) -> np.ndarray:
    """The negated_object column as objects, a missing value (None, NaN, pd.NA: how a reader gives
    nulls depends on the pandas string dtype) as None."""
    return np.array([o if isinstance(o, str) and o else None for o in column], dtype=object)


def item_objects(r: Result, items) -> tuple[np.ndarray, np.ndarray, str] | None:
    """(object per item or None, 0/1 score per item, metric key) of one result's per-item frame."""
    if r.is_choice and "is_correct" in items:
        if "negated_object" in items:
            objs = _column_objects(items["negated_object"])
        else:
            correct = items["correct_answer"].to_numpy(int)
            cols = [c for c in items.columns if c.startswith("caption_") and c[8:].isdigit()]
            if not cols:
                return None
            texts = items[sorted(cols, key=lambda c: int(c[8:]))].to_numpy(object)
            objs = np.array([single_negated_object(texts[i, c]) if 0 <= c < texts.shape[1] else None
                             for i, c in enumerate(correct)], dtype=object)
        return objs, items["is_correct"].to_numpy(float), "accuracy"
    if r.is_ranking and "t2i_rank" in items and r.task.get("negated", True) and \
            ("negated_object" in items or "caption" in items):
        objs = _column_objects(items["negated_object"]) if "negated_object" in items else \
            np.array([single_negated_object(c) for c in items["caption"]], dtype=object)
        rank = items["t2i_rank"].to_numpy()
        return objs, ((rank >= 0) & (rank < RECALL_K)).astype(float), f"t2i_recall@{RECALL_K}"
    return None


def object_rows(data: ReportData) -> list[ObjectRow]:
    """The hardest negated objects of each model on each dataset's headline MCQ and negated retrieval."""
    from negbench.evaluation.metrics import mean_with_ci

    rows = []
    for group in datasets(data.results):
        main = headline_tasks(data, group)
        for task in (main["mcq"], main["negated_retrieval"]):
            for m in data.models:
                r = data.get(m, task) if task else None
                items = data.items(r) if r is not None else None
                found = item_objects(r, items) if items is not None else None
                if found is None:
                    continue
                objs, score, key = found
                per = []
                for obj in sorted({o for o in objs if o}):
                    sel = score[objs == obj]
                    if len(sel) >= MIN_ITEMS:
                        per.append(ObjectRow(group_of(r), r.task_shown, r.label, obj, len(sel), mean_with_ci(sel), key))
                rows += sorted(per, key=lambda x: (x.metric["value"], -x.n, x.obj))[:SHOWN]
    return rows


def object_table(rows) -> tuple[list[str], list[list[str]]]:
    header = ["dataset", "task", "model", "negated object", "metric", "n", "value [95% CI]", "flags"]
    body = [[r.dataset, r.task, r.label, r.obj, r.key, str(r.n), pct(r.metric),
             f"small n ({r.n} < {SMALL_N})" if r.n < SMALL_N else ""] for r in rows]
    return header, body


def objects_section(doc, data: ReportData, out, opts) -> None:
    rows = object_rows(data)
    if not rows:
        doc.para("No per-item MCQ or negated-retrieval predictions whose text negates one object.", "empty")
        return
    doc.para(f"Per object that the correct answer (MCQ) or the query (negated retrieval) says is absent: the "
             f"{SHOWN} hardest per model and task, objects asked about at least {MIN_ITEMS} times. The object is "
             "read from the text by negbench's negation parser (or the results' negated_object column).")
    doc.table(*object_table(rows))
