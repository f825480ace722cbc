"""What the steps of one model x task evaluation share: the task's items, the model, the settings.

A `TaskRun` is made by the engine after reading the task file (no weights loaded yet) and is
handed to the step that computes the model's outputs (evaluation/embed.py for models that embed,
evaluation/generative.py for models that answer) and then to the task kind's scorer
(evaluation/scoring.py). This module imports no other evaluation module.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from negbench.core.errors import ConfigError, NegbenchError


class NotApplicable(ConfigError):
    """The model cannot do what this task kind asks (a dual encoder on a question-answering task,
    a generative VLM on retrieval): the task is listed as not evaluated, never scored."""


class NothingAnswered(NegbenchError):
    """The model answered none of the task's questions (every request failed, every option
    unscored): not a result."""


class NonFiniteScores(NegbenchError):
    """A non-finite embedding, similarity or log-probability: never turned into a prediction."""


def media_of(item) -> tuple[str, ...]:
    """The media an item shows, as written in the file (a t2i-selection item has several)."""
    return item.media if isinstance(item.media, tuple) else (item.media,)


def captions_of(item) -> tuple[str, ...]:
    """The caption strings an item needs encoded (options, captions, or its one caption)."""
    return item.captions if hasattr(item, "captions") else (item.caption,)


@dataclass
class TaskRun:
    """One model x task evaluation in progress."""

    spec: Any                  # TaskSpec
    cfg: Any                   # EvalConfig
    task_file: Path
    data: Any                  # TaskData (items, skipped rows, path resolver, audit findings)
    model: Any                 # ModelAdapter, GenerativeAdapter or LazyModel
    model_name: str            # what results record (a generative model's string with its #protocol)
    identity: str | None
    precision: str
    protocol: str | None = None
    timings: dict = field(default_factory=dict)
    cache: dict = field(default_factory=dict)
    counts: dict = field(default_factory=dict)   # extra counts (ties, unparsed, failed requests, ...)

    def media_file(self, media: str) -> Path:
        return Path(os.path.abspath(self.data.media_path(media)))

    def no_rows_error(self) -> NegbenchError:
        return NegbenchError(f"{self.task_file}: no valid rows to evaluate ({len(self.data.skipped)} skipped)")
