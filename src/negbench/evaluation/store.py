"""The one results store: where a model x task result lives, what it records, how it is written
and when `--skip-existing` may reuse it. Every model family and task kind goes through here.

- Paths: RESULTS_DIR/<model slug>/<task>.{json,parquet} (+ sidecars such as TASK.suspicious.csv).
- One unit: the Parquet and the sidecars first, the JSON last (its presence means "done"); a
  failure while writing removes what this write put there.
- One reuse rule: a stored result is reused only when it is `complete` and its fingerprint (task
  spec, task file sha256, media content, model identity, protocol settings, seed, bootstrap
  samples, precision, frames, skip_invalid, limit) equals the current one. A failed run never
  leaves a stale result of other inputs behind.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import logging
import re
from pathlib import Path
from typing import Callable, NamedTuple

from negbench import __version__
from negbench.core.fingerprint import differing_keys
from negbench.core.io import atomic_path, git_hash, read_json, safe_file_stem, write_json_atomic
from negbench.evaluation.schema import SCHEMA_VERSION, upgrade_result

log = logging.getLogger(__name__)
COMPLETE, INCOMPLETE = "complete", "incomplete"
_SLUG_WIDTH, _SLUG_HEAD = 80, 16


def model_slug(model_string: str) -> str:
    """A folder name for a model string: readable, filesystem-safe, unique. A long one keeps its
    backend (the head) and its informative end (checkpoint, model name, host), with a hash suffix."""
    slug = re.sub(r"[^A-Za-z0-9._@-]+", "_", model_string).strip("_.") or "model"
    if len(slug) > _SLUG_WIDTH or slug != model_string.replace(":", "_"):
        digest = hashlib.sha256(model_string.encode()).hexdigest()[:8]
        if len(slug) > _SLUG_WIDTH - 9:
            tail = _SLUG_WIDTH - 9 - _SLUG_HEAD - 1
            slug = f"{slug[:_SLUG_HEAD].rstrip('_.')}~{slug[-tail:].lstrip('_.')}"
        slug = f"{slug}-{digest}"
    return slug


class ResultPaths(NamedTuple):
    json: Path
    parquet: Path

    def sidecar(self, suffix: str) -> Path:
        return self.json.with_name(self.json.stem + suffix)


def result_paths(results_dir, model_string: str, task_name: str) -> ResultPaths:
    """(json, parquet) paths of one model x task result (a tuple-like pair)."""
    folder = Path(results_dir).expanduser() / model_slug(model_string)
    stem = safe_file_stem(task_name)
    return ResultPaths(folder / f"{stem}.json", folder / f"{stem}.parquet")


def result_header(*, spec, model: str, identity, task_file, cfg, precision: str) -> dict:
    """The fields every result starts with, whatever the model family and task kind."""
    return {
        "schema_version": SCHEMA_VERSION, "negbench_version": __version__, "git_hash": git_hash(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "status": COMPLETE, "model": model, "model_identity": identity,
        "task": {**spec.to_dict(), "resolved_file": str(Path(task_file).resolve())},
        "seed": cfg.seed, "bootstrap_samples": cfg.bootstrap_samples, "chance": spec.chance,
        "limit": cfg.limit, "limited": cfg.limited, "precision": precision,
        "frames": cfg.frames if spec.modality == "video" else None,
        "predictions_file": f"{safe_file_stem(spec.name)}.parquet",
    }


def is_complete(doc: dict) -> bool:
    """Results written before `status` existed were only ever written complete."""
    return doc.get("status", COMPLETE) == COMPLETE


def stored_result(paths: ResultPaths, fingerprint: dict) -> dict | None:
    """The stored result when it is complete and was computed from `fingerprint`, else None."""
    if not (paths.json.is_file() and paths.parquet.is_file()):
        return None
    try:
        stored = read_json(paths.json)
    except (OSError, ValueError):
        log.warning("%s: unreadable; recomputing", paths.json)
        return None
    if not is_complete(stored):
        log.info("%s: stored result is %s; recomputing", paths.json, stored.get("status"))
        return None
    diff = differing_keys(stored.get("fingerprint") or {}, fingerprint)
    if diff:
        log.info("%s: stored result is stale (%s); recomputing", paths.json, "; ".join(diff))
        return None
    return {**upgrade_result(stored), "results_file": str(paths.json)}


def discard_stale(paths: ResultPaths, fingerprint: dict | None) -> None:
    """Before a run that may fail: a stored result of other inputs must not outlive it (a failed
    rerun after the task file changed would leave the old numbers standing for the new file)."""
    if fingerprint is None or not paths.json.is_file():
        return
    try:
        stored = read_json(paths.json)
    except (OSError, ValueError):
        stored = {}
    if differing_keys(stored.get("fingerprint") or {}, fingerprint) or not is_complete(stored):
        for p in (paths.json, paths.parquet):
            with contextlib.suppress(OSError):
                p.unlink()


def write_result(paths: ResultPaths, result: dict, table: dict | None,
                 sidecars: dict[str, Callable[[Path], None]] | None = None) -> dict:
    """Write a result as one unit: Parquet and sidecars first, the JSON last; on any failure the
    files this write created are removed and the error goes on. Returns the result with
    `results_file` set."""
    written: list[Path] = []
    try:
        if table is not None:
            _write_parquet(paths.parquet, table)
            written.append(paths.parquet)
        for suffix, write in (sidecars or {}).items():
            write(paths.sidecar(suffix))
            written.append(paths.sidecar(suffix))
        write_json_atomic(paths.json, result)
    except BaseException:
        for p in written:
            with contextlib.suppress(OSError):
                p.unlink()
        raise
    return {**result, "results_file": str(paths.json)}


def _write_parquet(path: Path, table: dict) -> None:
    import pandas as pd

    with atomic_path(path) as tmp:
        pd.DataFrame(table).to_parquet(tmp, index=False, engine="pyarrow")


def write_run_summary(results_dir, cfg, results: list[dict], not_evaluated=(), not_applicable=()) -> Path:
    """RESULTS_DIR/results_<UTC time>.json: one file per `negbench eval` run, as lm-eval writes one
    -- the settings, the package versions, and every task's status and headline metric with the
    per-task file that holds the rest; tasks not evaluated and not applicable with their reasons."""
    import dataclasses
    import importlib.metadata as md

    from negbench.inputs.kinds import KINDS

    def version(pkg: str) -> str | None:
        try:
            return md.version(pkg)
        except md.PackageNotFoundError:
            return None

    def row(r: dict) -> dict:
        kind = r["task"].get("kind")
        key = KINDS.get(kind).headline if kind in KINDS else None
        return {"model": r["model"], "task": r["task"]["name"], "status": r.get("status", COMPLETE),
                "limited": r.get("limited", False), "n": (r.get("counts") or {}).get("items"),
                "headline": {key: r["metrics"][key]} if key in (r.get("metrics") or {}) else None,
                "results_file": r.get("results_file"), "reused": bool(r.get("reused"))}

    now = _dt.datetime.now(_dt.timezone.utc)
    doc = {"schema_version": SCHEMA_VERSION, "negbench_version": __version__, "git_hash": git_hash(),
           "created": now.isoformat(timespec="seconds"),
           "config": json.loads(json.dumps(dataclasses.asdict(cfg), default=str)),
           "versions": {p: version(p) for p in ("torch", "transformers", "open_clip_torch", "numpy")},
           "results": [row(r) for r in results],
           "not_evaluated": [{"task": t, "reason": why} for t, why in not_evaluated],
           "not_applicable": [{"task": t, "reason": why} for t, why in not_applicable]}
    path = Path(results_dir).expanduser() / f"results_{now.strftime('%Y-%m-%dT%H-%M-%S')}.json"
    write_json_atomic(path, doc)
    return path
