"""The HTTP side of the LLM client: where the key goes, how long a call may take, how much
it may send back, and what counts as an answer.

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

import http.client
import json
import logging
import socket
import threading
import time
import urllib.parse

from negbench.core.urls import is_loopback, key_allowed as url_key_allowed  # noqa: F401
from negbench.core.errors import ConfigError

log = logging.getLogger(__name__)
MAX_RESPONSE_BYTES = 1 << 20
_warned_hosts: set[str] = set()


class LLMCallError(Exception):
    """One failed call. `reason` is a short counter key; `retry` says whether trying again may help."""

    def __init__(self, reason: str, detail: str, retry: bool = False):
        super().__init__(f"{reason}: {detail}")
        self.reason, self.retry = reason, retry


def check_url(url: str) -> urllib.parse.SplitResult:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"--llm-url {url!r}: need an http:// or https:// URL with a host")
    return parts


def key_allowed(url: str) -> bool:
    check_url(url)
    return url_key_allowed(url)


def _headers(url: str, api_key: str | None, body: bytes) -> dict:
    headers = {"Content-Type": "application/json", "Content-Length": str(len(body)), "Accept": "application/json"}
    if api_key:
        if key_allowed(url):
            headers["Authorization"] = f"Bearer {api_key}"
        else:
            host = urllib.parse.urlsplit(url).hostname or url
            if host not in _warned_hosts:
                _warned_hosts.add(host)
                log.warning("not sending the API key to %s: plain http to a non-loopback host (use https)", host)
    return headers


def _read_body(resp, deadline: float, max_bytes: int) -> bytes:
    length = resp.getheader("Content-Length")
    if length and length.isdigit() and int(length) > max_bytes:
        raise LLMCallError("too_large", f"Content-Length {length} > {max_bytes} bytes")
    chunks, total = [], 0
    while True:
        if time.monotonic() > deadline:
            raise LLMCallError("timeout", "total deadline passed while reading the body", retry=True)
        chunk = resp.read1(65536)
        if not chunk:
            return b"".join(chunks)
        total += len(chunk)
        if total > max_bytes:
            raise LLMCallError("too_large", f"body over {max_bytes} bytes")
        chunks.append(chunk)


def post_json(url: str, payload: dict, *, api_key: str | None, timeout: float,
              max_bytes: int = MAX_RESPONSE_BYTES) -> object:
    """POST `payload` as JSON; the parsed JSON answer, or LLMCallError."""
    parts = check_url(url)
    body = json.dumps(payload).encode()
    deadline = time.monotonic() + timeout
    conn_cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = conn_cls(parts.hostname, parts.port, timeout=timeout)
    # the watchdog closes the socket at the deadline, whatever read is blocking at the time
    watchdog = threading.Timer(timeout, _abort, args=(conn,))
    watchdog.daemon = True
    watchdog.start()
    try:
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        conn.request("POST", path or "/", body=body, headers=_headers(url, api_key, body))
        resp = conn.getresponse()
        if 300 <= resp.status < 400:
            raise LLMCallError("redirect", f"HTTP {resp.status} to {resp.getheader('Location')!r} refused "
                               f"(set --llm-url to the final address)")
        if resp.status != 200:
            retry = resp.status in (408, 409, 429) or resp.status >= 500
            raise LLMCallError(f"http_{resp.status}", resp.reason or "", retry=retry)
        raw = _read_body(resp, deadline, max_bytes)
    except LLMCallError:
        raise
    except (OSError, http.client.HTTPException) as exc:
        reason = "timeout" if time.monotonic() >= deadline or isinstance(exc, TimeoutError) else "connection"
        raise LLMCallError(reason, f"{type(exc).__name__}: {exc}", retry=True) from None
    finally:
        watchdog.cancel()
        conn.close()
    return _parse_json(raw)


def _abort(conn) -> None:
    sock = getattr(conn, "sock", None)
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def _parse_json(raw: bytes) -> object:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise LLMCallError("bad_utf8", str(exc)) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise LLMCallError("bad_json", str(exc)) from None


def chat_content(data: object) -> str:
    """choices[0].message.content of a chat-completions answer, or LLMCallError('bad_shape')."""
    choices = data.get("choices") if isinstance(data, dict) else None
    first = choices[0] if isinstance(choices, list) and choices else None
    message = first.get("message") if isinstance(first, dict) else None
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(content, str):
        raise LLMCallError("bad_shape", f"no string at choices[0].message.content in {str(data)[:80]!r}")
    return content
