"""The one evaluation path: any task x any model -> one result (JSON + per-item Parquet).

    task spec ──► reader (by the kind's layout) ──► items
    model ──► LazyModel / adapter ──► capabilities (embed | choose | score_options)
    engine: embed (evaluation/embed.py) or answer (evaluation/generative.py)
            ──► the kind's scorer (evaluation/scoring.py) ──► invariants ──► store (evaluation/store.py)

The engine asks the model's contract what it can do (`capabilities`), never its model string.
Invariants hold here, once, for every family and kind:
- scores are finite (a NaN checkpoint is an error naming the model, task and first bad item);
- a run in which the model answered nothing is not a result (NothingAnswered: nothing written);
- a partly failed run is written with `status: incomplete` and its failure counts, and
  `--skip-existing` never reuses it; a `--limit` run is marked `limited`;
- `--skip-existing` reuses a stored result only under the store's one reuse rule (fingerprint).
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Sequence

from negbench.core.errors import ConfigError
from negbench.evaluation import rescore, store
from negbench.evaluation.cache import EmbeddingCache, default_cache_dir  # noqa: F401  (public names)
from negbench.evaluation.encoding import encode_texts  # noqa: F401  (public: analysis/probe.py)
from negbench.evaluation.config import EvalConfig
from negbench.evaluation.distributed import from_rank0, ranks_for, result_record, shard_report
from negbench.evaluation.embed import Embeddings, embed_task
from negbench.evaluation.fingerprint import eval_fingerprint
from negbench.evaluation.generative import Answers, answer_task, protocol_settings, resolve_protocol, result_model
from negbench.evaluation.lazy_model import LazyModel, loaded
from negbench.evaluation.run import NotApplicable, NothingAnswered, TaskRun
from negbench.evaluation.scoring import Scored, score_task
from negbench.evaluation.store import model_slug, result_paths  # noqa: F401  (public names)
from negbench.inputs.tasks import TaskSpec
from negbench.models.base import CHOOSE, EMBED, SCORE_OPTIONS

log = logging.getLogger(__name__)
ANSWERING = frozenset({CHOOSE, SCORE_OPTIONS})


# ---------------------------------------------------------------- the model and its family

def settle_precision(cfg: EvalConfig) -> tuple[EvalConfig, str | None]:
    """The precision to run ('auto' -> bf16 where this device has a fast bf16 path, else fp32) and
    the one-line note saying why (recorded in the results); None keeps the adapter's own."""
    from negbench.models.base import pick_device, resolve_precision

    if cfg.precision is None:
        return cfg, None
    precision, note = resolve_precision(cfg.precision, pick_device(cfg.device))
    return (cfg if precision == cfg.precision else cfg.with_overrides(precision=precision)), note


def as_model(model, cfg: EvalConfig):
    """A model string -> LazyModel (weights loaded on first need); a LazyModel or adapter as is."""
    if isinstance(model, str):  # a '#protocol' qualifier stays in the string; loading ignores it
        cfg, _ = settle_precision(cfg)
        return LazyModel(model, device=cfg.device, precision=cfg.precision or "fp32", load_options=cfg.load_options)
    capabilities = getattr(model, "capabilities", None)
    if not capabilities:
        raise ConfigError(f"model must be a model string or an adapter implementing negbench.models.base."
                          f"ModelAdapter or models.vlm.base.GenerativeAdapter; {type(model).__name__} is neither")
    return model


def model_string(model) -> str:
    """The name results record: the canonical model string (local paths resolved, models/names.py),
    so the same weights named by a relative and an absolute path share one result folder and row."""
    from negbench.models.names import canonical_model_string

    given = model if isinstance(model, str) else getattr(model, "model_string", type(model).__name__)
    return canonical_model_string(given)


def answers_questions(model) -> bool:
    """Whether the engine asks this model to answer (choose / score options) instead of embed."""
    caps = model.capabilities
    return EMBED not in caps and bool(caps & ANSWERING)


def _settle(spec: TaskSpec, model, given, cfg: EvalConfig) -> tuple[EvalConfig, str]:
    """(config with the answer protocol settled, the model name results record); NotApplicable
    when the model cannot do what the task kind asks."""
    name = model_string(given)
    kind = spec.task_kind
    if not answers_questions(model):
        if spec.needs_generative:
            raise NotApplicable(f"task {spec.name!r} needs a generative model (a 'vlm:' model string); "
                                f"{name!r} is a dual encoder")
        return cfg, name
    if not kind.is_choice:
        raise NotApplicable(f"task {spec.name!r} is {spec.kind}: it ranks embeddings, which {name!r} does not "
                            f"give (generative VLMs answer questions with options)")
    bare, cfg = resolve_protocol(name, cfg)
    needed = CHOOSE if cfg.protocol == "choice" else SCORE_OPTIONS
    if needed not in model.capabilities:
        raise ConfigError(f"{bare}: the {cfg.protocol} protocol needs a model that can "
                          f"{'answer in text' if needed == CHOOSE else 'score given answers (log-probabilities)'}, "
                          f"which this backend cannot; use --protocol "
                          f"{'likelihood' if needed == CHOOSE else 'choice'}")
    return cfg, result_model(bare, cfg)


# ---------------------------------------------------------------- reading

def read_task(spec: TaskSpec, cfg: EvalConfig):
    """(config, task file, TaskData) with the first --limit valid items; the reader is the kind's
    layout's. A --limit that keeps every valid item is no limit: the returned config drops it, so the
    result is the full task's (not `limited`; the same fingerprint as a run without --limit)."""
    from negbench.inputs.formats import TaskData, read_task_file
    from negbench.inputs.selection import read_selection_file

    task_file = spec.resolve_file(cfg.data_root)
    media_root = spec.resolve_media_root(cfg.data_root)
    if spec.task_kind.layout == "candidates":
        items, skipped, root = read_selection_file(task_file, media_root, skip_invalid=cfg.skip_invalid)
        data = TaskData(spec.kind, Path(task_file), root, items=items, skipped=skipped)
    else:
        data = read_task_file(task_file, spec.kind, media_root, skip_invalid=cfg.skip_invalid,
                              path_map=spec.path_map_pairs(), exclude_suspicious=spec.exclude_suspicious)
    keep = cfg.items_to_keep(len(data.items))
    if cfg.limit is not None and keep >= len(data.items):
        log.info("%s: --limit %s keeps all %d items: evaluated as the full task", spec.name, cfg.limit,
                 len(data.items))
        return cfg.with_overrides(limit=None), task_file, data
    data.items = data.items[:keep]
    return cfg, task_file, data


def _start_run(spec: TaskSpec, model, name: str, cfg: EvalConfig, read=None) -> TaskRun:
    """The run of one task; `read`: read_task's answer when the caller has already read it."""
    cfg, task_file, data = read or read_task(spec, cfg)
    precision = cfg.precision or getattr(model, "precision", "fp32")
    run = TaskRun(spec, cfg, Path(task_file), data, model, name, model.identity(), precision,
                  protocol=cfg.protocol if answers_questions(model) else None)
    if not data.items:
        raise run.no_rows_error()
    return run


# ---------------------------------------------------------------- one task

def evaluate_task(spec: TaskSpec, model, config: EvalConfig | None = None, **overrides) -> dict:
    """Evaluate one task with one model; returns the results dict (and writes it when results_dir).

    model: a model string (loaded on first need: a fully cached run loads no weights), a
    LazyModel, or a loaded adapter (dual encoder or generative VLM). config: EvalConfig (default
    settings when None); overrides: EvalConfig fields to replace, e.g. batch_size=32.
    Raises NotApplicable when the model cannot do the task's kind, NothingAnswered when it
    answered no question, NonFiniteScores for NaN/inf outputs; in each case nothing is written.
    """
    t_start = time.perf_counter()
    cfg, precision_note = settle_precision((config or EvalConfig()).with_overrides(**overrides))
    resolved = as_model(model, cfg)
    cfg, name = _settle(spec, resolved, model, cfg)
    # a --limit is settled against the task's items before the reuse check: one that keeps them all
    # is the full run (reuses it, and is reused by it); a real subset never matches a full run
    read = read_task(spec, cfg) if cfg.limit is not None else None
    cfg = read[0] if read is not None else cfg
    paths = store.result_paths(cfg.results_dir, name, spec.name) if cfg.results_dir is not None else None
    fingerprint = _fingerprint(spec, resolved, name, cfg) if paths is not None else None
    ranks = ranks_for(cfg)  # one process, a torchrun rank, or a --shard (evaluation/distributed.py)
    if paths is not None and cfg.skip_existing:
        stored = from_rank0(ranks, lambda: store.stored_result(paths, fingerprint))
        if stored is not None:  # the caller says so (the CLI prints one line per reused result)
            log.debug("%s: results exist for the same inputs, reused (%s)", spec.name, paths.json)
            return {**stored, "reused": True}
    replaced = paths is not None and paths.json.is_file()  # a rerun without --skip-existing recomputes
    if paths is not None and ranks.writes_results:
        store.discard_stale(paths, fingerprint)
    run = _start_run(spec, resolved, name, cfg, read)
    outputs = answer_task(run) if run.protocol else embed_task(run)
    if ranks.is_shard:  # its part of the inputs is cached; the run without --shard scores
        return shard_report(run, ranks)
    rescored = None
    if not run.protocol and rescore.applies(run):   # bf16 / fp16: near ties answered at fp32
        t0 = time.perf_counter()
        outputs, *rescored = rescore.rescore_near_ties(run, outputs)
        run.timings["rescore_s"] = round(time.perf_counter() - t0, 4)
    t0 = time.perf_counter()
    scored = score_task(run, outputs)
    run.timings["score_s"] = round(time.perf_counter() - t0, 4)
    result = _result(run, scored, outputs, fingerprint, time.perf_counter() - t_start)
    if rescored is not None:
        _add_rescored(result, *rescored)
    if precision_note:
        result["precision_note"] = precision_note
        log.info("%s: %s", spec.name, precision_note)
    if paths is None or not ranks.writes_results:  # every rank scored the same numbers; rank 0 writes
        return result
    sidecars = {".suspicious.csv": _suspicious_writer(run)} if run.data.suspicious or run.data.excluded else {}
    written = store.write_result(paths, result, scored.table, sidecars)
    return {**written, "replaced": True} if replaced else written  # not in the JSON: what this call did


def _add_rescored(result: dict, count: int, note: str | None) -> None:
    """counts.rescored_fp32: near-tied questions answered by the fp32 model (evaluation/rescore.py)."""
    result["counts"]["rescored_fp32"] = count
    if note:
        result.setdefault("warnings", []).append(note)


def _fingerprint(spec: TaskSpec, model, name: str, cfg: EvalConfig) -> dict:
    """Everything that changes this result's numbers: the store's one reuse rule compares it."""
    fp = eval_fingerprint(spec, model, data_root=cfg.data_root, seed=cfg.seed,
                          bootstrap_samples=cfg.bootstrap_samples, precision=cfg.precision,
                          frames=cfg.frames, skip_invalid=cfg.skip_invalid)
    fp["model"] = name
    fp["limit"] = cfg.limit  # a quick --limit run never stands in for the full one
    if cfg.precision in rescore.LOW_PRECISIONS and spec.kind in rescore.RESCORED_KINDS and not answers_questions(model):
        fp["rescore_near_ties"] = bool(cfg.rescore_near_ties)   # recorded only where it changes answers
    if answers_questions(model):
        fp["protocol"] = protocol_settings(cfg)
    return fp


def _result(run: TaskRun, scored: Scored, outputs, fingerprint: dict | None, total_s: float) -> dict:
    spec, data = run.spec, run.data
    result = store.result_header(spec=spec, model=run.model_name, identity=run.identity, task_file=run.task_file,
                                 cfg=run.cfg, precision=run.precision)
    media = outputs.media_paths if isinstance(outputs, Embeddings) else {str(run.media_file(m)) for it in data.items
                                                                         for m in _media(it)}
    captions = outputs.captions if isinstance(outputs, Embeddings) else {c for it in data.items for c in it.captions}
    result.update(
        counts={"items": len(data.items), "skipped": len(data.skipped), "unique_media": len(media),
                "unique_captions": len(captions), **scored.counts},
        skipped_rows=data.skipped, path_rewrite=data.path_rewrite, metrics=scored.metrics,
        timings={"total_s": round(total_s, 4), **run.timings}, cache=dict(run.cache),
        distributed=result_record(ranks_for(run.cfg), run.counts))
    if scored.chance is not None:
        result["chance"] = scored.chance
    if scored.breakdowns is not None:
        result["breakdowns"] = scored.breakdowns
    if isinstance(outputs, Answers):
        result.update(protocol=run.protocol, protocol_details=outputs.details)
        _check_answered(run, result, outputs)
    elif not isinstance(run.model, LazyModel) or run.model.loaded:   # a cached run loaded nothing to ask
        details = loaded(run.model).run_details()
        if details:
            result["model_details"] = details
    _add_audit(result, run)
    _warn_correct_first(run, result)
    _add_provenance(result, run)
    if fingerprint is not None:
        result["fingerprint"] = fingerprint
    return result


def _media(item) -> tuple:
    from negbench.evaluation.run import media_of

    return media_of(item)


def _check_answered(run: TaskRun, result: dict, answers: Answers) -> None:
    """Nothing answered -> NothingAnswered (no result); some unanswered -> status incomplete."""
    n = len(run.data.items)
    reasons = ", ".join(f"{k} {v}" for k, v in answers.failures.items()) or "no reason given"
    if answers.unanswered >= n:
        raise NothingAnswered(f"model {run.model_name} on task {run.spec.name}: no question of {n} was answered "
                              f"({reasons}); nothing was written")
    if answers.unanswered:
        result["status"] = store.INCOMPLETE
        result["failures"] = {"unanswered": answers.unanswered, "of": n, "by_reason": answers.failures}
        log.warning("%s: %d of %d questions got no answer (%s): the result is marked incomplete and "
                    "--skip-existing will run it again", run.spec.name, answers.unanswered, n, reasons)


def _warn_correct_first(run: TaskRun, result: dict) -> None:
    """A file whose correct answer is always the first option (every published MCQ file) cannot
    tell a model that understands from one that always answers 'A' unless the options are shuffled."""
    if run.protocol != "choice" or run.cfg.shuffle_options:
        return
    if len(run.data.items) > 1 and all(it.correct_answer == 0 for it in run.data.items):
        note = ("every correct answer in this file is option A: a model that always answers A scores 100%; "
                "use --shuffle-options to measure understanding")
        result.setdefault("warnings", []).append(note)
        log.warning("%s: %s", run.spec.name, note)


def _add_provenance(result: dict, run: TaskRun) -> None:
    """A task file whose manifest says its images were regenerated (`negbench build hardneg-syn
    --from-release`): the result says so, and tables and the report label it."""
    from negbench.core.io import read_json
    from negbench.inputs.formats import manifest_path

    manifest = manifest_path(run.task_file)
    try:
        record = read_json(manifest).get("regenerated_images") if manifest.is_file() else None
    except (OSError, ValueError, AttributeError):
        record = None
    if isinstance(record, dict):
        result["regenerated_images"] = record


def _add_audit(result: dict, run: TaskRun) -> None:
    """Suspicious and excluded rows into the results' counts; a warning on many ties."""
    from negbench.inputs.audit import suspicious_rows

    counts, data = result["counts"], run.data
    counts["suspicious"] = suspicious_rows(data.suspicious)
    if run.spec.exclude_suspicious:
        counts["excluded_suspicious"] = suspicious_rows(data.excluded)
    ties, tie_aware = counts.get("ties"), result["metrics"].get("accuracy_tie_aware")
    if ties and tie_aware and ties > 0.001 * counts["items"]:
        log.warning("%s: %d of %d questions have tied top scores; `accuracy` counts a tie as option 0 "
                    "(the published rule), `accuracy_tie_aware` = %.4f", run.spec.name, ties,
                    counts["items"], tie_aware["value"])


def _suspicious_writer(run: TaskRun):
    """TASK.suspicious.csv beside the results: every flagged row, for a reviewer to read."""
    from negbench.inputs.audit import write_findings_csv

    return lambda path: write_findings_csv(path, run.data.suspicious, run.data.excluded)


# ---------------------------------------------------------------- several tasks

def evaluate_tasks(specs: Sequence[TaskSpec], model, config: EvalConfig | None = None, **overrides) -> list[dict]:
    """evaluate_task for each spec; a model string is loaded once, on first need (so not at all
    when every result exists under skip_existing, or every embedding is cached)."""
    cfg = (config or EvalConfig()).with_overrides(**overrides)
    shared = as_model(model, cfg)
    return [evaluate_task(spec, shared, cfg) for spec in specs]


def result_is_current(spec: TaskSpec, model, results_dir, **settings) -> bool:
    """Whether evaluate_task(spec, model, results_dir=..., skip_existing=True, **settings) would
    reuse the stored result (same fingerprint, complete) instead of computing."""
    cfg = EvalConfig().with_overrides(results_dir=results_dir, **settings)
    resolved = as_model(model, cfg)
    cfg, name = _settle(spec, resolved, model, cfg)
    if cfg.limit is not None:  # settled against the task's items, as evaluate_task does
        cfg = read_task(spec, cfg)[0]
    fingerprint = _fingerprint(spec, resolved, name, cfg)
    return store.stored_result(store.result_paths(results_dir, name, spec.name), fingerprint) is not None
