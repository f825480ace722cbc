"""NegCap / NegMCQ generation: right by construction, selectable wordings, shardable, resumable."""
from __future__ import annotations

import json
from collections import Counter

import pandas as pd
import pytest
import pyarrow.parquet as pq

from negbench.core.errors import ConfigError
from negbench.construct.negdata import generate_negdata, read_negdata
from negbench.inputs.vocab import builtin_vocab

from negbench_build_fixtures import mcq_caption_truth, write_corpus


@pytest.fixture()
def corpus(tmp_path):
    truth = write_corpus(tmp_path / "corpus" / "corpus.tsv", n=40)
    return tmp_path / "corpus" / "corpus.tsv", truth


def test_negcap_and_negmcq(tmp_path, corpus):
    path, truth = corpus
    m = generate_negdata(path, tmp_path / "out", seed=0, chunk_rows=16)
    vocab = builtin_vocab()
    cap = read_negdata(tmp_path / "out", "negcap")
    mcq = read_negdata(tmp_path / "out", "negmcq")
    assert list(cap.columns) == ["filepath", "caption", "original_caption", "negated_objects", "template_set", "order"]
    assert list(mcq.columns) == ["filepath", "caption_0", "caption_1", "caption_2", "caption_3", "correct_answer",
                                 "correct_answer_template", "caption_types"]
    assert len(mcq) == 40 and 40 < len(cap) <= 120
    for r in cap.itertuples():
        mentioned = set(vocab.extract(r.original_caption)[0])
        assert mentioned <= set(truth[r.filepath])
        for n in r.negated_objects:
            assert n not in mentioned and n in r.caption
        assert r.original_caption.rstrip(".").lower() in r.caption.lower()   # original content kept
        assert r.order in ("affneg", "negaff") and r.template_set in ("default", "no", "not")
        if r.order == "affneg":
            assert r.caption.lower().startswith(r.original_caption.rstrip(".").lower())
    assert set(cap.order) == {"affneg", "negaff"} and set(cap.template_set) == {"default", "no", "not"}
    for r in mcq.itertuples():
        objs = list(vocab.extract(cap[cap.filepath == r.filepath].original_caption.iloc[0])[0])
        caps = [r.caption_0, r.caption_1, r.caption_2, r.caption_3]
        truths = [mcq_caption_truth(c, objs) for c in caps]
        assert truths.count(True) == 1 and truths[r.correct_answer], caps
        assert len(r.caption_types) == 4
        if len(objs) == 1 and r.correct_answer_template.endswith("positive"):
            assert r.correct_answer_template == "modified_positive"
    assert len(set(mcq.correct_answer)) == 4
    assert Counter(mcq.correct_answer_template)["negative"] > 5
    man = json.loads((tmp_path / "out" / "negcap" / "manifest.json").read_text())
    assert man["shards"] == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    assert man["counts"]["negcap"] == len(cap) and man["image_root"] == str(path.parent.resolve())
    assert m["template_sets"] == ["default", "no", "not"]


def test_held_out_wordings(tmp_path, corpus):
    path, _ = corpus
    generate_negdata(path, tmp_path / "o", template_sets=("without", "contain", "neither_nor"))
    cap = read_negdata(tmp_path / "o")
    assert set(cap.template_set) <= {"without", "contain", "neither_nor"}
    assert not cap.caption.str.contains("There is no").any()
    two = cap[cap.template_set == "neither_nor"]
    assert len(two) and all(len(n) == 2 for n in two.negated_objects)
    with pytest.raises(ConfigError, match="unknown template set"):
        generate_negdata(path, tmp_path / "p", template_sets=("nope",))


def test_shards_merge_to_unsharded_and_resume(tmp_path, corpus):
    path, _ = corpus
    generate_negdata(path, tmp_path / "full", seed=1, chunk_rows=10)
    generate_negdata(path, tmp_path / "sh", seed=1, chunk_rows=10, shard="0/2")
    assert sorted(p.name for p in (tmp_path / "sh" / "negcap").glob("*.parquet")) == \
        ["part-00000.parquet", "part-00002.parquet"]
    generate_negdata(path, tmp_path / "sh", seed=1, chunk_rows=10, shard=(1, 2))
    for kind in ("negcap", "negmcq"):
        full = sorted((tmp_path / "full" / kind).glob("*.parquet"))
        assert [p.name for p in full] == sorted(p.name for p in (tmp_path / "sh" / kind).glob("*.parquet"))
        for p in full:
            assert p.read_bytes() == (tmp_path / "sh" / kind / p.name).read_bytes()
        pd.testing.assert_frame_equal(read_negdata(tmp_path / "full", kind), read_negdata(tmp_path / "sh", kind))
    a = json.loads((tmp_path / "full" / "negmcq" / "manifest.json").read_text())
    b = json.loads((tmp_path / "sh" / "negmcq" / "manifest.json").read_text())
    assert a == b
    # resume: finished parts are skipped, a lost part is redone identically
    part = tmp_path / "full" / "negcap" / "part-00001.parquet"
    before = part.read_bytes()
    part.unlink()
    mtime = (tmp_path / "full" / "negcap" / "part-00000.parquet").stat().st_mtime_ns
    m = generate_negdata(path, tmp_path / "full", seed=1, chunk_rows=10)
    assert m["run"]["chunks_written"] == 1 and part.read_bytes() == before
    assert (tmp_path / "full" / "negcap" / "part-00000.parquet").stat().st_mtime_ns == mtime
    with pytest.raises(ConfigError, match="other settings"):
        generate_negdata(path, tmp_path / "full", seed=2, chunk_rows=10)


def test_objects_column_verifies_absence(tmp_path):
    truth = write_corpus(tmp_path / "c.csv", n=30, with_objects=True, sep=",")
    generate_negdata(tmp_path / "c.csv", tmp_path / "o", vocab=None)
    cap = read_negdata(tmp_path / "o")
    for r in cap.itertuples():
        assert not set(r.negated_objects) & set(truth[r.filepath])


def test_cli_negdata(tmp_path, corpus, capsys):
    from negbench.cli import main
    path, _ = corpus
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("person, man, woman\ndog, puppy\ncat\ncar\nbicycle, bike\nchair\ncup, mug\nbottle\n")
    assert main(["negdata", "--corpus", str(path), "--out", str(tmp_path / "nd"), "--vocab", str(vocab),
                 "--template-set", "no,not", "--shard", "0/1"]) == 0
    assert set(read_negdata(tmp_path / "nd").template_set) <= {"no", "not"}
    assert "negatives: not verified against the images" in capsys.readouterr().out   # no --verifier: said


ALL_SETS = ("default", "no", "not", "without", "contain", "neither_nor", "except")


def test_rows_match_the_template_library(tmp_path, corpus):
    """The vectorised renderer writes exactly what `negate_caption` writes, for every wording,
    and every NegMCQ question of every wording has exactly one true option with its types."""
    from negbench.construct.templates import mcq_templates, negate_caption, negation_templates
    path, truth = corpus
    generate_negdata(path, tmp_path / "o", seed=3, template_sets=ALL_SETS, chunk_rows=16)
    cap = read_negdata(tmp_path / "o")
    assert set(cap.template_set) == set(ALL_SETS)
    for r in cap.itertuples():
        ref = negate_caption(negation_templates(r.template_set), r.original_caption, list(r.negated_objects), r.order)
        assert r.caption == ref
        assert not set(r.negated_objects) & set(truth[r.filepath])
    mcq = read_negdata(tmp_path / "o", "negmcq")
    types = {m.templates[role].text: m.templates[role].type for s in ALL_SETS
             for m in [mcq_templates(s)] for role in m.templates}
    assert len(mcq) == 40
    def truths(caps, objs, set_name):
        try:
            return [mcq_caption_truth(c, objs, set_name) for c in caps]
        except AssertionError:      # not this wording
            return None

    for r in mcq.itertuples():
        caps = [r.caption_0, r.caption_1, r.caption_2, r.caption_3]
        # parse against each wording in turn ("features neither N nor N2" also reads as "features A")
        readings = [t for s in ALL_SETS for t in [truths(caps, truth[r.filepath], s)] if t is not None]
        assert any(t.count(True) == 1 and t[r.correct_answer] for t in readings), caps
        assert len(r.caption_types) == 4 and set(r.caption_types) <= set(types.values())


def test_deterministic_and_unicode_capitalisation(tmp_path):
    from negbench.construct.templates import negate_caption, negation_templates
    corpus = tmp_path / "c.tsv"
    rows = ["élan: a dog and a cat", "ﬁne photo of a car!", "ßig chair by a cup", "über cool bottle;",
            "a dog", "a person on a bicycle . ", "no cat here, just a dog"]
    corpus.write_text("filepath\tcaption\n" + "".join(f"i{i}.jpg\t{c}\n" for i, c in enumerate(rows * 3)),
                      encoding="utf-8")
    sets = ("default", "without", "except", "not")
    generate_negdata(corpus, tmp_path / "a", seed=5, template_sets=sets, chunk_rows=7)
    generate_negdata(corpus, tmp_path / "b", seed=5, template_sets=sets, chunk_rows=7)
    for kind in ("negcap", "negmcq"):
        for p in sorted((tmp_path / "a" / kind).glob("*.parquet")):
            assert p.read_bytes() == (tmp_path / "b" / kind / p.name).read_bytes()
    cap = read_negdata(tmp_path / "a")
    assert len(cap)
    for r in cap.itertuples():
        assert r.caption == negate_caption(negation_templates(r.template_set), r.original_caption,
                                           list(r.negated_objects), r.order)
        assert "cat" not in r.negated_objects or not r.original_caption.startswith("élan")
    # "no cat here": cat is negated in the caption, so it is never a present object, and the
    # negatives never include an object the caption mentions
    vocab = builtin_vocab()
    for r in cap.itertuples():
        assert not set(r.negated_objects) & set(vocab.extract(r.original_caption)[0])
    other = generate_negdata(corpus, tmp_path / "c", seed=6, template_sets=sets, chunk_rows=7)
    assert other["counts"]["negcap"] == len(cap)
    assert not all((tmp_path / "c" / "negcap" / p.name).read_bytes() == p.read_bytes()
                   for p in (tmp_path / "a" / "negcap").glob("*.parquet"))


def test_max_rows_reads_only_the_first_rows_and_keys_the_folder(tmp_path, corpus):
    path, _ = corpus
    full = generate_negdata(path, tmp_path / "full", seed=0, chunk_rows=16)
    first = generate_negdata(path, tmp_path / "first", seed=0, chunk_rows=16, max_rows=20)
    assert first["counts"]["rows_in"] == 20 < full["counts"]["rows_in"]
    # the first chunk (rows 1-16) is the same either way: same seed per chunk, same statistics
    a = pq.read_table(tmp_path / "full" / "negcap" / "part-00000.parquet")
    b = pq.read_table(tmp_path / "first" / "negcap" / "part-00000.parquet")
    assert a.equals(b)
    with pytest.raises(ConfigError, match="other settings"):
        generate_negdata(path, tmp_path / "first", seed=0, chunk_rows=16, max_rows=30)
