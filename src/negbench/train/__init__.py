"""Negation fine-tuning: data (NegCap/NegMCQ), losses, the trainer and pre-training.

Library entry points: `pretrain(corpus, images, out, ...)`, `finetune(model, negcap, negmcq,
out, ...)`, `TrainConfig` + `train(cfg)`. Heavy modules import lazily.
"""
from __future__ import annotations


def __getattr__(name):
    if name in ("TrainConfig", "train"):
        from negbench.train import trainer
        return getattr(trainer, name)
    if name == "pretrain":
        from negbench.train.pretrain import pretrain
        return pretrain
    if name in ("finetune", "sweep_weights", "RECIPES"):
        from negbench.train import finetune
        return getattr(finetune, name)
    raise AttributeError(name)
