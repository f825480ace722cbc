"""--skip-existing reuses a stored result only when it was computed from the same inputs.

The fingerprint of a model x task result: the task spec, the task file's sha256, the content
of every media file it names, the model's identity (content digest of its weights, config,
tokenizer) and every setting that changes the numbers (seed, bootstrap samples, precision,
frames, skip_invalid). A stored result with another fingerprint is recomputed, and the log
says which keys differ.
"""
from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

from negbench.core.errors import NegbenchError
from negbench.core.fingerprint import differing_keys
from negbench.core.io import read_json, sha256_file
from negbench.evaluation.schema import upgrade_result

log = logging.getLogger(__name__)


def model_identity(model, model_string: str) -> str:
    """The backend's content identity of the model string (same for a string and the adapter
    loaded from it), plus what a trainer changed in place; adapters of no backend: identity()."""
    import importlib

    from negbench.models.base import parse_model_string

    try:
        backend, rest = parse_model_string(model_string)
        module = importlib.import_module(f"negbench.models.{backend}")
        ident = module.identity_of(rest)
    except (NegbenchError, ImportError, AttributeError, ValueError, OSError):
        return str(model.identity()) if not isinstance(model, str) else model_string
    tag, steps = getattr(model, "weights_tag", None), getattr(model, "train_steps", 0)
    if tag or steps:  # weights changed in place since loading
        ident += f"|tag={tag}|steps={steps}"
    return ident


def _task_media(task_file: Path, kind: str, media_root: Path) -> dict[str, Path]:
    """{media as written: its path} of every row of a task file (rows that do not parse left out)."""
    from negbench.inputs.formats import read_task_file, resolve_media
    from negbench.inputs.kinds import get_kind
    from negbench.inputs.selection import read_selection_file

    if get_kind(kind).layout == "candidates":
        items, _, root = read_selection_file(task_file, media_root, skip_invalid=True, check_media=False)
        return {m: resolve_media(m, root) for it in items for m in it.media}
    data = read_task_file(task_file, kind, media_root, skip_invalid=True, check_media=False)
    return {it.media: data.media_path(it.media) for it in data.items}


def _media_digest(task_file: Path, kind: str, media_root: Path) -> str | None:
    from negbench.core.filehash import file_digest

    try:
        media_paths = _task_media(task_file, kind, media_root)
    except NegbenchError:
        return None  # the real read reports it
    h = hashlib.blake2b(digest_size=16)
    for media in sorted(media_paths):
        path = media_paths[media]
        try:
            h.update(f"{media}\0{file_digest(path)}\n".encode())
        except OSError:
            h.update(f"{media}\0missing\n".encode())
    return h.hexdigest()


def eval_fingerprint(spec, model, *, data_root, seed: int, bootstrap_samples: int,
                     precision: str | None, frames: int, skip_invalid: bool) -> dict:
    """model: a model string or a loaded adapter (its `model_string` names it)."""
    model_string = model if isinstance(model, str) else getattr(model, "model_string", type(model).__name__)
    task_file = spec.resolve_file(data_root)
    media_root = spec.resolve_media_root(data_root)
    if precision is None:
        precision = getattr(model, "precision", "fp32") if not isinstance(model, str) else "fp32"
    return {
        "task": spec.to_dict(),
        "task_file_sha256": sha256_file(task_file) if Path(task_file).is_file() else None,
        "media_root": os.path.abspath(media_root),
        "media_digest": _media_digest(Path(task_file), spec.kind, Path(media_root)),
        "model": model_string, "model_identity": model_identity(model, model_string),
        "seed": seed, "bootstrap_samples": bootstrap_samples, "precision": precision,
        "frames": frames if spec.modality == "video" else None, "skip_invalid": skip_invalid,
    }


def current_result(json_path: Path, parquet_path: Path, fingerprint: dict) -> dict | None:
    """The stored result when it exists and was computed from `fingerprint`, else None."""
    if not (json_path.exists() and parquet_path.exists()):
        return None
    try:
        stored = read_json(json_path)
    except (OSError, ValueError):
        log.warning("%s: unreadable; recomputing", json_path)
        return None
    diff = differing_keys(stored.get("fingerprint") or {}, fingerprint)
    if diff:
        log.info("%s: stored result is stale (%s); recomputing", json_path, "; ".join(diff))
        return None
    return upgrade_result(stored)  # same numbers: an older schema is only another shape
