"""How often does NegCap / NegMCQ negate an object that is in the picture? With and without a verifier.

The corpus is caption-only, like web data: negdata takes objects from the captions, so an
object that is shown but not named can be negated ("a cloud, stock image. No sun is present."
over a picture of a cloud and a sun). NegWorld knows the truth (truth/corpus.json, read here
and nowhere in the pipeline); this bench runs the product's own CLI —

  negdata (no verifier)
  recogniser trained on the annotated COCO-style train split, then negdata --verifier recogniser
  negdata --verifier clip --verifier-model MODEL (image-text score, default threshold)

— and prints for each the false-negation rate: NegCap captions, and NegMCQ correct answers,
that negate an object the image shows.

    python bench/negdata_truth.py --world WORLD --model builtin:PRETRAINED --out /tmp/negdata-truth
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq

from negbench.inputs.vocab import read_vocab_file
from negbench.world.truth import read_truth

CLI = [sys.executable, "-m", "negbench"]


def negbench(*args: str) -> float:
    """Run one negbench command; its wall time in seconds."""
    t0 = time.perf_counter()
    subprocess.run(CLI + list(args), check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def limited_corpus(world: Path, out: Path, rows: int | None) -> Path:
    """The corpus TSV, or its first `rows` rows (same images) for a quick run."""
    corpus = world / "corpus" / "corpus.tsv"
    if rows is None:
        return corpus
    lines = corpus.read_text(encoding="utf-8").splitlines(keepends=True)
    path = out / f"corpus_first{rows}.tsv"
    path.write_text("".join(lines[:rows + 1]), encoding="utf-8")
    return path


def read_parts(folder: Path) -> dict:
    return pq.read_table([str(p) for p in sorted(folder.glob("part-*.parquet"))]).to_pydict()


def false_negations(negdata: Path, truth: dict, vocab) -> dict:
    """Shares of NegCap captions and of NegMCQ correct answers that negate a shown object."""
    cap = read_parts(negdata / "negcap")
    shown = [{o["category"] for o in truth[p]["objects"]} for p in cap["filepath"]]
    cap_bad = sum(any(n in s for n in negs) for negs, s in zip(cap["negated_objects"], shown))
    mcq = read_parts(negdata / "negmcq")
    mcq_bad = 0
    for i, path in enumerate(mcq["filepath"]):
        correct = mcq[f"caption_{mcq['correct_answer'][i]}"][i]
        objects = {o["category"] for o in truth[path]["objects"]}
        mcq_bad += any(n in objects for n in vocab.extract(correct)[1])
    return {"negcap": len(shown), "negcap_false": cap_bad, "negmcq": len(mcq["filepath"]), "negmcq_false": mcq_bad}


def run_variants(args, corpus: Path, images: Path) -> dict[str, tuple[Path, float]]:
    common = ["--corpus", str(corpus), "--images", str(images), "--vocab", str(args.world / "vocab.txt"),
              "--template-set", "default,no,not,contain,except", "--seed", "0"]
    runs = {}
    out = args.out / "plain"
    runs["no verifier"] = (out, negbench("negdata", *common, "--out", str(out)))
    rec = args.out / "recogniser"
    t_rec = negbench("recogniser", "--model", args.model, "--data", str(args.world / "coco"), "--split", "train",
                     "--vocab", str(args.world / "vocab.txt"), "--out", str(rec))
    out = args.out / "with_recogniser"
    t = negbench("negdata", *common, "--out", str(out), "--verifier", "recogniser", "--verifier-model", str(rec))
    runs["recogniser (trained on COCO train)"] = (out, t + t_rec)
    if not args.skip_clip:
        out = args.out / "with_clip"
        runs["clip score"] = (out, negbench("negdata", *common, "--out", str(out), "--verifier", "clip",
                                            "--verifier-model", args.model))
    return runs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    ap.add_argument("--world", type=Path, required=True)
    ap.add_argument("--model", required=True, help="the pretrained model (recogniser features, clip verifier)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--rows", type=int, default=None, help="only the first N corpus rows")
    ap.add_argument("--skip-clip", action="store_true", help="leave out the (slow, per-image) clip verifier")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    _, truth = read_truth(args.world, "corpus")
    vocab = read_vocab_file(args.world / "vocab.txt")
    corpus = limited_corpus(args.world, args.out, args.rows)
    runs = run_variants(args, corpus, args.world / "corpus")
    print("| verifier | NegCap captions | false negations | NegMCQ questions | false negations | seconds |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, (folder, seconds) in runs.items():
        r = false_negations(folder, truth, vocab)
        print(f"| {name} | {r['negcap']} | {100 * r['negcap_false'] / max(1, r['negcap']):.2f}% | {r['negmcq']} | "
              f"{100 * r['negmcq_false'] / max(1, r['negmcq']):.2f}% | {seconds:.0f} |")


if __name__ == "__main__":
    main()
