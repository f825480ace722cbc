"""LLM paraphrasing of templated captions, validated, cached and resumable.

Backends (registry `PARAPHRASE_BACKENDS`): `none` (templates as they are) and `openai`: any
OpenAI-compatible chat-completions endpoint (vLLM, llama.cpp server, Ollama, OpenAI), given
by URL and model name; the key comes from `OPENAI_API_KEY` or `NEGBENCH_LLM_KEY` (optional
for local servers) and is sent only to https or loopback URLs (negbench.construct.llm_http).
Standard library only (http.client + concurrent.futures).

Every answer is validated against the templated caption it rewrites, using the lexicon
matcher: each affirmed object still affirmed, each negated object still negated, no new
category words, affirmation before negation when the template had it so (the paper's
affneg rule), length within bounds. Invalid answers fall back to the template and are
counted by reason. Answers are cached on disk, one JSON file per prompt hash (atomic), so a
second run makes no calls and an interrupted run resumes where it stopped; failed calls are
not cached. Failed calls are said once per reason (with how many), and an endpoint where nothing
answers (the first calls, one per worker, refused or their host not found, none ever answered)
is asked nothing more: one warning line names the URL and every caption keeps its template.
"""
from __future__ import annotations

import json
import logging
import os
import re
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

from negbench.core.errors import ConfigError, NegbenchError
from negbench.core.io import stable_hash, write_json_atomic
from negbench.core.registry import Registry
from negbench.inputs.vocab import NEGATION_CUES, Vocabulary, builtin_vocab

log = logging.getLogger(__name__)

PROMPT_VERSION = "negbench-paraphrase-v1"
SYSTEM_PROMPT = (
    "You rewrite short image captions so they sound natural and varied. Rules: keep every object "
    "that the caption says is present, and keep it present; keep every object that the caption says "
    "is absent, and keep it clearly negated; never mention any other object; if the caption first "
    "describes what is there and then what is not, keep that order (affirmation first, then negation). "
    "Answer with the rewritten caption only, one or two sentences, no quotes.")
FEW_SHOT = (
    ("Caption: A man rides a bike down the street. There is no dog in the image.",
     "A man is riding his bike along the street, and no dog is anywhere to be seen."),
    ("Caption: This image features cat, but not laptop.",
     "A cat is in the picture, but there is no laptop."),
    ("Caption: This image does not feature umbrella.",
     "There is no umbrella in this picture."),
    ("Caption: This image features pizza and cup.",
     "The picture shows a pizza and a cup."),
)
_CLAUSE_SPLIT = re.compile(r"[.;:!?,]|\bbut\b|\bwhile\b|\bwhereas\b|\bhowever\b|\band\b", re.IGNORECASE)
_WORD = re.compile(r"[a-z]+")


@dataclass(frozen=True)
class ParaphraseRequest:
    kind: str                         # mcq | retrieval | negcap
    text: str                         # the templated caption (also the fallback)
    present: tuple[str, ...] | None = None   # None: derived from `text`
    absent: tuple[str, ...] | None = None
    original: str = ""
    order: str = ""                   # "affneg" requires affirmation before negation


def analyse(text: str, vocab: Vocabulary) -> tuple[list[str], list[str]]:
    """(affirmed, negated) objects: a mention counts as negated when its clause holds a negation
    cue before *or after* it ("a dog is not in the image"), which the plain matcher cannot see."""
    affirmed: list[str] = []
    negated: list[str] = []
    # clauses split at punctuation and conjunctions, except that "neither A nor B" stays whole
    for clause in _CLAUSE_SPLIT.split(text):
        if not clause or not clause.strip():
            continue
        words = set(_WORD.findall(clause.lower()))
        has_cue = not NEGATION_CUES.isdisjoint(words) or "n't" in clause.lower()
        aff, neg = vocab.extract(clause)
        for o in list(aff) + list(neg):
            target = negated if has_cue else affirmed
            if o not in target:
                target.append(o)
    return affirmed, negated


def validate(req: ParaphraseRequest, answer: str, vocab: Vocabulary, max_ratio: float = 3.0) -> str | None:
    """None when `answer` is a faithful rewrite of req.text, else the reason it is not."""
    answer = (answer or "").strip()
    if not answer:
        return "empty"
    if len(answer) < 0.4 * len(req.text) or len(answer) > max(max_ratio * len(req.text), 60):
        return "length"
    want_aff, want_neg = analyse(req.text, vocab)
    present = list(req.present) if req.present is not None else want_aff
    absent = list(req.absent) if req.absent is not None else want_neg
    aff, neg = analyse(answer, vocab)
    if any(a not in neg for a in absent):
        return "lost_negation"
    if any(p not in aff for p in present):
        return "dropped_object"
    extra = (set(aff) | set(neg)) - set(present) - set(absent) - set(want_aff) - set(want_neg)
    if extra:
        return "new_object"
    if present and absent and (req.order == "affneg" or (not req.order and _aff_first(req.text, present, vocab))):
        if not _aff_first(answer, present, vocab):
            return "order"
    return None


def _aff_first(text: str, present: Sequence[str], vocab: Vocabulary) -> bool:
    """True when some affirmed object is mentioned before the first negation cue."""
    cue = re.search(r"\b(no|not|without|neither|none|except)\b|n't", text.lower())
    if cue is None:
        return True
    return any(o in present for o in vocab.extract(text[:cue.start()])[0])


class NoParaphraser:
    """The `none` backend: captions stay templated."""
    name = "none"

    def describe(self, stats: dict) -> dict:
        return {"backend": "none"}

    def paraphrase_many(self, requests: Sequence[ParaphraseRequest], categories: Sequence[str] = ()):
        return [r.text for r in requests], Counter(template=len(requests))

    def paraphrase_items(self, kind: str, items, categories: Sequence[str] = ()):
        return list(items), Counter()

    def outcome(self, stats: Counter, where: str) -> str:
        return "templated"


REQUEST_DEFAULTS = {"concurrency": 4, "retries": 3, "backoff": 0.5, "timeout": 60.0, "temperature": 0.2,
                    "seed": 0, "max_tokens": 120}


class OpenAIParaphraser:
    """Paraphrase through an OpenAI-compatible `/chat/completions` endpoint."""
    name = "openai"

    def __init__(self, url: str, model: str, *, api_key: str | None = None, cache_dir=None,
                 vocab: Vocabulary | None = None, allow_fallback: bool = False, **request):
        """request: REQUEST_DEFAULTS keys (concurrency, retries, backoff, timeout in seconds per
        request in total, temperature, seed, max_tokens)."""
        from negbench.construct.llm_http import check_url

        if not url or not model:
            raise ConfigError("the openai paraphrase backend needs a URL (--llm-url) and a model (--llm-model)")
        check_url(url)
        unknown = sorted(set(request) - set(REQUEST_DEFAULTS))
        if unknown:
            raise ConfigError(f"unknown LLM request options {unknown}; allowed: {sorted(REQUEST_DEFAULTS)}")
        r = {**REQUEST_DEFAULTS, **request}
        if r["timeout"] <= 0 or r["retries"] < 0 or r["concurrency"] < 1:
            raise ConfigError(f"need timeout > 0, retries >= 0, concurrency >= 1; got {r['timeout']}, "
                              f"{r['retries']}, {r['concurrency']}")
        self.url = url = url.rstrip("/")
        self.endpoint = url if url.endswith("/chat/completions") else url + "/chat/completions"
        self.model, self.concurrency, self.retries, self.backoff = model, r["concurrency"], r["retries"], r["backoff"]
        self.timeout, self.temperature, self.seed, self.max_tokens = (r["timeout"], r["temperature"], r["seed"],
                                                                      r["max_tokens"])
        self.api_key = api_key or os.environ.get("NEGBENCH_LLM_KEY") or os.environ.get("OPENAI_API_KEY")
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else None
        self.vocab = vocab or builtin_vocab()
        self._lock = threading.Lock()
        self.watch = None   # core.http.EndpointWatch: whether the endpoint ever answered
        self._give_up_after = self.concurrency
        self.allow_fallback = allow_fallback
        self.totals: Counter = Counter()   # over every file this paraphraser wrote (printed by the CLI)

    def describe(self, stats: dict) -> dict:
        return {"backend": "openai", "endpoint": self.endpoint, "model": self.model, "prompt_version": PROMPT_VERSION,
                "temperature": self.temperature, "seed": self.seed, "counts": dict(sorted(stats.items()))}

    # ---- prompt and cache
    def messages(self, req: ParaphraseRequest) -> list[dict]:
        msgs = [{"role": "system", "content": SYSTEM_PROMPT}]
        for q, a in FEW_SHOT:
            msgs += [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
        msgs.append({"role": "user", "content": f"Caption: {req.text}"})
        return msgs

    def key(self, req: ParaphraseRequest) -> str:
        return stable_hash(PROMPT_VERSION, self.model, self.temperature, self.seed, self.messages(req))

    def _cache_file(self, key: str) -> Path | None:
        return None if self.cache_dir is None else self.cache_dir / key[:2] / f"{key}.json"

    def _cached(self, key: str) -> str | None:
        f = self._cache_file(key)
        if f is not None and f.is_file():
            try:
                return json.loads(f.read_text(encoding="utf-8"))["answer"]
            except (json.JSONDecodeError, KeyError):
                return None
        return None

    def _store(self, key: str, req: ParaphraseRequest, answer: str) -> None:
        f = self._cache_file(key)
        if f is not None:
            write_json_atomic(f, {"prompt_version": PROMPT_VERSION, "model": self.model, "text": req.text,
                                  "answer": answer})

    # ---- HTTP
    def _post(self, messages: list[dict]) -> str:
        """One answer's text; LLMCallError (reason counted by the caller) after the retries."""
        from negbench.core.http import Retry, post_chat

        payload = {"model": self.model, "messages": messages, "temperature": self.temperature,
                   "seed": self.seed, "max_tokens": self.max_tokens}
        return post_chat(self.endpoint, payload, api_key=self.api_key, timeout=self.timeout,
                         retry=Retry(self.retries, self.backoff, self._give_up_after), watch=self.watch)

    def _warn_failures(self, by_reason: Counter, first_error: dict, asked: int) -> None:
        """One warning line per failure reason (with how many calls), or one line in all when
        nothing answers at the URL."""
        down = self.watch.down(self._give_up_after) if self.watch is not None else None
        if down:
            log.warning("paraphrase: %s; every caption of the %d asked keeps its template", down, asked)
            return
        for reason, n in sorted(by_reason.items()):
            log.warning("paraphrase: %d of %d calls failed (%s), keeping their templates: %s", n, asked, reason,
                        first_error[reason][:200])

    def outcome(self, stats: Counter, where: str) -> str:
        """The variant label of a paraphrased file: 'paraphrased', or 'templated' when no
        answer was usable and fallback is allowed; else a NegbenchError (a paraphrased file
        identical to the templated one must not pass as paraphrased)."""
        self.totals.update(stats)
        if stats.get("paraphrased", 0) or not sum(stats.values()):
            return "paraphrased"
        if self.allow_fallback:
            log.warning("%s: no usable paraphrase (%s); labelled 'templated'", where, dict(stats))
            return "templated"
        raise NegbenchError(f"{where}: every paraphrase failed or was invalid ({dict(sorted(stats.items()))}); "
                            f"check --llm-url/--llm-model, or pass --allow-fallback to keep the templates")

    # ---- public
    def paraphrase_many(self, requests: Sequence[ParaphraseRequest], categories: Sequence[str] = ()
                        ) -> tuple[list[str], Counter]:
        """Rewrite each request's text; invalid or failed answers keep the template."""
        vocab = self.vocab if not categories else Vocabulary.from_names(categories).merged(self.vocab)
        stats: Counter = Counter()
        keys = [self.key(r) for r in requests]
        answers: dict[str, str | None] = {}
        todo: dict[str, ParaphraseRequest] = {}
        for k, r in zip(keys, requests):
            if k in answers or k in todo:
                continue
            hit = self._cached(k)
            if hit is not None:
                answers[k] = hit
                stats["cache_hits"] += 1
            else:
                todo[k] = r

        failures: dict[str, str] = {}
        first_error: dict[str, str] = {}   # reason -> the first call's words, said once

        def work(item):
            from negbench.construct.llm_http import LLMCallError

            k, r = item
            try:
                ans = self._post(self.messages(r))
            except LLMCallError as exc:
                failures[k] = exc.reason
                first_error.setdefault(exc.reason, str(exc))
                return k, None
            self._store(k, r, ans)   # cached as soon as it arrives: an interrupted run resumes
            return k, ans

        if todo:
            from negbench.core.http import EndpointWatch

            self.watch = self.watch or EndpointWatch(self.url)
            self._give_up_after = min(self.concurrency, len(todo))
            with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
                for k, ans in pool.map(work, list(todo.items())):
                    answers[k] = ans
                    stats["calls"] += 1
            self._warn_failures(Counter(failures.values()), first_error, len(todo))
        out = []
        for k, r in zip(keys, requests):
            ans = answers.get(k)
            if ans is None:
                stats["fallback_error"] += 1   # every failed call, whatever the cause ...
                stats[f"error_{failures.get(k, 'unknown')}"] += 1   # ... and why
                out.append(r.text)
                continue
            reason = validate(r, ans, vocab)
            if reason:
                stats[f"fallback_{reason}"] += 1
                out.append(r.text)
            else:
                stats["paraphrased"] += 1
                out.append(ans.strip())
        return out, stats

    def paraphrase_items(self, kind: str, items, categories: Sequence[str] = ()):
        """MCQ items (every option) or retrieval items (every caption) -> paraphrased copies."""
        reqs, where = [], []
        for i, it in enumerate(items):
            for j, c in enumerate(it.captions):
                reqs.append(ParaphraseRequest(kind, c))
                where.append((i, j))
        texts, stats = self.paraphrase_many(reqs, categories)
        caps = [list(it.captions) for it in items]
        for (i, j), t in zip(where, texts):
            caps[i][j] = t
        return [replace(it, captions=tuple(c)) for it, c in zip(items, caps)], stats


PARAPHRASE_BACKENDS: Registry = Registry("paraphrase backend")
PARAPHRASE_BACKENDS.register("none", NoParaphraser)
PARAPHRASE_BACKENDS.register("openai", OpenAIParaphraser)


def make_paraphraser(name: str = "none", **kwargs):
    return PARAPHRASE_BACKENDS.get(name)(**kwargs)
