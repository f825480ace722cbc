"""Task kinds scored outside the engine's MCQ/retrieval loop, in the same results schema.

- `t2i-selection` (SPEC's text-to-image direction): each caption has K candidate images and one
  right one; prediction = argmax over the K images of the cosine similarity of the L2-normalised
  caption and image embeddings (ties -> the lowest index, torch.argmax's rule, as in SPEC's
  clip_wrapper.py). Accuracy = share of captions whose prediction is the right image;
  tie-aware accuracy credits 1/m when the right image is one of m images sharing the top score.
- tasks marked `needs_generative` (NegVQA): handed to the generative backend when one is
  installed and the model is generative; otherwise a result with `status: skipped` and the
  reason is returned (and written), so a suite run records it instead of failing.

The pure functions (selection_scores, selection_predictions, top_ties, tie_aware_credit) are on
arrays; `run_special` is the engine's single dispatch point into this module.
"""
from __future__ import annotations

import datetime as _dt
import json
import importlib
import logging
import os
import time
from pathlib import Path

import numpy as np

from negbench.core.errors import NegbenchError, TaskFileError

log = logging.getLogger(__name__)
GENERATIVE_MODULE = "negbench.evaluation.generative"


def handles(spec) -> bool:
    """True for the tasks this module scores instead of the engine's loop."""
    return spec.task_kind.own_loop or bool(getattr(spec, "needs_generative", False))


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


# ---------------------------------------------------------------- dispatch

def run_special(spec, model, *, results_dir=None, skip_existing: bool = False, **kwargs) -> dict:
    """Score `spec` (see handles()); writes results JSON (+ Parquet) when results_dir is given."""
    from negbench.core.io import read_json, write_json_atomic
    from negbench.evaluation.schema import upgrade_result
    from negbench.evaluation.engine import result_paths

    model_string = model if isinstance(model, str) else getattr(model, "model_string", type(model).__name__)
    json_path = parquet_path = None
    if results_dir is not None:
        json_path, parquet_path = result_paths(results_dir, model_string, spec.name)
        if skip_existing and json_path.exists() and parquet_path.exists():
            return {**upgrade_result(read_json(json_path)), "results_file": str(json_path)}
    if spec.needs_generative:
        result, table = _generative_or_skip(spec, model, model_string, results_dir, kwargs)
    else:
        result, table = spec.task_kind.score_function()(spec, model, model_string, **kwargs)
    if json_path is not None:
        if table is not None:
            from negbench.evaluation.engine import _write_parquet
            _write_parquet(parquet_path, table)
        write_json_atomic(json_path, result)
        result["results_file"] = str(json_path)
    return result


def _is_generative(model, model_string: str) -> bool:
    return model_string.startswith("vlm:") or callable(getattr(model, "generate", None))


def _generative_or_skip(spec, model, model_string: str, results_dir, kwargs) -> tuple[dict, dict | None]:
    """Hand the task to the generative backend (i16's negbench.evaluation.generative) if it is
    installed and offers evaluate_task, and the model is generative; else a recorded skip."""
    backend = None
    try:
        backend = getattr(importlib.import_module(GENERATIVE_MODULE), "evaluate_task", None)
    except ModuleNotFoundError as err:
        if err.name != GENERATIVE_MODULE:
            raise
    if backend is not None and _is_generative(model, model_string):
        return backend(spec, model, results_dir=None, **kwargs), None
    if not _is_generative(model, model_string):
        reason = (f"task {spec.name!r} needs a generative model (a 'vlm:' model string); "
                  f"{model_string!r} is a dual encoder, so the task was not evaluated")
    else:
        reason = (f"task {spec.name!r} needs the generative backend {GENERATIVE_MODULE}.evaluate_task, "
                  f"which this negbench build does not have")
    log.warning("%s", reason)
    return _skipped_result(spec, model_string, reason, kwargs), None


def _header(spec, model_string: str, identity, kwargs, resolved_file) -> dict:
    from negbench import __version__
    from negbench.core.io import git_hash
    from negbench.evaluation.schema import SCHEMA_VERSION

    return {"schema_version": SCHEMA_VERSION, "negbench_version": __version__, "git_hash": git_hash(),
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "model": model_string, "model_identity": identity,
            "task": {**spec.to_dict(), "resolved_file": str(Path(resolved_file).resolve())},
            "seed": kwargs.get("seed", 0), "bootstrap_samples": kwargs.get("bootstrap_samples", 1000)}


def _skipped_result(spec, model_string: str, reason: str, kwargs) -> dict:
    from negbench.inputs.formats import read_task_file

    task_file = spec.resolve_file(kwargs.get("data_root"))
    data = read_task_file(task_file, spec.kind, spec.resolve_media_root(kwargs.get("data_root")),
                          skip_invalid=True, check_media=False)
    return {**_header(spec, model_string, None, kwargs, task_file), "chance": spec.chance,
            "status": "skipped", "skip_reason": reason,
            "counts": {"items": 0, "skipped": 0, "in_file": len(data.items) + len(data.skipped)},
            "skipped_rows": [], "metrics": {}, "predictions_file": None, "timings": {}, "cache": {}}


def _encode_all(adapter, media_paths, captions, *, batch_size, num_workers, precision, progress):
    from negbench.evaluation.encoding import encode_media, encode_texts

    t0 = time.perf_counter()
    media_emb, failed = encode_media(adapter, media_paths, modality="image", batch_size=batch_size,
                                     num_workers=num_workers, precision=precision, progress=progress)
    t_media = time.perf_counter() - t0
    t0 = time.perf_counter()
    text_emb = encode_texts(adapter, captions, batch_size=batch_size, precision=precision, progress=progress)
    return media_emb, failed, text_emb, t_media, time.perf_counter() - t0


def _drop_undecodable(task_file, items, skipped, media_paths, failed, skip_invalid, root):
    """Items with an undecodable candidate: error naming the row, or (skip_invalid) skipped."""
    from negbench.inputs.formats import resolve_media

    bad = {media_paths[i]: reason for i, reason in failed.items()}
    kept = []
    for it in items:
        reason = next((bad[p] for p in (Path(os.path.abspath(resolve_media(m, root))) for m in it.media)
                       if p in bad), None)
        if reason is None:
            kept.append(it)
            continue
        err = TaskFileError(task_file, it.row, "image_paths", reason)
        if not skip_invalid:
            raise err
        skipped.append(err.as_record())
    return kept


def evaluate_selection(spec, model, model_string: str, *, data_root=None, skip_invalid: bool = False,
                       **options) -> tuple[dict, dict]:
    """A t2i-selection task -> (results dict in the engine's schema, per-item table).

    options: batch_size, seed, bootstrap_samples, num_workers, progress, device, precision as for
    engine.evaluate_task (others, such as cache_dir and frames, do not apply: this kind's images
    and captions are encoded once per run).
    """
    batch_size, seed = options.get("batch_size", 64), options.get("seed", 0)
    bootstrap_samples = options.get("bootstrap_samples", 1000)
    num_workers, progress = options.get("num_workers", 0), options.get("progress", True)
    device, precision = options.get("device"), options.get("precision")
    from negbench.evaluation import metrics
    from negbench.evaluation.engine import _loaded, _resolve_model
    from negbench.inputs.formats import resolve_media
    from negbench.inputs.selection import read_selection_file

    t_start = time.perf_counter()
    task_file = spec.resolve_file(data_root)
    items, skipped, root = read_selection_file(task_file, spec.resolve_media_root(data_root),
                                               skip_invalid=skip_invalid)
    adapter = _loaded(_resolve_model(model, device, precision or "fp32"))
    precision = precision or getattr(adapter, "precision", "fp32")
    full = lambda m: Path(os.path.abspath(resolve_media(m, root)))  # noqa: E731
    media_paths = list(dict.fromkeys(full(m) for it in items for m in it.media))
    captions = list(dict.fromkeys(it.caption for it in items))
    media_emb, failed, text_emb, t_media, t_text = _encode_all(
        adapter, media_paths, captions, batch_size=batch_size, num_workers=num_workers,
        precision=precision, progress=progress)
    items = _drop_undecodable(task_file, items, skipped, media_paths, failed, skip_invalid, root)
    if not items:
        raise NegbenchError(f"{task_file}: no valid rows to evaluate ({len(skipped)} skipped)")
    t0 = time.perf_counter()
    pos, cap = {p: i for i, p in enumerate(media_paths)}, {c: i for i, c in enumerate(captions)}
    scores = [selection_scores(text_emb, media_emb, [cap[it.caption]], [[pos[full(m)] for m in it.media]])[0]
              for it in items]  # rows may differ in K, so one row at a time
    correct = np.array([it.correct_answer for it in items])
    pred = np.array([int(selection_predictions(s[None])[0]) for s in scores])
    credit = np.array([tie_aware_credit(s[None], [c])[0] for s, c in zip(scores, correct)])
    ties = int(sum(top_ties(s[None])[0] > 1 for s in scores))
    res = {"accuracy": metrics.mean_with_ci(pred == correct, n_samples=bootstrap_samples, seed=seed),
           "accuracy_tie_aware": metrics.mean_with_ci(credit, n_samples=bootstrap_samples, seed=seed)}
    result = {**_header(spec, model_string, adapter.identity(), {"seed": seed, "bootstrap_samples":
                                                                 bootstrap_samples}, task_file),
              "chance": float(np.mean([1.0 / len(it.media) for it in items])), "precision": precision,
              "frames": None,
              "counts": {"items": len(items), "skipped": len(skipped), "unique_media": len(media_paths),
                         "unique_captions": len(captions), "ties": ties},
              "skipped_rows": skipped, "metrics": res, "predictions_file": f"{spec.name}.parquet",
              "timings": {"total_s": round(time.perf_counter() - t_start, 4), "encode_media_s": round(t_media, 4),
                          "encode_text_s": round(t_text, 4), "score_s": round(time.perf_counter() - t0, 4)},
              "cache": {"media_hits": 0, "media_misses": len(media_paths), "text_hits": 0,
                        "text_misses": len(captions)}}
    table = {"row": [it.row for it in items], "caption": [it.caption for it in items],
             "media": [json.dumps(list(it.media)) for it in items], "correct_answer": correct,
             "predicted": pred, "is_correct": pred == correct, "scores": [list(map(float, s)) for s in scores]}
    return result, table
