"""Negation fine-tuning entry points: `finetune(...)`, recipes and the loss-weight sweep.

The CLI defaults are the paper's (clw 0.99, mlw 0.01, whole model trainable). A recipe is a
YAML file of TrainConfig values that overrides them: by name from negbench/data/recipes/
(`paper`; `negworld`, the one that works for the built-in model on NegWorld, with its
reasons in the file) or any file by path (`--recipe my.yaml`).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from negbench.core.configs import config_names, load_named_config
from negbench.core.errors import ConfigError
from negbench.train.trainer import TrainConfig, finished_model, train

SWEEP_WEIGHTS = ((1.0, 0.0), (0.99, 0.01), (0.9, 0.1), (0.5, 0.5), (0.0, 1.0))


def recipe_names() -> list[str]:
    return config_names("recipes")


def load_recipe(name_or_path: str) -> dict:
    """TrainConfig values of a recipe: a name in data/recipes/ or a YAML file."""
    return load_named_config("recipes", name_or_path, "recipe")


def recipe_config(recipe: str | None, **overrides) -> TrainConfig:
    """TrainConfig from a recipe (name or YAML path) plus explicit overrides (None values are ignored)."""
    base: dict = load_recipe(recipe) if recipe else {}
    base.update({k: v for k, v in overrides.items() if v is not None})
    base["recipe"] = str(recipe) if recipe else None
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(base) - known)
    if unknown:
        where = f" (recipe {recipe})" if recipe else ""
        raise ConfigError(f"unknown training options {unknown}{where}; known: {sorted(known)}")
    return TrainConfig(**base)


def finetune(model: str, negcap, negmcq, out, *, recipe: str | None = None, resume: bool = False,
             **overrides) -> str:
    """Fine-tune `model` (any trainable model string) on NegCap + NegMCQ; returns the new
    model string. `overrides` are TrainConfig fields (clw, mlw, steps, lr, eval_tasks, ...), and
    two of train()'s: `adapter` (an already loaded model) and `force` (resume even when the
    settings differ from the checkpoint's)."""
    adapter, force = overrides.pop("adapter", None), overrides.pop("force", False)
    cfg = recipe_config(recipe, model=model, negcap=str(negcap) if negcap else None,
                        negmcq=str(negmcq) if negmcq else None, out=str(out), **overrides)
    return train(cfg, resume=resume, adapter=adapter, force=force)


def sweep_weights(model: str, negcap, negmcq, out, *, eval_fn, weights=SWEEP_WEIGHTS,
                  recipe: str | None = None, **overrides) -> list[dict]:
    """Fine-tune once per (clw, mlw) into OUT/clw{c}_mlw{m}/ and score each with
    `eval_fn(model_string) -> {metric: value}`; rows are also written to OUT/sweep.json.

    A run that already finished is not trained again: the sweep resumes from the model string
    it saved (any backend); an interrupted one continues from its last checkpoint."""
    from negbench.core.io import write_json_atomic

    rows = []
    for clw, mlw in weights:
        run = Path(out) / f"clw{clw:g}_mlw{mlw:g}"
        model_string = finished_model(run)
        if model_string is None:
            model_string = finetune(model, negcap if clw > 0 else None, negmcq if mlw > 0 else None, run,
                                    recipe=recipe, resume=True, clw=clw, mlw=mlw, **overrides)
        rows.append({"clw": clw, "mlw": mlw, "model": model_string, **eval_fn(model_string)})
        write_json_atomic(Path(out) / "sweep.json", rows)
    return rows
