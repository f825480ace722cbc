"""Tiny datasets in the real formats (COCO, VOC, MSR-VTT, CheXpert, CSV) for the build tests,
and a small evaluator of caption-template semantics used to check every generated question."""
from __future__ import annotations

import csv
import json
import random
import re
from pathlib import Path

from PIL import Image

CATS = ["person", "dog", "cat", "car", "bicycle", "chair", "cup", "bottle"]
FINDINGS = ["No Finding", "Cardiomegaly", "Edema", "Pneumonia", "Atelectasis", "Pleural Effusion"]


def _jpg(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), (seed * 37 % 255, seed * 91 % 255, 120)).save(path, "JPEG")


def scene(rng: random.Random) -> list[str]:
    return sorted(rng.sample(CATS, rng.randint(1, 3)))


def caption_for(objs, rng) -> str:
    words = [("a " + o) if rng.random() < 0.7 else ("two " + o + "s") for o in objs]
    return rng.choice(["A photo of {}.", "{} in a room.", "There is {} here."]).format(" and ".join(words))


def write_coco(root: Path, n: int = 20, split: str = "val2017", seed: int = 0) -> dict:
    rng = random.Random(seed)
    cats = [{"id": i + 1, "name": c, "supercategory": "x"} for i, c in enumerate(CATS)]
    images, anns, caps, truth = [], [], [], {}
    for i in range(n):
        fname = f"{i:012d}.jpg"
        _jpg(root / split / fname, i)
        images.append({"id": i + 1, "file_name": fname, "width": 8, "height": 8})
        objs = scene(rng)
        truth[i + 1] = objs
        for o in objs:
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": CATS.index(o) + 1,
                         "bbox": [0, 0, 4, 4], "iscrowd": 0, "area": 16})
        for _ in range(3):
            caps.append({"id": len(caps) + 1, "image_id": i + 1, "caption": caption_for(objs, rng)})
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    (root / "annotations" / f"instances_{split}.json").write_text(
        json.dumps({"images": images, "annotations": anns, "categories": cats}))
    (root / "annotations" / f"captions_{split}.json").write_text(json.dumps({"images": images, "annotations": caps}))
    return truth


def write_voc(root: Path, n: int = 20, split: str = "test", seed: int = 1) -> dict:
    rng = random.Random(seed)
    voc = ["person", "dog", "cat", "car", "bicycle", "chair", "bottle", "diningtable"]
    (root / "Annotations").mkdir(parents=True, exist_ok=True)
    (root / "ImageSets" / "Main").mkdir(parents=True, exist_ok=True)
    ids, truth = [], {}
    for i in range(n):
        img_id = f"{i:06d}"
        ids.append(img_id)
        objs = sorted(rng.sample(voc, rng.randint(1, 3)))
        truth[img_id] = objs
        _jpg(root / "JPEGImages" / f"{img_id}.jpg", i)
        xml = "".join(f"<object><name>{o}</name><difficult>0</difficult><bndbox><xmin>1</xmin><ymin>1</ymin>"
                      f"<xmax>4</xmax><ymax>4</ymax></bndbox></object>" for o in objs)
        (root / "Annotations" / f"{img_id}.xml").write_text(
            f"<annotation><filename>{img_id}.jpg</filename><size><width>8</width><height>8</height></size>{xml}"
            f"</annotation>")
    (root / "ImageSets" / "Main" / f"{split}.txt").write_text("\n".join(ids) + "\n")
    return truth


def write_msrvtt(root: Path, n: int = 12, seed: int = 2, with_objects: bool = True) -> dict:
    rng = random.Random(seed)
    videos, sents, objects = [], [], {}
    (root / "videos").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        vid = f"video{i}"
        (root / "videos" / f"{vid}.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42fake")
        videos.append({"video_id": vid, "split": "test" if i % 3 else "train"})
        objs = scene(rng)
        objects[vid] = objs
        for _ in range(3):
            sents.append({"video_id": vid, "caption": caption_for(objs, rng), "sen_id": len(sents)})
    (root / "videodatainfo.json").write_text(json.dumps({"videos": videos, "sentences": sents}))
    if with_objects:
        (root / "objects.json").write_text(json.dumps(objects))
    return objects


def write_chexpert(root: Path, n: int = 20, seed: int = 3) -> dict:
    """CheXpert-v1.0-small/valid.csv with 1.0 / 0.0 / -1.0 / blank labels; Path relative to root."""
    rng = random.Random(seed)
    base = root / "CheXpert-v1.0-small"
    rows, truth = [], {}
    for i in range(n):
        rel = f"CheXpert-v1.0-small/valid/patient{i:05d}/study1/view1_frontal.jpg"
        _jpg(root / rel, i)
        labels = {f: rng.choice(["1.0", "0.0", "0.0", "-1.0", ""]) for f in FINDINGS[1:]}
        labels["No Finding"] = "1.0" if "1.0" not in labels.values() else ""
        rows.append({"Path": rel, "Sex": "Male", "Age": "60", "Frontal/Lateral": "Frontal", "AP/PA": "AP", **labels})
        truth[rel] = labels
    base.mkdir(parents=True, exist_ok=True)
    with open(base / "valid.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["Path", "Sex", "Age", "Frontal/Lateral", "AP/PA"] + FINDINGS)
        w.writeheader()
        w.writerows(rows)
    return truth


def write_corpus(path: Path, n: int = 40, seed: int = 4, with_objects: bool = False, sep: str = "\t") -> dict:
    rng = random.Random(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    truth = {}
    with open(path, "w", newline="") as f:
        w = csv.writer(f, delimiter=sep, lineterminator="\n")
        w.writerow(["filepath", "caption"] + (["objects"] if with_objects else []))
        for i in range(n):
            objs = scene(rng)
            fp = f"images/{i:05d}.jpg"
            truth[fp] = objs
            w.writerow([fp, caption_for(objs, rng)] + ([json.dumps(objs)] if with_objects else []))
    return truth


# ---------------------------------------------------------------- template semantics

def _template_regex(text: str) -> re.Pattern:
    """Template text -> regex with one named group per object slot ({X} or {a_X})."""
    out, pos = "", 0
    for m in re.finditer(r"\{(\w+)\}", text):
        out += re.escape(text[pos:m.start()])
        slot = m.group(1)
        if slot == "media":
            out += "(?:image|video)"
        elif slot == "a_media":
            out += "an? (?:image|video)"
        elif slot.startswith(("a_", "A_")):
            out += rf"(?:an? )?(?P<{slot[2:]}>[a-z ]+?)"
        else:
            out += rf"(?P<{slot}>[a-z ]+?)"
        pos = m.end()
    out += re.escape(text[pos:])
    return re.compile(out, re.IGNORECASE)


def mcq_caption_truth(caption: str, objects, set_name: str | None = None) -> bool:
    """Is this MCQ option true of an image holding exactly `objects`? Parses the text against the
    templates of the MCQ data file (all sets unless one is named) and applies their meaning."""
    from negbench.construct.templates import load_family
    sets = load_family("mcq")["sets"]
    for name, entries in sets.items():
        if set_name and name != set_name:
            continue
        # longest templates first so "features B, but not N" wins over "features A"
        for role, e in sorted(entries.items(), key=lambda kv: -len(kv[1]["text"])):
            m = _template_regex(e["text"]).fullmatch(caption)
            if m:
                slots = m.groupdict()
                return (all(slots[s] in objects for s in e["present"])
                        and all(slots[s] not in objects for s in e["absent"]))
    raise AssertionError(f"caption matches no template: {caption!r}")


DEFAULT_PATTERNS = [  # the paper's wording, parsed independently of the data file
    (re.compile(r"This (?:image|video) features (.+), but not (.+)\."), lambda o, a, b: a in o and b not in o),
    (re.compile(r"This (?:image|video) does not feature (.+)\."), lambda o, a: a not in o),
    (re.compile(r"This (?:image|video) features (.+) and (.+)\."), lambda o, a, b: a in o and b in o),
    (re.compile(r"This (?:image|video) features (.+)\."), lambda o, a: a in o),
]


def default_truth(caption: str, objects) -> bool:
    for pat, fn in DEFAULT_PATTERNS:
        m = pat.fullmatch(caption)
        if m:
            return fn(objects, *m.groups())
    raise AssertionError(f"not a default-template caption: {caption!r}")
