"""Statistics the report needs on top of the per-task CIs: differences between two models.

A before/after difference is measured on the same questions, so its interval must come from
resampling questions once and scoring both models on that resample (a paired bootstrap);
two independent per-model intervals would overstate the uncertainty of the difference.
"""
from __future__ import annotations

import numpy as np


def paired_bootstrap_diff(before, after, *, n_samples: int = 1000, seed: int = 0,
                          alpha: float = 0.05) -> dict:
    """mean(after) - mean(before) over paired per-item scores, with a percentile bootstrap CI.

    before, after: per-item scores (0/1 correctness, or any number) of the two models on the
    same items in the same order. One resample draws len(items) item indices with
    replacement (numpy default_rng(seed).integers) and takes the difference of the two means
    on those indices. Returns {value, ci_low, ci_high, n}; `excludes_zero` says whether
    the interval lies entirely on one side of 0.
    """
    b = np.asarray(before, dtype=float)
    a = np.asarray(after, dtype=float)
    if b.shape != a.shape or b.ndim != 1:
        raise ValueError(f"paired scores need two 1-D arrays of one length, got {b.shape} and {a.shape}")
    n = len(b)
    if n == 0:
        return {"value": float("nan"), "ci_low": float("nan"), "ci_high": float("nan"), "n": 0,
                "excludes_zero": False}
    diff = a - b
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_samples, n))
    samples = diff[idx].mean(axis=1)
    lo, hi = np.quantile(samples, [alpha / 2, 1 - alpha / 2])
    return {"value": float(diff.mean()), "ci_low": float(lo), "ci_high": float(hi), "n": n,
            "excludes_zero": bool(lo > 0 or hi < 0)}
