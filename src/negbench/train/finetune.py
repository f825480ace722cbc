"""Negation fine-tuning entry points: `finetune(...)`, named recipes and the loss-weight sweep.

The CLI defaults are the paper's (clw 0.99, mlw 0.01, whole model trainable). A recipe is a
named set of TrainConfig values that overrides them; `negworld` is the one measured to work
for the built-in model on NegWorld on 2 CPU cores (see the README table): a locked image
tower, only the top 2 MiniLM layers (+ projection) trainable, equal loss weights — with
0.99/0.01 the contrastive term dominates and Negation-type MCQ questions stay unsolved — and
one extra negation wording per NegCap caption and NegMCQ question (`augment_wordings`, see
`negbench.construct.wordings`), so that the gain carries over to wordings never seen in training.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from negbench.core.errors import ConfigError
from negbench.train.trainer import TrainConfig, train

RECIPES: dict[str, dict] = {
    "paper": dict(clw=0.99, mlw=0.01),
    # measured with bench/finetune_negworld.py (real negdata + build_world_suite + evaluate_task)
    "negworld": dict(clw=0.5, mlw=0.5, lock_image=True, train_text_layers=2, steps=160, batch_size=64,
                     mcq_batch_size=32, lr=3e-4, weight_decay=0.05, warmup_steps=15, min_lr_ratio=0.05,
                     max_images=2500, augment_wordings=1),
}

SWEEP_WEIGHTS = ((1.0, 0.0), (0.99, 0.01), (0.9, 0.1), (0.5, 0.5), (0.0, 1.0))


def recipe_config(recipe: str | None, **overrides) -> TrainConfig:
    """TrainConfig from a named recipe plus explicit overrides (None values are ignored)."""
    base: dict = {}
    if recipe:
        if recipe not in RECIPES:
            raise ConfigError(f"unknown recipe {recipe!r}; available: {sorted(RECIPES)}")
        base = dict(RECIPES[recipe])
    base.update({k: v for k, v in overrides.items() if v is not None})
    base["recipe"] = recipe
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(base) - known)
    if unknown:
        raise ConfigError(f"unknown training options {unknown}; known: {sorted(known)}")
    return TrainConfig(**base)


def finetune(model: str, negcap, negmcq, out, *, recipe: str | None = None, resume: bool = False,
             adapter=None, force: bool = False, **overrides) -> str:
    """Fine-tune `model` (any trainable model string) on NegCap + NegMCQ; returns the new
    model string. `overrides` are TrainConfig fields (clw, mlw, steps, lr, eval_tasks, ...);
    `force` resumes even when the settings differ from the checkpoint's."""
    cfg = recipe_config(recipe, model=model, negcap=str(negcap) if negcap else None,
                        negmcq=str(negmcq) if negmcq else None, out=str(out), **overrides)
    return train(cfg, resume=resume, adapter=adapter, force=force)


def sweep_weights(model: str, negcap, negmcq, out, *, eval_fn, weights=SWEEP_WEIGHTS,
                  recipe: str | None = None, skip_existing: bool = True, **overrides) -> list[dict]:
    """Fine-tune once per (clw, mlw) into OUT/clw{c}_mlw{m}/ and score each with
    `eval_fn(model_string) -> {metric: value}`; rows are also written to OUT/sweep.json."""
    from negbench.core.io import write_json_atomic

    rows = []
    for clw, mlw in weights:
        run = Path(out) / f"clw{clw:g}_mlw{mlw:g}"
        done = run / "config.json"
        if skip_existing and done.exists():
            model_string = f"builtin:{run}" if model.startswith("builtin:") else None
        else:
            model_string = None
        if model_string is None:
            model_string = finetune(model, negcap if clw > 0 else None, negmcq if mlw > 0 else None, run,
                                    recipe=recipe, clw=clw, mlw=mlw, **overrides)
        rows.append({"clw": clw, "mlw": mlw, "model": model_string, **eval_fn(model_string)})
        write_json_atomic(Path(out) / "sweep.json", rows)
    return rows
