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
from negbench.analysis.stats import paired_bootstrap_diff  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
BEFORE, AFTER, VLM = "builtin:/runs/base", "builtin:/runs/negft", "vlm:hf:tiny"


def _m(v, w=0.05):
    return {"value": v, "ci_low": max(0.0, v - w), "ci_high": min(1.0, v + w)}


def _task(name, kind, group, negated=True, variant="templated", modality="image", wording="default"):
    return {"name": name, "kind": kind, "file": f"{name}.csv", "modality": modality, "group": group,
            "wording": wording,
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
                                        "unique_media": 50, "unique_captions": 20},
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
    binary = _task("world_chexpert_binary_mcq", "binary-mcq", "CheXpert")  # alphabetically first, shown last
    mcq = _task("world_coco_mcq", "mcq", "COCO")
    plain = _task("world_coco_retrieval", "retrieval", "COCO", negated=False, variant="original")
    neg = _task("world_coco_negated_retrieval", "retrieval", "COCO")
    for model, good in ((BEFORE, False), (AFTER, True)):
        # consistent with the items below: before is right only on Affirmation questions (3 of 12)
        # and always picks the Affirmation-type distractor; after is always right
        a = 1.0 if good else 0.25
        conf = {"positive": {"correct": 3, "positive": 0, "negative": 0, "hybrid": 0},
                "negative": {"correct": 6 if good else 0, "positive": 0 if good else 6, "negative": 0, "hybrid": 0},
                "hybrid": {"correct": 3 if good else 0, "positive": 0 if good else 3, "negative": 0, "hybrid": 0}}
        neg_acc = 1.0 if good else 0.0
        _write(root, model, mcq,
               {"accuracy": _m(a), "accuracy_positive": _m(1.0), "accuracy_negative": _m(neg_acc),
                "accuracy_hybrid": _m(neg_acc)},
               {"accuracy_by_template": {"positive": {**_m(1.0), "n": 3}, "negative": {**_m(neg_acc), "n": 6},
                                         "hybrid": {**_m(neg_acc), "n": 3}},
                "wrong_answer_type_shares": {"positive": 0.0 if good else 1.0, "negative": 0.0, "hybrid": 0.0},
                "confusion": conf},
               items=_mcq_items(imgs, good), chance=0.25)
        _write(root, model, binary, {"accuracy": _m(0.8 if good else 0.5)}, chance=0.5)
        _write(root, model, _task("world_coco_mcq_without", "mcq", "COCO", wording="without"), {"accuracy": _m(0.7 if good else 0.3)},
               chance=0.25)
        _write(root, model, plain, {f"{d}_recall@{k}": _m(min(1.0, 0.2 * k ** 0.5)) for d in ("t2i", "i2t")
                                    for k in (1, 5, 10)})
        _write(root, model, neg, {f"{d}_recall@{k}": _m(min(1.0, (0.18 if good else 0.1) * k ** 0.5))
                                  for d in ("t2i", "i2t") for k in (1, 5, 10)})
    # a generative VLM: same schema, extra fields; and i10's tie-aware accuracy with a ties count
    _write(root, VLM, mcq, {"accuracy": _m(0.5), "accuracy_tie_aware": _m(0.45)}, chance=0.25)
    vlm = json.loads((root / "vlm_hf_tiny" / "world_coco_mcq.json").read_text())
    vlm["protocol"] = "choice-letter"
    vlm["counts"].update(unparsed=3, ties=2)
    (root / "vlm_hf_tiny" / "world_coco_mcq.json").write_text(json.dumps(vlm))
    (root / "not_results.json").write_text('{"stage": "x"}')  # ignored: not a results file
    return root


@pytest.fixture(scope="module")
def train_log(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("run")
    (run / "train").mkdir()
    lines = [{"step": s, "loss": 2.0 / s, "contrastive_loss": 2.0 / s, "mcq_loss": 1.0 / s, "lr": 1e-5}
             for s in range(1, 11)]
    (run / "train" / "log.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    return run


@pytest.fixture(scope="module")
def report(results_dir, train_log, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report")
    from PIL import Image

    Image.new("RGB", (120, 90), "white").save(out / "pca_src.png")
    probe = {"model": BEFORE, "cosine": {"affirmative_vs_negated": 0.84, "affirmative_vs_affirmative_reworded": 0.83,
                                         "affirmative_vs_other_object": 0.49, "affirmative_vs_double_negation": 0.65},
             "probes": {k: {"accuracy": 0.9, "majority_baseline": 0.5} for k in ("negated", "object", "type")},
             "pca": {"plot": str(out / "pca_src.png")}}
    (out / "probe.json").write_text(json.dumps(probe))
    return make_report([results_dir], out, title="test report",
                       labels={BEFORE: "before", AFTER: "after", VLM: "tiny VLM"}, probes=[out / "probe.json"],
                       train_logs={"negation fine-tuning": train_log}, trained_wordings=("default", "no"))


def _section(md: str, key: str) -> str:
    titles = list(SECTIONS.values())
    i = titles.index(SECTIONS[key])
    body = md.split(f"## {titles[i]}", 1)[1]
    return body.split(f"## {titles[i + 1]}", 1)[0] if i + 1 < len(titles) else body


def test_report_opens_with_the_headline_coco_first_and_has_every_section(report):
    md = report.with_name("report.md").read_text()
    page = report.read_text()
    positions = [md.index(f"## {title}") for title in SECTIONS.values()]
    assert positions == sorted(positions) and list(SECTIONS)[0] == "headline"
    for key in SECTIONS:
        assert f'id="{key}"' in page
    head = _section(md, "headline")
    assert head.index("### COCO") < head.index("### CheXpert")   # COCO first, whatever the file order
    assert "](headline_coco.png)" in head and (report.parent / "headline_coco.png").stat().st_size > 5000
    for png in ("mcq_coco.png", "wrong_answer_types.png", "confusion_coco.png", "retrieval_coco.png",
                "training_curves.png"):
        assert (report.parent / png).stat().st_size > 3000, png
        assert f"]({png})" in md
    srcs = re.findall(r'<img[^>]*src="([^"]+)"', page)
    assert all(s.startswith("data:image/png;base64,") for s in srcs) and len(srcs) >= 12
    assert "<script" not in page and "http://" not in page.replace("http://www.w3.org", "")


def test_figures_fit_a_screen(report):
    from PIL import Image

    for png in report.parent.glob("*.png"):
        with Image.open(png) as im:
            assert im.height <= 800, (png.name, im.size)


def test_narrative_states_what_the_hand_made_numbers_say(report):
    """Known answers: before is right on the 3 Affirmation questions of 12 and always picks the
    Affirmation-type distractor; after is right on all 12; retrieval has no per-item data."""
    md = report.with_name("report.md").read_text()
    head = _section(md, "headline")
    assert ("COCO, world_coco_mcq, accuracy (all questions): 25.0% (before) → 100.0% (after) (+75.0 pp, paired "
            "95% CI [+") in head
    assert "accuracy_negative (Negation): 0.0% (before) → 100.0% (after) (+100.0 pp" in head
    assert "an improvement: its paired interval excludes 0" in head and "a drop:" not in head
    assert ("world_coco_negated_retrieval, t2i_recall@5 (text→media): 22.4% (before) → 40.2% (after), +17.9 pp, "
            "n=20; no per-item predictions, so no interval for the difference.") in head
    bias = _section(md, "bias")
    assert "Of before's 9 wrong answers on world_coco_mcq, 100% chose the Affirmation-type option" in bias
    assert "Negation-type errors dominate" not in bias
    # the table's paired difference matches the reference computed here
    ref = paired_bootstrap_diff([1, 0, 0, 0] * 3, [1] * 12, n_samples=1000, seed=0)
    assert f"+75.0 pp [{100 * ref['ci_low']:+.1f}, {100 * ref['ci_high']:+.1f}]" in head


def test_change_sentence_says_when_an_interval_includes_zero():
    from negbench.analysis.report.narrative import change_sentence
    from negbench.analysis.report.tables import DiffRow

    same = [1, 0, 1, 1, 0, 0, 1, 0] * 5
    d = paired_bootstrap_diff(same, same[1:] + same[:1], n_samples=500, seed=1)
    text = change_sentence(DiffRow("COCO", "t", "accuracy (all questions)", _m(0.5), _m(0.5), d), "b", "a")
    assert "the interval includes 0, so this run cannot tell the change from noise" in text
    d = paired_bootstrap_diff([1] * 40, [0] * 40)
    text = change_sentence(DiffRow("COCO", "t", "accuracy_negative (Negation)", _m(1.0), _m(0.0), d), "b", "a")
    assert "-100.0 pp" in text and "a drop: its paired interval excludes 0" in text


def test_galleries_coco_first_fixed_and_still_wrong(report):
    md = report.with_name("report.md").read_text()
    gal = _section(md, "gallery")
    assert "### COCO (world_coco_mcq): before's most common error, choosing the Affirmation-type option" in gal
    assert "### COCO (world_coco_mcq): wrong for before, right for after" in gal
    assert "### COCO (world_coco_mcq): wrong for both before and after" in gal
    assert "no question is still wrong" in gal   # after is always right
    from PIL import Image

    thumbs = sorted((report.parent / "gallery").glob("coco_fixed_*.png"))
    assert len(thumbs) == 4
    with Image.open(thumbs[0]) as im:
        assert max(im.size) == 224   # the 64x48 test images are enlarged to a visible size


def test_vlm_and_tie_aware_results_appear_next_to_clip_models(report):
    md = report.with_name("report.md").read_text()
    measured = _section(md, "measured")
    row = next(line for line in measured.splitlines() if "| tiny VLM |" in line)
    assert "accuracy_tie_aware 45.0%" in row and "ties 2" in row and "unparsed 3" in row


def test_trained_and_held_out_wordings_side_by_side(report):
    words = _section(report.with_name("report.md").read_text(), "wordings")
    # every cell with its interval and its n (these hand-written results hold no n: the task's items)
    assert ("| COCO | world_coco_mcq | default | trained | 25.0% [20.0, 30.0], n=12 | 100.0% [95.0, 100.0], n=12 |"
            in words)
    assert ("| COCO | world_coco_mcq_without | without | held out | 30.0% [25.0, 35.0], n=20 | "
            "70.0% [65.0, 75.0], n=20 |" in words)


def test_vocabulary_footnote_and_type_names(report):
    md = report.with_name("report.md").read_text()
    assert "single-object Affirmation = 'modified_positive'" in md
    assert "positive (n=" not in md and "Affirmation (1 object)" not in md


def test_published_is_labelled_and_separate(report):
    md = report.with_name("report.md").read_text()
    pub = _section(md, "published")
    assert "39.3%" in pub and "NegBench repo results/mcq/1_baseline_total.csv" in pub and "NOT measured" in pub
    assert "CLIP-OpenAI" not in md.split(f"## {SECTIONS['published']}")[0]
    rows = published_numbers()
    shipped = REPO / "src/negbench/data/published/negbench_published.csv"
    assert len(rows) == len(shipped.read_text().strip().splitlines()) - 1


def test_report_without_pairs(results_dir, tmp_path):
    """Only one model, no labels: sections still present, empty ones say why."""
    files = [p for p in results_dir.rglob("*.json") if "base" in str(p.parent)]
    out = make_report(files, tmp_path)
    md = out.with_name("report.md").read_text()
    assert all(f"## {t}" in md for t in SECTIONS.values())
    assert "Each model against chance" in md and "No probe results" in md and "No training log" in md
    assert len(load_results(files)) == 5


def test_unknown_schema_version_is_a_clear_error(results_dir, tmp_path):
    from negbench.core.errors import ConfigError

    doc = json.loads(next(results_dir.rglob("world_coco_mcq.json")).read_text())
    doc["schema_version"] = 99
    (tmp_path / "new.json").write_text(json.dumps(doc))
    with pytest.raises(ConfigError, match=r"new.json: results schema_version 99 is not one this negbench reads"):
        load_results([tmp_path])


def test_report_cli(results_dir, train_log, tmp_path, capsys):
    rc = cli_main(["report", str(results_dir), "--out", str(tmp_path), "--label", f"{BEFORE}=before",
                   "--label", f"{AFTER}=after", "--title", "cli", "--train-log", f"ft={train_log}",
                   "--trained-wordings", "default,no"])
    assert rc == 0
    assert "report.html" in capsys.readouterr().out
    assert "ft = " in (tmp_path / "report.md").read_text()
    assert cli_main(["report", str(tmp_path / "missing"), "--out", str(tmp_path)]) == 2


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


# Added to a copy of the report only: the report itself has no script. It records script errors
# and, after load, which images failed to decode and which sections are empty, into the DOM.
_PROBE_JS = """<script>
window.__errors = [];
window.addEventListener('error', e => window.__errors.push(String(e.message || e.type)), true);
console.error = (...a) => window.__errors.push(a.join(' '));
window.addEventListener('load', () => {
  const bad = [...document.images].filter(i => !(i.complete && i.naturalWidth > 0)).length;
  const b = document.body;
  b.setAttribute('data-bad', bad); b.setAttribute('data-total', document.images.length);
  b.setAttribute('data-errors', JSON.stringify(window.__errors));
  b.setAttribute('data-sections', [...document.querySelectorAll('h2[id]')].map(h => h.id).join(','));
  b.setAttribute('data-height', document.documentElement.scrollHeight);
});
</script>"""


def test_report_renders_in_chromium(report, tmp_path):
    """Every section and figure renders in headless Chromium without errors; a full-page
    screenshot is kept under test-artifacts/ (printed) for a person to look at."""
    chromium = _chromium()
    if chromium is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed (CI must install Debian's chromium package)")
        pytest.skip("chromium not installed")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--disable-dev-shm-usage", "--hide-scrollbars", f"--user-data-dir={tmp_path / 'profile'}"]
    probe = report.with_name("probe_copy.html")
    probe.write_text(report.read_text().replace("<head>", "<head>" + _PROBE_JS, 1))
    dom = subprocess.run([chromium, *flags, "--virtual-time-budget=5000", "--dump-dom", probe.as_uri()],
                         capture_output=True, text=True, timeout=120)
    probe.unlink()
    assert dom.returncode == 0, dom.stderr[-2000:]
    m = re.search(r'data-bad="(\d+)" data-total="(\d+)" data-errors="([^"]*)" data-sections="([^"]*)" data-height="(\d+)"', dom.stdout)
    assert m, dom.stdout[:500]
    assert m.group(1) == "0" and int(m.group(2)) >= 12, m.groups()
    assert m.group(3) == "[]", m.group(3)
    assert m.group(4).split(",") == list(SECTIONS)
    artefacts = REPO / "test-artifacts"
    artefacts.mkdir(exist_ok=True)
    shot = artefacts / "report_full_page.png"
    height = int(m.group(5)) + 20   # the whole page in one window: a full-page screenshot
    run = subprocess.run([chromium, *flags, "--enable-logging=stderr", "--v=0", f"--window-size=1280,{min(height, 16000)}",
                          f"--screenshot={shot}", report.as_uri()], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    console_errors = [ln for ln in run.stderr.splitlines() if ("CONSOLE" in ln and ("ERROR" in ln or "Uncaught" in ln))
                      or "Failed to load resource" in ln or "net::ERR_" in ln]
    assert not console_errors, console_errors
    assert shot.stat().st_size > 20_000
    print(f"full-page screenshot: {shot}")


def test_outputs_get_the_usual_file_permissions(report):
    umask = os.umask(0)
    os.umask(umask)
    for name in ("report.html", "report.md", "headline_coco.png"):
        assert (report.parent / name).stat().st_mode & 0o777 == 0o666 & ~umask, name
