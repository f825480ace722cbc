"""Templated NegCap/NegMCQ generation speed (target: >= 100k NegCap captions/s per core).

    python bench/negdata_speed.py [--rows 200000]

Writes a CC12M-style TSV of alt-text captions on the fly (objects from a 24-word vocabulary,
like NegWorld's corpus), then times `generate_negdata` on one process: pass 1 (co-occurrence
statistics) and pass 2 (generation + Parquet writing) separately. Prints corpus captions/s and
generated NegCap captions/s (3 per corpus caption) side by side, with the ratio of pass 2
against the 100k/s target and the machine's load average (shared machines skew the figure).
"""
from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
from pathlib import Path

WORDS = ["apple", "ball", "car", "tree", "house", "dog", "cat", "fish", "bird", "flower", "cup", "bottle",
         "umbrella", "clock", "boat", "kite", "key", "chair", "star", "moon", "sun", "cloud", "mushroom", "bell"]
FORMS = ["a photo of {L}", "{L} on a plain background", "clip art of {L}", "{L}, stock image",
         "a picture of {L} in a park", "illustration of {L} by the lake"]


def make_corpus(path: Path, rows: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as f:
        f.write("filepath\tcaption\n")
        for i in range(rows):
            objs = rng.sample(WORDS, rng.randint(1, 3))
            phrases = [("two " + o + "s") if rng.random() < 0.2 else ("a " + o) for o in objs]
            f.write(f"images/{i:07d}.jpg\t{rng.choice(FORMS).format(L=' and '.join(phrases))}\n")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=200_000)
    args = ap.parse_args()
    from negbench.construct.negdata import generate_negdata
    from negbench.inputs.vocab import Vocabulary
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        corpus = tmp / "corpus.tsv"
        make_corpus(corpus, args.rows)
        vocab = Vocabulary.from_names(WORDS)
        t0 = time.perf_counter()
        m = generate_negdata(corpus, tmp / "out", vocab=vocab, seed=0, chunk_rows=100_000)
        total = time.perf_counter() - t0
        run = m["run"]
        n_in, n_cap, n_mcq = m["counts"]["rows_in"], m["counts"]["negcap"], m["counts"]["negmcq"]
        gen = run["generate_s"]
        print(f"corpus captions: {n_in}  NegCap captions: {n_cap}  NegMCQ questions: {n_mcq}")
        print(f"pass 1 (stats) {run['stats_s']:.2f} s  pass 2 (generate + write) {gen:.2f} s  total {total:.2f} s")
        print(f"corpus captions/s (both passes): {n_in / total:,.0f}")
        print(f"NegCap captions/s (pass 2):      {n_cap / gen:,.0f}   target >= 100,000 per core "
              f"-> ratio {n_cap / gen / 100_000:.2f}")
        print(f"NegCap captions/s (both passes): {n_cap / total:,.0f}")
        print(f"load average (1/5/15 min): {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
