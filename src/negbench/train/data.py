"""Training data: caption corpora, NegCap and NegMCQ, an in-memory image store, and a
stateless distributed sampler.

Sampling is a pure function of (seed, step): the global batch of step s is a slice of a
seeded permutation of the dataset, and rank r takes the r-th equal part of it. So N ranks
with batch b see exactly the examples of one process with batch N*b, and resuming needs
nothing but the step counter.
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from negbench.core.errors import ConfigError, TaskFileError


# ----- readers -------------------------------------------------------------------------------
def read_corpus_tsv(path, image_root=None) -> list[tuple[str, str]]:
    """`filepath<TAB>caption` rows (header optional) -> [(absolute path, caption)]."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"corpus file {path} does not exist")
    root = Path(image_root) if image_root else path.parent
    rows = []
    with open(path, encoding="utf-8", newline="") as f:
        for i, rec in enumerate(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)):
            if i == 0 and [c.strip().lower() for c in rec[:2]] == ["filepath", "caption"]:
                continue
            if len(rec) < 2 or not rec[0] or not rec[1]:
                raise TaskFileError(path, i, None, "expected 'filepath<TAB>caption'")
            p = Path(rec[0])
            rows.append((str(p if p.is_absolute() else root / p), rec[1]))
    return rows


def _read_parquet_dir(folder) -> tuple[list[dict], dict]:
    import pandas as pd

    folder = Path(folder)
    parts = sorted(folder.glob("part-*.parquet"))
    if not parts:
        raise ConfigError(f"{folder}: no part-*.parquet shards (write them with `negbench negdata`)")
    manifest = json.loads((folder / "manifest.json").read_text()) if (folder / "manifest.json").exists() else {}
    df = pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)
    return df.to_dict("records"), manifest


def _abs(filepath: str, root) -> str:
    p = Path(filepath)
    return str(p if p.is_absolute() or root is None else Path(root) / p)


def read_negcap(folder, image_root=None, include_original: bool = True) -> dict[str, list[str]]:
    """NegCap shards -> {image path: [original caption?, negated captions...]} (file order)."""
    rows, manifest = _read_parquet_dir(folder)
    root = image_root or manifest.get("image_root")
    out: dict[str, list[str]] = {}
    for r in rows:
        caps = out.setdefault(_abs(r["filepath"], root), [])
        if include_original and r.get("original_caption") and r["original_caption"] not in caps:
            caps.append(r["original_caption"])
        caps.append(r["caption"])
    return out


@dataclass
class MCQExample:
    image: str
    options: list[str]
    answer: int
    template: str = ""


def read_negmcq(folder, image_root=None) -> list[MCQExample]:
    rows, manifest = _read_parquet_dir(folder)
    root = image_root or manifest.get("image_root")
    out = []
    n_opt = sum(1 for k in rows[0] if k.startswith("caption_") and k[8:].isdigit()) if rows else 4
    for i, r in enumerate(rows):
        ans = int(r["correct_answer"])
        if not 0 <= ans < n_opt:
            raise TaskFileError(Path(folder), i, "correct_answer", f"{ans} not in 0..{n_opt - 1}")
        out.append(MCQExample(_abs(r["filepath"], root), [r[f"caption_{k}"] for k in range(n_opt)], ans,
                              str(r.get("correct_answer_template", ""))))
    return out


# ----- images --------------------------------------------------------------------------------
class ImageStore:
    """Image paths -> preprocessed tensors, decoded once and kept in memory (fp16) when small."""

    def __init__(self, preprocess: Callable, in_memory: bool = True):
        self.preprocess = preprocess
        self.in_memory = in_memory
        self.paths: list[str] = []
        self.index: dict[str, int] = {}
        self._cache: dict[int, torch.Tensor] = {}

    def add(self, path: str) -> int:
        if path not in self.index:
            self.index[path] = len(self.paths)
            self.paths.append(path)
        return self.index[path]

    def _load(self, i: int) -> torch.Tensor:
        from PIL import Image

        try:
            with Image.open(self.paths[i]) as im:
                return self.preprocess(im)
        except OSError as err:
            raise ConfigError(f"cannot read training image {self.paths[i]}: {err}") from err

    def get(self, ids: Sequence[int]) -> torch.Tensor:
        out = []
        for i in ids:
            t = self._cache.get(i)
            if t is None:
                t = self._load(i)
                if self.in_memory:
                    self._cache[i] = t.half()
            out.append(t.float())
        return torch.stack(out)


# ----- datasets ------------------------------------------------------------------------------
@dataclass
class CaptionSet:
    """Contrastive data: one entry per image (so a batch never holds an image twice)."""
    images: list[int] = field(default_factory=list)      # ImageStore ids
    captions: list[list[str]] = field(default_factory=list)

    def __len__(self):
        return len(self.images)


@dataclass
class MCQSet:
    images: list[int] = field(default_factory=list)
    options: list[list[str]] = field(default_factory=list)
    answers: list[int] = field(default_factory=list)

    def __len__(self):
        return len(self.images)


def caption_set(groups: dict[str, list[str]], store: ImageStore) -> CaptionSet:
    cs = CaptionSet()
    for path, caps in groups.items():
        cs.images.append(store.add(path))
        cs.captions.append(list(caps))
    return cs


def group_pairs(pairs: Sequence[tuple[str, str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for p, c in pairs:
        out.setdefault(p, []).append(c)
    return out


def mcq_set(examples: Sequence[MCQExample], store: ImageStore) -> MCQSet:
    ms = MCQSet()
    for e in examples:
        ms.images.append(store.add(e.image))
        ms.options.append(list(e.options))
        ms.answers.append(e.answer)
    return ms


# ----- sampling ------------------------------------------------------------------------------
def global_batch(n: int, step: int, batch: int, seed: int) -> np.ndarray:
    """Indices of the global batch at `step`: consecutive slices of per-epoch seeded permutations."""
    if n <= 0:
        raise ConfigError("empty training set")
    start = step * batch
    out = []
    while len(out) < batch:
        epoch, offset = divmod(start + len(out), n)
        perm = np.random.default_rng([seed, epoch]).permutation(n)
        out.extend(perm[offset:offset + batch - len(out)].tolist())
    return np.asarray(out)


def rank_slice(idx: np.ndarray, rank: int, world: int) -> np.ndarray:
    if len(idx) % world:
        raise ConfigError(f"global batch {len(idx)} does not split over {world} ranks")
    b = len(idx) // world
    return idx[rank * b:(rank + 1) * b]


def pick_caption(captions: Sequence[str], seed: int, step: int, index: int) -> str:
    """A seeded choice among an image's captions (stateless, so resume needs only the step)."""
    if len(captions) == 1:
        return captions[0]
    k = np.random.default_rng([seed, step, index, 7]).integers(len(captions))
    return captions[int(k)]
