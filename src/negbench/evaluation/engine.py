"""The evaluation engine: task file + model -> results JSON + per-item Parquet.

What makes it fast: every unique image/video and every unique caption string of a task is
encoded exactly once, in batches (the published evaluation re-encodes the image and all
options of every question), and the embeddings are cached on disk keyed by model identity
+ preprocessing + file content (media) or the caption string (text), so evaluating
the same model again costs only scoring.

Scoring is in `negbench.evaluation.metrics` (pure functions); this module gathers inputs, runs the
model, and writes outputs atomically. Results schema: docs/contracts.md.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import logging
import os
import re
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from negbench import __version__
from negbench.evaluation import metrics
from negbench.evaluation.cache import EmbeddingCache, _cached_encode, media_key, text_key
from negbench.evaluation.fingerprint import current_result, eval_fingerprint
from negbench.core.errors import ConfigError, NegbenchError, TaskFileError
from negbench.inputs.formats import PATH_COLUMNS, TaskData, infer_option_type, read_task_file
from negbench.core.io import atomic_path, git_hash, read_json, safe_file_stem, write_json_atomic
from negbench.inputs.tasks import TaskSpec

log = logging.getLogger(__name__)
SCHEMA_VERSION = 1
RETRIEVAL_KS = (1, 5, 10)
CACHE_ENV = "NEGBENCH_CACHE_DIR"


def default_cache_dir() -> Path:
    """$NEGBENCH_CACHE_DIR, else ~/.cache/negbench/embeddings."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "negbench" / "embeddings"


def model_slug(model_string: str) -> str:
    """A folder name for a model string: readable, filesystem-safe, unique (hash suffix when shortened)."""
    slug = re.sub(r"[^A-Za-z0-9._@-]+", "_", model_string).strip("_.") or "model"
    if len(slug) > 80 or slug != model_string.replace(":", "_"):
        slug = f"{slug[-60:].lstrip('_.')}-{hashlib.sha256(model_string.encode()).hexdigest()[:8]}"
    return slug


def result_paths(results_dir, model_string: str, task_name: str) -> tuple[Path, Path]:
    """(json, parquet) paths of one model x task result."""
    folder = Path(results_dir).expanduser() / model_slug(model_string)
    stem = safe_file_stem(task_name)
    return folder / f"{stem}.json", folder / f"{stem}.parquet"


# ---------------------------------------------------------------- encoding

def _autocast(device, precision: str):
    import torch

    from negbench.models.base import precision_dtype

    dtype = precision_dtype(precision)
    if dtype == torch.float32:
        return contextlib.nullcontext()
    if device.type in ("cuda", "mps") or (device.type == "cpu" and dtype == torch.bfloat16):
        return torch.autocast(device.type, dtype=dtype)
    log.warning("precision %s is not supported on %s; using fp32", precision, device.type)
    return contextlib.nullcontext()


class _MediaDataset:
    """Decodes + preprocesses one image (C,H,W) or video (F,C,H,W); errors come back as strings."""

    def __init__(self, paths: Sequence[Path], preprocess, modality: str, frames: int):
        self.paths, self.preprocess, self.modality, self.frames = list(paths), preprocess, modality, frames

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        import torch

        from negbench.inputs.media import MediaError, load_image, sample_video_frames

        try:
            if self.modality == "video":
                imgs = sample_video_frames(self.paths[i], self.frames)
                return i, torch.stack([self.preprocess(im) for im in imgs])
            return i, self.preprocess(load_image(self.paths[i]))
        except MediaError as exc:
            return i, str(exc)


def _collate(batch):
    import torch

    good = [(i, x) for i, x in batch if not isinstance(x, str)]
    bad = [(i, x) for i, x in batch if isinstance(x, str)]
    idx = [i for i, _ in good]
    return idx, (torch.stack([x for _, x in good]) if good else None), bad


def _bar_name(progress, what: str) -> str:
    """`progress` may be the task's name: bars then say which task they belong to."""
    return f"{progress}: {what}" if isinstance(progress, str) else what


def encode_media(adapter, paths: Sequence[Path], *, modality: str = "image", frames: int = 4,
                 batch_size: int = 64, num_workers: int = 0, precision: str = "fp32",
                 progress: bool = True) -> tuple[np.ndarray, dict[int, str]]:
    """Embeddings (n, D) float32 of images, or of videos as the mean of L2-normalised frame
    embeddings; plus {index: reason} for media that could not be decoded (rows left zero)."""
    import torch
    import torch.nn.functional as F
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm

    ds = _MediaDataset(paths, adapter.preprocess, modality, frames)
    loader = DataLoader(ds, batch_size=batch_size, num_workers=num_workers, collate_fn=_collate,
                        shuffle=False, persistent_workers=False)
    out: np.ndarray | None = None
    failed: dict[int, str] = {}
    with torch.inference_mode(), _autocast(adapter.device, precision):
        for idx, x, bad in tqdm(loader, desc=_bar_name(progress, f"encode {modality}s"), unit="batch", disable=not progress,
                                leave=False):
            failed.update(dict(bad))
            if x is None:
                continue
            if modality == "video":
                b, f = x.shape[:2]
                feats = F.normalize(adapter.encode_images(x.flatten(0, 1)).float(), dim=-1)
                feats = feats.view(b, f, -1).mean(dim=1)
            else:
                feats = adapter.encode_images(x).float()
            feats = feats.cpu().numpy()
            if out is None:
                out = np.zeros((len(paths), feats.shape[1]), dtype=np.float32)
            out[idx] = feats
    if out is None:
        out = np.zeros((len(paths), 0), dtype=np.float32)
    return out, failed


def encode_texts(adapter, texts: Sequence[str], *, batch_size: int = 64, precision: str = "fp32",
                 progress: bool = True) -> np.ndarray:
    """Embeddings (n, D) float32 of caption strings (in input order), in batches.

    Captions are batched in order of length: a tokenizer that pads to the longest caption of
    a batch then pads little (the demo's evaluation went from 134 s to 96 s per model);
    padding is masked, so each embedding does not depend on its batch mates beyond float
    rounding. Fixed-length tokenizers (open_clip's 77) neither gain nor lose.
    """
    import torch
    from tqdm.auto import tqdm

    texts = list(texts)
    order = sorted(range(len(texts)), key=lambda i: (len(texts[i]), i))
    out: np.ndarray | None = None
    with torch.inference_mode(), _autocast(adapter.device, precision):
        for s in tqdm(range(0, len(texts), batch_size), desc=_bar_name(progress, "encode captions"), unit="batch",
                      disable=not progress, leave=False):
            idx = order[s:s + batch_size]
            emb = adapter.encode_texts([texts[i] for i in idx]).float().cpu().numpy()
            if out is None:
                out = np.zeros((len(texts), emb.shape[1]), dtype=np.float32)
            out[idx] = emb
    return out if out is not None else np.zeros((0, 0), dtype=np.float32)


# ---------------------------------------------------------------- scoring

def _option_types(item, n_options: int) -> list[str]:
    return list(item.caption_types) if item.caption_types else [infer_option_type(c) for c in item.captions]


def score_mcq(spec: TaskSpec, items, media_index, option_index, media_emb, text_emb, *, seed: int,
              bootstrap_samples: int, device=None) -> tuple[dict, dict, dict]:
    """-> (metrics, breakdowns, per-item columns) for an MCQ or binary-MCQ task."""
    scores = metrics.mcq_scores(media_emb, text_emb, media_index, option_index, device=device)
    pred = metrics.mcq_predictions(scores)
    correct = np.array([it.correct_answer for it in items])
    is_correct = pred == correct
    types = [_option_types(it, len(it.captions)) for it in items]
    chosen = metrics.chosen_types(pred, types)
    # binary files have no template column: group by the type of the correct option instead
    groups = [it.template or types[i][it.correct_answer] for i, it in enumerate(items)]
    res = {"accuracy": metrics.mean_with_ci(is_correct, n_samples=bootstrap_samples, seed=seed),
           "accuracy_tie_aware": metrics.mean_with_ci(metrics.tie_aware_credit(scores, correct),
                                                      n_samples=bootstrap_samples, seed=seed)}
    by_template = metrics.accuracy_by_group(is_correct, groups, n_samples=bootstrap_samples, seed=seed)
    if spec.kind == "mcq" or all(it.template for it in items):  # binary files with a template column
        for tmpl, m in by_template.items():
            res[f"accuracy_{tmpl}"] = {k: m[k] for k in ("value", "ci_low", "ci_high")}
    breakdowns = {
        "accuracy_by_template": by_template,
        "wrong_answer_type_shares": metrics.wrong_answer_type_shares(pred, correct, types),
        "confusion": metrics.confusion_table(pred, correct, groups, types),
    }
    columns = {"correct_answer": correct, "predicted": pred, "is_correct": is_correct,
               "template": [it.template for it in items], "chosen_type": chosen, "scores": scores,
               "ties": int(metrics.tied_questions(scores).sum())}
    return res, breakdowns, columns


def score_retrieval(media_emb, text_emb, text_owner, *, seed: int, bootstrap_samples: int,
                    device=None) -> tuple[dict, np.ndarray]:
    """-> (metrics, t2i_rank per caption occurrence)."""
    t2i, ranks = metrics.text_to_image_hits(text_emb, media_emb, text_owner, RETRIEVAL_KS, device=device)
    i2t = metrics.image_to_text_hits(media_emb, text_emb, text_owner, RETRIEVAL_KS, device=device)
    res = {}
    for k in RETRIEVAL_KS:
        res[f"t2i_recall@{k}"] = metrics.mean_with_ci(t2i[k], n_samples=bootstrap_samples, seed=seed)
    for k in RETRIEVAL_KS:
        res[f"i2t_recall@{k}"] = metrics.mean_with_ci(i2t[k], n_samples=bootstrap_samples, seed=seed)
    return res, ranks


# ---------------------------------------------------------------- the task loop

def _resolve_model(model, device, precision):
    from negbench.models.base import load_model

    if isinstance(model, str):
        return load_model(model, device=device, precision=precision)
    for attr in ("encode_images", "encode_texts", "preprocess", "identity"):
        if not hasattr(model, attr):
            raise ConfigError(f"model must be a model string or a ModelAdapter; {type(model).__name__} "
                              f"has no {attr}")
    return model


def _model_string(model) -> str:
    return model if isinstance(model, str) else getattr(model, "model_string", type(model).__name__)


def _drop_failed_media(spec, data: TaskData, paths: list[Path], failed: dict[int, str], skip_invalid: bool):
    """Undecodable media: error naming the first row using it, or (skip_invalid) skip its rows."""
    bad = {paths[i]: reason for i, reason in failed.items()}
    kept = []
    for it in data.items:
        full = Path(os.path.abspath(data.media_path(it.media)))
        if full in bad:
            err = TaskFileError(data.path, it.row, _path_column_name(data.path), bad[full])
            if not skip_invalid:
                raise err
            data.skipped.append(err.as_record())
        else:
            kept.append(it)
    data.items = kept


def _path_column_name(path: Path) -> str:
    import csv

    with open(path, newline="", encoding="utf-8") as f:
        header = [h.strip() for h in next(csv.reader(f), [])]
    return next((c for c in PATH_COLUMNS if c in header), PATH_COLUMNS[0])


def evaluate_task(spec: TaskSpec, model, *, data_root=None, results_dir=None, batch_size: int = 64,
                  cache_dir=None, skip_invalid: bool = False, seed: int = 0, bootstrap_samples: int = 1000,
                  skip_existing: bool = False, num_workers: int = 0, frames: int = 4, progress: bool = True,
                  device: str | None = None, precision: str | None = None, limit: int | None = None) -> dict:
    """Evaluate one task with one model; returns the results dict (and writes it when results_dir).

    model: a model string (loaded with `device`/`precision`) or an already-loaded ModelAdapter.
    cache_dir: embedding cache root (see default_cache_dir()); None, or an adapter whose
    identity() is None, disables caching. skip_existing: return the stored results JSON of
    this model x task instead of recomputing (needs results_dir). precision: autocast dtype
    (fp32|fp16|bf16); default: the adapter's own `precision` attribute, else fp32.
    limit: evaluate only the first N valid items (recorded as results["limit"]; a stored
    result is reused by skip_existing only when its limit is the same).
    """
    from negbench.evaluation import generative
    if generative.handles(model):  # generative VLMs (vlm:...) are scored by their own protocols
        return generative.evaluate_task(spec, model, **generative.engine_kwargs(locals()))
    from negbench.evaluation import selection  # i17: kinds scored outside this loop, same schema
    if selection.handles(spec):
        return selection.run_special(spec, model, data_root=data_root, results_dir=results_dir, batch_size=batch_size,
                                     skip_invalid=skip_invalid, seed=seed, bootstrap_samples=bootstrap_samples,
                                     skip_existing=skip_existing, num_workers=num_workers, progress=progress,
                                     device=device, precision=precision)
    t_start = time.perf_counter()
    model_string = _model_string(model)
    json_path = parquet_path = None
    fingerprint = None
    if results_dir is not None:
        json_path, parquet_path = result_paths(results_dir, model_string, spec.name)
        fingerprint = eval_fingerprint(spec, model, data_root=data_root, seed=seed,
                                       bootstrap_samples=bootstrap_samples, precision=precision,
                                       frames=frames, skip_invalid=skip_invalid)
        fingerprint["limit"] = limit  # a quick --limit run never stands in for the full one
        existing = current_result(json_path, parquet_path, fingerprint) if skip_existing else None
        if existing is not None:
            log.info("%s: results exist for the same inputs, skipping (%s)", spec.name, json_path)
            return {**existing, "results_file": str(json_path)}
    if frames < 1:
        raise ConfigError(f"frames must be >= 1, got {frames}")
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")

    task_file = spec.resolve_file(data_root)
    media_root = spec.resolve_media_root(data_root)
    data = read_task_file(task_file, spec.kind, media_root, skip_invalid=skip_invalid,
                          path_map=spec.path_map_pairs(), exclude_suspicious=spec.exclude_suspicious)
    if limit is not None:
        data.items = data.items[:max(0, int(limit))]
    if not data.items:
        raise NegbenchError(f"{task_file}: no valid rows to evaluate ({len(data.skipped)} skipped)")

    adapter = _resolve_model(model, device, precision or "fp32")
    precision = precision or getattr(adapter, "precision", "fp32")
    identity = adapter.identity()
    use_cache = cache_dir is not None and identity is not None
    preprocess_id = adapter.preprocess_id() if hasattr(adapter, "preprocess_id") else type(adapter).__name__
    media_kind = f"video:{frames}" if spec.modality == "video" else "image"

    # ---- unique media, encoded once (cache, then model)
    t0 = time.perf_counter()
    media_paths = list(dict.fromkeys(Path(os.path.abspath(data.media_path(it.media))) for it in data.items))
    media_cache = EmbeddingCache(cache_dir, ["media", identity, preprocess_id, precision, media_kind]) \
        if use_cache else None
    keys = [media_key(p) for p in media_paths] if use_cache else [str(p) for p in media_paths]
    media_emb, media_hits, media_misses, failed = _cached_encode(
        keys, lambda miss: encode_media(adapter, [media_paths[i] for i in miss], modality=spec.modality,
                                        frames=frames, batch_size=batch_size, num_workers=num_workers,
                                        precision=precision, progress=progress and spec.name), media_cache)
    if failed:
        _drop_failed_media(spec, data, media_paths, failed, skip_invalid)
        if not data.items:
            raise NegbenchError(f"{task_file}: no valid rows to evaluate ({len(data.skipped)} skipped)")
        keep = [i for i in range(len(media_paths)) if i not in failed]
        media_paths, media_emb = [media_paths[i] for i in keep], media_emb[keep]
    media_pos = {p: i for i, p in enumerate(media_paths)}
    item_media = np.array([media_pos[Path(os.path.abspath(data.media_path(it.media)))] for it in data.items])
    t_media = time.perf_counter() - t0

    # ---- unique captions
    t0 = time.perf_counter()
    captions = list(dict.fromkeys(c for it in data.items for c in it.captions))
    text_cache = EmbeddingCache(cache_dir, ["text", identity, precision]) if use_cache else None
    text_emb, text_hits, text_misses, _ = _cached_encode(
        [text_key(c) for c in captions],
        lambda miss: (encode_texts(adapter, [captions[i] for i in miss], batch_size=batch_size,
                                   precision=precision, progress=progress and spec.name), {}), text_cache)
    cap_pos = {c: i for i, c in enumerate(captions)}
    t_text = time.perf_counter() - t0

    # ---- scoring
    t0 = time.perf_counter()
    score_device = getattr(adapter, "device", None)
    abs_paths = [str(media_paths[i]) for i in item_media]
    breakdowns = cols = None
    if spec.kind in ("mcq", "binary-mcq"):
        option_index = np.array([[cap_pos[c] for c in it.captions] for it in data.items])
        res, breakdowns, cols = score_mcq(spec, data.items, item_media, option_index, media_emb, text_emb,
                                          seed=seed, bootstrap_samples=bootstrap_samples, device=score_device)
        table = {"row": [it.row for it in data.items], "media": [it.media for it in data.items],
                 "media_path": abs_paths, "correct_answer": cols["correct_answer"],
                 "predicted": cols["predicted"], "is_correct": cols["is_correct"],
                 "template": cols["template"], "chosen_type": cols["chosen_type"]}
        for j in range(option_index.shape[1]):
            table[f"caption_{j}"] = [it.captions[j] for it in data.items]
        table["scores"] = [list(map(float, s)) for s in cols["scores"]]
    else:
        occ_caption = [cap_pos[c] for it in data.items for c in it.captions]
        occ_owner = np.array([item_media[i] for i, it in enumerate(data.items) for _ in it.captions])
        res, ranks = score_retrieval(media_emb, text_emb[occ_caption], occ_owner, seed=seed,
                                     bootstrap_samples=bootstrap_samples, device=score_device)
        table = {"row": [it.row for it in data.items for _ in it.captions],
                 "media": [it.media for it in data.items for _ in it.captions],
                 "media_path": [abs_paths[i] for i, it in enumerate(data.items) for _ in it.captions],
                 "caption": [c for it in data.items for c in it.captions], "t2i_rank": ranks}
    t_score = time.perf_counter() - t0

    result = {
        "schema_version": SCHEMA_VERSION, "negbench_version": __version__, "git_hash": git_hash(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "model": model_string, "model_identity": identity,
        "task": {**spec.to_dict(), "resolved_file": str(Path(task_file).resolve())},
        "seed": seed, "bootstrap_samples": bootstrap_samples, "chance": spec.chance, "limit": limit,
        "precision": precision, "frames": frames if spec.modality == "video" else None,
        "counts": {"items": len(data.items), "skipped": len(data.skipped),
                   "unique_media": len(media_paths), "unique_captions": len(captions)},
        "skipped_rows": data.skipped,
        "path_rewrite": data.path_rewrite,
        "metrics": res,
        "predictions_file": f"{safe_file_stem(spec.name)}.parquet",
        "timings": {"total_s": round(time.perf_counter() - t_start, 4), "encode_media_s": round(t_media, 4),
                    "encode_text_s": round(t_text, 4), "score_s": round(t_score, 4)},
        "cache": {"media_hits": media_hits, "media_misses": media_misses,
                  "text_hits": text_hits, "text_misses": text_misses},
    }
    if breakdowns is not None:
        result["breakdowns"] = breakdowns
    _add_audit(result, spec, data, cols)
    if fingerprint is not None:
        result["fingerprint"] = fingerprint
    if json_path is not None:
        _write_suspicious_sidecar(json_path, data)
        _write_parquet(parquet_path, table)
        write_json_atomic(json_path, result)  # last: its presence means "this task is done"
        result["results_file"] = str(json_path)
    return result


def _add_audit(result: dict, spec: TaskSpec, data: TaskData, mcq_columns: dict | None) -> None:
    """Ties (MCQ kinds), suspicious rows and excluded rows into the results' counts."""
    from negbench.inputs.audit import suspicious_rows

    counts = result["counts"]
    counts["suspicious"] = suspicious_rows(data.suspicious)
    if spec.exclude_suspicious:
        counts["excluded_suspicious"] = suspicious_rows(data.excluded)
    if mcq_columns is not None:
        counts["ties"] = mcq_columns["ties"]
        if counts["ties"] > 0.001 * counts["items"]:
            log.warning("%s: %d of %d questions have tied top scores; `accuracy` counts a tie as option 0 "
                        "(the published rule), `accuracy_tie_aware` = %.4f", spec.name, counts["ties"],
                        counts["items"], result["metrics"]["accuracy_tie_aware"]["value"])


def _write_suspicious_sidecar(json_path: Path, data: TaskData) -> None:
    """TASK.suspicious.csv beside the results: every flagged row, for a reviewer to read."""
    from negbench.inputs.audit import write_findings_csv

    write_findings_csv(json_path.with_name(json_path.stem + ".suspicious.csv"), data.suspicious, data.excluded)


def _write_parquet(path: Path, table: dict) -> None:
    import pandas as pd

    df = pd.DataFrame(table)
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False, engine="pyarrow")


def evaluate_tasks(specs: Sequence[TaskSpec], model, **kwargs) -> list[dict]:
    """evaluate_task for each spec; a model string is loaded once (and not at all when every
    result already exists and skip_existing is set)."""
    results = []
    adapter = model
    for spec in specs:
        if isinstance(adapter, str) and not _result_exists(spec, adapter, kwargs):
            adapter = _resolve_model(adapter, kwargs.get("device"), kwargs.get("precision") or "fp32")
        results.append(evaluate_task(spec, adapter, **kwargs))
    return results


def _result_exists(spec: TaskSpec, model_string: str, kwargs: dict) -> bool:
    if not kwargs.get("skip_existing") or kwargs.get("results_dir") is None:
        return False
    settings = {k: v for k, v in kwargs.items() if k != "results_dir"}
    return result_is_current(spec, model_string, kwargs["results_dir"], **settings)


def result_is_current(spec: TaskSpec, model_string: str, results_dir, **settings) -> bool:
    """Whether evaluate_task(spec, model_string, results_dir=..., skip_existing=True, **settings)
    would reuse the stored result (same fingerprint) instead of computing."""
    j, p = result_paths(results_dir, model_string, spec.name)
    fp = eval_fingerprint(spec, model_string, data_root=settings.get("data_root"),
                          seed=settings.get("seed", 0), bootstrap_samples=settings.get("bootstrap_samples", 1000),
                          precision=settings.get("precision"), frames=settings.get("frames", 4),
                          skip_invalid=settings.get("skip_invalid", False))
    fp["limit"] = settings.get("limit")
    return current_result(j, p, fp) is not None
