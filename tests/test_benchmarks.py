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


@pytest.fixture(scope="module")
def adapter(tiny_openclip_model):
    from negbench.models.base import load_model

    model = load_model(tiny_openclip_model, device="cpu")
    model.model_string = tiny_openclip_model
    return model


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
