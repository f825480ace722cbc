"""Templated build speed on a COCO-val-sized source (target: <= 5 s on one core).

    python bench/build_speed.py [--images 5000]

Writes COCO-format annotations for 5,000 images (80 categories, 1-6 objects each, 5 captions
each = 25,000 captions; image files are empty placeholders, the reader only checks they exist),
then times `build_benchmark` for MCQ + negated retrieval + plain retrieval (default wording),
reading included. Prints the time, the ratio to the 5 s target and rows/s.
"""
from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path


def make_coco(root: Path, n: int, seed: int = 0) -> None:
    from negbench.inputs.vocab import COCO80
    rng = random.Random(seed)
    names = list(COCO80)
    weights = [1.0 / (i + 1) for i in range(len(names))]      # Zipf-like, as COCO's label frequencies
    cats = [{"id": i + 1, "name": n_, "supercategory": "x"} for i, n_ in enumerate(names)]
    images, anns, caps = [], [], []
    (root / "val2017").mkdir(parents=True)
    for i in range(n):
        fname = f"{i:012d}.jpg"
        (root / "val2017" / fname).touch()
        images.append({"id": i + 1, "file_name": fname, "width": 640, "height": 480})
        objs = sorted(set(rng.choices(names, weights, k=rng.randint(1, 6))))
        for o in objs:
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": names.index(o) + 1,
                         "bbox": [0, 0, 10, 10], "area": 100, "iscrowd": 0})
        for _ in range(5):
            caps.append({"id": len(caps) + 1, "image_id": i + 1,
                         "caption": f"A photo of a {objs[0]} next to a {objs[-1]} on a sunny day."})
    (root / "annotations").mkdir()
    (root / "annotations" / "instances_val2017.json").write_text(
        json.dumps({"images": images, "annotations": anns, "categories": cats}))
    (root / "annotations" / "captions_val2017.json").write_text(json.dumps({"annotations": caps}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=5000)
    args = ap.parse_args()
    from negbench.construct.build import build_benchmark
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        make_coco(tmp / "coco", args.images)
        t0 = time.perf_counter()
        res = build_benchmark("coco", tmp / "coco", tmp / "out", tasks=("mcq", "retrieval"), seed=0)
        dt = time.perf_counter() - t0
        rows = sum(sum(1 for _ in open(f)) - 1 for f in res.files)
        print(f"images: {args.images}  captions: {5 * args.images}  rows written: {rows} in {len(res.files)} files")
        print(f"templated build: {dt:.2f} s (target <= 5 s, ratio {dt / 5:.2f})  {rows / dt:,.0f} rows/s")


if __name__ == "__main__":
    main()
