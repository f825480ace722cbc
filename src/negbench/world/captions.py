"""Affirmative alt-text captions for NegWorld images and videos.

Like web alt-text, a caption mentions only objects that are there, often not all of them,
and never negates: the world's corpus must be the kind of data on which CLIP-like models
fail to learn negation.  Colours and counts in captions are always true of the picture.
"""
from __future__ import annotations

from collections import OrderedDict

import numpy as np

from negbench.world.categories import Category
from negbench.world.scenes import SCENE_PHRASES

NEGATION_WORDS = ("no", "not", "without", "none", "nothing", "never", "n't", "neither", "nor", "except",
                  "absent")
_COUNT_WORDS = {2: "two", 3: "three", 4: "four", 5: "five"}


def _plural(word: str) -> str:
    if word == "fish":
        return word
    if word.endswith("y") and word[-2:-1] not in "aeiou":
        return word[:-1] + "ies"
    if word.endswith(("s", "sh", "ch", "x")):
        return word + "es"
    return word + "s"


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def noun_phrase(cat: Category, colours: list[str], rng: np.random.Generator) -> str:
    """'a red car', 'two apples', 'an orange fish', 'three yellow stars', 'some birds'."""
    n = len(colours)
    noun = cat.name
    if cat.synonyms and rng.random() < 0.2:
        noun = cat.synonyms[int(rng.integers(len(cat.synonyms)))]
    adj = colours[0] if len(set(colours)) == 1 and rng.random() < 0.35 else ""
    if n == 1:
        head = f"{adj} {noun}".strip()
        return f"{_article(head)} {head}"
    count = _COUNT_WORDS.get(n, "several") if rng.random() < 0.85 else "some"
    return " ".join(x for x in (count, adj, _plural(noun)) if x)


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


_IMAGE_TEMPLATES = (
    "{L}", "a photo of {L}", "photo of {L}", "{L} {S}", "a picture of {L} {S}", "clip art of {L}",
    "{L}, stock image", "illustration of {L} {S}", "a drawing of {L}", "cartoon of {L} {S}",
    "{L} {S}", "image of {L}",
)
_PAIR_TEMPLATES = ("{A} next to {B}", "{A} with {B}", "{A} near {B} {S}", "{A} beside {B}", "{A} and {B} {S}")


def image_caption(scene: str, objects: list[tuple[Category, str]], rng: np.random.Generator) -> str:
    groups = group_objects(objects)
    chosen = _pick_groups(groups, rng)
    phrases = [noun_phrase(cat, cols, rng) for cat, cols in chosen]
    phrases_scene = SCENE_PHRASES[scene]
    S = phrases_scene[int(rng.integers(len(phrases_scene)))]
    if len(phrases) >= 2 and rng.random() < 0.4:
        t = _PAIR_TEMPLATES[int(rng.integers(len(_PAIR_TEMPLATES)))]
        text = t.format(A=_join(phrases[:-1], rng), B=phrases[-1], S=S)
    else:
        t = _IMAGE_TEMPLATES[int(rng.integers(len(_IMAGE_TEMPLATES)))]
        text = t.format(L=_join(phrases, rng), S=S)
    if rng.random() < 0.3:
        text = text[0].upper() + text[1:]
    if rng.random() < 0.2:
        text += "."
    return text


def image_captions(scene: str, objects: list[tuple[Category, str]], rng: np.random.Generator,
                   n: int = 5) -> list[str]:
    """n captions, distinct where the content allows it."""
    out: list[str] = []
    for _ in range(n * 4):
        c = image_caption(scene, objects, rng)
        if c not in out:
            out.append(c)
        if len(out) == n:
            break
    while len(out) < n:
        out.append(image_caption(scene, objects, rng))
    return out


_VIDEO_TEMPLATES = (
    "{L} moving {S}", "a video of {L} {S}", "a clip of {L}", "{L} passing by {S}", "footage of {L}",
    "{L} moving across the screen", "an animation of {L} {S}", "{L} {S}", "a short video showing {L}",
)
_MOTION = {"enter": "comes into view", "leave": "leaves the frame", "cross": "moves across the frame",
           "stay": "moves around"}


def video_captions(scene: str, tracks: list[tuple[Category, str, str]], rng: np.random.Generator,
                   n: int = 5) -> list[str]:
    """Captions for a clip; `tracks` holds (category, colour, motion) of each visible object."""
    objects = [(c, col) for c, col, _ in tracks]
    out: list[str] = []
    for _ in range(n * 4):
        groups = group_objects(objects)
        chosen = _pick_groups(groups, rng)
        phrases = [noun_phrase(cat, cols, rng) for cat, cols in chosen]
        S = SCENE_PHRASES[scene][int(rng.integers(len(SCENE_PHRASES[scene])))]
        single = [t for t in tracks if t[0].name == chosen[0][0].name]
        if len(phrases) == 1 and len(single) == 1 and rng.random() < 0.4:
            text = f"{phrases[0]} {_MOTION[single[0][2]]} {S}"
        else:
            t = _VIDEO_TEMPLATES[int(rng.integers(len(_VIDEO_TEMPLATES)))]
            text = t.format(L=_join(phrases, rng), S=S)
        if text not in out:
            out.append(text)
        if len(out) == n:
            break
    while len(out) < n:
        out.append(out[len(out) % max(1, len(out))] if out else "a video")
    return out
