"""The outputs of a model that embeds (capability `embed`): every unique medium and every unique
caption of a task encoded once.

What makes it fast: the published evaluation re-encodes the image and all options of every
question; here each unique image/video and caption string is encoded exactly once, in batches.
Media are decoded in DataLoader workers (evaluation/encoding.py), captions are batched by token
length, and embeddings are cached on disk keyed by model identity + preprocessing + file content
(media) or the caption string (text). A model given as a string is loaded only on the first cache
miss, so a fully cached run costs only reading the task file and scoring.

Under torchrun (or with --shard i/n) the missing inputs are cut into the batches one process
would run and whole batches are dealt to the ranks (evaluation/distributed.py): each rank encodes
and caches its batches, the embeddings are all-gathered, and every rank scores the same numbers.

Embeddings must be finite: a NaN or infinite embedding is an error naming the model, the task and
the first item that uses it (never a prediction: argmax over NaN scores picks option 0, which is
the correct one in every published MCQ row).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from negbench.core.errors import NegbenchError, TaskFileError
from negbench.evaluation.cache import EmbeddingCache, media_key, text_key
from negbench.evaluation.config import EMBED_BATCH_SIZE
from negbench.evaluation.distributed import batches, encoder_calls, from_rank0, gather, my_batches, ranks_for
from negbench.evaluation.encoding import encode_media, encode_texts
from negbench.evaluation.lazy_model import loaded
from negbench.evaluation.run import NonFiniteScores, TaskRun, captions_of, media_of
from negbench.inputs.formats import PATH_COLUMNS


@dataclass
class Embeddings:
    """Unique media and captions of a task with their embeddings, and which ones each item uses."""

    media_paths: list[Path]
    media_emb: np.ndarray
    item_media: list[tuple[int, ...]]     # per item: rows of media_emb (one, or a selection's candidates)
    captions: list[str]
    text_emb: np.ndarray
    # (N, K) option scores of a choice task computed already (evaluation/rescore.py: the near ties'
    # rows scored by the fp32 model); None: the scorer computes them from the embeddings
    choice_scores: np.ndarray | None = None

    def caption_index(self) -> dict[str, int]:
        return {c: i for i, c in enumerate(self.captions)}

    def first_media(self) -> np.ndarray:
        """The one medium of each item (MCQ, retrieval)."""
        return np.array([m[0] for m in self.item_media], dtype=np.int64)


def embed_task(run: TaskRun) -> Embeddings:
    media_paths, media_emb = _encode_task_media(run)
    captions, text_emb = _encode_task_captions(run)
    pos = {p: i for i, p in enumerate(media_paths)}
    item_media = [tuple(pos[run.media_file(m)] for m in media_of(it)) for it in run.data.items]
    out = Embeddings(media_paths, media_emb, item_media, captions, text_emb)
    _check_finite(run, out)
    return out


def _media_namespace(run: TaskRun) -> list[str]:
    from negbench.evaluation.lazy_model import preprocess_id

    media_kind = f"video:{run.cfg.frames}" if run.spec.modality == "video" else "image"
    return ["media", run.identity, preprocess_id(run.model, run.cfg.cache_dir), run.precision, media_kind]


def _use_cache(run: TaskRun) -> bool:
    return run.cfg.cache_dir is not None and run.identity is not None


def _encode_task_media(run: TaskRun) -> tuple[list[Path], np.ndarray]:
    """Unique media encoded once (cache, then model); undecodable ones dropped with their rows."""
    t0 = time.perf_counter()
    spec, cfg, data = run.spec, run.cfg, run.data
    paths = list(dict.fromkeys(run.media_file(m) for it in data.items for m in media_of(it)))
    cache = EmbeddingCache(cfg.cache_dir, _media_namespace(run)) if _use_cache(run) else None
    per_input = cfg.frames if spec.modality == "video" else 1  # forward passes of one medium
    emb, hits, misses, failed = _encode_unique(
        run, "media", [media_key(p) for p in paths] if cache is not None else [str(p) for p in paths], cache,
        plan=lambda units: (list(units), dict.fromkeys(units, per_input)),
        encode=lambda idx: encode_media(loaded(run.model), [paths[i] for i in idx], modality=spec.modality,
                                        frames=cfg.frames, batch_size=cfg.batch_for(EMBED_BATCH_SIZE),
                                        num_workers=cfg.workers, precision=run.precision,
                                        progress=cfg.progress and spec.name))
    if failed:
        _drop_failed_media(run, {paths[i]: reason for i, reason in failed.items()})
        keep = [i for i in range(len(paths)) if i not in failed]
        paths, emb = [paths[i] for i in keep], emb[keep]
    run.cache.update(media_hits=hits, media_misses=misses)
    run.timings["encode_media_s"] = round(time.perf_counter() - t0, 4)
    return paths, emb


def _encode_task_captions(run: TaskRun) -> tuple[list[str], np.ndarray]:
    """Unique caption strings encoded once (cache, then model)."""
    t0 = time.perf_counter()
    cfg = run.cfg
    captions = list(dict.fromkeys(c for it in run.data.items for c in captions_of(it)))
    cache = EmbeddingCache(cfg.cache_dir, ["text", run.identity, run.precision]) if _use_cache(run) else None

    def plan(units):  # encode_texts' own order (by token length), so its batches are the planned ones
        lengths = loaded(run.model).text_lengths([captions[i] for i in units])
        return [units[k] for k in sorted(range(len(units)), key=lambda k: (lengths[k], k))], \
            dict(zip(units, lengths))

    emb, hits, misses, _ = _encode_unique(
        run, "captions", [text_key(c) for c in captions], cache, plan=plan,
        encode=lambda idx: (encode_texts(loaded(run.model), [captions[i] for i in idx],
                                         batch_size=cfg.batch_for(EMBED_BATCH_SIZE), precision=run.precision,
                                         progress=cfg.progress and run.spec.name), {}))
    run.cache.update(text_hits=hits, text_misses=misses)
    run.timings["encode_text_s"] = round(time.perf_counter() - t0, 4)
    return captions, emb


def _encode_unique(run: TaskRun, what: str, keys: list[str], cache: EmbeddingCache | None, *, plan, encode):
    """(embeddings (n, D), cache hits, misses, {index: reason} failed) of n unique inputs: the
    cache's, and the misses encoded by the ranks (evaluation/distributed.py; one process: all of them).

    plan(units) -> (units in encoding order, {unit: cost}): the order in which one process would
    batch them, and what each costs (frames per medium, tokens per caption). encode(indices) -> (embeddings, {position: reason}).
    """
    ranks = ranks_for(run.cfg)
    batch_size = run.cfg.batch_for(EMBED_BATCH_SIZE)
    emb, found = from_rank0(ranks, lambda: _lookup(cache, keys))
    missing = np.flatnonzero(~found)

    def compute() -> tuple[np.ndarray, np.ndarray, dict]:
        if not len(missing):
            return np.zeros(0, np.int64), np.zeros((0, 0), np.float32), {}
        # a shard plans over all inputs, so its part does not depend on what others have cached
        units = list(range(len(keys))) if ranks.is_shard else missing.tolist()
        order, cost = plan(units)
        planned = batches(order, batch_size)
        mine = [[i for i in b if not found[i]] for b in my_batches(ranks, planned, [sum(cost[i] for i in b)
                                                                                     for b in planned])]
        return _encode_calls(encoder_calls(mine, batch_size), keys, encode, cache)

    parts = gather(ranks, compute)
    run.counts.setdefault("computed_by_rank", {})[what] = [len(p[0]) for p in parts]
    failed: dict[int, str] = {}
    for idx, new, bad in parts:
        failed.update(bad)
        if not len(idx):
            continue
        if emb is None:
            emb = np.zeros((len(keys), new.shape[1]), dtype=np.float32)
        elif new.shape[1] != emb.shape[1]:
            raise NegbenchError(f"cached embeddings have width {emb.shape[1]} but the model now gives "
                                f"{new.shape[1]}: its identity missed a change; clear {cache.dir}")
        emb[idx] = new
    if emb is None:
        emb = np.zeros((len(keys), 0), dtype=np.float32)
    return emb, int(found.sum()), int(len(missing)), failed


def _lookup(cache: EmbeddingCache | None, keys: list[str]):
    return cache.get(keys) if cache is not None else (None, np.zeros(len(keys), dtype=bool))


def _encode_calls(calls: list[list[int]], keys: list[str], encode, cache: EmbeddingCache | None):
    """This rank's part: (indices encoded, their embeddings, {index: reason} undecodable); the
    cache gains each call's finite embeddings as soon as it is done (a killed run resumes there)."""
    done, rows, failed = [], [], {}
    for call in calls:
        new, bad = encode(call)
        failed.update({call[k]: reason for k, reason in bad.items()})
        ok = [k for k in range(len(call)) if k not in bad]
        if not ok:
            continue
        done += [call[k] for k in ok]
        rows.append(new[ok])
        if cache is not None:  # a non-finite embedding is an error downstream; never keep it
            keep = [k for k in ok if np.isfinite(new[k]).all()]
            cache.put([keys[call[k]] for k in keep], new[keep])
    if not rows:
        return np.zeros(0, np.int64), np.zeros((0, 0), np.float32), failed
    return np.array(done, dtype=np.int64), np.concatenate(rows), failed


def _drop_failed_media(run: TaskRun, bad: dict[Path, str]) -> None:
    """Undecodable media: error naming the first row using one, or (skip_invalid) skip its rows."""
    data, kept = run.data, []
    column = _path_column_name(data.path, run.spec.task_kind.layout)
    for it in data.items:
        reason = next((bad[p] for p in map(run.media_file, media_of(it)) if p in bad), None)
        if reason is None:
            kept.append(it)
            continue
        err = TaskFileError(data.path, it.row, column, reason)
        if not run.cfg.skip_invalid:
            raise err
        data.skipped.append(err.as_record())
    data.items = kept
    if not kept:
        raise run.no_rows_error()


def _path_column_name(path: Path, layout: str) -> str:
    import csv

    if layout == "candidates":
        return "image_paths"
    with open(path, newline="", encoding="utf-8-sig") as f:
        header = [h.strip() for h in next(csv.reader(f), [])]
    return next((c for c in PATH_COLUMNS if c in header), PATH_COLUMNS[0])


def _check_finite(run: TaskRun, out: Embeddings) -> None:
    bad_media = ~np.isfinite(out.media_emb).all(axis=1) if out.media_emb.size else np.zeros(0, bool)
    bad_text = ~np.isfinite(out.text_emb).all(axis=1) if out.text_emb.size else np.zeros(0, bool)
    if not (bad_media.any() or bad_text.any()):
        return
    cap_pos = out.caption_index()
    for it, media in zip(run.data.items, out.item_media):
        if any(bad_media[m] for m in media):
            what = f"the embedding of {out.media_paths[next(m for m in media if bad_media[m])]}"
        elif any(bad_text[cap_pos[c]] for c in captions_of(it)):
            what = f"the embedding of caption {next(c for c in captions_of(it) if bad_text[cap_pos[c]])!r}"
        else:
            continue
        raise NonFiniteScores(
            f"model {run.model_name} on task {run.spec.name}: {what} (row {it.row} of {run.task_file}) is "
            f"not finite ({int(bad_media.sum())} media and {int(bad_text.sum())} caption embeddings are); "
            f"are the weights NaN? nothing was scored")
