"""Galleries of MCQ questions per dataset: the before model's errors, the questions fine-tuning
fixed, and the ones still wrong, with each question's image at a size a person can see."""
from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Sequence

from negbench.analysis.report.load import ReportData, datasets, headline_tasks

THUMB_PX = 224   # shown at this size; small images (NegWorld's 64 px) are enlarged without smoothing


@dataclass
class GalleryItem:
    task: str
    row: int
    media: str
    options: list[str]
    option_types: list[str]
    correct: int
    chosen: int
    question_type: str
    chosen_after: int | None = None
    thumbnail_png: bytes | None = None


@dataclass
class Gallery:
    dataset: str
    task: str
    kind: str           # "errors" | "fixed" | "still wrong"
    items: list[GalleryItem]
    error_type: str | None = None   # "errors": the option type the model picked most often


def thumbnail(path: str, size: int = THUMB_PX) -> bytes | None:
    try:
        from PIL import Image

        with Image.open(path) as im:
            im = im.convert("RGB")
            scale = size / max(im.size)
            resample = Image.NEAREST if scale > 1 else Image.LANCZOS
            im = im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))), resample)
            buf = io.BytesIO()
            im.save(buf, format="PNG")
            return buf.getvalue()
    except Exception:  # noqa: BLE001 - videos and unreadable media get no preview, not a broken report
        return None


def _option_types(rec: dict, options: Sequence[str]) -> list[str]:
    from negbench.inputs.formats import infer_option_type

    types = rec.get("caption_types")
    if types is not None and len(list(types)) == len(options):
        return [str(t) for t in types]
    return [infer_option_type(o) for o in options]


def _item(task: str, rec: dict, after_choice: int | None) -> GalleryItem:
    ncap = sum(1 for k in rec if str(k).startswith("caption_") and str(k)[8:].isdigit())
    options = [str(rec[f"caption_{i}"]) for i in range(ncap)]
    return GalleryItem(task, int(rec["row"]), str(rec.get("media", "")), options, _option_types(rec, options),
                       int(rec["correct_answer"]), int(rec["predicted"]), str(rec.get("template") or ""),
                       after_choice, thumbnail(str(rec.get("media_path", ""))))


def dataset_galleries(data: ReportData, group: str, n: int = 4) -> list[Gallery]:
    """The three galleries of one dataset's main 4-way MCQ (only 'errors' without an after model)."""
    task = headline_tasks(data, group)["mcq"]
    model = data.before or data.models[0]
    rb = data.get(model, task) if task else None
    db = data.items(rb) if rb is not None else None
    if db is None or not len(db):
        return []
    ra = data.get(data.after, task) if data.after else None
    da = data.items(ra) if ra is not None else None
    after = dict(zip(da["row"].astype(int), da["predicted"].astype(int))) if da is not None else {}
    recs = db.sort_values("row").to_dict("records")
    wrong = [r for r in recs if not bool(r["is_correct"])]
    kinds = [str(r.get("chosen_type")) for r in wrong]
    top = max(sorted(set(kinds)), key=kinds.count) if kinds else None
    picks = {"errors": [r for r in wrong if str(r.get("chosen_type")) == top]}
    if after:
        picks["fixed"] = [r for r in wrong if after.get(int(r["row"])) == int(r["correct_answer"])]
        picks["still wrong"] = [r for r in wrong if int(r["row"]) in after
                                and after[int(r["row"])] != int(r["correct_answer"])]
    out = []
    for kind, rows in picks.items():
        items = [_item(task, r, after.get(int(r["row"]))) for r in rows[:n]]
        out.append(Gallery(group, task, kind, items, top if kind == "errors" else None))
    return out


def galleries(data: ReportData, n: int = 4) -> list[Gallery]:
    """Galleries of every dataset with 4-way MCQ predictions, COCO first."""
    out = []
    for group in datasets(data.results):
        out += dataset_galleries(data, group, n)
    return out
