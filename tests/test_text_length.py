"""Causal text towers encoded at each batch's own token length give the full-context embeddings;
towers whose attention sees padding (SigLIP) keep their fixed padding."""
from __future__ import annotations

import json

import pytest
import torch

from negbench.evaluation.engine import encode_texts

CAPTIONS = [
    "dog",
    "This image features a dog and a cat.",
    "This image does not feature a car, but not a tree and there is no apple in the picture at all today",
    "a",
    "This image features tree and bird, but not boat (this caption was fine and only minor adjustments were made).",
]


def _full_context_openclip(adapter, texts):
    with torch.inference_mode():
        return adapter.module.encode_text(adapter.tokenizer(list(texts)))


def test_openclip_batch_length_equals_full_context(tiny_openclip_model):
    from negbench.models.base import load_model

    adapter = load_model(tiny_openclip_model, device="cpu")
    full = _full_context_openclip(adapter, CAPTIONS)
    got = torch.from_numpy(encode_texts(adapter, CAPTIONS, batch_size=2, progress=False))
    torch.testing.assert_close(got, full, atol=1e-5, rtol=0)
    for text in (CAPTIONS[3], CAPTIONS[4]):  # the shortest and the longest caption, each alone
        with torch.inference_mode():
            torch.testing.assert_close(adapter.encode_texts([text]), _full_context_openclip(adapter, [text]),
                                       atol=1e-5, rtol=0)


def test_openclip_vit_b32_text_tower_at_batch_length():
    """The real ViT-B-32 text tower (random weights): 77-token context vs the batch's own length."""
    from negbench.models.openclip import _causal_text_tower, load

    adapter = load("ViT-B-32@random", device="cpu")
    assert _causal_text_tower(adapter.module) is not None
    with torch.inference_mode():
        for batch in (CAPTIONS, [CAPTIONS[3]], [CAPTIONS[4]]):
            torch.testing.assert_close(adapter.encode_texts(batch), _full_context_openclip(adapter, batch),
                                       atol=1e-5, rtol=0)


def test_openclip_non_causal_tower_keeps_full_context(tmp_path):
    """A SigLIP-style open_clip text tower (no causal mask, last-token pooling) is not cut."""
    import open_clip

    from negbench.models.openclip import _causal_text_tower, load

    cfg = {"embed_dim": 32,
           "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16},
           "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1,
                        "no_causal_mask": True, "pool_type": "last"}}
    (tmp_path / "negbench-tiny-bidir.json").write_text(json.dumps(cfg))
    open_clip.add_model_config(tmp_path / "negbench-tiny-bidir.json")
    adapter = load("negbench-tiny-bidir@random", device="cpu")
    assert _causal_text_tower(adapter.module) is None
    with torch.inference_mode():
        torch.testing.assert_close(adapter.encode_texts(CAPTIONS), _full_context_openclip(adapter, CAPTIONS),
                                   atol=0, rtol=0)


def test_hf_clip_batch_length_equals_full_context(tiny_hf_dir):
    from negbench.models.base import load_model

    adapter = load_model(f"hf:{tiny_hf_dir}", device="cpu")
    assert not adapter.pad_to_max
    texts = [t.lower() for t in CAPTIONS]
    tok = adapter.tokenizer(texts, padding="max_length", max_length=adapter.max_length, truncation=True,
                            return_tensors="pt")
    with torch.inference_mode():
        full = adapter.module.get_text_features(input_ids=tok["input_ids"], attention_mask=tok["attention_mask"])
        full = getattr(full, "pooler_output", full)
        got = torch.from_numpy(encode_texts(adapter, texts, batch_size=2, progress=False))
        torch.testing.assert_close(got, full, atol=1e-5, rtol=0)
        for i in (3, 2):  # shortest and longest, alone: no padding at all
            torch.testing.assert_close(adapter.encode_texts([texts[i]]), full[i:i + 1], atol=1e-5, rtol=0)


def test_hf_siglip_keeps_max_length_padding(tmp_path):
    """SigLIP's attention sees padding: its embeddings are those of max-length padding, which
    batch-length padding would change."""
    from transformers import SiglipConfig, SiglipImageProcessor, SiglipModel

    from negbench.models.base import load_model
    from tests.conftest import build_tiny_tokenizer

    tok = build_tiny_tokenizer()
    text = dict(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                num_attention_heads=2, max_position_embeddings=32, pad_token_id=tok.pad_token_id)
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                  image_size=32, patch_size=8)
    torch.manual_seed(3)
    SiglipModel(SiglipConfig(text_config=text, vision_config=vision)).save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    SiglipImageProcessor(size={"height": 32, "width": 32}).save_pretrained(tmp_path)
    adapter = load_model(f"hf:{tmp_path}", device="cpu")
    assert adapter.pad_to_max
    texts = [t.lower() for t in CAPTIONS]
    with torch.inference_mode():
        fixed = adapter.module.get_text_features(
            input_ids=adapter.tokenizer(texts, padding="max_length", max_length=adapter.max_length,
                                        truncation=True, return_tensors="pt")["input_ids"])
        short = adapter.module.get_text_features(
            input_ids=adapter.tokenizer(texts, padding=True, truncation=True, return_tensors="pt")["input_ids"])
        fixed, short = getattr(fixed, "pooler_output", fixed), getattr(short, "pooler_output", short)
        got = torch.from_numpy(encode_texts(adapter, texts, batch_size=2, progress=False))
    torch.testing.assert_close(got, fixed, atol=1e-5, rtol=0)
    assert (short - fixed).abs().max() > 1e-3  # cutting the padding would have changed them
