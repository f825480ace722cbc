"""negbench report on hand-made results files (contracts.md schema), and its Chromium rendering."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

pytest.importorskip("matplotlib")

from negbench.cli import main as cli_main  # noqa: E402
from negbench.analysis.report import SECTIONS, load_results, make_report, published_numbers  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
BEFORE, AFTER = "builtin:/runs/base", "builtin:/runs/negft"


def _m(v, w=0.05):
    return {"value": v, "ci_low": max(0.0, v - w), "ci_high": min(1.0, v + w)}


def _task(name, kind, group, negated=True, variant="templated", modality="image"):
    return {"name": name, "kind": kind, "file": f"{name}.csv", "modality": modality, "group": group,
            "variant": variant, "negated": negated, "data_root": None, "spec_dir": None, "version": 1,
            "description": "", "answer_type_names": {"positive": "Affirmation", "negative": "Negation",
                                                     "hybrid": "Hybrid"}}


def _write(results_dir: Path, model: str, task: dict, metrics: dict, breakdowns=None, items=None, chance=None):
    slug = re.sub(r"[^A-Za-z0-9]+", "_", model).strip("_")
    d = results_dir / slug
    d.mkdir(parents=True, exist_ok=True)
    doc = {"schema_version": 1, "negbench_version": "0.1.0", "git_hash": None,
           "created": "2025-01-01T00:00:00", "model": model, "model_identity": slug,
           "task": {**task, "resolved_file": f"/data/{task['file']}"}, "seed": 0, "bootstrap_samples": 100,
           "chance": chance, "counts": {"items": len(items) if items is not None else 20, "skipped": 0,
                                        "unique_media": 5, "unique_captions": 20},
           "skipped_rows": [], "metrics": metrics, "timings": {"total_s": 0.1}, "cache": {}}
    if breakdowns:
        doc["breakdowns"] = breakdowns
    if items is not None:
        import pandas as pd

        pd.DataFrame(items).to_parquet(d / f"{task['name']}.parquet")
        doc["predictions_file"] = f"{task['name']}.parquet"
    (d / f"{task['name']}.json").write_text(json.dumps(doc))


def _mcq_items(images, good: bool):
    """4 questions per image; the 'before' model always picks the affirmative distractor."""
    rows = []
    templates = ["positive", "negative", "hybrid", "negative"]
    for i, img in enumerate(images):
        for q, t in enumerate(templates):
            opts = ["This image features dog and cat.", "This image does not feature car.",
                    "This image features cat, but not car.", "This image features car."]
            types = ["positive", "negative", "hybrid", "positive"]
            correct = {"positive": 0, "negative": 1, "hybrid": 2}[t]
            pred = correct if (good or t == "positive") else 3
            rows.append({"row": i * 4 + q + 1, "media": img.name, "media_path": str(img),
                         "correct_answer": correct, "predicted": pred, "is_correct": pred == correct,
                         "template": t, "chosen_type": types[pred], "caption_0": opts[0],
                         "caption_1": opts[1], "caption_2": opts[2], "caption_3": opts[3],
                         "caption_types": types, "scores": [0.1, 0.2, 0.3, 0.4]})
    return rows


@pytest.fixture(scope="module")
def results_dir(tmp_path_factory) -> Path:
    from PIL import Image

    root = tmp_path_factory.mktemp("results")
    imgs = []
    for i, color in enumerate(["red", "green", "blue"]):
        p = root / "media" / f"img{i}.jpg"
        p.parent.mkdir(exist_ok=True)
        Image.new("RGB", (64, 48), color).save(p)
        imgs.append(p)
    mcq = _task("world_coco_mcq", "mcq", "COCO")
    binary = _task("world_chexpert_binary_mcq", "binary-mcq", "CheXpert")
    plain = _task("world_coco_retrieval", "retrieval", "COCO", negated=False, variant="original")
    neg = _task("world_coco_negated_retrieval", "retrieval", "COCO")
    for model, good in ((BEFORE, False), (AFTER, True)):
        a = 0.9 if good else 0.35
        conf = {"positive": {"correct": 3, "positive": 0, "negative": 0, "hybrid": 0},
                "negative": {"correct": 6 if good else 0, "positive": 0 if good else 6, "negative": 0, "hybrid": 0},
                "hybrid": {"correct": 3 if good else 0, "positive": 0 if good else 3, "negative": 0, "hybrid": 0}}
        _write(root, model, mcq,
               {"accuracy": _m(a), "accuracy_positive": _m(1.0), "accuracy_negative": _m(a - 0.1),
                "accuracy_hybrid": _m(a)},
               {"accuracy_by_template": {"positive": {**_m(1.0), "n": 3}, "negative": {**_m(a - 0.1), "n": 6},
                                         "hybrid": {**_m(a), "n": 3}},
                "wrong_answer_type_shares": {"positive": 0.0 if good else 0.9, "negative": 0.05,
                                             "hybrid": 1.0 if good else 0.05},
                "confusion": conf},
               items=_mcq_items(imgs, good), chance=0.25)
        _write(root, model, binary, {"accuracy": _m(0.8 if good else 0.5)}, chance=0.5)
        _write(root, model, plain, {f"{d}_recall@{k}": _m(min(1.0, 0.2 * k ** 0.5)) for d in ("t2i", "i2t")
                                    for k in (1, 5, 10)})
        _write(root, model, neg, {f"{d}_recall@{k}": _m(min(1.0, (0.18 if good else 0.1) * k ** 0.5))
                                  for d in ("t2i", "i2t") for k in (1, 5, 10)})
    (root / "not_results.json").write_text('{"stage": "x"}')  # ignored: not a results file
    return root


@pytest.fixture(scope="module")
def report(results_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report")
    from PIL import Image

    Image.new("RGB", (120, 90), "white").save(out / "pca_src.png")
    probe = {"model": BEFORE, "cosine": {"affirmative_vs_negated": 0.84, "affirmative_vs_affirmative_reworded": 0.83,
                                         "affirmative_vs_other_object": 0.49, "affirmative_vs_double_negation": 0.65},
             "probes": {k: {"accuracy": 0.9, "majority_baseline": 0.5} for k in ("negated", "object", "type")},
             "pca": {"plot": str(out / "pca_src.png")}}
    (out / "probe.json").write_text(json.dumps(probe))
    return make_report([results_dir], out, title="test report", labels={BEFORE: "before", AFTER: "after"},
                       probes=[out / "probe.json"])


def test_report_has_every_section(report):
    md = report.with_name("report.md").read_text()
    page = report.read_text()
    for key, title in SECTIONS.items():
        assert f"## {title}" in md, title
        assert f'id="{key}"' in page
    assert "No before/after pair" not in md and "No MCQ results" not in md and "No probe results" not in md
    assert "| before | 0.840 | 0.830 |" in md
    for png in ("mcq_accuracy.png", "wrong_answer_types.png", "confusion_heatmap.png", "retrieval.png",
                "finetune_deltas.png"):
        assert (report.parent / png).stat().st_size > 1000, png
        assert f"]({png})" in md
    # self-contained: every image inline, nothing fetched
    srcs = re.findall(r'<img[^>]*src="([^"]+)"', page)
    assert len(srcs) >= 5 + 3 + 1
    assert all(s.startswith("data:image/png;base64,") for s in srcs)
    assert "<script" not in page and "http://" not in page.replace("http://www.w3.org", "")


def test_report_numbers(report):
    md = report.with_name("report.md").read_text()
    # before/after delta of the MCQ total: 35.0 -> 90.0
    assert re.search(r"\| world_coco_mcq \| accuracy \| 35\.0 \| 90\.0 \| \+55\.0 \|", md)
    # negated retrieval paired with the plain one of the same group
    assert "world_coco_negated_retrieval" in md and "| negated |" in md
    # gallery: the before model's most common error is the Affirmation-type distractor
    assert "most common error is choosing the Affirmation-type option" in md
    assert (report.parent / "gallery" / "item_00.png").exists()


def test_published_table_is_separate(report):
    md = report.with_name("report.md").read_text()
    head, pub = md.split(f"## {SECTIONS['published']}")
    assert "39.3" in pub and "NegBench repo results/mcq/1_baseline_total.csv" in pub
    assert "CLIP-OpenAI" not in head  # never mixed with measured results
    rows = published_numbers()
    assert {"model", "dataset", "metric", "value", "source"} <= set(rows[0])
    shipped = REPO / "src/negbench/data/published/negbench_published.csv"
    assert len(rows) == len(shipped.read_text().strip().splitlines()) - 1


def test_report_without_pairs(results_dir, tmp_path):
    """Only one model, no labels: sections still present, empty ones say why."""
    files = [p for p in results_dir.rglob("*.json") if "base" in str(p.parent)]
    out = make_report(files, tmp_path)
    md = out.with_name("report.md").read_text()
    assert all(f"## {t}" in md for t in SECTIONS.values())
    assert "No before/after pair" in md and "No probe results" in md
    assert len(load_results(files)) == 4


def test_report_cli(results_dir, tmp_path, capsys):
    rc = cli_main(["report", str(results_dir), "--out", str(tmp_path), "--label", f"{BEFORE}=before",
                   "--label", f"{AFTER}=after", "--title", "cli"])
    assert rc == 0
    assert "report.html" in capsys.readouterr().out
    assert (tmp_path / "report.html").exists()
    assert cli_main(["report", str(tmp_path / "missing"), "--out", str(tmp_path)]) == 2


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


def test_report_renders_in_chromium(report, tmp_path):
    """Headless Chromium shows every figure, with no console errors; screenshot kept as an artefact."""
    chromium = _chromium()
    if chromium is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed (CI must install Debian's chromium package)")
        pytest.skip("chromium not installed")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'profile'}"]
    url = report.resolve().as_uri()
    dom = subprocess.run([chromium, *flags, "--virtual-time-budget=5000", "--dump-dom", url],
                         capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    srcs = re.findall(r'<img[^>]*src="([^"]+)"', dom.stdout)
    assert len(srcs) == len(re.findall(r"<img", report.read_text())) >= 9
    for key in SECTIONS:
        assert f'id="{key}"' in dom.stdout
    artefacts = REPO / "test-artifacts"
    artefacts.mkdir(exist_ok=True)
    shot = artefacts / "report.png"
    run = subprocess.run([chromium, *flags, "--enable-logging=stderr", "--v=0", "--window-size=1280,4000",
                          "--hide-scrollbars", f"--screenshot={shot}", url],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert shot.exists() and shot.stat().st_size > 10_000
    console_errors = [ln for ln in run.stderr.splitlines()
                      if "CONSOLE" in ln and ("ERROR" in ln or "Uncaught" in ln)
                      or "Failed to load resource" in ln or "net::ERR_" in ln]
    assert not console_errors, console_errors
    _check_images_decoded(chromium, flags, report, tmp_path)


def _check_images_decoded(chromium, flags, report: Path, tmp_path: Path) -> None:
    """Load a copy of the report with a tiny script that reports every image's decoded size.

    The report itself has no script; this copy only adds one to ask the browser whether each
    <img> actually decoded (naturalWidth > 0), which --dump-dom alone cannot tell.
    """
    probe = tmp_path / "probe.html"
    js = ("<script>window.addEventListener('load',()=>{const bad=[...document.images]"
          ".filter(i=>!(i.complete&&i.naturalWidth>0)).length;document.body.setAttribute('data-bad',bad);"
          "document.body.setAttribute('data-total',document.images.length);});</script>")
    probe.write_text(report.read_text().replace("</body>", js + "</body>"))
    dom = subprocess.run([chromium, *flags, "--virtual-time-budget=5000", "--dump-dom", probe.as_uri()],
                         capture_output=True, text=True, timeout=120)
    m = re.search(r'data-bad="(\d+)" data-total="(\d+)"', dom.stdout)
    assert m, dom.stdout[:500]
    assert m.group(1) == "0" and int(m.group(2)) >= 9, m.groups()


def test_before_model_comes_first_whatever_the_folder_order(results_dir, tmp_path):
    # swapped labels make the model whose results folder sorts second the "before" one
    report = make_report([results_dir], tmp_path / "r", labels={BEFORE: "after", AFTER: "before"})
    measured = report.with_name("report.md").read_text().split(f"## {SECTIONS['measured']}")[1]
    first_row = next(line for line in measured.splitlines() if line.startswith("| ") and "---" not in line
                     and not line.startswith("| model"))
    assert first_row.startswith("| before |"), first_row


def test_outputs_get_the_usual_file_permissions(report):
    umask = os.umask(0)
    os.umask(umask)
    for name in ("report.html", "report.md", "mcq_accuracy.png"):
        assert (report.parent / name).stat().st_mode & 0o777 == 0o666 & ~umask, name
