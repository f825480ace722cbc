"""NegWorld: the generated files are real COCO / VOC / MSR-VTT / CheXpert / CC12M files."""
from __future__ import annotations

import csv
import hashlib
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from negbench.core.errors import ConfigError
from negbench.world import CATEGORIES, WorldExistsError, generate_world
from negbench.inputs.vocab import read_vocab_file
from negbench.world.truth import caption_facts, fits, read_truth

NEGATION = re.compile(r"\b(no|not|without|none|nothing|never|neither|nor|except|absent)\b|n't", re.I)
CHEXPERT_COLUMNS = [
    "Path", "Sex", "Age", "Frontal/Lateral", "AP/PA", "No Finding", "Enlarged Cardiomediastinum", "Cardiomegaly",
    "Lung Opacity", "Lung Lesion", "Edema", "Consolidation", "Pneumonia", "Atelectasis", "Pneumothorax",
    "Pleural Effusion", "Pleural Other", "Fracture", "Support Devices"]


@pytest.fixture(scope="session")
def world(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("negworld") / "w"
    generate_world(out, seed=0, size="tiny", workers=2)
    return out


def _hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and not p.name.startswith("contact_sheet")}


def _vocab(world: Path) -> dict[str, str]:
    """surface word -> category, from vocab.txt, as a downstream matcher would read it."""
    words = {}
    for line in (world / "vocab.txt").read_text().splitlines():
        names = [w.strip() for w in line.split(",")]
        for w in names:
            words[w] = names[0]
    return words


def _mentioned(caption: str, vocab: dict[str, str]) -> set[str]:
    found = set()
    for w in re.findall(r"[a-z]+", caption.lower()):
        for cand in (w, w[:-1] if w.endswith("s") else None, w[:-2] if w.endswith("es") else None,
                     w[:-3] + "y" if w.endswith("ies") else None):
            if cand in vocab:
                found.add(vocab[cand])
                break
    return found


def test_manifest_and_vocab(world):
    m = json.loads((world / "world.json").read_text())
    assert m["seed"] == 0 and m["size"] == "tiny" and m["resolution"] == 64
    assert len(m["categories"]) >= 24
    lines = (world / "vocab.txt").read_text().splitlines()
    assert len(lines) == len(CATEGORIES) and "cup, mug" in lines and "ball" in lines
    assert m["counts"]["coco"]["test"]["images"] == 60 and m["counts"]["corpus"]["images"] == 300


def test_coco_loads_with_pycocotools(world):
    from pycocotools.coco import COCO

    for split, n in (("train", 40), ("val", 20), ("test", 60)):
        inst = COCO(str(world / "coco" / "annotations" / f"instances_{split}.json"))
        caps = COCO(str(world / "coco" / "annotations" / f"captions_{split}.json"))
        assert len(inst.getImgIds()) == n and len(inst.getCatIds()) >= 24
        for img_id in inst.getImgIds():
            img = inst.loadImgs(img_id)[0]
            assert (world / "coco" / "images" / split / img["file_name"]).exists()
            anns = inst.loadAnns(inst.getAnnIds(imgIds=img_id))
            assert 1 <= len(anns) <= 5
            for a in anns:
                x, y, w, h = a["bbox"]
                assert 0 <= x and 0 <= y and x + w <= img["width"] and y + h <= img["height"]
                assert a["iscrowd"] == 0 and 0 < a["area"] <= w * h
            if img_id == inst.getImgIds()[0]:  # polygons decode to masks
                assert inst.annToMask(anns[0]).shape == (img["height"], img["width"])
            assert len(caps.loadAnns(caps.getAnnIds(imgIds=img_id))) == 5


def test_voc_xml_parses(world):
    voc = world / "VOC"
    names = {c.name for c in CATEGORIES}
    ids = []
    for split in ("train", "val", "test"):
        ids += (voc / "ImageSets" / "Main" / f"{split}.txt").read_text().split()
    assert len(ids) == len(set(ids)) == 120
    for stem in ids:
        root = ET.parse(voc / "Annotations" / f"{stem}.xml").getroot()
        assert (voc / "JPEGImages" / root.findtext("filename")).exists()
        w, h = int(root.findtext("size/width")), int(root.findtext("size/height"))
        objs = root.findall("object")
        assert objs
        for o in objs:
            assert o.findtext("name") in names and o.findtext("difficult") in ("0", "1")
            b = [int(o.findtext(f"bndbox/{k}")) for k in ("xmin", "ymin", "xmax", "ymax")]
            assert 1 <= b[0] <= b[2] <= w and 1 <= b[1] <= b[3] <= h


def test_videos_decode_and_msrvtt_layout(world):
    import av

    info = json.loads((world / "msrvtt" / "videodatainfo.json").read_text())
    objects = json.loads((world / "msrvtt" / "objects.json").read_text())
    frames = json.loads((world / "world.json").read_text())["video"]["frames"]
    assert {v["split"] for v in info["videos"]} == {"train", "validate", "test"}
    for v in info["videos"]:
        with av.open(str(world / "msrvtt" / "videos" / f"{v['video_id']}.mp4")) as c:
            decoded = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
        assert len(decoded) == frames and decoded[0].shape == (64, 64, 3)
        assert sum(s["video_id"] == v["video_id"] for s in info["sentences"]) >= 5
        assert 1 <= len(objects[v["video_id"]]) <= 3


def test_chexpert_csv_columns_and_values(world):
    base = world / "chexpert"
    for split, allowed in (("train", {"", "1.0", "0.0", "-1.0"}), ("valid", {"0.0", "1.0"})):
        with open(base / "CheXpert-v1.0-small" / f"{split}.csv", newline="") as f:
            reader = csv.DictReader(f)
            rows = list(reader)
        assert reader.fieldnames == CHEXPERT_COLUMNS
        assert rows
        for r in rows:
            assert r["Path"].startswith(f"CheXpert-v1.0-small/{split}/patient") and (base / r["Path"]).exists()
            assert r["Sex"] in ("Male", "Female") and r["Frontal/Lateral"] == "Frontal" and r["AP/PA"] in ("AP", "PA")
            assert 18 <= int(r["Age"]) <= 90
            assert all(r[c] in allowed for c in CHEXPERT_COLUMNS[5:])
    train = list(csv.DictReader(open(base / "CheXpert-v1.0-small" / "train.csv")))
    assert sum(r[c] == "1.0" for r in train for c in CHEXPERT_COLUMNS[6:]) > 0


def _all_captions(world):
    for split in ("train", "val", "test"):
        caps = json.loads((world / "coco" / "annotations" / f"captions_{split}.json").read_text())
        yield from (("coco", split, a["image_id"], a["caption"]) for a in caps["annotations"])
    info = json.loads((world / "msrvtt" / "videodatainfo.json").read_text())
    yield from (("msrvtt", None, s["video_id"], s["caption"]) for s in info["sentences"])
    with open(world / "corpus" / "corpus.tsv", newline="") as f:
        yield from (("corpus", None, r["filepath"], r["caption"]) for r in csv.DictReader(f, delimiter="\t"))


def test_captions_never_negate(world):
    bad = [c for *_, c in _all_captions(world) if NEGATION.search(c)]
    assert not bad


def test_every_caption_object_is_present(world):
    """COCO and MSR-VTT captions identify their item (they name every object, as real COCO
    captions mostly do); some corpus captions leave objects out, like web alt-text."""
    vocab = _vocab(world)
    present: dict = {}
    for split in ("train", "val", "test"):
        inst = json.loads((world / "coco" / "annotations" / f"instances_{split}.json").read_text())
        names = {c["id"]: c["name"] for c in inst["categories"]}
        for a in inst["annotations"]:
            present.setdefault(("coco", a["image_id"]), set()).add(names[a["category_id"]])
    for vid, objs in json.loads((world / "msrvtt" / "objects.json").read_text()).items():
        present[("msrvtt", vid)] = set(objs)
    _, corpus_truth = read_truth(world, "corpus")
    for path, item in corpus_truth.items():
        present[("corpus", path)] = {o["category"] for o in item["objects"]}
    n_partial = 0
    for source, _, key, caption in _all_captions(world):
        mentioned = _mentioned(caption, vocab)
        assert mentioned <= present[(source, key)], (caption, present[(source, key)])
        if source != "corpus":
            assert mentioned == present[(source, key)], (caption, present[(source, key)])
        n_partial += mentioned < present[(source, key)]
    assert n_partial > 0


def test_every_caption_is_true_of_its_item(world):
    """Every colour, count, size, place and scene a caption states holds in its own item."""
    vocab = read_vocab_file(world / "vocab.txt")
    truths = {name: read_truth(world, name) for name in ("coco_train", "coco_val", "coco_test", "msrvtt", "corpus")}
    file_names = {}
    for split in ("train", "val", "test"):
        inst = json.loads((world / "coco" / "annotations" / f"instances_{split}.json").read_text())
        file_names.update({im["id"]: (f"coco_{split}", im["file_name"]) for im in inst["images"]})
    checked = 0
    for source, _, key, caption in _all_captions(world):
        name, item_key = {"coco": lambda: file_names[key], "msrvtt": lambda: ("msrvtt", f"{key}.mp4"),
                          "corpus": lambda: ("corpus", key)}[source]()
        resolution, items = truths[name]
        facts = caption_facts(caption, vocab)
        assert facts.mentions and fits(facts, items[item_key], resolution), (caption, items[item_key])
        checked += 1
    assert checked > 900


def test_corpus_is_tsv_without_labels(world):
    corpus = world / "corpus"
    assert sorted(p.name for p in corpus.iterdir()) == ["corpus.tsv", "images"]
    lines = (corpus / "corpus.tsv").read_text().splitlines()
    assert lines[0] == "filepath\tcaption" and len(lines) == 301
    for line in lines[1:]:
        path, caption = line.split("\t")
        assert (corpus / path).exists() and caption
    coco_hashes = {hashlib.sha256(p.read_bytes()).digest() for p in (world / "coco" / "images").rglob("*.jpg")}
    corpus_hashes = {hashlib.sha256(p.read_bytes()).digest() for p in (corpus / "images").glob("*.jpg")}
    assert not coco_hashes & corpus_hashes


def test_categories_are_visually_distinct():
    """A nearest-centroid classifier on raw pixels of single-object crops beats chance by far."""
    from PIL import Image

    from negbench.world._util import item_rng
    from negbench.world.scenes import render_scene

    def crops(cat, offset, n):
        out = []
        for i in range(n):
            img, _, objs = render_scene(64, item_rng(1, f"probe/{cat.name}", offset + i), scene="plain",
                                        categories=[cat])
            x, y, w, h = objs[0].bbox
            side = max(w, h)  # square crop around the box keeps the aspect ratio as a cue
            cx, cy = x + w / 2, y + h / 2
            crop = img.crop((int(cx - side / 2), int(cy - side / 2), int(cx + side / 2), int(cy + side / 2)))
            out.append(np.asarray(crop.resize((16, 16), Image.Resampling.BILINEAR), dtype=np.float32).ravel())
        return np.stack(out)

    train = np.stack([crops(c, 0, 10).mean(0) for c in CATEGORIES])
    correct = total = 0
    for k, c in enumerate(CATEGORIES):
        x = crops(c, 100, 5)
        pred = ((x[:, None, :] - train[None]) ** 2).sum(-1).argmin(1)
        correct += int((pred == k).sum())
        total += len(x)
    acc = correct / total
    print(f"nearest-centroid accuracy {acc:.2f}")
    assert acc > 0.5, f"nearest-centroid accuracy {acc:.2f} (chance {1 / len(CATEGORIES):.2f})"


def test_same_seed_same_bytes_any_workers(world, tmp_path):
    """workers=1 equals the fixture's workers=2, while another generation runs at the same time
    (load and interleaving must not matter, so the test cannot pass by luck)."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    rival = ctx.Process(target=generate_world, args=(tmp_path / "rival",),
                        kwargs=dict(seed=3, size="tiny", workers=2))
    rival.start()
    try:
        again = tmp_path / "again"
        generate_world(again, seed=0, size="tiny", workers=1)
    finally:
        rival.join(timeout=300)
    assert rival.exitcode == 0
    assert _hashes(again) == _hashes(world)


def test_one_process_encodes_the_same_clip_to_the_same_bytes(tmp_path):
    """The real cause of the old flake: x264's mbtree made the 2nd+ encode in a process differ."""
    from negbench.world._util import item_rng
    from negbench.world.generate import resolve_config
    from negbench.world.video import encode_mp4, render_clip

    cfg = resolve_config(0, "tiny")
    frames, _, _ = render_clip(cfg["resolution"], cfg["n_frames"], item_rng(0, "msrvtt", 2))
    blobs = set()
    for i in range(4):
        encode_mp4(tmp_path / f"{i}.mp4", frames, cfg["fps"])
        blobs.add((tmp_path / f"{i}.mp4").read_bytes())
    assert len(blobs) == 1


def test_different_seed_different_files(world, tmp_path):
    other = tmp_path / "other"
    generate_world(other, seed=1, size="tiny", workers=1, n_train=2, n_val=2, n_test=2, n_corpus=2, n_videos=1,
                   n_xrays=2)
    a, b = _hashes(world), _hashes(other)
    for rel in ("coco/images/test/000020000001.jpg", "corpus/images/000000.jpg", "msrvtt/videos/video0.mp4",
                "chexpert/CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg"):
        assert a[rel] != b[rel], rel


def test_finished_world_is_skipped_and_other_config_refused(world):
    before = (world / "world.json").stat().st_mtime_ns
    m = generate_world(world, seed=0, size="tiny")
    assert m["seed"] == 0 and (world / "world.json").stat().st_mtime_ns == before
    with pytest.raises(WorldExistsError):
        generate_world(world, seed=5, size="tiny")


def test_bad_options_are_named():
    with pytest.raises(ConfigError, match="n_bogus"):
        generate_world("/nonexistent/never", size="tiny", n_bogus=3)
    with pytest.raises(ConfigError, match="huge"):
        generate_world("/nonexistent/never", size="huge")


def test_refuses_foreign_nonempty_folder(tmp_path):
    (tmp_path / "coco").mkdir()
    (tmp_path / "coco" / "precious.json").write_text("{}")
    with pytest.raises(WorldExistsError):
        generate_world(tmp_path, size="tiny")
    with pytest.raises(WorldExistsError):
        generate_world(tmp_path, size="tiny", overwrite=True)
    assert (tmp_path / "coco" / "precious.json").exists()


def test_cli_generate_and_show(tmp_path):
    from PIL import Image

    from negbench.cli import main

    out = tmp_path / "w"
    rc = main(["world", "generate", "--out", str(out), "--size", "tiny", "--resolution", "96", "--n-train", "2",
               "--n-val", "2", "--n-test", "6", "--n-corpus", "4", "--n-videos", "2", "--n-xrays", "4",
               "--workers", "1", "--no-progress"])
    assert rc == 0
    m = json.loads((out / "world.json").read_text())
    assert m["resolution"] == 96 and m["counts"]["coco"]["test"]["images"] == 6
    assert Image.open(out / "coco" / "images" / "test" / "000020000001.jpg").size == (96, 96)
    sheet = tmp_path / "sheet.png"
    assert main(["world", "show", str(out), "--n", "4", "--out", str(sheet)]) == 0
    assert Image.open(sheet).size[0] > 96


def test_oracle_expected_recall_equals_counting_every_tie_order():
    """clip((k - better) / tied) is the share of orders of the tied block that put the own item in the top k."""
    from itertools import permutations

    from negbench.world.headroom import expected_recall
    for better in range(4):
        for tied in range(1, 5):
            for k in (1, 2, 5):
                orders = list(permutations(range(tied)))       # own item = 0, ranked after `better` items
                naive = sum(better + order.index(0) < k for order in orders) / len(orders)
                assert expected_recall(better, tied, k) == pytest.approx(naive)
