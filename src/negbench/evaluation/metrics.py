"""Metrics as pure functions on arrays: MCQ scoring, recall@k, breakdowns, bootstrap CIs.

Every definition here reproduces the published NegBench evaluation (which follows
CLIP_benchmark): features are L2-normalised before any dot product; an MCQ prediction is
the argmax over the options (ties -> lowest index, like torch.argmax); recall@k asks
whether the *own* item is in the set returned by torch.topk(scores, k) (so ties are broken
exactly as torch.topk breaks them). Large score matrices are never materialised: scores
are computed in chunks of rows: 100k images x 500k captions (D=512) peak at 3.1 GB RSS
(bench/retrieval_scale.py).

Inputs are numpy arrays or torch tensors; outputs are numpy arrays / Python floats.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

DEFAULT_KS = (1, 5, 10)
# Elements of one score chunk (rows x columns); 2**25 fp32 values = 128 MiB.
CHUNK_ELEMENTS = 1 << 25


def _tensor(x, device=None):
    import torch

    t = x if isinstance(x, torch.Tensor) else torch.from_numpy(np.asarray(x))
    t = t.to(dtype=torch.float32) if t.is_floating_point() else t
    return t.to(device) if device is not None else t


def l2_normalize(features, eps: float = 1e-12):
    """Row-wise L2 normalisation (torch.nn.functional.normalize semantics), as float32 tensor."""
    import torch.nn.functional as F

    return F.normalize(_tensor(features), dim=-1, eps=eps)


def _chunk_rows(n_rows: int, n_cols: int, chunk_elements: int = CHUNK_ELEMENTS) -> int:
    return max(1, min(n_rows, chunk_elements // max(1, n_cols)))


# ---------------------------------------------------------------- MCQ

def mcq_scores(media_features, text_features, media_index, option_index, *, normalize: bool = True,
               device=None, chunk_elements: int = CHUNK_ELEMENTS) -> np.ndarray:
    """Cosine similarity of each question's image with each of its options.

    media_features (M, D), text_features (C, D): one row per *unique* media / caption;
    media_index (N,): row of each question's media; option_index (N, K): rows of its options.
    Returns scores (N, K) with scores[i, j] = <m_i / |m_i|, t_ij / |t_ij|>.
    """
    import torch

    m = l2_normalize(media_features) if normalize else _tensor(media_features)
    t = l2_normalize(text_features) if normalize else _tensor(text_features)
    m, t = m.to(device or m.device), t.to(device or t.device)
    mi = torch.as_tensor(np.asarray(media_index), dtype=torch.long)
    oi = torch.as_tensor(np.asarray(option_index), dtype=torch.long)
    n, k = oi.shape
    out = torch.empty((n, k), dtype=torch.float32)
    step = _chunk_rows(n, k * m.shape[1], chunk_elements)
    for s in range(0, n, step):
        img = m[mi[s:s + step].to(m.device)]                    # (c, D)
        opts = t[oi[s:s + step].to(t.device)]                   # (c, K, D)
        out[s:s + step] = torch.einsum("cd,ckd->ck", img, opts).float().cpu()
    return out.numpy()


def mcq_predictions(scores) -> np.ndarray:
    """argmax over options; ties go to the lowest index (torch.argmax's documented rule)."""
    import torch

    return torch.argmax(_tensor(scores), dim=1).numpy()


def tie_counts(scores) -> np.ndarray:
    """Per question, how many options share the maximum score (exact float32 equality; 1 = no tie).

    A text tower that maps every option to the same vector ties all of them; under the
    published argmax rule (ties -> lowest index) such a question is then "answered" option 0.
    """
    s = np.asarray(scores, dtype=np.float32)
    if s.size == 0:
        return np.zeros(len(s), dtype=np.int64)
    return (s == s.max(axis=1, keepdims=True)).sum(axis=1).astype(np.int64)


def tied_questions(scores) -> np.ndarray:
    """bool (N,): the maximum score of the question is shared by two or more options."""
    return tie_counts(scores) >= 2


def tie_aware_credit(scores, correct) -> np.ndarray:
    """Per question credit under the tie-aware rule: 1/t when the correct option is one of the
    t options sharing the maximum score (t = 1 without a tie), else 0.

    Its mean is the expected accuracy of a model that breaks ties uniformly at random, so
    a constant text tower scores chance (1/K), whatever index the files put the answer at.
    """
    s = np.asarray(scores, dtype=np.float32)
    correct = np.asarray(correct, dtype=np.int64)
    if s.size == 0:
        return np.zeros(len(correct), dtype=np.float64)
    at_max = s == s.max(axis=1, keepdims=True)
    hit = at_max[np.arange(len(correct)), correct]
    return np.where(hit, 1.0 / at_max.sum(axis=1), 0.0)


def accuracy(predicted, correct) -> float:
    """Share of questions whose prediction equals the correct option index."""
    predicted, correct = np.asarray(predicted), np.asarray(correct)
    return float((predicted == correct).mean()) if len(correct) else float("nan")


# ---------------------------------------------------------------- retrieval

def text_to_image_hits(text_features, media_features, text_owner, ks: Sequence[int] = DEFAULT_KS, *,
                       normalize: bool = True, device=None, chunk_elements: int = CHUNK_ELEMENTS
                       ) -> tuple[dict[int, np.ndarray], np.ndarray]:
    """Text -> image retrieval, per caption.

    text_owner (T,): index (row of media_features) of each caption's own image.
    Returns ({k: bool (T,) "own image in torch.topk(scores_of_caption, k)"}, ranks (T,)) where
    ranks is the 0-based position of the own image in torch.topk(scores, max(ks)), -1 if absent.
    k larger than the number of images is clamped (every caption then hits).
    """
    import torch

    t = l2_normalize(text_features) if normalize else _tensor(text_features)
    m = l2_normalize(media_features) if normalize else _tensor(media_features)
    if device is not None:
        t, m = t.to(device), m.to(device)
    owner = torch.as_tensor(np.asarray(text_owner), dtype=torch.long)
    n_t, n_m = t.shape[0], m.shape[0]
    hits = {k: np.zeros(n_t, dtype=bool) for k in ks}
    ranks = np.full(n_t, -1, dtype=np.int64)
    kmax = min(max(ks), n_m)
    step = _chunk_rows(n_t, n_m, chunk_elements)
    for s in range(0, n_t, step):
        scores = t[s:s + step] @ m.T                                # (c, M)
        own = owner[s:s + step].to(scores.device).unsqueeze(1)
        for k in ks:  # a topk per k, as the published code does (ties can differ between ks)
            idx = torch.topk(scores, min(k, n_m), dim=1).indices
            hits[k][s:s + step] = (idx == own).any(dim=1).cpu().numpy()
        idx = torch.topk(scores, kmax, dim=1).indices
        match = (idx == own)
        pos = torch.where(match.any(dim=1), match.float().argmax(dim=1), torch.full_like(own[:, 0], -1))
        ranks[s:s + step] = pos.cpu().numpy()
    return hits, ranks


def image_to_text_hits(media_features, text_features, text_owner, ks: Sequence[int] = DEFAULT_KS, *,
                       normalize: bool = True, device=None, chunk_elements: int = CHUNK_ELEMENTS
                       ) -> dict[int, np.ndarray]:
    """Image -> text retrieval, per image.

    Returns {k: bool (M,) "at least one of the image's own captions is in
    torch.topk(scores_of_image, k)"}; text_owner (T,) gives each caption's image.
    Images without any caption never hit. k is clamped to the number of captions.
    """
    import torch

    t = l2_normalize(text_features) if normalize else _tensor(text_features)
    m = l2_normalize(media_features) if normalize else _tensor(media_features)
    if device is not None:
        t, m = t.to(device), m.to(device)
    owner = torch.as_tensor(np.asarray(text_owner), dtype=torch.long).to(t.device)
    n_t, n_m = t.shape[0], m.shape[0]
    hits = {k: np.zeros(n_m, dtype=bool) for k in ks}
    step = _chunk_rows(n_m, n_t, chunk_elements)
    for s in range(0, n_m, step):
        scores = m[s:s + step] @ t.T                                # (c, T)
        rows = torch.arange(s, min(s + step, n_m), device=scores.device).unsqueeze(1)
        for k in ks:
            idx = torch.topk(scores, min(k, n_t), dim=1).indices
            hits[k][s:s + step] = (owner[idx] == rows).any(dim=1).cpu().numpy()
    return hits


# ---------------------------------------------------------------- bootstrap

def bootstrap_ci(values, *, n_samples: int = 1000, seed: int = 0, level: float = 0.95,
                 chunk_elements: int = 1 << 24) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of `values` (one value per item).

    Resamples items with replacement: sample b draws idx_b = rng.integers(0, n, n) from
    np.random.default_rng(seed) (samples drawn one after another), takes mean(values[idx_b]),
    and the interval is the (1-level)/2 and (1+level)/2 quantiles (numpy 'linear') of the
    n_samples means. Empty input -> (nan, nan); n_samples=0 -> the mean twice.
    """
    v = np.asarray(values, dtype=np.float64)
    n = len(v)
    if n == 0:
        return float("nan"), float("nan")
    if n_samples <= 0:
        return float(v.mean()), float(v.mean())
    rng = np.random.default_rng(seed)
    means = np.empty(n_samples)
    step = max(1, chunk_elements // n)
    for s in range(0, n_samples, step):
        c = min(step, n_samples - s)
        idx = rng.integers(0, n, size=(c, n))  # same stream as c draws of size n
        means[s:s + c] = v[idx].mean(axis=1)
    alpha = (1.0 - level) / 2
    lo, hi = np.quantile(means, [alpha, 1 - alpha])
    return float(lo), float(hi)


def mean_with_ci(values, *, n_samples: int = 1000, seed: int = 0) -> dict:
    """{"value": mean, "ci_low", "ci_high", "ci_method", "n"} for a per-item vector; n = len(values), the
    number of items the value is a mean over (questions; captions for text->media recall, media for
    media->text), so every reader shows the n of the metric itself, never the task's item count.

    A 0/1 vector (correct / hit per item) gets the Wilson score interval (wilson_interval), which
    stays inside [0, 1], is not [p, p] at 0% or 100%, and holds its coverage for small n where a
    percentile bootstrap collapses (8 wrong answers: bootstrap [0, 0], Wilson [0, 32.4%]). Any other
    real-valued vector (tie-aware credit 1/t, ...) keeps the percentile bootstrap (bootstrap_ci).
    """
    v = np.asarray(values, dtype=np.float64)
    mean = float(v.mean()) if len(v) else float("nan")
    if len(v) and np.isin(v, (0.0, 1.0)).all():
        lo, hi = wilson_interval(int(v.sum()), len(v))
        return {"value": mean, "ci_low": lo, "ci_high": hi, "ci_method": "wilson", "n": int(len(v))}
    lo, hi = bootstrap_ci(v, n_samples=n_samples, seed=seed)
    return {"value": mean, "ci_low": lo, "ci_high": hi, "ci_method": "bootstrap", "n": int(len(v))}


# ---------------------------------------------------------------- MCQ breakdowns

def chosen_types(predicted, option_types: Sequence[Sequence[str]]) -> list[str]:
    """Type of the chosen option of each question (option_types[i][predicted[i]])."""
    return [types[int(p)] for p, types in zip(np.asarray(predicted), option_types)]


def wrong_answer_type_shares(predicted, correct, option_types, *,
                             types: Sequence[str] = ("positive", "negative", "hybrid")) -> dict[str, float]:
    """Among wrongly answered questions, the share whose chosen option has each type.

    Every type in `types` appears (0.0 when never chosen); other types seen are added.
    Shares sum to 1 when there is at least one wrong answer, else all are 0.0.
    """
    predicted, correct = np.asarray(predicted), np.asarray(correct)
    wrong = np.flatnonzero(predicted != correct)
    counts = {t: 0 for t in types}
    for i in wrong:
        t = option_types[i][int(predicted[i])]
        counts[t] = counts.get(t, 0) + 1
    total = len(wrong)
    return {t: (c / total if total else 0.0) for t, c in counts.items()}


def confusion_table(predicted, correct, question_templates: Sequence[str], option_types, *,
                    types: Sequence[str] = ("positive", "negative", "hybrid")) -> dict[str, dict[str, int]]:
    """Question template x chosen type counts: {template: {"correct": n, TYPE: n wrong picks}}.

    A correctly answered question counts under "correct" (not under its option's type).
    """
    predicted, correct = np.asarray(predicted), np.asarray(correct)
    table: dict[str, dict[str, int]] = {}
    for i, tmpl in enumerate(question_templates):
        row = table.setdefault(tmpl, {"correct": 0, **{t: 0 for t in types}})
        if predicted[i] == correct[i]:
            row["correct"] += 1
        else:
            t = option_types[i][int(predicted[i])]
            row[t] = row.get(t, 0) + 1
    return {k: table[k] for k in sorted(table)}


def accuracy_by_group(is_correct, groups: Sequence[str], *, n_samples: int = 1000, seed: int = 0
                      ) -> dict[str, dict]:
    """{group: {"value", "ci_low", "ci_high", "ci_method", "n"}}: accuracy and its interval per group."""
    is_correct = np.asarray(is_correct, dtype=np.float64)
    groups = np.asarray(list(groups), dtype=object)
    out = {}
    for g in sorted(set(groups.tolist())):
        sel = is_correct[groups == g]
        out[g] = mean_with_ci(sel, n_samples=n_samples, seed=seed)
    return out


# ---------------------------------------------------------------- precision near-ties

# Unit roundoff u = 2**-p of each format (p significant bits, the implicit one included): the
# largest relative error of one rounding. A cosine of unit vectors lies in [-1, 1], and its error
# comes from the rounding of the embeddings' coordinates (relative to their norm, 1), so the bound
# is absolute: u, whatever the score's own magnitude.
NEAR_TIE_BOUNDS = {"bf16": 2.0 ** -8, "fp16": 2.0 ** -11, "fp32": 2.0 ** -24}


def near_tie_bound(precision: str) -> float:
    """The score gap below which a precision cannot be trusted to order two options (see above):
    bf16 2**-8 ~ 3.9e-3, fp16 2**-11 ~ 4.9e-4, fp32 2**-24 ~ 6.0e-8."""
    try:
        return NEAR_TIE_BOUNDS[precision]
    except KeyError:
        raise ValueError(f"precision {precision!r} not in {sorted(NEAR_TIE_BOUNDS)}") from None


def near_ties(scores, precision: str, margin: float = 1.0) -> np.ndarray:
    """bool (N,): the question's top two scores differ by less than margin x near_tie_bound(precision).

    Such a question can change its prediction when the model runs at that precision (its top
    two options are ordered by less than one rounding); exact ties count too. Fewer than two
    options: never a near-tie.
    """
    bound = margin * near_tie_bound(precision)
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 2:
        raise ValueError(f"scores must be (N, K), got shape {s.shape}")
    if s.shape[1] < 2 or s.shape[0] == 0:
        return np.zeros(s.shape[0], dtype=bool)
    top2 = -np.partition(-s, 1, axis=1)[:, :2]  # largest, second largest
    return (top2[:, 0] - top2[:, 1]) < bound


def near_tie_count(scores, precision: str) -> int:
    """MCQ items (rows of scores (N, K)) whose top two scores differ by less than the rounding
    of `precision` (near_tie_bound): how many predictions that precision alone could flip.

    For fp32 the bound (2**-24) is below the resolution of a float32 cosine near 1, so the count
    is the exact ties plus gaps of the last bit; for bf16 (2**-8) it is the items whose order
    a bf16 run, or a bf16 run's fp32 twin, may reverse.
    """
    return int(near_ties(scores, precision).sum())


# ---------------------------------------------------------------- binomial intervals

def wilson_interval(successes: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion successes / n (Wilson 1927), as (low, high).

    scipy.stats.binomtest(k, n).proportion_ci(level, method="wilson") when scipy is installed,
    else the same closed form: (p + z²/2n ± z·sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n), z the
    (1+level)/2 normal quantile. n = 0 -> (nan, nan).
    """
    if n <= 0:
        return float("nan"), float("nan")
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be in 0..{n}, got {successes}")
    try:
        from scipy.stats import binomtest
    except ImportError:
        return _wilson_formula(successes, n, level)
    ci = binomtest(int(successes), int(n)).proportion_ci(confidence_level=level, method="wilson")
    return float(ci.low), float(ci.high)


def _wilson_formula(successes: int, n: int, level: float) -> tuple[float, float]:
    from statistics import NormalDist

    z = NormalDist().inv_cdf((1 + level) / 2)
    p = successes / n
    centre = p + z * z / (2 * n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    den = 1 + z * z / n
    return float(max(0.0, (centre - half) / den)), float(min(1.0, (centre + half) / den))
