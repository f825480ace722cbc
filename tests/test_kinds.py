"""The task-kind registry: every kind answers for itself, scoring through it is the engine's,
and results files of the previous schema still read."""
import dataclasses
import json
from types import SimpleNamespace

import numpy as np
import pytest

from negbench.analysis.results import load_results
from negbench.core.errors import ConfigError
from negbench.evaluation import metrics
from negbench.evaluation.schema import ANSWER_TYPE_BREAKDOWN, SCHEMA_VERSION, upgrade_result
from negbench.inputs.formats import MCQItem
from negbench.inputs.kinds import KINDS, TaskKind, get_kind, metric_label, metric_template, template_metric
from negbench.inputs.tasks import TaskSpec


@pytest.mark.parametrize("name", KINDS.names())
def test_every_kind_has_its_fields(name):
    kind = get_kind(name)
    assert isinstance(kind, TaskKind) and kind.name == name
    for f in dataclasses.fields(TaskKind):
        assert hasattr(kind, f.name)
    assert kind.columns and kind.headline in kind.metrics and set(kind.compared) <= set(kind.metrics)
    from negbench.evaluation.scoring import SCORERS

    assert callable(SCORERS.get(name))   # every kind is scored through the one engine
    assert kind.chance is None or 0 < kind.chance < 1
    assert kind.is_choice == (kind.options is not None) and metric_label(kind.headline)


def test_unknown_kind_names_the_known_ones():
    with pytest.raises(ConfigError, match="kind 'quiz' not in"):
        TaskSpec(name="x", kind="quiz", file="x.csv")
    with pytest.raises(Exception, match="unknown task kind 'quiz'.*available: binary-mcq, mcq"):
        get_kind("quiz")


def test_template_keys_round_trip():
    assert template_metric("negative") == "accuracy_negative" and metric_template("accuracy_negative") == "negative"
    assert metric_template("accuracy_tie_aware") is None and metric_template("t2i_recall@5") is None
    assert metric_label("accuracy_negative", {"negative": "Negation"}.get) == "accuracy: Negation"


def _items(templated: bool):
    captions = ("This image features a dog.", "This image does not feature a dog.")
    return [MCQItem(i + 1, f"{i}.png", captions, i % 2, ("positive", "negative")[i % 2] if templated else None)
            for i in range(6)]


def _naive_accuracy(scores, items):
    pred = [int(np.argmax(s)) for s in scores]
    return float(np.mean([p == it.correct_answer for p, it in zip(pred, items)]))


@pytest.mark.parametrize("templated", [True, False])
def test_scoring_through_the_kind_is_the_engine_scoring(templated):
    from negbench.evaluation.config import EvalConfig
    from negbench.evaluation.scoring import _choice_result

    rng = np.random.default_rng(0)
    items, scores = _items(templated), rng.normal(size=(6, 2))
    spec = TaskSpec(name="b", kind="binary-mcq", file="b.csv")
    run = SimpleNamespace(spec=spec, cfg=EvalConfig(bootstrap_samples=10), data=SimpleNamespace(items=items), precision="fp32",
                          media_file=lambda m: m)
    scored = _choice_result(run, metrics.mcq_predictions(scores), scores=scores)
    res, breakdowns, cols = scored.metrics, scored.breakdowns, scored.table
    assert res["accuracy"]["value"] == pytest.approx(_naive_accuracy(scores, items))
    for t in ("positive", "negative"):
        mine = [it for it, s in zip(items, scores) if it.correct_answer == ("positive", "negative").index(t)]
        naive = _naive_accuracy([s for it, s in zip(items, scores) if it in mine], mine)
        where = res.get(template_metric(t)) if templated else breakdowns[ANSWER_TYPE_BREAKDOWN][t]
        assert where["value"] == pytest.approx(naive) and where["n"] == 3
    assert (template_metric("positive") in res) == templated  # binary files: metric only with the column
    assert list(cols["predicted"]) == list(metrics.mcq_predictions(scores))


def test_engine_dispatches_through_the_kind(monkeypatch):
    from negbench.evaluation import scoring

    seen = {}
    monkeypatch.setitem(scoring.SCORERS._entries, "retrieval", lambda *a: seen.setdefault("retrieval", a))
    run = SimpleNamespace(spec=SimpleNamespace(kind="retrieval"))
    scoring.score_task(run, 1)
    assert seen["retrieval"] == (run, 1)
    assert scoring.SCORERS.get("mcq") is scoring.SCORERS.get("binary-mcq") is scoring.score_choice


def _v1_doc(kind: str, with_metric: bool) -> dict:
    by = {"negative": {"value": 0.5, "ci_low": 0.4, "ci_high": 0.6, "n": 4},
          "positive": {"value": 1.0, "ci_low": 1.0, "ci_high": 1.0, "n": 2}}
    m = {"accuracy": {"value": 0.66, "ci_low": 0.5, "ci_high": 0.8}}
    if with_metric:
        m.update({f"accuracy_{t}": {k: v[k] for k in ("value", "ci_low", "ci_high")} for t, v in by.items()})
    return {"schema_version": 1, "model": "m", "task": {"name": f"t_{kind}_{with_metric}", "kind": kind},
            "counts": {"items": 6}, "metrics": m,
            "breakdowns": {"accuracy_by_template": by, "confusion": {}}}


def test_old_schema_results_still_read(tmp_path):
    (tmp_path / "mcq.json").write_text(json.dumps(_v1_doc("mcq", True)))
    (tmp_path / "binary.json").write_text(json.dumps(_v1_doc("binary-mcq", False)))
    by_task = {r.task_name: r for r in load_results([tmp_path])}
    mcq, binary = by_task["t_mcq_True"], by_task["t_binary-mcq_False"]
    assert mcq.data["schema_version"] == SCHEMA_VERSION and "accuracy_by_template" not in mcq.data["breakdowns"]
    assert mcq.metric("accuracy_negative") == {"value": 0.5, "ci_low": 0.4, "ci_high": 0.6, "n": 4}
    assert mcq.templates() == ["positive", "negative"]
    assert "accuracy_negative" not in binary.data["metrics"]  # the table lists what v1 listed
    assert binary.metric("accuracy_negative")["n"] == 4 and binary.templates() == ["positive", "negative"]


def test_upgrade_leaves_current_documents_alone():
    doc = {"schema_version": SCHEMA_VERSION, "metrics": {}}
    assert upgrade_result(doc) is doc
    old = _v1_doc("mcq", True)
    upgrade_result(old)
    assert old["schema_version"] == 1 and "accuracy_by_template" in old["breakdowns"]  # the input is untouched


def test_newer_schema_is_a_clear_error_naming_the_file(tmp_path, capsys):
    from negbench.cli import main

    doc = {**_v1_doc("mcq", True), "schema_version": SCHEMA_VERSION + 1}
    path = tmp_path / "future.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(ConfigError, match=rf"future.json: results schema_version {SCHEMA_VERSION + 1} is not one"):
        load_results([path])
    assert main(["table", str(path), "--out", str(tmp_path / "t")]) != 0
    err = capsys.readouterr().err
    assert "future.json" in err and "schema_version" in err and "Traceback" not in err


@pytest.mark.parametrize("task", ["sample_mcq", "sample_binary", "sample_retrieval"])
def test_results_hold_the_metrics_their_kind_names(adapter, sample_tasks, task):
    from negbench.evaluation.engine import evaluate_task
    from negbench.inputs.tasks import load_task_file

    spec = {s.name: s for s in load_task_file(sample_tasks)}[task]
    res = evaluate_task(spec, adapter, progress=False, bootstrap_samples=5)
    kind = spec.task_kind
    assert set(kind.metrics) <= set(res["metrics"]) and res["chance"] == kind.chance
    assert res["schema_version"] == SCHEMA_VERSION
    per_template = {k for k in res["metrics"] if metric_template(k)}
    assert bool(per_template) == (kind.templates == "always")  # the sample binary file has no template column
    assert all("n" in res["metrics"][k] for k in per_template)
