"""Oracle ceilings of NegWorld retrieval files (see bench/world_headroom.py for the whole story).

An oracle knows every test item (truth/ files) and understands every caption. It ranks first
the items that fit a caption, then among those the ones the caption describes most completely
(fewest objects it does not name), and breaks the remaining ties at random. Its expected
text->image recall@k is exact: with `b` items ranked above the caption's own item and `t` tied
with it (itself included), the own item is in the top k with probability clip((k - b) / t, 0, 1).
`use_attributes=False` gives the object-set oracle (which objects only).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from negbench.inputs.formats import read_task_file
from negbench.world.truth import caption_facts, fits, read_truth, unmentioned

KS = (1, 5, 10)
NOT_FITTING = 10_000   # rank-key offset: every fitting item ranks before every other one


def expected_recall(better: int, tied: int, k: int) -> float:
    return float(np.clip((k - better) / tied, 0.0, 1.0))


class Items:
    """The retrieval file's items with an item x category count matrix, so that only items that
    hold every named object (few) go through the full `fits` check."""

    def __init__(self, items: list[dict], vocab, resolution: int):
        self.items, self.resolution = items, resolution
        self.column = {name: j for j, name in enumerate(vocab.names)}
        self.counts = np.zeros((len(items), len(vocab.names)), dtype=np.int32)
        for i, it in enumerate(items):
            for o in it["objects"]:
                self.counts[i, self.column[o["category"]]] += 1
        self.total = self.counts.sum(axis=1)

    def rank_keys(self, facts) -> np.ndarray:
        """Lower is better: fitting items first, then those with fewest objects not named."""
        named = [self.column[n] for n in facts.nouns]
        maybe = np.ones(len(self.items), dtype=bool)
        for j in named:
            maybe &= self.counts[:, j] > 0
        for n in facts.negated:
            maybe &= self.counts[:, self.column[n]] == 0
        fit = np.zeros(len(self.items), dtype=bool)
        for i in np.flatnonzero(maybe):
            fit[i] = fits(facts, self.items[i], self.resolution)
        extra = self.total - self.counts[:, named].sum(axis=1)
        return np.where(fit, extra, NOT_FITTING + extra)


def _caption_recall(facts, own: int, items: Items) -> tuple[list[float], int]:
    """Expected R@k (one per KS) of one caption, and how many items fit it."""
    key = items.rank_keys(facts)
    better, tied = int((key < key[own]).sum()), int((key == key[own]).sum())
    return [expected_recall(better, tied, k) for k in KS], int((key < NOT_FITTING).sum())


def oracle_recall(task_file: Path, truth: tuple[int, dict], vocab, use_attributes: bool) -> dict[str, float]:
    """Expected text->image recall@k of the oracle over every caption of the file, in %."""
    resolution, items_by_name = truth
    task = read_task_file(task_file, "retrieval", task_file.parent, check_media=False).items
    items = Items([items_by_name[Path(it.media).name] for it in task], vocab, resolution)
    recalls, fitting, own_misfits = [], [], 0
    for own, item in enumerate(task):
        for caption in item.captions:
            facts = caption_facts(caption, vocab, use_attributes)
            r, n_fit = _caption_recall(facts, own, items)
            own_misfits += not fits(facts, items.items[own], resolution)
            recalls.append(r)
            fitting.append(n_fit)
    mean = 100 * np.mean(recalls, axis=0)
    out = {f"R@{k}": float(v) for k, v in zip(KS, mean)}
    out.update(median_fitting=float(np.median(fitting)), own_misfits=own_misfits, captions=len(recalls))
    return out


def ceiling_r5(world: Path, task_file: Path, vocab) -> float:
    """The attribute-aware oracle's t2i R@5 (%) on one NegWorld retrieval file."""
    truth = read_truth(world, "msrvtt" if Path(task_file).name.lower().startswith("msr") else "coco_test")
    return oracle_recall(Path(task_file), truth, vocab, use_attributes=True)["R@5"]
