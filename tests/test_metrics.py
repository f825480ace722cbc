"""metrics.py against deliberately naive per-item references, over random inputs incl. ties."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from negbench.evaluation import metrics

KS = (1, 5, 10)


def _features(rng, n, d, exact: bool):
    """Random features; `exact` = ±1 entries in 16 dims, so normalised dot products are exact
    multiples of 1/16 and ties are frequent and bit-identical in every summation order."""
    if exact:
        return rng.choice([-1.0, 1.0], size=(n, 16)).astype(np.float32)
    return rng.standard_normal((n, d)).astype(np.float32)


def _norm(x):
    x = torch.as_tensor(x, dtype=torch.float32)
    return x / x.norm(dim=-1, keepdim=True)


# ---------------------------------------------------------------- naive references

def naive_mcq(media, texts, media_index, option_index):
    m, t = _norm(media), _norm(texts)
    preds, scores = [], []
    for i in range(len(media_index)):
        s = torch.stack([torch.dot(m[media_index[i]], t[j]) for j in option_index[i]])
        scores.append(s.numpy())
        best = 0
        for j in range(1, len(s)):  # first maximum wins
            if s[j] > s[best]:
                best = j
        preds.append(best)
    return np.array(preds), np.array(scores)


def naive_t2i(texts, media, owner, k):
    t, m = _norm(texts), _norm(media)
    hits = []
    for c in range(len(t)):
        row = torch.stack([torch.dot(t[c], m[j]) for j in range(len(m))])
        top = torch.topk(row, min(k, len(m))).indices.tolist()
        hits.append(owner[c] in top)
    return np.array(hits)


def naive_i2t(media, texts, owner, k):
    t, m = _norm(texts), _norm(media)
    hits = []
    for i in range(len(m)):
        row = torch.stack([torch.dot(m[i], t[c]) for c in range(len(t))])
        top = torch.topk(row, min(k, len(t))).indices.tolist()
        hits.append(any(owner[c] == i for c in top))
    return np.array(hits)


def naive_bootstrap(values, n_samples, seed):
    rng = np.random.default_rng(seed)
    v = np.asarray(values, dtype=np.float64)
    means = [v[rng.integers(0, len(v), size=len(v))].mean() for _ in range(n_samples)]
    return tuple(np.quantile(means, [0.025, 0.975]))


# ---------------------------------------------------------------- tests

@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("exact", [False, True])
@pytest.mark.parametrize("n_options", [2, 4])
def test_mcq_matches_naive(seed, exact, n_options):
    rng = np.random.default_rng(seed)
    media = _features(rng, 7, 12, exact)
    texts = _features(rng, 9, 12, exact)
    media_index = rng.integers(0, 7, 40)
    option_index = rng.integers(0, 9, (40, n_options))
    if exact:  # duplicate captions -> exact ties (bit-exact only with ±1 features)
        texts[3] = texts[5]
        option_index[0] = [3, 5] + [3] * (n_options - 2)     # a question whose options all tie
    scores = metrics.mcq_scores(media, texts, media_index, option_index, chunk_elements=100)
    pred = metrics.mcq_predictions(scores)
    ref_pred, ref_scores = naive_mcq(media, texts, media_index, option_index)
    np.testing.assert_allclose(scores, ref_scores, atol=1e-6)
    np.testing.assert_array_equal(pred, ref_pred)
    if exact:
        assert pred[0] == 0   # ties go to the lowest index
    correct = rng.integers(0, n_options, 40)
    assert metrics.accuracy(pred, correct) == pytest.approx(np.mean(ref_pred == correct))


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("exact", [False, True])
@pytest.mark.parametrize("chunk", [1 << 25, 37])  # one chunk, and many small ones
def test_retrieval_matches_naive(seed, exact, chunk):
    rng = np.random.default_rng(seed)
    n_media, per = 13, 3
    media = _features(rng, n_media, 10, exact)
    # Duplicates make exact ties; only bit-exact (±1) features keep a tie a tie in every
    # summation order, so with float features two implementations may legitimately differ.
    if exact:
        media[4] = media[7]                               # duplicate images
    owner = np.repeat(np.arange(n_media), per)
    rng.shuffle(owner)
    texts = _features(rng, len(owner), 10, exact)
    if exact:
        texts[2] = texts[11]                              # duplicate captions of (maybe) other images
    t2i, ranks = metrics.text_to_image_hits(texts, media, owner, KS, chunk_elements=chunk)
    i2t = metrics.image_to_text_hits(media, texts, owner, KS, chunk_elements=chunk)
    for k in KS:
        np.testing.assert_array_equal(t2i[k], naive_t2i(texts, media, owner, k))
        np.testing.assert_array_equal(i2t[k], naive_i2t(media, texts, owner, k))
    # ranks: position of the own image in topk(max k), -1 beyond
    t, m = _norm(texts), _norm(media)
    for c in range(len(texts)):
        top = torch.topk(t[c] @ m.T, 10).indices.tolist()
        assert ranks[c] == (top.index(owner[c]) if owner[c] in top else -1)


def test_recall_k_larger_than_gallery():
    rng = np.random.default_rng(0)
    media, texts = rng.standard_normal((3, 8)), rng.standard_normal((4, 8))
    owner = np.array([0, 1, 2, 2])
    t2i, ranks = metrics.text_to_image_hits(texts, media, owner, KS)
    assert t2i[10].all() and t2i[5].all() and (ranks >= 0).all()
    i2t = metrics.image_to_text_hits(media, texts, owner, KS)
    assert i2t[10].all()


def test_i2t_image_without_captions_never_hits():
    media = np.eye(3, dtype=np.float32)
    texts = np.eye(3, dtype=np.float32)[:2]
    i2t = metrics.image_to_text_hits(media, texts, np.array([0, 1]), (1, 5))
    assert i2t[1].tolist() == [True, True, False] and i2t[5].tolist() == [True, True, False]


def test_perfect_retrieval():
    feats = np.eye(6, dtype=np.float32) * 3
    t2i, ranks = metrics.text_to_image_hits(feats, feats, np.arange(6), KS)
    assert all(t2i[k].all() for k in KS) and (ranks == 0).all()


@pytest.mark.parametrize("n,p,seed", [(1, 1.0, 0), (7, 0.4, 1), (50, 0.7, 2), (333, 0.25, 3)])
def test_bootstrap_matches_naive(n, p, seed):
    values = np.random.default_rng(seed).random(n) < p
    lo, hi = metrics.bootstrap_ci(values, n_samples=200, seed=seed, chunk_elements=n * 7 + 1)
    rlo, rhi = naive_bootstrap(values, 200, seed)
    assert (lo, hi) == pytest.approx((rlo, rhi), abs=1e-12)
    assert lo <= values.mean() <= hi or n == 1


def test_bootstrap_seeded_and_edge_cases():
    v = np.random.default_rng(0).random(100)
    assert metrics.bootstrap_ci(v, seed=3) == metrics.bootstrap_ci(v, seed=3)
    assert metrics.bootstrap_ci(v, seed=3) != metrics.bootstrap_ci(v, seed=4)
    assert all(np.isnan(metrics.bootstrap_ci([])))
    r = metrics.mean_with_ci(v, n_samples=0)
    assert r["ci_low"] == r["value"] == r["ci_high"]


def naive_breakdowns(pred, correct, templates, types):
    wrong = [i for i in range(len(pred)) if pred[i] != correct[i]]
    shares = {t: 0.0 for t in ("positive", "negative", "hybrid")}
    for i in wrong:
        shares[types[i][pred[i]]] += 1 / len(wrong)
    table = {}
    for i in range(len(pred)):
        row = table.setdefault(templates[i], {"correct": 0, "positive": 0, "negative": 0, "hybrid": 0})
        row["correct" if pred[i] == correct[i] else types[i][pred[i]]] += 1
    return shares, table


@pytest.mark.parametrize("seed", range(5))
def test_breakdowns_match_naive(seed):
    rng = np.random.default_rng(seed)
    n = 60
    all_types = ["positive", "negative", "hybrid"]
    types = [list(rng.choice(all_types, 4)) for _ in range(n)]
    pred, correct = rng.integers(0, 4, n), rng.integers(0, 4, n)
    templates = list(rng.choice(all_types + ["modified_positive"], n))
    shares = metrics.wrong_answer_type_shares(pred, correct, types)
    table = metrics.confusion_table(pred, correct, templates, types)
    rshares, rtable = naive_breakdowns(pred, correct, templates, types)
    assert shares == pytest.approx(rshares)
    assert table == rtable
    assert sum(shares.values()) == pytest.approx(1.0)
    by = metrics.accuracy_by_group(pred == correct, templates, n_samples=50)
    for t, v in by.items():
        sel = [i for i in range(n) if templates[i] == t]
        assert v["n"] == len(sel) and v["value"] == pytest.approx(np.mean(pred[sel] == correct[sel]))
    assert metrics.chosen_types(pred, types) == [types[i][pred[i]] for i in range(n)]


def test_no_wrong_answers_gives_zero_shares():
    shares = metrics.wrong_answer_type_shares([0, 1], [0, 1], [["positive"] * 2] * 2)
    assert shares == {"positive": 0.0, "negative": 0.0, "hybrid": 0.0}
