"""CSV decoding and header robustness: BOMs, encodings, duplicate headers, extra fields, huge
cells, non-finite answers and inconsistent caption_types all name file, row and column."""
from __future__ import annotations

import csv
import io
import json

import pytest

from conftest import make_image
from negbench.core.errors import TaskFileError
from negbench.inputs.formats import MAX_FIELD_CHARS, read_task_file

HEADER = ["image_path", "correct_answer", "caption_0", "caption_1", "caption_2", "caption_3",
          "correct_answer_template"]


def row(media="img0.png", answer="1", **extra):
    rec = {"image_path": media, "correct_answer": answer, "caption_0": "This image features dog.",
           "caption_1": "This image does not feature cat.", "caption_2": "This image features cat, but not dog.",
           "caption_3": "This image does not feature dog.", "correct_answer_template": "negative"}
    rec.update(extra)
    return rec


def csv_text(header, rows) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    for r in rows:
        w.writerow([r.get(h, "") for h in header] if isinstance(r, dict) else r)
    return buf.getvalue()


@pytest.fixture
def root(tmp_path):
    make_image(tmp_path / "img0.png", 0)
    make_image(tmp_path / "img1.png", 1)
    return tmp_path


def test_utf8_bom_header_is_read(root):
    path = root / "t.csv"
    path.write_bytes(b"\xef\xbb\xbf" + csv_text(HEADER, [row()]).encode())
    assert len(read_task_file(path, "mcq", root).items) == 1


def test_utf16_with_bom_is_read(root):
    path = root / "t.csv"
    path.write_bytes(csv_text(HEADER, [row(caption_0="Un café sans chien.")]).encode("utf-16"))
    assert read_task_file(path, "mcq", root).items[0].captions[0] == "Un café sans chien."


def test_latin1_file_is_a_clear_error_naming_row(root):
    path = root / "t.csv"
    path.write_bytes(csv_text(HEADER, [row(), row("img1.png", caption_0="Un café sans chien.")]).encode("latin-1"))
    for skip in (False, True):  # the whole file's text is in doubt: never skipped row by row
        with pytest.raises(TaskFileError) as info:
            read_task_file(path, "mcq", root, skip_invalid=skip)
        msg = str(info.value)
        assert str(path) in msg and "row 2" in msg and "utf-8" in msg and "b'\\xe9" in msg


def test_duplicate_header_names_the_column(root):
    path = root / "t.csv"
    header = HEADER + ["caption_0"]
    path.write_text(csv_text(header, [row() | {"caption_0": "x"}]))
    with pytest.raises(TaskFileError) as info:
        read_task_file(path, "mcq", root, skip_invalid=True)
    assert info.value.column == "caption_0" and "duplicate column" in str(info.value)


def test_too_many_fields_names_the_row_and_is_skippable(root):
    path = root / "t.csv"
    good = [row()[h] for h in HEADER]
    path.write_text(csv_text(HEADER, [good, good[:2] + ["This image features dog", " with a cat."] + good[3:]]))
    with pytest.raises(TaskFileError) as info:
        read_task_file(path, "mcq", root)
    assert info.value.row == 2 and "8 fields but the header has 7" in str(info.value) and str(path) in str(info.value)
    data = read_task_file(path, "mcq", root, skip_invalid=True)
    assert len(data.items) == 1 and data.skipped[0]["row"] == 2


def test_field_over_csv_default_limit_is_read(root):
    path = root / "r.csv"
    long_caption = "a dog " * 40_000  # 240,000 chars > csv's default 131,072
    path.write_text(csv_text(["filepath", "captions"], [{"filepath": "img0.png",
                                                          "captions": json.dumps([long_caption])}]))
    assert len(read_task_file(path, "retrieval", root).items[0].captions[0]) > 131_072


def test_field_beyond_limit_is_a_clear_error(root):
    path = root / "r.csv"
    # an unclosed quote swallows the rest of the file into one giant cell
    path.write_text("filepath,captions\nimg0.png,\"[\n" + "x" * (MAX_FIELD_CHARS + 10))
    with pytest.raises(TaskFileError) as info:
        read_task_file(path, "retrieval", root)
    assert info.value.row == 1 and "malformed CSV" in str(info.value) and "16,777,216" in str(info.value)


@pytest.mark.parametrize("value", ["inf", "1e400", "-inf", "nan", "1.5"])
def test_non_finite_answer_names_row_and_column(root, value):
    path = root / "t.csv"
    path.write_text(csv_text(HEADER, [row(), row("img1.png", answer=value)]))
    with pytest.raises(TaskFileError) as info:
        read_task_file(path, "mcq", root)
    assert (info.value.row, info.value.column) == (2, "correct_answer") and repr(value) in str(info.value)
    data = read_task_file(path, "mcq", root, skip_invalid=True)
    assert len(data.items) == 1 and data.skipped[0]["column"] == "correct_answer"


def test_caption_types_inconsistent_with_template_is_an_error(root):
    path = root / "t.csv"
    header = HEADER + ["caption_types"]
    ok = row(caption_types=json.dumps(["positive", "negative", "hybrid", "negative"]))
    bad = row("img1.png", caption_types=json.dumps(["hybrid"] * 4))
    path.write_text(csv_text(header, [ok, bad]))
    with pytest.raises(TaskFileError) as info:
        read_task_file(path, "mcq", root)
    assert (info.value.row, info.value.column) == (2, "caption_types") and "'negative'" in str(info.value)
    data = read_task_file(path, "mcq", root, skip_invalid=True)
    assert len(data.items) == 1 and data.skipped[0]["column"] == "caption_types"
