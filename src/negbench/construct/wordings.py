"""More negation wordings for fine-tuning: re-render NegCap captions and NegMCQ questions.

negdata writes each caption / question in one of a few template wordings. A model fine-tuned
on 2-3 wordings learns those tokens rather than negation; more varied phrasings ("lacks",
"is absent", "isn't", "is missing", "no ... anywhere", "free of any", "except", ...) make the
gain carry over to wordings never seen in training. The trainer (`TrainConfig.augment_wordings`)
adds, per NegCap row and per NegMCQ question, re-renderings in extra wordings drawn from the
lists below (seeded).

- NegCap rows keep `original_caption` and `negated_objects`, so a new caption is a template
  of those (same order affneg / negaff).
- NegMCQ rows do not store their objects: each option is parsed back against the templates
  of the set it came from (regexes made from `negbench/data/templates/mcq.json`), which
  recovers its role (positive, negative, hybrid, wrong_*) and slot values, then rendered in
  an extra set with the same roles, slots and answer position.

None of these wordings uses "without": that family is held out to test generalisation
(bench/loss_weight_ablation.py checks that it never occurs in the demo's training captions).
"""
from __future__ import annotations

import dataclasses
import re
from functools import lru_cache

import numpy as np

# ----- NegCap: (affneg, negaff); slots {caption} {clause} {clause_lc} {x} {a_x} {A_x}
NEGCAP_WORDINGS: tuple[tuple[str, str], ...] = (
    ("{caption} There isn't {a_x} in the picture.", "There isn't {a_x} in the picture. {caption}"),
    ("{caption} The picture lacks {a_x}.", "The picture lacks {a_x}. {caption}"),
    ("{caption} {A_x} is absent.", "{A_x} is absent. {caption}"),
    ("{clause}, but no {x}.", "No {x}, just {clause_lc}."),
    ("{caption} No {x} can be seen.", "No {x} can be seen. {caption}"),
    ("{caption} {A_x} is missing from the scene.", "{A_x} is missing from the scene. {caption}"),
    ("{clause}, and no {x} anywhere.", "No {x} anywhere: {clause_lc}."),
    ("{caption} There is no sign of {a_x}.", "There is no sign of {a_x}. {caption}"),
    ("{clause}; {a_x} does not appear.", "{A_x} does not appear; {clause_lc}."),
    ("{clause}, free of any {x}.", "Free of any {x}: {clause_lc}."),
    ("{caption} Not a single {x} in sight.", "Not a single {x} in sight. {caption}"),
    ("{caption} You won't find {a_x} here.", "You won't find {a_x} here. {caption}"),
    ("{clause}, minus {a_x}.", "Minus {a_x}: {clause_lc}."),
    ("{caption} It has no {x}.", "It has no {x}. {caption}"),
    ("{caption} The {x} is not there.", "The {x} is not there. {caption}"),
    ("{clause}, lacking {a_x}.", "Lacking {a_x}: {clause_lc}."),
)

# ----- NegMCQ: role -> text; slots as in mcq.json ({A} {a_A} {H} {a_H} {N} {a_N} {B} {a_B}, {A_N}...)
_MCQ_ROLES = ("positive", "modified_positive", "negative", "hybrid", "wrong_hybrid", "wrong_positive",
              "wrong_negative")


def _mcq(pos, neg, hyb):
    """A set from three patterns: affirm(list), negate(one), hybrid(present, absent)."""
    return {"positive": pos.format(X="{a_A} and {a_B}"), "modified_positive": pos.format(X="{a_A}"),
            "negative": neg.format(X="{a_N}", Xb="{N}", XA="{A_N}"),
            "hybrid": hyb.format(P="{a_H}", Q="{a_N}", Qb="{N}", PA="{A_H}"),
            "wrong_hybrid": hyb.format(P="{a_N}", Q="{a_H}", Qb="{H}", PA="{A_N}"),
            "wrong_positive": pos.format(X="{a_N}"),
            "wrong_negative": neg.format(X="{a_A}", Xb="{A}", XA="{A_A}")}


MCQ_WORDINGS: dict[str, dict[str, str]] = {
    "lacks": _mcq("This picture shows {X}.", "This picture lacks {X}.", "This picture shows {P} but lacks {Q}."),
    "absent": _mcq("This photo has {X}.", "{XA} is absent from this photo.",
                   "{PA} is present in this photo, but {Q} is absent."),
    "isnt": _mcq("There is {X} here.", "There isn't {X} here.", "There is {P} here, but there isn't {Q}."),
    "missing": _mcq("This scene depicts {X}.", "{XA} is missing from this scene.",
                    "This scene depicts {P}; {Q} is missing."),
    "cannot_see": _mcq("You can see {X} in this picture.", "You cannot see {X} in this picture.",
                       "You can see {P} but not {Q} in this picture."),
    "no_appears": _mcq("{X} can be seen in this image.", "No {Xb} appears in this image.",
                       "{P} appears in this image, but no {Qb} does."),
    "has_no": _mcq("The image has {X}.", "The image has no {Xb}.", "The image has {P} and no {Qb}."),
    "free_of": _mcq("A picture of {X}.", "A picture free of any {Xb}.", "A picture of {P}, free of any {Qb}."),
    "not_pictured": _mcq("Pictured: {X}.", "Not pictured: {X}.", "Pictured: {P}. Not pictured: {Q}."),
    "lacking": _mcq("An image showing {X}.", "An image lacking {X}.", "An image showing {P} but lacking {Q}."),
}

HELD_OUT = ("without",)


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def _article(name: str) -> str:
    from negbench.inputs.vocab import with_article
    return with_article(name)


def _slots(names: dict[str, str], media: str = "image") -> dict[str, str]:
    s = {"media": media, "a_media": _article(media)}
    for k, v in names.items():
        s[k], s["a_" + k] = v, _article(v)
        s["A_" + k] = _cap(_article(v))
    return s


# ----- NegCap ------------------------------------------------------------------------------
def negcap_variants(original: str, negated: str, order: str, rng: np.random.Generator, k: int) -> list[str]:
    """k captions negating `negated` in k distinct extra wordings (same order)."""
    clause = original.rstrip().rstrip(".!?;,")
    caption = _cap(original.rstrip())
    if caption[-1:] not in ".!?":
        caption += "."
    slots = {"caption": caption, "clause": _cap(clause), "clause_lc": clause[:1].lower() + clause[1:],
             **_slots({"x": negated})}
    picks = rng.choice(len(NEGCAP_WORDINGS), size=min(k, len(NEGCAP_WORDINGS)), replace=False)
    col = 1 if order == "negaff" else 0
    return [_cap(NEGCAP_WORDINGS[i][col].format_map(slots)) for i in picks]


# ----- NegMCQ ------------------------------------------------------------------------------
_CORRECT = ("positive", "negative", "hybrid", "modified_positive")
_WRONG = ("wrong_hybrid", "wrong_positive", "wrong_negative")
_STOP = {"no", "not", "neither", "nor", "but", "except", "is", "are", "and", "in", "this", "image", "video"}


@lru_cache(maxsize=None)
def _pattern(text: str) -> re.Pattern:
    out, seen = [], set()
    for lit, field, _, _ in __import__("string").Formatter().parse(text):
        out.append(re.escape(lit))
        if field is None:
            continue
        if field in ("media",):
            out.append(r"(?:image|video)")
        elif field == "a_media":
            out.append(r"an? (?:image|video)")
        else:
            base = field[2:] if field.startswith("a_") else field
            art = r"(?:an? )?" if field.startswith("a_") else ""
            if base in seen:
                out.append(art + f"(?P={base})")
            else:
                seen.add(base)
                out.append(art + f"(?P<{base}>[^,.;:]+?)")
    return re.compile("".join(out), re.IGNORECASE)


@lru_cache(maxsize=None)
def _set_templates(name: str) -> dict[str, str]:
    from negbench.construct.templates import mcq_templates
    return {r: t.text for r, t in mcq_templates(name).templates.items()}


def parse_question(options, answer: int, sets) -> list[tuple[str, dict]] | None:
    """(role, slot values) per option, parsed against one of `sets` (mcq.json names); None if
    no set explains all options (then the question is simply not augmented)."""
    for s in sets:
        tpl = _set_templates(s)
        parsed = []
        for i, opt in enumerate(options):
            roles = _CORRECT if i == answer else _WRONG
            best = None
            for r in roles:
                m = _pattern(tpl[r]).fullmatch(opt.strip())
                if m and any(_STOP & set(v.lower().split()) for v in m.groupdict().values()):
                    continue   # e.g. "There is {a_N} ..." matching "There is no flower ..."
                if m and (best is None or len(m.groupdict()) > len(best[1])):
                    best = (r, {k: v.lower() for k, v in m.groupdict().items()})
            if best is None:
                break
            parsed.append(best)
        else:
            return parsed
    return None


def mcq_variants(options, answer: int, sets, rng: np.random.Generator, k: int) -> list[list[str]]:
    """Up to k re-renderings of one question in distinct extra wordings (same answer index)."""
    parsed = parse_question(options, answer, sets)
    if parsed is None:
        return []
    names = list(MCQ_WORDINGS)
    out = []
    for i in rng.choice(len(names), size=min(k, len(names)), replace=False):
        tpl = MCQ_WORDINGS[names[i]]
        out.append([_cap(tpl[role].format_map(_slots(vals))) for role, vals in parsed])
    return out


def augment(negcap_rows, mcq_examples, *, k: int, seed: int, sets) -> tuple[dict, list]:
    """Extra NegCap captions {image: [captions]} and extra MCQ examples (copies of the given
    ones with other option wordings) for the trainer."""
    rng = np.random.default_rng([seed, 4242])
    caps: dict[str, list[str]] = {}
    for path, original, negated, order in negcap_rows:
        if len(negated) != 1:
            continue
        caps.setdefault(path, []).extend(negcap_variants(original, negated[0], order, rng, k))
    extra = []
    for e in mcq_examples:
        for opts in mcq_variants(e.options, e.answer, sets, rng, k):
            extra.append(dataclasses.replace(e, options=opts))
    return caps, extra
