"""Foreign absolute media paths: one prefix rewrite per file, found, checked, or refused clearly."""
from __future__ import annotations

import pytest

from negbench.core.errors import ConfigError, TaskFileError
from negbench.inputs.formats import read_task_file
from negbench.inputs.paths import build_resolver, find_rewrite, parse_path_map

from published_fixtures import HEALTHY_ML, LAYOUTS, PREFIX, foreign, media_names, write_media, write_release

EXPECTED = {  # (layout, dataset) -> (foreign prefix, local folder relative to the data root)
    ("natural", "coco"): (f"{PREFIX}/images", ""),
    ("natural", "voc"): (f"{PREFIX}/images", "VOCdevkit"),
    ("natural", "msrvtt"): (f"{PREFIX}/videos/TestVideo", "MSRVTT/videos/all"),
    ("natural", "chexpert"): (f"{PREFIX}/chexpert", "CheXpert-v1.0-small"),
    ("authors", "coco"): (PREFIX, ""),
    ("authors", "voc"): (PREFIX, ""),
    ("authors", "msrvtt"): (PREFIX, ""),
    ("authors", "chexpert"): (PREFIX, ""),
}


@pytest.fixture(scope="module", params=sorted(LAYOUTS))
def layout_root(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(f"media_{request.param}")
    return request.param, write_media(root, request.param)


@pytest.mark.parametrize("dataset", ["coco", "voc", "msrvtt", "chexpert"])
def test_each_layout_gets_its_one_rewrite(layout_root, dataset):
    layout, root = layout_root
    rows = [(i + 1, foreign(dataset, n)) for i, n in enumerate(media_names()[dataset])]
    rw = find_rewrite("f.csv", "image_path", rows, root)
    old, new = EXPECTED[(layout, dataset)]
    assert (rw.old, rw.new, rw.source) == (old, str(root / new) if new else str(root), "auto")
    resolver = build_resolver("f.csv", "image_path", rows, root)
    for _, media in rows:
        assert resolver.resolve(media).is_file()


def test_relative_and_existing_absolute_paths_need_no_rewrite(layout_root):
    layout, root = layout_root
    rel = f"{LAYOUTS[layout]['coco']}/{media_names()['coco'][0]}"
    absolute = str(root / rel)
    resolver = build_resolver("f.csv", "image_path", [(1, rel), (2, absolute)], root)
    assert resolver.record() is None
    assert resolver.resolve(rel) == root / rel and str(resolver.resolve(absolute)) == absolute


def test_no_match_names_file_row_prefix_and_folders_tried(tmp_path):
    write_media(tmp_path, "natural")
    with pytest.raises(TaskFileError) as err:
        find_rewrite("coco.csv", "image_path", [(1, f"{PREFIX}/images/val2017/999.jpg")], tmp_path)
    msg = str(err.value)
    assert "coco.csv, row 1, column 'image_path'" in msg and "999.jpg" in msg
    assert f"foreign prefix '{PREFIX}/images/val2017'" in msg and "folders tried" in msg
    assert str(tmp_path / "VOCdevkit") in msg and "--path-map" in msg


def test_two_copies_in_different_folders_is_ambiguous(tmp_path):
    write_media(tmp_path, "natural")
    write_media(tmp_path, "authors")  # now val2017/X and images/val2017/X are different files
    rows = [(1, foreign("coco", media_names()["coco"][0]))]
    with pytest.raises(TaskFileError, match=r"ambiguous media location.*--path-map"):
        find_rewrite("coco.csv", "image_path", rows, tmp_path)
    # --path-map settles it
    resolver = build_resolver("coco.csv", "image_path", rows, tmp_path,
                              parse_path_map([f"{PREFIX}/images={tmp_path}/images"]))
    assert resolver.record() == {"from": f"{PREFIX}/images", "to": f"{tmp_path}/images", "source": "path-map"}
    assert resolver.resolve(rows[0][1]) == tmp_path / "images/val2017" / media_names()["coco"][0]


def test_a_row_with_another_prefix_is_refused(tmp_path):
    write_media(tmp_path, "natural")
    names = media_names()["coco"]
    rows = [(1, foreign("coco", names[0])), (2, foreign("coco", names[1], "/elsewhere/x"))]
    with pytest.raises(TaskFileError, match=r"row 2.*does not fit this row"):
        find_rewrite("coco.csv", "image_path", rows, tmp_path)


def test_malformed_path_map_is_a_config_error():
    with pytest.raises(ConfigError, match="expected OLD=NEW"):
        parse_path_map(["/mnt/only-old"])


def test_published_files_read_with_their_rewrite(tmp_path):
    data_root = write_media(tmp_path / "data", "natural")
    release = write_release(tmp_path / "release") / "NegBench"
    coco = read_task_file(release / "images/COCO_val_mcq_llama3.1_rephrased.csv", "mcq", data_root)
    assert coco.path_rewrite == {"from": f"{PREFIX}/images", "to": str(data_root), "source": "auto"}
    assert all(it.correct_answer == 0 for it in coco.items)
    video = read_task_file(release / "videos/msr_vtt_mcq_rephrased_llama.csv", "mcq", data_root)
    assert video.path_rewrite["to"] == str(data_root / "MSRVTT/videos/all") and len(video.items) == 2
    per_finding = read_task_file(release / "images/Atelectasis/chexpert_negation_binary_mcq.csv",
                                 "binary-mcq", data_root)
    assert per_finding.path_rewrite == {"from": f"{HEALTHY_ML}/chexpert", "to": str(data_root / "CheXpert-v1.0-small"),
                                        "source": "auto"}
    assert [it.template for it in per_finding.items] == ["positive", "negative", "positive"]
    retr = read_task_file(release / "videos/msr_vtt_negated_retrieval.csv", "retrieval", data_root)
    assert [len(it.captions) for it in retr.items] == [1, 1]  # `captions`, not the 20 `all_captions`
