"""Model identity = everything that changes outputs; a change means new cache keys."""
from __future__ import annotations

import json
import shutil

import pytest

from _train_fixtures import TINY_MODEL
from negbench.models import builtin, hf, openclip
from negbench.models.base import load_model


def test_builtin_config_change_changes_identity_and_recomputes(tmp_path, sample_tasks):
    from negbench.evaluation.engine import evaluate_task
    from negbench.inputs.tasks import load_task_file

    model = builtin.create_builtin_model(tmp_path / "m", seed=1, **TINY_MODEL)
    before = load_model(model, device="cpu").identity()
    assert builtin.identity_of(str(tmp_path / "m")) == before  # cheap path, no model built
    spec = {s.name: s for s in load_task_file(sample_tasks)}["sample_mcq"]
    kw = dict(cache_dir=tmp_path / "cache", progress=False, bootstrap_samples=5)
    evaluate_task(spec, model, **kw)
    cfg_path = tmp_path / "m" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["max_text_length"] = 4  # truncates every caption: other text embeddings
    cfg_path.write_text(json.dumps(cfg))
    after = load_model(model, device="cpu").identity()
    assert after != before
    res = evaluate_task(spec, model, **kw)
    assert res["cache"]["text_hits"] == 0 and res["cache"]["media_hits"] == 0
    # formatting alone does not move the identity
    cfg_path.write_text(json.dumps(cfg, indent=4))
    assert builtin.identity_of(str(tmp_path / "m")) == after


def test_hf_folder_identity_follows_tokenizer_files(tiny_hf_dir, tmp_path):
    copy = tmp_path / "hf"
    shutil.copytree(tiny_hf_dir, copy)
    before = hf.identity_of(str(copy))
    assert load_model(f"hf:{copy}", device="cpu").identity() == before
    tok = next(p for p in copy.iterdir() if p.name in ("tokenizer_config.json", "special_tokens_map.json"))
    data = json.loads(tok.read_text())
    data["model_max_length"] = 5
    tok.write_text(json.dumps(data))
    assert hf.identity_of(str(copy)) != before


def test_hf_hub_identity_names_the_revision(tmp_path, monkeypatch):
    import huggingface_hub.constants as c

    monkeypatch.setattr(c, "HF_HUB_CACHE", str(tmp_path))
    ref = tmp_path / "models--org--name" / "refs" / "main"
    ref.parent.mkdir(parents=True)
    ref.write_text("abc123")
    assert hf.identity_of("org/name") == "hf|hub:org/name@abc123"
    ref.write_text("def456")
    assert hf.identity_of("org/name") == "hf|hub:org/name@def456"


def test_openclip_checkpoint_identity_is_content(tiny_openclip_arch, tiny_openclip_checkpoint, tmp_path):
    a, b = tmp_path / "a.pt", tmp_path / "b" / "a.pt"
    b.parent.mkdir()
    shutil.copy(tiny_openclip_checkpoint, a)
    shutil.copy(tiny_openclip_checkpoint, b)
    ia, ib = openclip.identity_of(f"{tiny_openclip_arch}@{a}"), openclip.identity_of(f"{tiny_openclip_arch}@{b}")
    assert ia == ib  # same bytes at two paths: one cache namespace
    assert load_model(f"openclip:{tiny_openclip_arch}@{a}", device="cpu").identity() == ia
    with open(b, "r+b") as f:
        f.seek(-3, 2)
        last = f.read(3)
        f.seek(-3, 2)
        f.write(bytes(x ^ 1 for x in last))
    assert openclip.identity_of(f"{tiny_openclip_arch}@{b}") != ia


@pytest.mark.parametrize("seed", [0])
def test_builtin_saved_twice_hashes_the_same(tmp_path, seed):
    m1 = builtin.create_builtin_model(tmp_path / "a", seed=seed, **TINY_MODEL)
    m2 = builtin.create_builtin_model(tmp_path / "b", seed=seed, **TINY_MODEL)
    assert (tmp_path / "a" / "model.safetensors").read_bytes() == (tmp_path / "b" / "model.safetensors").read_bytes()
    assert builtin.identity_of(m1[len("builtin:"):]) == builtin.identity_of(m2[len("builtin:"):])
