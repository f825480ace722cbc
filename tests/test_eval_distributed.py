"""Distributed evaluation: 2 torchrun ranks (gloo, CPU) and `--shard i/n` give exactly the numbers
of one process (results JSON metrics, per-item Parquet), for every task kind and a generative VLM;
a killed rank stops the run with one line and the rerun resumes from the cache.

Run as a script (by torchrun, in test_killed_rank_...), this file is `negbench eval` with a rank
that kills itself: `torchrun ... tests/test_eval_distributed.py --die-before-text-put EVAL ARGS`.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


# ---------------------------------------------------------------- helpers

def write_tasks(root: Path) -> Path:
    """The sample tasks (MCQ, binary MCQ, retrieval, video MCQ) plus a one-question MCQ (one image,
    fewer inputs than ranks: one rank has nothing to encode)."""
    import yaml

    from conftest import make_image, write_sample_tasks
    from negbench.inputs.formats import MCQItem, write_task_file

    tasks_yaml = write_sample_tasks(root, n_images=6, n_questions=10, n_videos=3)
    make_image(root / "images" / "solo.png", 40)   # in no other task: not cached by them
    one = [MCQItem(1, "images/solo.png", ("A dog.", "A cat.", "No dog.", "No cat."), 2, "negative",
                   ("positive", "positive", "negative", "negative"))]
    write_task_file(root / "one_mcq.csv", "mcq", one, {"source": "tests"})
    doc = yaml.safe_load(tasks_yaml.read_text())
    doc["tasks"].append({"name": "one_mcq", "kind": "mcq", "file": "one_mcq.csv", "group": "Sample"})
    tasks_yaml.write_text(yaml.safe_dump(doc, sort_keys=False))
    return tasks_yaml


def eval_args(tasks_yaml: Path, model: str, out: Path, *extra: str) -> list[str]:
    return ["--model", model, "--tasks-file", str(tasks_yaml), "--out", str(out / "res"),
            "--cache-dir", str(out / "cache"), "--batch-size", "4", "--num-workers", "0",
            "--bootstrap-samples", "20", "--no-progress", "--device", "cpu", *extra]


def torchrun(args: list[str], script: list[str] | None = None, n: int = 2,
             timeout: float = 240) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(n),
           *(script or ["-m", "negbench.eval"]), *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(HERE)}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)


def one_process(args: list[str]) -> int:
    """`negbench eval ARGS` in this process, one torch thread (as each torchrun rank)."""
    import torch

    from negbench.cli import main

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return main(["eval", *args])
    finally:
        torch.set_num_threads(threads)


def results(out: Path) -> dict[str, tuple[dict, "object"]]:
    """{task: (results JSON, predictions DataFrame)} of one results folder."""
    import pandas as pd

    found = {}
    for f in sorted((out / "res").glob("*/*.json")):
        doc = json.loads(f.read_text())
        name = doc["task"]["name"] if "protocol" not in doc else f"{doc['protocol']}:{doc['task']['name']}"
        found[name] = (doc, pd.read_parquet(f.with_suffix(".parquet")))
    return found


def assert_same_numbers(a: dict, b: dict, scores_atol: float = 0.0) -> None:
    """Same tasks, metrics (every digit), counts, breakdowns and per-item predictions; the
    per-item similarity scores bit for bit (scores_atol 0) or within scores_atol."""
    import numpy as np
    import pandas as pd

    assert sorted(a) == sorted(b) and a
    for task in a:
        (ja, da), (jb, db) = a[task], b[task]
        for key in ("metrics", "counts", "breakdowns", "chance", "status", "skipped_rows"):
            assert ja.get(key) == jb.get(key), (task, key)
        exact = [c for c in da.columns if c != "scores" or not scores_atol]
        pd.testing.assert_frame_equal(da[exact], db[exact], check_exact=True)
        if scores_atol and "scores" in da:
            np.testing.assert_allclose(np.stack(da["scores"]), np.stack(db["scores"]), rtol=0, atol=scores_atol)


# ---------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def tiny_hf_model(tiny_hf_dir) -> str:
    """A tiny random transformers CLIP saved to a folder: loadable by the torchrun ranks too."""
    return f"hf:{tiny_hf_dir}"


@pytest.fixture(scope="module")
def tasks_yaml(tmp_path_factory) -> Path:
    return write_tasks(tmp_path_factory.mktemp("dist_tasks"))


@pytest.fixture(scope="module")
def reference(tasks_yaml, tiny_hf_model, tmp_path_factory) -> dict:
    """One process, cold cache: the numbers every split must give."""
    out = tmp_path_factory.mktemp("one")
    assert one_process(eval_args(tasks_yaml, tiny_hf_model, out)) == 0
    return results(out)


# ---------------------------------------------------------------- torchrun

def test_two_ranks_give_the_numbers_of_one_process(tasks_yaml, tiny_hf_model, reference, tmp_path):
    res = torchrun(eval_args(tasks_yaml, tiny_hf_model, tmp_path))
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    two = results(tmp_path)
    assert_same_numbers(reference, two)
    assert set(two) == {"sample_mcq", "sample_binary", "sample_retrieval", "sample_video_mcq", "one_mcq"}
    for task, (doc, _) in two.items():
        split = doc["distributed"]
        assert split["world_size"] == 2
        by_rank = split["computed_by_rank"]
        assert sum(by_rank["media"]) == doc["cache"]["media_misses"]   # images shared by tasks: cached once
        assert sum(by_rank["captions"]) == doc["cache"]["text_misses"]
    # fewer inputs than ranks: one image, one batch of captions; rank 1 encoded nothing
    assert two["one_mcq"][0]["distributed"]["computed_by_rank"] == {"media": [1, 0], "captions": [4, 0]}
    assert two["sample_mcq"][0]["distributed"]["computed_by_rank"]["media"] == [4, 2]  # batches of 4
    assert reference["sample_mcq"][0]["distributed"] == {"world_size": 1,
                                                         "computed_by_rank": {"media": [6], "captions": [
                                                             reference["sample_mcq"][0]["counts"]["unique_captions"]]}}
    # rank 0 alone prints: each task's result once
    assert res.stdout.count("sample_retrieval  (retrieval") == 1
    assert "rank 1" not in res.stderr


def test_two_ranks_vlm_choice_gathers_answers_in_question_order(tasks_yaml, tmp_path_factory, tmp_path):
    from _vlm_fixtures import build_tiny_vlm

    # random weights: free-text answers that depend on every logit, so any batch change would show
    vlm = build_tiny_vlm(tmp_path_factory.mktemp('vlm'), seed=3)
    model = f"vlm:hf:{vlm}#choice,vlm:hf:{vlm}#likelihood"   # both protocols, one after the other
    args = ["--tasks", "sample_mcq,sample_binary", "--batch-size", "2", "--max-new-tokens", "4"]
    one, two = tmp_path / "one", tmp_path / "two"
    assert one_process(eval_args(tasks_yaml, model, one, *args)) == 0
    res = torchrun(eval_args(tasks_yaml, model, two, *args))
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    a, b = results(one), results(two)
    assert_same_numbers(a, b)
    assert len(b) == 4   # 2 tasks x 2 protocols
    for task, (doc, df) in b.items():
        assert doc["distributed"]["world_size"] == 2
        by_rank = doc["distributed"]["computed_by_rank"]
        assert sum(by_rank["questions"]) == doc["counts"]["items"] == len(df)
        assert min(by_rank["questions"]) > 0   # both ranks asked (choice: generate batches; likelihood: media)
        if doc["protocol"] == "choice":
            assert df["raw_answer"].notna().all()
        assert list(df["row"]) == sorted(df["row"])


def test_killed_rank_stops_all_with_one_line_and_the_rerun_resumes(tasks_yaml, tiny_hf_model, reference,
                                                                    tmp_path):
    args = eval_args(tasks_yaml, tiny_hf_model, tmp_path, "--tasks", "sample_mcq")
    res = torchrun(args, script=[str(Path(__file__)), "--die-before-text-put"])
    assert res.returncode != 0
    ours = [line for line in res.stderr.splitlines() if line.startswith("negbench eval")]
    assert len(ours) == 1 and "rank 1 stopped" in ours[0] and "run the same command again" in ours[0], res.stderr
    assert "negbench" not in res.stderr.split("Traceback")[0].replace(ours[0], "")
    assert not (tmp_path / "res").exists() or not list((tmp_path / "res").glob("*/*.json"))
    # the rerun (one process here) finds what both ranks cached: every image, rank 0's captions
    assert one_process(args) == 0
    again = results(tmp_path)
    cache = again["sample_mcq"][0]["cache"]
    assert cache["media_misses"] == 0 and cache["text_hits"] > 0 and cache["text_misses"] > 0
    assert_same_numbers({"sample_mcq": reference["sample_mcq"]}, again)


def test_a_rank_stopped_by_torchrun_says_why_in_one_line(tasks_yaml, tiny_hf_model, tmp_path):
    """torchrun SIGTERMs rank 0 while it computes (before any gather): still one line, no traceback."""
    args = eval_args(tasks_yaml, tiny_hf_model, tmp_path, "--tasks", "sample_mcq")
    res = torchrun(args, script=[str(Path(__file__)), "--die-while-rank0-computes"], timeout=120)
    assert res.returncode != 0
    ours = [line for line in res.stderr.splitlines() if line.startswith("negbench eval")]
    assert len(ours) == 1 and "rank 1 stopped" in ours[0] and "run the same command again" in ours[0], res.stderr
    assert "Traceback" not in res.stderr.split(ours[0])[0].split("\n")[-1]
    assert not (tmp_path / "res").exists() or not list((tmp_path / "res").glob("*/*.json"))


def test_a_process_group_started_by_others_splits_nothing(tasks_yaml, tiny_hf_model, reference, tmp_path):
    """The trainer's DDP ranks: rank 0 evaluates alone while the others wait at a barrier; the
    evaluation must not wait for them at a gather (only start_ranks opts in to splitting)."""
    res = torchrun([str(tasks_yaml), tiny_hf_model, str(tmp_path)],
                   script=[str(Path(__file__)), "--rank0-alone-in-a-foreign-group"], timeout=120)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    alone = results(tmp_path)
    assert alone["sample_mcq"][0]["distributed"]["world_size"] == 1
    assert_same_numbers({"sample_mcq": reference["sample_mcq"]}, alone)


# ---------------------------------------------------------------- --shard i/n

def test_shards_then_a_scoring_run_that_loads_no_weights(tasks_yaml, tiny_hf_model, reference, tmp_path,
                                                         monkeypatch, capsys):
    from negbench.evaluation.lazy_model import LazyModel

    def no_weights(self):
        raise AssertionError(f"the scoring run loaded {self.model_string}")

    for name, only in (("all", []), ("mcq", ["--tasks", "sample_mcq"])):
        out = tmp_path / name
        for shard in ("0/2", "1/2"):
            assert one_process(eval_args(tasks_yaml, tiny_hf_model, out, "--shard", shard, *only)) == 0
            printed = capsys.readouterr().out
            assert f"sample_mcq  shard {shard}: cached media" in printed and "no result written" in printed
            assert not (out / "res").exists()
        with monkeypatch.context() as m:
            m.setattr(LazyModel, "load", no_weights)
            assert one_process(eval_args(tasks_yaml, tiny_hf_model, out, *only)) == 0
        scored = results(out)
        for doc, _ in scored.values():
            assert doc["cache"]["media_misses"] == doc["cache"]["text_misses"] == 0
        if only:  # each input in the batch one process puts it in: bit for bit
            assert_same_numbers({"sample_mcq": reference["sample_mcq"]}, scored)
        else:
            # captions that two tasks share (the image and video MCQs) are encoded by whichever
            # shard reaches them first, in that task's batch: their scores agree within the
            # tolerance of tests/test_text_length.py (padding to a batch's longest caption),
            # the predictions and metrics exactly
            assert_same_numbers(reference, scored, scores_atol=1e-5)


def test_vlm_shards_cache_answers_the_final_run_asks_nothing(tasks_yaml, tmp_path_factory, tmp_path, capsys):
    from _vlm_fixtures import build_tiny_vlm

    model = f"vlm:hf:{build_tiny_vlm(tmp_path_factory.mktemp('vlm_shard'), seed=3)}"
    args = ["--tasks", "sample_mcq", "--batch-size", "2", "--max-new-tokens", "4"]
    assert one_process(eval_args(tasks_yaml, model, tmp_path / "one", *args)) == 0
    capsys.readouterr()
    for shard, n in (("0/2", 6), ("1/2", 4)):   # 10 questions: 5 generate batches of 2, strided
        assert one_process(eval_args(tasks_yaml, model, tmp_path / "split", *args, "--shard", shard)) == 0
        assert f"shard {shard}: cached questions {n}" in capsys.readouterr().out
    assert one_process(eval_args(tasks_yaml, model, tmp_path / "split", *args)) == 0
    scored = results(tmp_path / "split")
    assert scored["choice:sample_mcq"][0]["cache"] == {"answer_hits": 10, "answer_misses": 0}
    assert_same_numbers(results(tmp_path / "one"), scored)


def test_shard_flag_is_checked():
    from negbench.cli import main

    from negbench.evaluation.config import EvalConfig
    from negbench.core.errors import ConfigError

    with pytest.raises(SystemExit):
        main(["eval", "--model", "x", "--shard", "2/2"])
    with pytest.raises(ConfigError, match="needs the cache"):
        EvalConfig(shard=(0, 2))


def test_dealing_is_balanced_and_deterministic():
    from negbench.evaluation.distributed import Ranks, deal, encoder_calls, question_calls

    assert deal([5, 1, 1, 1, 1, 1], 2) == [[0], [1, 2, 3, 4, 5]]
    assert deal([1], 3) == [[0], [], []]
    # a call never joins a partial batch to the next one (the encoder would refill it)
    assert encoder_calls([[0, 1], [2], [3, 4]], 2) == [[0, 1, 2], [3, 4]]
    # questions: generate batches of 2 from calls of 4, strided over the ranks
    assert question_calls(Ranks(1, 2, True), list(range(10)), 10, 2, 4) == [[2, 3], [6, 7]]
    assert question_calls(Ranks(0, 2, True), list(range(10)), 10, 2, 4) == [[0, 1], [4, 5], [8, 9]]
    # a shard's part is cut from all questions, whatever is cached already
    assert question_calls(Ranks(1, 2, False), [3, 6, 7], 10, 2, 4) == [[3], [6, 7]]


# ---------------------------------------------------------------- run by torchrun (kill test)

def _die_before_text_put() -> None:
    """Rank 1 kills itself (SIGKILL) instead of caching its captions: rank 0 has cached its own
    captions by then (it waits at the gather), so a rerun finds part of the work done."""
    import time

    from negbench.evaluation.cache import EmbeddingCache

    put = EmbeddingCache.put

    def put_or_die(self, keys, emb):
        if self.namespace_parts[0] == "text":
            time.sleep(2.0)   # rank 0 reaches the gather meanwhile
            os.kill(os.getpid(), signal.SIGKILL)
        return put(self, keys, emb)

    EmbeddingCache.put = put_or_die


def _die_while_rank0_computes() -> None:
    """Both ranks joined and computing: rank 1 kills itself at its first cache write, rank 0 is
    slow in its own (it never reaches a gather), so torchrun's SIGTERM is what stops it."""
    import time

    from negbench.evaluation.cache import EmbeddingCache

    put = EmbeddingCache.put

    def slow_put(self, keys, emb):
        if os.environ.get("RANK") == "1":
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(60)
        return put(self, keys, emb)

    EmbeddingCache.put = slow_put


def _rank0_alone(tasks_yaml: str, model: str, out: str) -> None:
    """A process group started by someone else, rank 0 evaluating alone through the Python API
    while the others wait at a barrier: what the trainer's run_eval does."""
    import torch
    import torch.distributed as dist

    from negbench.evaluation.config import EvalConfig
    from negbench.evaluation.engine import evaluate_task
    from negbench.inputs.tasks import load_task_file

    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    if dist.get_rank() == 0:
        spec = next(s for s in load_task_file(tasks_yaml) if s.name == "sample_mcq")
        cfg = EvalConfig(results_dir=Path(out) / "res", cache_dir=Path(out) / "cache", batch_size=4, num_workers=0,
                         bootstrap_samples=20, progress=False, device="cpu", precision="fp32")
        evaluate_task(spec, model, cfg)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    argv = sys.argv[1:]
    if argv[:1] == ["--rank0-alone-in-a-foreign-group"]:
        _rank0_alone(*argv[1:])
        sys.exit(0)
    if argv[:1] == ["--die-while-rank0-computes"]:
        argv = argv[1:]
        _die_while_rank0_computes()
    if argv[:1] == ["--die-before-text-put"]:
        argv = argv[1:]
        if os.environ.get("RANK") == "1":
            _die_before_text_put()
    from negbench.eval import main as eval_main

    eval_main(argv)
