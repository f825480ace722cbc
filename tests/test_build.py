"""`negbench build`: every question right by construction, deterministic, shardable, eval-ready."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from negbench.construct.build import build_benchmark, check_task_files, merge_shards
from negbench.world.suite import build_world_suite
from negbench.core.errors import ConfigError
from negbench.inputs.formats import read_task_file
from negbench.inputs.sources import SourceError
from negbench.inputs.tasks import load_task_file

from negbench_build_fixtures import (FINDINGS, default_truth, mcq_caption_truth, write_chexpert, write_coco,
                                     write_msrvtt, write_voc)


def _specs(yaml_path):
    return {s.name: s for s in load_task_file(yaml_path)}


def _read(spec):
    return read_task_file(spec.resolve_file(), spec.kind, spec.resolve_media_root(), check_media=True)


def _check_mcq(spec, truth_of, set_name=None):
    data = _read(spec)
    assert data.items
    templates = Counter()
    for it in data.items:
        objects = truth_of(it.media)
        truths = [mcq_caption_truth(c, objects, set_name) for c in it.captions]
        assert truths.count(True) == 1 and truths[it.correct_answer], it
        if set_name == "default":
            assert [default_truth(c, objects) for c in it.captions] == truths
        templates[it.template] += 1
    return templates, data.items


@pytest.fixture(scope="module")
def coco_build(tmp_path_factory):
    root = tmp_path_factory.mktemp("coco")
    truth = write_coco(root / "coco", n=30)
    out = root / "out"
    res = build_benchmark("coco", root / "coco", out, tasks=("mcq", "retrieval", "hardneg"),
                          template_sets=("default", "without", "neither_nor"), seed=0)
    by_media = {f"val2017/{i - 1:012d}.jpg": objs for i, objs in truth.items()}
    return res, by_media, out


def test_coco_mcq_semantics_and_balance(coco_build):
    res, truth, _ = coco_build
    specs = _specs(res.tasks_yaml)
    assert {"built_coco_mcq", "built_coco_negated_retrieval", "built_coco_retrieval",
            "built_coco_mcq_without"} <= set(specs)
    templates, items = _check_mcq(specs["built_coco_mcq"], truth.get, "default")
    _check_mcq(specs["built_coco_mcq_without"], truth.get, "without")
    _check_mcq(specs["built_coco_mcq_neither_nor"], truth.get, "neither_nor")
    n = sum(templates.values())
    assert n >= 60
    pos = templates["positive"] + templates["modified_positive"]
    for share in (pos / n, templates["negative"] / n, templates["hybrid"] / n):
        assert abs(share - 1 / 3) < 0.08
    answers = Counter(it.correct_answer for it in items)
    assert set(answers) == {0, 1, 2, 3}
    assert all(it.caption_types and len(it.caption_types) == 4 for it in items)


def test_coco_negated_retrieval(coco_build):
    res, truth, out = coco_build
    specs = _specs(res.tasks_yaml)
    neg = _read(specs["built_coco_negated_retrieval"])
    plain = _read(specs["built_coco_retrieval"])
    assert len(plain.items) == 30 and neg.items
    originals = {it.media: it.captions for it in plain.items}
    for it in neg.items:
        for cap, orig in zip(it.captions, originals[it.media]):
            assert cap.lower().startswith(orig.rstrip(".").lower())   # affirmation first
            absent = cap.split("There is no ")[1].split(" in the image.")[0]
            assert absent not in truth[it.media]              # never annotated present
    man = json.loads((out / "COCO_val2017_negated_retrieval.csv.manifest.json").read_text())
    assert man["seed"] == 0 and man["template_set"] == "default" and man["counts"]["items"] == len(neg.items)
    assert man["source"]["source"] == "coco"


def test_hardneg_pairs(coco_build):
    res, truth, _ = coco_build
    spec = _specs(res.tasks_yaml).get("built_coco_hardneg_retrieval")
    assert spec is not None
    items = _read(spec).items
    assert len(items) % 2 == 0 and items
    for q, partner in zip(items[::2], items[1::2]):
        n = q.captions[0].split("There is no ")[1].split(" in the image.")[0]
        assert n not in truth[q.media] and n in truth[partner.media]
        assert set(truth[q.media]) & set(truth[partner.media])


def test_determinism_and_shards(tmp_path):
    write_coco(tmp_path / "coco", n=20)
    a = build_benchmark("coco", tmp_path / "coco", tmp_path / "a", seed=3)
    b = build_benchmark("coco", tmp_path / "coco", tmp_path / "b", seed=3)
    c = build_benchmark("coco", tmp_path / "coco", tmp_path / "c", seed=4)
    for fa, fb in zip(a.files, b.files):
        assert fa.read_bytes() == fb.read_bytes()
        assert Path(str(fa) + ".manifest.json").read_bytes() == Path(str(fb) + ".manifest.json").read_bytes()
    assert (tmp_path / "a" / "COCO_val2017_mcq.csv").read_bytes() != (tmp_path / "c" / "COCO_val2017_mcq.csv").read_bytes()
    for i in range(2):
        build_benchmark("coco", tmp_path / "coco", tmp_path / "s", seed=3, shard=(i, 2))
    merge_shards(tmp_path / "s")
    for f in a.files:
        assert (tmp_path / "s" / f.name).read_bytes() == f.read_bytes(), f.name
    assert set(_specs(tmp_path / "s" / "tasks.yaml")) == set(_specs(a.tasks_yaml))


def test_voc_msrvtt_chexpert(tmp_path):
    vt = write_voc(tmp_path / "VOC2007")
    res = build_benchmark("voc", tmp_path / "VOC2007", tmp_path / "voc", name="v")
    spec = _specs(res.tasks_yaml)["v_voc2007_mcq"]
    assert Path(spec.file).name == "VOC2007_mcq.csv"
    names = lambda media: ["dining table" if o == "diningtable" else o for o in vt[Path(media).stem]]
    _check_mcq(spec, names, "default")
    assert any("retrieval" in s for s in res.skipped_tasks)   # VOC has no captions

    mt = write_msrvtt(tmp_path / "msrvtt")
    res = build_benchmark("msrvtt", tmp_path / "msrvtt", tmp_path / "m", name="m")
    specs = _specs(res.tasks_yaml)
    assert specs["m_msrvtt_mcq"].modality == "video"
    items = _read(specs["m_msrvtt_mcq"]).items
    assert all("video" in c for it in items for c in it.captions)
    _check_mcq(specs["m_msrvtt_mcq"], lambda m: mt[Path(m).stem], "default")
    # without exhaustive labels, negatives are unverifiable -> dropped and counted, never kept
    (tmp_path / "msrvtt" / "objects.json").unlink()
    res = build_benchmark("msrvtt", tmp_path / "msrvtt", tmp_path / "m2", tasks=("mcq",))
    assert res.drops["unverifiable_negatives"] == 8 and _read(_specs(res.tasks_yaml)["built_msrvtt_mcq"]).items == []
    res = build_benchmark("msrvtt", tmp_path / "msrvtt", tmp_path / "m3", tasks=("mcq",), verifier="captions")
    assert _read(_specs(res.tasks_yaml)["built_msrvtt_mcq"]).items

    ct = write_chexpert(tmp_path / "cx")
    res = build_benchmark("chexpert", tmp_path / "cx", tmp_path / "c", tasks=("mcq", "binary"), name="c")
    specs = _specs(res.tasks_yaml)
    assert {"c_chexpert_binary_mcq", "c_chexpert_binary_mcq_control", "c_chexpert_mcq",
            "c_chexpert_mcq_control"} <= set(specs)
    labels = lambda media: {f.lower(): v for f, v in ct[media].items() if f != "No Finding"}
    for it in _read(specs["c_chexpert_binary_mcq"]).items:
        text = it.captions[it.correct_answer]
        finding = text.replace("This image does not show ", "").replace("This image shows ", "").rstrip(".")
        want = "0.0" if "does not" in text else "1.0"
        assert labels(it.media)[finding] == want       # uncertain/blank labels are never asked
    for it in _read(specs["c_chexpert_binary_mcq_control"]).items:
        assert not any("not" in c for c in it.captions)
        f_true = it.captions[it.correct_answer].replace("This image shows ", "").rstrip(".")
        assert labels(it.media)[f_true] == "1.0"
    present = lambda media: [f for f, v in labels(media).items() if v == "1.0"]
    for it in _read(specs["c_chexpert_mcq"]).items:
        lab = labels(it.media)
        truths = []
        for c in it.captions:   # negatives must be labelled 0.0, not uncertain
            truths.append(mcq_caption_truth(c.replace(" shows ", " features ").replace("does not show", "does not feature"),
                                            present(it.media), "default"))
        assert truths.count(True) == 1 and truths[it.correct_answer]
        for c in it.captions:
            if "but not " in c or "does not show" in c:
                n = c.split("not ")[-1].replace("show ", "").rstrip(".")
                assert lab[n] in ("0.0", "1.0")


def test_bad_inputs(tmp_path):
    write_coco(tmp_path / "coco", n=5)
    with pytest.raises(ConfigError, match="unknown template set 'withot'"):
        build_benchmark("coco", tmp_path / "coco", tmp_path / "o", template_sets=("withot",))
    with pytest.raises(ConfigError, match="unknown task kind"):
        build_benchmark("coco", tmp_path / "coco", tmp_path / "o", tasks=("mcqq",))
    d = json.loads((tmp_path / "coco" / "annotations" / "instances_val2017.json").read_text())
    d["annotations"][0]["category_id"] = 77
    (tmp_path / "coco" / "annotations" / "instances_val2017.json").write_text(json.dumps(d))
    with pytest.raises(SourceError, match="unknown category id 77"):
        build_benchmark("coco", tmp_path / "coco", tmp_path / "o")
    res = build_benchmark("coco", tmp_path / "coco", tmp_path / "o", skip_invalid=True)
    man = json.loads((tmp_path / "o" / "COCO_val2017_mcq.csv.manifest.json").read_text())
    assert man["drops"]["unknown_category_id"] == 1 and man["dropped_rows"][0]["column"] == "annotations.category_id"
    assert res.tasks_yaml.is_file()


def test_cli_build_and_world_suite(tmp_path):
    from negbench.cli import main
    from negbench.world import generate_world
    write_coco(tmp_path / "coco", n=10)
    assert main(["build", "coco", "--src", str(tmp_path / "coco"), "--out", str(tmp_path / "cli"),
                 "--template-set", "default,no", "--seed", "1"]) == 0
    assert "built_coco_mcq_no" in _specs(tmp_path / "cli" / "tasks.yaml")
    assert main(["build", "coco", "--src", str(tmp_path / "nowhere"), "--out", str(tmp_path / "x")]) == 2

    generate_world(tmp_path / "world", seed=0, size="tiny", workers=1)
    path = build_world_suite(tmp_path / "world", tmp_path / "suite", seed=0)
    counts = check_task_files(path)   # every task readable with media found, no --data-root
    import yaml
    doc = yaml.safe_load(path.read_text())
    assert doc["suites"]["world-core"] == ["world_coco_mcq", "world_coco_negated_retrieval", "world_coco_retrieval",
                                           "world_voc_mcq"]
    assert set(doc["suites"]["world"]) >= {"world_msrvtt_mcq", "world_msrvtt_negated_retrieval",
                                           "world_chexpert_binary_mcq", "world_chexpert_binary_mcq_control",
                                           "world_chexpert_mcq", "world_coco_mcq_without",
                                           "world_coco_negated_retrieval_without", "world_msrvtt_retrieval"}
    assert all(v > 0 for k, v in counts.items()), counts
    vocab = [line.split(",")[0] for line in (tmp_path / "world" / "vocab.txt").read_text().splitlines()]
    objs = json.loads((tmp_path / "world" / "msrvtt" / "objects.json").read_text())
    spec = _specs(path)["world_msrvtt_mcq"]
    _check_mcq(spec, lambda m: objs[Path(m).stem], "default")
    assert vocab


@pytest.mark.parametrize("flags", [["--steps", "2"], ["--generator", "diffusers:x", "--no-verify"], ["--device", "cpu"]])
def test_a_dataset_build_refuses_the_options_only_hardneg_syn_reads(tmp_path, capsys, flags):
    """`build coco --steps 2` used to build as if the flag were not there; now one line, nothing made."""
    from negbench.cli import main

    write_coco(tmp_path / "coco")
    assert main(["build", "coco", "--src", str(tmp_path / "coco"), "--out", str(tmp_path / "out"), *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "only `negbench build hardneg-syn` reads" in err[0] and flags[0] in err[0], err
    assert not (tmp_path / "out").exists()


def test_build_help_after_a_source_shows_that_source_s_options(capsys):
    from negbench.cli import main

    def help_of(*argv) -> str:
        with pytest.raises(SystemExit) as stop:
            main(["build", *argv, "--help"])
        assert stop.value.code == 0
        return capsys.readouterr().out

    every, coco, syn, csv = help_of(), help_of("coco"), help_of("hardneg-syn"), help_of("csv")
    for text in (every, syn):
        assert "--generator" in text and "hardneg-syn only" in text
    assert "--generator" not in coco and "hardneg-syn only" not in coco and "--steps" not in coco
    assert "columns of a `csv` source" in every and "columns of a `csv` source" in csv
    assert "columns of a `csv` source" not in coco
    assert "--template-set" in coco and "--src" in coco and "-h, --help" in coco
    assert "--generator" not in help_of("coco") and "--generator" in help_of()   # one parser per call
