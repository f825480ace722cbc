"""Scoring generative VLMs (models/vlm/) on MCQ and binary-MCQ tasks, two ways.

`choice`: the image(s) and the options labelled A-D (binary: A-B) in one fixed prompt,
CHOICE_PROMPT below; greedy answer; parsed strictly by `parse_answer` (a single letter, "(b)",
"Answer: B.", "B. <option text>", or exactly one option's text, case and final punctuation
aside). Anything else is `unparsed`: scored wrong and counted. The raw answers go into the
per-item Parquet. `shuffle_options` shows each question's options in a seeded random order
(np.random.default_rng([shuffle_seed, row]), so a row's order does not depend on the others),
since the published files put the correct option first and generative models favour positions.

`likelihood`: no parsing. For each option, log p(option text | image(s), LIKELIHOOD_PROMPT)
summed over the option's tokens; prediction = argmax of the length-normalised (mean per token,
default) or summed log-probability; both accuracies are reported. The prompt does not list the
options, so all questions of one image share one prefix, which the HF backend runs once.

Answers and log-probabilities are cached on disk under CACHE_DIR/vlm, keyed by the model's
identity + the media's content hash (sha256 of the file) + the prompt (which holds the option
order) + generation settings, so a rerun calls no model. Failed requests are not cached.

Results follow the engine's schema (docs/contracts.md) plus `protocol`, `protocol_details`,
`counts["unparsed"]` and `counts["request_errors"]` (choice: failed requests; likelihood: questions with
an option an endpoint could not score, which are scored wrong). The results' `model` is the model string
with the protocol attached (`vlm:hf:DIR#choice`, `...#choice+shuffle0`, `...#likelihood`): a
model scored two ways gets two rows in `negbench table`, and that string loads again as --model.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import logging
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from negbench import __version__
from negbench.core.errors import ConfigError, NegbenchError, TaskFileError
from negbench.core.io import atomic_path, git_hash, read_json, sha256_file, stable_hash, write_json_atomic
from negbench.evaluation import metrics
from negbench.evaluation.config import EvalConfig
from negbench.evaluation.schema import SCHEMA_VERSION, template_accuracies, upgrade_result
from negbench.inputs.formats import infer_option_type, read_task_file
from negbench.inputs.kinds import KINDS
from negbench.inputs.tasks import TaskSpec
from negbench.models.vlm.base import split_qualifier

log = logging.getLogger(__name__)
PROMPT_VERSION = 1
PROTOCOLS = ("choice", "likelihood")
NORMS = ("mean", "sum")
LETTERS = "ABCD"
CHOICE_PROMPT = ("Which caption describes this {medium} best?\n{options}\n"
                 "Answer with the letter of the correct option only.")
LIKELIHOOD_PROMPT = "Write a one-sentence caption for this {medium}."
QUERIES_PER_CALL = 64  # questions handed to the backend at once (images held in memory meanwhile)


@dataclass(frozen=True, kw_only=True)
class GenerativeRun(EvalConfig):
    """EvalConfig (batch_size = questions per backend call; media are decoded in the main process)
    plus the protocol's settings."""
    batch_size: int = 8
    num_workers: int | None = 0
    protocol: str | None = None          # None: from the model string's '#protocol', else choice
    shuffle_options: bool = False
    shuffle_seed: int = 0
    max_new_tokens: int = 16
    likelihood_norm: str = "mean"
    load_options: dict = field(default_factory=dict)  # endpoint: concurrency, retries, timeout, deadline

    def __post_init__(self):
        super().__post_init__()
        if self.protocol is not None and self.protocol not in PROTOCOLS:
            raise ConfigError(f"protocol {self.protocol!r} not in {list(PROTOCOLS)}")
        if self.likelihood_norm not in NORMS:
            raise ConfigError(f"likelihood_norm {self.likelihood_norm!r} not in {list(NORMS)}")
        if self.shuffle_seed < 0:
            raise ConfigError(f"shuffle_seed must be >= 0, got {self.shuffle_seed}")
        if self.max_new_tokens < 1:
            raise ConfigError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")


def run_config(kwargs: dict) -> GenerativeRun:
    names = {f.name for f in dataclasses.fields(GenerativeRun)}
    unknown = sorted(set(kwargs) - names)
    if unknown:
        raise ConfigError(f"generative evaluation: unknown arguments {unknown}; allowed: {sorted(names)}")
    return GenerativeRun(**kwargs)


def engine_kwargs(engine_locals: dict) -> dict:
    """The engine's settings that a generative run takes (all of EvalConfig's)."""
    names = {f.name for f in dataclasses.fields(GenerativeRun)}
    return {k: v for k, v in engine_locals.items() if k in names}


def handles(model) -> bool:
    """True for a `vlm:` model string or an already-loaded generative adapter."""
    return (isinstance(model, str) and model.startswith("vlm:")) or getattr(model, "generative", False) is True


def resolve_protocol(model_string: str, run: GenerativeRun) -> tuple[str, GenerativeRun]:
    """The bare model string, and the run with protocol/shuffle settled from flags + qualifier."""
    bare, protocol, shuffle_seed = split_qualifier(model_string)
    if protocol and run.protocol and protocol != run.protocol:
        raise ConfigError(f"model string {model_string!r} names protocol {protocol!r} but {run.protocol!r} "
                          f"was asked for")
    run = dataclasses.replace(run, protocol=run.protocol or protocol or "choice")
    if shuffle_seed is not None:
        run = dataclasses.replace(run, shuffle_options=True, shuffle_seed=shuffle_seed)
    if run.protocol == "likelihood" and run.shuffle_options:
        raise ConfigError("shuffle_options applies to the choice protocol only: the likelihood prompt "
                          "does not list the options, so their order cannot matter")
    return bare, run


def result_exists(spec: TaskSpec, model_string: str, kwargs: dict) -> bool:
    """Whether skip_existing would return a stored result for this model string x task."""
    run = run_config(kwargs)
    if not run.skip_existing or run.results_dir is None:
        return False
    from negbench.evaluation.engine import result_paths

    bare, run = resolve_protocol(model_string, run)
    j, p = result_paths(run.results_dir, result_model(bare, run), spec.name)
    return _stored_result(j, p, run) is not None


def result_model(bare: str, run: GenerativeRun) -> str:
    """The model name recorded in results (and naming the results folder)."""
    return f"{bare}#{run.protocol}" + (f"+shuffle{run.shuffle_seed}" if run.shuffle_options else "")


# ---------------------------------------------------------------- prompts, parsing, option order

def medium_word(modality: str) -> str:
    return "video" if modality == "video" else "image"


def choice_prompt(options: Sequence[str], modality: str = "image") -> str:
    listed = "\n".join(f"{LETTERS[j]}. {o}" for j, o in enumerate(options))
    return CHOICE_PROMPT.format(medium=medium_word(modality), options=listed)


def likelihood_prompt(modality: str = "image") -> str:
    return LIKELIHOOD_PROMPT.format(medium=medium_word(modality))


def _norm_text(s: str) -> str:
    return re.sub(r"\s+", " ", s).strip().strip(".!\"'").strip().casefold()


def parse_answer(text: str | None, options: Sequence[str]) -> int | None:
    """Index of the option an answer names, or None (unparsed). Accepted, nothing else:
    a lone letter ("B", "b", "(b)", "B.", "B)"), "Answer: B." / "The answer is (B)", a letter
    followed by that option's text ("B. a dog"), or exactly one option's full text."""
    if text is None:
        return None
    s = text.strip()
    letters = LETTERS[:len(options)]
    m = re.fullmatch(r"(?:(?:the\s+)?answer(?:\s+is)?\s*[:\-]?\s*)?\(?([A-Za-z])\)?[.:)]?", s, re.IGNORECASE)
    if m:
        letter = m.group(1).upper()
        return letters.index(letter) if letter in letters else None
    m = re.fullmatch(r"\(?([A-Za-z])[.:)]\s*(.+)", s, re.DOTALL)
    if m and m.group(1).upper() in letters:
        j = letters.index(m.group(1).upper())
        return j if _norm_text(m.group(2)) == _norm_text(options[j]) else None
    same = [j for j, o in enumerate(options) if _norm_text(o) == _norm_text(s)]
    return same[0] if len(same) == 1 else None


def option_orders(items, shuffle: bool, seed: int) -> list[tuple[int, ...]]:
    """Per item: order[j] = the original index of the option shown at position j."""
    if not shuffle:
        return [tuple(range(len(it.captions))) for it in items]
    return [tuple(int(x) for x in np.random.default_rng([seed, it.row]).permutation(len(it.captions)))
            for it in items]


# ---------------------------------------------------------------- cache and media

class AnswerCache:
    """One small JSON file per key under ROOT/<key[:2]>/<key>.json, written atomically."""

    def __init__(self, root):
        self.root = Path(root).expanduser() if root is not None else None
        self.hits = self.misses = 0

    def get(self, key: str) -> dict | None:
        f = None if self.root is None else self.root / key[:2] / f"{key}.json"
        if f is not None and f.is_file():
            try:
                value = read_json(f)
                self.hits += 1
                return value
            except (OSError, ValueError):
                log.debug("unreadable cache entry %s; recomputing", f)
        self.misses += 1
        return None

    def put(self, key: str, value: dict) -> None:
        if self.root is not None:
            write_json_atomic(self.root / key[:2] / f"{key}.json", value)


class MediaSet:
    """The task's media: content hashes (cache keys) and decoding into PIL images on demand."""

    def __init__(self, data, modality: str, frames: int):
        self.data, self.modality, self.frames = data, modality, frames
        self._hash: dict[str, str] = {}

    def path(self, item) -> Path:
        return Path(os.path.abspath(self.data.media_path(item.media)))

    def content_hash(self, item) -> str:
        p = str(self.path(item))
        if p not in self._hash:
            kind = f"video:{self.frames}" if self.modality == "video" else "image"
            self._hash[p] = f"{kind}:{sha256_file(p)}"
        return self._hash[p]

    def images(self, item) -> tuple:
        from negbench.inputs.media import load_image, sample_video_frames

        if self.modality == "video":
            return tuple(sample_video_frames(self.path(item), self.frames))
        return (load_image(self.path(item)),)


def _load_or_skip(media: MediaSet, items, run: GenerativeRun, skipped: list) -> dict[int, tuple]:
    """{item index: images} for the items whose media decode; the others raise or are skipped."""
    from negbench.inputs.media import MediaError

    out = {}
    for i, it in items:
        try:
            out[i] = media.images(it)
        except MediaError as exc:
            err = TaskFileError(media.data.path, it.row, "image_path", str(exc))
            if not run.skip_invalid:
                raise err from None
            skipped.append(err.as_record())
    return out


# ---------------------------------------------------------------- the two protocols

def run_choice(adapter, items, media: MediaSet, run: GenerativeRun, cache: AnswerCache, skipped: list):
    """-> (orders, prompts, {item index: Answer}) for the items whose media decoded."""
    from tqdm.auto import tqdm

    from negbench.models.vlm.base import Answer, Query

    identity = adapter.identity()
    orders = option_orders(items, run.shuffle_options, run.shuffle_seed)
    prompts = [choice_prompt([it.captions[k] for k in order], media.modality) for it, order in zip(items, orders)]
    keys = [stable_hash(PROMPT_VERSION, identity, "choice", media.content_hash(it), p, run.max_new_tokens)
            for it, p in zip(items, prompts)]
    answers: dict[int, Answer] = {}
    for i, key in enumerate(keys):
        if (hit := cache.get(key)) is not None:
            answers[i] = Answer(hit["answer"])
    todo = [i for i in range(len(items)) if i not in answers]
    with tqdm(total=len(todo), desc=f"{media.data.path.name} choice", unit="q", disable=not run.progress,
              leave=False) as bar:
        for s in range(0, len(todo), QUERIES_PER_CALL):
            chunk = todo[s:s + QUERIES_PER_CALL]
            images = _load_or_skip(media, [(i, items[i]) for i in chunk], run, skipped)
            ok = [i for i in chunk if i in images]
            got = adapter.choose([Query(images[i], prompts[i]) for i in ok], max_new_tokens=run.max_new_tokens,
                                 batch_size=run.batch_size)
            for i, answer in zip(ok, got):
                answers[i] = answer
                if answer.error is None:  # failures are retried by the next run
                    cache.put(keys[i], {"answer": answer.text, "model": identity, "prompt": prompts[i]})
            bar.update(len(chunk))
    return orders, prompts, answers


def _option_scores(adapter, media: MediaSet, group: list, items, prompt: str, cache: AnswerCache):
    """{option text: (logprob sum, n tokens)} for every option of the items sharing one media;
    None when the media does not decode."""
    from negbench.inputs.media import MediaError

    identity, h = adapter.identity(), media.content_hash(items[group[0]])
    options = list(dict.fromkeys(c for i in group for c in items[i].captions))
    keys = {o: stable_hash(PROMPT_VERSION, identity, "likelihood", h, prompt, o) for o in options}
    known = {}
    for o in options:
        if (hit := cache.get(keys[o])) is not None:
            known[o] = (float(hit["logprob_sum"]), int(hit["n_tokens"]))
    missing = [o for o in options if o not in known]
    if missing:
        try:
            images = media.images(items[group[0]])
        except MediaError as exc:
            return str(exc)
        for o, (total, n) in zip(missing, adapter.option_logprobs(images, prompt, missing)):
            known[o] = (float(total), float(n))
            if np.isnan(total):  # a failed request: scored wrong now, asked again next run
                continue
            cache.put(keys[o], {"logprob_sum": known[o][0], "n_tokens": int(known[o][1]), "model": identity,
                                "prompt": prompt, "option": o})
    return known


def run_likelihood(adapter, items, media: MediaSet, run: GenerativeRun, cache: AnswerCache, skipped: list):
    """-> (prompt, {item index: (n_options, 2) array of [logprob sum, n tokens]})."""
    from tqdm.auto import tqdm

    if not adapter.supports_likelihood:
        raise ConfigError(f"{adapter.model_string}: the likelihood protocol needs log-probabilities of given "
                          f"answers, which this backend does not give; use the choice protocol or vlm:hf:")
    prompt = likelihood_prompt(media.modality)
    groups: dict[Path, list[int]] = {}
    for i, it in enumerate(items):
        groups.setdefault(media.path(it), []).append(i)
    scores: dict[int, np.ndarray] = {}
    for group in tqdm(groups.values(), desc=f"{media.data.path.name} likelihood", unit="media",
                      disable=not run.progress, leave=False):
        known = _option_scores(adapter, media, group, items, prompt, cache)
        if isinstance(known, str):  # undecodable media: every question on it is bad
            errors = [TaskFileError(media.data.path, items[i].row, "image_path", known) for i in group]
            if not run.skip_invalid:
                raise errors[0]
            skipped += [e.as_record() for e in errors]
            continue
        for i in group:
            scores[i] = np.array([known[c] for c in items[i].captions], dtype=np.float64)
    return prompt, scores


# ---------------------------------------------------------------- scoring and results

def _types(item) -> list[str]:
    return list(item.caption_types) if item.caption_types else [infer_option_type(c) for c in item.captions]


def score(spec: TaskSpec, items, predicted: np.ndarray, run: GenerativeRun) -> tuple[dict, dict, list]:
    """(metrics, breakdowns, chosen type per item) like the CLIP MCQ scoring; predicted -1 = unparsed."""
    correct = np.array([it.correct_answer for it in items])
    is_correct = predicted == correct
    types = [_types(it) for it in items]
    groups = [it.template or types[i][it.correct_answer] for i, it in enumerate(items)]
    n, seed = run.bootstrap_samples, run.seed
    res = {"accuracy": metrics.mean_with_ci(is_correct, n_samples=n, seed=seed)}
    by_group = metrics.accuracy_by_group(is_correct, groups, n_samples=n, seed=seed)
    per_template, breakdowns = template_accuracies(by_group, spec.task_kind.reports_templates(items))
    res.update(per_template)
    parsed = np.flatnonzero(predicted >= 0)
    p_pred, p_corr = predicted[parsed], correct[parsed]
    p_types = [types[i] for i in parsed]
    unparsed_by = {}
    for i in np.flatnonzero(predicted < 0):
        unparsed_by[groups[i]] = unparsed_by.get(groups[i], 0) + 1
    breakdowns.update(wrong_answer_type_shares=metrics.wrong_answer_type_shares(p_pred, p_corr, p_types),
                      confusion=metrics.confusion_table(p_pred, p_corr, [groups[i] for i in parsed], p_types),
                      unparsed_by_template=dict(sorted(unparsed_by.items())))
    chosen = [types[i][int(p)] if p >= 0 else "unparsed" for i, p in enumerate(predicted)]
    return res, breakdowns, chosen


def _choice_table(items, orders, prompts, answers, keep):
    """-> (predicted original index per kept item, -1 when unparsed; Parquet columns; counts)."""
    predicted, raw, letters, errors = [], [], [], {}
    for i in keep:
        a, order = answers[i], orders[i]
        shown = parse_answer(a.text, [items[i].captions[k] for k in order])
        predicted.append(order[shown] if shown is not None else -1)
        raw.append(a.text)
        letters.append(LETTERS[shown] if shown is not None else None)
        if a.error:
            errors[a.error] = errors.get(a.error, 0) + 1
    predicted = np.array(predicted, dtype=np.int64)
    columns = {"raw_answer": raw, "parsed_letter": letters, "error": [answers[i].error for i in keep],
               "option_order": [list(orders[i]) for i in keep], "prompt": [prompts[i] for i in keep]}
    return predicted, columns, dict(sorted(errors.items()))


def _argmax_or_unscored(scores: np.ndarray) -> int:
    """Best option; -1 when an option could not be scored (a failed endpoint request)."""
    return -1 if np.isnan(scores).any() else int(np.argmax(scores))


def _likelihood_table(scores: dict, keep, norm: str):
    sums = [scores[i][:, 0] for i in keep]
    means = [scores[i][:, 0] / scores[i][:, 1] for i in keep]
    pick = means if norm == "mean" else sums
    predicted = np.array([_argmax_or_unscored(s) for s in pick], dtype=np.int64)
    columns = {"scores": [list(map(float, s)) for s in pick], "logprob_sum": [list(map(float, s)) for s in sums],
               "n_tokens": [[int(n) if n == n else -1 for n in scores[i][:, 1]] for i in keep]}
    other = np.array([_argmax_or_unscored(s) for s in (sums if norm == "mean" else means)], dtype=np.int64)
    return predicted, other, columns


def _write_parquet(path: Path, table: dict) -> None:
    import pandas as pd

    with atomic_path(path) as tmp:
        pd.DataFrame(table).to_parquet(tmp, index=False, engine="pyarrow")


def _model_string(model) -> str:
    return model if isinstance(model, str) else getattr(model, "model_string", type(model).__name__)


def _adapter(model, bare: str, run: GenerativeRun):
    if not isinstance(model, str):
        return model
    from negbench.models.vlm.base import load

    return load(bare[len("vlm:"):], device=run.device, precision=run.precision or "fp32", **run.load_options)


def _protocol_details(run: GenerativeRun, prompt_template: str) -> dict:
    details = {"prompt_version": PROMPT_VERSION, "prompt_template": prompt_template}
    if run.protocol == "choice":
        details.update(shuffle_options=run.shuffle_options, max_new_tokens=run.max_new_tokens,
                       shuffle_seed=run.shuffle_seed if run.shuffle_options else None)
    else:
        details.update(likelihood_norm=run.likelihood_norm)
    return details


def _ci(values, run: GenerativeRun) -> dict:
    return metrics.mean_with_ci(values, n_samples=run.bootstrap_samples, seed=run.seed)


def _run_protocol(spec, adapter, data, run: GenerativeRun, cache: AnswerCache):
    """-> (kept items, predicted, extra Parquet columns, extra metrics, counts)."""
    media = MediaSet(data, spec.modality, run.frames)
    items = data.items
    if run.protocol == "choice":
        orders, prompts, answers = run_choice(adapter, items, media, run, cache, data.skipped)
        keep = sorted(answers)
        predicted, columns, errors = _choice_table(items, orders, prompts, answers, keep)
        counts = {"unparsed": int((predicted < 0).sum()), "request_errors": sum(errors.values())}
        return [items[i] for i in keep], predicted, columns, {}, counts, errors
    _, scores = run_likelihood(adapter, items, media, run, cache, data.skipped)
    keep = sorted(scores)
    predicted, other, columns = _likelihood_table(scores, keep, run.likelihood_norm)
    kept = [items[i] for i in keep]
    correct = np.array([it.correct_answer for it in kept])
    other_norm = "sum" if run.likelihood_norm == "mean" else "mean"
    extra = {f"accuracy_logprob_{run.likelihood_norm}": _ci(predicted == correct, run),
             f"accuracy_logprob_{other_norm}": _ci(other == correct, run)}
    failed = int((predicted < 0).sum())
    return kept, predicted, columns, extra, {"unparsed": 0, "request_errors": failed}, (
        {"unscored_options": failed} if failed else {})


def evaluate_task(spec: TaskSpec, model, **kwargs) -> dict:
    """Evaluate one MCQ / binary-MCQ task with a generative VLM (model string or adapter).

    kwargs: the engine's evaluate_task arguments plus protocol, shuffle_options, shuffle_seed,
    max_new_tokens, likelihood_norm, load_options (see GenerativeRun). Returns the results dict
    and, with results_dir, writes DIR/<slug of result model>/TASK.{json,parquet}.
    """
    from negbench.evaluation.engine import result_paths

    t_start = time.perf_counter()
    bare, run = resolve_protocol(_model_string(model), run_config(kwargs))
    recorded = result_model(bare, run)
    json_path = parquet_path = None
    if run.results_dir is not None:
        json_path, parquet_path = result_paths(run.results_dir, recorded, spec.name)
        stored = _stored_result(json_path, parquet_path, run)
        if stored is not None:
            return stored
    task_file, data = _read_questions(spec, run)
    adapter = _adapter(model, bare, run)
    cache = AnswerCache(None if run.cache_dir is None else Path(run.cache_dir).expanduser() / "vlm")
    t0 = time.perf_counter()
    kept, predicted, columns, extra, counts, errors = _run_protocol(spec, adapter, data, run, cache)
    if not kept:
        raise NegbenchError(f"{task_file}: no valid rows to evaluate ({len(data.skipped)} skipped)")
    t_model = time.perf_counter() - t0
    res, breakdowns, chosen = score(spec, kept, predicted, run)
    breakdowns["request_errors"] = errors
    if run.protocol == "choice":
        breakdowns["answer_position_shares"] = _position_shares(columns["parsed_letter"], len(kept[0].captions))
    table = _item_table(kept, data, predicted, chosen, columns)
    result = {
        "schema_version": SCHEMA_VERSION, "negbench_version": __version__, "git_hash": git_hash(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "model": recorded, "model_identity": adapter.identity(), "protocol": run.protocol,
        "protocol_details": _protocol_details(run, CHOICE_PROMPT if run.protocol == "choice" else LIKELIHOOD_PROMPT),
        "task": {**spec.to_dict(), "resolved_file": str(Path(task_file).resolve())},
        "seed": run.seed, "bootstrap_samples": run.bootstrap_samples, "chance": spec.chance, "limit": run.limit,
        "precision": getattr(adapter, "precision", run.precision), "frames": run.frames if spec.modality == "video" else None,
        "counts": {"items": len(kept), "skipped": len(data.skipped), "unique_media": len(set(table["media_path"])),
                   "unique_captions": len({c for it in kept for c in it.captions}), **counts},
        "skipped_rows": data.skipped, "metrics": {**res, **extra}, "breakdowns": breakdowns,
        "predictions_file": f"{spec.name}.parquet",
        "timings": {"total_s": round(time.perf_counter() - t_start, 4), "model_s": round(t_model, 4)},
        "cache": {"answer_hits": cache.hits, "answer_misses": cache.misses},
    }
    if json_path is not None:
        _write_parquet(parquet_path, table)
        write_json_atomic(json_path, result)  # last: its presence means "this task is done"
        result["results_file"] = str(json_path)
    return result


def _stored_result(json_path: Path, parquet_path: Path, run: GenerativeRun) -> dict | None:
    """The stored result skip_existing returns: one made with the same --limit (a quick run never
    stands in for the full one)."""
    if not (run.skip_existing and json_path.exists() and parquet_path.exists()):
        return None
    stored = upgrade_result(read_json(json_path))
    return {**stored, "results_file": str(json_path)} if stored.get("limit") == run.limit else None


def _read_questions(spec: TaskSpec, run: GenerativeRun):
    """(task file, its data), the first run.limit questions only when a limit is set."""
    if not spec.task_kind.is_choice:
        choice_kinds = [k for k in KINDS.names() if KINDS.get(k).is_choice]
        raise ConfigError(f"task {spec.name!r} is {spec.kind}: generative VLMs answer questions with options "
                          f"(kinds {', '.join(choice_kinds)}); {spec.kind} ranks embeddings")
    task_file = spec.resolve_file(run.data_root)
    data = read_task_file(task_file, spec.kind, spec.resolve_media_root(run.data_root), skip_invalid=run.skip_invalid)
    if run.limit is not None:
        data.items = data.items[:max(0, int(run.limit))]
    if not data.items:
        raise NegbenchError(f"{task_file}: no valid rows to evaluate ({len(data.skipped)} skipped)")
    return task_file, data


def _position_shares(letters: Sequence[str | None], n_options: int) -> dict[str, float]:
    """Share of parsed answers at each shown position (A..): a position bias shows here."""
    parsed = [x for x in letters if x is not None]
    return {L: (parsed.count(L) / len(parsed) if parsed else 0.0) for L in LETTERS[:n_options]}


def _item_table(kept, data, predicted, chosen, columns) -> dict:
    table = {"row": [it.row for it in kept], "media": [it.media for it in kept],
             "media_path": [str(Path(os.path.abspath(data.media_path(it.media)))) for it in kept],
             "correct_answer": [it.correct_answer for it in kept], "predicted": predicted,
             "is_correct": predicted == np.array([it.correct_answer for it in kept]),
             "template": [it.template for it in kept], "chosen_type": chosen}
    for j in range(len(kept[0].captions)):
        table[f"caption_{j}"] = [it.captions[j] for it in kept]
    return {**table, **columns}
