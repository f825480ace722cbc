"""LLM decomposition of captions for the negaware scorers: an OpenAI-compatible chat endpoint
splits each caption into what it affirms and the objects it says are absent.

    negaware:decompose,llm=MODEL@URL:BASE        e.g. llm=qwen2.5:14b@http://127.0.0.1:8000/v1

Every call goes through negbench.core.http (total deadline, size cap, no redirects, the key
policy: the key from $NEGBENCH_LLM_KEY or $OPENAI_API_KEY goes only to https or loopback URLs).
An answer is used only when it is valid (`validate`): one JSON object {"affirmed": str,
"negated": [str, ...]}, each negated phrase found in the caption (case-insensitive), the affirmed
part free of negation cues. Anything else -- a failed call, a malformed or invalid answer -- falls
back to the rule parser (negbench.core.negation_parse) and is counted by reason.

Answers are cached on disk, one JSON file per (model, PROMPT_VERSION, caption), valid or not, so a
rerun asks the endpoint nothing; failed calls are not cached (the next run asks again). A caption
with no negation cue at all is never sent: the rule parser leaves it as it is, so it keeps the base
model's score bit for bit. An endpoint where nothing answers (connection refused, host not found
on the first calls, one per worker, and no answer ever) is said once, in one warning line naming
the URL; the captions left are not sent and fall back to the rule parser with the same reason.
"""
from __future__ import annotations

import json
import logging
import os
import re
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from negbench.core.errors import ConfigError
from negbench.core.negation_parse import NegationParse, parse_negation

log = logging.getLogger(__name__)

PROMPT_VERSION = "decompose-llm-1"   # part of the model identity and the cache key: bump when the prompt changes
CACHE_ENV = "NEGBENCH_LLM_CACHE_DIR"
EMBED_CACHE_ENV = "NEGBENCH_CACHE_DIR"
KEY_ENVS = ("NEGBENCH_LLM_KEY", "OPENAI_API_KEY")
MAX_NEGATED = 16
MAX_PHRASE_CHARS = 200

SYSTEM_PROMPT = (
    "You split an image or video caption into what it affirms and the objects it says are absent. "
    "Answer with one JSON object and nothing else: "
    '{"affirmed": "<the caption with every negated part removed, as a short caption; \\"\\" if it affirms '
    'nothing>", "negated": ["<each object the caption says is absent, copied word for word from the caption, '
    'without a leading article>"]}. The affirmed text must not contain negation words (no, not, never, without, '
    "neither, nor, except). If the caption negates nothing, answer the caption unchanged and an empty list.")
FEW_SHOT = (
    ("This image features a cat, but not a dog.", {"affirmed": "This image features a cat.", "negated": ["dog"]}),
    ("A beach with no dogs and people swimming.", {"affirmed": "A beach with people swimming.", "negated": ["dogs"]}),
    ("There is neither a bus nor a bike in this photo.", {"affirmed": "", "negated": ["bus", "bike"]}),
)
# words that make a caption worth sending (a superset of the rule parser's cues, checked with it)
NEGATION_CUE = re.compile(
    r"\b(?:no|not|never|none|nothing|nobody|nowhere|neither|nor|without|except|excluding|cannot|lack\w*|"
    r"absent|absence|missing|devoid|minus)\b|n't\b|\bfree\s+of\b", re.IGNORECASE)
_ARTICLE = re.compile(r"^(?:a|an|the|any|some)\s+", re.IGNORECASE)
_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.DOTALL | re.IGNORECASE)
# llm=MODEL@URL inside the option list: the model may hold ':' (ollama's 'qwen2.5:14b'); the URL's
# host and path hold no ':' or ',' (they end the option), and no user:password@ part
LLM_OPTION = re.compile(r"llm=(?P<model>[^,@\s]+?)@(?P<url>https?://(?:\[[0-9A-Fa-f:.]+\]|[^/:,@\s\[\]]+)"
                        r"(?::\d+)?(?:/[^:,@\s]*)?)(?=[,:])")
_USERINFO = re.compile(r"llm=[^,\s]*?https?://[^/,\s]*@")   # a user:password@ in the URL: refused


@dataclass(frozen=True)
class LLMSettings:
    model: str
    url: str
    timeout: float = 30.0     # seconds per call in all (connect + answer)
    retries: int = 2          # more tries of a call that may succeed again (timeout, 5xx, connection)
    workers: int = 4          # calls in flight at once


def check_settings(s: LLMSettings) -> LLMSettings:
    """`s`, or a one-line ConfigError naming the bad value."""
    from negbench.core.http import check_url

    check_url(s.url, "negaware llm=")
    if not (s.timeout > 0 and s.retries >= 0 and s.workers >= 1):   # 'not >' also catches nan
        raise ConfigError(f"negaware: need llm_timeout > 0, llm_retries >= 0, llm_workers >= 1; got "
                          f"{s.timeout}, {s.retries}, {s.workers}")
    return s


def split_llm_option(spec: str) -> tuple[str, str | None, str | None]:
    """'decompose,llm=M@http://h:1/v1:BASE' -> ('decompose,llm=@:BASE', 'M', 'http://h:1/v1'):
    the option's value taken out so the rest parses on ':' as before; (spec, None, None) without it."""
    at = re.match(r"[^:]*?,llm=", spec)
    if at is None:
        return spec, None, None
    start = at.end() - len("llm=")
    m = LLM_OPTION.match(spec, start)
    if m is None or _USERINFO.match(spec, start):
        raise ConfigError(f"negaware: option llm=... in {spec!r} must be llm=MODEL@URL with an http(s) URL ending "
                          f"the option (no user:password@), e.g. llm=gpt-4o-mini@https://api.openai.com/v1")
    return spec[:start] + "llm=@" + spec[m.end():], m.group("model"), m.group("url")


def default_cache_dir() -> Path:
    """$NEGBENCH_LLM_CACHE_DIR; else negaware-llm/ in the embedding cache folder ($NEGBENCH_CACHE_DIR);
    else ~/.cache/negbench/llm."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    if os.environ.get(EMBED_CACHE_ENV):
        return Path(os.environ[EMBED_CACHE_ENV]).expanduser() / "negaware-llm"
    return Path.home() / ".cache" / "negbench" / "llm"


def messages(caption: str) -> list[dict]:
    """The fixed prompt (PROMPT_VERSION) for one caption."""
    out = [{"role": "system", "content": SYSTEM_PROMPT}]
    for q, a in FEW_SHOT:
        out += [{"role": "user", "content": f"Caption: {q}"}, {"role": "assistant", "content": json.dumps(a)}]
    return out + [{"role": "user", "content": f"Caption: {caption}"}]


def wants_llm(caption: str) -> bool:
    """Whether a caption has any negation cue (else it is never sent, and keeps the base model's score)."""
    return bool(NEGATION_CUE.search(caption)) or parse_negation(caption).has_negation


# ---------------------------------------------------------------- answers (pure)

def _squash(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


def validate(caption: str, content: str) -> tuple[NegationParse | None, str]:
    """(the parse, '') for a valid answer, else (None, 'malformed_json' | 'invalid')."""
    fenced = _FENCE.match(content)   # models often wrap JSON in a ```json fence despite the prompt
    try:
        data = json.loads(fenced.group(1) if fenced else content)
    except (json.JSONDecodeError, RecursionError):
        return None, "malformed_json"
    if not isinstance(data, dict):
        return None, "malformed_json"
    affirmed, negated = data.get("affirmed"), data.get("negated")
    if (not isinstance(affirmed, str) or not isinstance(negated, list) or len(negated) > MAX_NEGATED
            or not all(isinstance(n, str) and 0 < len(n.strip()) <= MAX_PHRASE_CHARS for n in negated)):
        return None, "invalid"
    if not negated:   # the model says nothing is negated: the caption as it is (the base model's score)
        return NegationParse(caption, caption, (), ()), ""
    whole = _squash(caption)
    if any(_squash(n) not in whole for n in negated) or NEGATION_CUE.search(affirmed):
        return None, "invalid"
    objects = tuple(dict.fromkeys(_ARTICLE.sub("", n.strip()) or n.strip() for n in negated))
    return NegationParse(caption, affirmed.strip(), objects, ("llm",) * len(objects)), ""


# ---------------------------------------------------------------- the client

class LLMDecomposer:
    """Decomposes captions through an OpenAI-compatible endpoint; counts what happened to each
    distinct caption (`counts`)."""

    def __init__(self, settings: LLMSettings, *, api_key: str | None = None, cache_dir=None):
        s = check_settings(settings)
        url = s.url.rstrip("/")
        self.settings = s
        self.endpoint = url if url.endswith("/chat/completions") else url + "/chat/completions"
        self.api_key = api_key or next((os.environ[k] for k in KEY_ENVS if os.environ.get(k)), None)
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
        self._done: dict[str, tuple[NegationParse, str]] = {}   # caption -> (parse, outcome)
        self._lock = threading.Lock()
        self._warned: set[str] = set()
        self.watch = None          # core.http.EndpointWatch: made with the first call (imports stay light)
        self._give_up_after = 1
        self.requests = 0          # HTTP calls made (retries included)
        self.cache_hits = 0

    # -- public
    def parse_many(self, captions: Sequence[str]) -> list[NegationParse]:
        """The parse of each caption: the LLM's when valid, else the rule parser's."""
        todo = [c for c in dict.fromkeys(captions) if c not in self._done]
        ask = []
        for c in todo:
            if not wants_llm(c):
                self._done[c] = (parse_negation(c), "no_cue")
            elif (hit := self._cached(c)) is not None:
                self.cache_hits += 1
                self._settle(c, hit)
            else:
                ask.append(c)
        if ask:
            from negbench.core.http import EndpointWatch

            self.watch = self.watch or EndpointWatch(self.settings.url)
            self._give_up_after = min(self.settings.workers, len(ask))
            with ThreadPoolExecutor(max_workers=self._give_up_after) as pool:
                answers = list(pool.map(self._ask, ask))
            for c, content, failure in answers:   # after every call: a down endpoint is said once
                self._settle(c, content, failure)
        return [self._done[c][0] for c in captions]

    def counts(self) -> dict:
        """{'llm': captions decomposed by the LLM, 'no_cue': captions not sent (no negation cue),
        'fallback': captions parsed by the rules instead, 'fallback_REASON': the same by reason
        (a core.http reason such as 'http_500' or 'timeout', 'bad_shape', 'malformed_json',
        'invalid'), 'requests': HTTP calls made, 'cache_hits': answers read from the cache}."""
        out = Counter(outcome for _, outcome in self._done.values())
        fallbacks = {k: v for k, v in out.items() if k.startswith("fallback_")}
        return {"llm": out["llm"], "no_cue": out["no_cue"], "fallback": sum(fallbacks.values()),
                **dict(sorted(fallbacks.items())), "requests": self.requests, "cache_hits": self.cache_hits}

    # -- one caption
    def _settle(self, caption: str, content: str | None, failure: str = "") -> None:
        reason = failure
        if content is not None:
            parse, reason = validate(caption, content)
            if parse is not None:
                self._done[caption] = (parse, "llm")
                return
        down = self.watch.down(self._give_up_after) if failure and self.watch else None
        if down and "unreachable" not in self._warned:   # said once, in place of every caption's failure
            self._warned.update({"unreachable", reason})
            log.warning("negaware llm: %s; the rule parser splits every caption", down)
        elif reason not in self._warned:   # once per reason: an endpoint that is down fails every caption
            self._warned.add(reason)
            log.warning("negaware llm: %s for %r; the rule parser splits it (and any caption with the same "
                        "problem: see decomposition_counts())", reason, caption[:80])
        self._done[caption] = (parse_negation(caption), f"fallback_{reason}")

    def _ask(self, caption: str) -> tuple[str, str | None, str]:
        """(caption, the answer's content, '') or (caption, None, the failure reason)."""
        from negbench.core.http import HTTPCallError

        try:
            content = self._post(messages(caption))
        except HTTPCallError as exc:
            return caption, None, exc.reason
        self._store(caption, content)   # stored as it arrives: an interrupted run resumes
        return caption, content, ""

    def _post(self, msgs: list[dict]) -> str:
        from negbench.core.http import Retry, post_chat

        s = self.settings
        payload = {"model": s.model, "messages": msgs, "temperature": 0, "seed": 0, "max_tokens": 300}
        return post_chat(self.endpoint, payload, api_key=self.api_key, timeout=s.timeout,
                         retry=Retry(s.retries, 0.5, self._give_up_after), watch=self.watch, flag="negaware llm=",
                         on_request=self._count_request)

    def _count_request(self) -> None:
        with self._lock:
            self.requests += 1

    # -- the answer cache
    def _cache_file(self, caption: str) -> Path:
        from negbench.core.io import stable_hash

        key = stable_hash(PROMPT_VERSION, self.settings.model, caption)
        return self.cache_dir / key[:2] / f"{key}.json"

    def _cached(self, caption: str) -> str | None:
        f = self._cache_file(caption)
        try:
            entry = json.loads(f.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        ok = isinstance(entry, dict) and entry.get("caption") == caption and isinstance(entry.get("content"), str)
        return entry["content"] if ok else None

    def _store(self, caption: str, content: str) -> None:
        from negbench.core.io import write_json_atomic

        write_json_atomic(self._cache_file(caption), {"prompt_version": PROMPT_VERSION, "model": self.settings.model,
                                                      "caption": caption, "content": content})


__all__ = ["LLMDecomposer", "LLMSettings", "check_settings", "NEGATION_CUE", "PROMPT_VERSION", "SYSTEM_PROMPT", "default_cache_dir",
           "messages", "split_llm_option", "validate", "wants_llm"]
