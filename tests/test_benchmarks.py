"""The other negation benchmarks: readers of each release's layout, end to end with a tiny model,
each metric against a naive re-implementation of its published definition, malformed files.

Every fixture below is made up, in the layout the reader's docstring cites (field names, nesting,
id conventions and image naming of the release)."""
from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import make_image
from negbench.cli import main
from negbench.evaluation.engine import evaluate_task
from negbench.inputs.benchmarks import BENCHMARKS, BenchmarkFileError, import_benchmark
from negbench.inputs.tasks import SUITES, TASKS, expand_tasks, load_task_dir, load_task_file

EVAL = dict(bootstrap_samples=50, progress=False, batch_size=8)
OBJ = ["dog", "cat", "car", "tree", "apple", "chair"]


@pytest.fixture(autouse=True)
def _registry_snapshot():
    """Imported task YAMLs register globally; each test here leaves the registries as it found them."""
    from negbench.inputs.tasks import load_builtin_tasks

    load_builtin_tasks()
    tasks, suites = dict(TASKS._entries), dict(SUITES._entries)
    yield
    TASKS._entries.clear(), TASKS._entries.update(tasks)
    SUITES._entries.clear(), SUITES._entries.update(suites)


def _cos_image_texts(adapter, image: Path, texts: list[str]) -> np.ndarray:
    """The naive way: one image, its candidate texts, encoded on their own, cosine similarity."""
    from PIL import Image

    with torch.no_grad():
        im = adapter.encode_images(adapter.preprocess(Image.open(image).convert("RGB"))[None]).float()
        tx = adapter.encode_texts(texts).float()
    im, tx = torch.nn.functional.normalize(im, dim=-1), torch.nn.functional.normalize(tx, dim=-1)
    return (im @ tx.T)[0].numpy()


def _agree(result_pred: np.ndarray, naive_pred: np.ndarray, margins: np.ndarray) -> None:
    # batched and one-by-one encodings differ by float rounding; only near-ties may flip
    flips = (result_pred != naive_pred) & (np.abs(margins) > 1e-5)
    assert not flips.any(), f"predictions differ at {np.flatnonzero(flips)}"


# ---------------------------------------------------------------- VALSE existence

def make_valse(root: Path, n: int = 8) -> Path:
    """existence.json keyed "existence_test_N", mturk votes; Visual7W-style image names."""
    doc = {}
    for i in range(n):
        name = f"v7w_{2300 + i}.jpg"
        make_image(root / "images" / name, i)
        a = OBJ[i % len(OBJ)]
        doc[f"existence_test_{i}"] = {
            "dataset": "visual7w", "original_split": "test", "dataset_idx": str(2300 + i),
            "linguistic_phenomena": "existence", "image_file": name,
            "caption": f"There are no {a}s.", "classes": "no", "classes_foil": "some",
            "mturk": {"foil": i % 2, "caption": 3 - (i % 4 == 3) * 2, "other": 0},   # every 4th: 1 vote
            "foil": f"There are some {a}s."}
    doc["existence_test_tie"] = {**doc["existence_test_0"], "foil": doc["existence_test_0"]["caption"]}
    (root / "existence.json").write_text(json.dumps(doc, indent=2))
    return root / "existence.json"


def test_valse_end_to_end_matches_pairwise_accuracy(tmp_path, adapter):
    src = make_valse(tmp_path / "valse")
    res = import_benchmark("valse", src, tmp_path / "out", image_root=tmp_path / "valse" / "images")
    assert res.counts == {"valse_existence": 7} and res.dropped == {"below_annotator_agreement": 2}
    spec = load_task_file(res.tasks_yaml)[0]
    assert spec.benchmark == "VALSE" and spec.kind == "binary-mcq"
    result = evaluate_task(spec, adapter, results_dir=tmp_path / "results", **EVAL)
    doc = json.loads((tmp_path / "valse" / "existence.json").read_text())
    kept = [k for k, v in doc.items() if v["mturk"]["caption"] >= 2]
    naive, margins = [], []
    for k in kept:   # acc_r: caption scored strictly above the foil
        s = _cos_image_texts(adapter, tmp_path / "valse" / "images" / doc[k]["image_file"],
                             [doc[k]["caption"], doc[k]["foil"]])
        naive.append(bool(s[0] > s[1]))
        margins.append(s[0] - s[1])
    table = pd.read_parquet(Path(result["results_file"]).with_suffix(".parquet"))
    _agree(table["is_correct"].to_numpy(), np.array(naive), np.array(margins))
    assert result["metrics"]["accuracy"]["value"] == pytest.approx(table["is_correct"].mean())
    assert result["chance"] == 0.5 and result["counts"]["items"] == 7
    assert not table["is_correct"].iloc[-1]   # caption == foil: a tie, wrong under the strict ">"


def test_valse_malformed_names_file_entry_and_key(tmp_path):
    src = make_valse(tmp_path / "valse", n=3)
    doc = json.loads(src.read_text())
    del doc["existence_test_1"]["foil"]
    doc["existence_test_2"]["mturk"]["caption"] = "3"
    src.write_text(json.dumps(doc))
    with pytest.raises(BenchmarkFileError, match=r"existence\.json, entry 'existence_test_1', key 'foil': missing"):
        import_benchmark("valse", src, tmp_path / "out")
    res = import_benchmark("valse", src, tmp_path / "out", skip_invalid=True)
    assert [(s["row"], s["column"]) for s in res.skipped] == [("existence_test_1", "foil"),
                                                              ("existence_test_2", "mturk.caption")]
    src.write_text('{"existence_test_0": {"caption": ')
    with pytest.raises(BenchmarkFileError, match="not valid JSON"):
        import_benchmark("valse", src, tmp_path / "out")


# ---------------------------------------------------------------- SugarCrepe

def make_sugarcrepe(root: Path, n: int = 6) -> tuple[Path, Path]:
    """{piece}.json = {"0": {"filename": "000000xxxxxx.jpg", "caption", "negative_caption"}}; COCO val2017."""
    coco = root / "val2017"
    for p, piece in enumerate(("add_obj", "replace_obj", "swap_obj")):
        doc = {}
        for i in range(n):
            name = f"{397133 + 10 * i:012d}.jpg"
            if not (coco / name).exists():
                make_image(coco / name, i)
            a, b = OBJ[i % 6], OBJ[(i + p + 1) % 6]
            doc[str(i)] = {"filename": name, "caption": f"A {a} next to a {b}.",
                           "negative_caption": f"A {b} next to a {a} and a boat."}
        (root / "data").mkdir(parents=True, exist_ok=True)
        (root / "data" / f"{piece}.json").write_text(json.dumps(doc))
    return root, coco


def test_sugarcrepe_pieces_are_controls_and_match_strict_rule(tmp_path, adapter):
    src, coco = make_sugarcrepe(tmp_path / "sc")
    res = import_benchmark("sugarcrepe", src, tmp_path / "out", image_root=coco)
    specs = load_task_file(res.tasks_yaml)
    assert [s.name for s in specs] == ["sugarcrepe_add_obj", "sugarcrepe_replace_obj", "sugarcrepe_swap_obj"]
    assert all(s.variant == "control" and not s.negated and s.benchmark == "SugarCrepe" for s in specs)
    spec = specs[1]
    result = evaluate_task(spec, adapter, **EVAL)
    doc = json.loads((src / "data" / "replace_obj.json").read_text())
    naive = [(lambda s: s[0] > s[1])(_cos_image_texts(adapter, coco / d["filename"],
                                                      [d["caption"], d["negative_caption"]])) for d in doc.values()]
    assert result["metrics"]["accuracy"]["value"] == pytest.approx(np.mean(naive))


def test_sugarcrepe_malformed(tmp_path):
    src, coco = make_sugarcrepe(tmp_path / "sc", n=2)
    path = src / "data" / "swap_obj.json"
    path.write_text(json.dumps({"0": {"filename": "x.jpg", "caption": "A dog."}}))
    with pytest.raises(BenchmarkFileError, match=r"swap_obj\.json, entry '0', key 'negative_caption'"):
        import_benchmark("sugarcrepe", src, tmp_path / "out")
    path.write_text(json.dumps([{"filename": "x.jpg"}]))
    with pytest.raises(BenchmarkFileError, match="expected an object keyed by id, got list"):
        import_benchmark("sugarcrepe", src, tmp_path / "out")


# ---------------------------------------------------------------- CC-Neg

def make_ccneg(root: Path, n: int = 8) -> Path:
    """ccneg_preprocessed.pt: {image_paths (authors' absolute paths), annotations, num_ops}."""
    images = root / "ccneg_images"
    paths, annos = [], []
    for i in range(n):
        rel = f"cc3m_subset_images_extracted_final/{1000 + i}.jpg"
        make_image(images / rel, i)
        paths.append("/workspace/datasets/cc3m/" + rel)
        a, b = OBJ[i % 6], OBJ[(i + 2) % 6]
        annos.append({"json": {"caption": f"a {a} on the grass", "key": f"{1000 + i:09d}"},
                      "sop_data": {"negative-prompt": f"a {a}, but not on the grass, with {b}",
                                   "objects": [a], "predicates": ["on"]}})
    annos[-1]["sop_data"]["negative-prompt"] = annos[-1]["json"]["caption"]   # an exact tie
    torch.save({"image_paths": paths, "annotations": annos, "num_ops": {1: list(range(n))}},
               root / "ccneg_preprocessed.pt")
    return root / "ccneg_preprocessed.pt"


def test_ccneg_last_split_path_rewrite_and_argmax_rule(tmp_path, adapter):
    from negbench.inputs.benchmarks.ccneg import read_pairs

    src = make_ccneg(tmp_path / "cc")
    pairs, _ = read_pairs(src, eval_samples=5)     # the evaluation split is the LAST entries
    assert [p.entry for p in pairs] == ["3", "4", "5", "6", "7"]
    assert pairs[0].media == "cc3m_subset_images_extracted_final/1003.jpg"
    assert "," not in pairs[0].distractor       # their loader strips commas from the negated prompt
    res = import_benchmark("ccneg", src, tmp_path / "out", image_root=tmp_path / "cc" / "ccneg_images")
    spec = load_task_file(res.tasks_yaml)[0]
    result = evaluate_task(spec, adapter, **EVAL)
    doc = torch.load(src, weights_only=True)
    naive = []
    for path, a in zip(doc["image_paths"], doc["annotations"]):   # argmax over [true, negated]
        s = _cos_image_texts(adapter, tmp_path / "cc" / "ccneg_images" / path.split("cc3m/")[1],
                             [a["json"]["caption"], a["sop_data"]["negative-prompt"].replace(",", "")])
        naive.append(int(np.argmax(s)) == 0)
    assert naive[-1]   # the tie counts as right under argmax
    assert result["metrics"]["accuracy"]["value"] == pytest.approx(np.mean(naive))


def test_ccneg_malformed(tmp_path):
    src = make_ccneg(tmp_path / "cc", n=2)
    torch.save({"image_paths": ["/workspace/datasets/cc3m/x.jpg"]}, src)
    with pytest.raises(BenchmarkFileError, match=r"ccneg_preprocessed\.pt, key 'annotations': missing key"):
        import_benchmark("ccneg", src, tmp_path / "out")
    torch.save({"image_paths": ["/workspace/datasets/cc3m/x.jpg"], "annotations": [{"json": {"caption": "a"}}]}, src)
    with pytest.raises(BenchmarkFileError, match=r"entry 0, key 'sop_data'"):
        import_benchmark("ccneg", src, tmp_path / "out")
    src.write_bytes(b"not a torch file")
    with pytest.raises(BenchmarkFileError, match="not a torch file"):
        import_benchmark("ccneg", src, tmp_path / "out")


# ---------------------------------------------------------------- SPEC existence

def make_spec(root: Path, n: int = 6) -> Path:
    """SPEC data root: existence/{image2text,text2image}.json, lists of {query, keys, label}."""
    sub = root / "existence"
    i2t, t2i = [], []
    for i in range(n):
        a = OBJ[i % 6]
        with_a, without_a = f"images/{a}_{i}_1.jpg", f"images/{a}_{i}_0.jpg"
        make_image(sub / with_a, 2 * i)
        make_image(sub / without_a, 2 * i + 1)
        texts = [f"There is no {a} in the image.", f"There is a {a} in the image."]
        i2t += [{"query": with_a, "keys": texts, "label": 1}, {"query": without_a, "keys": texts, "label": 0}]
        t2i += [{"query": texts[1], "keys": [without_a, with_a], "label": 1},
                {"query": texts[0], "keys": [without_a, with_a], "label": 0}]
    (sub / "image2text.json").write_text(json.dumps(i2t))
    (sub / "text2image.json").write_text(json.dumps(t2i))
    return root


def test_spec_both_directions_match_argmax_accuracy(tmp_path, adapter):
    root = make_spec(tmp_path / "spec")
    res = import_benchmark("spec", root, tmp_path / "out")
    i2t_spec, t2i_spec = load_task_file(res.tasks_yaml)
    assert (i2t_spec.kind, t2i_spec.kind) == ("binary-mcq", "t2i-selection")
    r_i2t = evaluate_task(i2t_spec, adapter, **EVAL)
    r_t2i = evaluate_task(t2i_spec, adapter, results_dir=tmp_path / "results", **EVAL)
    sub = root / "existence"
    i2t = json.loads((sub / "image2text.json").read_text())
    naive_i2t = [int(np.argmax(_cos_image_texts(adapter, sub / s["query"], s["keys"]))) == s["label"] for s in i2t]
    assert r_i2t["metrics"]["accuracy"]["value"] == pytest.approx(np.mean(naive_i2t))
    t2i = json.loads((sub / "text2image.json").read_text())
    naive_t2i = []
    for s in t2i:   # their clip_wrapper.t2i_evaluate: argmax over the K candidate images
        sims = [_cos_image_texts(adapter, sub / k, [s["query"]])[0] for k in s["keys"]]
        naive_t2i.append(int(np.argmax(sims)) == s["label"])
    assert r_t2i["metrics"]["accuracy"]["value"] == pytest.approx(np.mean(naive_t2i))
    assert r_t2i["chance"] == 0.5 and r_t2i["counts"]["items"] == 12 and "ties" in r_t2i["counts"]
    assert set(r_t2i["metrics"]) == {"accuracy", "accuracy_tie_aware"}
    for m in r_t2i["metrics"].values():
        assert m["ci_low"] <= m["value"] <= m["ci_high"]
    saved = json.loads(Path(r_t2i["results_file"]).read_text())
    assert saved["task"]["benchmark"] == "SPEC" and saved["metrics"] == r_t2i["metrics"]
    assert len(pd.read_parquet(Path(r_t2i["results_file"]).with_suffix(".parquet"))) == 12


def test_spec_malformed(tmp_path):
    root = make_spec(tmp_path / "spec", n=2)
    path = root / "existence" / "text2image.json"
    doc = json.loads(path.read_text())
    doc[1]["label"] = 2
    path.write_text(json.dumps(doc))
    with pytest.raises(BenchmarkFileError, match=r"text2image\.json, entry 1, key 'label': 2 is not an index"):
        import_benchmark("spec", root, tmp_path / "out")
    (root / "existence" / "image2text.json").write_text(json.dumps({"query": "x"}))
    with pytest.raises(BenchmarkFileError, match="expected a JSON list of samples"):
        import_benchmark("spec", root, tmp_path / "out")


def test_selection_file_errors_name_row_and_column(tmp_path):
    from negbench.core.errors import TaskFileError
    from negbench.inputs.selection import read_selection_file

    make_image(tmp_path / "a.jpg", 0)
    make_image(tmp_path / "b.jpg", 1)
    f = tmp_path / "t2i.csv"
    f.write_text('caption,image_paths,correct_answer\nA dog.,"[""a.jpg"", ""b.jpg""]",1\n'
                 'No dog.,"[""a.jpg"", ""b.jpg""]",2\n')
    with pytest.raises(TaskFileError, match=r"t2i\.csv, row 2, column 'correct_answer'"):
        read_selection_file(f)
    items, skipped, _ = read_selection_file(f, skip_invalid=True)
    assert len(items) == 1 and skipped[0]["row"] == 2
    f.write_text('caption,image_paths,correct_answer\nA dog.,"[""a.jpg"", ""gone.jpg""]",0\n')
    with pytest.raises(TaskFileError, match="media file not found"):
        read_selection_file(f)


def _naive_selection(scores, correct):
    acc, credit, ties = [], [], 0
    for row, c in zip(scores, correct):
        best = max(row)
        top = [k for k, v in enumerate(row) if v == best]
        acc.append(top[0] == c)            # argmax: the first of the best
        credit.append(1 / len(top) if c in top else 0.0)
        ties += len(top) > 1
    return np.mean(acc), np.mean(credit), ties


@pytest.mark.parametrize("seed", range(4))
def test_selection_metric_against_naive(seed):
    from negbench.evaluation.selection import (selection_predictions, selection_scores, tie_aware_credit,
                                               top_ties)

    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 3, size=(40, 3 + seed)).astype(float)   # small integers: many ties
    correct = rng.integers(0, scores.shape[1], size=40)
    acc, credit, ties = _naive_selection(scores.tolist(), correct.tolist())
    assert np.mean(selection_predictions(scores) == correct) == pytest.approx(acc)
    assert tie_aware_credit(scores, correct).mean() == pytest.approx(credit)
    assert int((top_ties(scores) > 1).sum()) == ties
    text, media = rng.normal(size=(5, 8)), rng.normal(size=(9, 8))
    ti, ci = rng.integers(0, 5, size=7), rng.integers(0, 9, size=(7, 3))
    naive = [[float(text[t] @ media[m] / np.linalg.norm(text[t]) / np.linalg.norm(media[m])) for m in row]
             for t, row in zip(ti, ci)]
    np.testing.assert_allclose(selection_scores(text, media, ti, ci), naive, rtol=1e-10)


# ---------------------------------------------------------------- NegVQA

def _b64_png(seed: int) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (24, 24), (40 * seed % 255, 90, 200)).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def make_negvqa(root: Path, n: int = 4) -> Path:
    """NegVQA-7379-negated.jsonl as add_negation.ipynb writes it (+ a base64 `image`)."""
    root.mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(n):
        lines.append(json.dumps({
            "index": 1000 + i, "category": "VQAv2", "image": _b64_png(i),
            "original_question": "What animal is on the bed?", "negated_question": "What animal is not on the bed?",
            "question": "What animal is not on the bed?", "A": "cat", "B": "dog",
            "original_answer": "AB"[i % 2], "negated_answer": "BA"[i % 2], "answer": "BA"[i % 2]}))
    (root / "NegVQA-7379-negated.jsonl").write_text("\n".join(lines) + "\n")
    return root


def test_negvqa_imports_and_is_skipped_for_a_dual_encoder(tmp_path, adapter, caplog):
    src = make_negvqa(tmp_path / "negvqa")
    res = import_benchmark("negvqa", src, tmp_path / "out")
    spec = load_task_file(res.tasks_yaml)[0]
    assert spec.needs_generative and spec.benchmark == "NegVQA" and res.counts == {"negvqa_negated": 4}
    table = pd.read_csv(tmp_path / "out" / "negvqa_negated.csv")
    assert table["correct_answer"].tolist() == [1, 0, 1, 0] and (table["question"] != "").all()
    assert all(Path(p).is_file() for p in table["image_path"])   # base64 images written out
    from negbench.evaluation.run import NotApplicable

    with pytest.raises(NotApplicable, match="needs a generative model"):
        evaluate_task(spec, adapter, results_dir=tmp_path / "results", **EVAL)
    assert not (tmp_path / "results").exists()   # nothing that could be read as a score


def test_negvqa_malformed(tmp_path):
    src = make_negvqa(tmp_path / "negvqa", n=2)
    path = src / "NegVQA-7379-negated.jsonl"
    lines = path.read_text().splitlines()
    path.write_text(lines[0].replace('"answer": "B"', '"answer": "C"') + "\n" + lines[1] + "\n")
    with pytest.raises(BenchmarkFileError, match=r"entry '1000', key 'answer': 'C' is not one of"):
        import_benchmark("negvqa", src, tmp_path / "out")
    path.write_text(lines[0] + "\n{oops\n")
    with pytest.raises(BenchmarkFileError, match="entry 'line 2'.*not valid JSON"):
        import_benchmark("negvqa", src, tmp_path / "out")


# ---------------------------------------------------------------- suite, CLI, registry, catalogue

def test_registry_names_and_unknown_benchmark(tmp_path):
    assert BENCHMARKS.names() == ["ccneg", "negvqa", "spec", "sugarcrepe", "valse"]
    with pytest.raises(Exception, match="unknown benchmark 'valsee'; did you mean 'valse'"):
        import_benchmark("valsee", tmp_path, tmp_path / "out")


def test_negation_all_groups_imported_benchmarks_with_negbench(tmp_path, caplog):
    base = {s.name for s in expand_tasks(suites=["negbench"])}
    alone = {s.name for s in expand_tasks(suites=["negation-all"])}
    assert base <= alone and "not registered" in caplog.text   # nothing imported yet: NegBench only
    root = tmp_path / "negdata"
    make_valse(tmp_path / "valse", n=3)
    import_benchmark("valse", tmp_path / "valse", root / "valse", image_root=tmp_path / "valse" / "images")
    make_spec(tmp_path / "spec", n=1)
    import_benchmark("spec", tmp_path / "spec", root / "spec")
    (root / "notes.yaml").write_text("just: a note\n")   # other YAML in a data folder is left alone
    load_task_dir(root)
    specs = expand_tasks(suites=["negation-all"])
    assert {"valse_existence", "spec_existence_i2t", "spec_existence_t2i"} <= {s.name for s in specs}
    assert {s.benchmark for s in specs} >= {"NegBench", "VALSE", "SPEC"}


def test_cli_import_then_eval_and_errors(tmp_path, tiny_openclip_model, capsys):
    make_sugarcrepe(tmp_path / "sc", n=3)
    out = tmp_path / "out"
    assert main(["import-benchmark", "sugarcrepe", "--src", str(tmp_path / "sc"), "--out", str(out),
                 "--image-root", str(tmp_path / "sc" / "val2017")]) == 0
    assert "sugarcrepe_swap_obj" in capsys.readouterr().out
    assert main(["eval", "--model", tiny_openclip_model, "--tasks-file", str(out / "sugarcrepe.yaml"),
                 "--task", "sugarcrepe_add_obj", "--results-dir", str(tmp_path / "res"), "--no-cache",
                 "--quiet", "--bootstrap-samples", "20"]) == 0
    assert "sugarcrepe_add_obj" in capsys.readouterr().out
    (tmp_path / "sc" / "data" / "add_obj.json").write_text("[1, 2")
    assert main(["import-benchmark", "sugarcrepe", "--src", str(tmp_path / "sc"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "add_obj.json" in err and "not valid JSON" in err and "Traceback" not in err


def test_cli_eval_prints_skip_for_generative_task(tmp_path, tiny_openclip_model, capsys):
    make_negvqa(tmp_path / "nv", n=2)
    import_benchmark("negvqa", tmp_path / "nv", tmp_path / "out")
    assert main(["eval", "--model", tiny_openclip_model, "--tasks-file", str(tmp_path / "out" / "negvqa.yaml"),
                 "--results-dir", str(tmp_path / "res"), "--no-cache", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "not applicable: negvqa_negated: task 'negvqa_negated' needs a generative model" in out


def test_models_catalogue_and_published_rows(capsys):
    from negbench.analysis.published import published_rows
    from negbench.models.catalog import load_catalog

    entries, _ = load_catalog()
    ids = {e.id for e in entries}
    assert {"clip-openai-b32", "negclip-b32", "conclip-b32", "clip-negfull-b32", "negclip-negfull-b32",
            "negationclip"} <= ids
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert all(e.model in out for e in entries) and "published, not measured" in out
    rows = published_rows()
    negfull = [r for r in rows if r["model"] == "NegCLIP+CC12M-NegFull"]
    assert negfull and all(r["negbench_model"].startswith("openclip:ViT-B-32-quickgelu@") for r in negfull)
    assert all(r["source"] for r in rows)


def test_catalogue_errors_name_the_entry(tmp_path):
    from negbench.core.errors import ConfigError
    from negbench.models.catalog import load_catalog

    bad = tmp_path / "models.yaml"
    bad.write_text("models:\n  - {id: x, name: X, paper: P, model: 'openclip:A@b', format: f}\n")
    with pytest.raises(ConfigError, match=r"models\[0\] \('x'\) lacks \['weights'\]"):
        load_catalog(bad)


def test_taskspec_benchmark_defaults_to_negbench():
    from negbench.inputs.tasks import get_task

    assert get_task("coco_mcq").benchmark == "NegBench" and not get_task("coco_mcq").needs_generative
