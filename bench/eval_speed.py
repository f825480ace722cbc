"""Evaluation speed: negbench's engine vs the published per-question loop, side by side.

One MCQ file of --questions questions over --images images (made on the fly, NegBench
templates over 24 object names), one random ViT-B-32 open_clip model, three runs:
  (a) per-question loop, as the published evaluation does: for every question, encode its
      image and its 4 captions, then argmax;
  (b) negbench, cold cache: unique images and unique captions encoded once, in batches;
  (c) negbench, warm cache: embeddings read back from the on-disk cache.
Prints a/b and a/c and checks that all three give identical predictions and accuracy.
Targets: a/b >= 3, a/c >= 20.

    python bench/eval_speed.py [--questions 2000] [--images 700] [--batch-size 64] [--loop-sample N]

The loop costs the same for every question (one image + four captions, nothing shared), so
on a slow CPU --loop-sample N times (a) on the first N questions and scales its time to all
questions (printed as extrapolated); predictions are then compared on those N.
"""
from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

OBJECTS = ["dog", "cat", "car", "tree", "apple", "chair", "boat", "bird", "bicycle", "bottle", "cup", "horse",
           "sheep", "train", "truck", "umbrella", "bench", "clock", "kite", "laptop", "pizza", "vase", "bus", "cow"]


def make_data(root: Path, n_images: int, n_questions: int, seed: int = 0) -> Path:
    from PIL import Image, ImageDraw

    from negbench.inputs.formats import MCQItem, write_task_file

    rng = random.Random(seed)
    images = []
    for i in range(n_images):
        im = Image.new("RGB", (96, 96), tuple(rng.randrange(256) for _ in range(3)))
        d = ImageDraw.Draw(im)
        for _ in range(3):
            x, y = rng.randrange(64), rng.randrange(64)
            d.ellipse([x, y, x + rng.randrange(8, 32), y + rng.randrange(8, 32)],
                      fill=tuple(rng.randrange(256) for _ in range(3)))
        rel = f"images/{i:05d}.jpg"
        (root / "images").mkdir(parents=True, exist_ok=True)
        im.save(root / rel, quality=90)
        images.append(rel)
    items = []
    for q in range(n_questions):
        a, b, n = rng.sample(OBJECTS, 3)
        right = {"positive": f"This image features {a} and {b}.", "negative": f"This image does not feature {n}.",
                 "hybrid": f"This image features {b}, but not {n}."}
        wrong = [(f"This image features {n}, but not {b}.", "hybrid"), (f"This image features {n}.", "positive"),
                 (f"This image does not feature {a}.", "negative")]
        tmpl = rng.choice(list(right))
        opts = [(right[tmpl], tmpl)] + wrong
        rng.shuffle(opts)
        caps = tuple(c for c, _ in opts)
        items.append(MCQItem(q + 1, images[q % n_images], caps, caps.index(right[tmpl]), tmpl,
                             tuple(t for _, t in opts)))
    return write_task_file(root / "bench_mcq.csv", "mcq", items, {"source": "bench/eval_speed.py"})


def per_question_loop(adapter, data, limit=None):
    """The published evaluation's shape: nothing is shared between questions."""
    import torch
    from tqdm import tqdm

    from negbench.inputs.media import load_image

    preds = []
    with torch.inference_mode():
        for it in tqdm(data.items[:limit], desc="(a) per-question loop", unit="q", mininterval=5):
            img = adapter.encode_images(adapter.preprocess(load_image(data.media_path(it.media))).unsqueeze(0))
            txt = adapter.encode_texts(list(it.captions))
            img = img / img.norm(dim=-1, keepdim=True)
            txt = txt / txt.norm(dim=-1, keepdim=True)
            preds.append(int((img @ txt.T).argmax()))
    return preds


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--questions", type=int, default=2000)
    p.add_argument("--images", type=int, default=700)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--loop-sample", type=int, default=0,
                   help="time (a) on the first N questions only and extrapolate (0: all)")
    p.add_argument("--model", default="openclip:ViT-B-32@random", help="default: random ViT-B-32 weights")
    args = p.parse_args(argv)

    import numpy as np
    import pandas as pd
    import torch

    from negbench.evaluation.engine import evaluate_task
    from negbench.inputs.formats import read_task_file
    from negbench.models.base import load_model
    from negbench.inputs.tasks import TaskSpec

    with tempfile.TemporaryDirectory(prefix="negbench-bench-") as tmp:
        root = Path(tmp)
        t = time.perf_counter()
        task_file = make_data(root, args.images, args.questions)
        print(f"data: {args.questions} questions over {args.images} images ({time.perf_counter() - t:.1f}s)")
        adapter = load_model(args.model, device="cpu")
        print(f"model: {args.model} on {adapter.device}, torch threads {torch.get_num_threads()}")
        spec = TaskSpec(name="bench_mcq", kind="mcq", file=str(task_file))
        data = read_task_file(task_file, "mcq", root)

        n_loop = args.loop_sample if 0 < args.loop_sample < len(data.items) else len(data.items)
        t = time.perf_counter()
        loop_preds = per_question_loop(adapter, data, n_loop)
        ta_measured = time.perf_counter() - t
        ta = ta_measured * len(data.items) / n_loop
        correct = np.array([it.correct_answer for it in data.items])

        runs = {}
        for name in ("cold", "warm"):
            t = time.perf_counter()
            res = evaluate_task(spec, adapter, data_root=root, results_dir=root / "results",
                                cache_dir=root / "cache", batch_size=args.batch_size, progress=False)
            runs[name] = (time.perf_counter() - t, res)
        folder = next((root / "results").iterdir())
        engine_preds = pd.read_parquet(folder / "bench_mcq.parquet")["predicted"].tolist()

    tb, res_b = runs["cold"]
    tc, res_c = runs["warm"]
    acc_b, acc_c = res_b["metrics"]["accuracy"]["value"], res_c["metrics"]["accuracy"]["value"]
    sub = slice(0, n_loop)
    acc_a = float((np.array(loop_preds) == correct[sub]).mean())
    acc_b_sub = float((np.array(engine_preds[sub]) == correct[sub]).mean())
    print(f"unique images {res_b['counts']['unique_media']}, unique captions {res_b['counts']['unique_captions']}")
    extra = f" (extrapolated from {ta_measured:.1f}s on {n_loop} questions)" if n_loop < len(correct) else ""
    print(f"(a) per-question loop : {ta:8.2f}s{extra}  accuracy on its {n_loop} questions {acc_a:.4f} "
          f"(engine on the same: {acc_b_sub:.4f})")
    print(f"(b) negbench cold     : {tb:8.2f}s  accuracy {acc_b:.4f}  cache {res_b['cache']}")
    print(f"(c) negbench warm     : {tc:8.2f}s  accuracy {acc_c:.4f}  cache {res_c['cache']}")
    mismatched = int(sum(x != y for x, y in zip(loop_preds, engine_preds)))
    same = acc_a == acc_b_sub and acc_b == acc_c and mismatched == 0 and res_b["metrics"] == res_c["metrics"]
    print(f"a/b = {ta / tb:.1f}x (target >= 3)   a/c = {ta / tc:.1f}x (target >= 20)")
    print(f"metrics identical: {same} ({mismatched} of {len(loop_preds)} predictions differ)")
    return 0 if same else 1


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    sys.exit(main())
