"""Pre-training of the built-in model: symmetric contrastive learning on an affirmative
caption corpus (NegWorld's CC12M-style corpus by default) — the offline stand-in for
web-scale CLIP pre-training.

The text tower stays the pretrained MiniLM (frozen, pooled outputs cached per unique
caption); the image CNN, both projections and the temperature are learned. Like CLIP on web
alt-text, the result retrieves objects well and does not understand negation.
"""
from __future__ import annotations

from pathlib import Path

from negbench.train.trainer import TrainConfig, train

PRETRAIN_DEFAULTS = dict(steps=200, batch_size=256, lr=2e-3, weight_decay=0.05, warmup_steps=20,
                         min_lr_ratio=0.02, grad_clip=1.0)
# The image CNN of a fresh pre-trained model: one conv in the full-resolution first stage
# (~30% less compute than two, so the whole pre-training fits ~4 min on 2 CPU cores).
PRETRAIN_MODEL = dict(image_convs=(1, 2, 2, 2))


def pretrain(corpus, images=None, out="runs/pretrain", *, steps: int = PRETRAIN_DEFAULTS["steps"],
             batch_size: int = PRETRAIN_DEFAULTS["batch_size"], lr: float = PRETRAIN_DEFAULTS["lr"],
             max_images: int | None = None, seed: int = 0, device: str | None = None,
             num_threads: int | None = None, text_model: str = "minilm", embed_dim: int = 256,
             train_text_layers: int = 0, resume: bool = False, log_every: int = 20,
             save_every: int = 100, **model_config) -> str:
    """Train a fresh built-in model on `corpus` (filepath<TAB>caption, paths relative to
    `images`, default the TSV's folder); writes the model to `out` and returns 'builtin:OUT'.

    Logs and checkpoints go to OUT/train/; `resume=True` continues an interrupted run.
    """
    from negbench.models.builtin import create_builtin_model

    out = Path(out)
    init = out / "train" / "init"
    if not (init / "config.json").exists():
        create_builtin_model(init, seed=seed, text_model=text_model, tokenizer=text_model,
                             embed_dim=embed_dim,
                             **{**({} if "image_widths" in model_config else PRETRAIN_MODEL), **model_config})
    cfg = TrainConfig(model=f"builtin:{init}", out=str(out), corpus=str(corpus),
                      images=str(images) if images else None, clw=1.0, mlw=0.0, steps=steps,
                      batch_size=batch_size, lr=lr, weight_decay=PRETRAIN_DEFAULTS["weight_decay"],
                      warmup_steps=min(PRETRAIN_DEFAULTS["warmup_steps"], max(1, steps // 10)),
                      min_lr_ratio=PRETRAIN_DEFAULTS["min_lr_ratio"], grad_clip=PRETRAIN_DEFAULTS["grad_clip"],
                      train_text_layers=train_text_layers, max_images=max_images, seed=seed, device=device,
                      num_threads=num_threads, log_every=log_every, save_every=save_every, recipe="pretrain")
    return train(cfg, resume=resume)
