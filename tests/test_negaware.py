"""The training-free negation-aware wrappers (negaware:METHOD:BASE): the model string, identity,
bit-for-bit equality with the base model on captions without negation, the decompose score against
a naive reference, the project method's geometry, and MCQ / retrieval on a tiny NegWorld suite
through the adapter's encode_* and similarity (what the engine calls)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from _train_fixtures import TINY_MODEL
from negbench.core.negation_parse import PARSER_VERSION, parse_negation
from negbench.core.errors import ConfigError
from negbench.evaluation import metrics
from negbench.inputs.formats import read_task_file
from negbench.inputs.tasks import load_task_file
from negbench.models.base import load_model, model_identity
from negbench.models.negaware import decompose_scores, parse_spec, standard_cosine, unpack

PLAIN = ["This image features a dog and a cat.", "A man rides a bike.", "two cups on a table", ""]
NEGATED = ["This image features a cat, but not a dog.", "This image does not feature a car.",
           "A man rides a bike. There is no dog in the image.", "There is neither a dog nor a bird nor a cat nor a "
           "car nor a tree in this image."]


@pytest.fixture(scope="module")
def world_suite(tmp_path_factory):
    """A tiny NegWorld, its NegBench-World suite, and a tiny built-in model: (tasks, model string)."""
    from negbench.models.builtin import create_builtin_model
    from negbench.world import generate_world
    from negbench.world.suite import build_world_suite

    tmp = tmp_path_factory.mktemp("negaware")
    generate_world(tmp / "world", seed=0, size="tiny", workers=1)
    tasks = build_world_suite(tmp / "world", tmp / "tasks", seed=0, template_sets=("default",), hardneg=False)
    model = create_builtin_model(tmp / "model", seed=0, **TINY_MODEL)
    return {s.name: s for s in load_task_file(tasks)}, model


@pytest.mark.parametrize("spec, method, base", [
    ("decompose:openclip:ViT-B-32@openai", "decompose", "openclip:ViT-B-32@openai"),
    ("decompose,lambda=1.5,f=mean,slots=2:builtin:/m", "decompose", "builtin:/m"),
    ("project,beta=0.8,gamma=0:hf:/a/b", "project", "hf:/a/b"),
    ("decompose,llm=qwen2.5:14b@http://127.0.0.1:8000/v1,lambda=1:builtin:/m", "decompose", "builtin:/m"),
])
def test_model_string_form(spec, method, base):
    opts, rest = parse_spec(spec)
    assert (opts.method, rest) == (method, base)


@pytest.mark.parametrize("spec, message", [
    ("decompose", "must look like negaware:METHOD"),
    ("subtract:builtin:/m", "method 'subtract' not in"),
    ("decompose,alpha=1:builtin:/m", "option 'alpha=1' not one of"),
    ("decompose,lambda=x:builtin:/m", "lambda='x' is not a float"),
    ("decompose,lambda=-1:builtin:/m", "must be finite and >= 0"),
    ("decompose,f=min:builtin:/m", "f='min' not in"),
    ("project,lambda=1:builtin:/m", "option 'lambda=1' not one of"),
    ("decompose:negaware:decompose:builtin:/m", "wraps another negaware model"),
    ("decompose,llm=gpt:builtin:/m", "must be llm=MODEL@URL"),                       # the llm= options
    ("decompose,llm=gpt@ftp://h/v1:builtin:/m", "must be llm=MODEL@URL"),
    ("decompose,llm=gpt@http://user:pw@h/v1:builtin:/m", "no user:password@"),
    ("decompose,llm_timeout=3:builtin:/m", "need llm=MODEL@URL"),
    ("decompose,llm=gpt@http://h/v1,llm_workers=0:builtin:/m", "llm_workers >= 1"),
])
def test_bad_model_strings_are_one_line_config_errors(spec, message):
    with pytest.raises(ConfigError, match=message):
        load_model(f"negaware:{spec}")


def test_identity_known_without_loading_and_names_its_parts(world_suite):
    _, model = world_suite
    wrapped = load_model(f"negaware:decompose,lambda=0.25:{model}", device="cpu")
    ident = wrapped.identity()
    assert ident == model_identity(f"negaware:decompose,lambda=0.25:{model}")
    assert wrapped.base.identity() in ident and PARSER_VERSION in ident and "lambda=0.25" in ident
    assert model_identity(f"negaware:decompose,lambda=0.5:{model}") != ident
    assert model_identity(f"negaware:project:{model}") != ident
    with pytest.raises(ConfigError, match="training-free"):
        wrapped.trainable_parameters()
    with pytest.raises(ConfigError, match="training-free"):
        wrapped.save("x")


def _base_and_wrapped(model: str, method: str = "decompose", opts: str = ""):
    base = load_model(model, device="cpu")
    return base, load_model(f"negaware:{method}{opts}:{model}", device="cpu")


def test_unnegated_captions_score_bit_for_bit_as_the_base_cosine(tiny_openclip_model):
    base, wrapped = _base_and_wrapped(tiny_openclip_model)
    torch.manual_seed(0)
    media = base.encode_images(torch.rand(5, 3, 32, 32)).detach().numpy()
    with torch.inference_mode():   # the same batch for both (a forward's bits can depend on the batch)
        plain = base.encode_texts(PLAIN + NEGATED).numpy()[:len(PLAIN)]
        packed = wrapped.encode_texts(PLAIN + NEGATED).numpy()
    assert np.array_equal(packed[:len(PLAIN), :plain.shape[1]], plain)      # the base embedding itself
    scores = wrapped.similarity(media, packed)
    assert scores.dtype == np.float64 and scores.shape == (5, len(PLAIN) + len(NEGATED))
    # the engine's standard cosine: float32 L2-normalised features, one matrix product (metrics.py)
    reference = (metrics.l2_normalize(media) @ metrics.l2_normalize(plain).T).double().numpy()
    assert np.array_equal(scores[:, :len(PLAIN)], reference)
    # and the published MCQ rule picks the same options (mcq_scores: an einsum, equal to 1e-6)
    mi, oi = np.arange(5), np.array([[0, 1, 2, 3]] * 5)
    mcq = metrics.mcq_scores(media, plain, mi, oi)
    assert np.allclose(mcq, scores[mi[:, None], oi], atol=1e-6)
    assert np.array_equal(metrics.mcq_predictions(mcq), scores[mi[:, None], oi].argmax(axis=1))
    assert not np.array_equal(scores[:, len(PLAIN):], standard_cosine(media, packed[len(PLAIN):, :plain.shape[1]]))


def test_decompose_score_equals_a_naive_reference(tiny_openclip_model):
    base, wrapped = _base_and_wrapped(tiny_openclip_model, opts=",lambda=0.7,f=mean,slots=3")
    torch.manual_seed(1)
    media = base.encode_images(torch.rand(4, 3, 32, 32)).detach().numpy()
    texts = PLAIN + NEGATED
    with torch.inference_mode():
        packed = wrapped.encode_texts(texts).numpy()
    scores = wrapped.similarity(media, packed)

    def cos(m, t):
        t = base.encode_texts([t]).detach().numpy()[0].astype(np.float64)
        return float(m @ t / (np.linalg.norm(m) * np.linalg.norm(t)))

    for j, text in enumerate(texts):
        p = parse_negation(text)
        negs = list(p.negated)
        if len(negs) > 3:   # the last slot holds the overflow as one phrase
            negs = negs[:2] + [", ".join(negs[2:-1]) + " and " + negs[-1]]
        for i, m in enumerate(media.astype(np.float64)):
            want = cos(m, text if not negs else p.affirmed)
            if negs:
                want -= 0.7 * np.mean([cos(m, n) for n in negs])
            assert scores[i, j] == pytest.approx(want, abs=1e-5), (text, p)
    aff, neg, counts = unpack(packed, media.shape[1], 3)
    assert list(counts) == [0] * len(PLAIN) + [1, 1, 1, 3]
    with pytest.raises(ConfigError, match="not packed rows"):
        decompose_scores(media, packed[:, :-1], lam=0.7, slots=3)


def test_project_removes_the_negated_concepts_and_leaves_other_captions_alone(tiny_openclip_model):
    base, wrapped = _base_and_wrapped(tiny_openclip_model, "project", ",beta=1,gamma=0")
    with torch.inference_mode():
        out = wrapped.encode_texts(PLAIN + NEGATED)
        plain = base.encode_texts(PLAIN + NEGATED)[:len(PLAIN)]
        dog, car = base.encode_texts(["dog", "car"])
    assert wrapped.similarity(out.numpy(), out.numpy()) is None     # the engine's cosine scores it
    assert torch.equal(out[:len(PLAIN)], plain)
    assert abs(float(torch.nn.functional.normalize(dog, dim=0) @ out[len(PLAIN)])) < 1e-5   # "... but not a dog"
    assert abs(float(torch.nn.functional.normalize(car, dim=0) @ out[len(PLAIN) + 1])) < 1e-5


def _embed(adapter, spec, names):
    data = read_task_file(f"{spec.spec_dir}/{spec.file}", spec.kind, data_root=f"{spec.spec_dir}/{spec.data_root}")
    paths = list(dict.fromkeys(it.media for it in data.items))
    with torch.inference_mode():
        pixels = torch.stack([adapter.preprocess(Image.open(data.media_path(p))) for p in paths])
        media = adapter.encode_images(pixels).numpy()
    captions = list(dict.fromkeys(c for it in data.items for c in it.captions))
    return data.items, {p: i for i, p in enumerate(paths)}, media, captions


def test_mcq_and_retrieval_on_a_tiny_negworld(world_suite):
    specs, model = world_suite
    base, wrapped = _base_and_wrapped(model)
    items, media_at, media, captions = _embed(base, specs["world_coco_mcq"], None)
    with torch.inference_mode():
        text = wrapped.encode_texts(captions).numpy()
    cap_at = {c: i for i, c in enumerate(captions)}
    scores = wrapped.similarity(media, text)
    mi = np.array([media_at[it.media] for it in items])
    oi = np.array([[cap_at[c] for c in it.captions] for it in items])
    predicted = scores[mi[:, None], oi].argmax(axis=1)
    correct = np.array([it.correct_answer for it in items])
    accuracy = metrics.accuracy(predicted, correct)
    assert np.isfinite(scores).all() and 0.0 <= accuracy <= 1.0 and len(items) > 20
    # every question has negated options, which the wrapper scores differently from the base
    with torch.inference_mode():
        base_scores = metrics.mcq_scores(media, base.encode_texts(captions).numpy(), mi, oi)
    positive = np.array([parse_negation(captions[j]).has_negation is False for j in oi.ravel()]).reshape(oi.shape)
    assert np.allclose(scores[mi[:, None], oi][positive], base_scores[positive], atol=1e-6)
    assert not np.allclose(scores[mi[:, None], oi][~positive], base_scores[~positive], atol=1e-3)

    # plain retrieval: no caption negates, so every hit is the base model's
    items, media_at, media, captions = _embed(base, specs["world_coco_retrieval"], None)
    assert not any(parse_negation(c).has_negation for c in captions)
    with torch.inference_mode():
        plain_text = base.encode_texts(captions).numpy()
        packed = wrapped.encode_texts(captions).numpy()
    owner = np.array([media_at[it.media] for it in items for _ in it.captions])
    rows = [captions.index(c) for it in items for c in it.captions]
    want = metrics.image_to_text_hits(media, plain_text[rows], owner)
    s = wrapped.similarity(media, packed)[:, rows]
    for k in metrics.DEFAULT_KS:
        idx = torch.topk(torch.as_tensor(s, dtype=torch.float32), k, dim=1).indices.numpy()
        got = (owner[idx] == np.arange(len(media))[:, None]).any(axis=1)
        assert np.array_equal(got, want[k])
