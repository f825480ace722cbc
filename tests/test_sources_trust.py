"""Sources: duplicate ids, unknown splits, absolute file names and null sections name the key."""
from __future__ import annotations

import json

import pytest

from negbench.core.errors import ConfigError, TaskFileError
from negbench.inputs.sources import SourceError, read_source
from negbench_build_fixtures import write_chexpert, write_coco, write_msrvtt, write_voc


def _inst(root):
    path = root / "annotations" / "instances_val2017.json"
    return path, json.loads(path.read_text())


def test_coco_duplicate_image_id_is_an_error_and_drops_both(tmp_path):
    write_coco(tmp_path)
    path, d = _inst(tmp_path)
    first, second = d["images"][0], d["images"][1]
    second["id"] = first["id"]  # two files, one id: whose labels are they?
    path.write_text(json.dumps(d))
    with pytest.raises(SourceError, match=rf"row 1, column 'images.id'.*duplicate image id {first['id']}"):
        read_source("coco", tmp_path)
    data = read_source("coco", tmp_path, skip_invalid=True)
    assert data.drops["duplicate_image_id"] == 1
    media = {s.media for s in data.samples}
    assert not any(first["file_name"] in m or second["file_name"] in m for m in media)
    assert len(data.samples) == 18


@pytest.mark.parametrize("fname", ["/mnt/hhc_data/NegBench/images/val2017/x.jpg", "../outside.jpg", 7])
def test_coco_absolute_or_escaping_file_name(tmp_path, fname):
    write_coco(tmp_path)
    path, d = _inst(tmp_path)
    d["images"][2]["file_name"] = fname
    path.write_text(json.dumps(d))
    with pytest.raises(SourceError, match=r"row 2, column 'images.file_name'.*relative path"):
        read_source("coco", tmp_path)
    assert read_source("coco", tmp_path, skip_invalid=True).drops["bad_file_name"] == 1


@pytest.mark.parametrize("section", ["categories", "images", "annotations"])
def test_coco_null_section_names_the_key(tmp_path, section):
    write_coco(tmp_path)
    path, d = _inst(tmp_path)
    d[section] = None
    path.write_text(json.dumps(d))
    with pytest.raises(SourceError, match=rf"column '{section}'.*must be a list, got NoneType"):
        read_source("coco", tmp_path, skip_invalid=True)


def test_msrvtt_unknown_split_is_an_error(tmp_path):
    write_msrvtt(tmp_path)
    with pytest.raises(ConfigError, match=r"unknown split 'bogus'; the file has \['test', 'train'\]"):
        read_source("msrvtt", tmp_path, split="bogus")
    assert {s.split for s in read_source("msrvtt", tmp_path, split="test").samples} == {"test"}


def test_msrvtt_duplicate_video_id_and_null_section(tmp_path):
    write_msrvtt(tmp_path)
    info = tmp_path / "videodatainfo.json"
    d = json.loads(info.read_text())
    d["videos"].append(dict(d["videos"][1]))
    info.write_text(json.dumps(d))
    with pytest.raises(SourceError, match=r"column 'videos.video_id'.*duplicate video id 'video1'"):
        read_source("msrvtt", tmp_path)
    d["sentences"] = None
    info.write_text(json.dumps(d))
    with pytest.raises(SourceError, match=r"column 'sentences'.*must be a list"):
        read_source("msrvtt", tmp_path, skip_invalid=True)


def test_voc_duplicate_id_and_absolute_filename(tmp_path):
    write_voc(tmp_path)
    split = tmp_path / "ImageSets" / "Main" / "test.txt"
    ids = split.read_text().split()
    split.write_text("\n".join(ids + [ids[0]]) + "\n")
    with pytest.raises(SourceError, match=rf"row {len(ids) + 1}, column 'id'.*duplicate image id"):
        read_source("voc", tmp_path)
    xml = tmp_path / "Annotations" / f"{ids[1]}.xml"
    text = xml.read_text()
    start, end = text.index("<filename>") + 10, text.index("</filename>")
    xml.write_text(text[:start] + "/mnt/hhc_data/VOC2007/JPEGImages/x.jpg" + text[end:])
    data = read_source("voc", tmp_path, skip_invalid=True)
    assert data.drops["duplicate_image_id"] == 1 and data.drops["bad_file_name"] == 1


def test_chexpert_duplicate_path_bom_and_latin1(tmp_path):
    write_chexpert(tmp_path)
    csv_path = tmp_path / "CheXpert-v1.0-small" / "valid.csv"
    lines = csv_path.read_text().splitlines()
    csv_path.write_bytes(b"\xef\xbb\xbf" + ("\n".join(lines + [lines[1]]) + "\n").encode())
    with pytest.raises(SourceError, match=rf"row {len(lines)}, column 'Path'.*duplicate image path"):
        read_source("chexpert", tmp_path)
    data = read_source("chexpert", tmp_path, skip_invalid=True)
    assert data.drops["duplicate_id"] == 1 and len(data.samples) == len(lines) - 1
    csv_path.write_bytes(csv_path.read_bytes().replace(b"Male", b"M\xe4le", 1))
    with pytest.raises(TaskFileError, match=r"valid.csv, row 1: not valid utf-8"):
        read_source("chexpert", tmp_path, skip_invalid=True)


def test_build_prints_every_drop_reason_with_counts(tmp_path, capsys):
    from negbench.cli import main

    write_coco(tmp_path / "coco")
    path, d = _inst(tmp_path / "coco")
    d["annotations"][3]["category_id"] = 999
    d["images"][4]["id"] = d["images"][5]["id"]
    path.write_text(json.dumps(d))
    assert main(["build", "coco", "--src", str(tmp_path / "coco"), "--out", str(tmp_path / "out"), "--task", "mcq",
                 "--skip-invalid"]) == 0
    line = next(l for l in capsys.readouterr().out.splitlines() if l.startswith("dropped: "))
    assert "unknown_category_id=1" in line and "duplicate_image_id=1" in line and "incomplete_annotations=1" in line
