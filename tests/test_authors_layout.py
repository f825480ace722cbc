"""`negbench build --layout authors`: files the authors' evaluator scores unchanged, checked by a
re-implementation of their loop (DataLoader over questions, batch 64, 77-token options, argmax)."""
from __future__ import annotations

import csv
import json

import pytest
import torch

from negbench.cli import main
from negbench.evaluation.engine import evaluate_task
from negbench.inputs.tasks import load_task_file
from negbench.models.base import load_model

from negbench_build_fixtures import write_coco

TINY_77 = "negbench-tiny-77"   # open_clip's own tokenizer context, as the authors' clip.tokenize


@pytest.fixture(scope="module")
def authors_build(tmp_path_factory):
    root = tmp_path_factory.mktemp("authors")
    truth = write_coco(root / "coco", n=40)
    assert main(["build", "coco", "--src", str(root / "coco"), "--out", str(root / "out"), "--task", "mcq",
                 "--layout", "authors", "--name", "a"]) == 0
    spec = next(s for s in load_task_file(root / "out" / "tasks.yaml") if s.kind == "mcq")
    return spec, truth, root


def test_files_look_like_the_authors_generator_wrote_them(authors_build):
    spec, truth, root = authors_build
    path = spec.resolve_file()
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["image_path", "correct_answer", "caption_0", "caption_1", "caption_2", "caption_3",
                             "correct_answer_template"]
    assert rows and all(r["correct_answer"] == "0" for r in rows)
    assert {r["correct_answer_template"] for r in rows} <= {"positive", "negative", "hybrid"}
    assert not any(r[f"caption_{j}"].endswith(".") for r in rows for j in range(4))
    by_media = {f"val2017/{i - 1:012d}.jpg": objs for i, objs in truth.items()}
    assert all(len(by_media[r["image_path"]]) >= 2 for r in rows)
    one_object_images = sum(len(o) < 2 for o in truth.values())
    manifest = json.loads(path.with_name(path.name + ".manifest.json").read_text())
    assert one_object_images > 0 and manifest["drops"]["fewer_than_two_objects"] >= one_object_images


def _authors_loop(model, preprocess, path, media_root):
    """The published evaluation, re-implemented: per batch of 64 questions, encode the images and
    the 4 x 64 options at 77 tokens, L2-normalise, argmax; correct means index 0."""
    import open_clip
    from PIL import Image
    from torch.utils.data import DataLoader

    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))

    def item(i):
        r = rows[i]
        return (preprocess(Image.open(media_root / r["image_path"]).convert("RGB")),
                [r[f"caption_{j}"] for j in range(4)], r["correct_answer_template"])

    loader = DataLoader(range(len(rows)), batch_size=64, collate_fn=lambda idx: [item(i) for i in idx])
    correct, by_template = [], {}
    with torch.no_grad():
        for batch in loader:
            images = torch.stack([b[0] for b in batch])
            texts = open_clip.tokenize([c for b in batch for c in b[1]])   # context length 77
            img = model.encode_image(images)
            txt = model.encode_text(texts).view(len(batch), 4, -1)
            img, txt = img / img.norm(dim=-1, keepdim=True), txt / txt.norm(dim=-1, keepdim=True)
            pred = torch.einsum("bd,bkd->bk", img, txt).argmax(dim=1)
            for b, p in zip(batch, pred.tolist()):
                correct.append(p == 0)
                by_template.setdefault(b[2], []).append(p == 0)
    return sum(correct) / len(correct), {t: sum(v) / len(v) for t, v in by_template.items()}


def test_the_authors_loop_and_negbench_agree(authors_build, tmp_path):
    import open_clip

    from conftest import TINY_OPENCLIP_CONFIG
    from negbench.inputs.kinds import metric_template

    spec, _, _ = authors_build
    if TINY_77 not in open_clip.list_models():
        cfg = json.loads(json.dumps(TINY_OPENCLIP_CONFIG))
        cfg["text_cfg"]["context_length"] = 77
        (tmp_path / f"{TINY_77}.json").write_text(json.dumps(cfg))
        open_clip.add_model_config(tmp_path / f"{TINY_77}.json")
    adapter = load_model(f"openclip:{TINY_77}@random", device="cpu")
    ref_acc, ref_by = _authors_loop(adapter.module, adapter.transform, spec.resolve_file(), spec.resolve_media_root())
    res = evaluate_task(spec, adapter, bootstrap_samples=0, progress=False)
    assert res["metrics"]["accuracy"]["value"] == pytest.approx(ref_acc, abs=1e-12)
    by = {metric_template(k): v for k, v in res["metrics"].items() if metric_template(k)}
    assert {t: v["value"] for t, v in by.items()} == pytest.approx(ref_by, abs=1e-12)
    assert res["counts"]["ties"] == 0
