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
order) + generation settings, so a rerun calls no model. Failed requests are not cached. The cache
is asked first: a model string (a LazyModel) is loaded only for a question it does not hold, so a
fully cached run (a rerun, the scoring run after `--shard i/n` runs) loads neither weights nor
processor; its identity comes from the model string and file fingerprints (models/vlm/).

This module computes a generative model's outputs (capability `choose` or `score_options`) for
the one evaluation path (evaluation/engine.py): `answer_task(run) -> Answers`. The task kind's
scorer turns them into metrics and the store writes them, as for every other model. Results add
`protocol`, `protocol_details`, `counts["unparsed"]` and `counts["request_errors"]` (choice:
failed requests; likelihood: questions with an option an endpoint could not score). The results'
`model` is the model string with the protocol attached (`vlm:hf:DIR#choice`, `...#choice+shuffle0`,
`...#likelihood`): a model scored two ways gets two rows in `negbench table`, and that string loads
again as --model.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from negbench.core.errors import ConfigError, TaskFileError
from negbench.core.io import read_json, sha256_file, stable_hash, write_json_atomic
from negbench.evaluation.config import ANSWER_BATCH_SIZE, EvalConfig
from negbench.evaluation.distributed import deal, from_rank0, gather, question_calls, ranks_for
from negbench.evaluation.run import NonFiniteScores, TaskRun
from negbench.models.vlm.base import chat_messages, split_qualifier

log = logging.getLogger(__name__)
PROMPT_VERSION = 1
LETTERS = "ABCD"
CHOICE_PROMPT = ("Which caption describes this {medium} best?\n{options}\n"
                 "Answer with the letter of the correct option only.")
LIKELIHOOD_PROMPT = "Write a one-sentence caption for this {medium}."
QUERIES_PER_CALL = 64  # questions handed to the backend at once (images held in memory meanwhile)


@dataclass
class Answers:
    """A generative model's outputs for a task's questions (items in the task's order; items
    whose media did not decode are dropped from run.data.items with skip_invalid)."""

    predicted: np.ndarray           # original option index per item; -1 = unparsed / unscored
    columns: dict                   # per-item Parquet columns (raw answers, messages sent, scores)
    failures: dict = field(default_factory=dict)   # {reason: count} of requests that got no answer
    unanswered: int = 0             # items with no answer at all (failed request / unscored option)
    unparsed: int = 0               # items answered with something that names no option
    extra_metrics: dict = field(default_factory=dict)   # likelihood: both normalisations
    breakdowns: dict = field(default_factory=dict)
    details: dict = field(default_factory=dict)     # protocol_details


def resolve_protocol(model_string: str, cfg: EvalConfig) -> tuple[str, EvalConfig]:
    """The bare model string, and the config with protocol/shuffle settled from flags + qualifier."""
    bare, protocol, shuffle_seed = split_qualifier(model_string)
    if protocol and cfg.protocol and protocol != cfg.protocol:
        raise ConfigError(f"model string {model_string!r} names protocol {protocol!r} but {cfg.protocol!r} "
                          f"was asked for")
    cfg = dataclasses.replace(cfg, protocol=cfg.protocol or protocol or "choice")
    if shuffle_seed is not None:
        cfg = dataclasses.replace(cfg, shuffle_options=True, shuffle_seed=shuffle_seed)
    if cfg.protocol == "likelihood" and cfg.shuffle_options:
        raise ConfigError("shuffle_options applies to the choice protocol only: the likelihood prompt "
                          "does not list the options, so their order cannot matter")
    return bare, cfg


def result_model(bare: str, cfg: EvalConfig) -> str:
    """The model name recorded in results (and naming the results folder)."""
    return f"{bare}#{cfg.protocol}" + (f"+shuffle{cfg.shuffle_seed}" if cfg.shuffle_options else "")


def protocol_settings(cfg: EvalConfig) -> dict:
    """What of the protocol changes the numbers (part of the result's fingerprint)."""
    if cfg.protocol == "choice":
        return {"protocol": "choice", "prompt_version": PROMPT_VERSION, "max_new_tokens": cfg.max_new_tokens,
                "shuffle_seed": cfg.shuffle_seed if cfg.shuffle_options else None}
    return {"protocol": "likelihood", "prompt_version": PROMPT_VERSION, "likelihood_norm": cfg.likelihood_norm}


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
        self.by_rank: list[int] = []   # questions each rank answered (evaluation/distributed.py)

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


def _load_or_skip(media: MediaSet, items, cfg: EvalConfig, skipped: list) -> dict[int, tuple]:
    """{item index: images} for the items whose media decode; the others raise or are skipped."""
    from negbench.inputs.media import MediaError

    out = {}
    for i, it in items:
        try:
            out[i] = media.images(it)
        except MediaError as exc:
            err = TaskFileError(media.data.path, it.row, "image_path", str(exc))
            if not cfg.skip_invalid:
                raise err from None
            skipped.append(err.as_record())
    return out


# ---------------------------------------------------------------- the two protocols

def run_choice(model, items, media: MediaSet, cfg: EvalConfig, cache: AnswerCache, skipped: list):
    """-> (orders, prompts, {item index: Answer}) for the items whose media decoded. model: an
    adapter, or a LazyModel loaded by the first question the cache does not hold."""
    from tqdm.auto import tqdm

    from negbench.evaluation.lazy_model import loaded
    from negbench.models.vlm.base import Answer, Query

    identity = model.identity()
    orders = option_orders(items, cfg.shuffle_options, cfg.shuffle_seed)
    prompts = [choice_prompt([it.captions[k] for k in order], media.modality) for it, order in zip(items, orders)]
    keys = [stable_hash(PROMPT_VERSION, identity, "choice", media.content_hash(it), p, cfg.max_new_tokens)
            for it, p in zip(items, prompts)]
    ranks = ranks_for(cfg)  # torchrun ranks / --shard split the questions (evaluation/distributed.py)
    answers: dict[int, Answer] = from_rank0(ranks, lambda: {i: Answer(hit["answer"]) for i, key in enumerate(keys)
                                                            if (hit := cache.get(key)) is not None})
    todo = [i for i in range(len(items)) if i not in answers]
    calls = question_calls(ranks, todo, len(items), cfg.batch_for(ANSWER_BATCH_SIZE), QUERIES_PER_CALL)

    def ask() -> tuple[dict, list]:  # this rank's calls: ({item index: Answer}, skipped rows)
        mine, bad = {}, []
        with tqdm(total=sum(map(len, calls)), desc=f"{media.data.path.name} choice", unit="q",
                  disable=not cfg.progress, leave=False) as bar:
            for chunk in calls:
                images = _load_or_skip(media, [(i, items[i]) for i in chunk], cfg, bad)
                ok = [i for i in chunk if i in images]
                got = loaded(model).choose([Query(images[i], prompts[i]) for i in ok],
                                           max_new_tokens=cfg.max_new_tokens,
                                           batch_size=cfg.batch_for(ANSWER_BATCH_SIZE)) if ok else []
                for i, answer in zip(ok, got):
                    mine[i] = answer
                    if answer.error is None:  # failures are retried by the next run
                        cache.put(keys[i], {"answer": answer.text, "model": identity, "prompt": prompts[i]})
                bar.update(len(chunk))
        return mine, bad

    _merge_parts(gather(ranks, ask), answers, skipped, cache)
    return orders, prompts, answers


def _option_scores(model, media: MediaSet, group: list, items, prompt: str, cache: AnswerCache):
    """{option text: (logprob sum, n tokens)} for every option of the items sharing one media;
    the media's error message when it does not decode. model: an adapter, or a LazyModel loaded
    here when an option is not cached."""
    from negbench.evaluation.lazy_model import loaded
    from negbench.inputs.media import MediaError

    identity, h = model.identity(), media.content_hash(items[group[0]])
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
        for o, (total, n) in zip(missing, loaded(model).option_logprobs(images, prompt, missing)):
            known[o] = (float(total), float(n))
            if np.isnan(total):  # a failed request: scored wrong now, asked again next run
                continue
            cache.put(keys[o], {"logprob_sum": known[o][0], "n_tokens": int(known[o][1]), "model": identity,
                                "prompt": prompt, "option": o})
    return known


def run_likelihood(model, items, media: MediaSet, cfg: EvalConfig, cache: AnswerCache, skipped: list):
    """-> (prompt, {item index: (n_options, 2) array of [logprob sum, n tokens]})."""
    from tqdm.auto import tqdm

    prompt = likelihood_prompt(media.modality)
    groups: dict[Path, list[int]] = {}
    for i, it in enumerate(items):
        groups.setdefault(media.path(it), []).append(i)
    ranks = ranks_for(cfg)  # media groups dealt to torchrun ranks / a --shard (evaluation/distributed.py)
    order = list(groups.values())
    mine = deal([sum(len(items[i].captions) for i in g) for g in order], ranks.world_size)[ranks.rank]

    def score() -> tuple[dict, list]:  # this rank's media: ({item index: scores}, skipped rows)
        got, bad = {}, []
        for group in tqdm([order[k] for k in mine], desc=f"{media.data.path.name} likelihood", unit="media",
                          disable=not cfg.progress, leave=False):
            known = _option_scores(model, media, group, items, prompt, cache)
            if isinstance(known, str):  # undecodable media: every question on it is bad
                errors = [TaskFileError(media.data.path, items[i].row, "image_path", known) for i in group]
                if not cfg.skip_invalid:
                    raise errors[0]
                bad += [e.as_record() for e in errors]
                continue
            for i in group:
                got[i] = np.array([known[c] for c in items[i].captions], dtype=np.float64)
        return got, bad

    scores: dict[int, np.ndarray] = {}
    _merge_parts(gather(ranks, score), scores, skipped, cache)
    return prompt, scores


def _merge_parts(parts: list, into: dict, skipped: list, cache: AnswerCache) -> None:
    """Every rank's ({item index: output}, skipped rows) into one dict and the skipped list (rows
    in file order, as one process appends them); how many each rank computed into cache.by_rank."""
    bad = []
    for got, rank_bad in parts:
        into.update(got)
        bad += rank_bad
    skipped += sorted(bad, key=lambda rec: rec.get("row") or 0)
    cache.by_rank = [len(got) for got, _ in parts]


# ---------------------------------------------------------------- the outputs of one task

def answer_task(run: TaskRun) -> Answers:
    """Ask the model every question of the task by run.cfg.protocol (settled by resolve_protocol)
    that the answer cache does not hold; the model is loaded only for those."""
    from negbench.evaluation.lazy_model import loaded_or_none

    model, cfg, data = run.model, run.cfg, run.data
    cache = AnswerCache(None if cfg.cache_dir is None else Path(cfg.cache_dir).expanduser() / "vlm")
    media = MediaSet(data, run.spec.modality, cfg.frames)
    items = data.items
    if cfg.protocol == "choice":
        orders, prompts, answers = run_choice(model, items, media, cfg, cache, data.skipped)
        keep = sorted(answers)
        out = _choice_answers(items, orders, prompts, answers, keep, media)
        out.details = {"prompt_template": CHOICE_PROMPT, "shuffle_options": cfg.shuffle_options,
                       "max_new_tokens": cfg.max_new_tokens,
                       "shuffle_seed": cfg.shuffle_seed if cfg.shuffle_options else None}
    else:
        prompt, scores = run_likelihood(model, items, media, cfg, cache, data.skipped)
        keep = sorted(scores)
        out = _likelihood_answers(run, items, scores, keep, cfg.likelihood_norm, prompt, media)
        out.details = {"prompt_template": LIKELIHOOD_PROMPT, "likelihood_norm": cfg.likelihood_norm}
    # how the backend answered (e.g. the likelihood pass it chose) is known only to one that answered
    adapter = loaded_or_none(model)
    out.details = {"prompt_version": PROMPT_VERSION, **out.details, **(adapter.answer_details() if adapter else {})}
    data.items = [items[i] for i in keep]
    run.cache.update(answer_hits=cache.hits, answer_misses=cache.misses)
    run.counts["computed_by_rank"] = {"questions": cache.by_rank}
    return out


def _messages(media: MediaSet, item, prompt: str) -> str:
    """The chat messages sent for one question, images as their file paths (a video's frames as
    PATH#frameJ), as JSON: a question can be replayed with plain transformers."""
    path = str(media.path(item))
    names = [f"{path}#frame{j}" for j in range(media.frames)] if media.modality == "video" else [path]
    return json.dumps(chat_messages(names, prompt), ensure_ascii=False)


def _choice_answers(items, orders, prompts, answers, keep, media: MediaSet) -> Answers:
    predicted, raw, letters, failures = [], [], [], {}
    for i in keep:
        a, order = answers[i], orders[i]
        shown = parse_answer(a.text, [items[i].captions[k] for k in order])
        predicted.append(order[shown] if shown is not None else -1)
        raw.append(a.text)
        letters.append(LETTERS[shown] if shown is not None else None)
        if a.error:
            failures[a.error] = failures.get(a.error, 0) + 1
    predicted = np.array(predicted, dtype=np.int64)
    columns = {"raw_answer": raw, "parsed_letter": letters, "error": [answers[i].error for i in keep],
               "option_order": [list(orders[i]) for i in keep], "prompt": [prompts[i] for i in keep],
               "messages": [_messages(media, items[i], prompts[i]) for i in keep]}
    unanswered = sum(failures.values())
    n_options = len(items[keep[0]].captions) if keep else 0
    return Answers(predicted, columns, dict(sorted(failures.items())), unanswered,
                   unparsed=int((predicted < 0).sum()) - unanswered,
                   breakdowns={"answer_position_shares": _position_shares(letters, n_options)})


def _argmax_or_unscored(scores: np.ndarray) -> int:
    """Best option; -1 when an option could not be scored (a failed endpoint request)."""
    return -1 if np.isnan(scores).any() else int(np.argmax(scores))


def _likelihood_answers(run: TaskRun, items, scores: dict, keep, norm: str, prompt: str,
                        media: MediaSet) -> Answers:
    for i in keep:  # NaN marks an option a request could not score; anything else must be finite
        s = scores[i][:, 0]
        if np.isinf(s).any() and not np.isnan(s).any():
            raise NonFiniteScores(f"model {run.model_name} on task {run.spec.name}: an infinite option "
                                  f"log-probability (row {items[i].row} of {run.task_file}); nothing was scored")
    sums = [scores[i][:, 0] for i in keep]
    means = [scores[i][:, 0] / scores[i][:, 1] for i in keep]
    pick, other = (means, sums) if norm == "mean" else (sums, means)
    predicted = np.array([_argmax_or_unscored(s) for s in pick], dtype=np.int64)
    other_pred = np.array([_argmax_or_unscored(s) for s in other], dtype=np.int64)
    columns = {"scores": [list(map(float, s)) for s in pick], "logprob_sum": [list(map(float, s)) for s in sums],
               "n_tokens": [[int(n) if n == n else -1 for n in scores[i][:, 1]] for i in keep],
               "messages": [_messages(media, items[i], prompt) for i in keep]}
    unscored = int((predicted < 0).sum())
    other_norm = "sum" if norm == "mean" else "mean"
    return Answers(predicted, columns, {"unscored_options": unscored} if unscored else {}, unscored, 0,
                   extra_metrics={f"accuracy_logprob_{norm}": predicted, f"accuracy_logprob_{other_norm}": other_pred})


def _position_shares(letters: Sequence[str | None], n_options: int) -> dict[str, float]:
    """Share of parsed answers at each shown position (A..): a position bias shows here."""
    parsed = [x for x in letters if x is not None]
    return {L: (parsed.count(L) / len(parsed) if parsed else 0.0) for L in LETTERS[:n_options]}
