"""Category vocabularies and the lexicon matcher that finds them in captions.

A vocabulary is an ordered list of canonical category names, each with synonyms. Every
surface form (name, synonym, and their plurals, multi-word ones included) maps to one
canonical name, so extraction is one regex split plus dictionary lookups: fast enough
to run over a 10M-caption corpus in minutes.

Built in: COCO-80 (canonical COCO names) with the VOC-20 names folded in as synonyms.
User files use NegWorld's `vocab.txt` format: one category per line, "name" or
"name, synonym, ...", blank lines and `#` comments ignored.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from negbench.core.errors import ConfigError

# name -> synonyms. Ambiguous words (e.g. "bat", "mouse" the animal) are left out on purpose:
# a false "present" object only costs a candidate negative, a false synonym corrupts labels.
COCO80: dict[str, tuple[str, ...]] = {
    "person": ("man", "woman", "boy", "girl", "child", "kid", "lady", "guy", "people", "persons",
               "men", "women", "children"),
    "bicycle": ("bike",), "car": ("automobile",), "motorcycle": ("motorbike", "motor bike"),
    "airplane": ("aeroplane", "plane", "jet", "aircraft", "airliner"), "bus": (), "train": (),
    "truck": ("lorry",), "boat": ("ship", "sailboat"), "traffic light": ("stoplight", "traffic signal"),
    "fire hydrant": ("hydrant",), "stop sign": (), "parking meter": (), "bench": (), "bird": (),
    "cat": ("kitten",), "dog": ("puppy",), "horse": ("pony",), "sheep": ("lamb",), "cow": ("cattle",),
    "elephant": (), "bear": (), "zebra": (), "giraffe": (), "backpack": (), "umbrella": (),
    "handbag": ("purse",), "tie": ("necktie",), "suitcase": ("luggage",), "frisbee": (),
    "skis": ("ski",), "snowboard": (), "sports ball": ("ball", "soccer ball", "tennis ball", "football"),
    "kite": (), "baseball bat": (), "baseball glove": ("mitt",), "skateboard": (), "surfboard": (),
    "tennis racket": ("racket", "racquet"), "bottle": (), "wine glass": (), "cup": ("mug",),
    "fork": (), "knife": (), "spoon": (), "bowl": (), "banana": (), "apple": (), "sandwich": (),
    "orange": (), "broccoli": (), "carrot": (), "hot dog": ("hotdog",), "pizza": (),
    "donut": ("doughnut",), "cake": (), "chair": (), "couch": ("sofa",),
    "potted plant": ("houseplant", "pottedplant"), "bed": (), "dining table": ("table", "diningtable"),
    "toilet": (), "tv": ("television", "tv monitor", "tvmonitor"), "laptop": (), "mouse": (),
    "remote": ("remote control",), "keyboard": (), "cell phone": ("phone", "cellphone", "smartphone"),
    "microwave": (), "oven": (), "toaster": (), "sink": (), "refrigerator": ("fridge",), "book": (),
    "clock": (), "vase": (), "scissors": (), "teddy bear": ("teddy",),
    "hair drier": ("hair dryer", "blow dryer"), "toothbrush": (),
}

# Pascal VOC's raw label -> the readable name used in captions.
VOC20_DISPLAY: dict[str, str] = {
    "aeroplane": "aeroplane", "bicycle": "bicycle", "bird": "bird", "boat": "boat", "bottle": "bottle",
    "bus": "bus", "car": "car", "cat": "cat", "chair": "chair", "cow": "cow", "diningtable": "dining table",
    "dog": "dog", "horse": "horse", "motorbike": "motorbike", "person": "person",
    "pottedplant": "potted plant", "sheep": "sheep", "sofa": "sofa", "train": "train", "tvmonitor": "tv monitor",
}

_IRREGULAR_PLURALS = {
    "person": "people", "man": "men", "woman": "women", "child": "children", "mouse": "mice",
    "knife": "knives", "leaf": "leaves", "shelf": "shelves", "sheep": "sheep", "fish": "fish",
    "skis": "skis", "scissors": "scissors", "people": "people", "men": "men", "women": "women",
    "children": "children", "cattle": "cattle", "luggage": "luggage", "broccoli": "broccoli",
    "deer": "deer", "goose": "geese", "foot": "feet", "tooth": "teeth",
}
_NO_ARTICLE = {"people", "men", "women", "children", "cattle", "luggage", "broccoli", "skis", "scissors"}
NEGATION_CUES = frozenset({"no", "not", "without", "none", "nothing", "never", "neither", "nor",
                           "except", "absent", "lacking", "t"})   # "t" catches the tail of "isn't"
_TOKEN = re.compile(r"[a-z]+")
_TOKEN_PUNCT = re.compile(r"[a-z]+|[,.;:!?]")
_PUNCT = frozenset(",.;:!?")


def plural(word: str) -> str:
    """English plural of a (possibly multi-word) noun; the last word inflects."""
    head, _, last = word.rpartition(" ")
    if last in _IRREGULAR_PLURALS:
        p = _IRREGULAR_PLURALS[last]
    elif last.endswith(("s", "sh", "ch", "x", "z")):
        p = last + "es"
    elif last.endswith("y") and len(last) > 1 and last[-2] not in "aeiou":
        p = last[:-1] + "ies"
    else:
        p = last + "s"
    return f"{head} {p}" if head else p


def with_article(name: str) -> str:
    """'a dog', 'an apple', 'scissors' (plural-only and mass nouns take none)."""
    if name in _NO_ARTICLE or name.split(" ")[-1] in _NO_ARTICLE:
        return name
    return ("an " if name[:1] in "aeiou" else "a ") + name


@dataclass
class Vocabulary:
    """Ordered canonical names + surface-form lookup. Build with `from_entries`."""
    names: tuple[str, ...]
    synonyms: dict[str, tuple[str, ...]]
    _forms: dict[tuple[str, ...], str] = field(default_factory=dict, repr=False)
    _max_words: int = 1

    def __post_init__(self):
        # fast path tables: one-word forms, and the first words of multi-word forms
        self._uni = {k[0]: v for k, v in self._forms.items() if len(k) == 1}
        self._multi_first = frozenset(k[0] for k in self._forms if len(k) > 1)
        self._slow_tokens = NEGATION_CUES | self._multi_first   # tokens that need the full matcher

    @classmethod
    def from_entries(cls, entries: Iterable[tuple[str, Sequence[str]]]) -> "Vocabulary":
        names: list[str] = []
        syns: dict[str, tuple[str, ...]] = {}
        forms: dict[tuple[str, ...], str] = {}
        for name, synonyms in entries:
            name = _norm(name)
            if not name:
                raise ConfigError("vocabulary entry with an empty name")
            if name in syns:   # later duplicates only add synonyms
                syns[name] = syns[name] + tuple(_norm(s) for s in synonyms if _norm(s))
            else:
                names.append(name)
                syns[name] = tuple(_norm(s) for s in synonyms if _norm(s))
        for name in names:     # canonical names win over synonyms of other categories
            for form in (name, plural(name)):
                forms.setdefault(tuple(_TOKEN.findall(form)), name)
        for name in names:
            for s in syns[name]:
                for form in (s, plural(s)):
                    forms.setdefault(tuple(_TOKEN.findall(form)), name)
        forms.pop((), None)
        return cls(tuple(names), syns, forms, max(len(k) for k in forms) if forms else 1)

    @classmethod
    def from_names(cls, names: Iterable[str]) -> "Vocabulary":
        return cls.from_entries((n, ()) for n in names)

    def __contains__(self, name: str) -> bool:
        return name in self.synonyms

    def __len__(self) -> int:
        return len(self.names)

    def merged(self, other: "Vocabulary") -> "Vocabulary":
        """This vocabulary's entries first, then the other's (synonym clashes: first wins)."""
        entries = [(n, self.synonyms[n]) for n in self.names] + [(n, other.synonyms[n]) for n in other.names]
        return Vocabulary.from_entries(entries)

    def canonical(self, word: str) -> str | None:
        """Surface form ('puppies', 'Dining Table') -> canonical name, or None."""
        return self._forms.get(tuple(_TOKEN.findall(word.lower())))

    def extract(self, text: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """Objects mentioned in `text` -> (affirmed, negated), each in order of first mention.

        A mention within three words after a negation cue ("a table with no chairs") counts
        as negated, not present: corpus captions occasionally negate, and a negated object must
        never become a "present" one.
        """
        tokens = _TOKEN_PUNCT.findall(text.lower())
        if self._slow_tokens.isdisjoint(tokens):    # one-word forms only, nothing negated
            return tuple(dict.fromkeys(filter(None, map(self._uni.get, tokens)))), ()
        forms, maxw = self._forms, self._max_words
        present: list[str] = []
        negated: list[str] = []
        neg_window = 0
        i, n = 0, len(tokens)
        while i < n:
            tok = tokens[i]
            if tok in _PUNCT:         # a negation's scope ends with its clause
                neg_window = 0
                i += 1
                continue
            if tok in NEGATION_CUES:
                neg_window = 4
                i += 1
                continue
            hit = None
            step = 1
            for w in range(min(maxw, n - i), 0, -1):   # longest match first: "hot dog" before "dog"
                key = tuple(tokens[i:i + w]) if w > 1 else (tok,)
                name = forms.get(key)
                if name is not None:
                    hit, step = name, w
                    break
            if hit is not None:
                target = negated if neg_window else present
                if hit not in target:
                    target.append(hit)
            if neg_window:
                neg_window -= 1
            i += step
        present = [p for p in present if p not in negated]
        return tuple(present), tuple(negated)


def _norm(s: str) -> str:
    return " ".join(s.strip().lower().split())


def builtin_vocab() -> Vocabulary:
    """COCO-80 with the VOC-20 names (aeroplane, sofa, tvmonitor, ...) as synonyms."""
    return Vocabulary.from_entries(COCO80.items())


def read_vocab_file(path) -> Vocabulary:
    """Read a vocab file ('name' or 'name, synonym, ...' per line)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"vocabulary file not found: {path}")
    entries = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = [p.strip() for p in line.split(",")]
        if not parts[0]:
            raise ConfigError(f"{path}, line {lineno}: empty category name in {line!r}")
        entries.append((parts[0], [p for p in parts[1:] if p]))
    if not entries:
        raise ConfigError(f"{path}: no categories")
    return Vocabulary.from_entries(entries)


def load_vocab(spec: "str | Path | Vocabulary | None") -> Vocabulary:
    """None or 'builtin' -> built-in; a path -> that file only; 'builtin,FILE' -> both merged."""
    if isinstance(spec, Vocabulary):
        return spec
    if spec is None or str(spec) == "builtin":
        return builtin_vocab()
    parts = [p for p in str(spec).split(",") if p.strip()] if not Path(str(spec)).exists() else [str(spec)]
    vocab: Vocabulary | None = None
    for p in parts:
        v = builtin_vocab() if p.strip() == "builtin" else read_vocab_file(p.strip())
        vocab = v if vocab is None else vocab.merged(v)
    assert vocab is not None
    return vocab
