"""Media and caption strings -> embeddings, in batches: the engine's forward passes.

Media are decoded and preprocessed in DataLoader worker processes. Where the forward pass runs
on an accelerator, workers decode the next batches while it runs. Where it runs on the CPU its
threads already use every core, and a worker decoding at the same time takes a core from one of
them: the others then wait at each of the forward's barriers for the thread that lost its core.
On 2 cores that cost 20% over the pure forward pass (1 worker, 256 MSR-VTT-shaped videos: 55.7
vs 46.3 s), about twice the decoding's own CPU time (~26 ms per video). So on the CPU the workers
decode only while the main process waits for the next batch (a gate, closed during each forward
pass): decoding then costs its CPU time divided by the workers, and the forward pass runs at its
full speed (2 workers: 1,000 videos 184.7 s against 167.4 s of pure forward passes; see
bench/eval_speed.py).

Captions are batched in order of token length, so causal text towers run at each batch's own
length (exact: see models/openclip.py).
"""
from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import Sequence

import numpy as np

log = logging.getLogger(__name__)


def _autocast(adapter, precision: str):
    """No autocast where the adapter's weights were cast to `precision` once at load (every
    backend does that for bf16/fp16; autocast casts the weights again at every op: ViT-B-32
    images 3.7x slower on an AMX CPU, 1.2x on an AVX512-BF16 one, docs/benchmarks.md); autocast
    only for an fp32 adapter run at a reduced precision (e.g. one
    the trainer holds, whose weights must stay fp32)."""
    import torch

    from negbench.models.base import precision_dtype

    dtype = precision_dtype(precision)
    if dtype == torch.float32 or getattr(adapter, "precision", "fp32") == precision:
        return contextlib.nullcontext()
    device = adapter.device
    if device.type in ("cuda", "mps") or (device.type == "cpu" and dtype == torch.bfloat16):
        return torch.autocast(device.type, dtype=dtype)
    log.warning("precision %s is not supported on %s; using fp32", precision, device.type)
    return contextlib.nullcontext()


class _MediaDataset:
    """Decodes + preprocesses one image (C,H,W) or video (F,C,H,W); errors come back as strings.

    gate: an Event the worker waits on before each item (None: decode whenever asked).
    """

    def __init__(self, paths: Sequence[Path], preprocess, modality: str, frames: int, gate=None):
        self.paths, self.preprocess, self.modality, self.frames = list(paths), preprocess, modality, frames
        self.gate = gate

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        import torch

        from negbench.inputs.media import MediaError, load_image, sample_video_frames

        if self.gate is not None:
            self.gate.wait()
        try:
            if self.modality == "video":
                imgs = sample_video_frames(self.paths[i], self.frames)
                return i, torch.stack([self.preprocess(im) for im in imgs])
            return i, self.preprocess(load_image(self.paths[i]))
        except MediaError as exc:
            return i, str(exc)


def _collate(batch):
    import torch

    good = [(i, x) for i, x in batch if not isinstance(x, str)]
    bad = [(i, x) for i, x in batch if isinstance(x, str)]
    idx = [i for i, _ in good]
    return idx, (torch.stack([x for _, x in good]) if good else None), bad


def _bar_name(progress, what: str) -> str:
    """`progress` may be the task's name: bars then say which task they belong to."""
    return f"{progress}: {what}" if isinstance(progress, str) else what


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def decoding_competes_with_forward(device, workers: int) -> bool:
    """True when workers decoding during a CPU forward pass would take cores its threads use."""
    import torch

    on_cpu = device is None or torch.device(device).type == "cpu"
    return on_cpu and workers > 0 and torch.get_num_threads() + workers > usable_cores()


def _batches_decoded_between_forwards(loader, gate):
    """The loader's batches; the gate is open only while the caller waits for the next one."""
    batches = iter(loader)
    try:
        while True:
            gate.set()
            try:
                batch = next(batches)
            except StopIteration:
                return
            finally:
                gate.clear()
            yield batch
    finally:
        gate.set()  # a worker waiting at the gate must reach the loader's shutdown, not time out there


def encode_media(adapter, paths: Sequence[Path], *, modality: str = "image", frames: int = 4,
                 batch_size: int = 64, num_workers: int = 0, precision: str = "fp32",
                 progress: bool = True) -> tuple[np.ndarray, dict[int, str]]:
    """Embeddings (n, D) float32 of images, or of videos as the mean of L2-normalised frame
    embeddings; plus {index: reason} for media that could not be decoded (rows left zero).

    num_workers > 0 decodes and preprocesses in DataLoader worker processes: on an accelerator
    while the forward pass runs (batches come through pinned memory, copied without blocking),
    on the CPU between forward passes when the workers would compete with it for cores (module
    docstring). 0 decodes in the main process.
    """
    import multiprocessing

    import torch
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm

    device = getattr(adapter, "device", None)
    on_cuda = device is not None and torch.device(device).type == "cuda"
    workers = min(num_workers, max(0, -(-len(paths) // batch_size)))
    context = multiprocessing.get_context() if workers else None
    gate = context.Event() if decoding_competes_with_forward(device, workers) else None
    loader = DataLoader(_MediaDataset(paths, adapter.preprocess, modality, frames, gate), batch_size=batch_size,
                        num_workers=workers, collate_fn=_collate, shuffle=False, pin_memory=on_cuda,
                        persistent_workers=False, multiprocessing_context=context)
    # An iterator, not the loader: tqdm.auto's bar calls iter() on what it wraps when it is built
    # and again when it is iterated; on a DataLoader that started a second set of workers, the
    # first set decoding two batches each for nothing while the real loop ran.
    batches = iter(loader) if gate is None else _batches_decoded_between_forwards(loader, gate)
    out: np.ndarray | None = None
    failed: dict[int, str] = {}
    with torch.inference_mode(), _autocast(adapter, precision):
        for idx, x, bad in tqdm(batches, total=len(loader), desc=_bar_name(progress, f"encode {modality}s"),
                                unit="batch", disable=not progress, leave=False):
            failed.update(dict(bad))
            if x is None:
                continue
            feats = _media_features(adapter, x.to(device, non_blocking=True) if on_cuda else x, modality)
            if out is None:
                out = np.zeros((len(paths), feats.shape[1]), dtype=np.float32)
            out[idx] = feats
    if out is None:
        out = np.zeros((len(paths), 0), dtype=np.float32)
    return out, failed


def _media_features(adapter, x, modality: str) -> np.ndarray:
    """(B, C, H, W) images or (B, F, C, H, W) videos -> (B, D) float32 (videos: mean of normalised frames)."""
    import torch.nn.functional as F

    if modality == "video":
        b, f = x.shape[:2]
        feats = F.normalize(adapter.encode_images(x.flatten(0, 1)).float(), dim=-1)
        feats = feats.view(b, f, -1).mean(dim=1)
    else:
        feats = adapter.encode_images(x).float()
    return feats.cpu().numpy()


def encode_texts(adapter, texts: Sequence[str], *, batch_size: int = 64, precision: str = "fp32",
                 progress: bool = True) -> np.ndarray:
    """Embeddings (n, D) float32 of caption strings (in input order), in batches.

    Captions are batched in order of length (the adapter's `text_lengths`, token counts where
    it has them, else characters), so a tower that runs each batch at its own token length
    (padding to the longest of the batch, or open_clip's causal towers cut after the last
    end-of-text token) does little wasted work; the embeddings do not depend on the batch
    mates beyond float rounding. Fixed-length towers (SigLIP) neither gain nor lose.
    """
    import torch
    from tqdm.auto import tqdm

    texts = list(texts)
    lengths = adapter.text_lengths(texts)  # token counts where the adapter has them (ModelAdapter: characters)
    order = sorted(range(len(texts)), key=lambda i: (lengths[i], i))
    out: np.ndarray | None = None
    with torch.inference_mode(), _autocast(adapter, precision):
        for s in tqdm(range(0, len(texts), batch_size), desc=_bar_name(progress, "encode captions"), unit="batch",
                      disable=not progress, leave=False):
            idx = order[s:s + batch_size]
            emb = adapter.encode_texts([texts[i] for i in idx]).float().cpu().numpy()
            if out is None:
                out = np.zeros((len(texts), emb.shape[1]), dtype=np.float32)
            out[idx] = emb
    return out if out is not None else np.zeros((0, 0), dtype=np.float32)
