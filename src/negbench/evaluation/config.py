"""EvalConfig: every setting of one evaluation run, as one frozen, keyword-only dataclass.

Built once (by `negbench eval` from its flags, or by `negbench.evaluate` from keywords) and passed
as is to the end: the engine, the embedding step, the generative protocols and the store all read
this one object. Dual encoders and generative VLMs share it; the protocol settings are ignored by
models that only embed."""
from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass
from typing import Any

from negbench.core.errors import ConfigError

PROTOCOLS = ("choice", "likelihood")   # how a generative VLM answers a question with options
LIKELIHOOD_NORMS = ("mean", "sum")
EMBED_BATCH_SIZE = 64                   # images / captions per forward pass (dual encoders)
ANSWER_BATCH_SIZE = 8                   # questions per generate() call (generative VLMs)


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
    limit: evaluate only the first N valid items (an int >= 1), or that share of them (a float in
    (0, 1), as lm-eval's --limit 0.1); recorded in the results, which are then marked `limited`
    everywhere and never stand for (or are reused as) the full task. A limit that keeps every item
    of a task (--limit 1000 on 178 items) is no limit for it: its result is the full task's.
    batch_size: None = the model family's default (64 media/captions per forward pass for dual
    encoders, 8 questions per generate() call for generative VLMs).
    Generative VLMs only: protocol (None: the model string's '#protocol', else choice),
    shuffle_options / shuffle_seed (choice: seeded option order per row), max_new_tokens,
    likelihood_norm, load_options (endpoint: concurrency, retries, timeout, deadline).
    rescore_near_ties: at bf16 / fp16, a dual encoder's MCQ questions whose top two scores are
    closer than that precision's rounding are scored again with the model at fp32 (their media and
    options re-embedded; a model given as a string only), so the low precision changes no answer it
    could not be trusted to give; counted in the results (counts.rescored_fp32).
    shard: (i, n) to compute only part i of n of the missing embeddings / answers into the cache
    and score nothing (evaluation/distributed.py); needs cache_dir. None: everything (the ranks of
    a torchrun process group split it by themselves).
    """

    data_root: Any = None
    results_dir: Any = None
    batch_size: int | None = None
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
    limit: int | float | None = None
    protocol: str | None = None
    shuffle_options: bool = False
    shuffle_seed: int = 0
    max_new_tokens: int = 16
    likelihood_norm: str = "mean"
    load_options: dict = dataclasses.field(default_factory=dict)
    shard: tuple[int, int] | None = None
    rescore_near_ties: bool = True

    def __post_init__(self):
        if self.frames < 1:
            raise ConfigError(f"frames must be >= 1, got {self.frames}")
        if self.batch_size is not None and self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.num_workers is not None and self.num_workers < 0:
            raise ConfigError(f"num_workers must be >= 0 (or None: from the cores), got {self.num_workers}")
        if self.bootstrap_samples < 0:
            raise ConfigError(f"bootstrap_samples must be >= 0 (0: no resampling), got {self.bootstrap_samples}")
        check_limit(self.limit)
        if self.protocol is not None and self.protocol not in PROTOCOLS:
            raise ConfigError(f"protocol {self.protocol!r} not in {list(PROTOCOLS)}")
        if self.likelihood_norm not in LIKELIHOOD_NORMS:
            raise ConfigError(f"likelihood_norm {self.likelihood_norm!r} not in {list(LIKELIHOOD_NORMS)}")
        if self.shuffle_seed < 0:
            raise ConfigError(f"shuffle_seed must be >= 0, got {self.shuffle_seed}")
        if self.max_new_tokens < 1:
            raise ConfigError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        from negbench.evaluation.distributed import check_shard

        check_shard(self.shard, self.cache_dir)

    def batch_for(self, family_default: int) -> int:
        return self.batch_size if self.batch_size is not None else family_default

    def items_to_keep(self, n_items: int) -> int:
        """How many of a task's n valid items a --limit keeps (all without one; at least 1). A limit
        that keeps all n is no limit for that task: the engine runs it as the full task
        (engine.read_task), so its result is not `limited` and stands for (and reuses) the full run."""
        if self.limit is None:
            return n_items
        if isinstance(self.limit, float) and self.limit < 1:
            return max(1, int(n_items * self.limit))
        return min(n_items, int(self.limit))

    @property
    def limited(self) -> bool:
        return self.limit is not None

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


# what --limit takes, said the same by the command line and by negbench.evaluate(limit=...)
LIMIT_RULE = "a whole number >= 1 (items) or a fraction in (0, 1) (a share)"


def check_limit(limit) -> None:
    """--limit N (an int >= 1) or a share of the items in (0, 1); anything else names the flag."""
    if limit is None:
        return
    if isinstance(limit, bool) or not isinstance(limit, (int, float)):
        raise ConfigError(f"--limit must be {LIMIT_RULE}, got {limit!r}")
    if isinstance(limit, float) and 0 < limit < 1:
        return
    if limit < 1 or limit != int(limit):
        raise ConfigError(f"--limit must be {LIMIT_RULE}, got {limit!r}")


def parse_limit(text: str) -> int | float:
    """The text of --limit -> an int of items or a float share; ConfigError saying what is allowed."""
    try:
        value = float(text) if any(c in text for c in ".eE") else int(text)
    except ValueError:
        raise ConfigError(f"--limit must be {LIMIT_RULE}, got {text!r}") from None
    if isinstance(value, float) and value >= 1 and value == int(value):
        value = int(value)  # '100.0' and '1e3' are whole numbers of items
    try:
        check_limit(value)
    except ConfigError:
        raise ConfigError(f"--limit must be {LIMIT_RULE}, got {text!r}") from None
    return value
