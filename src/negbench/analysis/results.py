"""The one reader of results JSON files, shared by `negbench table`, the report and the notebook API.

    results = load_results(["results/"])          # files, folders (searched recursively), globs
    results[0].model, results[0].task_name, results[0].metric("accuracy")

A results file is what `negbench.evaluation.engine` writes (schema: docs/contracts.md). Every
backend — CLIP-style adapters and generative VLMs alike — writes the same schema, so nothing
here knows about model kinds: a metric is whatever key `metrics` holds.
"""
from __future__ import annotations

import functools
import glob
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from negbench.core.errors import ConfigError
from negbench.core.io import read_json
from negbench.evaluation.schema import ANSWER_TYPE_BREAKDOWN, KNOWN_SCHEMA_VERSIONS, upgrade_result
from negbench.inputs.kinds import KINDS, TEMPLATE_ORDER, TaskKind, metric_template, template_metric
from negbench.models.names import canonical_model_string

log = logging.getLogger(__name__)

REQUIRED_KEYS = ("schema_version", "model", "task", "metrics")
# The paper's names for the question types; the template ids stay in JSON and footnotes.
TYPE_NAMES = {"positive": "Affirmation", "negative": "Negation", "hybrid": "Hybrid",
              "modified_positive": "single-object Affirmation"}
TYPE_EXPLAINED = ("Affirmation = template 'positive' (\"This image features A and B.\"); Negation = "
                  "'negative' (\"This image does not feature N.\"); Hybrid = 'hybrid' (\"This image "
                  "features B, but not N.\"); single-object Affirmation = 'modified_positive' (\"This "
                  "image features A.\"), used for images with one annotated object.")


@dataclass
class Result:
    """One results JSON (one model x one task) and where it lives."""

    path: Path
    data: dict
    label: str = ""

    def __repr__(self) -> str:
        """'<Result MODEL on TASK (mcq): accuracy=22.5% [16.9, 29.1], n=178>', with the task's marks
        (--limit, incomplete) and the headline metric's own n."""
        head = self.headline()
        if not head:
            return f"<Result {self.model} on {self.task_shown} ({self.kind}): no metrics, n={self.n}>"
        m = self.metric(head[0]) or {}
        ci = f" [{100 * m['ci_low']:.1f}, {100 * m['ci_high']:.1f}]" if m.get("ci_low") is not None else ""
        return (f"<Result {self.model} on {self.task_shown} ({self.kind}): "
                f"{head[0]}={100 * head[1]:.1f}%{ci}, n={self.metric_n(head[0])}>")

    @functools.cached_property
    def model(self) -> str:
        """The model string in its canonical form (local paths resolved): results that name the
        same weights by a relative and an absolute path are one model here."""
        return canonical_model_string(self.data["model"])

    @property
    def task(self) -> dict:
        return self.data["task"]

    @property
    def task_name(self) -> str:
        return self.task["name"]

    @property
    def status(self) -> str:
        """'complete', or 'incomplete' (some questions got no answer: counted wrong)."""
        return self.data.get("status", "complete")

    @property
    def limited(self) -> bool:
        """A --limit run: a subset of the task, never the task's score."""
        return bool(self.data.get("limited", self.data.get("limit") is not None))

    @property
    def marks(self) -> list[str]:
        """What a table or report must say beside this result's numbers."""
        out = []
        if self.status != "complete":
            out.append(self.status)
        if self.limited:
            out.append(f"--limit {self.data.get('limit')}: first {self.n} item{'' if self.n == 1 else 's'} only")
        if self.data.get("regenerated_images"):   # negbench build hardneg-syn --from-release
            out.append("regenerated images, not the authors'")
        return out

    @property
    def flags(self) -> str:
        """The marks as one cell ('; '-joined, '' for a full, complete result): the `flags` column of
        `negbench table`, beside a task column that stays the bare task name (joinable)."""
        return "; ".join(self.marks)

    @property
    def task_shown(self) -> str:
        """The task name, with the marks a reader must not miss (incomplete, --limit), for prose and
        console lines; tables keep the bare name and a separate flags column."""
        return self.task_name + "".join(f" [{m}]" for m in self.marks)

    @property
    def kind(self) -> str:
        return self.task.get("kind", "")

    @property
    def task_kind(self) -> TaskKind | None:
        """The registered kind (None for a kind this negbench does not know)."""
        return KINDS.get(self.kind) if self.kind in KINDS else None

    @property
    def is_choice(self) -> bool:
        return self.task_kind is not None and self.task_kind.is_choice

    @property
    def is_ranking(self) -> bool:
        return self.task_kind is not None and self.task_kind.is_ranking

    @property
    def answer_bias(self) -> bool:
        """A 4-way MCQ result: the report's bias analysis reads it."""
        return self.task_kind is not None and self.task_kind.answer_bias

    @property
    def n(self) -> int | None:
        """The task's items (questions, retrieval rows) evaluated; a metric's own n is metric_n."""
        return (self.data.get("counts") or {}).get("items")

    def metric_n(self, name: str) -> int | None:
        """How many items the metric is a mean over: its own recorded `n` (questions of a question type;
        caption queries for text->media recall; media for media->text). Results written before metrics
        carried n: a type's group count, the per-item Parquet's rows (one per caption query) for
        text->media (without it the distinct captions, short of the queries when two media share a
        caption), the unique media for media->text, else the task's items."""
        m = self.metric(name)
        if isinstance(m, dict) and m.get("n") is not None:
            return int(m["n"])
        counts = self.data.get("counts") or {}
        if name.startswith("t2i_recall@"):
            return self._prediction_rows or counts.get("unique_captions", self.n)
        if name.startswith("i2t_recall@"):
            return counts.get("unique_media", self.n)
        return self.n

    @functools.cached_property
    def _prediction_rows(self) -> int | None:
        """Rows of the per-item Parquet (from its footer, nothing else read, once per result), or None
        without one."""
        path = self.predictions_path()
        if path is None or not path.is_file():
            return None
        try:
            import pyarrow.parquet as pq

            return int(pq.ParquetFile(path).metadata.num_rows)
        except (OSError, ValueError):
            return None

    def metric(self, name: str) -> dict | None:
        """metrics[name]; `accuracy_<type>` of a binary file without templates reads its answer-type group."""
        found = (self.data.get("metrics") or {}).get(name)
        template = metric_template(name)
        if found is None and template is not None:
            found = ((self.data.get("breakdowns") or {}).get(ANSWER_TYPE_BREAKDOWN) or {}).get(template)
        return found

    def metric_names(self) -> list[str]:
        return list(self.data.get("metrics") or {})

    def templates(self) -> list[str]:
        """Question types with an accuracy (metric `accuracy_<template>`), in the paper's order."""
        return [t for t in TEMPLATE_ORDER if self.metric(template_metric(t))]

    def headline(self) -> tuple[str, float] | None:
        """(metric, value) a one-number summary uses: the kind's headline, else accuracy, else text->media
        R@5, else the first."""
        kind_headline = (self.task_kind.headline,) if self.task_kind else ()
        for key in (*kind_headline, "accuracy", "t2i_recall@5", *self.metric_names()):
            m = self.metric(key)
            if m:
                return key, float(m["value"])
        return None

    def type_name(self, template: str) -> str:
        names = {**TYPE_NAMES, **(self.task.get("answer_type_names") or {})}
        return names.get(template, template)

    def predictions_path(self) -> Path | None:
        name = self.data.get("predictions_file")
        if not name:
            return None
        p = Path(name)
        return p if p.is_absolute() else self.path.parent / p


def check_results_doc(obj, path: Path) -> bool:
    """True for a results JSON; ConfigError for one of a schema version this code cannot read."""
    if not (isinstance(obj, dict) and all(k in obj for k in REQUIRED_KEYS)):
        return False
    if obj["schema_version"] not in KNOWN_SCHEMA_VERSIONS:
        raise ConfigError(f"{path}: results schema_version {obj['schema_version']!r} is not one this negbench "
                          f"reads ({list(KNOWN_SCHEMA_VERSIONS)}); upgrade negbench or re-run the evaluation")
    return True


def _expand(paths: Iterable[str | Path]) -> list[tuple[Path, bool]]:
    """(file, given explicitly) for every path, folder (recursive) or glob pattern."""
    files: list[tuple[Path, bool]] = []
    for p in paths:
        p = Path(p).expanduser()
        if p.is_dir():
            files += [(f, False) for f in sorted(p.rglob("*.json"))]
        elif p.is_file():
            files.append((p, True))
        else:
            matches = sorted(glob.glob(str(p), recursive=True))
            if not matches:
                raise ConfigError(f"no results JSON found: {p} matches no file")
            files += [(Path(m), False) for m in matches if Path(m).is_file()]
    return files


def _looks_like_result(f: Path) -> bool:
    """A JSON file the store wrote: a sibling Parquet of the same stem (the store writes it first)."""
    return f.with_suffix(".parquet").is_file()


def _read_one(f: Path, explicit: bool, skipped: list | None) -> Result | None:
    if f.name.startswith(".") or f.name.endswith(".manifest.json"):
        return None
    try:
        obj = read_json(f)
    except (OSError, ValueError) as err:
        if explicit or _looks_like_result(f):
            if skipped is not None:
                skipped.append((f, str(err)))
                return None
            raise ConfigError(f"{f}: not a readable results JSON ({err}); re-run its evaluation, or pass "
                              f"--skip-invalid to leave unreadable results out (counted)") from err
        return None
    if not check_results_doc(obj, f):
        if explicit:
            raise ConfigError(f"{f}: not a negbench results JSON (needs keys {', '.join(REQUIRED_KEYS)})")
        return None
    return Result(f.resolve(), upgrade_result(obj))


def load_results(paths: str | Path | Iterable[str | Path], *, skipped: list | None = None) -> list[Result]:
    """Results JSON files, folders searched recursively, or globs; other JSON in folders is ignored.

    A results file that cannot be read (truncated, not JSON) is an error naming it, unless
    `skipped` is a list: then (path, reason) is appended to it and the file is left out.
    When the same model x task appears twice, the last one given wins (with a warning).
    """
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    found: dict[tuple[str, str], Result] = {}
    for f, explicit in _expand(paths):
        r = _read_one(f, explicit, skipped)
        if r is None:
            continue
        key = (r.model, r.task_name)
        if key in found and found[key].path != r.path:
            log.warning("results for %s on %s given twice; using %s", *key, f)
        found.pop(key, None)
        found[key] = r
    if not found:
        raise ConfigError(f"no negbench results JSON found in {[str(p) for p in paths]}")
    return list(found.values())


def short_model(model: str, width: int = 36) -> str:
    """A model string shortened to its backend and last two path parts."""
    if len(model) <= width:
        return model
    backend, _, spec = model.partition(":")
    return f"{backend}:…/{'/'.join(Path(spec).parts[-2:])}"


def parse_labels(items: Sequence[str]) -> dict[str, str]:
    """['builtin:/a=before', ...] -> {'builtin:/a': 'before'} (split on the last '=')."""
    out = {}
    for item in items:
        model, sep, label = item.rpartition("=")
        if not sep or not model or not label:
            raise ConfigError(f"label {item!r} must look like MODEL=LABEL, e.g. builtin:/runs/a=before")
        out[canonical_model_string(model)] = label
    return out


def assign_labels(results: Sequence[Result], labels: dict[str, str] | None = None,
                  extra_models: Sequence[str] = ()) -> list[str]:
    """Give every model a display label (the caller's first); returns the models in order."""
    labels = {canonical_model_string(m): lb for m, lb in dict(labels or {}).items()}
    extra_models = [canonical_model_string(m) for m in extra_models]
    models = list(dict.fromkeys(r.model for r in results))
    unknown = sorted(set(labels) - set(models) - set(extra_models))
    if unknown:
        raise ConfigError(f"--label names models with no results: {unknown}; models found: {models}")
    shown = {m: labels.get(m) or short_model(m) for m in models}
    if len(set(shown.values())) < len(shown):  # shortened names collided: fall back to full
        shown = {m: labels.get(m) or m for m in models}
    for r in results:
        r.label = shown[r.model]
    return models
