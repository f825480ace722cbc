"""Generative VLMs: `vlm:hf:DIR` on a tiny random LLaVA saved like a real checkpoint, and
`vlm:openai:MODEL@URL` against a real chat server on 127.0.0.1 that runs the same model."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from _vlm_fixtures import build_tiny_vlm, server_url, start_server
from negbench.cli import main
from negbench.core.errors import ConfigError
from negbench.evaluation import generative
from negbench.evaluation.engine import evaluate_task, model_slug
from negbench.inputs.formats import read_task_file
from negbench.inputs.tasks import load_task_file

OPTIONS = ["This image features dog and cat.", "This image does not feature car.",
           "This image features cat, but not car.", "This image features car."]


@pytest.fixture(scope="session")
def tiny_vlm(tmp_path_factory) -> Path:
    """Random weights: what the likelihood protocol scores."""
    return build_tiny_vlm(tmp_path_factory.mktemp("tiny_vlm"))


@pytest.fixture(scope="session")
def b_vlm(tmp_path_factory) -> Path:
    """Random weights edited to answer 'B' and stop: the choice protocol gets parseable answers."""
    return build_tiny_vlm(tmp_path_factory.mktemp("b_vlm"), answer_letter="B")


@pytest.fixture(scope="session")
def specs(sample_tasks):
    return {s.name: s for s in load_task_file(sample_tasks)}


@pytest.mark.parametrize("answer, expected", [
    ("B", 1), ("b", 1), ("(b)", 1), ("B.", 1), ("B)", 1), (" Answer: B. ", 1), ("answer is (C)", 2),
    ("The answer is D", 3), ("A. This image features dog and cat.", 0), ("this image features car", 3),
    ("This image does not feature car.", 1), ("E", None), ("B or C", None), ("I think B", None),
    ("A. This image features car.", None), ("", None), (None, None), ("garbage ###", None), ("AB", None),
])
def test_strict_parsing(answer, expected):
    assert generative.parse_answer(answer, OPTIONS) == expected


def test_parsing_binary_allows_only_a_b():
    assert generative.parse_answer("B", OPTIONS[:2]) == 1 and generative.parse_answer("C", OPTIONS[:2]) is None


def test_choice_prompt_is_the_documented_one():
    prompt = generative.choice_prompt(OPTIONS[:2], "video")
    assert prompt == ("Which caption describes this video best?\nA. This image features dog and cat.\n"
                      "B. This image does not feature car.\nAnswer with the letter of the correct option only.")


def test_shuffle_is_reproducible_per_row_and_moves_options(sample_tasks, specs):
    spec = specs["sample_mcq"]
    items = read_task_file(spec.resolve_file(None), "mcq", spec.resolve_media_root(None)).items
    a = generative.option_orders(items, True, 7)
    assert a == generative.option_orders(items, True, 7)
    assert a[5:] == generative.option_orders(items[5:], True, 7)  # a row's order ignores other rows
    assert a != generative.option_orders(items, True, 8)
    assert sum(o != (0, 1, 2, 3) for o in a) >= len(items) // 2
    assert all(sorted(o) == [0, 1, 2, 3] for o in a)
    assert generative.option_orders(items, False, 7) == [(0, 1, 2, 3)] * len(items)


def test_likelihood_equals_naive_per_option_forward(tiny_vlm):
    import torch
    from PIL import Image

    from negbench.models.base import load_model
    from negbench.models.vlm.base import Query

    adapter = load_model(f"vlm:hf:{tiny_vlm}", device="cpu")
    image, prompt = Image.new("RGB", (40, 30), (200, 30, 30)), generative.likelihood_prompt()
    fast = adapter.option_logprobs([image], prompt, OPTIONS)
    prefix = adapter.inputs([Query((image,), prompt)])
    p = prefix["input_ids"].shape[1]
    for option, (total, n) in zip(OPTIONS, fast):
        ids = adapter.option_ids(option)
        full = torch.cat([prefix["input_ids"], torch.tensor([ids])], dim=1)
        with torch.inference_mode():
            logits = adapter.model(input_ids=full, attention_mask=torch.ones_like(full),
                                   pixel_values=prefix["pixel_values"]).logits[0].float()
        logp = torch.log_softmax(logits, dim=-1)
        naive = sum(float(logp[p - 1 + t, tok]) for t, tok in enumerate(ids))
        assert n == len(ids) and total == pytest.approx(naive, abs=1e-4)


def _eval(model, sample_tasks, tmp_path, *extra, tasks=("sample_mcq", "sample_binary")):
    return main(["eval", "--model", model, "--tasks-file", str(sample_tasks), *[a for t in tasks for a in ("--task", t)],
                 "--results-dir", str(tmp_path / "results"), "--cache-dir", str(tmp_path / "cache"), "--quiet",
                 "--bootstrap-samples", "50", *extra])


def _result(tmp_path, recorded: str, task: str):
    folder = tmp_path / "results" / model_slug(recorded)
    return json.loads((folder / f"{task}.json").read_text()), pd.read_parquet(folder / f"{task}.parquet")


def test_cli_choice_protocol_parses_scores_caches_and_shuffles(b_vlm, sample_tasks, tmp_path, capsys):
    model = f"vlm:hf:{b_vlm}"
    assert _eval(model, sample_tasks, tmp_path, "--protocol", "choice") == 0
    doc, df = _result(tmp_path, f"{model}#choice", "sample_mcq")
    assert doc["protocol"] == "choice" and doc["model"] == f"{model}#choice" and doc["chance"] == 0.25
    assert doc["counts"]["unparsed"] == 0 and doc["counts"]["request_errors"] == 0
    assert set(df["raw_answer"]) == {"B"} and (df["predicted"] == 1).all()
    expected = float((df["correct_answer"] == 1).mean())
    assert doc["metrics"]["accuracy"]["value"] == pytest.approx(expected)
    assert {"ci_low", "ci_high"} <= set(doc["metrics"]["accuracy"]) and "accuracy_negative" in doc["metrics"]
    assert doc["breakdowns"]["answer_position_shares"] == {"A": 0.0, "B": 1.0, "C": 0.0, "D": 0.0}
    assert doc["cache"] == {"answer_hits": 0, "answer_misses": 50}

    assert _eval(model, sample_tasks, tmp_path, "--protocol", "choice") == 0  # rerun: all cached
    again, _ = _result(tmp_path, f"{model}#choice", "sample_mcq")
    assert again["cache"] == {"answer_hits": 50, "answer_misses": 0} and again["metrics"] == doc["metrics"]

    assert _eval(model, sample_tasks, tmp_path, "--shuffle-options", "--shuffle-seed", "3") == 0
    shuf, sdf = _result(tmp_path, f"{model}#choice+shuffle3", "sample_mcq")
    assert shuf["protocol_details"]["shuffle_seed"] == 3
    assert list(sdf["predicted"]) == [order[1] for order in sdf["option_order"]]  # still says B
    assert sdf["predicted"].nunique() > 1
    assert "unparsed 0" in capsys.readouterr().out


def test_cli_likelihood_protocol_and_table_next_to_clip(tiny_vlm, tiny_openclip_model, sample_tasks, tmp_path,
                                                        capsys):
    model = f"vlm:hf:{tiny_vlm}#likelihood"   # the protocol may ride on the model string
    assert _eval(model, sample_tasks, tmp_path, tasks=["sample_mcq"]) == 0
    doc, df = _result(tmp_path, model, "sample_mcq")
    assert doc["protocol"] == "likelihood" and doc["counts"]["unparsed"] == 0
    means = np.array(df["logprob_sum"].tolist()) / np.array(df["n_tokens"].tolist())
    assert (df["predicted"] == means.argmax(axis=1)).all()
    assert {"accuracy_logprob_mean", "accuracy_logprob_sum"} <= set(doc["metrics"])
    assert doc["cache"]["answer_misses"] > 0
    assert _eval(model, sample_tasks, tmp_path, tasks=["sample_mcq"]) == 0
    assert _result(tmp_path, model, "sample_mcq")[0]["cache"]["answer_misses"] == 0

    assert _eval(tiny_openclip_model, sample_tasks, tmp_path, tasks=["sample_mcq"]) == 0
    capsys.readouterr()
    assert main(["table", str(tmp_path / "results"), "--out", str(tmp_path / "board")]) == 0
    md = capsys.readouterr().out
    rows = [line for line in md.splitlines() if line.startswith("| ") and "sample" not in line]
    assert any(model in r for r in rows) and any(tiny_openclip_model in r for r in rows)
    assert main(["report", str(tmp_path / "results"), "--out", str(tmp_path / "report")]) == 0
    assert model in (tmp_path / "report" / "report.md").read_text()


def test_library_dispatch_and_bad_requests_are_config_errors(tiny_vlm, specs, sample_tasks, tmp_path, capsys):
    res = evaluate_task(specs["sample_binary"], f"vlm:hf:{tiny_vlm}#likelihood", bootstrap_samples=10,
                        progress=False)
    assert res["protocol"] == "likelihood" and res["counts"]["items"] == 12 and res["chance"] == 0.5
    with pytest.raises(ConfigError, match="retrieval"):
        evaluate_task(specs["sample_retrieval"], f"vlm:hf:{tiny_vlm}", progress=False)
    with pytest.raises(ConfigError, match="choice protocol only"):
        evaluate_task(specs["sample_mcq"], f"vlm:hf:{tiny_vlm}", protocol="likelihood", shuffle_options=True)
    assert main(["eval", "--model", "vlm:openai:nourl", "--tasks-file", str(sample_tasks), "--task",
                 "sample_mcq", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "MODEL@URL" in err and "Traceback" not in err


# ---------------------------------------------------------------- the OpenAI-compatible endpoint

@pytest.fixture(scope="module")
def server(b_vlm):
    srv = start_server(b_vlm, slow_s=1.0)
    yield srv
    srv.shutdown()
    srv.server_close()


def test_openai_endpoint_runs_the_model_and_sends_key_to_loopback(server, b_vlm, sample_tasks, tmp_path,
                                                                 monkeypatch):
    monkeypatch.setenv("NEGBENCH_VLM_KEY", "sk-test-secret")
    model = f"vlm:openai:tiny@{server_url(server)}"
    assert _eval(model, sample_tasks, tmp_path, "--concurrency", "3") == 0
    doc, df = _result(tmp_path, f"{model}#choice", "sample_mcq")
    assert doc["counts"]["unparsed"] == 0 and set(df["raw_answer"]) == {"B"}
    assert _eval(f"vlm:hf:{b_vlm}", sample_tasks, tmp_path) == 0   # same model in-process: same answers
    local, ldf = _result(tmp_path, f"vlm:hf:{b_vlm}#choice", "sample_mcq")
    assert list(ldf["predicted"]) == list(df["predicted"]) and local["metrics"] == doc["metrics"]
    assert {s["auth"] for s in server.seen if s["model"] == "tiny"} == {"Bearer sk-test-secret"}


def test_endpoint_likelihood_via_prompt_logprobs_equals_the_model(server, sample_tasks, specs, tmp_path):
    import torch

    model = f"vlm:openai:tiny@{server_url(server)}"
    assert _eval(model, sample_tasks, tmp_path, "--protocol", "likelihood", tasks=["sample_binary"]) == 0
    doc, df = _result(tmp_path, f"{model}#likelihood", "sample_binary")
    assert doc["counts"]["request_errors"] == 0 and doc["counts"]["items"] == 12
    hf, first = server.adapter, df.iloc[0]   # reference: the same model, prefix + " " + option in one pass
    from PIL import Image

    image = Image.open(first["media_path"]).convert("RGB")
    prompt = generative.likelihood_prompt()
    p = hf.inputs([generative_query(image, prompt)])["input_ids"].shape[1]
    for j in range(2):
        text = hf.prompt_text(1, prompt) + " " + first[f"caption_{j}"]
        batch = hf.processor(images=[[image]], text=[text], return_tensors="pt")
        with torch.inference_mode():
            logp = torch.log_softmax(hf.model(**batch).logits[0].float(), dim=-1)
        ids = batch["input_ids"][0].tolist()
        assert first["logprob_sum"][j] == pytest.approx(sum(float(logp[t - 1, ids[t]]) for t in range(p, len(ids))),
                                                        abs=1e-4)
        assert first["n_tokens"][j] == len(ids) - p

    plain = f"vlm:openai:plain@{server_url(server)}"   # an endpoint without prompt_logprobs: no result
    assert _eval(plain, sample_tasks, tmp_path, "--protocol", "likelihood", tasks=["sample_binary"]) == 2
    assert not (tmp_path / "results" / model_slug(f"{plain}#likelihood") / "sample_binary.json").exists()


def generative_query(image, prompt):
    from negbench.models.vlm.base import Query

    return Query((image,), prompt)


def _eval_endpoint(model, sample_tasks, tmp_path, *extra, timeout="20"):
    return main(["eval", "--model", model, "--tasks-file", str(sample_tasks), "--task", "sample_binary",
                 "--results-dir", str(tmp_path / "results"), "--cache-dir", str(tmp_path / "cache"), "--quiet",
                 "--bootstrap-samples", "10", "--retries", "0", "--request-timeout", timeout,
                 "--concurrency", "12", *extra])


@pytest.mark.parametrize("mode, reason", [("malformed", "malformed"), ("noanswer", "malformed"),
                                          ("refuse", "http_400"), ("error500", "http_500"),
                                          ("redirect", "http_307"), ("slow", "timeout")])
def test_endpoint_that_answers_nothing_is_no_result(server, sample_tasks, tmp_path, capsys, mode, reason):
    model = f"vlm:openai:{mode}@{server_url(server)}"
    assert _eval_endpoint(model, sample_tasks, tmp_path, timeout="0.3" if mode == "slow" else "20") == 2
    err = capsys.readouterr().err
    assert f"no question of 12 was answered ({reason} 12)" in err and "Traceback" not in err
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").rglob("*.json"))
    assert not (tmp_path / "cache" / "vlm").exists() or not any((tmp_path / "cache" / "vlm").rglob("*.json"))
    assert not any(s["path"] == "/v1/elsewhere" for s in server.seen)  # redirects are never followed


def test_endpoint_down_is_no_result_and_a_stale_result_is_not_reused(b_vlm, sample_tasks, tmp_path, capsys):
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    model = f"vlm:openai:tiny@http://127.0.0.1:{port}/v1"
    assert _eval_endpoint(model, sample_tasks, tmp_path, "--skip-existing") == 2
    assert f"connection refused at http://127.0.0.1:{port}/v1: is the server running?" in capsys.readouterr().err
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").rglob("*.json"))


def test_half_failed_run_is_incomplete_marked_and_never_reused(server, sample_tasks, tmp_path, capsys):
    model = f"vlm:openai:half@{server_url(server)}"
    assert _eval_endpoint(model, sample_tasks, tmp_path, "--skip-existing") == 0
    doc, df = _result(tmp_path, f"{model}#choice", "sample_binary")
    failed = int(df["error"].notna().sum())
    assert 0 < failed < 12 and doc["status"] == "incomplete"
    assert doc["failures"] == {"unanswered": failed, "of": 12, "by_reason": {"http_400": failed}}
    assert "INCOMPLETE" in capsys.readouterr().out
    assert main(["table", str(tmp_path / "results"), "--out", str(tmp_path / "board")]) == 0
    assert "incomplete" in capsys.readouterr().out
    seen = len(server.seen)
    assert _eval_endpoint(model, sample_tasks, tmp_path, "--skip-existing") == 0  # asked again, not reused
    assert "\n  reused " not in capsys.readouterr().out and len(server.seen) > seen


def test_deadline_bounds_the_run(server, specs):
    from negbench.models.vlm.openai import OpenAIChatVLM

    adapter = OpenAIChatVLM("slow", server_url(server), retries=0, timeout=5.0, deadline=0.5, concurrency=2)
    adapter.model_string = "vlm:openai:slow@..."
    from negbench.evaluation.run import NothingAnswered

    with pytest.raises(NothingAnswered, match=r"no question of 12 was answered \((deadline|timeout) \d+"):
        evaluate_task(specs["sample_binary"], adapter, bootstrap_samples=10, progress=False)


def test_key_goes_only_to_https_or_loopback():
    from negbench.models.vlm.openai import key_allowed, parse_spec

    assert key_allowed("https://api.example.com/v1") and key_allowed("http://127.0.0.1:8000/v1")
    assert key_allowed("http://localhost:8000/v1") and key_allowed("http://[::1]:8000/v1")
    assert not key_allowed("http://api.example.com/v1") and not key_allowed("http://10.0.0.2/v1")
    assert parse_spec("Qwen/Qwen2-VL-2B-Instruct@http://127.0.0.1:8000/v1") == (
        "Qwen/Qwen2-VL-2B-Instruct", "http://127.0.0.1:8000/v1")


@pytest.mark.parametrize("protocol", ["choice", "likelihood"])
def test_undecodable_image_names_the_row_or_is_skipped_and_counted(tiny_vlm, tmp_path, protocol):
    from conftest import make_image
    from negbench.core.errors import TaskFileError
    from negbench.inputs.formats import MCQItem, write_task_file
    from negbench.inputs.tasks import TaskSpec

    make_image(tmp_path / "good.png", 1)
    (tmp_path / "broken.png").write_bytes(b"not a png at all")
    items = [MCQItem(r, media, tuple(OPTIONS), 0, "positive") for r, media in
             [(1, "good.png"), (2, "broken.png"), (3, "good.png")]]
    write_task_file(tmp_path / "bad.csv", "mcq", items)
    spec = TaskSpec(name="bad", kind="mcq", file=str(tmp_path / "bad.csv"), data_root=str(tmp_path))
    with pytest.raises(TaskFileError, match=r"bad.csv, row 2, column 'image_path'"):
        evaluate_task(spec, f"vlm:hf:{tiny_vlm}", protocol=protocol, progress=False)
    res = evaluate_task(spec, f"vlm:hf:{tiny_vlm}", protocol=protocol, progress=False,
                        skip_invalid=True, bootstrap_samples=10)
    assert res["counts"]["items"] == 2 and res["counts"]["skipped"] == 1 and res["skipped_rows"][0]["row"] == 2


def test_limit_scores_the_first_n_questions_and_is_never_reused_for_a_full_run(b_vlm, sample_tasks, tmp_path,
                                                                                 capsys):
    model = f"vlm:hf:{b_vlm}"
    assert _eval(model, sample_tasks, tmp_path, "--limit", "7", "--skip-existing", tasks=("sample_mcq",)) == 0
    doc, df = _result(tmp_path, f"{model}#choice", "sample_mcq")
    assert doc["limit"] == 7 and doc["counts"]["items"] == 7 and list(df["row"]) == list(range(1, 8))
    assert "LIMITED to the first 7 (--limit 7)" in capsys.readouterr().out and doc["limited"] is True
    assert _eval(model, sample_tasks, tmp_path, "--skip-existing", tasks=("sample_mcq",)) == 0
    full, _ = _result(tmp_path, f"{model}#choice", "sample_mcq")
    assert full["limit"] is None and full["counts"]["items"] == 50 and full["cache"]["answer_hits"] == 7
