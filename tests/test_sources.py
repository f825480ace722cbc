"""Dataset readers on ~20-record fixtures in the real formats, incl. malformed input."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from negbench.core.errors import ConfigError, UnknownNameError
from negbench.inputs.sources import SOURCES, SourceError, read_source
from negbench.inputs.vocab import Vocabulary, builtin_vocab, plural, read_vocab_file

from negbench_build_fixtures import (write_chexpert, write_coco, write_corpus, write_msrvtt, write_voc)


def test_registry_names_and_unknown():
    assert {"coco", "voc", "msrvtt", "chexpert", "csv"} <= set(SOURCES.names())
    with pytest.raises(UnknownNameError, match="did you mean 'coco'"):
        read_source("cocoo", ".")


def test_coco_reader(tmp_path):
    truth = write_coco(tmp_path)
    data = read_source("coco", tmp_path)
    assert data.split == "val2017" and len(data.samples) == 20 and data.prefix == "COCO_val2017"
    for s in data.samples:
        assert list(s.objects) == truth[int(s.sample_id)]
        assert len(s.captions) == 3 and s.objects_from_annotations
        assert (data.root / s.media).is_file()


def test_coco_malformed(tmp_path):
    write_coco(tmp_path)
    inst = tmp_path / "annotations" / "instances_val2017.json"
    d = json.loads(inst.read_text())
    d["annotations"][3]["category_id"] = 999
    del d["annotations"][5]["image_id"]
    inst.write_text(json.dumps(d))
    (tmp_path / "val2017" / d["images"][7]["file_name"]).unlink()
    with pytest.raises(SourceError, match=r"instances_val2017.json, row 3, column 'annotations.category_id'.*999"):
        read_source("coco", tmp_path)
    data = read_source("coco", tmp_path, skip_invalid=True)
    assert data.drops["unknown_category_id"] == 1
    assert data.drops["missing_key_image_id"] == 1
    assert data.drops["missing_media"] == 1
    bad_image = d["annotations"][3]["image_id"]
    assert str(bad_image) not in {s.sample_id for s in data.samples}   # incomplete labels: never used
    assert data.drops["incomplete_annotations"] == 1
    assert len(data.samples) == 18


def test_coco_missing_top_level_key(tmp_path):
    write_coco(tmp_path)
    inst = tmp_path / "annotations" / "instances_val2017.json"
    d = json.loads(inst.read_text())
    del d["categories"]
    inst.write_text(json.dumps(d))
    with pytest.raises(SourceError, match="column 'categories'"):
        read_source("coco", tmp_path)


def test_voc_reader_and_errors(tmp_path):
    truth = write_voc(tmp_path / "VOC2007")
    data = read_source("voc", tmp_path)   # a VOCdevkit with one year inside
    assert data.group == "VOC2007" and len(data.samples) == 20
    s = data.samples[0]
    expected = sorted("dining table" if o == "diningtable" else o for o in truth[s.sample_id])
    assert list(s.objects) == expected
    (tmp_path / "VOC2007" / "Annotations" / "000004.xml").unlink()
    with pytest.raises(SourceError, match="000004.xml"):
        read_source("voc", tmp_path / "VOC2007")
    data = read_source("voc", tmp_path / "VOC2007", skip_invalid=True)
    assert data.drops["missing_annotation"] == 1 and len(data.samples) == 19
    small = Vocabulary.from_names(["person", "dog"])
    with pytest.raises(SourceError, match="unknown category"):
        read_source("voc", tmp_path / "VOC2007", vocab=small, skip_invalid=False)


def test_msrvtt_reader(tmp_path):
    truth = write_msrvtt(tmp_path)
    data = read_source("msrvtt", tmp_path)
    assert data.modality == "video" and all(s.split == "test" for s in data.samples)
    assert len(data.samples) == 8
    assert all(list(s.objects) == truth[s.sample_id] and s.objects_from_annotations for s in data.samples)
    (tmp_path / "objects.json").unlink()
    data = read_source("msrvtt", tmp_path)
    for s in data.samples:   # extracted from captions: subset of truth, and marked unverified
        assert set(s.objects) <= set(truth[s.sample_id]) and not s.objects_from_annotations
    (tmp_path / "videos" / "video1.mp4").unlink()
    with pytest.raises(SourceError, match="video1.mp4"):
        read_source("msrvtt", tmp_path)


def test_msrvtt_csv_variant(tmp_path):
    write_msrvtt(tmp_path, with_objects=False)
    pd.DataFrame({"video_id": ["video1", "video2"],
                  "captions": [json.dumps(["a dog and a cat", "a dog"]), json.dumps(["a car"])]}
                 ).to_csv(tmp_path / "msrvtt.csv", index=False)
    data = read_source("msrvtt", tmp_path / "msrvtt.csv")
    assert [s.objects for s in data.samples] == [("cat", "dog"), ("car",)]


def test_chexpert_reader_uncertain_labels(tmp_path):
    truth = write_chexpert(tmp_path)
    data = read_source("chexpert", tmp_path)
    assert len(data.samples) == 20 and "no finding" not in data.categories
    for s in data.samples:
        labels = truth[s.media]
        for col, v in labels.items():
            name = col.lower()
            if col == "No Finding":
                continue
            if v == "1.0":
                assert name in s.objects
            elif v == "0.0":
                assert name in s.absent
            else:   # -1.0 and blank: never used as present or absent
                assert name in s.uncertain and name not in s.objects and name not in s.absent
    assert data.drops["uncertain_labels_not_used"] > 0


def test_chexpert_bad_label(tmp_path):
    write_chexpert(tmp_path)
    p = tmp_path / "CheXpert-v1.0-small" / "valid.csv"
    lines = p.read_text().splitlines()
    cells = lines[3].split(",")
    cells[6] = "maybe"
    lines[3] = ",".join(cells)
    p.write_text("\n".join(lines) + "\n")
    with pytest.raises(SourceError, match="row 3, column 'Cardiomegaly'.*maybe"):
        read_source("chexpert", tmp_path)
    assert read_source("chexpert", tmp_path, skip_invalid=True).drops["bad_label"] == 1


@pytest.mark.parametrize("fmt", ["tsv", "csv", "parquet", "headerless"])
def test_generic_reader_formats(tmp_path, fmt):
    truth = write_corpus(tmp_path / "c.tsv", n=20)
    for fp in truth:
        (tmp_path / fp).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / fp).write_bytes(b"x")
    df = pd.read_csv(tmp_path / "c.tsv", sep="\t")
    path = tmp_path / f"c.{fmt}"
    if fmt == "csv":
        df.to_csv(path, index=False)
    elif fmt == "parquet":
        df.to_parquet(path)
    elif fmt == "headerless":
        path = tmp_path / "cc12m.tsv"
        df.to_csv(path, sep="\t", index=False, header=False)
    data = read_source("csv", path, vocab=builtin_vocab())
    assert len(data.samples) == 20
    for s in data.samples:
        assert set(s.objects) <= set(truth[s.media]) and s.objects
        assert not s.objects_from_annotations


def test_generic_objects_column_and_errors(tmp_path):
    truth = write_corpus(tmp_path / "c.csv", n=20, with_objects=True, sep=",")
    for fp in truth:
        (tmp_path / fp).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / fp).write_bytes(b"x")
    data = read_source("csv", tmp_path / "c.csv")
    assert all(list(s.objects) == truth[s.media] and s.objects_from_annotations for s in data.samples)
    (tmp_path / "images" / "00003.jpg").unlink()
    with pytest.raises(SourceError, match=r"c.csv, row 4, column 'filepath'.*not found"):
        read_source("csv", tmp_path / "c.csv")
    pd.DataFrame({"image": ["a.jpg"], "label": ["x"]}).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(SourceError, match="no caption column"):
        read_source("csv", tmp_path / "bad.csv")


def test_vocab_matching(tmp_path):
    v = builtin_vocab()
    assert v.extract("Two puppies and a TV on the dining table")[0] == ("dog", "tv", "dining table")
    assert v.extract("a hot dog, no dogs here. A man on a motorbike")[0] == ("hot dog", "person", "motorcycle")
    assert v.extract("a hot dog, no dogs here")[1] == ("dog",)
    assert plural("knife") == "knives" and plural("bus") == "buses" and plural("teddy bear") == "teddy bears"
    f = tmp_path / "vocab.txt"
    f.write_text("# world\napple\ndog, puppy\n\nsun\n")
    wv = read_vocab_file(f)
    assert wv.names == ("apple", "dog", "sun") and wv.extract("Three apples, a puppy and the sun")[0] == \
        ("apple", "dog", "sun")
    f.write_text(", oops\n")
    with pytest.raises(ConfigError, match="line 1"):
        read_vocab_file(f)
