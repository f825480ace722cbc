"""Co-occurrence hard negatives and absence verifiers."""
from __future__ import annotations

import random

import pytest

from negbench.construct.concepts import (AnnotationVerifier, CaptionVerifier, ConceptConfig, Cooccurrence, OwlVerifier,
                               calibrate_threshold, choose_negatives, make_verifier, sample_rng)
from negbench.core.errors import UnknownNameError
from negbench.inputs.records import AnnotatedSample

NAMES = ["person", "dog", "frisbee", "car", "toaster", "giraffe"]
SCENES = [["person", "dog", "frisbee"]] * 6 + [["person", "car"]] * 4 + [["dog", "frisbee"]] * 3 + [["toaster"]]


def stats():
    return Cooccurrence.from_object_sets(NAMES, SCENES)


def test_counts():
    s = stats()
    i = s.index
    assert s.n_samples == 14 and s.freq[i["person"]] == 10
    assert s.pairs[i["dog"]][i["frisbee"]] == 9 and s.pairs[i["person"]][i["toaster"]] == 0


def test_propose_is_plausible_absent_and_seeded():
    s = stats()
    for seed in range(30):
        negs, fb = s.propose(["person"], 2, random.Random(seed))
        assert "person" not in negs and set(negs) <= {"dog", "frisbee", "car"} and not fb
    assert s.propose(["person"], 2, random.Random(5)) == s.propose(["person"], 2, random.Random(5))
    negs, _ = s.propose(["person"], 3, random.Random(0), exclude=["dog"])
    assert "dog" not in negs
    # min-support guard: car co-occurs with person 4 times, dog/frisbee 6 times
    negs, _ = s.propose(["person"], 3, random.Random(0), min_support=5)
    assert set(negs) == {"dog", "frisbee"}
    # giraffe never occurs: never proposed; toaster co-occurs with nothing -> frequency fallback
    negs, fb = s.propose(["toaster"], 2, random.Random(0))
    assert fb and "giraffe" not in negs and "toaster" not in negs
    assert s.propose(["toaster"], 2, random.Random(0), fallback=False) == ([], False)


def test_sample_rng_depends_only_on_key():
    assert sample_rng(0, "a").random() == sample_rng(0, "a").random() != sample_rng(1, "a").random()


def test_annotation_and_caption_verifiers():
    ann = AnnotatedSample("1", "x.jpg", ("dog",), uncertain=("cat",))
    assert AnnotationVerifier().verify(ann, ["dog", "cat", "car"]) == [False, None, True]
    cx = AnnotatedSample("2", "x.jpg", ("person", "edema"), absent=("pneumonia",), uncertain=("fracture",))
    assert AnnotationVerifier().verify(cx, ["pneumonia", "fracture", "edema", "atelectasis"]) == \
        [True, None, False, None]
    extracted = AnnotatedSample("3", "x.jpg", ("dog",), ("a dog",), objects_from_annotations=False)
    assert AnnotationVerifier().verify(extracted, ["car"]) == [None]
    assert CaptionVerifier().verify(extracted, ["car", "dog"]) == [True, False]


def test_choose_negatives_drops_unverifiable():
    s = stats()
    cfg = ConceptConfig(k=2)
    extracted = AnnotatedSample("3", "x.jpg", ("person",), ("a person",), objects_from_annotations=False)
    c = choose_negatives(extracted, s, AnnotationVerifier(), random.Random(0), cfg)
    assert c.negatives == [] and c.reason == "unverifiable_negatives"
    ok = AnnotatedSample("4", "x.jpg", ("person",))
    c = choose_negatives(ok, s, AnnotationVerifier(), random.Random(0), cfg)
    assert len(c.negatives) == 2 and "person" not in c.negatives


def test_verifier_registry_and_owl_target_size():
    assert isinstance(make_verifier("annotations"), AnnotationVerifier)
    with pytest.raises(UnknownNameError, match="available"):
        make_verifier("yolo")
    v = object.__new__(OwlVerifier)   # no weights in tests: check the box-size rule alone
    v.is_v2 = True
    assert v.target_size(640, 480) == (640, 640)   # OWLv2 pads to a square
    v.is_v2 = False
    assert v.target_size(640, 480) == (480, 640)   # OWL-ViT: (height, width)


def test_calibrate_threshold():
    assert calibrate_threshold([0.3, 0.25, 0.31, 0.28] * 5, percentile=5) == pytest.approx(0.25)
