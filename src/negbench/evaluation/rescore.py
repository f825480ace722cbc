"""bf16 / fp16 without the answers they cannot be trusted with: near ties scored again at fp32.

A question whose top two option scores differ by less than the precision's rounding
(metrics.near_tie_bound: bf16 2^-8) can change its answer when the model runs at that precision.
Measured on the small demo's two trained built-in models (15,650 MCQ answers, docs/benchmarks.md
"bf16"): every answer bf16 changed had a bf16 gap below 1.51 x that bound, so the questions whose
gap is below RESCORE_MARGIN x bound (3.6% of them there) are taken again: their media and options
embedded by the same model string at fp32 (through the embedding cache: a model already
evaluated at fp32 loads nothing) and their rows of the score matrix replaced by the fp32 scores.
Every other question keeps its low-precision scores untouched.

Applies to dual encoders given as a model string, on MCQ and binary MCQ; a model given as a loaded
adapter has no fp32 twin to load (the result's warnings say so).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from negbench.evaluation import metrics
from negbench.evaluation.embed import Embeddings, embed_task
from negbench.evaluation.lazy_model import LazyModel
from negbench.evaluation.run import TaskRun
from negbench.evaluation.scoring import choice_scores

RESCORED_KINDS = ("mcq", "binary-mcq")
RESCORE_MARGIN = 2.0   # x near_tie_bound: above the largest bf16 gap of a changed answer measured (1.51)
LOW_PRECISIONS = ("bf16", "fp16")


def applies(run: TaskRun) -> bool:
    """Whether this run's near ties are to be scored again at fp32 (the setting, a low precision, a
    choice task); the fingerprint records the setting only where it applies."""
    return bool(run.cfg.rescore_near_ties) and run.precision in LOW_PRECISIONS and run.spec.kind in RESCORED_KINDS


def rescore_near_ties(run: TaskRun, outputs: Embeddings) -> tuple[Embeddings, int, str | None]:
    """(outputs carrying the choice scores with the near-tied questions' rows computed at fp32, how
    many questions were rescored, why none could be or None)."""
    scores = choice_scores(run, outputs)
    near = metrics.near_ties(scores, run.precision, margin=RESCORE_MARGIN)
    if not near.any():
        return outputs, 0, None
    if not isinstance(run.model, LazyModel):
        return outputs, 0, (f"{int(near.sum())} near-tied questions kept their {run.precision} answers: the model "
                            f"was given as a loaded adapter, with no fp32 copy to load (pass its model string)")
    twin = _fp32_run(run, [it for it, tied in zip(run.data.items, near) if tied])
    rescored = np.array(scores, dtype=np.float64, copy=True)
    rescored[near] = choice_scores(twin, embed_task(twin))
    for key, value in twin.cache.items():   # what the fp32 pass found in the embedding cache
        run.cache[f"rescore_{key}"] = value
    return dataclasses.replace(outputs, choice_scores=rescored), int(near.sum()), None


def _fp32_run(run: TaskRun, items: list) -> TaskRun:
    """The same task restricted to `items`, with the same model string at fp32."""
    model = run.model.at_precision("fp32")
    cfg = run.cfg.with_overrides(precision="fp32", progress=False)
    data = dataclasses.replace(run.data, items=items, skipped=[], suspicious=[], excluded=[])
    return TaskRun(run.spec, cfg, run.task_file, data, model, run.model_name, model.identity(), "fp32")
