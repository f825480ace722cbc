"""`negbench build hardneg-syn`: a tiny random diffusers pipeline (built from configs, saved to a
temp folder, never downloaded) generates HardNeg-Syn pairs end to end; verification refuses and
regenerates; --from-release writes the files the task specs read; a killed run resumes to the
same bytes; bad input is one line."""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("diffusers")

from negbench.cli import main
from negbench.construct.concepts import VERIFIERS, Verifier
from negbench.construct.hardneg_pairs import recover_objects, release_image_path
from negbench.construct.hardneg_syn import HardNegSynConfig, ImageChecker, build_hardneg_syn, image_seed, \
    regenerated_images
from negbench.inputs.formats import read_task_file
from negbench.inputs.records import AnnotatedSample

PREFIX = "/mnt/hhc_data/NegBench/images/synthetic"
PAIRS = [("dog", "cat"), ("armadillo", "cactus"), ("car", "tree"), ("boat", "bird")]
ROOT = Path(__file__).resolve().parent.parent

# The verifier the tests register: rejects the negative image's first try of every pair (it
# "sees" the removed object), accepts from the second try on; pairs whose id starts with
# "never" fail every try. The try is in the sample id "<pair>/<role>/<try>" (hardneg_syn).
FAKE_VERIFIER = '''
from negbench.construct.concepts import Verifier

class RejectFirstTry(Verifier):
    name = "hns-reject-first"
    calls = []

    def verify(self, sample, candidates, media_root=None):
        pair, role, attempt = sample.sample_id.split("/")
        RejectFirstTry.calls.append((pair, role, int(attempt), sample.media))
        if pair.startswith("never"):
            return [True, True]                   # nothing seen: both images fail
        if role == "negative":
            return [False, attempt != "0"]        # first try: the removed object is still there
        return [False, False]
'''
namespace: dict = {}
exec(compile(FAKE_VERIFIER, "fake_verifier", "exec"), namespace)
RejectFirstTry = namespace["RejectFirstTry"]
VERIFIERS.register("hns-reject-first", RejectFirstTry, overwrite=True)


@pytest.fixture(scope="module")
def tiny_pipe(tmp_path_factory) -> Path:
    from negbench.construct.t2i_random import save_random_pipeline
    return save_random_pipeline(tmp_path_factory.mktemp("t2i") / "tiny", "tiny")


@pytest.fixture(scope="module")
def tiny_gen(tiny_pipe):
    """The tiny pipeline loaded once for the tests that call the Python API (the CLI tests load it)."""
    from negbench.construct.t2i import DiffusersGenerator, GenerationSettings
    return DiffusersGenerator(f"diffusers:{tiny_pipe}", device="cpu", settings=GenerationSettings(steps=2))


def write_pairs(path: Path, pairs, ids=None) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["pair_id", "kept", "removed"] if ids else ["kept", "removed"])
        for i, (k, r) in enumerate(pairs):
            w.writerow([ids[i], k, r] if ids else [k, r])
    return path


def config(pipe: Path, out: Path, **kw) -> HardNegSynConfig:
    base = dict(generator=f"diffusers:{pipe}", out=str(out), steps=2, batch_size=4, device="cpu",
                verifier="hns-reject-first")
    base.update(kw)
    return HardNegSynConfig(**base)


def files_bytes(out: Path) -> dict[str, bytes]:
    """Every output file's bytes, but the main manifest's timing (a wall-clock figure)."""
    got = {}
    for p in sorted(out.rglob("*")):
        if p.is_file():
            data = p.read_bytes()
            if p.name == "manifest.json":
                m = json.loads(data)
                m.pop("timing")
                data = json.dumps(m, sort_keys=True).encode()
            got[p.relative_to(out).as_posix()] = data
    return got


# ---------------------------------------------------------------- pairs, end to end

def test_pairs_generate_verify_regenerate_and_drop(tiny_pipe, tiny_gen, tmp_path):
    pairs = write_pairs(tmp_path / "pairs.csv", PAIRS + [("cup", "fork")], ids=["p1", "p2", "p3", "p4", "never1"])
    RejectFirstTry.calls.clear()
    res = build_hardneg_syn(config(tiny_pipe, tmp_path / "out", pairs=str(pairs), max_tries=2, seed=7),
                            generator=tiny_gen)
    out = tmp_path / "out"
    assert res.counts["pairs_verified"] == 4 and res.counts["pairs_dropped"] == 1
    assert res.counts["pairs_regenerated"] == 5            # every pair needed a second try
    # 4 ok pairs: positive once, negative twice; 'never1': both images twice
    assert res.counts["images_generated"] == 4 * 3 + 4
    assert res.drops == {"positive_and_negative_never_verified": 1}

    # the verifier saw each pair's negative at try 0 and 1, as separate files with new seeds
    negatives = [(p, a) for p, role, a, _ in RejectFirstTry.calls if role == "negative" and p == "p1"]
    assert negatives == [("p1", 0), ("p1", 1)]
    manifest = json.loads(res.manifest.read_text())
    by = {(i["pair_id"], i["role"]): i for i in manifest["images"]}
    assert by[("p1", "negative")]["try"] == 1 and by[("p1", "positive")]["try"] == 0
    assert by[("p1", "negative")]["seed"] == image_seed(7, "p1", "negative", 1) != image_seed(7, "p1", "negative", 0)
    assert by[("p2", "positive")]["verdicts"] == {"armadillo": False, "cactus": False}
    assert ("never1", "positive") not in by
    assert not (out / "images/synthetic/positive/never1_img.png").exists()   # dropped: no image left

    # the published layout: the authors' columns, paths relative to out, correct option first
    mcq = read_task_file(out / "images/synthetic_mcq.csv", "mcq", data_root=out)
    assert [it.media for it in mcq.items[:2]] == ["images/synthetic/positive/p1_img.png",
                                                  "images/synthetic/negative/p1_img.png"]
    assert mcq.items[3].captions[0] == "This image features an armadillo, but not a cactus"
    assert [it.template for it in mcq.items[:2]] == ["positive", "hybrid"]
    assert {it.correct_answer for it in mcq.items} == {0}
    ret = read_task_file(out / "images/synthetic_retrieval_v1.csv", "retrieval", data_root=out)
    assert len(ret.items) == 8 and ret.items[1].captions == ("This image features a dog, but not a cat.",)
    from PIL import Image
    with Image.open(out / mcq.items[0].media) as im:
        assert im.size == (32, 32)

    side = json.loads((out / "images/synthetic_mcq.csv.manifest.json").read_text())
    assert side["regenerated_images"] == {"generator": f"diffusers:{tiny_pipe}", "seeds": "per-image in manifest"}
    assert side["generator"]["pipeline_class"] == "StableDiffusionPipeline"
    assert side["guidance"]["num_inference_steps"] == 2 and side["guidance"]["height"] == 32
    assert side["prompts"]["negative"] == {"prompt": "a photo of {a_kept}", "negative_prompt": "{removed}"}
    assert side["verifier"]["name"] == "hns-reject-first" and side["verifier"]["verified"] is True
    assert side["counts"]["pairs_dropped"] == 1 and side["rows"] == 8
    # the hook results and reports read: present on these files, absent on any other
    assert regenerated_images(out / "images/synthetic_mcq.csv") == side["regenerated_images"]
    assert regenerated_images(pairs) is None


def test_clip_verifier_code_path_with_a_tiny_model(tiny_pipe, tiny_gen, tiny_hf_dir, tmp_path):
    """The real ClipScoreVerifier decides: verdicts are its scores against its threshold."""
    pairs = write_pairs(tmp_path / "pairs.csv", PAIRS[:2])
    out = tmp_path / "out"
    build_hardneg_syn(config(tiny_pipe, out, pairs=str(pairs), verifier=None), generator=tiny_gen)
    from negbench.construct.hardneg_pairs import read_pairs
    pair_list = read_pairs(pairs)
    todo = [(p, role, 0) for p in pair_list for role in ("positive", "negative")]
    probe = ImageChecker("clip", {"model": f"hf:{tiny_hf_dir}", "threshold": 0.0})
    scores = [probe.verifier.scores(AnnotatedSample("x", str(out / p.paths[("positive", "negative").index(role)]),
                                                    ()), [p.kept, p.removed]) for p, role, _ in todo]
    flat = sorted(s for pair in scores for s in pair)
    threshold = (flat[len(flat) // 2 - 1] + flat[len(flat) // 2]) / 2     # half the objects "absent"
    checker = ImageChecker("clip", {"model": f"hf:{tiny_hf_dir}", "threshold": threshold})
    assert str(threshold) in checker.identity
    for (p, role, _), v, (s_kept, s_removed) in zip(todo, checker.check(todo, out), scores):
        assert v["verdicts"] == {p.kept: s_kept < threshold, p.removed: s_removed < threshold}
        want_removed_absent = role == "negative"
        assert v["ok"] == (s_kept >= threshold and (s_removed < threshold) == want_removed_absent)


def test_cli_with_clip_verifier_drops_and_counts_pairs_that_never_verify(tiny_pipe, tiny_hf_dir, tmp_path, capsys):
    """threshold -1: every cosine is >= -1, so nothing is ever verified absent: every negative
    fails max_tries times, every pair is dropped and counted, and the command exits 1."""
    pairs = write_pairs(tmp_path / "pairs.csv", PAIRS[:2])
    out = tmp_path / "out"
    rc = main(["build", "hardneg-syn", "--generator", f"diffusers:{tiny_pipe}", "--pairs", str(pairs),
               "--out", str(out), "--steps", "2", "--device", "cpu", "--max-tries", "2", "--verifier", "clip",
               "--verifier-model", f"hf:{tiny_hf_dir}", "--verifier-threshold", "-1"])
    assert rc == 1
    text = capsys.readouterr().out
    assert "pairs: 0 verified, 2 dropped after --max-tries" in text and "negative_never_verified=2" in text
    side = json.loads((out / "images/synthetic_mcq.csv.manifest.json").read_text())
    assert side["verifier"]["identity"].startswith("clip:hf:") and side["verifier"]["options"]["threshold"] == -1
    assert side["counts"]["images_generated"] == 2 * (1 + 2)
    assert read_task_file(out / "images/synthetic_mcq.csv", "mcq", data_root=out).items == []


# ---------------------------------------------------------------- --from-release

def write_release_csvs(folder: Path) -> Path:
    """Small HardNeg-Syn CSVs in the published layout: absolute foreign paths, correct option
    first, the templated MCQ, a paraphrased MCQ and the retrieval file."""
    base = folder / "NegBench/images"
    base.mkdir(parents=True)
    ids = ["228675", "228676", "228677"]
    objs = {"228675": ("armadillo", "cactus"), "228676": ("dog", "kite"), "228677": ("owl", "lamp")}
    header = ["image_path", "correct_answer", "caption_0", "caption_1", "caption_2", "caption_3",
              "correct_answer_template"]
    templ, para, ret = [], [], []
    for pid in ids:
        a, b = objs[pid]
        pos, neg = f"{PREFIX}/positive/{pid}_img.png", f"{PREFIX}/negative/{pid}_img.png"
        both, without = f"This image features a {a} and a {b}", f"This image features a {a}, but not a {b}"
        rest = [f"This image features a {b}, but not a {a}", f"This image features neither a {a} nor a {b}"]
        if pid != "228677":           # 228677: only paraphrases, whose negative no regex reads
            templ += [[pos, 0, both, without, *rest, "positive"], [neg, 0, without, both, *rest, "hybrid"]]
            ret += [[pos, json.dumps([both + "."])], [neg, str([without + "."])]]
        para += [[pos, 0, f"This image features an {a} alongside a {b}.", "x", "y", "z", "positive"],
                 [neg, 0, f"A lone {a}; no trace of any {b}", "x", "y", "z", "hybrid"]]
    for name, hdr, rows in (("synthetic_mcq.csv", header, templ),
                            ("synthetic_mcq_llama3.1_rephrased.csv", header, para),
                            ("synthetic_retrieval_v1.csv", ["filepath", "captions"], ret)):
        with open(base / name, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(hdr)
            w.writerows(rows)
    return base


def test_recover_objects_and_release_paths():
    assert recover_objects("This image features an armadillo alongside a cactus.", "both") == ("armadillo", "cactus")
    assert recover_objects("This image features a red car, but no tree", "without") == ("red car", "tree")
    assert recover_objects("A lone owl", "without") is None
    assert release_image_path(f"{PREFIX}/negative/228675_img.png") == \
        ("negative", "228675", "images/synthetic/negative/228675_img.png")
    assert release_image_path("/x/y/elsewhere/1.png") is None


def test_from_release_imported_into_a_data_root_becomes_runnable(tiny_pipe, tmp_path, capsys, tiny_openclip_arch):
    """The published CSVs are imported with `negbench data import`; the build reads them from
    the data root, writes the images where their rows point and the CSVs (rows of pairs whose
    objects cannot be told removed) back under the names the task specs read."""
    release = write_release_csvs(tmp_path / "release")
    root = tmp_path / "data"
    assert main(["data", "import", str(release.parent.parent), "--data-root", str(root)]) == 0
    originals = {p.name: p.read_text() for p in (root / "images").glob("synthetic*.csv")}
    args = ["build", "hardneg-syn", "--generator", f"diffusers:{tiny_pipe}", "--out", str(root), "--steps", "2",
            "--device", "cpu", "--no-verify", "--batch-size", "4"]
    for name in sorted(originals):
        args += ["--from-release", str(root / "images" / name)]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "pairs: 2 kept (not verified: --no-verify)" in text and "removed_object_not_recovered=1" in text

    tasks = "hardneg_syn_mcq,hardneg_syn_mcq_templated,hardneg_syn_retrieval_templated"
    assert main(["data", "check", "--data-root", str(root), "--task", tasks]) == 0
    assert "3/3 tasks ready" in capsys.readouterr().out
    for name, kind in (("synthetic_mcq.csv", "mcq"), ("synthetic_mcq_llama3.1_rephrased.csv", "mcq"),
                       ("synthetic_retrieval_v1.csv", "retrieval")):
        path = root / "images" / name
        with open(path, newline="") as f:
            assert next(csv.reader(f)) == next(csv.reader(originals[name].splitlines()))   # columns as published
        data = read_task_file(path, kind, data_root=root)                                 # media checked
        assert {it.media.split("/")[-1] for it in data.items} == {"228675_img.png", "228676_img.png"}
        assert data.items[0].media == "images/synthetic/positive/228675_img.png"
        side = json.loads((path.parent / f"{name}.manifest.json").read_text())
        assert side["regenerated_images"]["generator"] == f"diffusers:{tiny_pipe}"
        assert side["verifier"]["verified"] is False and side["drops"] == {"removed_object_not_recovered": 1}
    # the paraphrased file's objects came from the templated one (same pair ids); the prompt used them
    manifest = json.loads((root / "hardneg_syn/manifest.json").read_text())
    assert {i["pair_id"] for i in manifest["images"]} == {"228675", "228676"}

    # evaluated, the result records the regeneration and the table labels it
    from negbench.evaluation.engine import evaluate_task
    from negbench.inputs.tasks import get_task

    res = evaluate_task(get_task("hardneg_syn_mcq_templated"), "openclip:negbench-tiny-test@random", data_root=root,
                        results_dir=tmp_path / "res", bootstrap_samples=10, progress=False, num_workers=0)
    assert res["regenerated_images"]["generator"] == f"diffusers:{tiny_pipe}"
    assert main(["table", str(tmp_path / "res")]) == 0
    # the wide view keeps the bare task name in its header and says the mark in its flags column
    assert "hardneg_syn_mcq_templated: regenerated images, not the authors'" in capsys.readouterr().out

    # resuming reads the saved originals (the inputs were overwritten by the outputs): nothing to redo
    before = files_bytes(root / "images")
    assert main(args) == 0
    assert files_bytes(root / "images") == before


def test_from_release_with_a_pairs_file_supplies_unreadable_objects(tiny_pipe, tiny_gen, tmp_path):
    release = write_release_csvs(tmp_path / "release")
    pairs = write_pairs(tmp_path / "pairs.csv", [("owl", "lamp")], ids=["228677"])
    res = build_hardneg_syn(config(tiny_pipe, tmp_path / "out", pairs=str(pairs), verifier=None,
                                   from_release=(str(release / "synthetic_mcq_llama3.1_rephrased.csv"),)),
                            generator=tiny_gen)
    # 228675 reads "alongside" (both) but its negative's paraphrase does not tell which was removed
    assert res.counts["pairs_kept"] == 1 and res.counts["pairs_verified"] == 0   # verifier=None: kept, unchecked
    assert res.drops == {"removed_object_not_recovered": 2}
    data = read_task_file(tmp_path / "out/images/synthetic_mcq_llama3.1_rephrased.csv", "mcq",
                          data_root=tmp_path / "out")
    assert [it.media for it in data.items] == ["images/synthetic/positive/228677_img.png",
                                               "images/synthetic/negative/228677_img.png"]


# ---------------------------------------------------------------- interrupt, resume, shards

RUNNER = FAKE_VERIFIER + """
import sys
import torch
from negbench.construct.concepts import VERIFIERS
from negbench.construct.hardneg_syn import HardNegSynConfig, build_hardneg_syn
torch.set_num_threads(1)
VERIFIERS.register("hns-reject-first", RejectFirstTry)
pipe, pairs, out = sys.argv[1:4]
build_hardneg_syn(HardNegSynConfig(generator="diffusers:" + pipe, out=out, pairs=pairs, steps=2, batch_size=2,
                                   device="cpu", verifier="hns-reject-first"))
"""


def build_one_thread(pipe, gen, pairs, out, shard=None):
    """In this process, on one thread as the subprocess runs (so the float kernels, and the
    bytes, are the same)."""
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return build_hardneg_syn(config(pipe, out, pairs=str(pairs), batch_size=2, shard=shard), generator=gen)
    finally:
        torch.set_num_threads(threads)


def test_killed_run_resumes_to_the_same_bytes_and_shards_join(tiny_pipe, tiny_gen, tmp_path):
    script = tmp_path / "runner.py"
    script.write_text(RUNNER)
    objs = ["dog", "cat", "car", "tree", "boat", "bird", "cup", "fork", "kite", "lamp"]
    pairs = write_pairs(tmp_path / "pairs.csv", [(objs[i], objs[(i + 3) % 10]) for i in range(10)])
    ref = tmp_path / "ref"
    build_one_thread(tiny_pipe, tiny_gen, pairs, ref)

    out = tmp_path / "out"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT / "src"), HF_HUB_OFFLINE="1")
    proc = subprocess.Popen([sys.executable, str(script), str(tiny_pipe), str(pairs), str(out)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    progress = out / "hardneg_syn/progress.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if progress.is_file() and progress.read_bytes().count(b"\n") >= 3:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.005)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL, f"the run ended before it was killed: {err.decode()[-1500:]}"
    done_at_kill = progress.read_bytes().count(b"\n")
    assert 3 <= done_at_kill < 10 and not (out / "images/synthetic_mcq.csv").exists()
    res = build_one_thread(tiny_pipe, tiny_gen, pairs, out)
    assert res.counts["pairs_verified"] == 10
    assert files_bytes(out) == files_bytes(ref)

    # shards: the one that finds every pair done writes the task files, the same as one run's
    sharded = tmp_path / "sharded"
    build_one_thread(tiny_pipe, tiny_gen, pairs, sharded, shard=(1, 2))
    assert not (sharded / "images/synthetic_mcq.csv").exists()
    build_one_thread(tiny_pipe, tiny_gen, pairs, sharded, shard=(0, 2))
    assert files_bytes(sharded / "images") == files_bytes(ref / "images")


# ---------------------------------------------------------------- bad input: one line

@pytest.mark.parametrize("generator, words", [
    ("sd:stabilityai/sd-turbo", "expected diffusers:ID_OR_DIR"),
    ("diffusers:", "expected diffusers:ID_OR_DIR"),
    ("diffusers:{tmp}/missing-folder", "cannot load a diffusers pipeline"),
    ("diffusers:{tmp}", "not a diffusers pipeline folder (no model_index.json)"),
])
def test_bad_generator_is_one_line(generator, words, tmp_path, capsys):
    pairs = write_pairs(tmp_path / "pairs.csv", PAIRS[:1])
    rc = main(["build", "hardneg-syn", "--generator", generator.format(tmp=tmp_path), "--pairs", str(pairs),
               "--out", str(tmp_path / "out"), "--no-verify"])
    err = capsys.readouterr().err
    assert rc == 2 and words in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_bad_pairs_and_settings_are_one_line(tiny_pipe, tmp_path, capsys):
    bad = tmp_path / "pairs.csv"
    bad.write_text("kept,removed\ndog,dog\n")
    base = ["build", "hardneg-syn", "--generator", f"diffusers:{tiny_pipe}", "--out", str(tmp_path / "o"),
            "--steps", "2", "--device", "cpu", "--no-verify"]
    assert main(base + ["--pairs", str(bad)]) == 2
    assert "pairs.csv, row 1, column 'removed': same object as kept ('dog')" in capsys.readouterr().err
    good = write_pairs(tmp_path / "good.csv", PAIRS[:1])
    assert main(base + ["--pairs", str(good), "--precision", "fp16"]) == 2
    assert "--precision fp16 needs a GPU" in capsys.readouterr().err
    assert main(base + ["--pairs", str(good), "--verifier", "annotations"]) == 2
    assert "cannot look at generated images" in capsys.readouterr().err
    assert main(base + ["--pairs", str(good)]) == 0
    assert "pairs: 1 kept (not verified: --no-verify), 0 dropped" in capsys.readouterr().out  # never 'verified'
    manifest = json.loads((tmp_path / "o/hardneg_syn/manifest.json").read_text())
    assert manifest["verifier"]["verified"] is False
    assert (manifest["counts"]["pairs_kept"], manifest["counts"]["pairs_verified"]) == (1, 0)
    assert main(base + ["--pairs", str(good), "--seed", "3"]) == 2      # same --out, other settings
    err = capsys.readouterr().err
    assert "holds a HardNeg-Syn build made with other settings (seed differ" in err
    assert len(err.strip().splitlines()) == 1
