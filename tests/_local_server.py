"""Real HTTP servers on 127.0.0.1 for the client tests: a port the OS picks, a daemon thread, a
clean stop; and the OpenAI chat-completion envelope the servers answer with."""
from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def completion(content) -> bytes:
    """An OpenAI /v1/chat/completions body whose one choice says `content`."""
    return json.dumps({"choices": [{"index": 0, "message": {"role": "assistant", "content": content}}]}).encode()


def send_body(handler: BaseHTTPRequestHandler, body: bytes, status: int = 200, length: str | None = None) -> None:
    """Answer one request; a client that already gave up (the point of a slow-server test) is no error."""
    try:
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)) if length is None else length)
        handler.end_headers()
        handler.wfile.write(body)
    except (BrokenPipeError, ConnectionResetError):
        pass


class QuietHandler(BaseHTTPRequestHandler):
    def log_message(self, *args):   # keep pytest's output to the tests' own
        pass


class LocalServer:
    """Serves `handler` (a BaseHTTPRequestHandler class) on `host`:<free port> until stop();
    `url` is the OpenAI-style base URL (.../v1)."""

    def __init__(self, handler, host: str = "127.0.0.1"):
        self.httpd = ThreadingHTTPServer((host, 0), handler)
        self.httpd.daemon_threads = True      # a handler stuck in a slow answer must not block shutdown
        self.url = f"http://{host}:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def server_factory(cls):
    """The body of a `server` fixture: yields make(*args) -> cls(*args); stops every server made."""
    made = []

    def make(*args, **kwargs):
        made.append(cls(*args, **kwargs))
        return made[-1]
    yield make
    for server in made:
        server.stop()


def non_loopback_ip() -> str | None:
    """This machine's address on its outgoing interface (not 127.x), or None without one."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("10.255.255.255", 1))  # no packet is sent: this only picks the outgoing interface
            ip = s.getsockname()[0]
    except OSError:
        return None
    return None if ip.startswith("127.") else ip
