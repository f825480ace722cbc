"""`negbench demo --size tiny` end to end: every stage's outputs, the report, and a second run skipping all."""
from __future__ import annotations

import json

import pytest

from negbench.cli import main as cli_main


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_demo_tiny_end_to_end(tmp_path, capsys, monkeypatch):
    pytest.importorskip("matplotlib")
    pytest.importorskip("sklearn")
    pytest.importorskip("sentence_transformers")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from negbench.demo import STAGES
    from negbench.analysis.report import SECTIONS

    out = tmp_path / "demo"
    assert cli_main(["demo", "--size", "tiny", "--out", str(out)]) == 0
    printed = capsys.readouterr().out

    # every stage's outputs
    assert (out / "world" / "world.json").exists()
    assert (out / "world" / "corpus" / "corpus.tsv").exists()
    for name in ("pretrained", "finetuned"):
        assert (out / "models" / name / "config.json").exists(), name
    assert (out / "tasks" / "tasks.yaml").exists()
    results = sorted((out / "results").rglob("*.json"))
    models = {json.loads(p.read_text())["model"] for p in results}
    assert models == {f"builtin:{out / 'models' / 'pretrained'}", f"builtin:{out / 'models' / 'finetuned'}",
                      f"negaware:decompose:builtin:{out / 'models' / 'pretrained'}"}
    assert len(results) >= 8 and all(p.with_suffix(".parquet").exists() for p in results)
    assert list((out / "negdata" / "negcap").glob("part-*.parquet"))
    assert list((out / "negdata" / "negmcq").glob("part-*.parquet"))
    for name in ("before", "after", "minilm"):
        probe = json.loads((out / "probe" / name / "probe.json").read_text())
        assert 0.0 <= probe["probes"]["negated"]["accuracy"] <= 1.0
        assert (out / "probe" / name / "probe_pca.png").exists()

    # the report has every section, filled
    md = (out / "report" / "report.md").read_text()
    html = (out / "report" / "report.html").read_text()
    for key, title in SECTIONS.items():
        assert f"## {title}" in md and f'id="{key}"' in html, title
    for empty in ("No MCQ results", "No before/after pair", "No negated retrieval", "No probe results"):
        assert empty not in md, empty
    assert "before (pretrained)" in md and "after (negation fine-tuned)" in md
    # the headline opens the report, COCO first; training curves and COCO galleries are there
    assert md.index(f"## {SECTIONS['headline']}") < md.index(f"## {SECTIONS['measured']}")
    head = md.split(f"## {SECTIONS['headline']}")[1].split("\n## ")[0]
    assert head.lstrip().startswith("### COCO") and "](headline_coco.png)" in head and "paired 95% CI" in head
    assert "](training_curves.png)" in md and "negation fine-tuning = " in md
    assert "### COCO (world_coco_mcq): wrong for before (pretrained), right for after" in md
    assert "### COCO (world_coco_mcq): wrong for both" in md

    # progress, the report's location and the before/after table were printed
    assert f"report: {out / 'report' / 'report.html'}" in printed
    assert "| world_coco_mcq | accuracy_negative (Negation) |" in printed
    assert "| world_coco_negated_retrieval | t2i_recall@5 |" in printed
    assert "| oracle ceiling |" in printed and "| task | metric | n | before | training-free | after | Δ (pp) |" in printed
    tf_row = next(x for x in printed.splitlines() if x.startswith("| world_coco_mcq | accuracy_negative (Negation) |"))
    cells = [c.strip() for c in tf_row.split("|")[1:-1]]   # task, metric, n, before, training-free, after, Δ, ceiling
    assert len(cells) == 8 and "–" not in cells
    negation = json.loads(next((out / "results").glob("builtin_*finetuned*/world_coco_mcq.json")).read_text())
    assert cells[2] == f"{negation['metrics']['accuracy_negative']['n']:,}"   # n: the Negation questions
    # negdata was verified by the recogniser trained on the annotated train split
    assert json.loads((out / "models" / "recogniser" / "recogniser.json").read_text())["trained_on"]["split"] == "train"
    assert json.loads((out / "negdata" / ".negdata" / "config.json").read_text())["config"]["verifier"]
    summary = json.loads((out / "demo.json").read_text())
    assert set(summary["stages"]) == {s[0] for s in STAGES}
    assert not any(s["skipped"] for s in summary["stages"].values())

    # a second run skips every stage and leaves the report alone
    before = (out / "report" / "report.html").stat().st_mtime_ns
    assert cli_main(["demo", "--size", "tiny", "--out", str(out)]) == 0
    again = capsys.readouterr().out
    assert again.count("skipping") == len(STAGES)
    assert all(s["skipped"] for s in json.loads((out / "demo.json").read_text())["stages"].values())
    assert (out / "report" / "report.html").stat().st_mtime_ns == before

    # a stage whose outputs were deleted runs again; the others stay skipped
    import shutil

    shutil.rmtree(out / "report")
    assert cli_main(["demo", "--size", "tiny", "--out", str(out)]) == 0
    third = capsys.readouterr().out
    assert third.count("skipping") == len(STAGES) - 1 and "report: outputs missing" in third
    assert (out / "report" / "report.html").exists()

    # another size in the same folder is refused, not mixed in
    assert cli_main(["demo", "--size", "small", "--out", str(out)]) == 2
