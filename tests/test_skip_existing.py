"""--skip-existing reuses a result only for the same task file, media, model and settings."""
from __future__ import annotations

import csv
import json

import pytest

from negbench.evaluation.engine import evaluate_task, result_paths


def run(spec, adapter, results, **kw):
    return evaluate_task(spec, adapter, results_dir=results, skip_existing=True, progress=False,
                         bootstrap_samples=kw.pop("bootstrap_samples", 5), **kw)


def test_task_file_change_recomputes(adapter, sample_copy, tmp_path):
    root, specs = sample_copy
    spec = specs["sample_binary"]
    first = run(spec, adapter, tmp_path / "res")
    assert run(spec, adapter, tmp_path / "res")["created"] == first["created"]  # same inputs: reused
    task = spec.resolve_file()
    with open(task, newline="") as f:
        rows = list(csv.reader(f))
    with open(task, "w", newline="") as f:
        csv.writer(f).writerows(rows[:5])  # 12 -> 4 rows
    res = run(spec, adapter, tmp_path / "res")
    assert res["counts"]["items"] == 4 and "fingerprint" in res
    stored = json.loads(result_paths(tmp_path / "res", adapter.model_string, spec.name)[0].read_text())
    assert stored["counts"]["items"] == 4


@pytest.mark.parametrize("change", [{"seed": 1}, {"bootstrap_samples": 7}, {"skip_invalid": True}])
def test_setting_change_recomputes(adapter, sample_copy, tmp_path, change):
    _, specs = sample_copy
    spec = specs["sample_binary"]
    first = run(spec, adapter, tmp_path / "res")
    res = run(spec, adapter, tmp_path / "res", **change)
    assert res["created"] != first["created"] or res["timings"] != first["timings"]
    for key, value in change.items():
        assert res["fingerprint"][key] == value


def test_frames_change_recomputes_video(adapter, sample_copy, tmp_path):
    _, specs = sample_copy
    spec = next(s for s in specs.values() if s.modality == "video")
    first = run(spec, adapter, tmp_path / "res", frames=2)
    assert run(spec, adapter, tmp_path / "res", frames=2)["timings"] == first["timings"]
    assert run(spec, adapter, tmp_path / "res", frames=3)["frames"] == 3


def test_media_edit_recomputes(adapter, sample_copy, tmp_path):
    from conftest import make_image

    root, specs = sample_copy
    spec = specs["sample_binary"]
    first = run(spec, adapter, tmp_path / "res")
    make_image(root / "images" / "img0.png", 99)
    assert run(spec, adapter, tmp_path / "res")["timings"] != first["timings"]


def test_task_name_cannot_escape_the_results_dir(tmp_path):
    j, p = result_paths(tmp_path / "res", "openclip:x@random", "../../../x")
    assert j.parent == p.parent == (tmp_path / "res" / "openclip_x@random")
    assert j.name.endswith(".json") and "/" not in j.name and not j.name.startswith(".")
    a, _ = result_paths(tmp_path, "m", "a/b")
    b, _ = result_paths(tmp_path, "m", "a_b")
    assert a != b  # sanitised names never collide with a real one
