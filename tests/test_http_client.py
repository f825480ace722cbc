"""negbench.core.http, the one HTTP client, against real 127.0.0.1 servers that misbehave: raw
sockets for the replies an HTTP server library would refuse to send, http.server for the rest.
Both clients built on it (the LLM paraphraser and vlm:openai:) count every failure by reason."""
from __future__ import annotations

import json
import resource
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from negbench.core.http import HTTPCallError, parse_json, post, post_json

GOOD = json.dumps({"choices": [{"message": {"content": "ok"}}]}).encode()


class RawServer:
    """Accepts connections on 127.0.0.1 and answers each with `reply(conn)` (raw bytes)."""

    def __init__(self, reply):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.reply, self.requests = reply, 0
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/v1/chat/completions"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn):
        self.requests += 1
        conn.settimeout(5)
        try:
            _read_request(conn)
            self.reply(conn)
        except OSError:
            pass
        finally:
            conn.close()

    def close(self):
        self.sock.close()


def _read_request(conn) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    length = next((int(l.split(b":")[1]) for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")), 0)
    while len(rest) < length:
        rest += conn.recv(65536)
    return head


def _ok_head(length, extra=b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n" % (length, extra)


def _trickle(gap):
    def reply(conn):
        conn.sendall(_ok_head(len(GOOD)))
        for b in GOOD:
            conn.sendall(bytes([b]))
            time.sleep(gap)
    return reply


def _trickle_headers(conn):
    for b in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 100:
        conn.sendall(bytes([b]))
        time.sleep(0.3)


def _huge(total, declared=True):
    def reply(conn):
        conn.sendall(_ok_head(total) if declared else b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
        block = b"x" * (1 << 20)
        sent = 0
        while sent < total:
            conn.sendall(block)
            sent += len(block)
    return reply


def _huge_chunked(conn):
    conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    block = b"x" * (1 << 16)
    for _ in range(64):
        conn.sendall(b"%x\r\n%s\r\n" % (len(block), block))
    conn.sendall(b"0\r\n\r\n")


MODES = {
    "not_http": (lambda c: c.sendall(b"SSH-2.0-OpenSSH_9.6\r\n\r\n"), "protocol"),
    "short_body": (lambda c: c.sendall(_ok_head(len(GOOD) + 50) + GOOD), "short_body"),
    "long_header": (lambda c: c.sendall(b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n" + GOOD),
                    "protocol"),
    "closes": (lambda c: None, "connection"),
    "redirect": (lambda c: c.sendall(b"HTTP/1.1 307 Temporary Redirect\r\nLocation: http://127.0.0.1:9/x\r\n"
                                     b"Content-Length: 0\r\n\r\n"), "redirect"),
    "status_500": (lambda c: c.sendall(b"HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n"), "http_500"),
    "status_400": (lambda c: c.sendall(b"HTTP/1.1 400 Bad\r\nContent-Length: 0\r\n\r\n"), "http_400"),
    "chunked_over_cap": (_huge_chunked, "too_large"),
    "declared_over_cap": (lambda c: c.sendall(_ok_head(1 << 30)), "too_large"),
    "not_json": (lambda c: c.sendall(_ok_head(5) + b"<html"), "bad_json"),
    "bad_utf8": (lambda c: c.sendall(_ok_head(3) + b"\xff\xfe\xfd"), "bad_utf8"),
    "deep_json": (lambda c: c.sendall(_ok_head(200_000) + b"[" * 200_000), "bad_json"),
}


@pytest.fixture
def raw_server():
    made = []

    def make(reply):
        made.append(RawServer(reply))
        return made[-1]
    yield make
    for s in made:
        s.close()


@pytest.mark.parametrize("mode", sorted(MODES))
def test_each_failure_is_one_counted_reason(raw_server, mode):
    reply, reason = MODES[mode]
    srv = raw_server(reply)
    with pytest.raises(HTTPCallError) as info:
        post_json(srv.url, {"x": 1}, api_key=None, timeout=5.0, max_bytes=1 << 20)
    assert info.value.reason == reason, info.value
    assert info.value.retry == (reason in ("protocol", "short_body", "connection", "http_500", "timeout"))


def test_good_reply_and_key_to_loopback(raw_server):
    seen = []

    def reply(conn):
        conn.sendall(_ok_head(len(GOOD)) + GOOD)

    class Srv(RawServer):
        def _one(self, conn):
            conn.settimeout(5)
            seen.append(_read_request(conn))
            reply(conn)
            conn.close()
    srv = Srv(reply)
    try:
        assert post_json(srv.url, {"x": 1}, api_key="sk-secret", timeout=5.0) == json.loads(GOOD)
    finally:
        srv.close()
    assert b"Authorization: Bearer sk-secret" in seen[0]


@pytest.mark.parametrize("reply", [_trickle(2.0), _trickle_headers], ids=["body", "headers"])
def test_one_byte_every_two_seconds_is_cut_at_the_total_deadline(raw_server, reply):
    srv = raw_server(reply)
    t0 = time.monotonic()
    with pytest.raises(HTTPCallError) as info:
        post(srv.url, b"{}", timeout=1.5)
    assert info.value.reason == "timeout" and time.monotonic() - t0 < 3.5


def test_connect_to_a_silent_listener_times_out(raw_server):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(0)   # accepts into the backlog but never answers
    try:
        t0 = time.monotonic()
        with pytest.raises(HTTPCallError) as info:
            post(f"http://127.0.0.1:{sock.getsockname()[1]}/", b"{}", timeout=0.8)
        assert info.value.reason == "timeout" and time.monotonic() - t0 < 2.5
    finally:
        sock.close()


def test_refused_connection_is_counted():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    with pytest.raises(HTTPCallError) as info:
        post(f"http://127.0.0.1:{port}/", b"{}", timeout=2.0)
    assert info.value.reason == "connection"


def test_300_mib_reply_is_refused_with_bounded_memory(raw_server):
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.monotonic()
    for reply, cap in ((_huge(300 << 20), 1 << 20),                    # declared: refused before reading
                       (_huge(300 << 20, declared=False), 8 << 20),    # undeclared: cut while streaming
                       (_huge_chunked, 1 << 20)):                      # chunked: cut while streaming
        with pytest.raises(HTTPCallError) as info:
            post(raw_server(reply).url, b"{}", timeout=20.0, max_bytes=cap)
        assert info.value.reason == "too_large"
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024
    assert grown_mib < 100, grown_mib   # never the 300 MiB (ru_maxrss is in KiB on Linux)
    assert time.monotonic() - t0 < 15


def test_redirect_is_not_followed_and_the_key_stays(raw_server):
    hits = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_POST(self):
            hits.append(self.headers.get("Authorization"))
            self.send_response(200)
            self.end_headers()

    target = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=target.serve_forever, daemon=True).start()
    loc = f"http://127.0.0.1:{target.server_address[1]}/".encode()
    srv = raw_server(lambda c: c.sendall(b"HTTP/1.1 302 Found\r\nLocation: " + loc + b"\r\nContent-Length: 0\r\n\r\n"))
    try:
        with pytest.raises(HTTPCallError) as info:
            post(srv.url, b"{}", api_key="sk-secret", timeout=3.0)
    finally:
        target.shutdown()
        target.server_close()
    assert info.value.reason == "redirect" and info.value.status == 302 and hits == []


def test_vlm_client_counts_the_same_failures(raw_server):
    """vlm:openai: on the shared client: a traceback before (http.client.HTTPException), now counted."""
    from negbench.models.vlm.base import Query
    from PIL import Image

    from negbench.models.vlm.openai import OpenAIChatVLM

    q = Query((Image.new("RGB", (4, 4)),), "Is there a dog?")
    for mode, want in (("not_http", "protocol"), ("short_body", "short_body"), ("long_header", "protocol"),
                       ("status_500", "http_500"), ("redirect", "http_307")):
        srv = raw_server(MODES[mode][0])
        vlm = OpenAIChatVLM("m", srv.url.removesuffix("/chat/completions"), retries=0, timeout=5.0)
        assert [(a.text, a.error) for a in vlm.choose([q])] == [(None, want)], mode
    srv = raw_server(_trickle(2.0))
    vlm = OpenAIChatVLM("m", srv.url.removesuffix("/chat/completions"), retries=0, timeout=1.5)
    t0 = time.monotonic()
    assert vlm.choose([q])[0].error == "timeout" and time.monotonic() - t0 < 3.5


# ---- the response parser under hypothesis: any bytes are a value or one counted reason
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.binary(max_size=200),
                 st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=10),
                              lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=5), c, max_size=4),
                              max_leaves=20).map(lambda v: json.dumps(v).encode()),
                 st.integers(1, 100_000).map(lambda n: b"[" * n + b"]" * (n % 3))))
def test_parse_json_never_raises_anything_else(raw):
    try:
        parse_json(raw)
    except HTTPCallError as exc:
        assert exc.reason in ("bad_utf8", "bad_json")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(head=st.binary(max_size=300), body=st.binary(max_size=300))
def test_any_reply_bytes_give_a_value_or_a_reason(raw_server, head, body):
    srv = raw_server(lambda c: c.sendall(head + b"\r\n\r\n" + body))
    try:
        try:
            post(srv.url, b"{}", timeout=2.0, max_bytes=1 << 10)
        except HTTPCallError as exc:
            assert exc.reason in ("protocol", "connection", "short_body", "too_large", "redirect", "timeout") \
                or exc.reason.startswith("http_"), exc
    finally:
        srv.close()
