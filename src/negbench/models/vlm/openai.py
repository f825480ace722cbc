"""`vlm:openai:MODEL@URL`: any OpenAI-compatible chat endpoint that takes `image_url` parts
(`vllm serve`, llama.cpp server, Ollama, hosted APIs). Images travel as base64 PNG data URLs.

Requests go through negbench.core.http (a total deadline per request, a size cap on the answer)
with bounded concurrency, retries with exponential backoff
on transient failures (timeouts, connection errors, 408/409/429/5xx) and one total deadline
for the whole run (counted from the first request); a request that still fails comes back as Answer(None, reason), which the
evaluation counts (and scores wrong), never as an exception. The one exception: when the first
requests (one per worker) all find nothing at the URL (connection refused, host not found) and no
request ever got an answer, the run stops at once with EndpointUnreachable, one line naming the
URL, instead of spending every question's retries on a server that is not running. Redirects are not followed (the
key must not travel to another URL), and the API key ($NEGBENCH_VLM_KEY, else $OPENAI_API_KEY)
is only sent to https URLs or to loopback hosts.
"""
from __future__ import annotations

import base64
import io
import json
import logging
import os
import re
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Sequence

import numpy as np

from negbench.core import http as _http
from negbench.core.errors import ConfigError
from negbench.core.urls import is_loopback, key_allowed  # noqa: F401  (the one secret policy)
from negbench.models.vlm.base import Answer, GenerativeAdapter, ProtocolUnsupported, Query

log = logging.getLogger(__name__)
KEY_ENV = ("NEGBENCH_VLM_KEY", "OPENAI_API_KEY")
_SPEC = re.compile(r"^(?P<model>[^@]+(?:@[^@]+)*?)@(?P<url>https?://\S+)$")
_REFUSED = {"http_400", "http_404", "http_422", "http_501"}  # the endpoint refuses the request's fields
MAX_REPLY_BYTES = 16 << 20   # a chat answer, or one prompt's per-token log-probabilities


def image_data_url(image) -> str:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


class OpenAIChatVLM(GenerativeAdapter):
    # likelihood through vLLM's `prompt_logprobs` + `continue_final_message` chat extensions;
    # an endpoint without them is found on the first request (ProtocolUnsupported)
    supports_likelihood = True

    def __init__(self, model: str, url: str, *, api_key: str | None = None, concurrency: int = 4,
                 retries: int = 2, timeout: float = 60.0, deadline: float | None = None):
        if concurrency < 1 or retries < 0 or timeout <= 0:
            raise ConfigError(f"concurrency >= 1, retries >= 0 and timeout > 0 required; got "
                              f"{concurrency}, {retries}, {timeout}")
        self.endpoint = chat_endpoint(url)
        self.watch = _http.EndpointWatch(url)  # answered at all? (else stop after the first wave)
        self._give_up_after = concurrency
        self.model, self.concurrency, self.retries, self.timeout = model, concurrency, retries, timeout
        self.deadline = deadline
        key = api_key or next((os.environ[k] for k in KEY_ENV if os.environ.get(k)), None)
        if key and not key_allowed(self.endpoint):
            log.warning("%s is plain http and not this machine: the API key is not sent", self.endpoint)
            key = None
        self._key = key
        self.backoff = 0.5
        self._stop_at: float | None = None
        self._gives_prompt_logprobs = False  # seen once: later failures are counted, not fatal

    def identity(self) -> str:
        return _identity(self.model, self.endpoint)

    def __repr__(self) -> str:  # never shows the key
        return f"OpenAIChatVLM({self.model!r} @ {self.endpoint!r})"

    def body(self, query: Query, max_new_tokens: int) -> bytes:
        content = [{"type": "image_url", "image_url": {"url": image_data_url(im)}} for im in query.images]
        content.append({"type": "text", "text": query.prompt})
        return json.dumps({"model": self.model, "messages": [{"role": "user", "content": content}],
                           "temperature": 0, "max_tokens": max_new_tokens, "seed": 0}).encode()

    def _post_once(self, body: bytes, timeout: float, extract):
        """One request through negbench.core.http (total deadline, size cap, no redirects, the
        key policy) -> (extract(reply JSON), None) or (None, 'malformed'); HTTPCallError otherwise."""
        raw = _http.post(self.endpoint, body, api_key=self._key, timeout=timeout, max_bytes=MAX_REPLY_BYTES,
                         flag="vlm:openai: URL").body
        try:
            return extract(json.loads(raw.decode("utf-8"))), None
        except (ValueError, KeyError, IndexError, TypeError, AttributeError, StopIteration, RecursionError):
            return None, "malformed"

    def ask(self, body: bytes, stop_at: float | None, extract=None) -> tuple:
        """One request with retries -> (extract(reply JSON), None) or (None, reason); never raises.
        Reasons: 'http_<status>' for any status but 200 (redirects included), else the client's
        ('timeout', 'connection', 'protocol', 'short_body', 'too_large'), or 'deadline'."""
        extract = extract or chat_content
        reason = "deadline"
        for attempt in range(self.retries + 1):
            left = None if stop_at is None else stop_at - time.monotonic()
            if left is not None and left <= 0:
                return None, "deadline"
            if attempt:
                time.sleep(min(self.backoff * 2 ** (attempt - 1), left if left is not None else 1e9))
            if self.watch.down(self._give_up_after):  # nothing at the URL: the caller raises
                return None, "connection"
            try:
                got = self._post_once(body, self.timeout if left is None else max(0.01, min(self.timeout, left)),
                                      extract)
            except _http.HTTPCallError as exc:
                self.watch.saw(exc)
                reason = f"http_{exc.status}" if exc.status is not None else exc.reason
                if not exc.retry:
                    return None, reason  # refusals, redirects, oversized answers do not heal by retrying
                continue
            self.watch.saw(None)
            return got
        return None, reason

    def _stop_if_unreachable(self, asked: int) -> None:
        """EndpointUnreachable once the first min(concurrency, asked) requests found nothing at the
        URL and none was ever answered; nothing else (a server failing now and then is counted)."""
        self._give_up_after = max(1, min(self.concurrency, asked))
        why = self.watch.down(self._give_up_after)
        if why:
            raise _http.EndpointUnreachable(why)

    def score_body(self, images, prompt: str, answer: str | None) -> bytes:
        """The user turn (answer None: with the assistant prefix) or the user turn plus an open
        assistant turn holding `answer`; the endpoint returns each prompt token's log-probability."""
        content = [{"type": "image_url", "image_url": {"url": image_data_url(im)}} for im in images]
        messages = [{"role": "user", "content": content + [{"type": "text", "text": prompt}]}]
        turn = {"add_generation_prompt": True}
        if answer is not None:
            messages.append({"role": "assistant", "content": answer})
            turn = {"add_generation_prompt": False, "continue_final_message": True}
        return json.dumps({"model": self.model, "messages": messages, "max_tokens": 1, "temperature": 0,
                           "prompt_logprobs": 0, **turn}).encode()

    def option_logprobs(self, images, prompt: str, options: Sequence[str]) -> np.ndarray:
        """log p(option tokens | prefix) = the option request's prompt tokens after the prefix
        request's; NaN rows for options whose requests failed or whose tokens do not extend the prefix."""
        if self.deadline is not None and self._stop_at is None:
            self._stop_at = time.monotonic() + self.deadline
        bodies = [self.score_body(images, prompt, None)] + [self.score_body(images, prompt, o) for o in options]
        self._stop_if_unreachable(1)  # an earlier question found nothing there: stop before asking again
        first = []
        if not self._gives_prompt_logprobs:  # the first request alone: an endpoint without them stops the run
            first = [self.ask(bodies[0], self._stop_at, prompt_token_logprobs_or_none)]
            self._stop_if_unreachable(1)
            self._check_prompt_logprobs(*first[0])
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            replies = first + list(pool.map(lambda b: self.ask(b, self._stop_at, prompt_token_logprobs_or_none),
                                            bodies[len(first):]))
        replies = [(r, e or (None if r is not None else "malformed")) for r, e in replies]
        out = np.full((len(options), 2), np.nan)
        base, base_error = replies[0]
        for k, (full, error) in enumerate(replies[1:]):
            if base_error or error:
                log.warning("%s: option not scored: %s", self.endpoint, base_error or error)
                continue
            tail = full[len(base):]
            if [t for t, _ in full[:len(base)]] == [t for t, _ in base] and tail:
                out[k] = (sum(lp for _, lp in tail), len(tail))
        return out

    def _check_prompt_logprobs(self, reply, error: str | None) -> None:
        """First likelihood request: a refusal of the request's fields (HTTP 400/404/422/501) or an
        answer without `prompt_logprobs` means the endpoint cannot score given answers at all."""
        if reply is None and (error is None or error in _REFUSED):
            said = f"answered {error}" if error else "answered without prompt_logprobs"
            raise ProtocolUnsupported(
                f"{self.endpoint} does not give prompt log-probabilities ({said} to a request with "
                f"prompt_logprobs): the likelihood protocol needs vLLM's `prompt_logprobs` chat extension "
                f"(vllm serve); use --protocol choice with this endpoint")
        if reply is not None:
            self._gives_prompt_logprobs, self.likelihood_mode = True, "prompt-logprobs"

    def _answer(self, query: Query, max_new_tokens: int) -> Answer:
        text, error = self.ask(self.body(query, max_new_tokens), self._stop_at)  # body built here: base64 is big
        return Answer(text, error)

    def choose(self, queries: Sequence[Query], *, max_new_tokens: int = 16, batch_size: int = 8,
               progress: bool = False) -> list[Answer]:
        from tqdm.auto import tqdm

        if self.deadline is not None and self._stop_at is None:  # one deadline for the whole run
            self._stop_at = time.monotonic() + self.deadline
        self._stop_if_unreachable(len(queries))  # an earlier call found nothing there: ask nothing
        answers: list[Answer | None] = [None] * len(queries)
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool, \
                tqdm(total=len(queries), desc="requests", unit="q", disable=not progress, leave=False) as bar:
            futures = {pool.submit(self._answer, q, max_new_tokens): i
                       for i, q in enumerate(queries)}
            for fut in as_completed(futures):
                answers[futures[fut]] = fut.result()
                bar.update()
        self._stop_if_unreachable(len(queries))
        return answers


def chat_content(reply: dict) -> str:
    """The answer's text; a reply without one raises (ask() counts it as 'malformed')."""
    from negbench.core.http import chat_content as content_of

    content = content_of(reply)
    if content is None:
        raise TypeError("no string at choices[0].message.content")
    return content


def prompt_token_logprobs(reply: dict) -> list[tuple[str, float]]:
    """vLLM's `prompt_logprobs` (one {token_id: {logprob, ...}} per prompt token, None for the
    first; with prompt_logprobs=0 only the prompt's own token) -> [(token_id, logprob)]."""
    out = []
    for entry in reply["prompt_logprobs"]:
        if entry is None:
            out.append(("", 0.0))
            continue
        if len(entry) != 1:
            raise ValueError("expected exactly the prompt token per position (prompt_logprobs=0)")
        token, value = next(iter(entry.items()))
        out.append((str(token), float(value["logprob"])))
    return out


def prompt_token_logprobs_or_none(reply: dict) -> list[tuple[str, float]] | None:
    """prompt_token_logprobs, or None for a well-formed chat answer that has no `prompt_logprobs`
    (an endpoint that ignored the field)."""
    if isinstance(reply, dict) and reply.get("prompt_logprobs") is None and "choices" in reply:
        return None
    return prompt_token_logprobs(reply)


def parse_spec(spec: str) -> tuple[str, str]:
    """'MODEL@URL' -> (MODEL, URL); the URL starts at the last '@http(s)://'."""
    m = _SPEC.match(spec)
    if not m:
        raise ConfigError(f"vlm:openai:{spec}: expected vlm:openai:MODEL@URL, e.g. "
                          f"vlm:openai:Qwen/Qwen2-VL-2B-Instruct@http://127.0.0.1:8000/v1")
    return m.group("model"), m.group("url")


def chat_endpoint(url: str) -> str:
    """The chat completions URL of a base URL ('.../v1' -> '.../v1/chat/completions')."""
    url = url.rstrip("/")
    return url if url.endswith("/chat/completions") else url + "/chat/completions"


def _identity(model: str, endpoint: str) -> str:
    return f"openai-vlm:{model}@{endpoint}"


def identity(spec: str, precision: str = "fp32") -> str | None:
    """OpenAIChatVLM.identity() of `vlm:openai:MODEL@URL` without building a client (the vlm
    backend's MODEL_IDENTITIES entry): a fully cached run needs no endpoint. None for a spec
    that does not parse (the loader says what is wrong)."""
    try:
        model, url = parse_spec(spec)
    except ConfigError:
        return None
    return _identity(model, chat_endpoint(url))


def load(spec: str, device=None, precision: str = "fp32", **options) -> OpenAIChatVLM:
    model, url = parse_spec(spec)
    return OpenAIChatVLM(model, url, **options)
