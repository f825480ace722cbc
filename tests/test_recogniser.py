"""The recogniser absence verifier: trained on annotated data, used by negdata on a caption-only corpus."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from _train_fixtures import TINY_MODEL
from negbench.cli import main
from negbench.construct.concepts import make_verifier
from negbench.construct.negdata import generate_negdata
from negbench.construct.recogniser import (META, RecogniserConfig, RecogniserVerifier, _held_out_quality,
                                           calibrated_threshold, train_recogniser)
from negbench.core.errors import ConfigError
from negbench.inputs.records import AnnotatedSample
from negbench.inputs.sources import read_source
from negbench.inputs.vocab import load_vocab
from negbench.world import generate_world


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("negworld") / "w"
    generate_world(out, seed=0, size="tiny", workers=1)
    return out


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> str:
    from negbench.models.builtin import create_builtin_model
    return create_builtin_model(tmp_path_factory.mktemp("m") / "m", seed=0, **TINY_MODEL)


@pytest.fixture(scope="module")
def recogniser(world, model, tmp_path_factory) -> Path:
    data = read_source("coco", world / "coco", split="train", vocab=load_vocab(world / "vocab.txt"))
    out = tmp_path_factory.mktemp("rec") / "r"
    train_recogniser(data, out, RecogniserConfig(model=model, steps=50, device="cpu"))
    return out


def test_threshold_verifies_the_keep_absent_share_of_absent_objects():
    g = torch.Generator().manual_seed(0)
    probs, y = torch.rand(200, 10, generator=g), (torch.rand(200, 10, generator=g) < 0.3).float()
    t = calibrated_threshold(probs, y, 0.9)
    absent = probs[y < 0.5]
    assert (absent < t).float().mean() <= 0.9 + 1 / len(absent)
    assert (absent <= t).float().mean() >= 0.9 - 1 / len(absent)
    for bad in (0.0, 1.5):
        with pytest.raises(ConfigError, match="keep_absent"):
            RecogniserConfig(model="builtin:x", keep_absent=bad)


def test_held_out_quality_counts_kept_absent_objects():
    probs = torch.tensor([[0.1, 0.9], [0.6, 0.2]])
    y = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    q = _held_out_quality(probs, y, 0.5)
    assert q == {"absent_verdicts": 2, "absent_verdicts_present": 0, "absent_kept": 1.0, "present_recall": 1.0}
    q = _held_out_quality(probs, y, 0.15)
    assert q["absent_kept"] == 0.5 and q["absent_verdicts"] == 1


def test_recogniser_folder_records_what_it_was_trained_on(recogniser, model, world):
    meta = json.loads((recogniser / META).read_text())
    assert meta["model"] == model and meta["trained_on"]["split"] == "train"
    assert 0.0 < meta["threshold"] < 1.0
    assert meta["trained_on"]["samples"] + meta["trained_on"]["held_out"] == 40
    assert set(meta["categories"]) == {line.split(",")[0] for line in (world / "vocab.txt").read_text().splitlines()}


def test_verdicts_named_objects_are_present_unknown_ones_cannot_tell(recogniser, world):
    v = make_verifier("recogniser", model=str(recogniser), device="cpu")
    sample = AnnotatedSample("0", "images/000000.jpg", ("cloud",), ("a cloud",), objects_from_annotations=False)
    verdicts = v.verify(sample, ["cloud", "sun", "zebra"], world / "corpus")
    assert verdicts[0] is False and isinstance(verdicts[1], bool) and verdicts[2] is None
    # a threshold of 0 calls nothing absent, 1.0 everything unnamed
    assert RecogniserVerifier(str(recogniser), threshold=0.0).verify(sample, ["sun"], world / "corpus") == [False]
    assert RecogniserVerifier(str(recogniser), threshold=1.0).verify(sample, ["sun"], world / "corpus") == [True]


def test_batched_verdicts_equal_one_by_one(recogniser, world):
    v = RecogniserVerifier(str(recogniser), device="cpu")
    samples = [AnnotatedSample(str(i), f"images/{i:06d}.jpg", ("cloud",), objects_from_annotations=False)
               for i in range(5)]
    cands = [["sun", "bird"], ["moon"], ["kite", "star", "sun"], ["tree"], ["ball"]]
    assert v.verify_many(samples, cands, world / "corpus") == [v.verify(s, c, world / "corpus")
                                                              for s, c in zip(samples, cands)]


def test_negdata_with_the_recogniser_counts_refused_negatives(recogniser, world, tmp_path):
    corpus = world / "corpus" / "corpus.tsv"
    plain = generate_negdata(corpus, tmp_path / "plain", vocab=world / "vocab.txt")
    strict = generate_negdata(corpus, tmp_path / "strict", vocab=world / "vocab.txt",
                              verifier=RecogniserVerifier(str(recogniser), threshold=0.5))
    assert strict["drops"].get("negatives_failed_verification", 0) > 0
    # refused candidates are replaced from the 3x oversampled proposals, so little is lost ...
    assert 0 < strict["counts"]["negcap"] <= plain["counts"]["negcap"]
    # ... but a recogniser that calls nothing absent leaves nothing to negate
    none = generate_negdata(corpus, tmp_path / "none", vocab=world / "vocab.txt",
                            verifier=RecogniserVerifier(str(recogniser), threshold=0.0))
    assert none["counts"].get("negcap", 0) == 0 and none["drops"]["no_negative"] > 0
    # another verifier (threshold) makes other data: the folder refuses to mix them
    with pytest.raises(ConfigError, match="other settings"):
        generate_negdata(corpus, tmp_path / "strict", vocab=world / "vocab.txt",
                         verifier=RecogniserVerifier(str(recogniser), threshold=0.2))


def test_cli_trains_and_negdata_uses_it(world, model, tmp_path, capsys):
    rec = tmp_path / "rec"
    assert main(["recogniser", "--model", model, "--data", str(world / "coco"), "--vocab", str(world / "vocab.txt"),
                 "--out", str(rec), "--device", "cpu"]) == 0
    assert "absence threshold" in capsys.readouterr().out
    assert main(["negdata", "--corpus", str(world / "corpus" / "corpus.tsv"), "--vocab", str(world / "vocab.txt"),
                 "--out", str(tmp_path / "nd"), "--verifier", "recogniser", "--verifier-model", str(rec)]) == 0
    config = json.loads((tmp_path / "nd" / ".negdata" / "config.json").read_text())["config"]
    assert config["verifier"].startswith("recogniser:")


def test_not_a_recogniser_folder_is_a_clear_error(tmp_path, capsys):
    rc = main(["negdata", "--corpus", str(tmp_path / "c.tsv"), "--out", str(tmp_path / "o"),
               "--verifier", "recogniser", "--verifier-model", str(tmp_path)])
    assert rc == 2 and "not a recogniser folder" in capsys.readouterr().err


def test_unreadable_training_image_is_an_error_naming_it(model, tmp_path):
    from negbench.construct.recogniser import embed_media
    from negbench.models.base import load_model
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not a jpeg")
    with pytest.raises(ConfigError, match="broken.jpg"):
        embed_media(load_model(model, device="cpu"), [bad])
