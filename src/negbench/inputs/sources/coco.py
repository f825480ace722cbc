"""COCO 2017 reader: `annotations/instances_{split}.json` (+ `captions_{split}.json`).

`src` is the COCO root (holding `annotations/` and the image folder) or an instances JSON.
Images are looked up in `images/{split}/`, `{split}/`, `images/` or the root. COCO labels all
80 categories exhaustively, so absence is verified by the annotations themselves.
"""
from __future__ import annotations

import json
from pathlib import Path

from negbench.core.errors import ConfigError
from negbench.inputs.records import AnnotatedSample
from negbench.inputs.sources import DropLog, SourceData, SourceError, find_first


def _pick_split(ann_dir: Path, split: str | None) -> str:
    if split:
        return split
    splits = sorted(p.stem[len("instances_"):] for p in ann_dir.glob("instances_*.json"))
    if not splits:
        raise ConfigError(f"no instances_*.json under {ann_dir}")
    for want in ("val2017", "val", "test", "val2014"):
        if want in splits:
            return want
    return splits[0]


def _load(path: Path, keys) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as exc:
        raise SourceError(path, None, None, f"invalid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise SourceError(path, None, None, "expected a JSON object at the top level")
    for k in keys:
        if k not in data:
            raise SourceError(path, None, k, f"missing top-level key '{k}'; found {sorted(data)}")
    return data


def _need(log: DropLog, path, section: str, i: int, rec: dict, keys) -> bool:
    for k in keys:
        if not isinstance(rec, dict) or k not in rec:
            log.bad(path, i, f"{section}.{k}", f"missing key '{k}' in {section}[{i}]", f"missing_key_{k}")
            return False
    return True


def read_coco(src, *, split: str | None = None, vocab=None, skip_invalid: bool = False,
              check_media: bool = True) -> SourceData:
    src = Path(src).expanduser()
    if src.is_file():
        inst_path = src
        split = split or src.stem.replace("instances_", "")
        root = src.parent.parent if src.parent.name == "annotations" else src.parent
    else:
        if not src.is_dir():
            raise ConfigError(f"COCO source not found: {src}")
        root = src
        ann_dir = src / "annotations" if (src / "annotations").is_dir() else src
        split = _pick_split(ann_dir, split)
        inst_path = ann_dir / f"instances_{split}.json"
        if not inst_path.is_file():
            raise ConfigError(f"{inst_path} not found; available splits: "
                              f"{sorted(p.stem[10:] for p in ann_dir.glob('instances_*.json'))}")
    cap_path = inst_path.with_name(f"captions_{split}.json")
    log = DropLog(skip_invalid)
    inst = _load(inst_path, ("images", "annotations", "categories"))

    cats: dict = {}
    for i, c in enumerate(inst["categories"]):
        if _need(log, inst_path, "categories", i, c, ("id", "name")):
            name = str(c["name"]).strip().lower()
            if vocab is not None:
                canon = vocab.canonical(name)
                if canon is None:
                    raise SourceError(inst_path, i, "categories.name",
                                      f"category {name!r} is not in the vocabulary")
                name = canon
            cats[c["id"]] = name

    images: dict = {}
    for i, im in enumerate(inst["images"]):
        if _need(log, inst_path, "images", i, im, ("id", "file_name")):
            images[im["id"]] = (i, im["file_name"])

    objects: dict = {iid: [] for iid in images}
    bad_images: set = set()
    for i, a in enumerate(inst["annotations"]):
        if not _need(log, inst_path, "annotations", i, a, ("image_id", "category_id")):
            if isinstance(a, dict) and a.get("image_id") in images:
                bad_images.add(a["image_id"])   # its labels are incomplete: absence unverifiable
            continue
        if a["image_id"] not in images:
            log.bad(inst_path, i, "annotations.image_id", f"image id {a['image_id']!r} not in 'images'",
                    "annotation_unknown_image")
            continue
        if a["category_id"] not in cats:
            log.bad(inst_path, i, "annotations.category_id",
                    f"unknown category id {a['category_id']!r}; known ids {sorted(cats)[:10]}...",
                    "unknown_category_id")
            bad_images.add(a["image_id"])
            continue
        name = cats[a["category_id"]]
        if name not in objects[a["image_id"]]:
            objects[a["image_id"]].append(name)

    captions: dict = {iid: [] for iid in images}
    if cap_path.is_file():
        caps = _load(cap_path, ("annotations",))
        for i, a in enumerate(caps["annotations"]):
            if not _need(log, cap_path, "annotations", i, a, ("image_id", "caption")):
                continue
            if a["image_id"] not in images:
                log.bad(cap_path, i, "annotations.image_id", f"image id {a['image_id']!r} not in the instances file",
                        "caption_unknown_image")
                continue
            text = " ".join(str(a["caption"]).split())
            if text:
                captions[a["image_id"]].append(text)

    image_dir = find_first([root / "images" / split, root / split, root / "images", root])
    samples = []
    for iid in sorted(images, key=lambda x: (str(type(x)), x)):
        row, fname = images[iid]
        if iid in bad_images:
            log.count("incomplete_annotations")
            continue
        path = image_dir / fname
        if check_media and not path.is_file():
            log.bad(inst_path, row, "images.file_name", f"image file not found: {path}", "missing_media")
            continue
        samples.append(AnnotatedSample(
            sample_id=str(iid), media=str(path.relative_to(root)), objects=tuple(sorted(objects[iid])),
            captions=tuple(captions[iid]), split=split, source="coco"))
    names = sorted(set(cats.values()))
    files = [str(inst_path)] + ([str(cap_path)] if cap_path.is_file() else [])
    return SourceData("coco", "COCO", root, split, samples, names, "image", log.drops, log.dropped, files, prefix=f"COCO_{split}")
