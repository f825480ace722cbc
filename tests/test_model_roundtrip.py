"""Fine-tuned open_clip / transformers CLIP / SigLIP models load back through their model strings.

The README promises that `negbench finetune` output is evaluated with the same model-string
kinds as the input; these tests train a tiny random model of each kind for a few real steps,
load the saved result and evaluate it.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from _train_fixtures import make_tiny_data
from negbench.evaluation.engine import evaluate_task
from negbench.models import load_model
from negbench.inputs.tasks import load_task_file
from negbench.train.trainer import TrainConfig, train

CAPTIONS = ["This image features a dog.", "This image does not feature a dog, but a cat and a car."]


@pytest.fixture(scope="session")
def tiny_siglip_dir(tmp_path_factory) -> Path:
    """A random tiny transformers SiglipModel + image processor + local tokenizer, save_pretrained'd."""
    from conftest import build_tiny_tokenizer
    from transformers import SiglipConfig, SiglipImageProcessor, SiglipModel

    tok = build_tiny_tokenizer()
    text = dict(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                num_attention_heads=2, max_position_embeddings=32, pad_token_id=tok.pad_token_id,
                projection_size=32)
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                  image_size=32, patch_size=8)
    torch.manual_seed(4)
    model = SiglipModel(SiglipConfig(text_config=text, vision_config=vision))
    d = tmp_path_factory.mktemp("hf_siglip")
    model.save_pretrained(d)
    tok.save_pretrained(d)
    SiglipImageProcessor(size={"height": 32, "width": 32}).save_pretrained(d)
    return d


def _text_features(model: str) -> torch.Tensor:
    adapter = load_model(model, device="cpu")
    with torch.inference_mode():
        return adapter.encode_texts(CAPTIONS).float()


def test_siglip_pads_to_max_length_so_features_do_not_depend_on_the_batch(tiny_siglip_dir):
    adapter = load_model(f"hf:{tiny_siglip_dir}", device="cpu")
    assert adapter.pad_to_max
    with torch.inference_mode():
        together = adapter.encode_texts(CAPTIONS)
        alone = torch.cat([adapter.encode_texts([c]) for c in CAPTIONS])
    torch.testing.assert_close(together, alone)
    assert not torch.allclose(together[0], together[1])


@pytest.mark.parametrize("kind", ["openclip", "hf-clip", "hf-siglip"])
def test_finetuned_model_loads_back_and_evaluates(kind, request, tmp_path, sample_tasks):
    model = {"openclip": lambda: request.getfixturevalue("tiny_openclip_model"),
             "hf-clip": lambda: f"hf:{request.getfixturevalue('tiny_hf_dir')}",
             "hf-siglip": lambda: f"hf:{request.getfixturevalue('tiny_siglip_dir')}"}[kind]()
    data = make_tiny_data(tmp_path / "data", n=8)
    cfg = TrainConfig(model=model, out=str(tmp_path / "run"), negcap=str(data["negcap"]),
                      negmcq=str(data["negmcq"]), clw=0.5, mlw=0.5, steps=3, batch_size=4, mcq_batch_size=2,
                      lr=1e-2, warmup_steps=1, seed=0, device="cpu")
    tuned = train(cfg)
    assert tuned.split(":", 1)[0] == model.split(":", 1)[0]
    after = _text_features(tuned)
    assert not torch.allclose(after, _text_features(model))  # training changed the weights ...
    torch.testing.assert_close(after, _text_features(tuned))  # ... and loading is deterministic
    # SigLIP (a learned logit bias) is fine-tuned with its sigmoid loss, which trains the bias too
    bias_before, bias_after = load_model(model).logit_bias(), load_model(tuned).logit_bias()
    assert (bias_before is not None) == (kind == "hf-siglip")
    if bias_before is not None:
        assert not torch.equal(bias_before, bias_after)
    spec = next(s for s in load_task_file(sample_tasks) if s.name == "sample_mcq")
    res = evaluate_task(spec, load_model(tuned, device="cpu"), progress=False, bootstrap_samples=50)
    assert res["counts"]["items"] == 50 and 0.0 <= res["metrics"]["accuracy"]["value"] <= 1.0


@pytest.mark.parametrize("kind", ["openclip", "hf-clip"])
def test_train_text_layers_updates_only_the_top_blocks(kind, request, tmp_path):
    model = {"openclip": lambda: request.getfixturevalue("tiny_openclip_model"),
             "hf-clip": lambda: f"hf:{request.getfixturevalue('tiny_hf_dir')}"}[kind]()
    data = make_tiny_data(tmp_path / "data", n=8)
    tuned = train(TrainConfig(model=model, out=str(tmp_path / "run"), negcap=str(data["negcap"]),
                              negmcq=str(data["negmcq"]), clw=0.5, mlw=0.5, steps=3, batch_size=4,
                              mcq_batch_size=2, lr=1e-2, warmup_steps=1, seed=0, device="cpu",
                              train_text_layers=1, lock_image=True))
    a, b = load_model(model, device="cpu"), load_model(tuned, device="cpu")
    text_names = {n for n, p in a.module.named_parameters() if any(p is q for q in a.tower_parameters("text"))}
    before = dict(a.module.named_parameters())
    changed = {n for n, p in b.module.named_parameters() if not torch.equal(p, before[n])}
    block = (".resblocks.", ".layers.")
    assert any(f"{s}1." in n for n in changed for s in block)        # the top block (of 2) trained
    assert not any(f"{s}0." in n for n in changed for s in block)    # the lower one frozen
    assert not any("embed" in n for n in changed & text_names)       # embeddings frozen
    assert not changed - text_names - {"logit_scale"}                # image tower locked
