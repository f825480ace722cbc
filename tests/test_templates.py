"""Templates are data: the paper's wordings exactly, and every set means what it says."""
from __future__ import annotations

import itertools
import random

import pytest

from negbench.core.errors import ConfigError
from negbench.construct.templates import (CORRECT_ROLES, chexpert_binary, load_family, make_mcq, mcq_templates,
                                negate_caption, negation_templates, template_set_names)

from negbench_build_fixtures import default_truth, mcq_caption_truth

OBJECTS = ["person", "dog", "apple", "umbrella", "hair drier", "car"]


def test_paper_wording_exact():
    t = mcq_templates("default")
    rng = random.Random(0)
    q = make_mcq(t, ["dog", "car"], ["apple"], "hybrid", rng)
    by_role = dict(zip(q.roles, q.captions))
    assert by_role["hybrid"] == "This image features car, but not apple."
    assert by_role["wrong_hybrid"] == "This image features apple, but not car."
    assert by_role["wrong_positive"] == "This image features apple."
    assert by_role["wrong_negative"] == "This image does not feature dog."
    q = make_mcq(t, ["dog", "car"], ["apple"], "positive", rng, media="video")
    assert dict(zip(q.roles, q.captions))["positive"] == "This video features dog and car."
    q = make_mcq(t, ["dog"], ["apple"], "positive", rng)
    assert q.template == "modified_positive" and q.captions[q.correct] == "This image features dog."
    q = make_mcq(t, ["dog", "car"], ["apple"], "negative", rng, hybrid_object="A")
    assert dict(zip(q.roles, q.captions))["wrong_hybrid"] == "This image features apple, but not dog."
    neg = negation_templates("default")
    assert negate_caption(neg, "A man rides a bike", ["dog"]) == "A man rides a bike. There is no dog in the image."
    assert negate_caption(neg, "A man rides a bike.", ["dog"], "negaff") == \
        "There is no dog in the image. A man rides a bike."


@pytest.mark.parametrize("set_name", template_set_names("mcq"))
def test_every_mcq_set_is_semantically_right(set_name):
    t = mcq_templates(set_name)
    rng = random.Random(1)
    for present, negs in itertools.product([["dog"], ["dog", "car"], ["person", "hair drier", "car"]],
                                           [["apple", "umbrella"]]):
        for role in CORRECT_ROLES:
            q = make_mcq(t, present[:2], negs, role, rng)
            truths = [mcq_caption_truth(c, present, set_name) for c in q.captions]
            assert truths.count(True) == 1 and truths[q.correct], (set_name, q.captions)
            assert len(set(q.captions)) == 4
            assert q.caption_types[q.correct] == ("positive" if role == "positive" else role)
            if set_name == "default":
                assert [default_truth(c, present) for c in q.captions] == truths


def test_unknown_set_is_named():
    with pytest.raises(ConfigError, match="did you mean 'without'"):
        mcq_templates("withot")


@pytest.mark.parametrize("set_name", template_set_names("retrieval"))
def test_negation_sets_both_orders(set_name):
    t = negation_templates(set_name)
    absent = ["umbrella", "apple"][:t.n_absent]
    a = negate_caption(t, "a dog on a beach.", absent, "affneg")
    b = negate_caption(t, "a dog on a beach.", absent, "negaff")
    for text in (a, b):
        assert "dog on a beach" in text and all(x in text for x in absent) and text[0].isupper()
    assert a.lower().startswith("a dog") and not b.lower().startswith("a dog")


def test_neither_nor_needs_two():
    with pytest.raises(ValueError, match="two absent"):
        negate_caption(negation_templates("neither_nor"), "a dog.", ["cat"])


def test_chexpert_binary_and_family_files():
    rng = random.Random(0)
    (c0, c1), k = chexpert_binary("edema", True, rng)
    assert [c0, c1][k] == "This image shows edema." and "This image does not show edema." in (c0, c1)
    (c0, c1), k = chexpert_binary("edema", False, rng)
    assert [c0, c1][k] == "This image does not show edema."
    assert load_family("mcq")["version"] >= 1 and "chexpert" in template_set_names("mcq")
