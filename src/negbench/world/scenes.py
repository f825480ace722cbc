"""Scenes: a background type, scene-dependent object priors, and non-hiding layouts.

Priors make co-occurrence realistic (boats and fish by the water, cups in a room), so
"plausible but absent" objects exist for hard-negative mining, as in real photos.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from negbench.world.categories import BY_NAME, CATEGORIES, Category, render_object

SCENES = ("grass", "water", "room", "sky", "plain")
SCENE_PROBS = np.array([0.3, 0.2, 0.25, 0.1, 0.15])
# Alt-text phrases per scene (a fixed small set, like web captions).
SCENE_PHRASES = {
    "grass": ("on the grass", "in a park", "in a field"),
    "water": ("by the water", "by the lake", "at the sea"),
    "room": ("in a room", "indoors", "on a table"),
    "sky": ("in the sky", "up in the sky"),
    "plain": ("on a plain background", "on a white background", "isolated"),
}
_LIKELY = {
    "grass": ("tree", "dog", "cat", "flower", "mushroom", "ball", "house", "car", "apple", "bird", "sun",
              "cloud", "kite", "umbrella", "chair"),
    "water": ("boat", "fish", "bird", "cloud", "sun", "moon", "umbrella", "ball", "house", "tree"),
    "room": ("cup", "bottle", "clock", "chair", "key", "bell", "apple", "cat", "dog", "ball", "flower",
             "umbrella"),
    "sky": ("bird", "kite", "sun", "moon", "star", "cloud"),
    "plain": tuple(c.name for c in CATEGORIES),
}
# Out-of-place objects still appear sometimes (a cup on the grass), but rarely.
_UNLIKELY_WEIGHT = 0.03
N_OBJECTS_PROBS = np.array([0.28, 0.3, 0.22, 0.12, 0.08])  # 1..5 objects


def scene_prior(scene: str) -> np.ndarray:
    likely = set(_LIKELY[scene])
    w = np.array([1.0 if c.name in likely else _UNLIKELY_WEIGHT for c in CATEGORIES])
    return w / w.sum()


_PRIORS = {s: scene_prior(s) for s in SCENES}


@dataclass
class PlacedObject:
    category: Category
    colour: str
    bbox: tuple[int, int, int, int]   # x, y, w, h in pixels
    area: int                          # pixels of the object still visible (after occlusion)
    tile: Image.Image | None = None
    own_area: int = 0                  # pixels of the object's own mask

    @property
    def occluded(self) -> float:
        return 1.0 - self.area / max(1, self.own_area)

    def record(self) -> dict:
        return {"category": self.category.name, "category_id": self.category.id, "colour": self.colour,
                "bbox": list(self.bbox), "area": self.area}


def background(scene: str, res: int, rng: np.random.Generator) -> np.ndarray:
    """An HxWx3 float array for the scene, with mild texture noise."""
    y = np.linspace(0.0, 1.0, res)[:, None, None]
    img = np.empty((res, res, 3), dtype=np.float32)
    j = rng.normal(0, 8, size=3)
    if scene == "sky":
        top, bot = np.array([70, 130, 220]) + j, np.array([175, 210, 245]) + j
        img[:] = top + (bot - top) * y
    elif scene in ("grass", "water"):
        h = int(res * rng.uniform(0.3, 0.45))
        sky_t, sky_b = np.array([120, 170, 235]) + j, np.array([190, 220, 245]) + j
        img[:h] = sky_t + (sky_b - sky_t) * y[:h] / max(y[h], 1e-6)
        if scene == "grass":
            g_t, g_b = np.array([120, 190, 70]) + j, np.array([80, 150, 45]) + j
        else:
            g_t, g_b = np.array([50, 120, 190]) + j, np.array([25, 75, 150]) + j
        img[h:] = g_t + (g_b - g_t) * (y[h:] - y[h]) / max(1 - y[h], 1e-6)
        if scene == "water":  # light wave stripes
            xs = np.arange(res)[None, :]
            ys = np.arange(h, res)[:, None]
            waves = np.sin(xs * 0.5 * 64 / res + ys * 1.3 * 64 / res + rng.uniform(0, 6.28)) > 0.85
            img[h:][waves] += 35
    elif scene == "room":
        h = int(res * rng.uniform(0.6, 0.75))
        wall = np.array([225, 205, 170]) + rng.normal(0, 15, size=3)
        floor = np.array([150, 105, 70]) + j
        img[:h] = wall
        img[h:] = floor
        img[h:h + max(1, res // 64)] = floor * 0.7
    else:
        img[:] = np.array([235, 235, 232]) + rng.normal(0, 10, size=3)
    img += rng.standard_normal(size=img.shape, dtype=np.float32) * 5.0
    return img


def _object_size(res: int, rng) -> int:
    # 14..30 px at 64x64, scaled with resolution
    return int(round(rng.uniform(14, 30) * res / 64))


def _overlap_ok(box, boxes, max_cover: float = 0.25) -> bool:
    x, y, w, h = box
    for bx, by, bw, bh in boxes:
        iw = min(x + w, bx + bw) - max(x, bx)
        ih = min(y + h, by + bh) - max(y, by)
        if iw > 0 and ih > 0:
            inter = iw * ih
            if inter > max_cover * min(w * h, bw * bh):
                return False
    return True


def sample_objects(scene: str, rng: np.random.Generator, n: int | None = None) -> list[Category]:
    """Categories for one image: 1-5 objects from the scene prior, sometimes repeated."""
    if n is None:
        n = int(rng.choice(len(N_OBJECTS_PROBS), p=N_OBJECTS_PROBS)) + 1
    prior = _PRIORS[scene]
    n_distinct = n if n == 1 else max(1, n - int(rng.binomial(n - 1, 0.3)))
    idx = rng.choice(len(CATEGORIES), size=n_distinct, replace=False, p=prior)
    cats = [CATEGORIES[i] for i in idx]
    while len(cats) < n:  # repeats give captions with counts ("two apples")
        cats.append(cats[int(rng.integers(len(cats)))])
    return cats


def place(tile: Image.Image, cat: Category, scene: str, res: int, boxes, rng, tries: int = 30):
    """A top-left corner for the tile, keeping overlap bounded; None if it cannot fit."""
    w, h = tile.size
    if w >= res or h >= res:
        return None
    for _ in range(tries):
        x = int(rng.integers(0, res - w + 1))
        lo, hi = 0, res - h
        if scene in ("grass", "water", "room") and hi > 0:
            # sky things high, ground things low: layout follows the scene like a photo
            if cat.sky:
                hi = max(0, int(res * 0.45) - h // 2)
            else:
                lo = min(hi, int(res * 0.3))
        y = int(rng.integers(lo, max(lo, hi) + 1))
        if _overlap_ok((x, y, w, h), boxes):
            return x, y
    return None


def render_scene(res: int, rng: np.random.Generator, scene: str | None = None,
                 categories: list[Category] | None = None) -> tuple[Image.Image, str, list[PlacedObject]]:
    """One clip-art image: returns (RGB image, scene name, placed objects with boxes)."""
    if scene is None:
        scene = SCENES[int(rng.choice(len(SCENES), p=SCENE_PROBS))]
    if categories is None:
        categories = sample_objects(scene, rng)
    canvas = Image.fromarray(np.clip(background(scene, res, rng), 0, 255).astype(np.uint8), "RGB")
    placed: list[PlacedObject] = []
    boxes: list[tuple[int, int, int, int]] = []
    for cat in categories:
        tile, colour = render_object(cat, _object_size(res, rng), rng)
        xy = place(tile, cat, scene, res, boxes, rng)
        if xy is None:
            continue  # never annotate what was not drawn
        boxes.append((xy[0], xy[1], tile.size[0], tile.size[1]))
        placed.append(PlacedObject(cat, colour, boxes[-1], 0, tile))
    if not placed:  # an image must show something: centre one small object
        cat = categories[0]
        tile, colour = render_object(cat, int(14 * res / 64), rng)
        box = ((res - tile.size[0]) // 2, (res - tile.size[1]) // 2, *tile.size)
        placed.append(PlacedObject(cat, colour, box, 0, tile))
    # paint in order and keep a label map, so `area` counts what is really visible
    labels = np.full((res, res), -1, dtype=np.int8)
    for k, obj in enumerate(placed):
        x, y, w, h = obj.bbox
        canvas.paste(obj.tile, (x, y), obj.tile)
        mask = np.asarray(obj.tile.getchannel("A")) > 127
        obj.own_area = int(mask.sum())
        labels[y:y + h, x:x + w][mask] = k
    counts = np.bincount(labels.ravel() + 1, minlength=len(placed) + 1)[1:]
    for k, obj in enumerate(placed):
        obj.area = int(counts[k])
    return canvas, scene, placed


__all__ = ["SCENES", "SCENE_PHRASES", "PlacedObject", "render_scene", "sample_objects", "background",
           "scene_prior", "BY_NAME"]
