"""Caption templates as data: MCQ options, negated retrieval captions, NegCap, CheXpert.

The wordings live in `negbench/data/templates/{mcq,retrieval,chexpert}.json`; each file holds
named *template sets* (the paper's `default` wording plus families such as `without`, `no`,
`not`, `contain`, `neither_nor`, `except`) so that template sensitivity can be measured and a
model can be trained on some wordings and tested on held-out ones. Adding a wording means
adding a JSON entry, not code. Each MCQ template records its meaning (which slots it claims
present / absent), which the tests evaluate against the annotations.
"""
from __future__ import annotations

import json
import random
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Sequence

from negbench.core.errors import ConfigError
from negbench.inputs.vocab import with_article

TEMPLATE_DIR = Path(__file__).parent.parent / "data" / "templates"
CORRECT_ROLES = ("positive", "negative", "hybrid")
WRONG_ROLES = ("wrong_hybrid", "wrong_positive", "wrong_negative")
ORDERS = ("affneg", "negaff")


@lru_cache(maxsize=None)
def load_family(family: str) -> dict:
    """One template data file ('mcq' | 'retrieval' | 'chexpert') as a dict."""
    path = TEMPLATE_DIR / f"{family}.json"
    if not path.is_file():
        raise ConfigError(f"unknown template family {family!r}; available: "
                          f"{sorted(p.stem for p in TEMPLATE_DIR.glob('*.json'))}")
    return json.loads(path.read_text(encoding="utf-8"))


def template_set_names(family: str = "retrieval") -> list[str]:
    return list(load_family(family)["sets"])


def _check_set(family: str, name: str) -> dict:
    sets = load_family(family)["sets"]
    if name not in sets:
        import difflib
        close = difflib.get_close_matches(name, list(sets), n=2)
        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ConfigError(f"unknown {family} template set {name!r}{hint} available: {', '.join(sets)}")
    return sets[name]


@lru_cache(maxsize=4096)
def _article(name: str) -> str:
    return with_article(name)


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


# ---------------------------------------------------------------- MCQ

@dataclass(frozen=True)
class Template:
    role: str
    text: str
    type: str                      # linguistic option type: positive | negative | hybrid
    present: tuple[str, ...]       # slots this caption claims are in the media
    absent: tuple[str, ...]        # slots it claims are not

    def render(self, slots: dict[str, str]) -> str:
        return _cap(self.text.format_map(slots))


@dataclass(frozen=True)
class MCQTemplateSet:
    name: str
    templates: dict

    @property
    def needs_second_negative(self) -> bool:
        return any("N2" in t.absent or "N2" in t.present for t in self.templates.values())

    def __getitem__(self, role: str) -> Template:
        return self.templates[role]


@lru_cache(maxsize=None)
def mcq_templates(name: str = "default") -> MCQTemplateSet:
    entries = _check_set("mcq", name)
    needed = set(CORRECT_ROLES) | set(WRONG_ROLES) | {"modified_positive"}
    missing = needed - set(entries)
    if missing:
        raise ConfigError(f"mcq template set {name!r} lacks roles {sorted(missing)}")
    return MCQTemplateSet(name, {role: Template(role, e["text"], e["type"], tuple(e.get("present", ())),
                                                tuple(e.get("absent", ()))) for role, e in entries.items()})


@dataclass(frozen=True)
class MCQQuestion:
    captions: tuple[str, ...]
    correct: int
    template: str                  # correct_answer_template: positive|negative|hybrid|modified_positive
    caption_types: tuple[str, ...]
    roles: tuple[str, ...]         # template role of each option
    bindings: dict                 # slot -> object name


def _slots(bindings: dict[str, str], media: str) -> dict[str, str]:
    slots = {"media": media, "a_media": _article(media)}
    for k, v in bindings.items():
        slots[k] = v
        slots["a_" + k] = _article(v)
    return slots


def make_mcq(tset: MCQTemplateSet, present: Sequence[str], negatives: Sequence[str], correct_role: str,
             rng: random.Random, *, media: str = "image", hybrid_object: str = "B") -> MCQQuestion:
    """One 4-way question: the correct option of `correct_role` plus the three wrong answers.

    present: the present objects to use, A first (and B second when there is one).
    negatives: N (and N2 for sets that need two absent objects).
    hybrid_object: 'B' (authors' benchmark generator) or 'A' (their fine-tuning generator);
    with one present object it is always A and `positive` becomes `modified_positive`.
    """
    if not present:
        raise ValueError("an MCQ question needs at least one present object")
    if correct_role not in CORRECT_ROLES:
        raise ConfigError(f"correct role {correct_role!r} not in {list(CORRECT_ROLES)}")
    b = {"A": present[0], "N": negatives[0]}
    if len(negatives) > 1:
        b["N2"] = negatives[1]
    elif tset.needs_second_negative:
        raise ValueError(f"template set {tset.name!r} needs two absent objects")
    one = len(present) < 2
    if not one:
        b["B"] = present[1]
    b["H"] = b["A"] if one or hybrid_object == "A" else b["B"]
    label = correct_role
    if correct_role == "positive" and one:
        label = "modified_positive"
    slots = _slots(b, media)
    correct = rng.randrange(4)
    wrong = list(WRONG_ROLES)
    rng.shuffle(wrong)
    wrong.insert(correct, label)
    roles = tuple(wrong)
    ts = tset.templates
    captions = tuple(ts[r].render(slots) for r in roles)
    types = tuple(ts[r].type for r in roles)
    return MCQQuestion(captions, correct, label, types, roles, b)


# ---------------------------------------------------------------- negated captions

@dataclass(frozen=True)
class NegationTemplateSet:
    name: str
    affneg: str
    negaff: str
    absent: tuple[str, ...]

    @property
    def n_absent(self) -> int:
        return len(self.absent)


@lru_cache(maxsize=None)
def negation_templates(name: str = "default") -> NegationTemplateSet:
    e = _check_set("retrieval", name)
    return NegationTemplateSet(name, e["affneg"], e["negaff"], tuple(e.get("absent", ("x",))))


def negate_caption(tset: NegationTemplateSet, caption: str, absent: Sequence[str], order: str = "affneg",
                   media: str = "image") -> str:
    """Original caption + negation of the absent object(s), in `order` ('affneg' | 'negaff')."""
    if order not in ORDERS:
        raise ConfigError(f"order {order!r} not in {list(ORDERS)}")
    caption = " ".join(caption.split())
    clause = caption.rstrip(" .!?;,")
    if caption[-1:] not in ".!?":
        caption = clause + "."
    slots = {"caption": _cap(caption), "clause": _cap(clause), "clause_lc": clause[:1].lower() + clause[1:],
             "media": media, "x": absent[0], "a_x": _article(absent[0]), "A_x": _cap(_article(absent[0]))}
    if tset.n_absent > 1:
        if len(absent) < 2:
            raise ValueError(f"template set {tset.name!r} needs two absent objects")
        slots["y"] = absent[1]
        slots["a_y"] = _article(absent[1])
    return _cap((tset.affneg if order == "affneg" else tset.negaff).format_map(slots))


# ---------------------------------------------------------------- CheXpert

def chexpert_binary(finding: str, present: bool, rng: random.Random) -> tuple[tuple[str, str], int]:
    """'shows X' vs 'does not show X'; the correct option follows the label."""
    t = load_family("chexpert")["binary"]
    pos, neg = _cap(t["positive"].format(finding=finding)), _cap(t["negative"].format(finding=finding))
    correct_caption = pos if present else neg
    options = [pos, neg]
    rng.shuffle(options)
    return (options[0], options[1]), options.index(correct_caption)


def affirmative_options(findings_true: str, findings_false: Sequence[str], rng: random.Random
                        ) -> tuple[tuple[str, ...], int]:
    """Control questions: one affirmative option per finding, the first one true; no negation."""
    t = load_family("chexpert")["control"]["positive"]
    options = [_cap(t.format(finding=findings_true))] + [_cap(t.format(finding=f)) for f in findings_false]
    correct = rng.randrange(len(options))
    true_caption = options.pop(0)
    rng.shuffle(options)
    options.insert(correct, true_caption)
    return tuple(options), correct
