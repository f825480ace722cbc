"""The report never contradicts its own tables: every headline sentence is checked against the table it
sits above (tests/report_checks.py), for a before/after pair, one model, and a --limit run; small n and
R@k over a gallery of at most k are flagged; published numbers stand only beside the released files."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

pytest.importorskip("matplotlib")

from negbench.analysis.report import SECTIONS, make_report  # noqa: E402
from negbench.evaluation.metrics import mean_with_ci  # noqa: E402
from report_checks import check_headline, section, tables  # noqa: E402

BEFORE, AFTER = "builtin:/runs/base", "builtin:/runs/negft"
TEMPLATES = ["positive", "negative", "hybrid", "modified_positive"]


def _task(name, kind, group="COCO", negated=True, file=None, **kw):
    return {"name": name, "kind": kind, "file": file or f"{name}.csv", "modality": "image", "group": group,
            "variant": "templated", "negated": negated, "wording": "default", "version": 1, "spec_dir": None,
            "data_root": None, "description": "", **kw}


def write_result(root: Path, model: str, task: dict, items: list[dict] | None = None, metrics=None,
                 counts=None, chance=None, limit=None, breakdowns=None) -> None:
    """A results JSON (+ Parquet when items are given) whose metrics are computed from the items."""
    d = root / re.sub(r"[^A-Za-z0-9]+", "_", model)
    d.mkdir(parents=True, exist_ok=True)
    doc = {"schema_version": 2, "negbench_version": "0.1.0", "git_hash": None, "created": "2026-01-01T00:00:00",
           "model": model, "model_identity": model, "task": task, "seed": 0, "bootstrap_samples": 200,
           "chance": chance, "status": "complete", "limit": limit, "limited": limit is not None,
           "counts": counts or {"items": len(items or [])}, "skipped_rows": [], "metrics": metrics or {},
           "breakdowns": breakdowns or {}, "timings": {}, "cache": {}}
    if items is not None:
        import pandas as pd

        pd.DataFrame(items).to_parquet(d / f"{task['name']}.parquet")
        doc["predictions_file"] = f"{task['name']}.parquet"
    (d / f"{task['name']}.json").write_text(json.dumps(doc))


def mcq(root: Path, model: str, task: dict, right: dict[str, list[bool]]) -> None:
    """An MCQ result from per-template correctness lists (its metrics computed as the engine does)."""
    items, row = [], 0
    for t, answers in right.items():
        for ok in answers:
            row += 1
            items.append({"row": row, "template": t, "is_correct": ok, "predicted": 0 if ok else 1,
                          "correct_answer": 0, "chosen_type": t if ok else "positive"})
    flags = [i["is_correct"] for i in items]
    metrics = {"accuracy": mean_with_ci(flags)}
    by = {}
    for t, answers in right.items():
        metrics[f"accuracy_{t}"] = mean_with_ci(answers)
        by[t] = {**metrics[f"accuracy_{t}"], "n": len(answers)}
    confusion = {t: {"correct": sum(a), "positive": len(a) - sum(a), "negative": 0, "hybrid": 0} for t, a in right.items()}
    wrong = sum(not ok for ok in flags)
    shares = {"positive": 1.0 if wrong else 0.0, "negative": 0.0, "hybrid": 0.0}  # every wrong pick: positive
    write_result(root, model, task, items, metrics, {"items": len(items)}, chance=0.25,
                 breakdowns={"accuracy_by_template": by, "confusion": confusion, "wrong_answer_type_shares": shares})


def retrieval(root: Path, model: str, task: dict, hits: list[bool], gallery: int, limit=None) -> None:
    items = [{"row": i + 1, "t2i_rank": 0 if h else 9} for i, h in enumerate(hits)]
    metrics = {f"t2i_recall@{k}": mean_with_ci(hits if k < gallery else [True] * len(hits)) for k in (1, 5, 10)}
    write_result(root, model, task, items, metrics, {"items": gallery, "gallery": gallery, "captions": len(hits)},
                 limit=limit)


@pytest.fixture(scope="module")
def pair_dir(tmp_path_factory) -> Path:
    """Before/after like the demo's: better on Negation and Hybrid, worse on single-object Affirmation
    (the row the old tally left out), Affirmation unchanged on every item."""
    root = tmp_path_factory.mktemp("pair")
    mcq_task = _task("world_coco_mcq", "mcq")
    mcq(root, BEFORE, mcq_task, {"positive": [True] * 30 + [False] * 10, "negative": [False] * 40,
                                 "hybrid": [False] * 30 + [True] * 10, "modified_positive": [True] * 36 + [False] * 4})
    mcq(root, AFTER, mcq_task, {"positive": [True] * 30 + [False] * 10, "negative": [True] * 30 + [False] * 10,
                                "hybrid": [True] * 35 + [False] * 5, "modified_positive": [False] * 36 + [True] * 4})
    neg = _task("world_coco_negated_retrieval", "retrieval")
    retrieval(root, BEFORE, neg, [True, False] * 50, gallery=100)
    retrieval(root, AFTER, neg, [True, False] * 50, gallery=100)  # the same hits: no change
    return root


def test_before_after_sentences_agree_with_the_table(pair_dir, tmp_path):
    out = make_report([pair_dir], tmp_path, labels={BEFORE: "before (pretrained)", AFTER: "after (fine-tuned)"})
    md = out.with_name("report.md").read_text()
    assert check_headline(md) == 4  # accuracy, Negation, negated R@5, the tally
    head = section(md, SECTIONS["headline"])
    rows = tables(head)[0]
    verdicts = {r["metric"]: r["beyond its CI?"] for r in rows}
    assert verdicts["accuracy_modified_positive (single-object Affirmation)"] == "yes (worse)"
    assert verdicts["accuracy_positive (Affirmation)"] == "no (no item changed)"
    assert "1 drop with one below 0" in head and f"Of the {len(rows)} rows of this table" in head
    assert "n beside them: Wilson score intervals for accuracies and recalls; a paired bootstrap" in md
    assert "interval includes 0" not in head.split("t2i_recall@5")[-1]  # [+0.0, +0.0] is 'no item changed'


def test_one_model_gets_a_headline_against_chance(pair_dir, tmp_path):
    files = [p for p in pair_dir.rglob("*.json") if "base" in p.parent.name]
    out = make_report(files, tmp_path)
    md = out.with_name("report.md").read_text()
    head = section(md, SECTIONS["headline"])
    assert "No before/after pair" not in md and check_headline(md) >= 3
    assert "below chance (25%) beyond its interval" in head            # Negation: 0 of 40
    assert "t2i_recall@5 (text→media): 50.0% [40.4, 59.6], n=100: above chance (5%)" in head
    # NegWorld results are never charted beside the published real-data numbers
    assert not (tmp_path / "measured_vs_published.png").exists()
    pub = section(md, SECTIONS["published"])
    assert "nothing measured is charted" in pub and "Beside the published numbers" not in md


def test_limit_run_flags_small_n_and_a_gallery_no_larger_than_k(tmp_path):
    root = tmp_path / "res"
    task = _task("world_coco_retrieval", "retrieval", negated=False, variant="original")
    retrieval(root, BEFORE, task, [True, True, False, True], gallery=4, limit=4)
    mcq(root, BEFORE, _task("world_coco_mcq", "mcq"), {"negative": [False] * 8})
    out = make_report([root], tmp_path / "rep")
    md = out.with_name("report.md").read_text()
    check_headline(md)
    head = section(md, SECTIONS["headline"])
    assert "gallery of 4 <= k=5: R@5 is 100% for any model, so this is not a measurement" in head
    assert "world_coco_retrieval [--limit 4: first 4 items only]" in head
    assert "above chance" not in head.split("world_coco_retrieval")[1].split("\n")[0]
    # 0 of 8 has a real interval (Wilson), not [0.0, 0.0], and n is beside it
    assert "0.0% [0.0, 32.4], n=8" in head and "small n (8 < 30)" in head
    measured = section(md, SECTIONS["measured"])
    assert "gallery of 4 <= k=5" in measured
    assert "Not full task scores: " in md.split(f"## {SECTIONS['headline']}")[0]  # said before the headline


def test_published_numbers_only_beside_the_released_files(tmp_path):
    root = tmp_path / "res"
    real = _task("coco_mcq", "mcq", file="images/COCO_val_mcq_llama3.1_rephrased.csv", variant="paraphrased")
    mcq(root, "openclip:ViT-B-32@openai", real, {"positive": [True] * 20, "negative": [False] * 20})
    mcq(root, "openclip:ViT-B-32@openai", _task("world_coco_mcq", "mcq", group="COCO-world"),
        {"negative": [True] * 40})
    out = make_report([root], tmp_path / "rep")
    md = out.with_name("report.md").read_text()
    check_headline(md)
    head = section(md, SECTIONS["headline"])
    side = head.split("### Beside the published numbers")[1]
    assert "CLIP-OpenAI ViT-B/32 (published) | 39.3%" in side and "(measured) | 50.0%" in side
    assert "world_coco_mcq" not in side
    assert (tmp_path / "rep" / "measured_vs_published.png").exists()
    pub = section(md, SECTIONS["published"])
    assert "Charted: results of this run on the same released files (coco_mcq)" in pub


def test_models_lists_published_numbers_under_the_results_keys(capsys):
    from negbench.cli import main

    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "published: coco_mcq accuracy = 39.3%" in out and "coco_mcq accuracy_negative = 6.8%" in out
    assert "msrvtt_negated_retrieval t2i_recall@5" in out
    for old in ("total_accuracy", "negative_accuracy", "t2v_recall"):
        assert old not in out


def test_figures_are_labelled_and_readable(pair_dir, tmp_path, monkeypatch):
    """Every text of every figure >= 9 pt (12.5 px at the report's 100 dpi, shown at ~1:1), every axes
    labelled; the training curve of a one-step run is a marker, said to be one step."""
    import matplotlib.text

    from negbench.analysis.report import plots

    seen, original = [], plots.save

    def inspect(fig, path):
        texts = [t for t in fig.findobj(matplotlib.text.Text) if t.get_text().strip() and t.get_visible()]
        axes = [ax for ax in fig.axes if ax.get_visible() and ax.get_label() != "<colorbar>"]
        seen.append((Path(path).name, min(t.get_fontsize() for t in texts),
                     [bool(ax.get_xlabel() or ax.get_ylabel()) for ax in axes]))
        return original(fig, path)

    monkeypatch.setattr(plots, "save", inspect)
    run = tmp_path / "run" / "train"
    run.mkdir(parents=True)
    (run / "log.jsonl").write_text(json.dumps({"step": 8, "loss": 1.9, "contrastive_loss": 2.5, "mcq_loss": 1.3}))
    out = make_report([pair_dir], tmp_path / "rep", labels={BEFORE: "before", AFTER: "after"},
                      train_logs={"ft": tmp_path / "run"})
    names = {name for name, _, _ in seen}
    assert {"headline_coco.png", "mcq_coco.png", "confusion_coco.png", "training_curves.png"} <= names
    for name, smallest, labelled in seen:
        assert smallest >= 9, (name, smallest)
        assert all(labelled), name
    md = out.with_name("report.md").read_text()
    assert "ft: fewer than 3 logged steps, so no curve to read" in md


def test_a_model_labelled_by_another_path_to_the_same_weights(tmp_path, monkeypatch):
    """`--label builtin:demo-out/models/pretrained=before` names results recorded under the absolute path."""
    weights = tmp_path / "demo-out" / "models"
    for name in ("pre", "ft"):
        (weights / name).mkdir(parents=True)
    root = tmp_path / "res"
    task = _task("world_coco_mcq", "mcq")
    mcq(root, f"builtin:{weights / 'pre'}", task, {"negative": [False] * 30})
    mcq(root, f"builtin:{weights / 'ft'}", task, {"negative": [True] * 30})
    monkeypatch.chdir(tmp_path)
    out = make_report([root], tmp_path / "rep", labels={"builtin:demo-out/models/pre": "before",
                                                        "builtin:./demo-out/models/ft": "after"})
    md = out.with_name("report.md").read_text()
    assert {"before", "after"} <= set(tables(section(md, SECTIONS["headline"]))[0][0])  # a before/after table
    check_headline(md)


def test_negated_objects_most_often_wrong(tmp_path):
    """The object the correct option negates, read by the negation parser; a negated_object column wins."""
    root = tmp_path / "res"
    items = []
    for i in range(12):  # 'dog' negated 6 times, always wrong; 'cat' 6 times, always right; 3 Affirmation
        obj, ok = ("dog", False) if i < 6 else ("cat", True)
        items.append({"row": i + 1, "template": "negative", "is_correct": ok, "predicted": 0 if ok else 1,
                      "correct_answer": 0, "chosen_type": "negative" if ok else "positive",
                      "caption_0": f"This image does not feature {obj}.", "caption_1": f"This image features {obj}.",
                      "caption_2": "This image features tree, but not car.", "caption_3": "This image does not feature tree."})
    items += [{"row": 13 + i, "template": "positive", "is_correct": False, "predicted": 1, "correct_answer": 0,
               "chosen_type": "positive", "caption_0": "This image features tree and sun.", "caption_1": "x",
               "caption_2": "y", "caption_3": "z"} for i in range(3)]
    flags = [it["is_correct"] for it in items]
    write_result(root, BEFORE, _task("world_coco_mcq", "mcq"), items, {"accuracy": mean_with_ci(flags)},
                 {"items": len(items)}, chance=0.25)
    md = make_report([root], tmp_path / "rep").with_name("report.md").read_text()
    rows = tables(section(md, SECTIONS["objects"]))[0]
    assert [(r["negated object"], r["n"], r["value [95% CI]"].split(" ")[0]) for r in rows] == \
        [("dog", "6", "0.0%"), ("cat", "6", "100.0%")]          # hardest first; Affirmation questions left out

    import pandas as pd

    frame = pd.DataFrame(items).assign(negated_object=["bird"] * len(items))
    frame.to_parquet(next(root.rglob("world_coco_mcq.parquet")))
    md = make_report([root], tmp_path / "rep2").with_name("report.md").read_text()
    assert [r["negated object"] for r in tables(section(md, SECTIONS["objects"]))[0]] == ["bird"]
