"""The pure functions of the `t2i-selection` kind (scored in evaluation/scoring.py, through the one
evaluation path like every other kind).

- `t2i-selection` (SPEC's text-to-image direction): each caption has K candidate images and one
  right one; prediction = argmax over the K images of the cosine similarity of the L2-normalised
  caption and image embeddings (ties -> the lowest index, torch.argmax's rule, as in SPEC's
  clip_wrapper.py). Accuracy = share of captions whose prediction is the right image;
  tie-aware accuracy credits 1/m when the right image is one of m images sharing the top score.

The functions work on arrays: selection_scores, selection_predictions, top_ties, tie_aware_credit.
"""
from __future__ import annotations

import numpy as np


# ---------------------------------------------------------------- pure functions

def selection_scores(text_emb, media_emb, text_index, candidate_index) -> np.ndarray:
    """scores (N, K): cosine of caption text_index[i] with each image candidate_index[i, k]."""
    t = np.asarray(text_emb, dtype=np.float64)
    m = np.asarray(media_emb, dtype=np.float64)
    t = t / np.maximum(np.linalg.norm(t, axis=1, keepdims=True), 1e-12)
    m = m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-12)
    return np.einsum("nd,nkd->nk", t[np.asarray(text_index)], m[np.asarray(candidate_index)])


def selection_predictions(scores) -> np.ndarray:
    """Index of the best candidate per row; ties -> lowest index (np.argmax's rule, like torch's)."""
    return np.argmax(np.asarray(scores), axis=1)


def top_ties(scores) -> np.ndarray:
    """(N,) how many candidates share each row's top score (1 = no tie)."""
    s = np.asarray(scores)
    return (s == s.max(axis=1, keepdims=True)).sum(axis=1)


def tie_aware_credit(scores, correct) -> np.ndarray:
    """(N,) 1/m when the right candidate is among the m sharing the top score, else 0."""
    s = np.asarray(scores)
    top = s == s.max(axis=1, keepdims=True)
    hit = top[np.arange(len(s)), np.asarray(correct)]
    return np.where(hit, 1.0 / top.sum(axis=1), 0.0)
