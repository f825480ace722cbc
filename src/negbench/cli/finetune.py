"""`negbench finetune`: negation fine-tuning (contrastive on NegCap + MCQ loss on NegMCQ).

The flags live in negbench.train.command, which `python -m negbench.train` (torchrun) uses too.
"""
from __future__ import annotations

from negbench.train.command import HELP, add_arguments, run

__all__ = ["HELP", "add_arguments", "run"]
