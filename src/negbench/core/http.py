"""The one HTTP client negbench talks to endpoints with (LLM paraphrase, VLM chat), on `requests`.

What every call guarantees, whatever the server does:
- one total deadline (connect + headers + body): a watchdog shuts the socket at the deadline,
  so a server trickling header or body bytes is cut off there, not after a timeout per read;
- an answer size cap: the body is streamed and refused past `max_bytes` (a Content-Length above
  it is refused before reading), so memory stays bounded whatever the server sends;
- redirects are never followed (a 3xx is a failure), so a secret never reaches another URL;
- the key policy (negbench.core.urls.key_allowed): an API key goes only to https URLs or to
  loopback hosts; to any other plain-http URL the request goes without it (one warning per host);
- proxies and ~/.netrc from the environment are not used: the request goes to the URL given;
- every failure is an HTTPCallError whose `reason` is a short counter key ('timeout',
  'connection', 'protocol', 'short_body', 'too_large', 'redirect', 'http_500', 'bad_utf8',
  'bad_json') and whose `retry` says whether trying again may help; never another exception.
  A 'connection' failure that shows nothing listens at the URL ('connection refused') or that the
  host name does not resolve ('host not found') says so in `unreachable`; EndpointWatch turns a
  run whose first calls all end that way into one EndpointUnreachable error instead of a
  counted failure per question.
"""
from __future__ import annotations

import http.client
import json
import logging
import socket
import threading
import time
import urllib.parse
from dataclasses import dataclass
from typing import NamedTuple

from negbench.core.errors import ConfigError
from negbench.core.urls import key_allowed

log = logging.getLogger(__name__)
MAX_RESPONSE_BYTES = 1 << 20
CHUNK = 1 << 16
_TRANSIENT_STATUS = {408, 409, 429}
_warned_hosts: set[str] = set()
_warned_lock = threading.Lock()


class HTTPCallError(Exception):
    """One failed call. `reason`: a short counter key; `retry`: whether trying again may help;
    `status`: the HTTP status when the server answered with one."""

    def __init__(self, reason: str, detail: str, retry: bool = False, status: int | None = None,
                 unreachable: str | None = None):
        super().__init__(f"{reason}: {detail}")
        self.reason, self.retry, self.status, self.unreachable = reason, retry, status, unreachable


class EndpointUnreachable(ConfigError):
    """Nothing answered at an endpoint's URL (connection refused, host not found) and nothing ever
    did: the run stops with this one line rather than failing every question in turn."""


def unreachable_message(url: str, why: str) -> str:
    """One line naming the URL and what to check."""
    if why == "host not found":
        host = urllib.parse.urlsplit(url).hostname or url
        return f"host {host!r} not found (DNS) for {url}: check the URL"
    return f"{why} at {url}: is the server running?"


class EndpointWatch:
    """Whether an endpoint has answered at all. `down(after)` gives the one-line reason once
    `after` calls ended unreachable (connection refused, host not found) while no call got any
    answer (any HTTP status counts as one): the server is not there, and asking for every remaining
    question would only spend each one's retries and backoff. An endpoint that answered once is
    never 'down': later failures are counted per question as before."""

    def __init__(self, url: str):
        self.url = url
        self.answered = 0
        self.unreachable = 0
        self.why: str | None = None
        self._lock = threading.Lock()

    def saw(self, exc: BaseException | None) -> None:
        """Record one finished call: None (answered) or its HTTPCallError."""
        with self._lock:
            why = getattr(exc, "unreachable", None) if exc is not None else None
            if why is None:
                self.answered += 1
            else:
                self.unreachable += 1
                self.why = self.why or why

    def down(self, after: int) -> str | None:
        with self._lock:
            if self.answered or self.unreachable < max(1, after):
                return None
            return unreachable_message(self.url, self.why or "connection refused")


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict
    body: bytes

    def json(self) -> object:
        return parse_json(self.body)


def check_url(url: str, flag: str = "--llm-url") -> urllib.parse.SplitResult:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{flag} {url!r}: need an http:// or https:// URL with a host")
    return parts


def auth_headers(url: str, api_key: str | None) -> dict:
    """{'Authorization': 'Bearer KEY'} when the key may go to `url`; else {} (warned once per host)."""
    if not api_key:
        return {}
    if key_allowed(url):
        return {"Authorization": f"Bearer {api_key}"}
    host = urllib.parse.urlsplit(url).hostname or url
    with _warned_lock:
        if host not in _warned_hosts:
            _warned_hosts.add(host)
            log.warning("not sending the API key to %s: plain http to a non-loopback host (use https)", host)
    return {}


class _SocketWatch:
    """Records the sockets of one call's connections so a watchdog can shut them at the deadline."""

    def __init__(self):
        self.sockets: list[socket.socket] = []
        self.fired = False
        self.lock = threading.Lock()

    def add(self, sock) -> None:
        with self.lock:
            self.sockets.append(sock)
            if self.fired:
                _shut(sock)

    def fire(self) -> None:
        with self.lock:
            self.fired = True
            for sock in self.sockets:
                _shut(sock)


def _shut(sock) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _session(watch: _SocketWatch):
    """A one-call requests Session whose connections report their sockets to `watch`."""
    import requests
    from requests.adapters import HTTPAdapter
    from urllib3.connection import HTTPConnection, HTTPSConnection
    from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

    def watched(base):
        class Conn(base):
            def connect(self):
                super().connect()
                watch.add(self.sock)
        return Conn

    class Pool(HTTPConnectionPool):
        ConnectionCls = watched(HTTPConnection)

    class SPool(HTTPSConnectionPool):
        ConnectionCls = watched(HTTPSConnection)

    class Adapter(HTTPAdapter):
        def init_poolmanager(self, *args, **kwargs):
            super().init_poolmanager(*args, **kwargs)
            self.poolmanager.pool_classes_by_scheme = {"http": Pool, "https": SPool}

    s = requests.Session()
    s.trust_env = False          # no env proxies, no ~/.netrc credentials: only the URL given
    s.mount("http://", Adapter(max_retries=0))
    s.mount("https://", Adapter(max_retries=0))
    return s


def post(url: str, body: bytes, *, api_key: str | None = None, timeout: float,
         max_bytes: int = MAX_RESPONSE_BYTES, headers: dict | None = None, flag: str = "--llm-url") -> Reply:
    """POST `body` to `url` within `timeout` seconds in all; a 200 Reply, or HTTPCallError."""
    check_url(url, flag)
    if timeout <= 0:
        raise HTTPCallError("timeout", "no time left before the call", retry=False)
    sent = {"Content-Type": "application/json", "Accept": "application/json", **(headers or {}),
            **auth_headers(url, api_key)}
    deadline = time.monotonic() + timeout
    watch = _SocketWatch()
    watchdog = threading.Timer(timeout, watch.fire)
    watchdog.daemon = True
    watchdog.start()
    try:
        with _session(watch) as session:
            return _exchange(session, url, body, sent, deadline, max_bytes)
    except HTTPCallError:
        raise
    except Exception as exc:  # noqa: BLE001 - requests/urllib3/http.client/ssl: all one counted failure
        raise _classify(exc, deadline, watch.fired) from None
    finally:
        watchdog.cancel()


def _exchange(session, url: str, body: bytes, headers: dict, deadline: float, max_bytes: int) -> Reply:
    left = max(0.001, deadline - time.monotonic())
    with session.post(url, data=body, headers=headers, timeout=(left, left), allow_redirects=False,
                      stream=True) as resp:
        status = resp.status_code
        if 300 <= status < 400:
            raise HTTPCallError("redirect", f"HTTP {status} to {resp.headers.get('Location')!r} refused "
                                f"(use the final address)", status=status)
        if status != 200:
            retry = status in _TRANSIENT_STATUS or status >= 500
            raise HTTPCallError(f"http_{status}", resp.reason or "", retry=retry, status=status)
        return Reply(status, dict(resp.headers), read_capped(resp, deadline, max_bytes))


def read_capped(resp, deadline: float, max_bytes: int) -> bytes:
    """The streamed body of a requests Response, refused past `max_bytes` or the deadline."""
    length = resp.headers.get("Content-Length", "")
    if length.strip().isdigit() and int(length) > max_bytes:
        raise HTTPCallError("too_large", f"Content-Length {length.strip()} > {max_bytes} bytes")
    chunks, total = [], 0
    for chunk in resp.iter_content(CHUNK):
        if time.monotonic() > deadline:
            raise HTTPCallError("timeout", "total deadline passed while reading the body", retry=True)
        total += len(chunk)
        if total > max_bytes:
            raise HTTPCallError("too_large", f"body over {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _classify(exc: BaseException, deadline: float, fired: bool) -> HTTPCallError:
    """A library exception -> the counted reason (the detail keeps the library's words)."""
    import requests
    import urllib3

    text = f"{type(exc).__name__}: {exc}"[:300]
    if fired or time.monotonic() >= deadline or isinstance(exc, (requests.Timeout, TimeoutError,
                                                                  urllib3.exceptions.TimeoutError)):
        return HTTPCallError("timeout", text, retry=True)
    chain = _causes(exc)
    if any("IncompleteRead" in f"{type(e).__name__} {e}" for e in chain):
        return HTTPCallError("short_body", text, retry=True)
    unreachable = unreachable_reason(exc)
    if unreachable:  # a name that does not resolve stays so; a server that is starting may listen soon
        return HTTPCallError("connection", text, retry=unreachable == "connection refused", unreachable=unreachable)
    if any(isinstance(e, ConnectionError) for e in chain):  # reset, aborted
        return HTTPCallError("connection", text, retry=True)
    if any(isinstance(e, (http.client.HTTPException, urllib3.exceptions.ProtocolError, UnicodeError))
           for e in chain):  # not HTTP, a header line over http.client's limit, a broken status line
        return HTTPCallError("protocol", text, retry=True)
    return HTTPCallError("connection", text, retry=True)


def unreachable_reason(exc: BaseException) -> str | None:
    """'host not found' (the name does not resolve), 'connection refused' (nothing listens at the
    port), or None, from any exception of requests/urllib3/socket and its causes."""
    chain = _causes(exc)
    if any(isinstance(e, socket.gaierror) for e in chain):
        return "host not found"
    if any(isinstance(e, ConnectionRefusedError) for e in chain):
        return "connection refused"
    return None


def _causes(exc: BaseException) -> list[BaseException]:
    """exc, its causes/contexts and urllib3's wrapped reasons and args, flattened."""
    seen: list[BaseException] = []
    todo = [exc]
    while todo:
        e = todo.pop()
        if e is None or any(e is s for s in seen) or len(seen) > 20:
            continue
        seen.append(e)
        todo += [e.__cause__, e.__context__, getattr(e, "reason", None)]
        todo += [a for a in getattr(e, "args", ()) if isinstance(a, BaseException)]
    return [e for e in seen if isinstance(e, BaseException)]


def parse_json(raw: bytes) -> object:
    """UTF-8 JSON -> the value; HTTPCallError('bad_utf8' | 'bad_json') otherwise (deep nesting too)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HTTPCallError("bad_utf8", str(exc)) from None
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise HTTPCallError("bad_json", f"{type(exc).__name__}: {str(exc)[:120]}") from None


def post_json(url: str, payload: dict, *, api_key: str | None, timeout: float,
              max_bytes: int = MAX_RESPONSE_BYTES, flag: str = "--llm-url") -> object:
    """POST `payload` as JSON; the parsed JSON answer, or HTTPCallError."""
    body = json.dumps(payload).encode()
    return post(url, body, api_key=api_key, timeout=timeout, max_bytes=max_bytes, flag=flag).json()


class Retry(NamedTuple):
    """How a client retries: `retries` more tries after the first, `backoff` s before the second
    (doubling after), and after how many unreachable calls with no answer the endpoint is down."""
    retries: int
    backoff: float
    give_up_after: int = 1


def post_chat(url: str, payload: dict, *, api_key: str | None, timeout: float, retry: Retry,
              watch: EndpointWatch | None = None, flag: str = "--llm-url", on_request=None) -> str:
    """The text of one chat-completions answer, asked up to 1 + retry.retries times (only failures
    that may heal are retried). `watch` is told how every call ended; once it says nothing answers
    at the URL, HTTPCallError('connection') is raised without asking. on_request() is called before
    each call (a client's request count). After the last try the call's HTTPCallError; an answer
    without text is HTTPCallError('bad_shape')."""
    retries = retry.retries
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(retry.backoff * 2 ** (attempt - 1))
        if watch is not None and (down := watch.down(retry.give_up_after)):
            raise HTTPCallError("connection", down)   # nothing at the URL: not asked
        if on_request is not None:
            on_request()
        try:
            answer = post_json(url, payload, api_key=api_key, timeout=timeout, flag=flag)
        except HTTPCallError as exc:
            if watch is not None:
                watch.saw(exc)
            if not exc.retry or attempt == retries:
                raise
            continue
        if watch is not None:
            watch.saw(None)
        content = chat_content(answer)
        if content is None:
            raise HTTPCallError("bad_shape", f"no string at choices[0].message.content in {str(answer)[:80]!r}")
        return content
    raise AssertionError("unreachable")   # the loop returns or raises


def chat_content(data: object) -> str | None:
    """choices[0].message.content of an OpenAI-compatible chat-completions answer, or None when
    the answer has no string there (each client counts that as its own failure reason)."""
    choices = data.get("choices") if isinstance(data, dict) else None
    first = choices[0] if isinstance(choices, list) and choices else None
    message = first.get("message") if isinstance(first, dict) else None
    content = message.get("content") if isinstance(message, dict) else None
    return content if isinstance(content, str) else None
