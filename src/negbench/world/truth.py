"""NegWorld's ground truth, for benchmarks only: what every image, clip and corpus picture shows.

The world writes `truth/` next to its datasets: `coco_<split>.json`, `msrvtt.json` and
`corpus.json`, each {"resolution": px, "items": {file name: {"scene", "objects"}}} with every
drawn object's category, colour and box. No reader or pipeline stage reads these files — the
corpus in particular must look like web data, whose only object source is its captions — so
only `bench/` and the tests use them, to measure ceilings and false negations.

`caption_facts` reads back what a NegWorld caption states (objects with colour, count, size
and place; the scene; negated objects) and `fits` says whether an item shows all of it.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from negbench.core.errors import ConfigError
from negbench.core.io import write_json_atomic
from negbench.world.captions import COUNT_WORDS, POSITION_PHRASES, SIZE_WORDS, position_class, size_class
from negbench.world.categories import CATEGORIES
from negbench.world.scenes import SCENE_PHRASES

TRUTH_DIR = "truth"
_COLOURS = frozenset(c for cat in CATEGORIES for c in cat.palette)
_SIZES = {w: size for size, words in SIZE_WORDS.items() for w in words}
_COUNTS = {"a": 1, "an": 1, "one": 1, **{w: n for n, w in COUNT_WORDS.items()}}
_AT_LEAST_TWO = ("some", "several")
_POSITIONS = {tuple(p.split()): where for where, phrases in POSITION_PHRASES.items() for p in phrases}
_WORD = re.compile(r"[a-z]+")


# ---------------------------------------------------------------- files

def write_truth(world: Path, name: str, resolution: int, items: dict[str, dict]) -> Path:
    path = Path(world) / TRUTH_DIR / f"{name}.json"
    write_json_atomic(path, {"resolution": resolution, "items": items})
    return path


def read_truth(world: Path, name: str) -> tuple[int, dict[str, dict]]:
    """(resolution, {file name: {"scene", "objects": [{"category", "colour", "bbox"?}]}})."""
    path = Path(world) / TRUTH_DIR / f"{name}.json"
    if not path.exists():
        raise ConfigError(f"{path}: no ground-truth file; regenerate the world with this version of negbench")
    doc = json.loads(path.read_text(encoding="utf-8"))
    return int(doc["resolution"]), doc["items"]


# ---------------------------------------------------------------- what a caption states

@dataclass(frozen=True)
class Mention:
    noun: str
    colour: str | None = None
    size: str | None = None
    position: str | None = None
    count: int | None = None        # exact number of (noun, colour) instances, when stated
    at_least: int = 1


@dataclass(frozen=True)
class CaptionFacts:
    scene: str | None
    mentions: tuple[Mention, ...]
    negated: tuple[str, ...]

    @property
    def nouns(self) -> frozenset[str]:
        return frozenset(m.noun for m in self.mentions)


def _scene_of(text: str) -> str | None:
    for scene, phrases in SCENE_PHRASES.items():
        if any(re.search(rf"\b{re.escape(p)}\b", text) for p in phrases):
            return scene
    return None


def _mention_at(words: list[str], i: int, noun: str) -> Mention:
    """The attributes written around the noun at words[i]: '[count] [size] [colour] NOUN [place]'."""
    j, colour, size = i - 1, None, None
    if j >= 0 and words[j] in _COLOURS:
        colour, j = words[j], j - 1
    if j >= 0 and words[j] in _SIZES:
        size, j = _SIZES[words[j]], j - 1
    count = _COUNTS.get(words[j]) if j >= 0 else None
    at_least = 2 if j >= 0 and words[j] in _AT_LEAST_TWO else 1
    position = next((where for phrase, where in _POSITIONS.items() if tuple(words[i + 1:i + 1 + len(phrase)]) == phrase),
                    None)
    return Mention(noun, colour, size, position, count, at_least)


def caption_facts(caption: str, vocab, use_attributes: bool = True) -> CaptionFacts:
    """What `caption` affirms and negates. With use_attributes=False only which objects it names."""
    text = caption.lower()
    present, negated = vocab.extract(caption)
    if not use_attributes:
        return CaptionFacts(None, tuple(Mention(n) for n in present), tuple(negated))
    words = _WORD.findall(text)
    mentions = []
    for i, w in enumerate(words):
        noun = vocab.canonical(w)
        if noun is not None and noun not in negated:
            mentions.append(_mention_at(words, i, noun))
    return CaptionFacts(_scene_of(text), tuple(mentions), tuple(negated))


# ---------------------------------------------------------------- does an item show it

def _instances(objects: list[dict], m: Mention) -> list[dict]:
    return [o for o in objects if o["category"] == m.noun and (m.colour is None or o["colour"] == m.colour)]


def _shows(objects: list[dict], m: Mention, resolution: int) -> bool:
    found = _instances(objects, m)
    if len(found) < m.at_least or (m.count is not None and len(found) != m.count):
        return False
    if m.size is not None and not any("bbox" in o and size_class(o["bbox"], resolution) == m.size for o in found):
        return False
    return m.position is None or any("bbox" in o and position_class(o["bbox"], resolution) == m.position
                                     for o in found)


def fits(facts: CaptionFacts, item: dict, resolution: int) -> bool:
    """Does the item show everything the caption affirms, and nothing it negates?"""
    objects = item["objects"]
    if facts.scene is not None and item.get("scene") != facts.scene:
        return False
    if any(o["category"] in facts.negated for o in objects):
        return False
    return all(_shows(objects, m, resolution) for m in facts.mentions)


def unmentioned(facts: CaptionFacts, item: dict) -> int:
    """Objects the item shows that the caption does not name: a caption that names all of an
    image's objects describes it better than one with more objects besides."""
    nouns = facts.nouns
    return sum(o["category"] not in nouns for o in item["objects"])
