"""The rule-based negation parser on a table of captions: every NegBench template set (MCQ and
negated retrieval), the extra fine-tuning wordings, multi-object and attribute negation, captions
without negation and paraphrase-like patterns."""
from __future__ import annotations

import itertools
import re

import numpy as np
import pytest

from negbench.core.negation_parse import PARSER_VERSION, parse_negation
from negbench.construct.templates import mcq_templates, negate_caption, negation_templates, template_set_names
from negbench.construct.wordings import MCQ_WORDINGS, NEGCAP_WORDINGS, negcap_variants
from negbench.inputs.vocab import with_article

# (A, B, N, N2): one-word and two-word object names, so the object phrase's extent is tested too
OBJECTS = [("cat", "car", "dog", "bird"), ("teddy bear", "chair", "traffic light", "stop sign"),
           ("apple", "umbrella", "fire hydrant", "tree")]
CAPTIONS = ["A man rides a bike on the street.", "two cups on a wooden table"]


def _mentions(text: str, name: str) -> bool:
    return re.search(rf"\b{re.escape(name)}\b", text, re.IGNORECASE) is not None


def _slots(bind: dict, media: str) -> dict:
    s = {"media": media, "a_media": with_article(media)}
    for k, v in bind.items():
        s[k], s["a_" + k] = v, with_article(v)
    return s


def _mcq_cases():
    for name in template_set_names("mcq"):
        for role, t in mcq_templates(name).templates.items():
            for (a, b, n, n2), media in itertools.product(OBJECTS, ("image", "video")):
                bind = {"A": a, "B": b, "H": b, "N": n, "N2": n2}
                yield pytest.param(t.render(_slots(bind, media)), [bind[s] for s in t.present],
                                   [bind[s] for s in t.absent], id=f"mcq-{name}-{role}-{a}-{media}")


@pytest.mark.parametrize("caption, present, absent", list(_mcq_cases()))
def test_every_mcq_template_negates_exactly_its_absent_objects(caption, present, absent):
    p = parse_negation(caption)
    assert sorted(p.negated) == sorted(absent), caption
    for obj in present:
        assert _mentions(p.affirmed, obj), (caption, p.affirmed)
    for obj in absent:
        assert not _mentions(p.affirmed, obj), (caption, p.affirmed)
    if not absent:
        assert p.affirmed == caption and p.cues == ()


@pytest.mark.parametrize("name", template_set_names("retrieval"))
@pytest.mark.parametrize("order", ["affneg", "negaff"])
@pytest.mark.parametrize("caption", CAPTIONS)
def test_every_negated_retrieval_template_keeps_the_caption_and_negates_the_object(name, order, caption):
    tset = negation_templates(name)
    for _, _, n, n2 in OBJECTS:
        text = negate_caption(tset, caption, [n, n2], order=order)
        p = parse_negation(text)
        assert list(p.negated) == [n, n2][:tset.n_absent], text
        # the affirmed part is the original caption, whatever the wording around it
        assert p.affirmed.lower().rstrip(".") == caption.lower().rstrip("."), (text, p.affirmed)


@pytest.mark.parametrize("wording", range(len(NEGCAP_WORDINGS)))
@pytest.mark.parametrize("order", ["affneg", "negaff"])
def test_extra_negcap_wordings(wording, order):
    rng = np.random.default_rng(wording)
    for _, _, n, _ in OBJECTS:
        texts = negcap_variants(CAPTIONS[0], n, order, rng, len(NEGCAP_WORDINGS))
        for text in texts:
            p = parse_negation(text)
            assert p.negated == (n,), text
            assert p.affirmed.lower().rstrip(".") == CAPTIONS[0].lower().rstrip("."), (text, p.affirmed)


@pytest.mark.parametrize("wording", sorted(MCQ_WORDINGS))
def test_extra_mcq_wordings(wording):
    for a, b, n, _ in OBJECTS:
        slots = {}
        for k, v in {"A": a, "B": b, "H": b, "N": n}.items():
            slots[k], slots["a_" + k] = v, with_article(v)
            slots["A_" + k] = with_article(v).capitalize()
        meaning = {"positive": ([a, b], []), "negative": ([], [n]), "hybrid": ([b], [n]),
                   "wrong_negative": ([], [a]), "wrong_positive": ([n], []), "wrong_hybrid": ([n], [b])}
        for role, (present, absent) in meaning.items():
            text = MCQ_WORDINGS[wording][role].format_map(slots)
            p = parse_negation(text)
            assert list(p.negated) == absent, (text, p)
            assert all(_mentions(p.affirmed, o) for o in present), (text, p.affirmed)


TABLE = [
    # (caption, affirmed, negated)
    ("A dog runs on the beach.", "A dog runs on the beach.", ()),
    ("This image features a dog and a cat", "This image features a dog and a cat", ()),
    ("Nobody knows where no one goes", "Nobody knows where no one goes", ()),
    ("Not only a dog but also a cat.", "Not only a dog but also a cat.", ()),
    # multi-object
    ("There are no dogs or cats in this picture.", "", ("dogs", "cats")),
    ("This image does not feature a traffic light or a stop sign.", "", ("traffic light", "stop sign")),
    ("A kitchen without a fridge and a microwave.", "A kitchen.", ("fridge", "microwave")),
    ("A street with no cars and no people.", "A street.", ("cars", "people")),
    ("A living room with no dog and no cat, but a sofa.", "A living room, a sofa.", ("dog", "cat")),
    # the scope of "no" ends at "and": the people are affirmed
    ("A beach with no dogs and people swimming.", "A beach with people swimming.", ("dogs",)),
    # attribute negation
    ("The car is not red.", "The car.", ("red car",)),
    ("A car that is not red is parked on the street.", "A car is parked on the street.", ("red car",)),
    ("The dogs aren't brown.", "The dogs.", ("brown dogs",)),
    # paraphrase-like patterns (the published captions are LLM paraphrases of the templates)
    ("A man with no hat rides a bike.", "A man rides a bike.", ("hat",)),
    ("There's no dog in this image.", "", ("dog",)),
    ("The image doesn\u2019t show any cars.", "", ("cars",)),
    ("A dog cannot be seen in this picture.", "", ("dog",)),
    ("This photo shows a teddy bear sitting on a chair, but no dog is present.",
     "This photo shows a teddy bear sitting on a chair.", ("dog",)),
    ("A cat is visible, while a dog is nowhere to be seen.", "A cat is visible.", ("dog",)),
    ("A plate of food, devoid of any forks.", "A plate of food.", ("forks",)),
    ("There isn't any sign of a bicycle near the tree.", "Near the tree.", ("bicycle",)),
    ("Pictured: a cat. Not pictured: a dog.", "A cat.", ("dog",)),
]


@pytest.mark.parametrize("caption, affirmed, negated", TABLE)
def test_caption_table(caption, affirmed, negated):
    p = parse_negation(caption)
    assert (p.affirmed, p.negated) == (affirmed, negated)
    assert p.has_negation == bool(negated) and len(p.cues) == len(p.negated)


def test_parser_version_is_a_plain_tag():
    assert re.fullmatch(r"[a-z]+-\d+", PARSER_VERSION)
