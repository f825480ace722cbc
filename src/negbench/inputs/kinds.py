"""Task kinds: what one kind of task file holds, how it is scored and how its numbers are shown.

    from negbench.inputs.kinds import get_kind
    kind = get_kind("binary-mcq")
    kind.chance, kind.headline, kind.metric_label("accuracy_negative")

One frozen TaskKind per kind (`mcq`, `binary-mcq`, `retrieval`, `t2i-selection`) in the KINDS
registry; readers, the engine, tables and the report ask the kind instead of testing its name.
A kind here is data: what its files hold and how its numbers are shown. How it is scored lives
in negbench.evaluation.scoring (SCORERS, keyed by the kind's name): this package sits below
negbench.evaluation and never names it. Adding a kind = a TaskKind here + a scorer there
(docs/extending.md).
"""
from __future__ import annotations

from dataclasses import dataclass

from negbench.core.registry import Registry

# the per-question-type accuracies are `accuracy_<template>`, in this order in tables
TEMPLATE_ORDER = ("positive", "negative", "hybrid", "modified_positive")
# names of metrics shared by kinds; per-template ones are worded by the task's answer_type_names
METRIC_LABELS = {"accuracy": "accuracy: all questions", "accuracy_tie_aware": "accuracy, ties split",
                 **{f"t2i_recall@{k}": f"text→media R@{k}" for k in (1, 5, 10)},
                 **{f"i2t_recall@{k}": f"media→text R@{k}" for k in (1, 5, 10)}}
RETRIEVAL_KS = (1, 5, 10)


@dataclass(frozen=True, kw_only=True)
class TaskKind:
    """One kind of task. Metric values are fractions in [0, 1]; tables show them as percentages."""

    name: str
    layout: str                      # "options" (MCQ rows), "captions" (retrieval rows), "candidates"
    columns: tuple[str, ...]         # required columns besides the media path column
    options: int | None = None       # answer options per question (choice kinds)
    chance: float | None = None      # None: no fixed chance (retrieval; selection records mean 1/K)
    headline: str = "accuracy"       # the one-number summary (leaderboard's wide view, reprs)
    metrics: tuple[str, ...] = ("accuracy", "accuracy_tie_aware")   # in every result of this kind
    compared: tuple[str, ...] = ("accuracy", "accuracy_tie_aware")  # before/after rows of the report
    templates: str = "none"          # accuracy_<template> metrics: "always", "with-column" or "none"
    # options of the three types the paper's bias analysis compares (4-way MCQ): the report's
    # headline MCQ, its wrong-answer-type table, heatmap and error sentences use this kind
    answer_bias: bool = False
    paraphrased_copy: bool = False   # the builder writes a paraphrased copy when a paraphraser is given

    @property
    def is_choice(self) -> bool:
        """Questions with options: generative VLMs can answer them and they have per-template accuracy."""
        return self.options is not None

    @property
    def is_ranking(self) -> bool:
        """Media with captions, scored by ranking one against the other (recall@k)."""
        return self.layout == "captions"

    def reports_templates(self, items) -> bool:
        """Whether results carry `accuracy_<template>`: binary files only when they have the column."""
        if self.templates == "with-column":
            return bool(items) and all(it.template for it in items)
        return self.templates == "always"


def metric_label(key: str, type_name=lambda t: t) -> str:
    """How a table names a metric key; `type_name` words a template (the paper's Negation, ...)."""
    if key in METRIC_LABELS:
        return METRIC_LABELS[key]
    template = metric_template(key)
    return f"accuracy: {type_name(template)}" if template else key


def template_metric(template: str) -> str:
    """The one key of a question type's accuracy, in results JSON, tables, report and demo."""
    return f"accuracy_{template}"


def metric_template(key: str) -> str | None:
    """The question type a metric key is the accuracy of ('accuracy_negative' -> 'negative'), else None."""
    template = key[len("accuracy_"):] if key.startswith("accuracy_") else None
    return template if template in TEMPLATE_ORDER else None


_RECALLS = tuple(f"{d}_recall@{k}" for d in ("t2i", "i2t") for k in RETRIEVAL_KS)
KINDS: Registry[TaskKind] = Registry("task kind")
KINDS.register("mcq", TaskKind(
    name="mcq", layout="options", options=4, chance=0.25,
    columns=("caption_0", "caption_1", "caption_2", "caption_3", "correct_answer", "correct_answer_template"),
    templates="always", answer_bias=True, paraphrased_copy=True))
KINDS.register("binary-mcq", TaskKind(
    name="binary-mcq", layout="options", options=2, chance=0.5,
    columns=("caption_0", "caption_1", "correct_answer"), templates="with-column"))
KINDS.register("retrieval", TaskKind(
    name="retrieval", layout="captions", columns=("captions",),
    headline="t2i_recall@5", metrics=_RECALLS, compared=("t2i_recall@1", "t2i_recall@5"), paraphrased_copy=True))
KINDS.register("t2i-selection", TaskKind(
    name="t2i-selection", layout="candidates", columns=("caption", "image_paths", "correct_answer")))


def get_kind(name: str) -> TaskKind:
    """The registered kind; an unknown name is an error listing the known ones."""
    return KINDS.get(name)


def kind_names(layouts: tuple[str, ...] | None = None) -> list[str]:
    """Registered kinds, optionally only those of some layouts (formats.py reads two of them)."""
    return [n for n in KINDS.names() if layouts is None or KINDS.get(n).layout in layouts]
