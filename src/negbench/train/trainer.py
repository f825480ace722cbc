"""The negation fine-tuning trainer: one loop that reads top to bottom.

Each optimizer step draws one contrastive batch (image, caption: NegCap or a plain corpus)
and one MCQ batch (image, 4 options, answer: NegMCQ), computes
    loss = clw * contrastive_loss + mlw * mcq_loss
and updates with AdamW (linear warmup, cosine decay), gradient clipping and optional
gradient accumulation and autocast (bf16/fp16, GPU only). Rank 0 logs JSONL (and
TensorBoard when installed), evaluates named negbench tasks every N steps and writes atomic
checkpoints (model, optimizer, scheduler, RNG states, config); `resume=True` continues from
the last one and, on CPU, ends bit-identical to an uninterrupted run.

Run it (`python -m negbench.train --help` lists the flags; `negbench finetune` is the same):

    # 1 GPU
    torchrun --standalone --nproc_per_node 1 -m negbench.train --model builtin:runs/pre \\
        --negcap neg/negcap --negmcq neg/negmcq --out runs/ft --precision bf16
    # 8 GPUs on one node (batch sizes are per rank; the global batch is 8x)
    torchrun --standalone --nproc_per_node 8 -m negbench.train --model openclip:ViT-B-32@openai ...
    # 2 nodes x 8 GPUs (run on each node; NODE_RANK 0 and 1)
    torchrun --nnodes 2 --nproc_per_node 8 --rdzv_backend c10d --rdzv_endpoint HOST0:29500 \\
        --rdzv_id negft -m negbench.train --model ... --out runs/ft
    # CPU, 2 processes (gloo)
    torchrun --standalone --nproc_per_node 2 -m negbench.train --device cpu ...

Gradients are averaged across ranks by one coalesced all-reduce after backward instead of
DDP's wrapper: adapters run their towers through `encode_images`/`encode_texts`, not through
`module.forward`, which DDP's reducer hooks on. The contrastive loss gathers features across
ranks with gradient, so N ranks x batch b train exactly like one process with batch N*b.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from negbench.core.errors import ConfigError
from negbench.core.io import write_json_atomic
from negbench.train import data as D
from negbench.train.distributed import DistInfo, all_reduce_mean, barrier, init_distributed
from negbench.train.fingerprint import check_resume, trim_log, write_fingerprint
from negbench.train.losses import image_text_loss, mcq_loss

log = logging.getLogger("negbench.train")


@dataclass
class TrainConfig:
    model: str                                  # model string, e.g. builtin:/runs/pre
    out: str                                    # run folder: final model, train/ logs + checkpoints
    negcap: str | None = None                   # NegCap parquet folder (contrastive pairs)
    negmcq: str | None = None                   # NegMCQ parquet folder (MCQ questions)
    corpus: str | None = None                   # plain caption TSV (contrastive pairs; pre-training)
    images: str | None = None                   # image root of `corpus`
    include_original_captions: bool = True      # NegCap images also keep their original caption
    max_images: int | None = None               # use at most this many contrastive images / questions
    augment_wordings: int = 0                   # extra negation wordings per NegCap row / NegMCQ question
    steps: int = 1000
    batch_size: int = 64                        # contrastive pairs per rank per micro-step
    mcq_batch_size: int | None = None           # questions per rank per micro-step (default batch_size)
    accum_steps: int = 1
    lr: float = 1e-5
    weight_decay: float = 0.1
    warmup_steps: int = 50
    min_lr_ratio: float = 0.0
    grad_clip: float | None = 1.0
    clw: float = 0.99
    mlw: float = 0.01
    lock_image: bool = False
    lock_text: bool = False
    train_text_layers: int | None = None        # train only the top K text layers (+ projection)
    precision: str = "fp32"                     # fp32 | bf16 | fp16 (autocast; GPU only)
    eval_tasks: list[str] = field(default_factory=list)   # task names or task YAML files
    eval_every: int = 0                         # steps; 0 = only at the end (when eval_tasks)
    eval_data_root: str | None = None
    log_every: int = 10
    save_every: int = 100                       # steps between checkpoints (and at the end); 0 = only at the end
    seed: int = 0
    device: str | None = None
    num_threads: int | None = None
    tensorboard: bool = False
    recipe: str | None = None                   # recorded only; presets live in negbench.train.recipes
    stop_after: int | None = None               # stop (as if interrupted) after this step; for tests

    def validate(self) -> None:
        if self.clw < 0 or self.mlw < 0 or self.clw + self.mlw == 0:
            raise ConfigError(f"loss weights clw={self.clw}, mlw={self.mlw}: need >= 0 and not both 0")
        if self.clw > 0 and not (self.negcap or self.corpus):
            raise ConfigError("clw > 0 needs contrastive data: --negcap DIR or --corpus TSV")
        if self.mlw > 0 and not self.negmcq:
            raise ConfigError("mlw > 0 needs --negmcq DIR")
        if self.lock_text and self.train_text_layers is not None:
            raise ConfigError("--lock-text and --train-text-layers exclude each other")
        if self.precision not in ("fp32", "bf16", "fp16"):
            raise ConfigError(f"precision {self.precision!r} not in ['fp32', 'bf16', 'fp16']")
        if self.steps < 1 or self.batch_size < 1 or self.accum_steps < 1:
            raise ConfigError("steps, batch_size and accum_steps must be >= 1")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# ----- small pieces --------------------------------------------------------------------------
def lr_factor(step: int, cfg: TrainConfig) -> float:
    """Linear warmup to 1, then cosine decay to min_lr_ratio at cfg.steps."""
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def rng_state() -> dict:
    st = {"torch": torch.get_rng_state(), "python": random.getstate(),
          "numpy": _np_state_to_plain(np.random.get_state())}
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def _np_state_to_plain(s):  # numpy arrays are not allowed by torch.load(weights_only=True)
    return [s[0], torch.from_numpy(np.asarray(s[1], dtype=np.int64)), int(s[2]), int(s[3]), float(s[4])]


def set_rng_state(st: dict) -> None:
    torch.set_rng_state(st["torch"])
    random.setstate(tuple(tuple(x) if isinstance(x, list) else x for x in st["python"]))
    n = st["numpy"]
    np.random.set_state((n[0], n[1].numpy().astype(np.uint32), n[2], n[3], n[4]))
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])


def save_checkpoint(path: Path, **payload) -> None:
    from negbench.core.io import atomic_path

    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: Path) -> dict:
    from negbench.core.checkpoints import load_tensors

    return load_tensors(path)


def allreduce_grads(params: list[torch.nn.Parameter], world: int) -> None:
    """Average gradients over ranks with one flat all-reduce."""
    if world == 1:
        return
    import torch.distributed as dist

    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world
    offset = 0
    for p, g in zip(params, grads):
        n = g.numel()
        p.grad = flat[offset:offset + n].view_as(p).clone()
        offset += n


class JsonlLogger:
    def __init__(self, path: Path, tensorboard: bool):
        self.path = path
        self.tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
                self.tb = SummaryWriter(str(path.parent / "tb"))
            except ImportError:
                log.warning("tensorboard is not installed; logging JSONL only")

    def write(self, record: dict) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record, sort_keys=True) + "\n")
        if self.tb is not None:
            for k, v in record.items():
                if isinstance(v, (int, float)) and k != "step":
                    self.tb.add_scalar(k, v, record["step"])


# ----- model setup ---------------------------------------------------------------------------
def configure_trainable(adapter, cfg: TrainConfig) -> list[torch.nn.Parameter]:
    """Apply tower locks / partial text training; returns the parameters to optimise."""
    if cfg.train_text_layers is not None:
        adapter.set_text_trainable_layers(cfg.train_text_layers)
    if cfg.lock_text:
        for p in adapter.tower_parameters("text"):
            p.requires_grad_(False)
        if hasattr(adapter, "set_text_cache"):  # whole tower frozen: cache pooled outputs
            adapter.set_text_cache(adapter.module.text.num_layers)
    if cfg.lock_image:
        for p in adapter.tower_parameters("image"):
            p.requires_grad_(False)
    params = [p for p in adapter.module.parameters() if p.requires_grad]
    if not params:
        raise ConfigError("nothing to train: every parameter is locked")
    return params


def clamp_temperature(adapter) -> None:
    """CLIP's clamp: logit scale at most 100 (temperature >= 0.01)."""
    scale = getattr(adapter.module, "logit_scale", None)
    if isinstance(scale, torch.nn.Parameter):
        with torch.no_grad():
            scale.clamp_(0, math.log(100))


def make_optimizer(params, cfg: TrainConfig) -> torch.optim.Optimizer:
    # no weight decay on gains, biases and the temperature (as in CLIP)
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.98),
                             eps=1e-6)


def load_data(adapter, cfg: TrainConfig):
    store = D.ImageStore(adapter.preprocess)
    pairs = None
    if cfg.clw > 0:
        groups: dict[str, list[str]] = {}
        if cfg.corpus:
            groups.update(D.group_pairs(D.read_corpus_tsv(cfg.corpus, cfg.images)))
        if cfg.negcap:
            for k, v in D.read_negcap(cfg.negcap, include_original=cfg.include_original_captions).items():
                groups.setdefault(k, [])
                groups[k] += [c for c in v if c not in groups[k]]
        if cfg.max_images:
            groups = dict(list(groups.items())[:cfg.max_images])
        if cfg.negcap and cfg.augment_wordings:
            extra, _ = _augmented(cfg, groups, [])
            for k, v in extra.items():
                groups[k] += [c for c in v if c not in groups[k]]
        pairs = D.caption_set(groups, store)
    mcq = None
    if cfg.mlw > 0:
        ex = D.read_negmcq(cfg.negmcq)
        ex = ex[:cfg.max_images] if cfg.max_images else ex
        if cfg.augment_wordings:
            ex = ex + _augmented(cfg, {}, ex)[1]
        mcq = D.mcq_set(ex, store)
    return store, pairs, mcq


def _augmented(cfg: TrainConfig, groups: dict, mcq_examples: list) -> tuple[dict, list]:
    """Extra negation wordings (negbench.construct.wordings) for the kept NegCap images / questions."""
    from negbench.construct import wordings

    rows = []
    if groups:
        recs, manifest = D._read_parquet_dir(cfg.negcap)
        root = manifest.get("image_root")
        rows = [(p, r["original_caption"], list(r["negated_objects"]), r["order"]) for r in recs
                if (p := D._abs(r["filepath"], root)) in groups]
    sets = ()
    if mcq_examples:
        man = Path(cfg.negmcq) / "manifest.json"
        sets = tuple(json.loads(man.read_text()).get("template_sets", ())) if man.exists() else ()
        from negbench.construct.templates import template_set_names
        sets = sets or tuple(template_set_names("mcq"))
    return wordings.augment(rows, mcq_examples, k=cfg.augment_wordings, seed=cfg.seed, sets=sets)


def planned_texts(pairs, mcq, cfg: TrainConfig, mcq_bs: int, rank: int, world: int) -> list[str]:
    """Every caption / MCQ option this rank draws in steps 0..cfg.steps (same draws as the loop)."""
    texts: list[str] = []
    for k in range(cfg.steps * cfg.accum_steps):
        if pairs is not None:
            idx = D.rank_slice(D.global_batch(len(pairs), k, cfg.batch_size * world, cfg.seed), rank, world)
            texts += [D.pick_caption(pairs.captions[i], cfg.seed, k, int(i)) for i in idx]
        if mcq is not None:
            idx = D.rank_slice(D.global_batch(len(mcq), k, mcq_bs * world, cfg.seed + 1), rank, world)
            texts += [o for i in idx for o in mcq.options[i]]
    return list(dict.fromkeys(texts))


# ----- the loop ------------------------------------------------------------------------------
def train(cfg: TrainConfig, *, resume: bool = False, adapter=None, force: bool = False) -> str:
    """Train; returns the model string of the final model (saved under cfg.out).

    resume: continue from the checkpoint, refused (ConfigError naming the keys) when cfg
    differs from the run's in anything that changes the numbers, unless `force`."""
    from negbench.models.base import load_model

    cfg.validate()
    dist_info: DistInfo = init_distributed(cfg.device)
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    rank, world = dist_info.rank, dist_info.world_size
    out = Path(cfg.out)
    run_dir = out / "train"
    ckpt_path = run_dir / "checkpoint.pt"
    if resume and ckpt_path.exists():
        check_resume(run_dir, cfg, force)  # before config.json is overwritten
    if dist_info.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(run_dir / "config.json", cfg.to_dict())
    torch.manual_seed(cfg.seed + rank)
    random.seed(cfg.seed + rank)
    np.random.seed(cfg.seed + rank)

    if adapter is None:
        adapter = load_model(cfg.model, device=dist_info.device)
    device = adapter.device
    params = configure_trainable(adapter, cfg)
    optimizer = make_optimizer(params, cfg)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, cfg))
    use_amp = cfg.precision != "fp32" and device.type == "cuda"
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg.precision)
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and cfg.precision == "fp16")

    start = 0
    if resume and ckpt_path.exists():
        ck = load_checkpoint(ckpt_path)
        adapter.module.load_state_dict(ck["model"])
        optimizer.load_state_dict(ck["optimizer"])
        scheduler.load_state_dict(ck["scheduler"])
        scaler.load_state_dict(ck["scaler"])
        set_rng_state(ck["rng"][rank] if rank < len(ck["rng"]) else ck["rng"][0])
        start = int(ck["step"])
        if hasattr(adapter, "train_steps"):
            adapter.train_steps = start
        if dist_info.is_main:
            trim_log(run_dir / "log.jsonl", start)
            log.info("resumed from %s at step %d", ckpt_path, start)

    store, pairs, mcq = load_data(adapter, cfg)
    if dist_info.is_main:
        log.info("training data: %d images with %d captions (contrastive), %d MCQ questions",
                 len(pairs or ()), sum(map(len, pairs.captions)) if pairs else 0, len(mcq or ()))
    t0 = time.time()
    mcq_bs = cfg.mcq_batch_size or cfg.batch_size
    # Frozen text layers are cached per caption, computed in one bucketed pass up front for
    # exactly the captions this rank will draw over the whole run (sampling is a function of
    # (seed, step) only): big NegCap/NegMCQ pools cost only what a run sees, and a resumed run
    # computes the same cache as an uninterrupted one (bit-identical on CPU).
    if hasattr(adapter, "warm_text_cache"):
        texts = planned_texts(pairs, mcq, cfg, mcq_bs, rank, world)
        n = adapter.warm_text_cache(texts)
        if dist_info.is_main and n:
            log.info("cached frozen text layers for %d captions in %.0fs", n, time.time() - t0)
    image_draws = cfg.steps * cfg.accum_steps * ((cfg.batch_size if pairs else 0) + (mcq_bs if mcq else 0))
    if store.in_memory and len(store.paths) <= image_draws:
        store.get(range(len(store.paths)))
    image_cache: dict[int, torch.Tensor] = {}   # features of a locked image tower

    def image_features(ids) -> torch.Tensor:
        if not cfg.lock_image:
            return adapter.encode_images(store.get(ids).to(device))
        missing = [i for i in dict.fromkeys(ids) if i not in image_cache]
        if missing:
            with torch.no_grad():
                feats = adapter.encode_images(store.get(missing).to(device)).float()
            image_cache.update(zip(missing, feats))
        return torch.stack([image_cache[i] for i in ids])

    logger = JsonlLogger(run_dir / "log.jsonl", cfg.tensorboard) if dist_info.is_main else None
    adapter.module.train()
    t_last, samples_since = time.time(), 0
    last = min(cfg.steps, cfg.stop_after) if cfg.stop_after else cfg.steps
    for step in range(start, last):
        terms_sum: dict[str, float] = {}
        for micro in range(cfg.accum_steps):
            k = step * cfg.accum_steps + micro     # the global micro-step: data depends on it only
            terms = {}
            with torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
                if pairs is not None:
                    idx = D.rank_slice(D.global_batch(len(pairs), k, cfg.batch_size * world, cfg.seed),
                                       rank, world)
                    ids = [pairs.images[i] for i in idx]
                    caps = [D.pick_caption(pairs.captions[i], cfg.seed, k, int(i)) for i in idx]
                    terms["contrastive_loss"] = image_text_loss(image_features(ids), adapter.encode_texts(caps),
                                                                adapter.logit_scale(), adapter.logit_bias())
                if mcq is not None:
                    idx = D.rank_slice(D.global_batch(len(mcq), k, mcq_bs * world, cfg.seed + 1), rank, world)
                    ids = [mcq.images[i] for i in idx]
                    opts = [o for i in idx for o in mcq.options[i]]
                    ans = torch.tensor([mcq.answers[i] for i in idx], device=device)
                    of = adapter.encode_texts(opts).view(len(idx), len(opts) // len(idx), -1)
                    terms["mcq_loss"] = mcq_loss(image_features(ids), of, ans, adapter.logit_scale())
            loss = (cfg.clw * terms.get("contrastive_loss", 0.0) + cfg.mlw * terms.get("mcq_loss", 0.0))
            scaler.scale(loss / cfg.accum_steps).backward()
            for name, v in terms.items():
                terms_sum[name] = terms_sum.get(name, 0.0) + float(v.detach()) / cfg.accum_steps
        allreduce_grads(params, world)
        if world > 1:  # log the global-batch loss (MCQ terms are per rank)
            terms_sum = {k: float(all_reduce_mean(torch.tensor(v))) for k, v in sorted(terms_sum.items())}
        scaler.unscale_(optimizer)
        grad_norm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip) if cfg.grad_clip else None
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        scheduler.step()
        clamp_temperature(adapter)
        if hasattr(adapter, "train_steps"):      # identity() must change with the weights
            adapter.train_steps = step + 1
        if hasattr(adapter, "weights_tag"):
            adapter.weights_tag = f"{cfg.recipe or 'ft'}-step{step + 1}"
        samples_since += cfg.accum_steps * world * ((cfg.batch_size if pairs is not None else 0)
                                                    + (mcq_bs if mcq is not None else 0))
        done = step + 1
        if logger and (done % cfg.log_every == 0 or done == cfg.steps):
            dt = time.time() - t_last
            rec = {"step": done, "lr": scheduler.get_last_lr()[0], "samples_per_s": samples_since / max(dt, 1e-9),
                   "logit_scale": float(adapter.logit_scale().detach()),
                   "loss": cfg.clw * terms_sum.get("contrastive_loss", 0) + cfg.mlw * terms_sum.get("mcq_loss", 0),
                   **terms_sum}
            if grad_norm is not None:
                rec["grad_norm"] = float(grad_norm)
            logger.write(rec)
            log.info("step %d/%d loss %.4f %s %.0f samples/s", done, cfg.steps, rec["loss"],
                     " ".join(f"{k} {v:.4f}" for k, v in terms_sum.items()), rec["samples_per_s"])
            t_last, samples_since = time.time(), 0
        if cfg.eval_tasks and cfg.eval_every and done % cfg.eval_every == 0 and done != cfg.steps:
            run_eval(adapter, cfg, done, logger)
        if (cfg.save_every and done % cfg.save_every == 0) or done == last:
            if dist_info.is_main:
                save_checkpoint(ckpt_path, model=adapter.module.state_dict(), optimizer=optimizer.state_dict(),
                                scheduler=scheduler.state_dict(), scaler=scaler.state_dict(),
                                rng=_gather_rng(world), step=done, config=cfg.to_dict())
                write_fingerprint(run_dir, cfg)
            else:
                _gather_rng(world)
            barrier()
    if last < cfg.steps:   # interrupted on purpose (stop_after)
        return ""
    model_string = ""
    if dist_info.is_main:
        adapter.module.eval()
        model_string = adapter.save(out)
        if cfg.eval_tasks:
            run_eval(adapter, cfg, cfg.steps, logger)
    barrier()
    return model_string


def _gather_rng(world: int) -> list:
    """RNG states of every rank (rank-ordered); all ranks must call it."""
    st = rng_state()
    if world == 1:
        return [st]
    import torch.distributed as dist

    box: list = [None] * world
    dist.all_gather_object(box, st)
    return box


def run_eval(adapter, cfg: TrainConfig, step: int, logger) -> dict:
    """Evaluate cfg.eval_tasks with the eval engine on rank 0; others wait."""
    results = {}
    if logger is not None:
        specs = resolve_tasks(cfg.eval_tasks)
        try:
            from negbench.evaluation.engine import evaluate_task
        except ImportError as err:
            log.warning("evaluation skipped: negbench.evaluation.engine unavailable (%s)", err)
            specs = []
        adapter.module.eval()
        for spec in specs:
            res = evaluate_task(spec, adapter, data_root=cfg.eval_data_root,
                                results_dir=str(Path(cfg.out) / "train" / "eval" / f"step{step:07d}"),
                                progress=False, bootstrap_samples=200)
            for name, m in res["metrics"].items():
                results[f"eval/{spec.name}/{name}"] = m["value"]
        adapter.module.train()
        if results:
            logger.write({"step": step, **results})
            log.info("eval step %d: %s", step, json.dumps(results))
    barrier()
    return results


def resolve_tasks(names) -> list:
    """Task names from the registry, or YAML files of tasks."""
    from negbench.inputs.tasks import get_task, load_task_file

    specs = []
    for n in names:
        if str(n).endswith((".yaml", ".yml")) and Path(n).exists():
            loaded = load_task_file(n)
            specs += list(loaded.values()) if isinstance(loaded, dict) else list(loaded)
        else:
            specs.append(get_task(n))
    return specs
