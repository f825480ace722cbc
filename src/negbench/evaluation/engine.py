"""The evaluation engine: task file + model -> results JSON + per-item Parquet.

What makes it fast: every unique image/video and every unique caption string of a task is
encoded exactly once, in batches (the published evaluation re-encodes the image and all
options of every question); media are decoded in DataLoader workers (overlapping the forward
pass on an accelerator, between forward passes on the CPU: see evaluation/encoding.py); captions
are batched by token length, so causal text towers run at each batch's own length (exact: see
models/openclip.py); embeddings are cached on disk keyed by model identity
+ preprocessing + file content (media) or the caption string (text); and a model
given as a string is loaded only on the first cache miss, so a fully cached run costs only
reading the task file and scoring.

Scoring is in `negbench.evaluation.metrics` (pure functions); this module gathers inputs, runs the
model, and writes outputs atomically. Results schema: docs/contracts.md.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import logging
import os
import re
import time
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from negbench import __version__
from negbench.evaluation import metrics
from negbench.evaluation.cache import EmbeddingCache, _cached_encode, media_key, text_key
from negbench.evaluation.config import EvalConfig
from negbench.evaluation.encoding import encode_media, encode_texts
from negbench.evaluation.fingerprint import current_result, eval_fingerprint
from negbench.evaluation.schema import SCHEMA_VERSION, template_accuracies
from negbench.core.errors import ConfigError, NegbenchError, TaskFileError
from negbench.inputs.formats import PATH_COLUMNS, TaskData, infer_option_type, read_task_file
from negbench.inputs.kinds import RETRIEVAL_KS
from negbench.core.io import atomic_path, git_hash, safe_file_stem, write_json_atomic
from negbench.inputs.tasks import TaskSpec

log = logging.getLogger(__name__)
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


# ---------------------------------------------------------------- scoring

def _option_types(item, n_options: int) -> list[str]:
    return list(item.caption_types) if item.caption_types else [infer_option_type(c) for c in item.captions]


def score_mcq(spec: TaskSpec, items, scores: np.ndarray, *, seed: int, bootstrap_samples: int
              ) -> tuple[dict, dict, dict]:
    """scores (N, K) of metrics.mcq_scores -> (metrics, breakdowns, per-item columns) for an MCQ
    or binary-MCQ task."""
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
    by_group = metrics.accuracy_by_group(is_correct, groups, n_samples=bootstrap_samples, seed=seed)
    per_template, breakdowns = template_accuracies(by_group, spec.task_kind.reports_templates(items))
    res.update(per_template)
    breakdowns.update(wrong_answer_type_shares=metrics.wrong_answer_type_shares(pred, correct, types),
                      confusion=metrics.confusion_table(pred, correct, groups, types))
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
    """A model string -> LazyModel (weights loaded on the first cache miss); an adapter as is."""
    from negbench.evaluation.lazy_model import LazyModel

    if isinstance(model, (str, LazyModel)):
        return model if isinstance(model, LazyModel) else LazyModel(model, device=device, precision=precision)
    for attr in ("encode_images", "encode_texts", "preprocess", "identity"):
        if not hasattr(model, attr):
            raise ConfigError(f"model must be a model string or a ModelAdapter; {type(model).__name__} "
                              f"has no {attr}")
    return model


def _loaded(model):
    """The real adapter behind a LazyModel (loading it now), or the adapter itself."""
    from negbench.evaluation.lazy_model import LazyModel

    return model.load() if isinstance(model, LazyModel) else model


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


@dataclass
class _Run:
    """What the steps of one evaluate_task call share."""

    spec: TaskSpec
    cfg: EvalConfig
    task_file: Path
    data: TaskData
    model: Any                 # a ModelAdapter or a LazyModel
    identity: str | None
    precision: str
    timings: dict = field(default_factory=dict)
    cache: dict = field(default_factory=dict)
    fingerprint: dict | None = None     # what the stored result must match for --skip-existing
    ties: int | None = None             # MCQ kinds: questions whose top score is shared

    @property
    def use_cache(self) -> bool:
        return self.cfg.cache_dir is not None and self.identity is not None


def _fingerprint(spec: TaskSpec, model, cfg: EvalConfig) -> dict | None:
    """Everything that changes this result's numbers (None when results are not written)."""
    if cfg.results_dir is None:
        return None
    fp = eval_fingerprint(spec, model, data_root=cfg.data_root, seed=cfg.seed,
                          bootstrap_samples=cfg.bootstrap_samples, precision=cfg.precision,
                          frames=cfg.frames, skip_invalid=cfg.skip_invalid)
    fp["limit"] = cfg.limit  # a quick --limit run never stands in for the full one
    return fp


def _existing_result(spec: TaskSpec, model_string: str, cfg: EvalConfig, fingerprint: dict | None) -> dict | None:
    if fingerprint is None or not cfg.skip_existing:
        return None
    json_path, parquet_path = result_paths(cfg.results_dir, model_string, spec.name)
    existing = current_result(json_path, parquet_path, fingerprint)
    if existing is None:
        return None
    log.info("%s: results exist for the same inputs, skipping (%s)", spec.name, json_path)
    return {**existing, "results_file": str(json_path)}


def _start_run(spec: TaskSpec, model, cfg: EvalConfig) -> _Run:
    """Read the task file and name the model; loads no weights."""
    task_file = spec.resolve_file(cfg.data_root)
    data = read_task_file(task_file, spec.kind, spec.resolve_media_root(cfg.data_root), skip_invalid=cfg.skip_invalid,
                          path_map=spec.path_map_pairs(), exclude_suspicious=spec.exclude_suspicious)
    if cfg.limit is not None:
        data.items = data.items[:max(0, int(cfg.limit))]
    if not data.items:
        raise NegbenchError(f"{task_file}: no valid rows to evaluate ({len(data.skipped)} skipped)")
    model = _resolve_model(model, cfg.device, cfg.precision or "fp32")
    precision = cfg.precision or getattr(model, "precision", "fp32")
    return _Run(spec, cfg, task_file, data, model, model.identity(), precision)


def _preprocess_id(run: _Run) -> str:
    from negbench.evaluation.lazy_model import preprocess_id

    return preprocess_id(run.model, run.cfg.cache_dir)


def _encode_task_media(run: _Run) -> tuple[list[Path], np.ndarray, np.ndarray]:
    """Unique media encoded once (cache, then model) -> (paths, embeddings, media row per item)."""
    t0 = time.perf_counter()
    spec, cfg, data = run.spec, run.cfg, run.data
    paths = list(dict.fromkeys(Path(os.path.abspath(data.media_path(it.media))) for it in data.items))
    cache = None
    if run.use_cache:
        media_kind = f"video:{cfg.frames}" if spec.modality == "video" else "image"
        cache = EmbeddingCache(cfg.cache_dir, ["media", run.identity, _preprocess_id(run), run.precision, media_kind])
    emb, hits, misses, failed = _cached_encode(
        [media_key(p) for p in paths] if cache is not None else [str(p) for p in paths],
        lambda miss: encode_media(_loaded(run.model), [paths[i] for i in miss], modality=spec.modality,
                                  frames=cfg.frames, batch_size=cfg.batch_size, num_workers=cfg.workers,
                                  precision=run.precision, progress=cfg.progress and spec.name), cache)
    if failed:
        _drop_failed_media(spec, data, paths, failed, cfg.skip_invalid)
        if not data.items:
            raise NegbenchError(f"{run.task_file}: no valid rows to evaluate ({len(data.skipped)} skipped)")
        keep = [i for i in range(len(paths)) if i not in failed]
        paths, emb = [paths[i] for i in keep], emb[keep]
    pos = {p: i for i, p in enumerate(paths)}
    item_media = np.array([pos[Path(os.path.abspath(data.media_path(it.media)))] for it in data.items])
    run.cache.update(media_hits=hits, media_misses=misses)
    run.timings["encode_media_s"] = round(time.perf_counter() - t0, 4)
    return paths, emb, item_media


def _encode_task_captions(run: _Run) -> tuple[list[str], np.ndarray]:
    """Unique caption strings encoded once (cache, then model) -> (captions, embeddings)."""
    t0 = time.perf_counter()
    captions = list(dict.fromkeys(c for it in run.data.items for c in it.captions))
    cache = EmbeddingCache(run.cfg.cache_dir, ["text", run.identity, run.precision]) if run.use_cache else None
    emb, hits, misses, _ = _cached_encode(
        [text_key(c) for c in captions],
        lambda miss: (encode_texts(_loaded(run.model), [captions[i] for i in miss], batch_size=run.cfg.batch_size,
                                   precision=run.precision, progress=run.cfg.progress and run.spec.name), {}), cache)
    run.cache.update(text_hits=hits, text_misses=misses)
    run.timings["encode_text_s"] = round(time.perf_counter() - t0, 4)
    return captions, emb


def score_choice_task(run: _Run, media_paths, media_emb, item_media, captions, text_emb):
    """-> (metrics, breakdowns, per-item table) of an MCQ or binary-MCQ task."""
    items = run.data.items
    cap_pos = {c: i for i, c in enumerate(captions)}
    option_index = np.array([[cap_pos[c] for c in it.captions] for it in items])
    scores = metrics.mcq_scores(media_emb, text_emb, item_media, option_index,
                                device=getattr(run.model, "device", None))
    res, breakdowns, cols = score_mcq(run.spec, items, scores, seed=run.cfg.seed,
                                      bootstrap_samples=run.cfg.bootstrap_samples)
    run.ties = cols["ties"]
    table = {"row": [it.row for it in items], "media": [it.media for it in items],
             "media_path": [str(media_paths[i]) for i in item_media],
             **{k: cols[k] for k in ("correct_answer", "predicted", "is_correct", "template", "chosen_type")}}
    for j in range(option_index.shape[1]):
        table[f"caption_{j}"] = [it.captions[j] for it in items]
    table["scores"] = [list(map(float, s)) for s in cols["scores"]]
    return res, breakdowns, table


def score_retrieval_task(run: _Run, media_paths, media_emb, item_media, captions, text_emb):
    """-> (metrics, None, per-caption table) of a retrieval task."""
    items = run.data.items
    cap_pos = {c: i for i, c in enumerate(captions)}
    occ_caption = [cap_pos[c] for it in items for c in it.captions]
    occ_item = [i for i, it in enumerate(items) for _ in it.captions]
    res, ranks = score_retrieval(media_emb, text_emb[occ_caption], item_media[occ_item], seed=run.cfg.seed,
                                 bootstrap_samples=run.cfg.bootstrap_samples, device=getattr(run.model, "device", None))
    table = {"row": [items[i].row for i in occ_item], "media": [items[i].media for i in occ_item],
             "media_path": [str(media_paths[item_media[i]]) for i in occ_item],
             "caption": [c for it in items for c in it.captions], "t2i_rank": ranks}
    return res, None, table


def _result_json(run: _Run, model_string: str, res: dict, breakdowns, n_media: int, n_captions: int,
                 total_s: float) -> dict:
    spec, cfg = run.spec, run.cfg
    result = {
        "schema_version": SCHEMA_VERSION, "negbench_version": __version__, "git_hash": git_hash(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "model": model_string, "model_identity": run.identity,
        "task": {**spec.to_dict(), "resolved_file": str(Path(run.task_file).resolve())},
        "seed": cfg.seed, "bootstrap_samples": cfg.bootstrap_samples, "chance": spec.chance, "limit": cfg.limit,
        "precision": run.precision, "frames": cfg.frames if spec.modality == "video" else None,
        "counts": {"items": len(run.data.items), "skipped": len(run.data.skipped),
                   "unique_media": n_media, "unique_captions": n_captions},
        "skipped_rows": run.data.skipped,
        "path_rewrite": run.data.path_rewrite,
        "metrics": res,
        "predictions_file": f"{safe_file_stem(spec.name)}.parquet",
        "timings": {"total_s": round(total_s, 4), **run.timings},
        "cache": {k: run.cache[k] for k in ("media_hits", "media_misses", "text_hits", "text_misses")},
    }
    if breakdowns is not None:
        result["breakdowns"] = breakdowns
    _add_audit(result, run)
    if run.fingerprint is not None:
        result["fingerprint"] = run.fingerprint
    return result


def _add_audit(result: dict, run: _Run) -> None:
    """Ties (MCQ kinds), suspicious rows and excluded rows into the results' counts."""
    from negbench.inputs.audit import suspicious_rows

    counts, data = result["counts"], run.data
    counts["suspicious"] = suspicious_rows(data.suspicious)
    if run.spec.exclude_suspicious:
        counts["excluded_suspicious"] = suspicious_rows(data.excluded)
    if run.ties is not None:
        counts["ties"] = run.ties
        if counts["ties"] > 0.001 * counts["items"]:
            log.warning("%s: %d of %d questions have tied top scores; `accuracy` counts a tie as option 0 "
                        "(the published rule), `accuracy_tie_aware` = %.4f", run.spec.name, counts["ties"],
                        counts["items"], result["metrics"]["accuracy_tie_aware"]["value"])


def _write_suspicious_sidecar(json_path: Path, data: TaskData) -> None:
    """TASK.suspicious.csv beside the results: every flagged row, for a reviewer to read."""
    from negbench.inputs.audit import write_findings_csv

    write_findings_csv(json_path.with_name(json_path.stem + ".suspicious.csv"), data.suspicious, data.excluded)


def _dispatch_special(spec: TaskSpec, model, cfg: EvalConfig) -> dict | None:
    """Generative VLMs and the kinds scored outside this loop (t2i-selection, generative-only
    tasks) have their own modules; they return the same results schema."""
    from negbench.evaluation import generative, selection

    settings = {**dataclasses.asdict(cfg), "num_workers": cfg.workers}
    if generative.handles(model):  # vlm:... models, scored by their own protocols
        return generative.evaluate_task(spec, model, **generative.engine_kwargs(settings))
    if selection.handles(spec):
        keep = ("data_root", "results_dir", "batch_size", "skip_invalid", "seed", "bootstrap_samples",
                "skip_existing", "num_workers", "progress", "device", "precision")
        return selection.run_special(spec, model, **{k: settings[k] for k in keep})
    return None


def evaluate_task(spec: TaskSpec, model, config: EvalConfig | None = None, **overrides) -> dict:
    """Evaluate one task with one model; returns the results dict (and writes it when results_dir).

    model: a model string (loaded with config.device / precision on the first embedding that
    is not cached: a fully cached run loads no weights), a LazyModel, or a loaded ModelAdapter;
    an adapter whose identity() is None is never cached. config: EvalConfig (default settings
    when None); overrides: EvalConfig fields to replace, e.g. batch_size=32.
    """
    cfg = (config or EvalConfig()).with_overrides(**overrides)
    special = _dispatch_special(spec, model, cfg)
    if special is not None:
        return special
    t_start = time.perf_counter()
    model_string = _model_string(model)
    fingerprint = _fingerprint(spec, model, cfg)
    existing = _existing_result(spec, model_string, cfg, fingerprint)
    if existing is not None:
        return existing
    run = _start_run(spec, model, cfg)
    run.fingerprint = fingerprint
    media_paths, media_emb, item_media = _encode_task_media(run)
    captions, text_emb = _encode_task_captions(run)
    t0 = time.perf_counter()
    res, breakdowns, table = spec.task_kind.score_function()(run, media_paths, media_emb, item_media, captions, text_emb)
    run.timings["score_s"] = round(time.perf_counter() - t0, 4)
    result = _result_json(run, model_string, res, breakdowns, len(media_paths), len(captions),
                          time.perf_counter() - t_start)
    if cfg.results_dir is not None:
        json_path, parquet_path = result_paths(cfg.results_dir, model_string, spec.name)
        _write_suspicious_sidecar(json_path, run.data)
        _write_parquet(parquet_path, table)
        write_json_atomic(json_path, result)  # last: its presence means "this task is done"
        result["results_file"] = str(json_path)
    return result


def _write_parquet(path: Path, table: dict) -> None:
    import pandas as pd

    df = pd.DataFrame(table)
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False, engine="pyarrow")


def evaluate_tasks(specs: Sequence[TaskSpec], model, config: EvalConfig | None = None, **overrides) -> list[dict]:
    """evaluate_task for each spec; a model string is loaded once, on the first embedding that is
    not cached (so not at all when every result exists under skip_existing, or all is cached)."""
    cfg = (config or EvalConfig()).with_overrides(**overrides)
    shared = _resolve_model(model, cfg.device, cfg.precision or "fp32")
    return [evaluate_task(spec, shared, cfg) for spec in specs]


def result_is_current(spec: TaskSpec, model_string: str, results_dir, **settings) -> bool:
    """Whether evaluate_task(spec, model_string, results_dir=..., skip_existing=True, **settings)
    would reuse the stored result (same fingerprint) instead of computing."""
    cfg = EvalConfig().with_overrides(results_dir=results_dir, **settings)
    j, p = result_paths(results_dir, model_string, spec.name)
    return current_result(j, p, _fingerprint(spec, model_string, cfg)) is not None
