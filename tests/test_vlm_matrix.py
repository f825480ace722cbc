"""`vlm:hf:` against plain transformers on tiny random checkpoints of every popular VLM architecture
the installed transformers has (built here: 1-2 layers, width 32, a 300-token BPE, each
architecture's own processor class and chat-template shape).

For each architecture: the input ids are the processor's own `apply_chat_template(tokenize=True)`
(one BOS), choice answers equal a plain `generate()` one question at a time, option
log-probabilities equal a naive forward pass of prefix+option written here independently
(1e-4), for single images, several images (video frames) and binary questions; a variant whose
weights always answer 'B' answers 'B' through the adapter."""
from __future__ import annotations

import pytest
import torch
from PIL import Image

from _vlm_fixtures import ARCHITECTURES, build_tiny_arch
from negbench.models.vlm.base import Query, chat_messages
from negbench.models.vlm.hf import CACHED, FULL, HFVisionLanguageModel

ARCHS = ["llava", *ARCHITECTURES]
# templates that write BOS themselves (the double-BOS bug of rendering then tokenizing again)
BOS_IN_TEMPLATE = {"idefics3", "smolvlm", "gemma3", "mllama"}
FOUR = ["This image features dog and cat.", "This image does not feature car.",
        "This image features cat, but not car.", "This image features car."]


def _image(seed: int, size=(40, 30)) -> Image.Image:
    return Image.new("RGB", size, ((70 * seed) % 256, (130 + 50 * seed) % 256, (40 * seed) % 256))


def _queries() -> list[Query]:
    """Single images (4-way and binary prompts) and a 3-frame video."""
    four = "Which caption describes this image best?\n" + "\n".join(
        f"{letter}. {o}" for letter, o in zip("ABCD", FOUR)) + "\nAnswer with the letter of the correct option only."
    two = "Which caption describes this image best?\nA. This image features dog.\nB. This image features cat.\n" \
          "Answer with the letter of the correct option only."
    frames = tuple(_image(10 + k, (32, 32)) for k in range(3))
    return [Query((_image(1),), four), Query((_image(2, (30, 44)),), two), Query((_image(3),), four),
            Query(frames, four.replace("image", "video"))]


@pytest.fixture(scope="module", params=ARCHS)
def arch_dir(request, tmp_path_factory):
    try:
        return request.param, build_tiny_arch(request.param, tmp_path_factory.mktemp(request.param))
    except (ImportError, AttributeError) as exc:  # an architecture this transformers does not have
        pytest.skip(f"{request.param}: not in the installed transformers ({exc})")


@pytest.fixture(scope="module")
def adapter(arch_dir):
    arch, path = arch_dir
    model = HFVisionLanguageModel(str(path), torch.device("cpu"))
    model.model_string = f"vlm:hf:{arch}"
    return model


@pytest.fixture(scope="module")
def plain(arch_dir):
    """What a transformers user writes: AutoProcessor + AutoModelForImageTextToText."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    _, path = arch_dir
    return AutoProcessor.from_pretrained(path), AutoModelForImageTextToText.from_pretrained(path).eval()


def _plain_inputs(processor, query: Query):
    if processor.chat_template is None:  # PaliGemma: the processor's own prompt layout
        return processor(images=[list(query.images)], text=[query.prompt], return_tensors="pt")
    return processor.apply_chat_template(chat_messages(query.images, query.prompt), tokenize=True,
                                         return_dict=True, add_generation_prompt=True, return_tensors="pt")


def test_input_ids_are_the_processors_own(arch_dir, adapter, plain):
    arch, _ = arch_dir
    processor, _ = plain
    queries = _queries()
    batch = adapter.inputs(queries)
    for row, query in enumerate(queries):
        own = _plain_inputs(processor, query)["input_ids"][0].tolist()
        mask = batch["attention_mask"][row].bool()
        assert batch["input_ids"][row][mask].tolist() == own
        bos = processor.tokenizer.bos_token_id
        if arch in BOS_IN_TEMPLATE:
            assert own[0] == bos and own[1] != bos, "exactly one BOS"


def test_choice_answers_equal_plain_generate(adapter, plain):
    processor, model = plain
    queries = _queries()
    expected = []
    for query in queries:  # one at a time, no padding
        inputs = _plain_inputs(processor, query)
        with torch.inference_mode():
            out = model.generate(**inputs, max_new_tokens=5, do_sample=False)
        expected.append(processor.tokenizer.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True))
    got = adapter.choose(queries, max_new_tokens=5, batch_size=4)  # batched, left-padded
    assert [a.text for a in got] == expected


def _naive_logprobs(arch: str, plain, query: Query, options: list[str]) -> list[tuple[float, int]]:
    """One forward pass over prefix+option per option, every per-token input extended by hand."""
    processor, model = plain
    prefix = _plain_inputs(processor, query)
    p = prefix["input_ids"].shape[1]
    out = []
    for option in options:
        ids = processor.tokenizer(option, add_special_tokens=False)["input_ids"]
        n = len(ids)
        kwargs = {}
        for key, value in prefix.items():
            if key == "input_ids" or key == "labels":
                continue
            if key == "attention_mask":
                value = torch.ones((1, p + n), dtype=value.dtype)
            elif key == "token_type_ids":  # PaliGemma: 1 = causal suffix; Gemma 3: 0 = text
                value = torch.cat([value, torch.full((1, n), 1 if arch == "paligemma" else 0, dtype=value.dtype)], 1)
            elif key == "mm_token_type_ids":  # Qwen: 0 = text
                value = torch.cat([value, torch.zeros((1, n), dtype=value.dtype)], 1)
            elif key == "cross_attention_mask":  # Mllama: option tokens see the images the last prompt token sees
                value = torch.cat([value, value[:, -1:].expand(-1, n, -1, -1)], 1)
            kwargs[key] = value
        full = torch.cat([prefix["input_ids"], torch.tensor([ids])], dim=1)
        with torch.inference_mode():
            logp = torch.log_softmax(model(input_ids=full, **kwargs).logits[0].float(), dim=-1)
        out.append((sum(float(logp[p - 1 + t, tok]) for t, tok in enumerate(ids)), n))
    return out


def test_option_logprobs_equal_naive_forward(arch_dir, adapter, plain):
    """Both likelihood modes, on a 4-way image question and a binary video (3 frames) question."""
    arch, _ = arch_dir
    queries, prompt = _queries(), "Which caption is right?"
    assert adapter.option_logprobs(queries[2].images, "Describe.", FOUR[:3]).shape == (3, 2)
    assert adapter.likelihood_mode == CACHED  # the cache continuation agreed with full passes
    for query, options in [(queries[0], FOUR), (queries[3], FOUR[:2])]:
        naive = _naive_logprobs(arch, plain, Query(query.images, prompt), options)
        for mode in (CACHED, FULL):
            adapter.likelihood_mode = mode
            got = adapter.option_logprobs(query.images, prompt, options)
            for (total, n), (ref_total, ref_n) in zip(got, naive):
                assert n == ref_n and total == pytest.approx(ref_total, abs=1e-4), mode
    adapter.likelihood_mode = CACHED


def test_sent_messages_replay_with_plain_transformers(adapter, plain, tmp_path):
    """The logged messages (image paths) give the same input ids as the question sent."""
    processor, _ = plain
    query = _queries()[3]
    paths = []
    for k, im in enumerate(query.images):
        im.save(tmp_path / f"frame{k}.png")
        paths.append(str(tmp_path / f"frame{k}.png"))
    messages = adapter.sent_messages(query, paths)
    assert messages[0]["content"][0] == {"type": "image", "image": paths[0]}
    assert messages[0]["content"][-1] == {"type": "text", "text": query.prompt}
    if processor.chat_template is None:
        pytest.skip("no chat template (PaliGemma): the processor lays out images and prompt itself")
    replay = processor.apply_chat_template(messages, tokenize=True, return_dict=True, add_generation_prompt=True,
                                           return_tensors="pt")
    assert replay["input_ids"].tolist() == adapter.inputs([query])["input_ids"].tolist()


def test_always_b_variant_answers_b(arch_dir, tmp_path):
    arch, _ = arch_dir
    model = HFVisionLanguageModel(str(build_tiny_arch(arch, tmp_path / "b", answer_letter="B")), torch.device("cpu"))
    assert [a.text for a in model.choose(_queries(), max_new_tokens=4, batch_size=2)] == ["B"] * 4


def test_a_missing_folder_says_so():
    from negbench.core.errors import ConfigError
    from negbench.models.vlm.base import load

    with pytest.raises(ConfigError, match=r"^vlm:hf:/path/that/does/not/exist: no such folder$"):
        load("hf:/path/that/does/not/exist", device="cpu")


def test_a_missing_processor_package_is_one_line_naming_it(tmp_path, monkeypatch):
    """SmolVLM's processor needs num2words; without it (as in an install without the hf extra)
    loading says which package, in one line, instead of a traceback."""
    import transformers.models.smolvlm.processing_smolvlm as smolvlm_processing

    from negbench.core.errors import ConfigError

    path = build_tiny_arch("smolvlm", tmp_path / "smolvlm")
    monkeypatch.setattr(smolvlm_processing, "num2words", None)  # what `is_num2words_available()` False leaves
    with pytest.raises(ConfigError, match=r"needs the Python package 'num2words'.*pip install num2words") as info:
        HFVisionLanguageModel(str(path), torch.device("cpu"))
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("arch", ["qwen2-vl", "gemma3", "mllama"])
def test_always_b_end_to_end_with_shuffled_options_has_the_known_accuracy(arch, sample_tasks, tmp_path):
    """Through `negbench eval` (the architectures whose prompts or likelihoods were wrong before):
    a model that always says B picks, in every question, the option shown second."""
    import json

    import pandas as pd

    from negbench.cli import main
    from negbench.evaluation.engine import model_slug

    model = f"vlm:hf:{build_tiny_arch(arch, tmp_path / 'b', answer_letter='B')}"
    assert main(["eval", "--model", model, "--tasks-file", str(sample_tasks), "--task", "sample_binary",
                 "--shuffle-options", "--shuffle-seed", "3", "--results-dir", str(tmp_path / "results"),
                 "--cache-dir", str(tmp_path / "cache"), "--quiet", "--bootstrap-samples", "20"]) == 0
    folder = tmp_path / "results" / model_slug(f"{model}#choice+shuffle3")
    doc = json.loads((folder / "sample_binary.json").read_text())
    df = pd.read_parquet(folder / "sample_binary.parquet")
    assert set(df["raw_answer"]) == {"B"} and doc["counts"]["unparsed"] == 0
    assert list(df["predicted"]) == [order[1] for order in df["option_order"]]
    known = sum(order[1] == correct for order, correct in zip(df["option_order"], df["correct_answer"])) / len(df)
    assert 0 < known < 1 and doc["metrics"]["accuracy"]["value"] == pytest.approx(known)
