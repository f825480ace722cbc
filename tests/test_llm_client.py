"""The LLM client against a real server on 127.0.0.1 that misbehaves in every way we know of."""
from __future__ import annotations

import time

import pytest

from _local_server import LocalServer, QuietHandler, completion, non_loopback_ip, send_body, server_factory
from negbench.construct.llm_http import LLMCallError, key_allowed, post_json
from negbench.construct.paraphrase import OpenAIParaphraser, ParaphraseRequest

GOOD = "In this picture: this image does not feature dog."


BODIES = {
    "list": b"[1, 2]",
    "string": b"\"just a string\"",
    "choices_null": b"{\"choices\": null}",
    "choices_empty": b"{\"choices\": []}",
    "message_null": b"{\"choices\": [{\"message\": null}]}",
    "content_number": b"{\"choices\": [{\"message\": {\"content\": 5}}]}",
    "bad_utf8": b"{\"choices\": [{\"message\": {\"content\": \"\xff\xfe\"}}]}",
    "not_json": b"<html>gateway</html>",
    "good": completion(GOOD),
}


class Server(LocalServer):
    """mode: a BODIES key, 'redirect' (307 to `target`), 'trickle' (1 byte / `gap` s), 'huge'."""

    def __init__(self, mode="good", target=None, gap=0.4, host="127.0.0.1"):
        self.mode, self.target, self.gap = mode, target, gap
        self.auth: list[str | None] = []
        srv = self

        class Handler(QuietHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers["Content-Length"]))
                srv.auth.append(self.headers.get("Authorization"))
                if srv.mode == "redirect":
                    self.send_response(307)
                    self.send_header("Location", srv.target)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = completion("x" * (2 << 20)) if srv.mode == "huge" else BODIES.get(srv.mode, BODIES["good"])
                if srv.mode == "trickle":
                    srv.trickle(self, body)
                else:
                    send_body(self, body)

        super().__init__(Handler, host)

    def trickle(self, handler, body: bytes) -> None:
        try:
            handler.send_response(200)
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            for b in body:
                handler.wfile.write(bytes([b]))
                handler.wfile.flush()
                time.sleep(self.gap)
        except (BrokenPipeError, ConnectionResetError):
            pass


@pytest.fixture
def server():
    yield from server_factory(Server)


def _para(url, **kw):
    opts = dict(cache_dir=None, concurrency=2, retries=0, backoff=0.01, timeout=2.0, api_key="sk-secret")
    opts.update(kw)
    return OpenAIParaphraser(url, "fake-model", **opts)


REQ = [ParaphraseRequest("mcq", "This image does not feature dog.")]


@pytest.mark.parametrize("mode,reason", [("list", "bad_shape"), ("string", "bad_shape"),
                                         ("choices_null", "bad_shape"), ("choices_empty", "bad_shape"),
                                         ("message_null", "bad_shape"), ("content_number", "bad_shape"),
                                         ("bad_utf8", "bad_utf8"), ("not_json", "bad_json")])
def test_each_malformed_response_falls_back_and_is_counted(server, mode, reason):
    srv = server(mode)
    out, stats = _para(srv.url).paraphrase_many(REQ)
    assert out == [REQ[0].text]
    assert stats["fallback_error"] == 1 and stats[f"error_{reason}"] == 1


def test_good_response_is_used_and_key_goes_to_loopback(server):
    srv = server("good")
    out, stats = _para(srv.url).paraphrase_many(REQ)
    assert out == [GOOD] and stats["paraphrased"] == 1 and srv.auth == ["Bearer sk-secret"]


def test_redirect_is_refused_and_the_key_never_reaches_the_target(server):
    target = server("good")
    srv = server("redirect", target=target.url + "/chat/completions")
    out, stats = _para(srv.url, retries=2).paraphrase_many(REQ)
    assert out == [REQ[0].text] and stats["error_redirect"] == 1
    assert target.auth == [] and len(srv.auth) == 1  # not followed, not retried


def test_trickling_body_is_cut_at_the_total_deadline(server):
    srv = server("trickle", gap=0.3)  # ~100 bytes at 0.3 s each: 30 s if each read had its own timeout
    t0 = time.monotonic()
    with pytest.raises(LLMCallError) as info:
        post_json(srv.url + "/chat/completions", {"x": 1}, api_key=None, timeout=1.0)
    assert info.value.reason == "timeout" and time.monotonic() - t0 < 3.0


def test_response_size_is_limited(server):
    srv = server("huge")
    with pytest.raises(LLMCallError, match="too_large"):
        post_json(srv.url + "/chat/completions", {"x": 1}, api_key=None, timeout=5.0, max_bytes=1 << 20)


def test_key_only_to_https_or_loopback(caplog):
    assert key_allowed("https://api.example.com/v1") and key_allowed("http://127.0.0.1:8000/v1")
    assert key_allowed("http://localhost:8000/v1") and key_allowed("http://[::1]:8000/v1")
    assert not key_allowed("http://10.0.0.5:8000/v1") and not key_allowed("http://example.com/v1")


def test_plain_http_to_another_host_gets_no_key():
    ip = non_loopback_ip()
    if ip is None:
        pytest.skip("no non-loopback interface")
    srv = Server("good", host=ip)
    try:
        out, stats = _para(srv.url).paraphrase_many(REQ)
    finally:
        srv.stop()
    assert stats["paraphrased"] == 1 and srv.auth == [None]


def test_build_whose_paraphrases_all_failed_exits_nonzero_or_labels_templated(server, tmp_path, capsys):
    from negbench.cli import main
    from negbench_build_fixtures import write_coco

    write_coco(tmp_path / "coco", n=6)
    srv = server("message_null")
    argv = ["build", "coco", "--src", str(tmp_path / "coco"), "--task", "mcq", "--paraphrase", "openai",
            "--llm-url", srv.url, "--llm-model", "fake-model", "--llm-retries", "0", "--llm-timeout", "5"]
    assert main(argv + ["--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert "every paraphrase failed" in err and "error_bad_shape" in err and "--allow-fallback" in err
    assert main(argv + ["--out", str(tmp_path / "b"), "--allow-fallback"]) == 0
    out = capsys.readouterr().out
    assert "paraphrase: " in out and "error_bad_shape=" in out
    import yaml

    tasks = yaml.safe_load((tmp_path / "b" / "tasks.yaml").read_text())
    specs = tasks["tasks"] if isinstance(tasks, dict) else tasks
    para = [s for s in specs if s["name"].endswith("_paraphrased")]
    assert para and all(s["variant"] == "templated" for s in para)
