"""The negation fine-tuning trainer: one loop that reads top to bottom.

Each optimizer step draws one contrastive batch (image, caption: NegCap or a plain corpus)
and one MCQ batch (image, 4 options, answer: NegMCQ), computes
    loss = clw * contrastive_loss + mlw * mcq_loss
and updates with AdamW (linear warmup, cosine decay), gradient clipping and optional
gradient accumulation and autocast (bf16/fp16, GPU only). Rank 0 logs JSONL (and
TensorBoard when installed), evaluates named negbench tasks every N steps and writes atomic
checkpoints (model, optimizer, scheduler, RNG states, config); `resume=True` continues from
the last one and, on CPU, ends bit-identical to an uninterrupted run. `train` reads as
setup -> (step -> log -> eval -> checkpoint) per step -> finish, one function each.

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
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

import numpy as np
import torch

from negbench.core.errors import ConfigError, NegbenchError
from negbench.core.io import atomic_path, read_json, write_json_atomic
from negbench.train import data as D
from negbench.train.distributed import DistInfo, all_reduce_mean, barrier, init_distributed
from negbench.train.fingerprint import check_resume, trim_log, write_fingerprint
from negbench.train.losses import image_text_loss, mcq_loss

if TYPE_CHECKING:
    from negbench.models.base import ModelAdapter

log = logging.getLogger("negbench.train")
# what makes a folder hold a training run (train/init alone is the pretrain recipe's fresh model)
RUN_MARKERS = ("checkpoint.pt", "log.jsonl", "config.json", "fingerprint.json", "final.json")


class TrainingDiverged(NegbenchError):
    """A loss, gradient norm or weight that is not finite: the run stops, nothing newer than the
    last good checkpoint is saved."""


@dataclass(kw_only=True, frozen=True)
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
    save_every: int = 100                       # steps between checkpoints (0 = only at the end): an
                                                # interrupted run resumes from the last one
    seed: int = 0
    device: str | None = None
    num_threads: int | None = None
    tensorboard: bool = False
    recipe: str | None = None                   # recorded only; presets live in negbench/data/recipes

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
        _check_numbers(self)
        check_device(self.device)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# ----- argument checks ---------------------------------------------------------------------
_AT_LEAST = {"steps": 1, "batch_size": 1, "mcq_batch_size": 1, "accum_steps": 1, "warmup_steps": 0,
             "log_every": 1, "save_every": 0, "eval_every": 0, "max_images": 1, "augment_wordings": 0,
             "num_threads": 1, "train_text_layers": 0, "seed": 0}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-").replace("num-threads", "threads").replace("eval-data-root", "data-root")


def _check_numbers(cfg) -> None:
    """Every count and rate, before any work: one ConfigError naming the flag and the allowed values."""
    for name, low in _AT_LEAST.items():
        value = getattr(cfg, name)
        if value is None and name in ("mcq_batch_size", "max_images", "num_threads", "train_text_layers"):
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ConfigError(f"{_flag(name)} {value!r}: need an integer >= {low}")
    for name in ("lr", "weight_decay", "clw", "mlw", "min_lr_ratio", "grad_clip"):
        value = getattr(cfg, name)
        if value is None and name == "grad_clip":
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ConfigError(f"{_flag(name)} {value!r}: need a finite number")
    # a huge lr that fits the weights' float32 is allowed: the finiteness checks stop it at its first bad step
    if not 0 < cfg.lr <= 1e36:  # AdamW divides it by (1 - 0.9): 1e37 still fits float32
        raise ConfigError(f"--lr {cfg.lr!r}: need a number > 0 and <= 1e36 (typical: 1e-6 .. 1e-2)")
    if cfg.weight_decay < 0 or not 0 <= cfg.min_lr_ratio <= 1:
        raise ConfigError(f"weight_decay {cfg.weight_decay!r} (need >= 0), min_lr_ratio {cfg.min_lr_ratio!r} "
                          f"(need 0..1)")
    if cfg.grad_clip is not None and cfg.grad_clip <= 0:
        raise ConfigError(f"grad_clip {cfg.grad_clip!r}: need > 0, or none for no clipping")


def check_device(device: str | None) -> None:
    """A device torch can use here; a missing one is one ConfigError naming the devices there are."""
    if device is None:
        return
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError) as exc:
        raise ConfigError(f"--device {device!r}: not a torch device ({exc}); e.g. cpu, cuda, cuda:0, mps") from None
    present = available_devices()
    if dev.type == "cuda" and dev.index is None and torch.cuda.is_available():
        return
    wanted = f"{dev.type}:{dev.index}" if dev.index is not None else dev.type
    if wanted not in present:
        raise ConfigError(f"--device {device!r}: not on this machine; devices here: {', '.join(present)}")


def available_devices() -> list[str]:
    found = ["cpu"]
    if torch.cuda.is_available():
        found += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        found.append("mps")
    return found


def claim_run_dir(out, *, resume: bool, force: bool) -> None:
    """A run folder that already holds a run is refused unless `resume` (continue it) or `force`
    (start clean: train/ with its init, log, checkpoints and eval goes, all together), so two
    runs never mix in one log or one checkpoint."""
    import shutil

    run_dir = Path(out) / "train"
    found = [m for m in RUN_MARKERS if (run_dir / m).exists()]
    if not found or resume:
        return
    if force:
        log.warning("%s: starting over (--force): deleting %s", out, run_dir)
        shutil.rmtree(run_dir)
        return
    raise ConfigError(f"--out {out}: holds a training run already ({', '.join('train/' + m for m in found)}); "
                      f"pass --resume to continue it, --force to start over (deletes {run_dir}), or another --out")


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
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


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
def configure_trainable(adapter: ModelAdapter, cfg: TrainConfig) -> list[torch.nn.Parameter]:
    """Apply tower locks / partial text training; returns the parameters to optimise."""
    towers = [t for t, locked in (("image", cfg.lock_image), ("text", cfg.lock_text)) if not locked]
    params = adapter.trainable_parameters(towers, cfg.train_text_layers)
    if not params:
        raise ConfigError("nothing to train: every parameter is locked")
    return params


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


def planned_texts(pairs, mcq, cfg: TrainConfig, mcq_bs: int, rank: int, world: int) -> Iterator[str]:
    """Every caption / MCQ option this rank draws in steps 0..cfg.steps (same draws as the loop),
    lazily: a model without a text cache never pays for the draws."""
    for k in range(cfg.steps * cfg.accum_steps):
        if pairs is not None:
            idx = D.rank_slice(D.global_batch(len(pairs), k, cfg.batch_size * world, cfg.seed), rank, world)
            yield from (D.pick_caption(pairs.captions[i], cfg.seed, k, int(i)) for i in idx)
        if mcq is not None:
            idx = D.rank_slice(D.global_batch(len(mcq), k, mcq_bs * world, cfg.seed + 1), rank, world)
            yield from (o for i in idx for o in mcq.options[i])


def planned_images(pairs, mcq, cfg: TrainConfig, mcq_bs: int, rank: int, world: int) -> list[int]:
    """The image ids this rank draws in steps 0..cfg.steps (same draws as the loop), sorted."""
    ids: set[int] = set()
    for k in range(cfg.steps * cfg.accum_steps):
        if pairs is not None:
            idx = D.rank_slice(D.global_batch(len(pairs), k, cfg.batch_size * world, cfg.seed), rank, world)
            ids.update(int(pairs.images[i]) for i in idx)
        if mcq is not None:
            idx = D.rank_slice(D.global_batch(len(mcq), k, mcq_bs * world, cfg.seed + 1), rank, world)
            ids.update(int(mcq.images[i]) for i in idx)
    return sorted(ids)


class ImageFeatures:
    """Image features of a batch; a locked image tower's features are computed once per image.

    Locked features are computed up front (`precompute`) for every image the run will draw, in
    fixed chunks of the sorted ids: a batched forward pass differs from another batch's in the
    last bits, so features cached per training batch would depend on which batch first met an
    image, and a resumed run (which meets them in other batches) would drift from an
    uninterrupted one. Precomputed this way they depend on the run's settings only.
    """
    CHUNK = 64

    def __init__(self, adapter: ModelAdapter, store: D.ImageStore, locked: bool):
        self.adapter, self.store, self.locked = adapter, store, locked
        self.cache: dict[int, torch.Tensor] = {}

    def precompute(self, ids: list[int], progress: bool = False) -> None:
        if not self.locked:
            return
        from tqdm.auto import tqdm

        with tqdm(total=len(ids), desc="locked image features", unit="image", disable=not progress) as bar:
            for start in range(0, len(ids), self.CHUNK):
                self._encode(ids[start:start + self.CHUNK])
                bar.update(min(self.CHUNK, len(ids) - start))

    def _encode(self, ids: list[int]) -> None:
        with torch.no_grad():
            feats = self.adapter.encode_images(self.store.get(ids).to(self.adapter.device)).float()
        self.cache.update(zip(ids, feats))

    def __call__(self, ids) -> torch.Tensor:
        if not self.locked:
            return self.adapter.encode_images(self.store.get(ids).to(self.adapter.device))
        for i in dict.fromkeys(ids):
            if i not in self.cache:  # not planned (never, with the loop's own draws): alone, batch-free
                self._encode([i])
        return torch.stack([self.cache[i] for i in ids])


@dataclass(kw_only=True)
class Run:
    """Everything the loop needs, built once by `setup`."""
    cfg: TrainConfig
    dist: DistInfo
    adapter: ModelAdapter
    params: list
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    amp_dtype: torch.dtype | None
    use_amp: bool
    store: D.ImageStore | None = None
    pairs: D.CaptionSet | None = None
    mcq: D.MCQSet | None = None
    image_features: ImageFeatures | None = None
    logger: JsonlLogger | None = None
    start: int = 0
    last_log: float = field(default_factory=time.time)
    samples_since_log: int = 0

    @property
    def run_dir(self) -> Path:
        return Path(self.cfg.out) / "train"

    @property
    def mcq_bs(self) -> int:
        return self.cfg.mcq_batch_size or self.cfg.batch_size

    @property
    def samples_per_step(self) -> int:
        cfg = self.cfg
        per_micro = (cfg.batch_size if self.pairs is not None else 0) + (self.mcq_bs if self.mcq is not None else 0)
        return cfg.accum_steps * self.dist.world_size * per_micro


# ----- the loop ------------------------------------------------------------------------------
def train(cfg: TrainConfig, *, resume: bool = False, adapter: ModelAdapter | None = None,
          stop_when: Callable[[int], bool] | None = None, force: bool = False) -> str:
    """Train; returns the model string of the final model (saved under cfg.out).

    `stop_when(step)` is asked after every step; True ends the run there as if interrupted
    (a time budget, a stop file): that step is checkpointed, `resume=True` continues it, and
    the return value is "". It must answer the same on every rank. `resume` is refused
    (ConfigError naming the keys) when cfg differs from the run's in anything that changes
    the numbers, unless `force`. Without `resume`, an `out` that holds a run is refused, or
    with `force` deleted first (claim_run_dir). A loss, gradient norm or weight that is not
    finite stops the run with TrainingDiverged before anything newer than the last checkpoint
    is written.
    """
    cfg.validate()
    run_dir = Path(cfg.out) / "train"
    claim_run_dir(cfg.out, resume=resume, force=force)
    if resume and (run_dir / "checkpoint.pt").exists():
        check_resume(run_dir, cfg, force)  # before config.json is overwritten
    elif resume:
        trim_log(run_dir / "log.jsonl", 0)  # interrupted before its first checkpoint: starts at step 0
    run = setup(cfg, adapter, resume)
    with step_bar(run) as bar:
        for step in range(run.start, cfg.steps):
            terms, grad_norm = train_step(run, step)
            done = step + 1
            check_finite(run, done, terms)  # fp16's losses (its gradients are the scaler's business)
            log_step(run, done, terms, grad_norm)
            bar.update(1)
            if cfg.eval_tasks and cfg.eval_every and done % cfg.eval_every == 0 and done != cfg.steps:
                run_eval(run.adapter, cfg, done, run.logger)
            stop = stop_when is not None and done < cfg.steps and stop_when(done)
            if stop or (cfg.save_every and done % cfg.save_every == 0) or done == cfg.steps:
                checkpoint(run, done)
            if stop:
                return ""
    return finish(run)


def step_bar(run: Run):
    """A bar over the run's steps on rank 0, between the log lines of every log_every steps (a
    short run logs only at its end, and a step of a big model takes seconds on a CPU)."""
    from tqdm.auto import tqdm

    return tqdm(total=run.cfg.steps, initial=run.start, desc="training", unit="step", disable=not run.dist.is_main)


def setup(cfg: TrainConfig, adapter: ModelAdapter | None, resume: bool) -> Run:
    """Ranks, seeds, model, optimizer, a resumed checkpoint and the data."""
    from negbench.models.base import load_model

    dist_info: DistInfo = init_distributed(cfg.device)
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    if dist_info.is_main:
        (Path(cfg.out) / "train").mkdir(parents=True, exist_ok=True)
        write_json_atomic(Path(cfg.out) / "train" / "config.json", cfg.to_dict())
    seed_everything(cfg.seed + dist_info.rank)
    adapter = adapter or load_model(cfg.model, device=dist_info.device)
    params = configure_trainable(adapter, cfg)
    optimizer = make_optimizer(params, cfg)
    use_amp = cfg.precision != "fp32" and adapter.device.type == "cuda"
    run = Run(cfg=cfg, dist=dist_info, adapter=adapter, params=params, optimizer=optimizer,
              scheduler=torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, cfg)),
              scaler=torch.amp.GradScaler("cuda", enabled=use_amp and cfg.precision == "fp16"),
              amp_dtype={"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg.precision), use_amp=use_amp)
    if resume and (run.run_dir / "checkpoint.pt").exists():
        restore(run)
    prepare_data(run)
    run.logger = JsonlLogger(run.run_dir / "log.jsonl", cfg.tensorboard) if dist_info.is_main else None
    adapter.module.train()
    return run


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed)


def restore(run: Run) -> None:
    """Continue from the run's checkpoint: weights, optimizer, schedule, RNG and step."""
    path = run.run_dir / "checkpoint.pt"
    ck = load_checkpoint(path)
    rank = run.dist.rank
    run.adapter.module.load_state_dict(ck["model"])
    run.optimizer.load_state_dict(ck["optimizer"])
    run.scheduler.load_state_dict(ck["scheduler"])
    run.scaler.load_state_dict(ck["scaler"])
    set_rng_state(ck["rng"][rank] if rank < len(ck["rng"]) else ck["rng"][0])
    run.start = int(ck["step"])
    run.adapter.mark_weights_changed(_weights_tag(run.cfg, run.start))
    if run.dist.is_main:
        trim_log(run.run_dir / "log.jsonl", run.start)  # the replayed steps are logged again
        log.info("resumed from %s at step %d", path, run.start)


def _takes_progress(method) -> bool:
    """Whether an adapter's prepare_text_cache shows a progress bar (adapters written against the
    older contract take only the texts)."""
    import inspect

    return "progress" in inspect.signature(method).parameters


def prepare_data(run: Run) -> None:
    """Read the training data; precompute the caches whose contents the whole run determines."""
    cfg, rank, world = run.cfg, run.dist.rank, run.dist.world_size
    run.store, run.pairs, run.mcq = load_data(run.adapter, cfg)
    if run.dist.is_main:
        log.info("training data: %d images with %d captions (contrastive), %d MCQ questions",
                 len(run.pairs or ()), sum(map(len, run.pairs.captions)) if run.pairs else 0, len(run.mcq or ()))
    t0 = time.time()
    # Cached per caption for exactly the captions this rank will draw over the whole run
    # (sampling is a function of (seed, step) only): big NegCap/NegMCQ pools cost only what a
    # run sees, and a resumed run computes the same cache as an uninterrupted one.
    texts = planned_texts(run.pairs, run.mcq, cfg, run.mcq_bs, rank, world)
    n = (run.adapter.prepare_text_cache(texts, progress=run.dist.is_main)
         if _takes_progress(run.adapter.prepare_text_cache) else run.adapter.prepare_text_cache(texts))
    if run.dist.is_main and n:
        log.info("cached frozen text layers for %d captions in %.0fs", n, time.time() - t0)
    image_draws = cfg.steps * run.samples_per_step // world
    if run.store.in_memory and len(run.store.paths) <= image_draws:
        run.store.get(range(len(run.store.paths)))
    run.image_features = ImageFeatures(run.adapter, run.store, cfg.lock_image)
    if cfg.lock_image:
        was_training = run.adapter.module.training
        run.adapter.module.eval()  # a locked tower is a fixed function: no dropout, no batch statistics
        run.image_features.precompute(planned_images(run.pairs, run.mcq, cfg, run.mcq_bs, rank, world),
                                      progress=run.dist.is_main)
        run.adapter.module.train(was_training)


def train_step(run: Run, step: int) -> tuple[dict[str, float], torch.Tensor | None]:
    """One optimizer step over cfg.accum_steps micro-batches; returns the mean loss terms."""
    cfg = run.cfg
    terms_sum: dict[str, float] = {}
    for micro in range(cfg.accum_steps):
        with torch.autocast(run.adapter.device.type, dtype=run.amp_dtype, enabled=run.use_amp):
            terms = loss_terms(run, step * cfg.accum_steps + micro)
        loss = cfg.clw * terms.get("contrastive_loss", 0.0) + cfg.mlw * terms.get("mcq_loss", 0.0)
        run.scaler.scale(loss / cfg.accum_steps).backward()
        for name, v in terms.items():
            terms_sum[name] = terms_sum.get(name, 0.0) + float(v.detach()) / cfg.accum_steps
    allreduce_grads(run.params, run.dist.world_size)
    if run.dist.world_size > 1:  # log the global-batch loss (MCQ terms are per rank)
        terms_sum = {k: float(all_reduce_mean(torch.tensor(v))) for k, v in sorted(terms_sum.items())}
    run.scaler.unscale_(run.optimizer)
    # the norm is measured whether or not it clips (inf = measure only): it is checked every step
    grad_norm = torch.nn.utils.clip_grad_norm_(run.params, cfg.grad_clip or float("inf"))
    if not run.scaler.is_enabled():  # fp16's scaler skips non-finite steps itself and lowers its scale
        check_finite(run, step + 1, terms_sum, grad_norm)
    run.scaler.step(run.optimizer)
    run.scaler.update()
    run.optimizer.zero_grad(set_to_none=True)
    run.scheduler.step()
    run.adapter.clamp_logit_scale()
    run.adapter.mark_weights_changed(_weights_tag(cfg, step + 1))
    run.samples_since_log += run.samples_per_step
    return terms_sum, grad_norm


def loss_terms(run: Run, k: int) -> dict[str, torch.Tensor]:
    """The named loss terms of global micro-step k (the data depends on k only)."""
    cfg, adapter, rank, world = run.cfg, run.adapter, run.dist.rank, run.dist.world_size
    terms = {}
    if run.pairs is not None:
        pairs = run.pairs
        idx = D.rank_slice(D.global_batch(len(pairs), k, cfg.batch_size * world, cfg.seed), rank, world)
        caps = [D.pick_caption(pairs.captions[i], cfg.seed, k, int(i)) for i in idx]
        terms["contrastive_loss"] = image_text_loss(run.image_features([pairs.images[i] for i in idx]),
                                                    adapter.encode_texts(caps), adapter.logit_scale(),
                                                    adapter.logit_bias())
    if run.mcq is not None:
        mcq = run.mcq
        idx = D.rank_slice(D.global_batch(len(mcq), k, run.mcq_bs * world, cfg.seed + 1), rank, world)
        opts = [o for i in idx for o in mcq.options[i]]
        answers = torch.tensor([mcq.answers[i] for i in idx], device=adapter.device)
        options = adapter.encode_texts(opts).view(len(idx), len(opts) // len(idx), -1)
        terms["mcq_loss"] = mcq_loss(run.image_features([mcq.images[i] for i in idx]), options, answers,
                                     adapter.logit_scale())
    return terms


def check_finite(run: Run, done: int, terms: dict[str, float], grad_norm: torch.Tensor | None = None,
                 weights: bool = False) -> None:
    """TrainingDiverged naming the step, the first non-finite term and the lr. Every rank sees the
    same values (losses and gradients are all-reduced), so every rank stops at the same step."""
    lr = run.scheduler.get_last_lr()[0]
    bad = [f"{k} {v}" for k, v in terms.items() if not math.isfinite(v)]
    if grad_norm is not None and not math.isfinite(float(grad_norm)):
        bad.append(f"gradient norm {float(grad_norm)}")
    if weights:
        bad += [f"weight {n} not finite" for n, p in run.adapter.module.named_parameters()
                if not bool(torch.isfinite(p.detach()).all())][:1]
    if bad:
        last = _last_checkpoint_step(run)
        kept = f"the checkpoint of step {last} is the last one kept" if last else "no checkpoint was saved"
        raise TrainingDiverged(f"{run.cfg.out}: step {done}: {bad[0]} at lr {lr:.3g}; training stopped, "
                               f"{kept} (try a lower --lr)")


def _last_checkpoint_step(run: Run) -> int | None:
    path = run.run_dir / "checkpoint.pt"
    if not path.exists():
        return None
    try:
        return int(load_checkpoint(path)["step"])
    except Exception:  # noqa: BLE001 - only for the message
        return None


def _weights_tag(cfg: TrainConfig, step: int) -> str:
    return f"{cfg.recipe or 'ft'}-step{step}"


def log_step(run: Run, done: int, terms: dict[str, float], grad_norm: torch.Tensor | None) -> None:
    """Rank 0 writes one JSONL record every cfg.log_every steps (and at the last step)."""
    cfg = run.cfg
    if run.logger is None or not (done % cfg.log_every == 0 or done == cfg.steps):
        return
    dt = time.time() - run.last_log
    rec = {"step": done, "lr": run.scheduler.get_last_lr()[0],
           "samples_per_s": run.samples_since_log / max(dt, 1e-9),
           "logit_scale": float(run.adapter.logit_scale().detach()),
           "loss": cfg.clw * terms.get("contrastive_loss", 0) + cfg.mlw * terms.get("mcq_loss", 0), **terms}
    if grad_norm is not None:
        rec["grad_norm"] = float(grad_norm)
    run.logger.write(rec)
    log.info("step %d/%d loss %.4f %s %.0f samples/s", done, cfg.steps, rec["loss"],
             " ".join(f"{k} {v:.4f}" for k, v in terms.items()), rec["samples_per_s"])
    run.last_log, run.samples_since_log = time.time(), 0


def checkpoint(run: Run, done: int) -> None:
    """Write the resumable state of step `done` (rank 0; every rank contributes its RNG)."""
    check_finite(run, done, {}, weights=True)
    rng = _gather_rng(run.dist.world_size)
    if run.dist.is_main:
        save_checkpoint(run.run_dir / "checkpoint.pt", model=run.adapter.module.state_dict(),
                        optimizer=run.optimizer.state_dict(), scheduler=run.scheduler.state_dict(),
                        scaler=run.scaler.state_dict(), rng=rng, step=done, config=run.cfg.to_dict())
        write_fingerprint(run.run_dir, run.cfg)
    barrier()


def finish(run: Run) -> str:
    """Save the final model (rank 0), record the model string that loads it, evaluate."""
    model_string = ""
    if run.dist.is_main:
        run.adapter.module.eval()
        model_string = run.adapter.save(run.cfg.out)
        write_json_atomic(run.run_dir / FINAL_MODEL, {"model": model_string, "steps": run.cfg.steps})
        if run.cfg.eval_tasks:
            run_eval(run.adapter, run.cfg, run.cfg.steps, run.logger)
    barrier()
    return model_string


FINAL_MODEL = "final.json"   # in OUT/train/: {"model": the model string of the finished run}


def finished_model(out) -> str | None:
    """The model string a finished run in `out` saved (None while unfinished)."""
    path = Path(out) / "train" / FINAL_MODEL
    return read_json(path)["model"] if path.exists() else None


def _gather_rng(world: int) -> list:
    """RNG states of every rank (rank-ordered); all ranks must call it."""
    st = rng_state()
    if world == 1:
        return [st]
    import torch.distributed as dist

    box: list = [None] * world
    dist.all_gather_object(box, st)
    return box


def run_eval(adapter: ModelAdapter, cfg: TrainConfig, step: int, logger) -> dict:
    """Evaluate cfg.eval_tasks with the eval engine on rank 0; others wait."""
    from negbench.evaluation.engine import evaluate_task
    from negbench.inputs.tasks import select_tasks

    results = {}
    if logger is not None:
        adapter.module.eval()
        for spec in select_tasks(cfg.eval_tasks):
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
