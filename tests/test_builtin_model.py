"""Built-in model: save/load round trip, weights-only loading, identity, frozen-layer cache."""
import torch
from safetensors.torch import load_file

from _train_fixtures import TINY_MODEL
from negbench.models.base import load_model
from negbench.models.builtin import create_builtin_model, load


def test_round_trip_and_identity(tmp_path):
    model = create_builtin_model(tmp_path / "m", seed=1, **TINY_MODEL)
    assert model == f"builtin:{tmp_path / 'm'}"
    a = load_model(model, device="cpu")
    pixels = torch.randn(3, 3, 16, 16)
    texts = ["a red apple", "no dog here", "a cat"]
    with torch.no_grad():
        f_img, f_txt = a.encode_images(pixels), a.encode_texts(texts)
    assert f_img.shape == (3, 16) and f_txt.shape == (3, 16)
    ident = a.identity()
    with torch.no_grad():
        a.module.visual.proj.weight.add_(1.0)
    a.save(tmp_path / "m2")
    b = load(str(tmp_path / "m2"), device="cpu")
    assert b.identity() != ident
    with torch.no_grad():
        assert torch.allclose(b.encode_images(pixels), a.encode_images(pixels))
        assert torch.allclose(b.encode_texts(texts), f_txt, atol=1e-6)
    # safetensors: plain tensors only, nothing pickled
    assert "logit_scale" in load_file(str(tmp_path / "m2" / "model.safetensors"))


def test_text_cache_matches_full_forward_and_keeps_gradients(tmp_path):
    a = load(create_builtin_model(tmp_path / "m", **TINY_MODEL).split(":", 1)[1], device="cpu")
    texts = ["a red apple on the grass", "no dog", "a cat and two balls in a room"]
    full = a.encode_texts(texts).detach()
    a.set_text_trainable_layers(1)      # layer 0 frozen + cached, layer 1 trained
    part = a.encode_texts(texts)
    assert torch.allclose(part, full, atol=1e-5)
    part.sum().backward()
    layers = a.module.text.bert.encoder.layer
    assert all(p.grad is None for p in layers[0].parameters())
    assert all(p.grad is not None for p in layers[1].parameters())
    a.set_text_trainable_layers(0)      # everything cached: only the projection trains
    assert torch.allclose(a.encode_texts(texts), full, atol=1e-5)


def test_checkpoints_load_weights_only(tmp_path):
    from _train_fixtures import make_tiny_data
    from negbench.train.trainer import TrainConfig, load_checkpoint, train

    d = make_tiny_data(tmp_path / "d", n=8)
    init = create_builtin_model(tmp_path / "init", **TINY_MODEL)
    out = train(TrainConfig(model=init, out=str(tmp_path / "run"), corpus=str(d["corpus"]), clw=1.0, mlw=0.0,
                            steps=2, batch_size=4, lr=1e-3, warmup_steps=1))
    ck = load_checkpoint(tmp_path / "run" / "train" / "checkpoint.pt")   # weights_only=True inside
    assert ck["step"] == 2 and ck["config"]["steps"] == 2
    assert load_model(out, device="cpu").identity() != load_model(init, device="cpu").identity()


def test_models_with_the_same_lower_layers_share_their_encodings(tmp_path):
    """A base and a fine-tune that trained only the top layer share the lower layer's outputs;
    a model whose lower layer differs gets its own entries; embeddings stay those of a full forward."""
    path = create_builtin_model(tmp_path / "m", seed=0, **TINY_MODEL).split(":", 1)[1]
    base, tuned, other = (load(path, device="cpu") for _ in range(3))
    with torch.no_grad():
        tuned.module.text.bert.encoder.layer[1].output.dense.weight.add_(0.01)   # top layer only
        other.module.text.bert.encoder.layer[0].output.dense.weight.add_(0.01)   # a lower layer
    texts = ["a red apple on the grass", "no dog", "two cats in a room"]
    with torch.no_grad():
        full = {name: m.encode_texts(texts) for name, m in (("base", base), ("tuned", tuned), ("other", other))}
    stores: dict = {}
    for m in (base, tuned, other):
        m.share_text_encodings(stores, trained_top_layers=1)
    with torch.no_grad():
        shared = {name: m.encode_texts(texts) for name, m in (("base", base), ("tuned", tuned), ("other", other))}
    assert len(stores) == 2 and sorted(len(v) for v in stores.values()) == [3, 3]
    for name in full:
        assert torch.allclose(shared[name], full[name], atol=1e-5), name
