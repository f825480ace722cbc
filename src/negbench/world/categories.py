"""NegWorld object categories: real nouns drawn as clip-art from PIL primitives.

Each category has a characteristic silhouette *and* a small named palette, so that a
small image tower can learn to tell them apart at 64x64 (a test checks that a
nearest-centroid classifier on raw pixels already does), and so captions can use true
colour adjectives ("a red car").  Shapes are drawn on a supersampled transparent tile
and downscaled, which anti-aliases the edges for free.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from PIL import Image, ImageDraw

RGB = tuple[int, int, int]
SUPERSAMPLE = 2
_BLACK = (25, 25, 25)
_WHITE = (245, 245, 245)
_BROWN = (110, 70, 35)
_GREEN = (40, 140, 40)


@dataclass(frozen=True)
class Category:
    id: int                       # COCO category id (1-based, stable)
    name: str
    supercategory: str
    palette: dict[str, RGB]       # colour adjective -> main colour
    draw: Callable = field(repr=False, compare=False)
    aspect: float = 1.0           # width / height of the drawing box
    synonyms: tuple[str, ...] = ()
    sky: bool = False             # lives in the upper part of outdoor scenes
    max_rotation: float = 20.0    # degrees

    @property
    def plural(self) -> str:
        if self.name in ("fish",):
            return self.name
        if self.name.endswith(("s", "sh", "ch", "x")):
            return self.name + "es"
        return self.name + "s"


# ---------------------------------------------------------------- drawing helpers
def _shade(c: RGB, f: float) -> RGB:
    if f >= 1:
        return tuple(int(min(255, v + (255 - v) * (f - 1))) for v in c)  # type: ignore[return-value]
    return tuple(int(v * f) for v in c)  # type: ignore[return-value]


class _Pen:
    """ImageDraw in unit coordinates of a W x H tile (so drawings are resolution-free)."""

    def __init__(self, img: Image.Image):
        self.d = ImageDraw.Draw(img)
        self.W, self.H = img.size

    def _p(self, pts):
        return [(x * self.W, y * self.H) for x, y in pts]

    def _b(self, x0, y0, x1, y1):
        return [x0 * self.W, y0 * self.H, x1 * self.W, y1 * self.H]

    def ellipse(self, box, fill, outline=None, width=0.0):
        self.d.ellipse(self._b(*box), fill=fill, outline=outline, width=int(width * self.W))

    def rect(self, box, fill, outline=None, width=0.0):
        self.d.rectangle(self._b(*box), fill=fill, outline=outline, width=int(width * self.W))

    def rrect(self, box, r, fill):
        self.d.rounded_rectangle(self._b(*box), radius=r * self.W, fill=fill)

    def poly(self, pts, fill):
        self.d.polygon(self._p(pts), fill=fill)

    def line(self, pts, fill, width):
        self.d.line(self._p(pts), fill=fill, width=max(1, int(width * self.W)), joint="curve")

    def pie(self, box, start, end, fill):
        self.d.pieslice(self._b(*box), start, end, fill=fill)

    def chord(self, box, start, end, fill):
        self.d.chord(self._b(*box), start, end, fill=fill)

    def arc(self, box, start, end, fill, width):
        self.d.arc(self._b(*box), start, end, fill=fill, width=max(1, int(width * self.W)))


# ---------------------------------------------------------------- the drawings
def _apple(p: _Pen, c: RGB, rng):
    p.ellipse((0.05, 0.22, 0.55, 0.98), c)
    p.ellipse((0.45, 0.22, 0.95, 0.98), c)
    p.ellipse((0.2, 0.32, 0.35, 0.5), _shade(c, 1.5))
    p.line([(0.5, 0.32), (0.55, 0.05)], _BROWN, 0.07)
    p.ellipse((0.56, 0.04, 0.88, 0.2), _GREEN)


def _ball(p: _Pen, c: RGB, rng):
    # a beach ball: three coloured segments and a white one, with a highlight
    p.pie((0.02, 0.02, 0.98, 0.98), 0, 90, _WHITE)
    p.pie((0.02, 0.02, 0.98, 0.98), 90, 180, c)
    p.pie((0.02, 0.02, 0.98, 0.98), 180, 270, _shade(c, 1.6))
    p.pie((0.02, 0.02, 0.98, 0.98), 270, 360, c)
    p.ellipse((0.38, 0.38, 0.62, 0.62), _WHITE)


def _car(p: _Pen, c: RGB, rng):
    p.rrect((0.0, 0.38, 1.0, 0.78), 0.08, c)
    p.poly([(0.2, 0.4), (0.32, 0.08), (0.7, 0.08), (0.84, 0.4)], c)
    p.poly([(0.28, 0.38), (0.37, 0.16), (0.5, 0.16), (0.5, 0.38)], (170, 215, 240))
    p.poly([(0.55, 0.38), (0.55, 0.16), (0.66, 0.16), (0.76, 0.38)], (170, 215, 240))
    for x in (0.12, 0.66):
        p.ellipse((x, 0.6, x + 0.24, 0.98), _BLACK)
        p.ellipse((x + 0.07, 0.7, x + 0.17, 0.88), (180, 180, 180))


def _tree(p: _Pen, c: RGB, rng):
    p.rect((0.4, 0.55, 0.6, 1.0), _BROWN)
    if rng.random() < 0.5:
        p.ellipse((0.05, 0.0, 0.95, 0.7), c)
        p.ellipse((0.2, 0.1, 0.5, 0.35), _shade(c, 1.25))
    else:  # a pine
        p.poly([(0.5, 0.0), (0.95, 0.45), (0.05, 0.45)], c)
        p.poly([(0.5, 0.2), (1.0, 0.75), (0.0, 0.75)], c)


def _house(p: _Pen, c: RGB, rng):
    p.rect((0.12, 0.45, 0.88, 1.0), c)
    p.poly([(0.0, 0.48), (0.5, 0.02), (1.0, 0.48)], (180, 40, 35))
    p.rect((0.42, 0.66, 0.6, 1.0), _BROWN)
    p.rect((0.2, 0.55, 0.34, 0.7), (150, 200, 240))
    p.rect((0.68, 0.55, 0.82, 0.7), (150, 200, 240))


def _dog(p: _Pen, c: RGB, rng):
    # standing, side view: long body, four legs, floppy ear, tail up
    dark = _shade(c, 0.6)
    p.ellipse((0.15, 0.35, 0.8, 0.7), c)
    for x in (0.2, 0.33, 0.58, 0.7):
        p.rect((x, 0.55, x + 0.09, 0.98), c)
    p.ellipse((0.62, 0.1, 0.98, 0.45), c)
    p.ellipse((0.85, 0.25, 1.0, 0.4), dark)              # snout
    p.ellipse((0.6, 0.12, 0.74, 0.46), dark)             # floppy ear
    p.ellipse((0.8, 0.18, 0.86, 0.25), _BLACK)
    p.line([(0.18, 0.45), (0.02, 0.15)], c, 0.07)


def _cat(p: _Pen, c: RGB, rng):
    # sitting, front view: tall body, round head, pointed ears, curled tail
    p.ellipse((0.15, 0.38, 0.85, 1.0), c)
    p.ellipse((0.22, 0.1, 0.78, 0.55), c)
    p.poly([(0.22, 0.3), (0.26, 0.0), (0.45, 0.15)], c)
    p.poly([(0.78, 0.3), (0.74, 0.0), (0.55, 0.15)], c)
    p.ellipse((0.33, 0.25, 0.42, 0.34), (120, 200, 60))
    p.ellipse((0.58, 0.25, 0.67, 0.34), (120, 200, 60))
    p.poly([(0.46, 0.38), (0.54, 0.38), (0.5, 0.43)], (230, 120, 140))
    for dy in (0.0, 0.05):
        p.line([(0.05, 0.4 + dy), (0.35, 0.42)], _BLACK, 0.02)
        p.line([(0.95, 0.4 + dy), (0.65, 0.42)], _BLACK, 0.02)
    p.arc((0.6, 0.55, 1.0, 1.0), 270, 90, c, 0.08)


def _fish(p: _Pen, c: RGB, rng):
    p.poly([(0.28, 0.5), (0.0, 0.12), (0.0, 0.88)], c)
    p.ellipse((0.18, 0.15, 1.0, 0.85), c)
    p.poly([(0.5, 0.2), (0.65, 0.0), (0.75, 0.22)], _shade(c, 0.7))
    p.ellipse((0.76, 0.35, 0.86, 0.48), _WHITE)
    p.ellipse((0.79, 0.38, 0.85, 0.46), _BLACK)
    p.arc((0.45, 0.3, 0.65, 0.7), -60, 60, _shade(c, 0.7), 0.04)


def _bird(p: _Pen, c: RGB, rng):
    p.ellipse((0.1, 0.3, 0.78, 0.9), c)
    p.ellipse((0.5, 0.1, 0.9, 0.5), c)
    p.poly([(0.86, 0.25), (1.0, 0.32), (0.86, 0.38)], (250, 160, 20))
    p.ellipse((0.7, 0.22, 0.78, 0.3), _BLACK)
    p.poly([(0.2, 0.5), (0.55, 0.55), (0.3, 0.78)], _shade(c, 0.65))  # wing
    p.poly([(0.14, 0.55), (0.0, 0.4), (0.0, 0.7)], _shade(c, 0.65))   # tail


def _flower(p: _Pen, c: RGB, rng):
    p.line([(0.5, 0.5), (0.5, 1.0)], _GREEN, 0.07)
    p.ellipse((0.5, 0.72, 0.78, 0.84), _GREEN)
    cx, cy, r = 0.5, 0.33, 0.18
    for k in range(5):
        a = 2 * math.pi * k / 5 - math.pi / 2
        x, y = cx + r * math.cos(a), cy + r * math.sin(a)
        p.ellipse((x - 0.16, y - 0.16, x + 0.16, y + 0.16), c)
    p.ellipse((cx - 0.12, cy - 0.12, cx + 0.12, cy + 0.12), (250, 200, 30))


def _cup(p: _Pen, c: RGB, rng):
    p.ellipse((0.55, 0.25, 0.98, 0.75), c)
    p.ellipse((0.66, 0.36, 0.87, 0.64), (0, 0, 0, 0))
    p.rrect((0.05, 0.12, 0.75, 0.98), 0.06, c)
    p.ellipse((0.05, 0.05, 0.75, 0.2), _shade(c, 0.55))
    p.rect((0.12, 0.45, 0.68, 0.52), _shade(c, 1.5))


def _bottle(p: _Pen, c: RGB, rng):
    p.rrect((0.15, 0.35, 0.85, 1.0), 0.12, c)
    p.poly([(0.15, 0.42), (0.35, 0.2), (0.65, 0.2), (0.85, 0.42)], c)
    p.rect((0.35, 0.08, 0.65, 0.22), c)
    p.rect((0.32, 0.0, 0.68, 0.1), (200, 30, 30))
    p.rect((0.15, 0.55, 0.85, 0.75), _WHITE)
    p.rect((0.25, 0.38, 0.33, 0.95), _shade(c, 1.4))


def _umbrella(p: _Pen, c: RGB, rng):
    p.pie((0.0, 0.0, 1.0, 0.8), 180, 360, c)
    for x in (0.0, 0.25, 0.5, 0.75):
        p.ellipse((x, 0.32, x + 0.25, 0.48), (0, 0, 0, 0))
    p.line([(0.5, 0.05), (0.5, 0.35)], _shade(c, 0.6), 0.03)
    p.line([(0.5, 0.38), (0.5, 0.88)], _BLACK, 0.05)
    p.arc((0.3, 0.76, 0.52, 1.0), 0, 180, _BLACK, 0.05)


def _clock(p: _Pen, c: RGB, rng):
    p.ellipse((0.0, 0.0, 1.0, 1.0), c)
    p.ellipse((0.1, 0.1, 0.9, 0.9), _WHITE)
    for k in range(12):
        a = 2 * math.pi * k / 12
        p.line([(0.5 + 0.33 * math.cos(a), 0.5 + 0.33 * math.sin(a)),
                (0.5 + 0.38 * math.cos(a), 0.5 + 0.38 * math.sin(a))], _BLACK, 0.04)
    h, m = rng.uniform(0, 2 * math.pi), rng.uniform(0, 2 * math.pi)
    p.line([(0.5, 0.5), (0.5 + 0.2 * math.cos(h), 0.5 + 0.2 * math.sin(h))], _BLACK, 0.07)
    p.line([(0.5, 0.5), (0.5 + 0.32 * math.cos(m), 0.5 + 0.32 * math.sin(m))], _BLACK, 0.05)


def _boat(p: _Pen, c: RGB, rng):
    p.poly([(0.0, 0.68), (1.0, 0.68), (0.82, 0.98), (0.15, 0.98)], c)
    p.line([(0.5, 0.05), (0.5, 0.7)], _BROWN, 0.05)
    p.poly([(0.53, 0.05), (0.53, 0.62), (0.92, 0.62)], _WHITE)
    p.poly([(0.47, 0.15), (0.47, 0.62), (0.15, 0.62)], (235, 235, 220))


def _kite(p: _Pen, c: RGB, rng):
    p.poly([(0.45, 0.0), (0.85, 0.3), (0.45, 0.72), (0.05, 0.3)], c)
    p.poly([(0.45, 0.0), (0.85, 0.3), (0.45, 0.3)], _shade(c, 0.65))
    p.poly([(0.05, 0.3), (0.45, 0.72), (0.45, 0.3)], _shade(c, 0.65))
    p.line([(0.45, 0.72), (0.55, 0.82), (0.45, 0.9), (0.6, 1.0)], _BLACK, 0.025)
    for x, y in ((0.55, 0.82), (0.45, 0.9)):
        p.poly([(x - 0.07, y - 0.05), (x + 0.07, y + 0.05), (x + 0.07, y - 0.05), (x - 0.07, y + 0.05)],
               (230, 40, 40))


def _key(p: _Pen, c: RGB, rng):
    p.ellipse((0.0, 0.2, 0.42, 0.8), c)
    p.ellipse((0.12, 0.38, 0.3, 0.62), (0, 0, 0, 0))
    p.rect((0.38, 0.43, 1.0, 0.57), c)
    p.rect((0.72, 0.55, 0.8, 0.75), c)
    p.rect((0.86, 0.55, 0.94, 0.8), c)


def _chair(p: _Pen, c: RGB, rng):
    dark = _shade(c, 0.7)
    p.rect((0.12, 0.0, 0.26, 0.6), c)          # back post
    p.rect((0.12, 0.08, 0.3, 0.45), c)
    p.rect((0.12, 0.5, 0.9, 0.62), c)          # seat
    p.rect((0.14, 0.6, 0.24, 1.0), dark)
    p.rect((0.78, 0.6, 0.88, 1.0), dark)
    p.rect((0.2, 0.78, 0.82, 0.83), dark)


def _star_pts(cx, cy, ro, ri, n=5, rot=-math.pi / 2):
    pts = []
    for k in range(2 * n):
        r = ro if k % 2 == 0 else ri
        a = rot + math.pi * k / n
        pts.append((cx + r * math.cos(a), cy + r * math.sin(a)))
    return pts


def _star(p: _Pen, c: RGB, rng):
    p.poly(_star_pts(0.5, 0.53, 0.5, 0.2), c)
    p.poly(_star_pts(0.5, 0.53, 0.22, 0.09), _shade(c, 1.4))


def _moon(p: _Pen, c: RGB, rng):
    p.ellipse((0.0, 0.0, 1.0, 1.0), c)
    p.ellipse((0.32, -0.08, 1.2, 0.82), (0, 0, 0, 0))


def _sun(p: _Pen, c: RGB, rng):
    for k in range(12):
        a = 2 * math.pi * k / 12
        p.line([(0.5 + 0.3 * math.cos(a), 0.5 + 0.3 * math.sin(a)),
                (0.5 + 0.49 * math.cos(a), 0.5 + 0.49 * math.sin(a))], _shade(c, 0.85), 0.07)
    p.ellipse((0.22, 0.22, 0.78, 0.78), c)
    p.ellipse((0.3, 0.3, 0.5, 0.5), _shade(c, 1.4))


def _cloud(p: _Pen, c: RGB, rng):
    p.ellipse((0.0, 0.4, 0.4, 0.95), c)
    p.ellipse((0.2, 0.1, 0.65, 0.85), c)
    p.ellipse((0.5, 0.25, 0.9, 0.9), c)
    p.ellipse((0.7, 0.5, 1.0, 0.95), c)
    p.rect((0.2, 0.6, 0.85, 0.95), c)
    p.rect((0.1, 0.88, 0.9, 0.95), _shade(c, 0.85))


def _mushroom(p: _Pen, c: RGB, rng):
    p.rrect((0.33, 0.45, 0.67, 1.0), 0.08, (240, 230, 210))
    p.chord((0.0, 0.0, 1.0, 1.0), 180, 360, c)
    p.rect((0.0, 0.48, 1.0, 0.56), c)
    for x, y, r in ((0.25, 0.25, 0.08), (0.55, 0.15, 0.07), (0.72, 0.35, 0.08), (0.45, 0.38, 0.06)):
        p.ellipse((x - r, y - r, x + r, y + r), _WHITE)


def _bell(p: _Pen, c: RGB, rng):
    p.ellipse((0.42, 0.0, 0.58, 0.14), _shade(c, 0.7))
    p.poly([(0.3, 0.15), (0.7, 0.15), (0.8, 0.55), (0.98, 0.85), (0.02, 0.85), (0.2, 0.55)], c)
    p.ellipse((0.25, 0.08, 0.75, 0.35), c)
    p.rect((0.0, 0.8, 1.0, 0.88), _shade(c, 0.75))
    p.ellipse((0.42, 0.82, 0.58, 1.0), _shade(c, 0.55))
    p.line([(0.35, 0.25), (0.28, 0.7)], _shade(c, 1.5), 0.05)


# ---------------------------------------------------------------- the table
def _c(*args, **kw):
    return args, kw


_TABLE = [
    # name, supercategory, palette, draw, aspect, extra
    _c("apple", "food", {"red": (205, 30, 35), "green": (110, 190, 40)}, _apple, 1.0),
    _c("ball", "sports", {"blue": (30, 80, 220), "purple": (140, 50, 190), "orange": (245, 130, 20)}, _ball, 1.0,
       max_rotation=180.0),
    _c("car", "vehicle", {"red": (210, 30, 30), "blue": (30, 70, 200), "yellow": (240, 200, 20), "white": (235, 235, 235)},
       _car, 1.6),
    _c("tree", "plant", {"green": (20, 110, 30)}, _tree, 0.8, max_rotation=8.0),
    _c("house", "building", {"white": (235, 230, 215), "yellow": (240, 210, 120), "blue": (140, 170, 220)}, _house, 1.0,
       max_rotation=5.0),
    _c("dog", "animal", {"brown": (150, 95, 45), "black": (45, 40, 40), "white": (235, 230, 220)}, _dog, 1.3,
       synonyms=("puppy",)),
    _c("cat", "animal", {"gray": (130, 130, 135), "orange": (235, 140, 40), "black": (40, 40, 45)}, _cat, 0.85,
       synonyms=("kitten",)),
    _c("fish", "animal", {"orange": (250, 120, 20), "yellow": (245, 220, 30), "pink": (240, 120, 170)}, _fish, 1.5),
    _c("bird", "animal", {"blue": (40, 100, 230), "red": (215, 35, 35), "yellow": (245, 210, 30)}, _bird, 1.2,
       sky=True),
    _c("flower", "plant", {"pink": (240, 100, 170), "red": (220, 30, 40), "purple": (150, 70, 200), "white": (245, 245, 250)},
       _flower, 0.75),
    _c("cup", "kitchen", {"white": (240, 240, 240), "blue": (40, 90, 200), "red": (200, 40, 40)}, _cup, 1.1,
       synonyms=("mug",)),
    _c("bottle", "kitchen", {"green": (30, 140, 60), "brown": (120, 65, 20), "blue": (60, 130, 220)}, _bottle, 0.45),
    _c("umbrella", "accessory", {"blue": (40, 80, 210), "purple": (140, 40, 170), "yellow": (240, 200, 30), "green": (40, 160, 80)},
       _umbrella, 1.0),
    _c("clock", "indoor", {"black": (30, 30, 30), "red": (200, 30, 30), "blue": (40, 70, 190)}, _clock, 1.0,
       max_rotation=0.0),
    _c("boat", "vehicle", {"red": (200, 40, 40), "brown": (130, 80, 35), "blue": (30, 60, 170)}, _boat, 1.1,
       synonyms=("sailboat",), max_rotation=10.0),
    _c("kite", "sports", {"red": (220, 40, 40), "yellow": (245, 205, 30), "green": (40, 170, 60), "purple": (150, 60, 200)},
       _kite, 0.8, sky=True, max_rotation=30.0),
    _c("key", "accessory", {"gold": (215, 170, 40), "silver": (175, 180, 190)}, _key, 1.8, max_rotation=180.0),
    _c("chair", "furniture", {"brown": (140, 85, 40), "red": (190, 40, 40), "blue": (50, 80, 190)}, _chair, 0.85,
       max_rotation=5.0),
    _c("star", "sky", {"yellow": (250, 215, 30), "gold": (230, 175, 30)}, _star, 1.0, sky=True, max_rotation=36.0),
    _c("moon", "sky", {"yellow": (245, 235, 150), "white": (235, 235, 225)}, _moon, 1.0, sky=True, max_rotation=40.0),
    _c("sun", "sky", {"yellow": (255, 205, 20), "orange": (250, 140, 20)}, _sun, 1.0, sky=True, max_rotation=30.0),
    _c("cloud", "sky", {"white": (248, 248, 250), "gray": (185, 190, 200)}, _cloud, 1.6, sky=True, max_rotation=5.0),
    _c("mushroom", "plant", {"red": (210, 35, 30), "brown": (140, 80, 40)}, _mushroom, 1.0, max_rotation=12.0),
    _c("bell", "indoor", {"gold": (225, 175, 35), "silver": (180, 185, 195)}, _bell, 0.95, max_rotation=25.0),
]

CATEGORIES: tuple[Category, ...] = tuple(
    Category(id=i + 1, name=a[0], supercategory=a[1], palette=a[2], draw=a[3], aspect=a[4], **kw)
    for i, (a, kw) in enumerate(_TABLE)
)
BY_NAME: dict[str, Category] = {c.name: c for c in CATEGORIES}


def category_names() -> list[str]:
    return [c.name for c in CATEGORIES]


def vocab_lines() -> list[str]:
    """vocab.txt lines: "name" or "name, synonym, ..." (plurals are left to the matcher)."""
    return [", ".join((c.name,) + c.synonyms) for c in CATEGORIES]


def render_object(cat: Category, size: int, rng: np.random.Generator) -> tuple[Image.Image, str]:
    """Draw one object as an RGBA tile whose longer side is about `size` px.

    Returns the tile (rotated, tight to its alpha) and the colour adjective used.
    """
    colour = list(cat.palette)[int(rng.integers(len(cat.palette)))]
    base = np.array(cat.palette[colour], dtype=float)
    jit = rng.normal(0.0, 9.0, size=3) + rng.normal(0.0, 6.0)   # hue + brightness jitter
    col = tuple(int(v) for v in np.clip(base + jit, 0, 255))
    aspect = cat.aspect * float(rng.uniform(0.92, 1.08))
    if aspect >= 1:
        w, h = size, max(4, round(size / aspect))
    else:
        w, h = max(4, round(size * aspect)), size
    S = SUPERSAMPLE
    tile = Image.new("RGBA", (w * S, h * S), (0, 0, 0, 0))
    cat.draw(_Pen(tile), col, rng)
    if rng.random() < 0.5 and cat.name not in ("clock",):
        tile = tile.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    # rotate at 2x, then one 2x box filter: anti-aliased edges at a fraction of the cost
    if S > 2:
        tile = tile.reduce(S // 2)
    angle = float(rng.uniform(-cat.max_rotation, cat.max_rotation)) if cat.max_rotation else 0.0
    if abs(angle) > 1.0:
        tile = tile.rotate(angle, resample=Image.Resampling.BILINEAR, expand=True)
    bbox = tile.getchannel("A").getbbox()
    if bbox:
        tile = tile.crop(bbox)
    tw, th = tile.size
    tile = tile.resize((max(1, round(tw / 2)), max(1, round(th / 2))), Image.Resampling.BOX)
    return tile, colour
