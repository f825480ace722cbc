"""Extra negation wordings for fine-tuning (negbench.construct.wordings)."""
import random
import re

import numpy as np
import pytest

from negbench.construct.templates import CORRECT_ROLES, make_mcq, mcq_templates
from negbench.construct import wordings as W

SETS = ("default", "no", "not", "contain", "except")
OBJECTS = ["apple", "dog", "umbrella", "owl", "car", "cup"]


def test_no_held_out_wording_anywhere():
    texts = [t for pair in W.NEGCAP_WORDINGS for t in pair]
    texts += [t for s in W.MCQ_WORDINGS.values() for t in s.values()]
    for t in texts:
        assert not re.search(r"\bwithout\b", t, re.IGNORECASE), t


@pytest.mark.parametrize("set_name", SETS)
def test_mcq_parse_recovers_roles_and_objects(set_name):
    rng = random.Random(0)
    tset = mcq_templates(set_name)
    for i in range(60):
        objs = rng.sample(OBJECTS, 4)
        present = objs[:1 + i % 2]
        q = make_mcq(tset, present, [objs[3]], CORRECT_ROLES[i % 3], rng, hybrid_object="A")
        parsed = W.parse_question(list(q.captions), q.correct, [set_name])
        assert parsed is not None, q.captions
        assert [r for r, _ in parsed] == list(q.roles)
        for (role, vals), tmpl_role in zip(parsed, q.roles):
            t = tset[tmpl_role]
            for slot in t.present + t.absent:
                assert vals[slot] == q.bindings[slot]
        for opts in W.mcq_variants(list(q.captions), q.correct, [set_name], np.random.default_rng(i), 3):
            assert len(opts) == 4
            assert all(o[:1].isupper() for o in opts)


def test_negcap_variants_mention_the_negated_object_and_keep_order():
    rng = np.random.default_rng(0)
    for order in ("affneg", "negaff"):
        vs = W.negcap_variants("a red car on the grass.", "owl", order, rng, 5)
        assert len(set(vs)) == 5
        for v in vs:
            assert "owl" in v and "car" in v and v[:1].isupper()
