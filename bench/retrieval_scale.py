"""Retrieval metrics at scale: peak memory and time of t2i / i2t R@1/5/10 on random features.

    python bench/retrieval_scale.py [--images 100000] [--captions 500000] [--dim 512]
                                    [--check-images 10000] [--check-captions 50000]

Random L2-normalised float32 features, caption j owned by image j % images. Runs
negbench.evaluation.metrics' text_to_image_hits and image_to_text_hits (the engine's code, in
chunks of rows) and prints the time of each and the process's peak RSS; then, on the first
--check-images x --check-captions slice, checks that the chunked functions give exactly the
hits of a naive reference that builds the full score matrix and calls torch.topk once per k.
Target (issue 11): 100k x 500k within 4 GB peak RSS. The peak RSS is read before the check,
whose full matrix (2 GB at 10k x 50k) is deliberately big.
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

KS = (1, 5, 10)


def random_features(n: int, dim: int, seed: int):
    import torch

    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, dim, generator=g)
    x /= x.norm(dim=1, keepdim=True)
    return x


def naive_hits(text, media, owner):
    """Full score matrices, one torch.topk per k: the published definition, written plainly."""
    import torch
    import torch.nn.functional as F

    text, media = F.normalize(text, dim=-1), F.normalize(media, dim=-1)
    scores = text @ media.T
    t2i = {k: (torch.topk(scores, k, dim=1).indices == owner[:, None]).any(dim=1).numpy() for k in KS}
    scores_i = scores.T.contiguous()
    del scores
    rows = torch.arange(media.shape[0])[:, None]
    i2t = {k: (owner[torch.topk(scores_i, k, dim=1).indices] == rows).any(dim=1).numpy() for k in KS}
    return t2i, i2t


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2  # Linux: KiB


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter, allow_abbrev=False)
    ap.add_argument("--images", type=int, default=100_000, help="number of image features")
    ap.add_argument("--captions", type=int, default=500_000, help="number of caption features")
    ap.add_argument("--dim", type=int, default=512, help="feature dimension")
    ap.add_argument("--check-images", type=int, default=10_000,
                    help="images in the slice checked against the naive reference")
    ap.add_argument("--check-captions", type=int, default=50_000, help="captions in that slice")
    args = ap.parse_args(argv)

    import numpy as np
    import torch

    from negbench.evaluation import metrics

    media = random_features(args.images, args.dim, seed=0)
    text = random_features(args.captions, args.dim, seed=1)
    owner = torch.arange(args.captions) % args.images
    t = time.perf_counter()
    t2i, _ = metrics.text_to_image_hits(text, media, owner, KS)
    t_t2i = time.perf_counter() - t
    t = time.perf_counter()
    i2t = metrics.image_to_text_hits(media, text, owner, KS)
    t_i2t = time.perf_counter() - t
    peak = peak_rss_gb()
    report = {"images": args.images, "captions": args.captions, "dim": args.dim,
              "torch_threads": torch.get_num_threads(), "t2i_s": round(t_t2i, 1), "i2t_s": round(t_i2t, 1),
              "peak_rss_gb": round(peak, 2),
              **{f"t2i_R@{k}": float(t2i[k].mean()) for k in KS}, **{f"i2t_R@{k}": float(i2t[k].mean()) for k in KS}}
    print(json.dumps(report))

    ni, nc = min(args.check_images, args.images), min(args.check_captions, args.captions)
    m_s, t_s = media[:ni], text[:nc]
    o_s = torch.arange(nc) % ni
    ref_t2i, ref_i2t = naive_hits(t_s, m_s, o_s)
    got_t2i, _ = metrics.text_to_image_hits(t_s, m_s, o_s, KS)
    got_i2t = metrics.image_to_text_hits(m_s, t_s, o_s, KS)
    same = all(np.array_equal(ref_t2i[k], got_t2i[k]) and np.array_equal(ref_i2t[k], got_i2t[k]) for k in KS)
    print(f"peak RSS {peak:.2f} GB (target <= 4)   t2i {t_t2i:.1f} s   i2t {t_i2t:.1f} s")
    print(f"{ni} x {nc} slice identical to the naive full-matrix reference: {same}")
    return 0 if same and peak <= 4 else 1


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    sys.exit(main())
