"""negaware with llm=MODEL@URL: captions split by a real OpenAI-compatible server on 127.0.0.1.
A valid answer is used; each bad one (malformed JSON, an object not in the caption, a negation cue
left in the affirmed part, wrong types, a bad envelope, HTTP 500, an answer past the deadline)
falls back to the rule parser and is counted with its reason; a rerun reads the answer cache and
asks nothing; captions without a negation cue are never sent and keep the base model's bits; the
API key goes only where the key policy allows; the calls in flight are bounded."""
from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest
import torch

from _local_server import LocalServer, QuietHandler, completion, non_loopback_ip, send_body, server_factory
from negbench.core.negation_parse import parse_negation
from negbench.models.base import load_model, model_identity
from negbench.models.negaware import NegAwareAdapter, parse_spec, unpack
from negbench.models.negaware_llm import PROMPT_VERSION, default_cache_dir, validate, wants_llm

PLAIN = ["A man rides a bike.", "two cups on a table"]
FREE = ["A cat that never met a dog.", "A street where no car is parked."]
# what the good server answers: different from the rule parser's split of the same captions
ANSWERS = {FREE[0]: {"affirmed": "A cat.", "negated": ["a dog"]},
           FREE[1]: {"affirmed": "A street.", "negated": ["Car"]}}


def _rules_answer(caption: str) -> dict:
    """A valid answer for any caption: the rule parser's split, as an LLM would write it."""
    p = parse_negation(caption)
    return {"affirmed": p.affirmed, "negated": list(p.negated)}


def _content(mode: str, caption: str) -> str:
    good = ANSWERS.get(caption) or _rules_answer(caption)
    return {"good": json.dumps(good),
            "fenced": "```json\n" + json.dumps(good) + "\n```",
            "malformed": "affirmed: a cat; negated: dog",
            "absent_object": json.dumps({"affirmed": "A cat.", "negated": ["unicorn"]}),
            "cue_in_affirmed": json.dumps({"affirmed": "A cat with no dog.", "negated": ["dog"]}),
            "wrong_types": json.dumps({"affirmed": 1, "negated": "dog"})}[mode]


class Server(LocalServer):
    """/v1/chat/completions on 127.0.0.1 (or `host`). mode: a _content key, 'bad_shape',
    'http500' or 'slow' (answers after `delay` s); every request's caption and key are recorded."""

    def __init__(self, mode="good", delay=0.0, host="127.0.0.1"):
        self.mode, self.delay = mode, delay
        self.captions: list[str] = []
        self.auth: list[str | None] = []
        self.inflight = self.max_inflight = 0
        self.lock = threading.Lock()
        srv = self

        class Handler(QuietHandler):
            def do_POST(self):
                req = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                caption = req["messages"][-1]["content"].removeprefix("Caption: ")
                with srv.lock:
                    srv.captions.append(caption)
                    srv.auth.append(self.headers.get("Authorization"))
                    srv.inflight += 1
                    srv.max_inflight = max(srv.max_inflight, srv.inflight)
                try:
                    srv.answer(self, caption)
                finally:
                    with srv.lock:
                        srv.inflight -= 1

        super().__init__(Handler, host)

    def answer(self, h, caption: str) -> None:
        time.sleep(self.delay)
        if self.mode == "http500":
            send_body(h, b"{}", status=500)
        elif self.mode == "bad_shape":
            send_body(h, b'{"choices": []}')
        else:
            send_body(h, completion(_content(self.mode if self.mode != "slow" else "good", caption)))


@pytest.fixture
def server():
    yield from server_factory(Server)


@pytest.fixture(autouse=True)
def _llm_env(monkeypatch, tmp_path):
    monkeypatch.setenv("NEGBENCH_LLM_CACHE_DIR", str(tmp_path / "llm-cache"))
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("NEGBENCH_LLM_KEY", raising=False)


@pytest.fixture(scope="module")
def base(tiny_openclip_model):
    return load_model(tiny_openclip_model, device="cpu")


def _wrap(base, opts: str = "") -> NegAwareAdapter:
    options, _ = parse_spec(f"decompose{opts}:unused:base")
    return NegAwareAdapter(base, options)


def _llm(url: str, extra: str = ",llm_retries=0,llm_timeout=0.5") -> str:
    return f",llm=fake-model@{url}{extra}"


def _encode(adapter, texts) -> np.ndarray:
    with torch.inference_mode():
        return adapter.encode_texts(list(texts)).numpy()


def _feats(base, texts) -> np.ndarray:
    with torch.inference_mode():
        return base.encode_texts(list(texts)).numpy()


# ---------------------------------------------------------------- the model string

def test_model_string_and_identity(tiny_openclip_model):
    spec = f"negaware:decompose,lambda=0.25,llm=qwen2.5:14b@http://127.0.0.1:9/v1,llm_workers=2:{tiny_openclip_model}"
    opts, rest = parse_spec(spec.removeprefix("negaware:"))
    assert (opts.llm_model, opts.llm_url, opts.llm_workers, rest) == ("qwen2.5:14b", "http://127.0.0.1:9/v1", 2,
                                                                       tiny_openclip_model)
    ident = model_identity(spec)
    assert ident == load_model(spec, device="cpu").identity()
    assert "llm=qwen2.5:14b" in ident and PROMPT_VERSION in ident and "127.0.0.1" not in ident
    assert model_identity(spec.replace(":9/", ":10/")) == ident                         # the URL is not the answers
    assert model_identity(spec.replace("qwen2.5:14b", "other")) != ident
    assert model_identity(f"negaware:decompose,lambda=0.25:{tiny_openclip_model}") != ident


CAPTION = "A cat, but not a dog and not the car."


@pytest.mark.parametrize("content, negated, affirmed, reason", [
    ('{"affirmed": "A cat.", "negated": ["a Dog"]}', ("Dog",), "A cat.", ""),
    ('```json\n{"affirmed": "", "negated": ["dog", "the   car"]}\n```', ("dog", "car"), "", ""),
    ('{"affirmed": "whatever", "negated": []}', (), CAPTION, ""),
    ("not json", None, None, "malformed_json"),
    ('["a list"]', None, None, "malformed_json"),
    ('{"affirmed": "A cat.", "negated": ["horse"]}', None, None, "invalid"),
    ('{"affirmed": "A cat without a dog.", "negated": ["dog"]}', None, None, "invalid"),
    ('{"affirmed": "A cat.", "negated": "dog"}', None, None, "invalid"),
    ('{"affirmed": "A cat.", "negated": [""]}', None, None, "invalid"),
    ('{"negated": ["dog"]}', None, None, "invalid"),
])
def test_validate(content, negated, affirmed, reason):
    parse, why = validate(CAPTION, content)
    assert why == reason
    if reason:
        assert parse is None
    else:
        assert parse.negated == negated and parse.affirmed == affirmed


def test_cache_folder_follows_the_environment(monkeypatch, tmp_path):
    assert default_cache_dir() == tmp_path / "llm-cache"
    monkeypatch.delenv("NEGBENCH_LLM_CACHE_DIR")
    monkeypatch.setenv("NEGBENCH_CACHE_DIR", str(tmp_path / "emb"))
    assert default_cache_dir() == tmp_path / "emb" / "negaware-llm"


# ---------------------------------------------------------------- against the server

def test_valid_answers_are_used_and_a_rerun_asks_nothing(server, base, tiny_openclip_model):
    srv = server("good")
    spec = f"negaware:decompose{_llm(srv.url)}:{tiny_openclip_model}"
    wrapped = load_model(spec, device="cpu")
    packed = _encode(wrapped, PLAIN + FREE)
    assert sorted(srv.captions) == sorted(FREE)                     # captions without a cue are never sent
    plain = _feats(base, PLAIN + FREE)[:len(PLAIN)]
    assert np.array_equal(packed[:len(PLAIN), :plain.shape[1]], plain)      # the base model's bits
    aff, neg, counts = unpack(packed, plain.shape[1], 4)
    assert list(counts) == [0, 0, 1, 1]
    want_aff, want_neg = _feats(base, ["A cat.", "A street."]), _feats(base, ["dog", "Car"])
    assert np.allclose(aff[2:], want_aff, atol=1e-5) and np.allclose(neg[2:, 0], want_neg, atol=1e-5)
    assert parse_negation(FREE[0]).negated == ()                    # the rules alone would not see this one
    assert wrapped.decomposition_counts() == {"llm": 2, "no_cue": 2, "fallback": 0, "requests": 2, "cache_hits": 0}

    again = load_model(spec, device="cpu")
    assert np.allclose(_encode(again, PLAIN + FREE), packed, atol=1e-6)
    assert len(srv.captions) == 2                                   # the cache answered
    assert again.decomposition_counts() == {"llm": 2, "no_cue": 2, "fallback": 0, "requests": 0, "cache_hits": 2}


@pytest.mark.parametrize("mode, reason, cached", [
    ("malformed", "malformed_json", True), ("absent_object", "invalid", True), ("cue_in_affirmed", "invalid", True),
    ("wrong_types", "invalid", True), ("bad_shape", "bad_shape", False), ("http500", "http_500", False),
    ("slow", "timeout", False),
])
def test_bad_answers_fall_back_to_the_rules_and_are_counted(server, base, mode, reason, cached):
    srv = server(mode, delay=1.5 if mode == "slow" else 0.0)
    rules = _encode(_wrap(base), PLAIN + FREE)
    t0 = time.monotonic()
    wrapped = _wrap(base, _llm(srv.url))
    packed = _encode(wrapped, PLAIN + FREE)
    assert time.monotonic() - t0 < 1.4                              # the deadline, not the server's pace
    assert np.allclose(packed, rules, atol=1e-6)
    assert wrapped.decomposition_counts() == {"llm": 0, "no_cue": 2, "fallback": 2, f"fallback_{reason}": 2,
                                              "requests": 2, "cache_hits": 0}
    again = _wrap(base, _llm(srv.url))
    _encode(again, FREE)
    # an answer that came is kept (the rerun judges it the same, asking nothing); a failed call is asked again
    assert len(srv.captions) == (2 if cached else 4)
    assert again.decomposition_counts()[f"fallback_{reason}"] == 2


def test_retries_only_what_may_succeed(server, base):
    srv = server("http500")
    wrapped = _wrap(base, _llm(srv.url, ",llm_retries=1,llm_timeout=2"))
    _encode(wrapped, FREE[:1])
    assert len(srv.captions) == 2 and wrapped.decomposition_counts()["fallback_http_500"] == 1
    srv.mode = "malformed"
    wrapped = _wrap(base, _llm(srv.url, ",llm_retries=1,llm_timeout=2"))
    _encode(wrapped, FREE[1:])
    assert len(srv.captions) == 3 and wrapped.decomposition_counts()["fallback_malformed_json"] == 1


def test_calls_in_flight_are_bounded(server, base):
    srv = server("good", delay=0.2)
    captions = [f"A table with no {thing}." for thing in ("cups", "plates", "forks", "knives", "bowls", "glasses")]
    wrapped = _wrap(base, _llm(srv.url, ",llm_workers=2"))
    _encode(wrapped, captions + captions)
    assert sorted(srv.captions) == sorted(captions) and srv.max_inflight == 2
    assert wrapped.decomposition_counts()["llm"] == 6


def test_the_key_goes_only_where_the_policy_allows(server, base, monkeypatch):
    monkeypatch.setenv("NEGBENCH_LLM_KEY", "sk-test")
    local = server("good")
    _encode(_wrap(base, _llm(local.url)), FREE[:1])
    assert local.auth == ["Bearer sk-test"]
    ip = non_loopback_ip()
    if ip is None:
        pytest.skip("no non-loopback interface")
    other = server("good", host=ip)
    wrapped = _wrap(base, _llm(other.url))
    _encode(wrapped, FREE[1:])
    assert other.auth == [None] and wrapped.decomposition_counts()["llm"] == 1


def test_mcq_through_the_engine(server, sample_tasks, tiny_openclip_model, tmp_path):
    """The model string goes wherever one goes: an MCQ task through evaluate_task; only the
    negated options are sent, and the run's counts come from the adapter."""
    from negbench.evaluation.engine import evaluate_task
    from negbench.inputs.tasks import load_task_file

    srv = server("good")
    spec = {s.name: s for s in load_task_file(sample_tasks)}["sample_mcq"]
    wrapped = load_model(f"negaware:decompose{_llm(srv.url, ',llm_timeout=5')}:{tiny_openclip_model}", device="cpu")
    res = evaluate_task(spec, wrapped, results_dir=tmp_path / "r", cache_dir=None, bootstrap_samples=10,
                        progress=False, num_workers=0)
    counts = wrapped.decomposition_counts()
    assert res["counts"] and counts["llm"] == len(set(srv.captions)) > 0 and counts["fallback"] == 0
    assert counts["no_cue"] > 0 and all(wants_llm(c) for c in srv.captions)


def test_results_record_the_decomposition_counts(server, sample_tasks, tiny_openclip_model, tmp_path):
    from negbench.evaluation.engine import evaluate_task
    from negbench.inputs.tasks import load_task_file

    srv = server("good")
    spec = {s.name: s for s in load_task_file(sample_tasks)}["sample_mcq"]
    model = f"negaware:decompose{_llm(srv.url, ',llm_timeout=5')}:{tiny_openclip_model}"
    res = evaluate_task(spec, model, results_dir=tmp_path / "r", cache_dir=None, bootstrap_samples=10,
                        progress=False, num_workers=0)
    counts = res["model_details"]["decomposition"]
    assert counts["llm"] == len(set(srv.captions)) > 0 and counts["fallback"] == 0
