"""NegWorld scenes written as COCO 2017 (instances + captions) and Pascal VOC.

The files follow the real layouts exactly, so the COCO and VOC readers read them with no
world-specific branch.  Each image is encoded once and written to both trees.
"""
from __future__ import annotations

from pathlib import Path
from xml.sax.saxutils import escape

from negbench.world._util import item_rng, jpeg_bytes, write_file
from negbench.world.captions import image_captions
from negbench.world.categories import CATEGORIES
from negbench.world.scenes import render_scene

COCO_SPLITS = ("train", "val", "test")
# Image ids are split base + index + 1, so an image's id (and file name) does not move when
# another split's size changes.
_ID_BASE = {"train": 0, "val": 10_000_000, "test": 20_000_000}
CAPTIONS_PER_IMAGE = 5
DIFFICULT_OCCLUSION = 0.5   # VOC "difficult": more than half of the object hidden


def image_id(split: str, index: int) -> int:
    return _ID_BASE[split] + index + 1


def file_name(img_id: int) -> str:
    return f"{img_id:012d}.jpg"


def voc_xml(stem: str, res: int, objects) -> str:
    parts = [
        "<annotation>", "\t<folder>VOC</folder>", f"\t<filename>{stem}.jpg</filename>",
        "\t<source>", "\t\t<database>NegWorld</database>", "\t\t<annotation>NegWorld</annotation>",
        "\t</source>",
        "\t<size>", f"\t\t<width>{res}</width>", f"\t\t<height>{res}</height>", "\t\t<depth>3</depth>",
        "\t</size>", "\t<segmented>0</segmented>",
    ]
    for o in objects:
        x, y, w, h = o.bbox
        parts += [
            "\t<object>", f"\t\t<name>{escape(o.category.name)}</name>", "\t\t<pose>Unspecified</pose>",
            "\t\t<truncated>0</truncated>",
            f"\t\t<difficult>{int(o.occluded > DIFFICULT_OCCLUSION)}</difficult>",
            "\t\t<bndbox>",  # VOC boxes are 1-based and inclusive
            f"\t\t\t<xmin>{x + 1}</xmin>", f"\t\t\t<ymin>{y + 1}</ymin>",
            f"\t\t\t<xmax>{x + w}</xmax>", f"\t\t\t<ymax>{y + h}</ymax>",
            "\t\t</bndbox>", "\t</object>",
        ]
    parts.append("</annotation>")
    return "\n".join(parts) + "\n"


def make_images(out: Path, seed: int, split: str, start: int, stop: int, res: int) -> list[dict]:
    """Worker job: render images [start, stop) of one split, write JPEG + VOC XML, return records."""
    out = Path(out)
    coco_dir = out / "coco" / "images" / split
    voc_img, voc_ann = out / "VOC" / "JPEGImages", out / "VOC" / "Annotations"
    records = []
    for i in range(start, stop):
        rng = item_rng(seed, f"coco/{split}", i)
        img, scene, objects = render_scene(res, rng)
        captions = image_captions(scene, objects, res, rng, CAPTIONS_PER_IMAGE)
        iid = image_id(split, i)
        name = file_name(iid)
        data = jpeg_bytes(img)
        write_file(coco_dir / name, data)
        write_file(voc_img / name, data)
        write_file(voc_ann / (name[:-4] + ".xml"), voc_xml(name[:-4], res, objects).encode())
        records.append({"id": iid, "file_name": name, "scene": scene, "captions": captions,
                        "objects": [o.record() for o in objects]})
    return records


def coco_categories() -> list[dict]:
    return [{"id": c.id, "name": c.name, "supercategory": c.supercategory} for c in CATEGORIES]


def coco_documents(split: str, records: list[dict], res: int, seed: int, version: str) -> tuple[dict, dict]:
    """(instances, captions) documents in COCO 2017 layout for one split."""
    info = {"description": f"NegWorld {split} (procedural, seed {seed})", "version": version, "year": 2025,
            "contributor": "negbench", "url": "", "date_created": "2025-01-01"}
    licenses = [{"id": 1, "name": "CC0 1.0", "url": "https://creativecommons.org/publicdomain/zero/1.0/"}]
    images, anns, caps = [], [], []
    for r in records:
        images.append({"id": r["id"], "file_name": r["file_name"], "width": res, "height": res, "license": 1,
                       "coco_url": "", "flickr_url": "", "date_captured": ""})
        for k, o in enumerate(r["objects"]):
            x, y, w, h = o["bbox"]
            anns.append({"id": r["id"] * 10 + k, "image_id": r["id"], "category_id": o["category_id"],
                         "bbox": [float(x), float(y), float(w), float(h)], "area": float(o["area"]),
                         "iscrowd": 0,
                         "segmentation": [[float(x), float(y), float(x + w), float(y), float(x + w),
                                           float(y + h), float(x), float(y + h)]]})
        for k, c in enumerate(r["captions"]):
            caps.append({"id": r["id"] * 10 + k, "image_id": r["id"], "caption": c})
    instances = {"info": info, "licenses": licenses, "images": images, "annotations": anns,
                 "categories": coco_categories()}
    captions = {"info": info, "licenses": licenses, "images": images, "annotations": caps}
    return instances, captions
