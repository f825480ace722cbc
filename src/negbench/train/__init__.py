"""Negation fine-tuning: data (NegCap/NegMCQ), losses, the trainer and pre-training.

Library entry points: `pretrain(PretrainConfig(corpus=..., out=...))`, `finetune(model, negcap, negmcq,
out, ...)`, `TrainConfig` + `train(cfg)`. Heavy modules import lazily.
"""
from __future__ import annotations


def __getattr__(name):
    if name in ("TrainConfig", "train"):
        from negbench.train import trainer
        return getattr(trainer, name)
    if name in ("pretrain", "PretrainConfig"):
        from negbench.train import pretrain
        return getattr(pretrain, name)
    if name in ("finetune", "sweep_weights", "load_recipe", "recipe_names"):
        from negbench.train import finetune
        return getattr(finetune, name)
    raise AttributeError(name)
