"""What a user sees when an endpoint or a download host is not there, against real servers and
ports on 127.0.0.1 (and the unresolvable `nonexistent.invalid`): one line naming the URL and the
reason, a quick stop, nothing written; a server that fails only now and then is counted as before."""
from __future__ import annotations

import logging
import socket
import time

import pytest

from _local_server import LocalServer, QuietHandler, completion, send_body, server_factory
from negbench.cli import main


def free_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Counting(LocalServer):
    """/v1/chat/completions answering `status` (500: a server that is there but failing) or the
    text 'B'; counts the requests."""

    def __init__(self, status: int = 200):
        self.requests = 0
        srv = self

        class Handler(QuietHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                srv.requests += 1
                send_body(self, completion("B") if status == 200 else b"{}", status=status)

        super().__init__(Handler)


@pytest.fixture
def server():
    yield from server_factory(Counting)


def _eval(url, sample_tasks, tmp_path, *extra):
    return main(["eval", "--model", f"vlm:openai:tiny@{url}", "--tasks-file", str(sample_tasks),
                 "--task", "sample_binary", "--results-dir", str(tmp_path / "results"),
                 "--cache-dir", str(tmp_path / "cache"), "--quiet", "--bootstrap-samples", "10",
                 "--concurrency", "4", *extra])


def _nothing_written(tmp_path) -> bool:
    return not any(p.is_file() for d in ("results", "cache") if (tmp_path / d).exists()
                   for p in (tmp_path / d).rglob("*.json"))


# ---------------------------------------------------------------- vlm:openai


@pytest.mark.parametrize("where, said", [
    ("refused", "connection refused at http://127.0.0.1:{port}/v1: is the server running?"),
    ("dns", "host 'nonexistent.invalid' not found (DNS) for http://nonexistent.invalid/v1: check the URL")])
def test_eval_against_no_server_stops_at_once_with_one_line(sample_tasks, tmp_path, capsys, where, said):
    port = free_port()
    url = f"http://127.0.0.1:{port}/v1" if where == "refused" else "http://nonexistent.invalid/v1"
    start = time.monotonic()
    assert _eval(url, sample_tasks, tmp_path) == 2          # the default retries (2) and backoff
    took = time.monotonic() - start
    err = capsys.readouterr().err
    assert said.format(port=port) in err and "Traceback" not in err
    assert len([line for line in err.splitlines() if line.strip()]) == 1, err
    assert took < 5, took                                   # the first wave, not 12 questions' retries
    assert _nothing_written(tmp_path)


def test_a_server_that_answers_with_errors_is_counted_per_question(server, sample_tasks, tmp_path, capsys):
    srv = server(500)                        # there, but failing: today's behaviour, every question asked
    assert _eval(srv.url, sample_tasks, tmp_path, "--retries", "0") == 2
    assert "no question of 12 was answered (http_500 12)" in capsys.readouterr().err
    assert srv.requests == 12


def test_adapter_stops_only_while_nothing_ever_answered(server):
    from negbench.core.http import EndpointUnreachable
    from negbench.models.vlm.base import Query
    from negbench.models.vlm.openai import OpenAIChatVLM
    from PIL import Image

    image = Image.new("RGB", (8, 8))
    queries = [Query([image], "Which option? A or B") for _ in range(6)]
    down = OpenAIChatVLM("tiny", f"http://127.0.0.1:{free_port()}/v1", concurrency=2, retries=2)
    with pytest.raises(EndpointUnreachable, match="connection refused at"):
        down.choose(queries)
    assert down.watch.unreachable == 2      # the first wave only: no retries, no other question asked
    with pytest.raises(EndpointUnreachable):   # a later call (the next task) asks nothing either
        down.choose(queries)
    assert down.watch.unreachable == 2

    up = OpenAIChatVLM("tiny", server(200).url, concurrency=2)
    assert [a.text for a in up.choose(queries)] == ["B"] * 6
    up.watch.saw(type("Refused", (), {"unreachable": "connection refused"})())  # answered once: never 'down'
    assert up.watch.down(1) is None


# ---------------------------------------------------------------- negaware llm=, paraphrase

CAPTIONS = [f"A photo of a cat but no dog number {i}." for i in range(10)]


def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_negaware_llm_without_a_server_is_one_warning_and_the_rule_parser(tmp_path, caplog):
    from negbench.core.negation_parse import parse_negation
    from negbench.models.negaware_llm import LLMDecomposer, LLMSettings

    port = free_port()
    llm = LLMDecomposer(LLMSettings("m", f"http://127.0.0.1:{port}/v1", workers=4, retries=2),
                        cache_dir=tmp_path)
    start = time.monotonic()
    with caplog.at_level(logging.WARNING):
        parses = llm.parse_many(CAPTIONS)
    assert time.monotonic() - start < 3
    assert parses == [parse_negation(c) for c in CAPTIONS]
    assert llm.counts()["fallback_connection"] == 10 and llm.requests == 4   # the first wave only
    assert _warnings(caplog) == [f"negaware llm: connection refused at http://127.0.0.1:{port}/v1: is the server "
                                 f"running?; the rule parser splits every caption"]


def test_paraphrase_without_a_server_is_one_warning_and_the_templates(caplog):
    from negbench.construct.paraphrase import OpenAIParaphraser, ParaphraseRequest

    port = free_port()
    para = OpenAIParaphraser(f"http://127.0.0.1:{port}/v1", "m", allow_fallback=True)   # retries 3 by default
    start = time.monotonic()
    with caplog.at_level(logging.WARNING):
        texts, stats = para.paraphrase_many([ParaphraseRequest("mcq", c) for c in CAPTIONS])
    assert time.monotonic() - start < 3
    assert texts == CAPTIONS and stats["error_connection"] == 10 and stats["fallback_error"] == 10
    assert _warnings(caplog) == [f"paraphrase: connection refused at http://127.0.0.1:{port}/v1: is the server "
                                 f"running?; every caption of the 10 asked keeps its template"]


def test_paraphrase_failures_of_a_live_server_are_one_line_per_reason(server, caplog):
    from negbench.construct.paraphrase import OpenAIParaphraser, ParaphraseRequest

    srv = server(500)
    para = OpenAIParaphraser(srv.url, "m", allow_fallback=True, retries=0)
    with caplog.at_level(logging.WARNING):
        texts, stats = para.paraphrase_many([ParaphraseRequest("mcq", c) for c in CAPTIONS])
    assert srv.requests == 10 and stats["error_http_500"] == 10     # there: every caption was asked
    said = _warnings(caplog)
    assert len(said) == 1 and said[0].startswith("paraphrase: 10 of 10 calls failed (http_500)")


# ---------------------------------------------------------------- negbench data download

PAYLOAD = bytes(range(256)) * 2048          # 512 KiB: a transfer of many reads


class Files(LocalServer):
    """GET /NAME: PAYLOAD with Range support; 404 for any other name; with `drop_once` the first
    answer stops halfway (the connection closes) and the next one resumes from a Range."""

    def __init__(self, drop_once: bool = False):
        self.ranges: list[str | None] = []
        srv, self.drop = self, drop_once

        class Handler(QuietHandler):
            def do_GET(self):
                srv.ranges.append(self.headers.get("Range"))
                if self.path != "/VOCtest_06-Nov-2007.tar":
                    self.send_error(404)
                    return
                start = int(self.headers["Range"].split("=")[1].split("-")[0]) if self.headers.get("Range") else 0
                self.send_response(206 if start else 200)
                self.send_header("Content-Length", str(len(PAYLOAD) - start))
                self.end_headers()
                body = PAYLOAD[start:]
                if srv.drop:
                    srv.drop = False
                    self.wfile.write(body[:len(body) // 2])
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.wfile.write(body)

        super().__init__(Handler)
        self.base = self.url[:-len("/v1")]


@pytest.fixture
def files():
    yield from server_factory(Files)


def _download(root, mirror, capsys, *extra):
    rc = main(["data", "download", "--data-root", str(root), "--what", "voc", "--quiet", "--mirror", mirror, *extra])
    return rc, capsys.readouterr().err


@pytest.mark.parametrize("where, said", [
    ("refused", "connection refused by 127.0.0.1:{port} (nothing listens there); nothing was saved"),
    ("dns", "host 'nonexistent.invalid' not found (DNS failure; not retried); nothing was saved"),
    ("404", "HTTP 404 Not Found; nothing was saved")])
def test_download_that_cannot_start_is_one_short_line_and_leaves_no_folder(files, tmp_path, capsys, caplog,
                                                                            where, said):
    port = free_port()
    mirror = {"refused": f"http://127.0.0.1:{port}", "dns": "http://nonexistent.invalid",
              "404": files().base + "/missing"}[where]
    root = tmp_path / "negbench-data"
    with caplog.at_level(logging.WARNING):
        rc, err = _download(root, mirror, capsys)
    lines = [line for line in err.splitlines() if line.strip()]
    assert rc == 2 and len(lines) == 1 and lines[0].endswith(said.format(port=port)), err
    assert len(lines[0]) < 200 and "Pool" not in lines[0] and "Error(" not in lines[0]   # no urllib3 repr
    assert not [r for r in caplog.records if "resuming" in r.getMessage()]                # nothing to resume
    assert not root.exists()


def test_download_dropped_midway_resumes_from_where_it_stopped(files, tmp_path, capsys, caplog):
    srv = files(True)
    root = tmp_path / "negbench-data"
    with caplog.at_level(logging.WARNING):
        rc, err = _download(root, srv.base, capsys)
    assert rc == 2 and "checksum mismatch" in err          # the payload is no real VOC tar: fetched in full
    assert srv.ranges[0] is None and srv.ranges[1] == f"bytes={len(PAYLOAD) // 2}-"
    said = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert said == [f"{srv.base}/VOCtest_06-Nov-2007.tar: connection closed after {len(PAYLOAD) // 2} of "
                    f"{len(PAYLOAD)} bytes; resuming (1 of 2)"]


# ---------------------------------------------------------------- negbench import-benchmark


@pytest.mark.parametrize("name", ["ccneg", "valse", "spec", "negvqa", "sugarcrepe"])
def test_import_benchmark_with_a_bad_src_leaves_no_out_folder(tmp_path, capsys, name):
    out = tmp_path / "imported" / name
    assert main(["import-benchmark", name, "--src", str(tmp_path / "nope"), "--out", str(out)]) == 2
    assert f"--src {tmp_path / 'nope'}: no such file or folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir(exist_ok=True)        # there, but without the release's files
    assert main(["import-benchmark", name, "--src", str(tmp_path / "empty"), "--out", str(out)]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "imported").exists()


# ---------------------------------------------------------------- negbench tasks, data check


def test_suite_counts_are_tasks_and_missing_optional_members_are_one_warning(capsys, caplog):
    from negbench.inputs.tasks import expand_tasks

    assert main(["tasks"]) == 0
    suites = capsys.readouterr().out.strip().splitlines()[-1]
    n = len(expand_tasks(suites=["negbench"]))
    assert f"negbench ({n})" in suites
    assert f"negation-all ({n}; not registered: ccneg, valse, spec, negvqa, sugarcrepe)" in suites
    with caplog.at_level(logging.WARNING):
        assert main(["tasks", "--suite", "negation-all"]) == 0
    said = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert said == ["suite 'negation-all': ccneg, valse, spec, negvqa, sugarcrepe not registered, left out (import "
                    "with `negbench import-benchmark`, then pass the YAML with --tasks-file or keep it under "
                    "--data-root)"]


@pytest.fixture
def fresh_task_registry(monkeypatch):
    """The task and suite registries as a new process has them: other tests of this worker may have
    registered their own YAMLs, and `negbench tasks` lists every registered task."""
    from negbench.inputs import tasks

    monkeypatch.setattr(tasks.TASKS, "_entries", {})
    monkeypatch.setattr(tasks.SUITES, "_entries", {})
    monkeypatch.setattr(tasks, "_loaded_files", set())


def test_data_check_checks_the_task_yamls_under_the_data_root_as_tasks_does(sample_tasks, capsys,
                                                                            fresh_task_registry):
    from negbench.inputs.tasks import expand_tasks

    root = str(sample_tasks.parent)
    assert main(["tasks", "--data-root", root]) == 0
    listed = {line.split()[0] for line in capsys.readouterr().out.splitlines() if line.endswith(" ready")}
    assert listed == {"sample_mcq", "sample_binary", "sample_retrieval", "sample_video_mcq"}
    assert main(["data", "check", "--data-root", root]) == 0
    out = capsys.readouterr().out
    assert "4/4 tasks ready" in out and all(f"{name}  " in out or f"{name} " in out for name in listed)
    assert "`--suite negbench` checks them" in out              # said, not silently skipped
    assert main(["data", "check", "--data-root", root, "--suite", "negbench"]) == 1
    assert f"0/{len(expand_tasks(suites=['negbench']))} tasks ready" in capsys.readouterr().out
