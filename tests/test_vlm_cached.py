"""A generative VLM run whose answers are all cached loads no weights and no processor.

`vlm:hf:DIR` has an identity computed from the model string and the folder's content
(negbench.models.base.model_identity -> models/vlm/hf.py:identity), equal to the loaded adapter's;
evaluation/generative.py asks the answer cache first and loads the model (a LazyModel) only for
a question the cache does not hold. Proven here on tiny random checkpoints: a rerun, and the
scoring run after `--shard 0/2` + `--shard 1/2`, run with transformers' from_pretrained made to
raise, and give the metrics and per-item Parquet of a run that loaded the model; a changed
weights file changes the identity, so nothing stale is reused.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from _vlm_fixtures import build_tiny_arch, build_tiny_vlm
from negbench.cli import main
from negbench.models.base import load_model, model_identity

HERE = Path(__file__).resolve().parent
TASKS = "sample_mcq,sample_binary"
# what must not change between a run that computed and one that read everything from the cache
SAME = ("metrics", "counts", "breakdowns", "chance", "status", "skipped_rows", "model_identity", "protocol")


# ---------------------------------------------------------------- helpers

def models_of(vlm: Path) -> str:
    """Both protocols, one after the other (the CLI's comma-separated --model)."""
    return f"vlm:hf:{vlm}#choice,vlm:hf:{vlm}#likelihood"


def run_eval(tasks_yaml: Path, models: str, out: Path, *extra: str) -> int:
    return main(["eval", "--model", models, "--tasks-file", str(tasks_yaml), "--tasks", TASKS,
                 "--results-dir", str(out / "res"), "--cache-dir", str(out / "cache"), "--device", "cpu",
                 "--batch-size", "2", "--max-new-tokens", "4", "--bootstrap-samples", "20", "--quiet", *extra])


def results(out: Path) -> dict[str, tuple[dict, pd.DataFrame]]:
    """{protocol:task: (results JSON, per-item predictions)} of one results folder."""
    found = {}
    for f in sorted((out / "res").glob("*/*.json")):
        doc = json.loads(f.read_text())
        found[f"{doc['protocol']}:{doc['task']['name']}"] = (doc, pd.read_parquet(f.with_suffix(".parquet")))
    return found


def assert_same_results(a: dict, b: dict) -> None:
    """Same results to the last digit: the metrics and the rest of SAME, every per-item column."""
    assert sorted(a) == sorted(b) and len(a) == 4   # 2 tasks x 2 protocols
    for name in a:
        (ja, da), (jb, db) = a[name], b[name]
        for key in SAME:
            assert ja.get(key) == jb.get(key), (name, key)
        pd.testing.assert_frame_equal(da, db, check_exact=True)


class RefusedToLoad(AssertionError):
    pass


def refuse_loading(monkeypatch) -> None:
    """transformers refuses to build any model or processor from a checkpoint: the honest proof
    that a run loads nothing (the identity still reads the real files, whose content it hashes)."""
    import transformers
    from transformers import AutoModelForImageTextToText, AutoProcessor, PreTrainedModel, ProcessorMixin

    def refuse(cls, source, *args, **kwargs):
        raise RefusedToLoad(f"{cls.__name__}.from_pretrained({source}) in a run that must load nothing")

    for owner in (PreTrainedModel, ProcessorMixin, AutoModelForImageTextToText, AutoProcessor,
                  transformers.AutoImageProcessor, transformers.AutoTokenizer):
        monkeypatch.setattr(owner, "from_pretrained", classmethod(refuse))


@pytest.fixture
def no_loading(monkeypatch):
    refuse_loading(monkeypatch)


def answer_cache_entries(out: Path) -> set[Path]:
    return {p.relative_to(out) for p in (out / "cache" / "vlm").rglob("*.json")}


# ---------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def tasks_yaml(tmp_path_factory) -> Path:
    from conftest import write_sample_tasks

    return write_sample_tasks(tmp_path_factory.mktemp("cached_tasks"), n_images=6, n_questions=10, n_videos=3)


@pytest.fixture(scope="module")
def vlm(tmp_path_factory) -> Path:
    """Random weights: free-text answers and log-probabilities that depend on every logit."""
    return build_tiny_vlm(tmp_path_factory.mktemp("cached_vlm"), seed=3)


@pytest.fixture(scope="module")
def cold(tasks_yaml, vlm, tmp_path_factory) -> Path:
    """One process, cold cache: it loads the model and computes every answer (the reference)."""
    out = tmp_path_factory.mktemp("cold")
    assert run_eval(tasks_yaml, models_of(vlm), out) == 0
    for doc, _ in results(out).values():
        assert doc["cache"]["answer_hits"] == 0 and doc["cache"]["answer_misses"] > 0
    return out


# ---------------------------------------------------------------- (a) the identity without loading

@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("arch", ["llava", "qwen2-vl", "idefics3", "paligemma"])
def test_identity_without_loading_is_the_loaded_adapters(arch, precision, tmp_path_factory):
    try:
        folder = build_tiny_arch(arch, tmp_path_factory.mktemp(arch))
    except (ImportError, AttributeError) as exc:  # an architecture this transformers does not have
        pytest.skip(f"{arch}: not in the installed transformers ({exc})")
    weight_free = model_identity(f"vlm:hf:{folder}", precision=precision)
    adapter = load_model(f"vlm:hf:{folder}", device="cpu", precision=precision)
    assert weight_free is not None and weight_free == adapter.identity()
    assert precision in weight_free
    # the protocol qualifier names how the model is scored, not which model it is
    for qualifier in ("#choice", "#likelihood", "#choice+shuffle3"):
        assert model_identity(f"vlm:hf:{folder}{qualifier}", precision=precision) == weight_free


def test_identity_of_an_endpoint_and_of_strings_only_the_loader_can_judge(tmp_path):
    for spec in ("tiny@http://127.0.0.1:9/v1", "org/m@x@https://example.com/v1/chat/completions/"):
        assert model_identity(f"vlm:openai:{spec}#likelihood") == load_model(f"vlm:openai:{spec}").identity()
    # no identity: the LazyModel loads, and the loader raises its one-line error
    for bad in ("vlm:openai:nourl", f"vlm:hf:{tmp_path / 'missing'}", "vlm:nosuchbackend:x"):
        assert model_identity(bad) is None


def test_hub_id_offline_identity_is_the_cached_commit_the_loader_loads(tmp_path):
    """A hub id: offline, the commit the local hub cache resolves 'main' to (what from_pretrained
    loads, its config's _commit_hash); online there is no identity before loading (a newer commit
    may be fetched). Run in a subprocess: transformers reads HF_HUB_CACHE when imported."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--org--tiny-vlm"
    build_tiny_vlm(repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    code = ("from negbench.models.base import model_identity, load_model\n"
            "print(model_identity('vlm:hf:org/tiny-vlm'))\n"
            "print(load_model('vlm:hf:org/tiny-vlm', device='cpu').identity())\n")
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(HERE)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    weight_free, loaded = done.stdout.split()[-2:]
    assert weight_free == loaded and weight_free.endswith(f"hub:org/tiny-vlm@{commit}")
    online = {**env, "HF_HUB_OFFLINE": "0"}
    done = subprocess.run([sys.executable, "-c", code.splitlines()[0] + "\n" + code.splitlines()[1]],
                          capture_output=True, text=True, env=online, timeout=240)
    assert done.returncode == 0 and done.stdout.split()[-1] == "None", done.stderr[-2000:]


# ---------------------------------------------------------------- (b) a rerun with a warm cache

def test_the_proof_of_no_loading_refuses_a_run_that_must_compute(tasks_yaml, vlm, tmp_path, no_loading, capsys):
    """The control: under `no_loading`, a cold run fails (so a warm run passing it loaded nothing)."""
    assert run_eval(tasks_yaml, f"vlm:hf:{vlm}#choice", tmp_path) != 0
    assert "in a run that must load nothing" in capsys.readouterr().err
    assert not results(tmp_path)   # no task's result written


def test_warm_rerun_loads_nothing_and_gives_the_same_results(tasks_yaml, vlm, cold, tmp_path, no_loading):
    shutil.copytree(cold, tmp_path, dirs_exist_ok=True)
    reference, entries = results(cold), answer_cache_entries(cold)
    assert run_eval(tasks_yaml, models_of(vlm), tmp_path) == 0
    again = results(tmp_path)
    assert_same_results(reference, again)
    for name, (doc, _) in again.items():
        assert doc["cache"] == {"answer_hits": reference[name][0]["cache"]["answer_misses"], "answer_misses": 0}
        # how the likelihood was computed is known to the run that computed it, not to this one
        assert "likelihood_mode" not in doc["protocol_details"]
        assert {k: v for k, v in reference[name][0]["protocol_details"].items() if k != "likelihood_mode"} \
            == doc["protocol_details"]
    assert answer_cache_entries(tmp_path) == entries   # nothing recomputed, nothing added


def test_partly_cached_run_asks_only_what_is_missing(tasks_yaml, vlm, cold, tmp_path):
    """Half the answer cache gone: the model is loaded, computes exactly the missing entries, and
    the results are those of the cold run."""
    shutil.copytree(cold, tmp_path, dirs_exist_ok=True)
    entries = sorted(answer_cache_entries(tmp_path))
    gone = entries[::2]
    for rel in gone:
        (tmp_path / rel).unlink()
    assert run_eval(tasks_yaml, models_of(vlm), tmp_path) == 0
    again = results(tmp_path)
    assert_same_results(results(cold), again)
    assert sum(doc["cache"]["answer_misses"] for doc, _ in again.values()) == len(gone)
    assert sorted(answer_cache_entries(tmp_path)) == entries


# ---------------------------------------------------------------- (c) shards, then the scoring run

def test_shards_then_a_scoring_run_that_loads_nothing_equal_one_process(tasks_yaml, vlm, cold, tmp_path,
                                                                        monkeypatch, capsys):
    for shard in ("0/2", "1/2"):
        assert run_eval(tasks_yaml, models_of(vlm), tmp_path, "--shard", shard) == 0
        assert "no result written" in capsys.readouterr().out
    assert not results(tmp_path)
    with monkeypatch.context() as m:
        refuse_loading(m)
        assert run_eval(tasks_yaml, models_of(vlm), tmp_path) == 0
    scored = results(tmp_path)
    for doc, _ in scored.values():
        assert doc["cache"]["answer_misses"] == 0 and doc["cache"]["answer_hits"] > 0
    assert_same_results(results(cold), scored)


# ---------------------------------------------------------------- (d) changed weights, no stale hits

def test_changed_weights_change_the_identity_and_nothing_stale_is_reused(tasks_yaml, tmp_path_factory, tmp_path):
    folder = build_tiny_vlm(tmp_path_factory.mktemp("changing"), seed=3)
    other = build_tiny_vlm(tmp_path_factory.mktemp("other"), seed=4)
    model = f"vlm:hf:{folder}#likelihood"
    before = model_identity(model)
    assert run_eval(tasks_yaml, model, tmp_path) == 0
    first = results(tmp_path)

    weights = folder / "model.safetensors"
    assert weights.stat().st_size == (other / "model.safetensors").stat().st_size  # same size, other bytes
    shutil.copyfile(other / "model.safetensors", weights)
    after = model_identity(model)
    assert after != before and after == load_model(model, device="cpu").identity()

    assert run_eval(tasks_yaml, model, tmp_path) == 0
    second = results(tmp_path)
    for name, (doc, df) in second.items():
        assert doc["model_identity"] == after and doc["cache"]["answer_hits"] == 0
        assert not np.array_equal(np.stack(df["logprob_sum"]), np.stack(first[name][1]["logprob_sum"]))
