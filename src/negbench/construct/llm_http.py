"""The HTTP side of the LLM client: where the key goes, how long a call may take, how much
it may send back, and what counts as an answer. The transport is negbench.core.http (the one
client of every endpoint); this module adds the chat-completions answer shape.

- The API key is sent only to https URLs or to loopback hosts (127.0.0.0/8, ::1, localhost);
  to any other plain-http URL the request goes without it (with one warning).
- Redirects are never followed (a 3xx is an error), so the key never reaches another host.
- Each call has a total deadline (connect + headers + body): a server trickling bytes is cut
  off at the deadline, not at the deadline per socket read.
- A body over MAX_RESPONSE_BYTES is refused.
- Every malformed answer (not UTF-8, not JSON, not an object with choices[0].message.content
  a string) is an LLMCallError with a short reason, which the caller counts.
"""
from __future__ import annotations

from negbench.core import http as _http
from negbench.core.http import MAX_RESPONSE_BYTES, check_url  # noqa: F401  (re-exported)
from negbench.core.urls import is_loopback, key_allowed as url_key_allowed  # noqa: F401

# one failed call: the shared client's error (reason: a short counter key; retry: may help)
LLMCallError = _http.HTTPCallError


def key_allowed(url: str) -> bool:
    check_url(url)
    return url_key_allowed(url)


def post_json(url: str, payload: dict, *, api_key: str | None, timeout: float,
              max_bytes: int = MAX_RESPONSE_BYTES) -> object:
    """POST `payload` as JSON through negbench.core.http; the parsed JSON answer, or LLMCallError."""
    return _http.post_json(url, payload, api_key=api_key, timeout=timeout, max_bytes=max_bytes)


def chat_content(data: object) -> str:
    """choices[0].message.content of a chat-completions answer, or LLMCallError('bad_shape')."""
    from negbench.core.http import chat_content as content_of

    content = content_of(data)
    if content is None:
        raise LLMCallError("bad_shape", f"no string at choices[0].message.content in {str(data)[:80]!r}")
    return content
