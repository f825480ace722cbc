"""How much headroom do NegWorld's retrieval files leave? Oracle ceilings next to a model's R@k.

An oracle that knows every test image's objects exactly ranks first the images that fit a
caption — they hold every object the caption affirms and none it negates — and breaks ties at
random. Its expected text->image recall@k for one caption is exact, no sampling needed: with
`f` fitting images (the caption's own image among them), the own image is in the top k with
probability min(1, k / f). The count-aware oracle also requires the count a caption states
("four fish", "two apples") to match the image's number of that object.

When the ceiling is low, many images fit each caption equally well and a model's R@k says
little about whether it understood the caption; a model at the ceiling cannot improve.

    python bench/world_headroom.py --world WORLD --suite SUITE [--results RESULTS_DIR/MODEL_SLUG]

WORLD is `negbench world generate --out WORLD`, SUITE the folder `build_world_suite` wrote
(the demo's `demo-out/world` and `demo-out/suite`).
"""
from __future__ import annotations

import argparse
import json
import re
from collections import Counter
from pathlib import Path

import numpy as np

from negbench.inputs.vocab import read_vocab_file
from negbench.inputs.formats import read_task_file

COUNT_WORDS = {"two": 2, "three": 3, "four": 4, "five": 5}
KS = (1, 5, 10)


def coco_truth(world: Path, split: str = "test") -> dict[str, Counter]:
    """file name -> Counter of category names (from the COCO instances file, as any reader sees it)."""
    doc = json.loads((world / "coco" / "annotations" / f"instances_{split}.json").read_text())
    names = {c["id"]: c["name"] for c in doc["categories"]}
    files = {im["id"]: im["file_name"] for im in doc["images"]}
    truth = {f: Counter() for f in files.values()}
    for ann in doc["annotations"]:
        truth[files[ann["image_id"]]][names[ann["category_id"]]] += 1
    return truth


def msrvtt_truth(world: Path) -> dict[str, Counter]:
    objects = json.loads((world / "msrvtt" / "objects.json").read_text())
    return {f"{vid}.mp4": Counter(objs) for vid, objs in objects.items()}


def stated_counts(caption: str, vocab) -> dict[str, int]:
    """'Four fish by the lake' -> {'fish': 4}: a count word directly before a vocabulary noun."""
    words = re.findall(r"[a-z]+", caption.lower())
    out = {}
    for i, w in enumerate(words[:-1]):
        if w in COUNT_WORDS:
            name = vocab.canonical(words[i + 1])
            if name is None and i + 2 < len(words):          # 'two red apples'
                name = vocab.canonical(words[i + 2])
            if name is not None:
                out[name] = COUNT_WORDS[w]
    return out


def caption_constraints(caption: str, vocab, use_counts: bool) -> tuple[list[str], list[str], dict[str, int]]:
    present, negated = vocab.extract(caption)
    return list(present), list(negated), stated_counts(caption, vocab) if use_counts else {}


def fitting_mask(constraints, counts: np.ndarray, column: dict[str, int]) -> np.ndarray:
    """Which images (rows of the image x category count matrix) fit one caption's constraints."""
    present, negated, stated = constraints
    ok = np.ones(len(counts), dtype=bool)
    for name in present:
        ok &= counts[:, column[name]] > 0
    for name in negated:
        ok &= counts[:, column[name]] == 0
    for name, n in stated.items():
        ok &= counts[:, column[name]] == n
    return ok


def oracle_recall(task_file: Path, truth: dict[str, Counter], vocab, use_counts: bool) -> dict[str, float]:
    """Expected text->image recall@k of the oracle (random tie-breaking), in %."""
    items = read_task_file(task_file, "retrieval", task_file.parent, check_media=False).items
    media = [Path(it.media).name for it in items]
    column = {name: j for j, name in enumerate(vocab.names)}
    counts = np.array([[truth[m][name] for name in vocab.names] for m in media])
    hits = {k: [] for k in KS}
    fitting_counts = []
    for own, item in enumerate(items):
        for caption in item.captions:
            fit = fitting_mask(caption_constraints(caption, vocab, use_counts), counts, column)
            n_fit = int(fit.sum())
            fitting_counts.append(n_fit)
            for k in KS:
                if fit[own]:
                    hits[k].append(min(1.0, k / n_fit))
                else:       # ranked after every fitting image, at random among the rest
                    rest = len(media) - n_fit
                    hits[k].append(max(0.0, min(1.0, (k - n_fit) / rest)) if rest else 0.0)
    out = {f"R@{k}": 100 * float(np.mean(v)) for k, v in hits.items()}
    out["median_fitting"] = float(np.median(fitting_counts))
    return out


def model_recall(results_dir: Path | None, task_file: Path, k: int = 5) -> float | None:
    """The model's measured t2i R@k for this task file, from its results JSON, if given."""
    if results_dir is None:
        return None
    for path in results_dir.glob("*.json"):
        res = json.loads(path.read_text())
        resolved = (res.get("task") or {}).get("resolved_file")
        if resolved and Path(resolved).resolve() == task_file.resolve():
            return 100 * res["metrics"][f"t2i_recall@{k}"]["value"]
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter, allow_abbrev=False)
    ap.add_argument("--world", type=Path, required=True, help="NegWorld folder (world.json, coco/, msrvtt/)")
    ap.add_argument("--suite", type=Path, required=True, help="folder with the built retrieval CSVs")
    ap.add_argument("--results", type=Path, default=None, help="one model's results folder, to print its R@5")
    args = ap.parse_args()
    vocab = read_vocab_file(args.world / "vocab.txt")
    coco, video = coco_truth(args.world), msrvtt_truth(args.world)
    print("| file | oracle R@1 | oracle R@5 | oracle R@10 | count-aware R@5 | median fitting | model R@5 |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for task_file in sorted(args.suite.glob("*retrieval*.csv")):
        truth = video if task_file.name.startswith("msr") else coco
        plain = oracle_recall(task_file, truth, vocab, use_counts=False)
        counted = oracle_recall(task_file, truth, vocab, use_counts=True)
        model = model_recall(args.results, task_file)
        shown = "" if model is None else f"{model:.1f}"
        print(f"| {task_file.name} | {plain['R@1']:.1f} | {plain['R@5']:.1f} | {plain['R@10']:.1f} | "
              f"{counted['R@5']:.1f} | {plain['median_fitting']:.0f} | {shown} |")


if __name__ == "__main__":
    main()
