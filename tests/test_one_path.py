"""The one evaluation path: every model family x task kind through evaluate_task, one store and one
reuse rule for all of them, and no failed or non-finite run ever recorded as a score."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from _vlm_fixtures import build_tiny_vlm
from conftest import make_image, write_sample_tasks
from negbench.cli import main
from negbench.evaluation.engine import evaluate_task
from negbench.evaluation.run import NonFiniteScores, NotApplicable
from negbench.evaluation.store import result_paths
from negbench.inputs.selection import SelectionItem, write_selection_file
from negbench.inputs.tasks import load_task_file

QUICK = dict(bootstrap_samples=10, progress=False, num_workers=0)
# what each family can be asked: a dual encoder every kind; a generative VLM the question kinds
APPLICABLE = {"dual": {"sample_mcq", "sample_binary", "sample_retrieval", "sample_video_mcq", "sample_selection"},
              "vlm": {"sample_mcq", "sample_binary", "sample_video_mcq"}}
APPLICABLE["negaware"] = APPLICABLE["dual"]   # a wrapper that scores media against captions itself
TASKS = sorted(APPLICABLE["dual"])


def write_world(root: Path) -> Path:
    """The sample tasks (small) plus a t2i-selection file, all in one tasks.yaml."""
    selection = {"name": "sample_selection", "kind": "t2i-selection", "file": "sample_selection.csv",
                 "group": "Sample"}
    tasks_yaml = write_sample_tasks(root, n_images=6, n_questions=8, n_videos=2, extra_tasks=[selection])
    items = [SelectionItem(i + 1, f"A picture number {i}.", (f"images/img{i}.png", f"images/img{(i + 1) % 6}.png"),
                           i % 2) for i in range(6)]
    write_selection_file(root / "sample_selection.csv", items)
    return tasks_yaml


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    return write_world(tmp_path_factory.mktemp("one_path_world"))


@pytest.fixture(scope="module")
def vlm_dirs(tmp_path_factory) -> dict[str, Path]:
    return {"b": build_tiny_vlm(tmp_path_factory.mktemp("vlm_b"), answer_letter="B"),
            "c": build_tiny_vlm(tmp_path_factory.mktemp("vlm_c"), answer_letter="C")}


@pytest.fixture(scope="module")
def second_openclip(tiny_openclip_arch, tmp_path_factory) -> str:
    """Another tiny open_clip checkpoint of the same architecture (other random weights)."""
    import open_clip
    import torch

    torch.manual_seed(7)
    model = open_clip.create_model(tiny_openclip_arch, pretrained=None)
    path = tmp_path_factory.mktemp("openclip_other") / "other.pt"
    torch.save({"state_dict": model.state_dict()}, path)
    return f"openclip:{tiny_openclip_arch}@{path}"


def _model(family: str, tiny_openclip_model: str, vlm_dirs) -> str:
    return {"dual": tiny_openclip_model, "vlm": f"vlm:hf:{vlm_dirs['b']}",
            "negaware": f"negaware:decompose:{tiny_openclip_model}"}[family]


def _specs(tasks_yaml: Path) -> dict:
    return {s.name: s for s in load_task_file(tasks_yaml)}


@pytest.mark.parametrize("family", ["dual", "vlm", "negaware"])
@pytest.mark.parametrize("task", TASKS)
def test_every_family_and_kind_goes_through_the_one_path(world, family, task, tiny_openclip_model, vlm_dirs,
                                                        tmp_path):
    spec, model = _specs(world)[task], _model(family, tiny_openclip_model, vlm_dirs)
    if task not in APPLICABLE[family]:
        with pytest.raises(NotApplicable):
            evaluate_task(spec, model, results_dir=tmp_path / "res", **QUICK)
        assert not (tmp_path / "res").exists()   # nothing a table could read as a score
        return
    res = evaluate_task(spec, model, results_dir=tmp_path / "res", cache_dir=tmp_path / "cache", **QUICK)
    stored = json.loads(Path(res["results_file"]).read_text())
    assert stored["status"] == "complete" and stored["limited"] is False
    assert stored["fingerprint"]["model"] == stored["model"] and stored["metrics"] == res["metrics"]
    headline = spec.task_kind.headline
    assert 0.0 <= stored["metrics"][headline]["value"] <= 1.0
    assert (family == "vlm") == ("protocol" in stored)
    if family == "vlm":   # the tiny model answers B to everything: known accuracy
        import pandas as pd

        df = pd.read_parquet(Path(res["results_file"]).with_suffix(".parquet"))
        assert set(df["parsed_letter"]) == {"B"} and (df["predicted"] == 1).all()
        assert stored["metrics"]["accuracy"]["value"] == pytest.approx((df["correct_answer"] == 1).mean())
        res_l = evaluate_task(spec, model, protocol="likelihood", **QUICK)
        assert res_l["protocol_details"]["likelihood_mode"] in ("cached-prefix", "full-forward")
        sent = json.loads(df["messages"].iloc[0])   # the chat sent, images as their paths
        assert sent[0]["content"][-1]["text"] == df["prompt"].iloc[0]
        assert sent[0]["content"][0]["image"].startswith(df["media_path"].iloc[0])


def _edit_task_file(root: Path, task: str) -> None:
    path = root / f"{task}.csv"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("picture", "photo", 1) if "picture" in text else text.replace("This", "That", 1),
                    encoding="utf-8")


def _changes(family: str, task: str, model: str, other_model: str) -> list:
    """(what changes, how: a function (root) -> (model, extra settings)) in order, cumulative."""
    setting = {"shuffle_options": True, "shuffle_seed": 3} if family == "vlm" else {"seed": 5}
    return [
        ("task file", lambda root: (_edit_task_file(root, task), model, {})[1:]),
        ("media file", lambda root: (make_image(root / "images" / "img1.png", 99), model, {})[1:]),
        ("model", lambda root: (other_model, {})),
        ("protocol setting" if family == "vlm" else "seed", lambda root: (other_model, setting)),
        ("limit", lambda root: (other_model, {**setting, "limit": 3})),
    ]


@pytest.mark.parametrize("family, task", [("dual", t) for t in TASKS if t != "sample_video_mcq"]
                         + [("vlm", "sample_mcq"), ("vlm", "sample_binary"), ("negaware", "sample_mcq")])
def test_skip_existing_has_one_rule_for_every_family_and_kind(world, family, task, tiny_openclip_model,
                                                             second_openclip, vlm_dirs, tmp_path):
    root = tmp_path / "world"
    shutil.copytree(world.parent, root)
    model = _model(family, tiny_openclip_model, vlm_dirs)
    other = {"dual": second_openclip, "vlm": f"vlm:hf:{vlm_dirs['c']}",
             "negaware": f"negaware:decompose,lambda=0.25:{tiny_openclip_model}"}[family]
    settings = dict(QUICK, results_dir=tmp_path / "res", cache_dir=tmp_path / "cache", skip_existing=True)

    def run(model_string, extra):
        spec = _specs(root / "tasks.yaml")[task]
        return evaluate_task(spec, model_string, **{**settings, **extra})

    assert not run(model, {}).get("reused")
    assert run(model, {}).get("reused")                       # nothing changed: reused
    for what, change in _changes(family, task, model, other):
        model_now, extra = change(root)
        assert not run(model_now, extra).get("reused"), f"{what} changed but the stored result was reused"
        again = run(model_now, extra)
        assert again.get("reused"), f"after the {what} change the new result was not reused"
    assert again["limited"] is True and again["counts"]["items"] == 3


def _nan_checkpoint(tiny_openclip_checkpoint: Path, out: Path) -> Path:
    import torch

    ckpt = torch.load(tiny_openclip_checkpoint, weights_only=True)
    ckpt["state_dict"] = {k: torch.full_like(v, float("nan")) if v.is_floating_point() else v
                          for k, v in ckpt["state_dict"].items()}
    torch.save(ckpt, out)
    return out


def test_a_nan_checkpoint_is_an_error_naming_it_never_a_score(world, tiny_openclip_arch, tiny_openclip_checkpoint,
                                                             tmp_path, capsys):
    bad = _nan_checkpoint(tiny_openclip_checkpoint, tmp_path / "nan.pt")
    model = f"openclip:{tiny_openclip_arch}@{bad}"
    code = main(["eval", "--model", model, "--tasks-file", str(world), "--task", "sample_mcq", "--out",
                 str(tmp_path / "res"), "--cache-dir", str(tmp_path / "cache"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert f"model {model} on task sample_mcq" in err and "not finite" in err and "row 1" in err
    assert not (tmp_path / "res").exists() or not any((tmp_path / "res").rglob("*.json"))
    with pytest.raises(NonFiniteScores):   # and again from the cache: NaN embeddings are never cached
        evaluate_task(_specs(world)["sample_retrieval"], model, cache_dir=tmp_path / "cache", **QUICK)


def test_a_suite_runs_what_it_can_and_lists_the_rest(world, tiny_openclip_model, tmp_path, capsys):
    root = tmp_path / "world"
    shutil.copytree(world.parent, root)
    (root / "videos" / "video0.mp4").write_bytes(b"not a video")   # one task cannot run
    args = ["eval", "--model", tiny_openclip_model, "--tasks-file", str(root / "tasks.yaml"), "--suite", "sample",
            "--out", str(tmp_path / "res"), "--no-cache", "--no-progress", "--bootstrap-samples", "10"]
    assert main(args) == 2
    captured = capsys.readouterr()
    assert "1 task not evaluated:" in captured.err and "sample_video_mcq:" in captured.err
    done = {p.stem for p in (tmp_path / "res").rglob("*.json") if not p.name.startswith("results_")}
    assert done == {"sample_mcq", "sample_retrieval", "sample_binary"}   # the others ran, before and after it
    assert main([*args, "--fail-fast", "--out", str(tmp_path / "res2")]) == 2
    assert not (tmp_path / "res2").exists() or {p.stem for p in (tmp_path / "res2").rglob("*.json") if not p.name.startswith("results_")} == {
        "sample_mcq", "sample_retrieval"}


def test_a_yaml_named_media_root_wins_over_data_root(world, tiny_openclip_model, tmp_path):
    """`negbench build` / `import-benchmark` write YAMLs whose data_root points at the media:
    --data-root (where registered YAMLs and suite CSVs are found) never replaces it."""
    media = tmp_path / "media"
    shutil.copytree(world.parent / "images", media / "images")
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    shutil.copy(world.parent / "sample_mcq.csv", tasks / "built_mcq.csv")
    (tasks / "tasks.yaml").write_text(yaml.safe_dump({"tasks": [
        {"name": "built_mcq", "kind": "mcq", "file": "built_mcq.csv", "data_root": "../media"}]}))
    for argv in (["--data-root", str(tasks)], ["--tasks-file", str(tasks / "tasks.yaml")],
                 ["--tasks-file", str(tasks / "tasks.yaml"), "--data-root", str(tmp_path)]):
        assert main(["eval", "--model", tiny_openclip_model, *argv, "--task", "built_mcq", "--out",
                     str(tmp_path / "res"), "--no-cache", "--no-progress", "--bootstrap-samples", "10"]) == 0


def test_two_yamls_defining_one_task_name_is_an_error_naming_both(world, tmp_path, capsys):
    for name in ("a", "b"):
        d = tmp_path / name
        d.mkdir()
        (d / "tasks.yaml").write_text(yaml.safe_dump({"tasks": [{"name": "dup_task", "kind": "mcq",
                                                                 "file": "x.csv"}]}))
    code = main(["eval", "--model", "builtin:x", "--tasks-file", str(tmp_path / "a" / "tasks.yaml"),
                 "--tasks-file", str(tmp_path / "b" / "tasks.yaml")])
    err = capsys.readouterr().err
    assert code == 2 and "dup_task" in err and str(tmp_path / "a") in err and str(tmp_path / "b") in err


def test_published_paths_are_found_in_any_folder_under_the_data_root(tmp_path):
    """The released MSR-VTT CSV names /mnt/hhc_data/NegBench/videos/TestVideo/videoN.mp4; a user who
    keeps the videos as msrvtt/TestVideo/ must not need --path-map."""
    from negbench.inputs.paths import build_resolver

    root = tmp_path / "negdata"
    for i in range(3):
        (root / "msrvtt" / "TestVideo").mkdir(parents=True, exist_ok=True)
        (root / "msrvtt" / "TestVideo" / f"video{i}.mp4").write_bytes(b"x")
    values = [(i + 1, f"/mnt/hhc_data/NegBench/videos/TestVideo/video{i}.mp4") for i in range(3)]
    resolver = build_resolver(root / "msrvtt_mcq.csv", "image_path", values, root)
    assert resolver.resolve(values[2][1]) == root / "msrvtt" / "TestVideo" / "video2.mp4"


def test_store_write_is_one_unit(tmp_path, monkeypatch):
    """A failure while writing removes what the write created: no Parquet without its JSON."""
    from negbench.evaluation import store

    paths = result_paths(tmp_path, "m:x", "t")

    def broken(path, doc):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(store, "write_json_atomic", broken)
    with pytest.raises(OSError):
        store.write_result(paths, {"a": 1}, {"row": [1, 2]}, {".side.csv": lambda p: p.write_text("x")})
    assert not paths.parquet.exists() and not paths.sidecar(".side.csv").exists()


def test_tasks_listing_finds_media_as_eval_does(world, tmp_path, capsys):
    """`negbench tasks --data-root DIR` registers the YAMLs eval registers and resolves their media
    the same way (a YAML-named root is not replaced by --data-root)."""
    media = tmp_path / "media"
    shutil.copytree(world.parent / "images", media / "images")
    sub = tmp_path / "data" / "mine"
    sub.mkdir(parents=True)
    shutil.copy(world.parent / "sample_mcq.csv", sub / "mine_mcq.csv")
    (sub / "mine.yaml").write_text(yaml.safe_dump({"tasks": [
        {"name": "mine_mcq", "kind": "mcq", "file": "mine_mcq.csv", "data_root": str(media)}]}))
    assert main(["tasks", "--data-root", str(tmp_path / "data")]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("mine_mcq"))
    assert line.rstrip().endswith("ready")
    assert main(["tasks", "--tasks-file", str(world), "--data-root", str(world.parent)]) == 0  # every kind
    lines = [x for x in capsys.readouterr().out.splitlines() if x.startswith("sample_")]
    assert len(lines) == 5 and all(x.rstrip().endswith("ready") for x in lines), lines


def test_negaware_without_negation_scores_as_its_base_model(world, tiny_openclip_model, tmp_path):
    """The training-free wrapper through the one path: plain retrieval captions (no negation cue)
    rank exactly as the base model ranks them."""
    import pandas as pd

    spec = _specs(world)["sample_retrieval"]
    base = evaluate_task(spec, tiny_openclip_model, results_dir=tmp_path / "a", **QUICK)
    wrapped = evaluate_task(spec, f"negaware:decompose:{tiny_openclip_model}", results_dir=tmp_path / "b", **QUICK)
    ranks = [pd.read_parquet(Path(r["results_file"]).with_suffix(".parquet")) for r in (base, wrapped)]
    plain = ~ranks[0]["caption"].str.contains(" no ")
    assert plain.sum() > 0
    assert list(ranks[0]["t2i_rank"][plain]) == list(ranks[1]["t2i_rank"][plain])


def test_precision_auto_records_its_choice_and_near_ties(world, tiny_openclip_model, tmp_path):
    from negbench.models.base import fast_precisions, pick_device

    spec = _specs(world)["sample_mcq"]
    res = evaluate_task(spec, tiny_openclip_model, precision="auto", results_dir=tmp_path / "r", **QUICK)
    fast, _ = fast_precisions(pick_device(None))
    assert res["precision"] == ("bf16" if "bf16" in fast else "fp32")
    assert res["precision_note"].startswith(f"auto: {res['precision']}")
    assert res["fingerprint"]["precision"] == res["precision"] and res["counts"]["near_ties"] >= res["counts"]["ties"]


def test_a_csv_build_source_path_that_leaves_the_root_is_dropped_and_counted(tmp_path):
    from negbench.inputs.sources import DropLog
    from negbench.inputs.sources.generic import iter_corpus

    (tmp_path / "corpus.csv").write_text("filepath,caption\n../../etc/passwd,a dog\nok.jpg,a cat\n")
    from negbench.inputs.sources import SourceError

    log = DropLog(skip_invalid=True)
    rows = list(iter_corpus(tmp_path / "corpus.csv", log=log))
    assert [r[1] for r in rows] == ["ok.jpg"] and log.drops["path_leaves_root"] == 1
    with pytest.raises(SourceError, match=r"corpus.csv.*row 1.*leaves the media root"):
        list(iter_corpus(tmp_path / "corpus.csv", skip_invalid=False, log=DropLog(skip_invalid=False)))


def test_negation_all_after_importing_two_benchmarks_into_the_data_root(tmp_path, tiny_openclip_model, capsys):
    """The README's flow: import-benchmark ... --image-root ... --out DIR/NAME, then
    eval --suite negation-all --data-root DIR: the imported YAMLs' media roots are kept."""
    from negbench.inputs.benchmarks import import_benchmark
    from test_benchmarks import make_sugarcrepe, make_valse

    data = tmp_path / "negdata"
    import_benchmark("valse", make_valse(tmp_path / "valse"), data / "valse", image_root=tmp_path / "valse" / "images",
                     skip_invalid=True)
    src, coco = make_sugarcrepe(tmp_path / "sc")
    import_benchmark("sugarcrepe", src, data / "sugarcrepe", image_root=coco)
    assert main(["tasks", "--data-root", str(data)]) == 0
    listed = [x for x in capsys.readouterr().out.splitlines() if x.startswith(("valse_", "sugarcrepe_"))]
    assert len(listed) == 4 and all(x.rstrip().endswith("ready") for x in listed)
    assert main(["eval", "--model", tiny_openclip_model, "--suite", "negation-all", "--data-root", str(data),
                 "--out", str(tmp_path / "res"), "--no-cache", "--no-progress", "--bootstrap-samples", "10"]) == 0
    done = {p.stem for p in (tmp_path / "res").rglob("*.json") if not p.name.startswith("results_")}
    assert done == {"valse_existence", "sugarcrepe_add_obj", "sugarcrepe_replace_obj", "sugarcrepe_swap_obj"}


def test_long_names_keep_their_informative_end():
    from negbench.cli.eval import _middle_cut
    from negbench.evaluation.store import model_slug

    model = "vlm:openai:Qwen/Qwen2-VL-2B-Instruct@http://127.0.0.1:8000/v1#choice"
    cut = _middle_cut(model, 40)
    assert len(cut) == 40 and cut.startswith("vlm:openai:") and cut.endswith("/v1#choice")
    slug = model_slug("vlm:openai:" + "Qwen/" * 30 + "Qwen2-VL-2B-Instruct@http://127.0.0.1:8000/v1")
    assert slug.startswith("vlm_openai_") and "Instruct@http_127.0.0.1_8000_v1" in slug and len(slug) <= 80
    assert model_slug("builtin:/a/b" + "x" * 90) != model_slug("builtin:/a/c" + "x" * 90)


def test_a_run_writes_one_run_level_results_file(world, tiny_openclip_model, tmp_path, capsys):
    args = ["eval", "--model", tiny_openclip_model, "--tasks-file", str(world), "--task", "sample_mcq,sample_retrieval",
            "--out", str(tmp_path / "res"), "--no-cache", "--no-progress", "--bootstrap-samples", "10", "--limit", "0.5"]
    assert main(args) == 0
    summary = json.loads(next((tmp_path / "res").glob("results_*.json")).read_text())
    assert summary["config"]["limit"] == 0.5 and summary["versions"]["torch"]
    rows = {r["task"]: r for r in summary["results"]}
    assert set(rows) == {"sample_mcq", "sample_retrieval"} and all(r["limited"] for r in rows.values())
    assert "accuracy" in rows["sample_mcq"]["headline"] and "t2i_recall@5" in rows["sample_retrieval"]["headline"]
    assert rows["sample_mcq"]["n"] == 4   # half of the 8 questions
    assert main(["table", str(tmp_path / "res")]) == 0   # the run file is not mistaken for a result


def test_progress_bars_redraw_rarely_when_output_is_a_log(tmp_path):
    """`make demo > log`: a bar redraw every 30 s instead of a fragment per batch."""
    import subprocess
    import sys

    code = ("from negbench.cli import configure_output; configure_output(False); "
            "from tqdm import tqdm; print(tqdm(range(1)).mininterval)")
    with open(tmp_path / "log", "w") as log:
        out = subprocess.run([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=log, text=True, check=True)
    assert out.stdout.strip() == "30.0"
