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
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SourceError(path, None, None, f"invalid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise SourceError(path, None, None, "expected a JSON object at the top level")
    for k in keys:
        if k not in data:
            raise SourceError(path, None, k, f"missing top-level key '{k}'; found {sorted(data)}")
        if not isinstance(data[k], list):
            raise SourceError(path, None, k, f"'{k}' must be a list, got {type(data[k]).__name__}: "
                              f"{str(data[k])[:40]}")
    return data


def _need(log: DropLog, path, section: str, i: int, rec: dict, keys) -> bool:
    for k in keys:
        if not isinstance(rec, dict) or k not in rec:
            log.bad(path, i, f"{section}.{k}", f"missing key '{k}' in {section}[{i}]", f"missing_key_{k}")
            return False
    return True


def _hashable_id(log: DropLog, path, section: str, i: int, value) -> bool:
    if isinstance(value, (int, str)) and not isinstance(value, bool):
        return True
    log.bad(path, i, f"{section}.id", f"id must be an integer or string, got {value!r}", "bad_id")
    return False


def _locate(src: Path, split: str | None) -> tuple[Path, Path, str]:
    """-> (instances JSON, COCO root, split)."""
    if src.is_file():
        root = src.parent.parent if src.parent.name == "annotations" else src.parent
        return src, root, split or src.stem.replace("instances_", "")
    if not src.is_dir():
        raise ConfigError(f"COCO source not found: {src}")
    ann_dir = src / "annotations" if (src / "annotations").is_dir() else src
    split = _pick_split(ann_dir, split)
    inst_path = ann_dir / f"instances_{split}.json"
    if not inst_path.is_file():
        raise ConfigError(f"{inst_path} not found; available splits: "
                          f"{sorted(p.stem[10:] for p in ann_dir.glob('instances_*.json'))}")
    return inst_path, src, split


def _categories(inst: dict, inst_path: Path, log: DropLog, vocab) -> dict:
    cats: dict = {}
    for i, c in enumerate(inst["categories"]):
        if not _need(log, inst_path, "categories", i, c, ("id", "name")) or \
                not _hashable_id(log, inst_path, "categories", i, c["id"]):
            continue
        name = str(c["name"]).strip().lower()
        if vocab is not None:
            canon = vocab.canonical(name)
            if canon is None:
                raise SourceError(inst_path, i, "categories.name", f"category {name!r} is not in the vocabulary")
            name = canon
        if c["id"] in cats and cats[c["id"]] != name:
            log.bad(inst_path, i, "categories.id", f"duplicate category id {c['id']!r} "
                    f"({cats[c['id']]!r} and {name!r})", "duplicate_category_id")
            continue
        cats[c["id"]] = name
    return cats


def _images(inst: dict, inst_path: Path, log: DropLog) -> tuple[dict, set]:
    """id -> (row, file_name), and the ids that cannot be trusted (duplicated)."""
    images: dict = {}
    duplicated: set = set()
    for i, im in enumerate(inst["images"]):
        if not _need(log, inst_path, "images", i, im, ("id", "file_name")) or \
                not _hashable_id(log, inst_path, "images", i, im["id"]):
            continue
        fname = im["file_name"]
        if not isinstance(fname, str) or not fname.strip() or Path(fname).is_absolute() or ".." in Path(fname).parts:
            log.bad(inst_path, i, "images.file_name", f"file_name must be a relative path inside the image "
                    f"folder, got {fname!r}", "bad_file_name")
            continue
        if im["id"] in images or im["id"] in duplicated:
            # which image the annotations of this id describe is unknowable: drop both
            log.bad(inst_path, i, "images.id", f"duplicate image id {im['id']!r} (also row "
                    f"{images.get(im['id'], ('?',))[0]})", "duplicate_image_id")
            duplicated.add(im["id"])
            images.pop(im["id"], None)
            continue
        images[im["id"]] = (i, fname)
    return images, duplicated


def _objects(inst: dict, inst_path: Path, log: DropLog, images: dict, cats: dict, skip: set) -> tuple[dict, set]:
    objects: dict = {iid: [] for iid in images}
    bad_images: set = set()
    for i, a in enumerate(inst["annotations"]):
        if not _need(log, inst_path, "annotations", i, a, ("image_id", "category_id")):
            if isinstance(a, dict) and _key_in(a.get("image_id"), images):
                bad_images.add(a["image_id"])   # its labels are incomplete: absence unverifiable
            continue
        if _key_in(a["image_id"], skip):
            continue
        if not _key_in(a["image_id"], images):
            log.bad(inst_path, i, "annotations.image_id", f"image id {a['image_id']!r} not in 'images'",
                    "annotation_unknown_image")
            continue
        if not _key_in(a["category_id"], cats):
            log.bad(inst_path, i, "annotations.category_id",
                    f"unknown category id {a['category_id']!r}; known ids {sorted(cats, key=str)[:10]}...",
                    "unknown_category_id")
            bad_images.add(a["image_id"])
            continue
        name = cats[a["category_id"]]
        if name not in objects[a["image_id"]]:
            objects[a["image_id"]].append(name)
    return objects, bad_images


def _key_in(value, mapping) -> bool:
    try:
        return value in mapping
    except TypeError:  # unhashable (a list or dict where an id belongs)
        return False


def _captions(cap_path: Path, log: DropLog, images: dict, skip: set) -> dict:
    captions: dict = {iid: [] for iid in images}
    if not cap_path.is_file():
        return captions
    caps = _load(cap_path, ("annotations",))
    for i, a in enumerate(caps["annotations"]):
        if not _need(log, cap_path, "annotations", i, a, ("image_id", "caption")) or _key_in(a["image_id"], skip):
            continue
        if not _key_in(a["image_id"], images):
            log.bad(cap_path, i, "annotations.image_id", f"image id {a['image_id']!r} not in the instances file",
                    "caption_unknown_image")
            continue
        text = " ".join(str(a["caption"]).split())
        if text:
            captions[a["image_id"]].append(text)
    return captions


def read_coco(src, *, split: str | None = None, vocab=None, skip_invalid: bool = False,
              check_media: bool = True) -> SourceData:
    inst_path, root, split = _locate(Path(src).expanduser(), split)
    cap_path = inst_path.with_name(f"captions_{split}.json")
    log = DropLog(skip_invalid)
    inst = _load(inst_path, ("images", "annotations", "categories"))
    cats = _categories(inst, inst_path, log, vocab)
    images, duplicated = _images(inst, inst_path, log)
    objects, bad_images = _objects(inst, inst_path, log, images, cats, duplicated)
    captions = _captions(cap_path, log, images, duplicated)
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
    return SourceData("coco", "COCO", root, split, samples, names, "image", log.drops, log.dropped, files,
                      prefix=f"COCO_{split}")
