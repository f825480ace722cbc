"""Affirmative alt-text captions for NegWorld images and videos.

Real COCO captions mostly identify their image: they name what is there and what it looks
like. So do NegWorld's: an *identifying* caption names every object with its colour and
count, often its size and where it is, and the scene. Web alt-text is shorter, so a share of
corpus captions is *partial*: only some objects, colours only sometimes. No caption ever
negates: the world's corpus must be the kind of data on which CLIP-like models fail to learn
negation. Every fact a caption states is true of the picture (`negbench.world.truth` checks
it from the other side).
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Sequence

import numpy as np

from negbench.world.categories import Category
from negbench.world.scenes import SCENE_PHRASES, PlacedObject

NEGATION_WORDS = ("no", "not", "without", "none", "nothing", "never", "n't", "neither", "nor", "except",
                  "absent")
COUNT_WORDS = {2: "two", 3: "three", 4: "four", 5: "five"}
SIZE_WORDS = {"small": ("small", "little", "tiny"), "large": ("large", "big")}
# where an object stands, by the third of the picture its centre falls in
POSITION_PHRASES = {"left": ("on the left",), "right": ("on the right",), "top": ("at the top",),
                    "bottom": ("at the bottom",), "middle": ("in the middle", "in the centre")}
# a drawn object's longer side, in pixels at 64 px resolution (objects are drawn 14..30 px)
SMALL_BELOW, LARGE_ABOVE = 19.0, 25.0
CORPUS_PARTIAL_SHARE = 0.25   # corpus captions that are short and partial, like much web alt-text


def plural(word: str) -> str:
    if word == "fish":
        return word
    if word.endswith("y") and word[-2:-1] not in "aeiou":
        return word[:-1] + "ies"
    if word.endswith(("s", "sh", "ch", "x")):
        return word + "es"
    return word + "s"


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _pick(options: Sequence[str], rng: np.random.Generator) -> str:
    return options[int(rng.integers(len(options)))]


def size_class(bbox: Sequence[int], res: int) -> str | None:
    """'small', 'large' or None (middling: captions say nothing about its size)."""
    side = max(bbox[2], bbox[3]) * 64.0 / res
    if side < SMALL_BELOW:
        return "small"
    return "large" if side > LARGE_ABOVE else None


def position_class(bbox: Sequence[int], res: int) -> str:
    """'left' / 'right' by the centre's third across, else 'top' / 'bottom' / 'middle'."""
    cx, cy = (bbox[0] + bbox[2] / 2) / res, (bbox[1] + bbox[3] / 2) / res
    if cx < 1 / 3:
        return "left"
    if cx > 2 / 3:
        return "right"
    if cy < 1 / 3:
        return "top"
    return "bottom" if cy > 2 / 3 else "middle"


# ---------------------------------------------------------------- identifying captions

def _noun(cat: Category, n: int, rng) -> str:
    word = _pick(cat.synonyms, rng) if cat.synonyms and rng.random() < 0.2 else cat.name
    return word if n == 1 else plural(word)


def _colour_phrase(cat: Category, colour: str, instances: list[PlacedObject], res: int, rng) -> str:
    """'a small red car on the left', 'two blue cars', 'a tree' (a one-colour category)."""
    n = len(instances)
    adj = "" if len(cat.palette) == 1 and rng.random() < 0.5 else colour
    if n > 1:
        return " ".join(x for x in (COUNT_WORDS.get(n, "several"), adj, _noun(cat, n, rng)) if x)
    size = size_class(instances[0].bbox, res)
    size_word = _pick(SIZE_WORDS[size], rng) if size and rng.random() < 0.5 else ""
    head = " ".join(x for x in (size_word, adj, _noun(cat, 1, rng)) if x)
    phrase = f"{_article(head)} {head}"
    if rng.random() < 0.4:
        phrase += " " + _pick(POSITION_PHRASES[position_class(instances[0].bbox, res)], rng)
    return phrase


def _by_category_and_colour(objects: list[PlacedObject]) -> "OrderedDict[tuple[str, str], list[PlacedObject]]":
    groups: OrderedDict[tuple[str, str], list[PlacedObject]] = OrderedDict()
    for o in objects:
        groups.setdefault((o.category.name, o.colour), []).append(o)
    return groups


_IDENTIFYING_TEMPLATES = (
    "{L} {S}", "a photo of {L} {S}", "{L}, {S}", "a picture of {L} {S}", "an illustration of {L} {S}",
    "clip art of {L} {S}", "{L} {S}, stock image", "a drawing of {L} {S}", "there is {L} {S}",
    "{S}: {L}", "image of {L} {S}",
)


def identifying_caption(scene: str, objects: list[PlacedObject], res: int, rng: np.random.Generator) -> str:
    """Every object with its colour and count (sizes and places often), and the scene."""
    groups = list(_by_category_and_colour(objects).values())
    order = rng.permutation(len(groups))
    phrases = [_colour_phrase(groups[i][0].category, groups[i][0].colour, groups[i], res, rng) for i in order]
    text = _pick(_IDENTIFYING_TEMPLATES, rng).format(L=_join(phrases, rng), S=_pick(SCENE_PHRASES[scene], rng))
    return _finish(text, rng)


# ---------------------------------------------------------------- partial (alt-text) captions

def noun_phrase(cat: Category, colours: list[str], rng: np.random.Generator) -> str:
    """'a red car', 'two apples', 'an orange fish', 'three yellow stars', 'some birds'."""
    n = len(colours)
    adj = colours[0] if len(set(colours)) == 1 and rng.random() < 0.35 else ""
    if n == 1:
        head = f"{adj} {_noun(cat, 1, rng)}".strip()
        return f"{_article(head)} {head}"
    count = COUNT_WORDS.get(n, "several") if rng.random() < 0.85 else "some"
    return " ".join(x for x in (count, adj, _noun(cat, n, rng)) if x)


def _join(phrases: list[str], rng) -> str:
    if len(phrases) == 1:
        return phrases[0]
    sep = ", and " if len(phrases) > 2 and rng.random() < 0.5 else " and "
    return ", ".join(phrases[:-1]) + sep + phrases[-1]


def group_objects(objects: list[tuple[Category, str]]) -> "OrderedDict[str, tuple[Category, list[str]]]":
    """category name -> (category, colours of its instances), in order of appearance."""
    groups: OrderedDict[str, tuple[Category, list[str]]] = OrderedDict()
    for cat, colour in objects:
        groups.setdefault(cat.name, (cat, []))[1].append(colour)
    return groups


def _pick_groups(groups, rng) -> list:
    items = list(groups.values())
    order = rng.permutation(len(items))
    if len(items) == 1:
        k = 1
    elif rng.random() < 0.3:
        k = len(items)          # sometimes everything is named ...
    else:
        k = int(rng.integers(1, len(items)))  # ... usually only some of it
    return [items[i] for i in order[:k]]


_PARTIAL_TEMPLATES = (
    "{L}", "a photo of {L}", "photo of {L}", "{L} {S}", "a picture of {L} {S}", "clip art of {L}",
    "{L}, stock image", "illustration of {L} {S}", "a drawing of {L}", "cartoon of {L} {S}",
    "{L} {S}", "image of {L}",
)
_PAIR_TEMPLATES = ("{A} next to {B}", "{A} with {B}", "{A} near {B} {S}", "{A} beside {B}", "{A} and {B} {S}")


def partial_caption(scene: str, objects: list[tuple[Category, str]], rng: np.random.Generator) -> str:
    """Short alt-text: some of the objects, colours only sometimes, the scene only sometimes."""
    chosen = _pick_groups(group_objects(objects), rng)
    phrases = [noun_phrase(cat, cols, rng) for cat, cols in chosen]
    S = _pick(SCENE_PHRASES[scene], rng)
    if len(phrases) >= 2 and rng.random() < 0.4:
        text = _pick(_PAIR_TEMPLATES, rng).format(A=_join(phrases[:-1], rng), B=phrases[-1], S=S)
    else:
        text = _pick(_PARTIAL_TEMPLATES, rng).format(L=_join(phrases, rng), S=S)
    return _finish(text, rng)


def _finish(text: str, rng) -> str:
    if rng.random() < 0.3:
        text = text[0].upper() + text[1:]
    if rng.random() < 0.2:
        text += "."
    return text


def corpus_caption(scene: str, objects: list[PlacedObject], res: int, rng: np.random.Generator) -> str:
    """One web-style caption: identifying most of the time, short and partial otherwise."""
    if rng.random() < CORPUS_PARTIAL_SHARE:
        return partial_caption(scene, [(o.category, o.colour) for o in objects], rng)
    return identifying_caption(scene, objects, res, rng)


def image_captions(scene: str, objects: list[PlacedObject], res: int, rng: np.random.Generator,
                   n: int = 5) -> list[str]:
    """n identifying captions (COCO-style: each describes the image), distinct where possible."""
    return _distinct(lambda: identifying_caption(scene, objects, res, rng), n)


def _distinct(make, n: int) -> list[str]:
    out: list[str] = []
    for _ in range(n * 4):
        c = make()
        if c not in out:
            out.append(c)
        if len(out) == n:
            break
    while len(out) < n:
        out.append(make())
    return out


# ---------------------------------------------------------------- videos

_VIDEO_TEMPLATES = (
    "{L} {S}", "a video of {L} {S}", "a clip of {L} {S}", "footage of {L} {S}", "an animation of {L} {S}",
    "a short video showing {L} {S}", "{S}, {L}",
)
MOTION_PHRASES = {"enter": ("comes into view", "enters the frame"), "leave": ("leaves the frame", "moves out of view"),
                  "cross": ("moves across the frame", "passes by"), "stay": ("moves around", "stays in view")}


def _track_phrase(cat: Category, colour: str, motion: str, rng) -> str:
    adj = "" if len(cat.palette) == 1 and rng.random() < 0.5 else colour
    head = " ".join(x for x in (adj, _noun(cat, 1, rng)) if x)
    phrase = f"{_article(head)} {head}"
    return phrase + " that " + _pick(MOTION_PHRASES[motion], rng) if rng.random() < 0.5 else phrase


def video_captions(scene: str, tracks: list[tuple[Category, str, str]], rng: np.random.Generator,
                   n: int = 5) -> list[str]:
    """Identifying captions for a clip: every visible object with its colour, often how it
    moves, and the scene. `tracks` holds (category, colour, motion) of each visible object."""
    def make() -> str:
        order = rng.permutation(len(tracks))
        phrases = [_track_phrase(*tracks[i], rng) for i in order]
        S = _pick(SCENE_PHRASES[scene], rng)
        return _finish(_pick(_VIDEO_TEMPLATES, rng).format(L=_join(phrases, rng), S=S), rng)
    return _distinct(make, n)
