"""Pre-training of the built-in model: symmetric contrastive learning on an affirmative
caption corpus (NegWorld's CC12M-style corpus by default) — the offline stand-in for
web-scale CLIP pre-training.

The text tower stays the pretrained MiniLM (frozen, pooled outputs cached per unique
caption); the image CNN, both projections and the temperature are learned. Like CLIP on web
alt-text, the result retrieves objects well and does not understand negation.

Defaults (steps, learning rate, the fresh model's image CNN, ...) are data:
negbench/data/pretrain.yaml.
"""
from __future__ import annotations

import dataclasses
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from negbench.core.configs import load_data_config
from negbench.core.errors import ConfigError
from negbench.train.trainer import TrainConfig, claim_run_dir, train

_DEFAULTS = load_data_config("pretrain")
PRETRAIN_DEFAULTS: dict = dict(_DEFAULTS["train"])    # TrainConfig values
PRETRAIN_MODEL: dict = dict(_DEFAULTS["model"])       # BuiltinConfig values of the fresh model


@dataclass(kw_only=True, frozen=True)
class PretrainConfig:
    corpus: str                                 # filepath<TAB>caption TSV
    images: str | None = None                   # image root of the corpus paths (default: the TSV's folder)
    out: str = "runs/pretrain"                  # model folder (load it as builtin:OUT); logs in OUT/train/
    steps: int = PRETRAIN_DEFAULTS["steps"]
    batch_size: int = PRETRAIN_DEFAULTS["batch_size"]
    lr: float = PRETRAIN_DEFAULTS["lr"]
    max_images: int | None = None
    seed: int = 0
    device: str | None = None
    num_threads: int | None = None
    text_model: str = "minilm"                  # base text tower (and its tokenizer)
    train_text_layers: int = 0
    log_every: int = PRETRAIN_DEFAULTS["log_every"]
    save_every: int = PRETRAIN_DEFAULTS["save_every"]
    model: dict = field(default_factory=dict)   # BuiltinConfig overrides of PRETRAIN_MODEL


INIT_RECORD = "negbench_init.json"   # in OUT/train/init: the seed and model settings it was made with


def pretrain(cfg: PretrainConfig, *, resume: bool = False, force: bool = False) -> str:
    """Train a fresh built-in model on `cfg.corpus`; writes it to `cfg.out` and returns
    'builtin:OUT'. `resume=True` continues an interrupted run from OUT/train/; an OUT that holds
    a run is refused otherwise, or with `force` deleted first (init, log and checkpoints)."""
    init = Path(cfg.out) / "train" / "init"
    tcfg = _train_config(cfg, f"builtin:{init}")
    tcfg.validate()  # every flag before any work (the fresh model is written next)
    claim_run_dir(cfg.out, resume=resume, force=force)
    _fresh_model(init, cfg, resumable=resume and (init.parent / "checkpoint.pt").exists())
    return train(tcfg, resume=resume, force=force)


def _fresh_model(init: Path, cfg: PretrainConfig, resumable: bool) -> None:
    """OUT/train/init, the initial weights: reused only when made with this seed and model
    settings; rebuilt otherwise, or refused when a checkpoint was trained from other ones."""
    from negbench.core.io import read_json, write_json_atomic
    from negbench.models.builtin import create_builtin_model

    want = json.loads(json.dumps({"seed": cfg.seed, "model": _model_config(cfg)}, sort_keys=True))
    record = init / INIT_RECORD
    if (init / "config.json").exists():
        have = read_json(record) if record.exists() else None
        if have == want or (have is None and resumable):  # (no record: a run from before the record)
            return
        if resumable:
            diff = sorted(k for k in want if (have or {}).get(k) != want[k])
            raise ConfigError(f"--out {cfg.out}: the checkpoint was trained from an initial model made with "
                              f"other settings ({', '.join(diff)}); rerun with them, or --force to start over")
        shutil.rmtree(init)
    create_builtin_model(init, seed=cfg.seed, **_model_config(cfg))
    write_json_atomic(record, want)


def _model_config(cfg: PretrainConfig) -> dict:
    base = dict(PRETRAIN_MODEL)
    if "image_widths" in cfg.model:  # the default convs per stage fit only the default stages
        base.pop("image_convs", None)
    return {**base, "text_model": cfg.text_model, "tokenizer": cfg.text_model, **cfg.model}


def _train_config(cfg: PretrainConfig, model: str) -> TrainConfig:
    same = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)
            if f.name not in ("corpus", "images", "text_model", "model")}
    fixed = {k: PRETRAIN_DEFAULTS[k] for k in ("weight_decay", "min_lr_ratio", "grad_clip")}
    same["out"] = str(cfg.out)
    return TrainConfig(**same, **fixed, model=model, corpus=str(cfg.corpus),
                       images=str(cfg.images) if cfg.images else None, clw=1.0, mlw=0.0,
                       warmup_steps=min(PRETRAIN_DEFAULTS["warmup_steps"], max(1, cfg.steps // 10)),
                       recipe="pretrain")
