"""The published release, end to end: import (zip, any nesting) -> data check -> eval --suite,
no manual edit, the rewrite recorded; audit of suspicious rows; per-template binary accuracy."""
from __future__ import annotations

import csv
import json

import pytest

from negbench.cli import main
from negbench.inputs.audit import audit_items, commentary_reason, duplicate_reasons
from negbench.inputs.formats import MCQItem

from published_fixtures import COMMENTARY, FINDINGS, manifest_files, present_tasks, write_media, write_release, \
    zip_release


@pytest.fixture(scope="module")
def imported_root(tmp_path_factory):
    """A data root with the media in the natural layout and the release imported from its zip."""
    tmp = tmp_path_factory.mktemp("published")
    root = write_media(tmp / "data", "natural")
    zipped = zip_release(write_release(tmp / "release"), tmp / "negbench-release.zip")
    assert main(["data", "import", str(zipped), "--data-root", str(root)]) == 0
    return root


def test_import_places_every_file_under_its_task_name_with_sha256(imported_root):
    manifest = manifest_files(imported_root)
    placed = {f["task"]: f for f in manifest["files"]}
    assert set(placed) == set(present_tasks()) - {"msrvtt_negated_retrieval"}
    for task in ("chexpert_atelectasis_negation_binary_mcq", "chexpert_cardiomegaly_affirmation_binary_mcq"):
        assert placed[task]["from"].startswith("negbench-release-main/NegBench/images/")
        assert len(placed[task]["sha256"]) == 64 and (imported_root / placed[task]["file"]).is_file()
    assert manifest["unmatched"] == []


def test_data_check_marks_every_present_task_ready(imported_root, capsys):
    assert main(["data", "check", "--data-root", str(imported_root), "--suite", "negbench,negbench-baselines"]) == 0
    out = capsys.readouterr().out
    lines = {ln.split()[0]: ln for ln in out.splitlines() if ln.strip() and not ln.startswith(" ")}
    for task in present_tasks():
        assert " ready: " in lines[task], lines[task]
    assert "/mnt/hhc_data/NegBench/images -> " in lines["coco_mcq"] and "(auto)" in lines["coco_mcq"]
    assert "1 suspicious rows" in lines["coco_mcq"]
    assert "CSV missing" in lines["hardneg_syn_mcq"]
    assert f"{len(present_tasks())}/28 tasks ready; {28 - len(present_tasks())} missing:" in out
    assert "the authors' NegBench CSV release" in out and "negbench data import" in out


def test_data_check_with_nothing_ready_exits_nonzero_and_says_where_to_get_it(tmp_path, capsys):
    assert main(["data", "check", "--data-root", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "0/26 tasks ready" in out and "negbench data import" in out


def test_media_missing_points_to_the_download(tmp_path, capsys):
    write_release(tmp_path / "rel")
    assert main(["data", "import", str(tmp_path / "rel"), "--data-root", str(tmp_path / "d")]) == 0
    assert main(["data", "check", "--data-root", str(tmp_path / "d"), "--task", "coco_mcq,voc2007_mcq"]) == 1
    out = capsys.readouterr().out
    assert "coco_mcq" in out and "media not found" in out
    assert "negbench data download --what coco" in out and "negbench data download --what voc" in out


def test_eval_suite_runs_every_present_task_with_the_rewrite_recorded(imported_root, tmp_path, tiny_openclip_arch):
    results = tmp_path / "results"
    model = f"openclip:{tiny_openclip_arch}@random"
    assert main(["eval", "--suite", "negbench", "--data-root", str(imported_root), "--model", model,
                 "--results-dir", str(results), "--bootstrap-samples", "10", "--quiet", "--no-cache"]) == 0
    files = {p.stem: json.loads(p.read_text()) for p in results.rglob("*.json") if not p.name.startswith("results_")}
    suite = set(present_tasks()) - {"coco_retrieval", "msrvtt_retrieval"}
    assert set(files) == suite
    for name, res in files.items():
        assert res["path_rewrite"]["source"] == "auto", name
        assert res["path_rewrite"]["from"].startswith(("/mnt/hhc_data/NegBench", "/data/healthy-ml/")), name
        if res["task"]["kind"] != "retrieval":
            assert isinstance(res["counts"]["ties"], int) and "accuracy_tie_aware" in res["metrics"]
        assert "suspicious" in res["counts"]
    assert files["coco_mcq"]["counts"]["suspicious"] == 1
    with open(next(results.rglob("coco_mcq.suspicious.csv")), newline="") as f:
        side = list(csv.DictReader(f))
    assert [(r["row"], r["column"], r["excluded"]) for r in side] == [("2", "caption_1", "False")]
    assert "(this caption was fine" in side[0]["text"]
    for f in FINDINGS:  # per-template accuracy for binary files that carry the template
        neg = files[f"chexpert_{f.lower()}_negation_binary_mcq"]
        assert {"accuracy_positive", "accuracy_negative"} <= set(neg["metrics"])
        assert neg["metrics"]["accuracy_negative"]["n"] == 1
    # negated_object on the authors' paraphrased layout (no trailing period): this fixture's correct
    # option always affirms ("This image shows a A and a B"), so no row names a negated object
    import pandas as pd

    items = pd.read_parquet(next(results.rglob("coco_mcq.parquet")))
    assert len(items) and items["negated_object"].isna().all()
    # the negated retrieval file names its absent object itself (negative_objects: ['boat']): ours agrees
    retrieval = pd.read_parquet(next(results.rglob("coco_negated_retrieval.parquet")))
    assert len(retrieval) and (retrieval["negated_object"] == "boat").all()


def test_exclude_suspicious_is_its_own_variant(imported_root, tmp_path, tiny_openclip_arch):
    results = tmp_path / "results"
    assert main(["eval", "--task", "coco_mcq", "--data-root", str(imported_root), "--exclude-suspicious",
                 "--model", f"openclip:{tiny_openclip_arch}@random", "--results-dir", str(results),
                 "--bootstrap-samples", "5", "--quiet", "--no-cache"]) == 0
    res = json.loads(next(results.rglob("coco_mcq@clean.json")).read_text())
    assert res["task"]["name"] == "coco_mcq@clean" and res["task"]["exclude_suspicious"] is True
    assert res["counts"]["items"] == 3 and res["counts"]["excluded_suspicious"] == 1
    assert not list(results.rglob("coco_mcq.json"))


def test_openclip_without_tag_fails_at_the_cli_with_the_tags(imported_root, tmp_path, capsys):
    assert main(["eval", "--task", "coco_mcq", "--data-root", str(imported_root), "--out", str(tmp_path),
                 "--model", "openclip:ViT-B-32"]) == 2
    err = capsys.readouterr().err
    assert "Pretrained tags for ViT-B-32" in err and "laion2b" in err and "Traceback" not in err


@pytest.mark.parametrize("text,reason", [
    (COMMENTARY, "parentheses"),
    ("Note: the dog was removed. This image shows a cat", "Note:"),
    ("Here is the rephrased caption: a cat", "preamble"),
    ('This image shows a cat." It is sunny', "after the quoted"),
    ("This image shows a cat. This caption was rephrased for clarity", "about the caption"),
])
def test_commentary_is_flagged(text, reason):
    assert reason in commentary_reason(text)


@pytest.mark.parametrize("text", ["A cat (left) next to a dog", 'A sign that reads "STOP" by a car',
                                  "A man rides a bike. There is no dog in the image."])
def test_ordinary_captions_are_not_flagged(text):
    assert commentary_reason(text) is None


def test_duplicate_and_correct_equals_wrong():
    assert duplicate_reasons(["A dog", "a dog.", "A cat", "A bird"], 0) == [
        (1, "correct option caption_0 identical to wrong option caption_1")]
    assert duplicate_reasons(["A dog", "A cat", "A cat", "A bird"], 0) == [(2, "duplicate options caption_1 and caption_2")]
    item = MCQItem(7, "x.jpg", ("A dog", "A cat", "a cat", "A bird"), 0, "positive")
    assert [r["row"] for r in audit_items([item])] == [7]


@pytest.mark.parametrize("layout", ["natural", "authors"])
def test_the_release_folder_as_released_is_ready_without_import(tmp_path, capsys, layout):
    root = write_release(tmp_path / "rel") / "NegBench"      # images/*.csv, videos/*.csv as released
    write_media(root, layout)
    assert main(["data", "check", "--data-root", str(root), "--suite", "negbench,negbench-baselines"]) == 0
    out = capsys.readouterr().out
    assert f"{len(present_tasks())}/28 tasks ready" in out
    assert main(["tasks", "--suite", "negbench-medical", "--data-root", str(root)]) == 0
    listing = capsys.readouterr().out
    assert "chexpert_atelectasis_negation_binary_mcq" in listing and " ready" in listing
