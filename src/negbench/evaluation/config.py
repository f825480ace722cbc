"""EvalConfig: every setting of one evaluation run, as one frozen, keyword-only dataclass."""
from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass
from typing import Any

from negbench.core.errors import ConfigError


def default_num_workers() -> int:
    """Media-decoding workers: one per core, at most 8. On an accelerator they decode while the
    forward pass runs; on the CPU they all decode between forward passes (evaluation/encoding.py),
    so every core decodes and none is taken from the forward pass."""
    from negbench.evaluation.encoding import usable_cores

    return max(1, min(8, usable_cores()))


@dataclass(frozen=True, kw_only=True)
class EvalConfig:
    """How to evaluate a task (the model and the task are given apart).

    data_root: folder that relative task-file paths are resolved against.
    results_dir: where results JSON + Parquet go; None writes nothing.
    cache_dir: embedding cache root (see engine.default_cache_dir()); None disables caching.
    skip_existing: return the stored results of this model x task instead (needs results_dir).
    num_workers: DataLoader workers decoding media; None chooses from the cores
    (default_num_workers()), 0 decodes in the main process.
    frames: frames sampled per video. device/precision: for a model given as a string;
    precision None = the adapter's own precision attribute, else fp32.
    limit: evaluate only the first N valid items (recorded as results["limit"]; a stored
    result is reused by skip_existing only when its limit is the same).
    """

    data_root: Any = None
    results_dir: Any = None
    batch_size: int = 64
    cache_dir: Any = None
    skip_invalid: bool = False
    seed: int = 0
    bootstrap_samples: int = 1000
    skip_existing: bool = False
    num_workers: int | None = None
    frames: int = 4
    progress: bool = True
    device: str | None = None
    precision: str | None = None
    limit: int | None = None

    def __post_init__(self):
        if self.frames < 1:
            raise ConfigError(f"frames must be >= 1, got {self.frames}")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.num_workers is not None and self.num_workers < 0:
            raise ConfigError(f"num_workers must be >= 0 (or None: from the cores), got {self.num_workers}")

    @property
    def workers(self) -> int:
        return default_num_workers() if self.num_workers is None else self.num_workers

    def with_overrides(self, **overrides) -> "EvalConfig":
        """A copy with some fields replaced; unknown names -> ConfigError naming the allowed ones."""
        names = [f.name for f in dataclasses.fields(self)]
        for key in overrides:
            if key not in names:
                close = difflib.get_close_matches(key, names, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise ConfigError(f"unknown evaluation setting {key!r}{hint} allowed: {', '.join(names)}")
        return dataclasses.replace(self, **overrides) if overrides else self
