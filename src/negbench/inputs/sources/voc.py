"""Pascal VOC reader: `Annotations/*.xml`, `JPEGImages/`, `ImageSets/Main/{split}.txt`.

`src` is the VOC year folder (e.g. VOCdevkit/VOC2007) or a VOCdevkit holding exactly one.
VOC's raw labels map to readable names ("diningtable" -> "dining table"); other label names
(NegWorld writes its own categories in VOC format) are kept as written, or mapped through
`vocab` when one is given (then unknown names are an error).
"""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

from negbench.core.errors import ConfigError
from negbench.inputs.records import AnnotatedSample
from negbench.inputs.sources import DropLog, SourceData
from negbench.inputs.vocab import VOC20_DISPLAY


def _voc_root(src: Path) -> Path:
    if (src / "Annotations").is_dir():
        return src
    kids = sorted(p for p in src.glob("VOC*") if (p / "Annotations").is_dir())
    if len(kids) == 1:
        return kids[0]
    raise ConfigError(f"{src} is not a VOC folder (needs Annotations/, JPEGImages/, ImageSets/Main/)"
                      + (f"; found several: {[k.name for k in kids]}" if kids else ""))


def _split_ids(root: Path, split: str | None) -> tuple[Path, str]:
    main = root / "ImageSets" / "Main"
    if split is None:
        split = next((s for s in ("test", "val", "trainval", "train") if (main / f"{s}.txt").is_file()), None)
        if split is None:
            raise ConfigError(f"no split file under {main} (test.txt, val.txt, ...)")
    split_file = main / f"{split}.txt"
    if not split_file.is_file():
        raise ConfigError(f"split file not found: {split_file}; available: "
                          f"{sorted(p.stem for p in main.glob('*.txt') if '_' not in p.stem)}")
    return split_file, split


def _object_names(tree, xml_path: Path, vocab, log: DropLog) -> list[str] | None:
    """Readable, de-duplicated object names of one annotation; None when one is bad."""
    names: list[str] = []
    for k, obj in enumerate(tree.findall("object")):
        raw = (obj.findtext("name") or "").strip().lower()
        if not raw:
            log.bad(xml_path, k, "object.name", "object without a <name>", "missing_key_name")
            return None
        name = VOC20_DISPLAY.get(raw, raw)
        if vocab is not None:
            canon = vocab.canonical(raw) or vocab.canonical(name)
            if canon is None:
                log.bad(xml_path, k, "object.name", f"unknown category {raw!r}: not in the vocabulary",
                        "unknown_category")
                return None
            name = canon
        if name not in names:
            names.append(name)
    return names


def _read_annotation(root: Path, split_file: Path, row: int, img_id: str, vocab, log: DropLog):
    """-> (image path, names) or None (dropped, reason logged)."""
    xml_path = root / "Annotations" / f"{img_id}.xml"
    if not xml_path.is_file():
        log.bad(split_file, row, "id", f"annotation file not found: {xml_path}", "missing_annotation")
        return None
    try:
        tree = ET.parse(xml_path).getroot()
    except ET.ParseError as exc:
        log.bad(xml_path, None, None, f"invalid XML: {exc}", "invalid_xml")
        return None
    fname = (tree.findtext("filename") or f"{img_id}.jpg").strip()
    if Path(fname).is_absolute() or ".." in Path(fname).parts or not fname:
        log.bad(xml_path, None, "filename", f"filename must be relative to JPEGImages/, got {fname!r}",
                "bad_file_name")
        return None
    names = _object_names(tree, xml_path, vocab, log)
    return None if names is None else (root / "JPEGImages" / fname, names)


def read_voc(src, *, split: str | None = None, vocab=None, skip_invalid: bool = False,
             check_media: bool = True) -> SourceData:
    root = _voc_root(Path(src).expanduser())
    split_file, split = _split_ids(root, split)
    log = DropLog(skip_invalid)
    ids = [line.split()[0] for line in split_file.read_text(encoding="utf-8", errors="replace").splitlines()
           if line.strip()]
    samples, seen, used = [], set(), set()
    for row, img_id in enumerate(ids, start=1):
        if img_id in used:
            log.bad(split_file, row, "id", f"duplicate image id {img_id!r}", "duplicate_image_id")
            continue
        used.add(img_id)
        got = _read_annotation(root, split_file, row, img_id, vocab, log)
        if got is None:
            continue
        path, names = got
        if check_media and not path.is_file():
            log.bad(root / "Annotations" / f"{img_id}.xml", None, "filename", f"image file not found: {path}",
                    "missing_media")
            continue
        seen.update(names)
        samples.append(AnnotatedSample(img_id, str(path.relative_to(root)), tuple(sorted(names)), (),
                                       split, "voc"))
    return _voc_data(root, split, split_file, samples, seen, vocab, log)


def _voc_data(root, split, split_file, samples, seen, vocab, log) -> SourceData:
    if vocab is not None:
        cats = list(vocab.names)
    elif seen <= set(VOC20_DISPLAY.values()):
        cats = sorted(VOC20_DISPLAY.values())
    else:
        cats = sorted(seen)
    group = root.name if re.fullmatch(r"VOC\d{4}", root.name) else "VOC"
    return SourceData("voc", group, root, split, samples, cats, "image", log.drops, log.dropped,
                      [str(split_file)], prefix=group)
