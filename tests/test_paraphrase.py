"""Paraphrasing against a real local HTTP server speaking the OpenAI chat-completions API."""
from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from negbench.inputs.formats import MCQItem, RetrievalItem
from negbench.construct.paraphrase import OpenAIParaphraser, ParaphraseRequest, make_paraphraser


class _Server(ThreadingHTTPServer):
    daemon_threads = True       # a handler stuck in a slow answer must not block shutdown
    block_on_close = False


class FakeLLM:
    """Answers by the caption's content: good rewrites, bad ones (negation dropped, invented
    object, empty), slow ones; after `stop_after` answers it stops serving (503)."""

    def __init__(self, stop_after: int | None = None, slow_s: float = 0.6):
        self.calls = 0
        self.stop_after = stop_after
        self.slow_s = slow_s
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with fake.lock:
                    fake.calls += 1
                    n = fake.calls
                if fake.stop_after is not None and n > fake.stop_after:
                    self.send_response(503)
                    self.end_headers()
                    return
                assert body["model"] == "fake-model" and body["messages"][0]["role"] == "system"
                caption = body["messages"][-1]["content"].removeprefix("Caption: ")
                answer = fake.answer(caption)
                data = json.dumps({"id": "x", "object": "chat.completion", "model": body["model"],
                                   "choices": [{"index": 0, "finish_reason": "stop",
                                                "message": {"role": "assistant", "content": answer}}]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                try:
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass   # the client gave up on a slow answer: that is the point of the test

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def answer(self, caption: str) -> str:
        if "bottle" in caption:
            time.sleep(self.slow_s)
        if "cat" in caption:      # drops the negation
            return re.sub(r"\b(does not|do not) feature\b", "features", caption).replace(" no ", " a ")
        if "car" in caption:      # invents an object
            return caption + " A giraffe stands nearby."
        if "cup" in caption:      # empty
            return ""
        return "In this picture: " + caption[0].lower() + caption[1:]

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def llm():
    srv = FakeLLM()
    yield srv
    srv.stop()


def _para(url, cache, **kw):
    opts = dict(cache_dir=cache, concurrency=4, retries=1, backoff=0.01, timeout=0.3)
    opts.update(kw)
    return OpenAIParaphraser(url, "fake-model", **opts)


REQS = [ParaphraseRequest("mcq", "This image does not feature dog."),
        ParaphraseRequest("mcq", "This image does not feature cat."),
        ParaphraseRequest("mcq", "This image features person, but not car."),
        ParaphraseRequest("mcq", "This image features cup."),
        ParaphraseRequest("retrieval", "A man rides a bike. There is no dog in the image."),
        ParaphraseRequest("mcq", "This image features bottle.")]


def test_validation_fallbacks_and_cache(llm, tmp_path):
    p = _para(llm.url, tmp_path / "cache")
    out, stats = p.paraphrase_many(REQS)
    assert out[0] == "In this picture: this image does not feature dog."
    assert out[4] == "In this picture: a man rides a bike. There is no dog in the image."
    assert out[1:4] == [r.text for r in REQS[1:4]]          # bad answers -> templates
    assert out[5] == REQS[5].text                            # too slow: timeout, retried, template kept
    assert stats["fallback_lost_negation"] == 1 and stats["fallback_new_object"] == 1
    assert stats["fallback_empty"] == 1 and stats["fallback_error"] == 1 and stats["paraphrased"] == 2
    calls = llm.calls
    out2, stats2 = p.paraphrase_many(REQS)                   # second run: from the cache
    assert out2 == out and stats2["cache_hits"] == 5
    assert llm.calls - calls == 2                            # only the failed slow one is retried (x2 tries)
    desc = p.describe(stats)
    assert desc["model"] == "fake-model" and desc["prompt_version"]


def test_resume_after_server_stops(tmp_path):
    reqs = [ParaphraseRequest("mcq", f"This image features person, but not {x}.")
            for x in ("dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe")]
    srv = FakeLLM(stop_after=3)
    try:
        p = _para(srv.url, tmp_path / "cache", concurrency=1)
        out, stats = p.paraphrase_many(reqs)
    finally:
        srv.stop()
    assert stats["paraphrased"] == 3 and stats["fallback_error"] == 5
    srv2 = FakeLLM()
    try:
        out2, stats2 = _para(srv2.url, tmp_path / "cache").paraphrase_many(reqs)
    finally:
        srv2.stop()
    assert stats2["cache_hits"] == 3 and srv2.calls == 5 and stats2["paraphrased"] == 8
    assert out2[:3] == out[:3] and all(o.startswith("In this picture") for o in out2)


def test_items_and_build_integration(llm, tmp_path):
    from negbench_build_fixtures import write_coco
    from negbench.construct.build import build_benchmark
    from negbench.inputs.tasks import load_task_file
    p = _para(llm.url, tmp_path / "c")
    items = [MCQItem(1, "a.jpg", ("This image does not feature dog.", "This image features dog.",
                                  "This image features horse.", "This image features dog, but not horse."), 0,
                     "negative", ("negative", "positive", "positive", "hybrid")),
             ]
    new, stats = p.paraphrase_items("mcq", items)
    assert new[0].correct_answer == 0 and new[0].caption_types == items[0].caption_types
    assert all(c.startswith("In this picture") for c in new[0].captions)
    r, _ = p.paraphrase_items("retrieval", [RetrievalItem(1, "a.jpg", ("A man rides a bike. There is no dog in the image.",))])
    assert r[0].captions[0].startswith("In this picture")
    write_coco(tmp_path / "coco", n=6)
    res = build_benchmark("coco", tmp_path / "coco", tmp_path / "out", tasks=("mcq",), paraphraser=p)
    names = {s.name: s for s in load_task_file(res.tasks_yaml)}
    assert names["built_coco_mcq_paraphrased"].variant == "paraphrased"
    man = json.loads((tmp_path / "out" / "COCO_val2017_mcq_paraphrased.csv.manifest.json").read_text())
    assert man["paraphrase"]["backend"] == "openai" and man["paraphrase"]["counts"]


def test_none_backend_and_config_errors():
    none = make_paraphraser("none")
    assert none.paraphrase_many(REQS)[0] == [r.text for r in REQS]
    with pytest.raises(Exception, match="needs a URL"):
        OpenAIParaphraser("", "m")
