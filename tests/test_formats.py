"""Task files: every bad input names file, row and column; --skip-invalid skips and counts."""
from __future__ import annotations

import csv
import json
import re

import pytest

from conftest import make_image, make_video
from negbench.core.errors import TaskFileError
from negbench.inputs.formats import MCQItem, RetrievalItem, read_task_file, write_task_file

MCQ_HEADER = ["image_path", "correct_answer", "caption_0", "caption_1", "caption_2", "caption_3",
              "correct_answer_template"]


def good_mcq_row(media="images/img0.png"):
    return {"image_path": media, "correct_answer": "1", "caption_0": "This image features dog.",
            "caption_1": "This image does not feature cat.", "caption_2": "This image features cat, but not dog.",
            "caption_3": "This image does not feature dog.", "correct_answer_template": "negative"}


def write_csv(path, header, rows):
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=header, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    return path


@pytest.fixture
def root(tmp_path):
    make_image(tmp_path / "images" / "img0.png", 0)
    make_image(tmp_path / "images" / "img1.png", 1)
    (tmp_path / "images" / "empty.png").write_bytes(b"")
    (tmp_path / "images" / "corrupt.png").write_bytes(b"\x89PNG garbage, not an image")
    return tmp_path


MCQ_CASES = [
    # (change to the 2nd data row, column named, message fragment)
    ({"caption_2": "  "}, "caption_2", "empty caption"),
    ({"correct_answer": "4"}, "correct_answer", "out of range"),
    ({"correct_answer": "-1"}, "correct_answer", "out of range"),
    ({"correct_answer": "two"}, "correct_answer", "not an integer"),
    ({"correct_answer_template": "affirmation"}, "correct_answer_template", "unknown template label"),
    ({"image_path": "images/missing.png"}, "image_path", "not found"),
    ({"image_path": "images/empty.png"}, "image_path", "empty"),
    ({"image_path": "images/corrupt.png"}, "image_path", "unreadable image"),
    ({"image_path": ""}, "image_path", "empty media path"),
]


@pytest.mark.parametrize("change,column,fragment", MCQ_CASES)
def test_mcq_bad_row_names_file_row_column(root, change, column, fragment):
    path = write_csv(root / "task.csv", MCQ_HEADER, [good_mcq_row(), {**good_mcq_row("images/img1.png"), **change}])
    with pytest.raises(TaskFileError) as info:
        read_task_file(path, "mcq", root)
    msg = str(info.value)
    assert str(path) in msg and "row 2" in msg and f"column '{column}'" in msg and fragment in msg
    assert (info.value.row, info.value.column) == (2, column)
    data = read_task_file(path, "mcq", root, skip_invalid=True)
    assert len(data.items) == 1 and len(data.skipped) == 1
    assert data.skipped[0]["row"] == 2 and data.skipped[0]["column"] == column


def test_missing_column_names_file_and_column(root):
    header = [h for h in MCQ_HEADER if h != "caption_3"]
    path = write_csv(root / "task.csv", header, [good_mcq_row()])
    for skip in (False, True):  # structural problems are never skipped
        with pytest.raises(TaskFileError, match=re.escape(str(path)) + r".*column 'caption_3'.*missing column"):
            read_task_file(path, "mcq", root, skip_invalid=skip)
    path = write_csv(root / "r.csv", ["path", "captions"], [{"path": "images/img0.png", "captions": "[]"}])
    with pytest.raises(TaskFileError, match="column 'image_path'.*missing column"):
        read_task_file(path, "retrieval", root)


def test_missing_file():
    with pytest.raises(TaskFileError, match="does not exist"):
        read_task_file("/nonexistent/task.csv", "mcq")


RETRIEVAL_CASES = [
    ("['a dog', 'no cat'", "unparsable caption list"),
    ("not a list at all (", "unparsable caption list"),
    ("[1, 2]", "list of strings"),
    ("[]", "empty caption list"),
    ('["a dog", " "]', "empty caption in list"),
]


@pytest.mark.parametrize("cell,fragment", RETRIEVAL_CASES)
def test_retrieval_bad_captions(root, cell, fragment):
    path = write_csv(root / "r.csv", ["filepath", "captions"],
                     [{"filepath": "images/img0.png", "captions": '["a dog"]'},
                      {"filepath": "images/img1.png", "captions": cell}])
    with pytest.raises(TaskFileError) as info:
        read_task_file(path, "retrieval", root)
    msg = str(info.value)
    assert str(path) in msg and "row 2" in msg and "column 'captions'" in msg and fragment in msg
    data = read_task_file(path, "retrieval", root, skip_invalid=True)
    assert [it.row for it in data.items] == [1] and data.skipped[0]["column"] == "captions"


def test_retrieval_accepts_json_python_literals_and_image_path(root):
    path = write_csv(root / "r.csv", ["image_path", "captions"],
                     [{"image_path": "images/img0.png", "captions": json.dumps(["a dog", "no cat"])},
                      {"image_path": "images/img1.png", "captions": "['it\\'s a cat', \"no dog\"]"}])
    data = read_task_file(path, "retrieval", root)
    assert data.items[1].captions == ("it's a cat", "no dog")
    assert data.items[0].captions == ("a dog", "no cat")


def test_python_literal_is_never_evaluated(root):
    path = write_csv(root / "r.csv", ["filepath", "captions"],
                     [{"filepath": "images/img0.png", "captions": "__import__('os').system('echo pwned')"}])
    with pytest.raises(TaskFileError, match="unparsable"):
        read_task_file(path, "retrieval", root)


def test_binary_mcq_range(root):
    header = ["image_path", "caption_0", "caption_1", "correct_answer"]
    path = write_csv(root / "b.csv", header, [{"image_path": "images/img0.png", "caption_0": "shows x",
                                               "caption_1": "does not show x", "correct_answer": "2"}])
    with pytest.raises(TaskFileError, match=r"row 1, column 'correct_answer'.*allowed 0\.\.1"):
        read_task_file(path, "binary-mcq", root)


def test_bad_caption_types(root):
    header = MCQ_HEADER + ["caption_types"]
    row = {**good_mcq_row(), "caption_types": '["positive", "negative"]'}
    path = write_csv(root / "t.csv", header, [row])
    with pytest.raises(TaskFileError, match="row 1, column 'caption_types'"):
        read_task_file(path, "mcq", root)


def test_roundtrip_with_manifest(root):
    items = [MCQItem(1, "images/img0.png", ("a", "b", "c", "d"), 2, "hybrid", ("positive", "negative", "hybrid", "positive"))]
    path = write_task_file(root / "out.csv", "mcq", items, {"seed": 0})
    assert read_task_file(path, "mcq", root).items == items
    assert json.loads((root / "out.csv.manifest.json").read_text())["seed"] == 0
    ritems = [RetrievalItem(1, "images/img1.png", ("a, b", 'c "d"'))]
    assert read_task_file(write_task_file(root / "r.csv", "retrieval", ritems), "retrieval", root).items == ritems


def test_engine_skip_invalid_counts_in_results(root, tiny_openclip_model):
    from negbench.evaluation.engine import evaluate_task
    from negbench.inputs.tasks import TaskSpec

    rows = [good_mcq_row(), {**good_mcq_row("images/img1.png"), "correct_answer": "9"},
            {**good_mcq_row("images/missing.png")}]
    write_csv(root / "task.csv", MCQ_HEADER, rows)
    spec = TaskSpec(name="bad_rows", kind="mcq", file=str(root / "task.csv"))
    with pytest.raises(TaskFileError, match="row 2, column 'correct_answer'"):
        evaluate_task(spec, tiny_openclip_model, data_root=root, progress=False)
    res = evaluate_task(spec, tiny_openclip_model, data_root=root, skip_invalid=True, progress=False,
                        bootstrap_samples=5)
    assert res["counts"]["items"] == 1 and res["counts"]["skipped"] == 2
    assert [r["row"] for r in res["skipped_rows"]] == [2, 3]


def test_engine_undecodable_video_names_row(root, tiny_openclip_model):
    from negbench.evaluation.engine import evaluate_task
    from negbench.inputs.tasks import TaskSpec

    make_video(root / "videos" / "ok.mp4", 0)
    (root / "videos" / "bad.mp4").write_bytes(b"definitely not an mp4 file")
    rows = [good_mcq_row("videos/ok.mp4"), good_mcq_row("videos/bad.mp4")]
    write_csv(root / "v.csv", MCQ_HEADER, rows)
    spec = TaskSpec(name="vid", kind="mcq", modality="video", file=str(root / "v.csv"))
    with pytest.raises(TaskFileError, match=r"v\.csv, row 2, column 'image_path'.*bad\.mp4"):
        evaluate_task(spec, tiny_openclip_model, data_root=root, progress=False)
    res = evaluate_task(spec, tiny_openclip_model, data_root=root, progress=False, skip_invalid=True,
                        bootstrap_samples=5)
    assert res["counts"]["items"] == 1 and res["skipped_rows"][0]["row"] == 2
