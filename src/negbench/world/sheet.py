"""Contact sheets: a grid of world items with boxes and captions, for a person to look at.

Reads only the written files (COCO JSON, corpus TSV, MSR-VTT JSON, CheXpert CSV), so a
sheet also shows whether what was *written* is right, not just what was drawn.
"""
from __future__ import annotations

import csv
import json
import textwrap
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from negbench.core.errors import ConfigError

DATASETS = ("coco", "corpus", "msrvtt", "chexpert")
_PALETTE = [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
            (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128), (220, 190, 255)]


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has only the bitmap font
        return ImageFont.load_default()


def _coco_cells(root: Path, split: str, n: int):
    inst = json.loads((root / "coco" / "annotations" / f"instances_{split}.json").read_text())
    caps = json.loads((root / "coco" / "annotations" / f"captions_{split}.json").read_text())
    names = {c["id"]: c["name"] for c in inst["categories"]}
    by_img: dict[int, list] = {}
    for a in inst["annotations"]:
        by_img.setdefault(a["image_id"], []).append((names[a["category_id"]], a["bbox"]))
    cap: dict[int, str] = {}
    for a in caps["annotations"]:
        cap.setdefault(a["image_id"], a["caption"])
    for im in inst["images"][:n]:
        img = Image.open(root / "coco" / "images" / split / im["file_name"]).convert("RGB")
        yield img, by_img.get(im["id"], []), cap.get(im["id"], "")


def _corpus_cells(root: Path, n: int):
    with open(root / "corpus" / "corpus.tsv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))[:n]
    for r in rows:
        yield Image.open(root / "corpus" / r["filepath"]).convert("RGB"), [], r["caption"]


def _msrvtt_cells(root: Path, n: int):
    import av
    import numpy as np

    info = json.loads((root / "msrvtt" / "videodatainfo.json").read_text())
    objects = json.loads((root / "msrvtt" / "objects.json").read_text())
    caps: dict[str, str] = {}
    for s in info["sentences"]:
        caps.setdefault(s["video_id"], s["caption"])
    for v in info["videos"][:n]:
        with av.open(str(root / "msrvtt" / "videos" / f"{v['video_id']}.mp4")) as c:
            frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
        strip = np.concatenate([frames[0], frames[len(frames) // 2], frames[-1]], axis=1)
        text = f"{caps.get(v['video_id'], '')} [{', '.join(objects.get(v['video_id'], []))}]"
        yield Image.fromarray(strip), [], text


def _chexpert_cells(root: Path, n: int):
    base = root / "chexpert"
    with open(base / "CheXpert-v1.0-small" / "valid.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))[:n]
    for r in rows:
        pos = [k for k, v in r.items() if v == "1.0"]
        yield Image.open(base / r["Path"]).convert("RGB"), [], "; ".join(pos)


def contact_sheet(world_dir: Path | str, out: Path | str | None = None, n: int = 16, dataset: str = "coco",
                  split: str = "test", cell: int = 192, columns: int = 4) -> Path:
    """Write a PNG grid of the first `n` items of `dataset` and return its path."""
    root = Path(world_dir)
    if dataset not in DATASETS:
        raise ConfigError(f"unknown dataset {dataset!r}; available: {', '.join(DATASETS)}")
    if not (root / "world.json").exists():
        raise ConfigError(f"{root} is not a finished NegWorld (no world.json); run `negbench world generate` first")
    if dataset == "coco":
        cells = list(_coco_cells(root, split, n))
    elif dataset == "corpus":
        cells = list(_corpus_cells(root, n))
    elif dataset == "msrvtt":
        cells = list(_msrvtt_cells(root, n))
    else:
        cells = list(_chexpert_cells(root, n))
    if not cells:
        raise ConfigError(f"{root}: no {dataset} items to show")
    font = _font(max(10, cell // 14))
    first_w, first_h = cells[0][0].size
    cw = cell * first_w // first_h
    text_h = cell // 3
    columns = max(1, min(columns, len(cells), max(1, 1600 // cw)))
    rows = (len(cells) + columns - 1) // columns
    sheet = Image.new("RGB", (columns * (cw + 8) + 8, rows * (cell + text_h + 8) + 8), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    chars = max(12, int(cw / (font.size * 0.55))) if hasattr(font, "size") else max(12, cw // 6)
    for k, (img, boxes, text) in enumerate(cells):
        x0 = 8 + (k % columns) * (cw + 8)
        y0 = 8 + (k // columns) * (cell + text_h + 8)
        s = cell / img.size[1]
        sheet.paste(img.resize((cw, cell), Image.Resampling.NEAREST), (x0, y0))
        names = sorted({b[0] for b in boxes})
        for name, (bx, by, bw, bh) in boxes:
            col = _PALETTE[names.index(name) % len(_PALETTE)]
            draw.rectangle([x0 + bx * s, y0 + by * s, x0 + (bx + bw) * s, y0 + (by + bh) * s], outline=col, width=2)
            draw.text((x0 + bx * s + 2, y0 + by * s + 1), name, fill=col, font=font,
                      stroke_width=1, stroke_fill=(0, 0, 0))
        draw.multiline_text((x0, y0 + cell + 2), "\n".join(textwrap.wrap(text, chars)[:3]), fill=(0, 0, 0),
                            font=font, spacing=1)
    out = Path(out) if out is not None else root / f"contact_sheet_{dataset}.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp.png")
    sheet.save(tmp, format="PNG")
    tmp.replace(out)
    return out
