"""CheXpert-style chest "x-rays": grayscale frontal films with drawn findings.

The CSVs use CheXpert's exact columns and conventions: 1.0 positive, 0.0 negative, -1.0
uncertain (drawn faintly), blank not mentioned; "No Finding" is 1.0 when no pathology is
positive or uncertain (Support Devices do not count).  valid.csv, like the real one, has
only 0.0 / 1.0.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from negbench.world._util import item_rng, jpeg_bytes, write_file

ROOT = "CheXpert-v1.0-small"
LABELS = ("No Finding", "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Opacity", "Lung Lesion", "Edema",
          "Consolidation", "Pneumonia", "Atelectasis", "Pneumothorax", "Pleural Effusion", "Pleural Other",
          "Fracture", "Support Devices")
COLUMNS = ("Path", "Sex", "Age", "Frontal/Lateral", "AP/PA") + LABELS
# prevalence of each drawn finding (Pneumonia follows Consolidation, see below)
PREVALENCE = {"Enlarged Cardiomediastinum": 0.07, "Cardiomegaly": 0.15, "Lung Opacity": 0.22,
              "Lung Lesion": 0.06, "Edema": 0.14, "Consolidation": 0.1, "Atelectasis": 0.15,
              "Pneumothorax": 0.1, "Pleural Effusion": 0.22, "Pleural Other": 0.03, "Fracture": 0.04,
              "Support Devices": 0.3}
DRAWN_FINDINGS = tuple(PREVALENCE) + ("Pneumonia",)
VALID_FRACTION = 0.3
VALID_PATIENT_BASE = 64541  # real CheXpert numbers its validation patients from here


def xray_split_counts(n: int) -> dict[str, int]:
    n_valid = int(round(n * VALID_FRACTION))
    return {"train": n - n_valid, "valid": n_valid}


def xray_path(split: str, index: int) -> str:
    pid = (VALID_PATIENT_BASE if split == "valid" else 1) + index
    return f"{ROOT}/{split}/patient{pid:05d}/study1/view1_frontal.jpg"


def sample_labels(rng: np.random.Generator, split: str) -> dict[str, float | None]:
    """CheXpert-style labels; values 1.0 / 0.0 / -1.0 / None (blank)."""
    labels: dict[str, float | None] = {}
    for name, p in PREVALENCE.items():
        u = rng.random()
        if u < p:
            uncertain = split == "train" and rng.random() < 0.15
            labels[name] = -1.0 if uncertain else 1.0
        elif split == "valid" or rng.random() < 0.3:
            labels[name] = 0.0
        else:
            labels[name] = None
    cons = labels["Consolidation"]
    if cons in (1.0, -1.0) and rng.random() < 0.6:
        labels["Pneumonia"] = cons if split == "train" and rng.random() < 0.7 else 1.0
        if split == "train" and rng.random() < 0.3:
            labels["Pneumonia"] = -1.0
    else:
        labels["Pneumonia"] = 0.0 if split == "valid" or rng.random() < 0.3 else None
    pathology = [v for k, v in labels.items() if k != "Support Devices" and v in (1.0, -1.0)]
    labels["No Finding"] = 1.0 if not pathology else (0.0 if split == "valid" else None)
    return labels


def render_xray(res: int, labels: dict, rng: np.random.Generator) -> Image.Image:
    """Draw a frontal chest film at 2x, blur, downsample; findings scale with certainty.

    The drawing steps below consume `rng` in a fixed order, so an x-ray is a pure function of
    (res, labels, rng state)."""
    S = res * 2
    img = Image.new("L", (S, S), 12)
    d = ImageDraw.Draw(img)
    u = lambda *v: [x * S for x in v]  # noqa: E731
    strength = {k: (1.0 if v == 1.0 else 0.5 if v == -1.0 else 0.0) for k, v in labels.items()}
    lungs, lung_shade = _draw_anatomy(d, u, S, strength, rng)
    side = int(rng.integers(2))
    _draw_lung_findings(d, u, S, strength, rng, lungs, lung_shade, side)
    _draw_other_findings(d, u, S, strength, rng, lungs, lung_shade, side)
    img = img.filter(ImageFilter.GaussianBlur(radius=S / 100))
    if strength["Support Devices"]:  # tubes and a pacemaker: radio-opaque, so drawn after the blur
        _draw_devices(ImageDraw.Draw(img), u, S, rng)
    img = img.resize((res, res), Image.Resampling.BOX)
    arr = np.asarray(img, dtype=np.float32) + rng.normal(0, 4.0, size=(res, res))
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "L")


def _draw_anatomy(d, u, S: int, strength: dict, rng) -> tuple[list, int]:
    """Body, lungs, ribs, mediastinum, clavicles and heart; -> (lung boxes, lung shade)."""
    j = lambda s=0.02: float(rng.normal(0, s))  # noqa: E731
    # body, lungs (patient's right lung is on the image's left), spine, clavicles
    d.ellipse(u(0.06 + j(), 0.02, 0.94 + j(), 1.12), fill=int(120 + rng.normal(0, 10)))
    lungs = [(0.14 + j(), 0.14 + j(), 0.47, 0.84 + j()), (0.53, 0.14 + j(), 0.86 + j(), 0.86 + j())]
    lung_shade = int(45 + rng.normal(0, 8))
    for box in lungs:
        d.ellipse(u(*box), fill=lung_shade)
    for k in range(6):  # ribs
        y = 0.22 + 0.1 * k
        d.arc(u(0.1, y - 0.08, 0.5, y + 0.1), 200, 340, fill=lung_shade + 28, width=max(1, S // 64))
        d.arc(u(0.5, y - 0.08, 0.9, y + 0.1), 200, 340, fill=lung_shade + 28, width=max(1, S // 64))
    mw = 0.09 + 0.07 * strength["Enlarged Cardiomediastinum"]
    d.rectangle(u(0.5 - mw / 2, 0.0, 0.5 + mw / 2, 1.0), fill=175)
    d.line(u(0.18, 0.13, 0.46, 0.17), fill=190, width=max(1, S // 40))
    d.line(u(0.82, 0.13, 0.54, 0.17), fill=190, width=max(1, S // 40))
    hw = 0.17 + 0.12 * strength["Cardiomegaly"] + j(0.01)  # heart, bulging to the image's right
    d.ellipse(u(0.47 - hw * 0.4, 0.56, 0.47 + hw, 0.85), fill=165)
    return lungs, lung_shade


def _draw_lung_findings(d, u, S: int, strength: dict, rng, lungs: list, lung_shade: int, side: int) -> None:
    lx0, ly0, lx1, ly1 = lungs[side]
    lw, lh = lx1 - lx0, ly1 - ly0
    if strength["Pleural Effusion"]:  # white fluid filling the lung base, upper edge a meniscus
        for bx0, by0, bx1, by1 in (lungs if rng.random() < 0.4 else [lungs[side]]):
            lvl = by1 - (0.1 + 0.12 * strength["Pleural Effusion"] * rng.uniform(0.7, 1.0))
            d.chord(u(bx0 - 0.02, lvl - 0.05, bx1 + 0.02, lvl + 0.05), 0, 180, fill=140)
            d.rectangle(u(bx0, lvl, bx1, by1), fill=140)
    if strength["Lung Opacity"]:
        cx, cy = lx0 + lw * rng.uniform(0.3, 0.7), ly0 + lh * rng.uniform(0.3, 0.6)
        r = 0.09 * (0.6 + 0.4 * strength["Lung Opacity"])
        d.ellipse(u(cx - r, cy - r, cx + r, cy + r * 1.3), fill=lung_shade + int(70 * strength["Lung Opacity"]))
    if strength["Consolidation"]:  # a dense lobe-shaped patch in the other lung
        bx0, by0, bx1, by1 = lungs[1 - side]
        d.pieslice(u(bx0, by0 + 0.25, bx1, by1 + 0.15), 180, 330,
                   fill=lung_shade + int(95 * strength["Consolidation"]))
    if strength["Edema"]:  # bilateral perihilar haze
        for cx in (0.36, 0.64):
            d.ellipse(u(cx - 0.1, 0.35, cx + 0.1, 0.62), fill=lung_shade + int(45 * strength["Edema"]))
    if strength["Atelectasis"]:  # plate-like band at a lung base
        y = ly0 + lh * 0.72
        d.line(u(lx0 + 0.04, y, lx1 - 0.04, y - 0.03), fill=lung_shade + int(90 * strength["Atelectasis"]),
               width=max(1, S // 28))


def _draw_other_findings(d, u, S: int, strength: dict, rng, lungs: list, lung_shade: int, side: int) -> None:
    if strength["Lung Lesion"]:  # a small, sharp round nodule
        bx0, by0, bx1, by1 = lungs[int(rng.integers(2))]
        cx, cy = bx0 + (bx1 - bx0) * rng.uniform(0.3, 0.7), by0 + (by1 - by0) * rng.uniform(0.2, 0.5)
        r = 0.035
        d.ellipse(u(cx - r, cy - r, cx + r, cy + r), fill=200)
    if strength["Pneumothorax"]:  # black rim without markings at the lung's outer edge + pleural line
        bx0, by0, bx1, by1 = lungs[side]
        box = (bx0 - 0.01, by0 - 0.01, bx1 + 0.01, by1)
        start, end = (120, 260) if side == 0 else (280, 420)
        d.pieslice(u(*box), start, end, fill=int(lung_shade * (1 - 0.8 * strength["Pneumothorax"])))
        d.arc(u(bx0 + 0.05, by0 + 0.05, bx1 - 0.05, by1 - 0.04), start, end, fill=150, width=max(1, S // 64))
    if strength["Pleural Other"]:  # pleural thickening along the chest wall
        bx0, by0, bx1, by1 = lungs[side]
        d.arc(u(bx0, by0, bx1, by1), 120 if side == 0 else 300, 240 if side == 0 else 420, fill=170,
              width=max(1, S // 24))
    if strength["Fracture"]:  # a rib with a step in it
        y = 0.3 + 0.1 * int(rng.integers(4))
        x0 = 0.15 if side == 0 else 0.6
        d.line(u(x0, y, x0 + 0.11, y - 0.02), fill=235, width=max(1, S // 40))
        d.line(u(x0 + 0.14, y + 0.03, x0 + 0.25, y + 0.01), fill=235, width=max(1, S // 40))


def _draw_devices(d, u, S: int, rng) -> None:
    d.line(u(0.52, 0.0, 0.52, 0.5, 0.47, 0.62), fill=250, width=max(1, S // 48), joint="curve")
    px = 0.22 if rng.random() < 0.5 else 0.7
    d.rectangle(u(px, 0.08, px + 0.09, 0.15), fill=252)
    d.line(u(px + 0.045, 0.15, 0.55, 0.55), fill=240, width=max(1, S // 80))


def make_xrays(out: Path, seed: int, split: str, start: int, stop: int, res: int) -> list[dict]:
    """Worker job: x-rays [start, stop) of one split; return their CSV rows."""
    root = Path(out) / "chexpert"
    rows = []
    for i in range(start, stop):
        rng = item_rng(seed, f"chexpert/{split}", i)
        labels = sample_labels(rng, split)
        img = render_xray(res, labels, rng)
        path = xray_path(split, i)
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        write_file(root / path, jpeg_bytes(img))
        row = {"Path": path, "Sex": "Male" if rng.random() < 0.55 else "Female",
               "Age": int(rng.integers(18, 91)), "Frontal/Lateral": "Frontal",
               "AP/PA": "AP" if rng.random() < 0.6 else "PA"}
        row.update(labels)
        rows.append(row)
    return rows


def chexpert_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS)
    for r in rows:
        w.writerow([r[c] if c in COLUMNS[:5] else ("" if r[c] is None else f"{r[c]:.1f}") for c in COLUMNS])
    return buf.getvalue()
