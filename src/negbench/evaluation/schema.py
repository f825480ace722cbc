"""The results JSON's schema version, and reading files written under older versions.

Version 2 gives every number one key: a question type's accuracy is `metrics["accuracy_<template>"]`
(with its question count `n`) and nowhere else. Version 1 also kept it, without the metric for
binary files lacking a template column, under `breakdowns["accuracy_by_template"]`.
"""
from __future__ import annotations

import copy

from negbench.inputs.kinds import template_metric

SCHEMA_VERSION = 2
KNOWN_SCHEMA_VERSIONS = (1, 2)
# binary files without a correct_answer_template column: accuracy grouped by the correct option's type
ANSWER_TYPE_BREAKDOWN = "accuracy_by_answer_type"


def template_accuracies(by_group: dict, with_templates: bool) -> tuple[dict, dict]:
    """Per-group accuracies {group: {value, ci_low, ci_high, n}} -> (metrics, breakdowns) entries:
    `accuracy_<template>` metrics, or (groups that are no templates) the answer-type breakdown."""
    if with_templates:
        return {template_metric(t): dict(m) for t, m in by_group.items()}, {}
    return {}, ({ANSWER_TYPE_BREAKDOWN: by_group} if by_group else {})


def upgrade_result(doc: dict) -> dict:
    """A results dict in the current shape (a copy when it was older; the current one as is)."""
    if doc.get("schema_version") != 1:
        return doc
    doc = copy.deepcopy(doc)
    breakdowns, metrics = doc.get("breakdowns") or {}, doc.setdefault("metrics", {})
    by_group = breakdowns.pop("accuracy_by_template", None) or {}
    templated = any(template_metric(t) in metrics for t in by_group)
    found_metrics, found_breakdown = template_accuracies(by_group, templated)
    for key, m in found_metrics.items():
        metrics[key] = {**metrics.get(key, {}), **m}
    breakdowns.update(found_breakdown)
    doc["schema_version"] = SCHEMA_VERSION
    return doc
