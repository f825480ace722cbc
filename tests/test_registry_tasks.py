"""Registry, task specs and suites: the shared core every other part registers into."""
from __future__ import annotations

import pytest

from negbench.core.errors import ConfigError, UnknownNameError
from negbench.core.registry import Registry
from negbench.inputs.tasks import SUITES, TaskSpec, expand_tasks, get_task, load_task_file


def test_registry_lazy_entry_resolves_on_first_use():
    reg = Registry("thing")
    reg.register("join", "os.path:join")
    assert reg.get("join")("a", "b").replace("\\", "/") == "a/b"


def test_registry_unknown_name_suggests_close_matches_and_lists_all():
    reg = Registry("task")
    for name in ("coco_mcq", "voc_mcq", "msrvtt_mcq"):
        reg.register(name, object())
    with pytest.raises(UnknownNameError) as err:
        reg.get("coco_mqc")
    msg = str(err.value)
    assert "unknown task 'coco_mqc'" in msg and "did you mean 'coco_mcq'" in msg
    assert "available: coco_mcq, msrvtt_mcq, voc_mcq" in msg


def test_registry_refuses_silent_overwrite():
    reg = Registry("thing")
    reg.register("a", 1)
    with pytest.raises(ValueError):
        reg.register("a", 2)
    reg.register("a", 3, overwrite=True)
    assert reg.get("a") == 3


def test_all_negbench_variants_ship():
    specs = expand_tasks(suites=["negbench"])
    assert len(specs) == 26  # the 18 published variants + 8 per-finding CheXpert binary files
    kinds = {s.kind for s in specs}
    assert kinds == {"mcq", "binary-mcq", "retrieval"}
    assert {s.group for s in specs} == {"COCO", "VOC2007", "HardNeg-Syn", "MSR-VTT", "CheXpert"}
    assert {s.modality for s in specs} == {"image", "video"}
    assert get_task("coco_mcq").file.endswith("COCO_val_mcq_llama3.1_rephrased.csv")
    assert get_task("chexpert_binary_mcq").chance == 0.5
    medical = [s.name for s in expand_tasks(suites=["negbench-medical"])]
    assert "chexpert_lung_opacity_negation_binary_mcq" in medical and len(medical) == 12
    assert get_task("chexpert_atelectasis_affirmation_binary_mcq").file == \
        "images/Atelectasis/chexpert_affirmation_binary_mcq.csv"


def test_task_yaml_with_include_and_suite(tmp_path):
    (tmp_path / "base.yaml").write_text(
        "tasks:\n  - {name: my_mcq, kind: mcq, file: my_mcq.csv, group: Mine}\n")
    (tmp_path / "top.yaml").write_text(
        "include: [base.yaml]\n"
        "tasks:\n  - {name: my_ret, kind: retrieval, file: sub/ret.csv, variant: original, negated: false}\n"
        "suites:\n  mine: [my_mcq, my_ret]\n")
    specs = load_task_file(tmp_path / "top.yaml")
    assert [s.name for s in specs] == ["my_mcq", "my_ret"]
    assert SUITES.get("mine") == ["my_mcq", "my_ret"]
    assert [s.name for s in expand_tasks(suites=["mine"])] == ["my_mcq", "my_ret"]
    # relative files resolve beside the YAML unless a data root is given
    assert get_task("my_ret").resolve_file() == tmp_path / "sub" / "ret.csv"
    assert get_task("my_ret").resolve_file(tmp_path / "elsewhere") == tmp_path / "elsewhere" / "sub" / "ret.csv"


def test_bad_task_spec_names_the_bad_value(tmp_path):
    with pytest.raises(ConfigError, match="kind 'mcqq'"):
        TaskSpec(name="x", kind="mcqq", file="x.csv")
    (tmp_path / "bad.yaml").write_text("tasks:\n  - {name: t, kind: mcq, file: t.csv, colour: red}\n")
    with pytest.raises(ConfigError, match="unknown keys \\['colour'\\]"):
        load_task_file(tmp_path / "bad.yaml")
