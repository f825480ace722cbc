"""Shared fixtures: tiny random models (open_clip, transformers), images, MP4s, task files.

Everything is built on the fly and offline: no weights are downloaded, ever.
"""
from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Sequence

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

TINY_OPENCLIP_ARCH = "negbench-tiny-test"
TINY_OPENCLIP_CONFIG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "patch_size": 8, "head_width": 16},
    "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
}
OBJECTS = ["dog", "cat", "car", "tree", "apple", "chair", "boat", "bird"]
COLOURS = [(220, 40, 40), (40, 200, 60), (40, 60, 220), (230, 200, 40), (160, 40, 200), (30, 200, 200)]


@pytest.fixture(autouse=True)
def _offline(monkeypatch, tmp_path_factory):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    # the file-digest memo of this test session, never the user's ~/.cache
    monkeypatch.setenv("NEGBENCH_HASH_INDEX", str(tmp_path_factory.getbasetemp() / "file-digests.sqlite"))


# ---------------------------------------------------------------- media

def make_image(path: Path, seed: int, size: int = 40) -> Path:
    """A small RGB image: a coloured background with a few rectangles (deterministic)."""
    from PIL import Image, ImageDraw

    rng = random.Random(seed)
    im = Image.new("RGB", (size, size), COLOURS[seed % len(COLOURS)])
    draw = ImageDraw.Draw(im)
    for _ in range(3):
        x0, y0 = rng.randrange(size // 2), rng.randrange(size // 2)
        draw.rectangle([x0, y0, x0 + rng.randrange(4, size // 2), y0 + rng.randrange(4, size // 2)],
                       fill=rng.choice(COLOURS))
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path)
    return path


def make_video(path: Path, seed: int, n_frames: int = 8, size: int = 32) -> Path:
    """A tiny MP4 (mpeg4 codec) of a square moving over a coloured background; frame i is
    recognisable by its background brightness."""
    import av
    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("mpeg4", rate=8)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        base = np.array(COLOURS[seed % len(COLOURS)], dtype=np.uint8)
        for i in range(n_frames):
            arr = np.empty((size, size, 3), dtype=np.uint8)
            arr[:] = base // 2 + (i * 12)
            x = (i * 3) % (size - 8)
            arr[8:16, x:x + 8] = 255
            for packet in stream.encode(av.VideoFrame.from_ndarray(arr, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.fixture
def image_dir(tmp_path) -> Path:
    d = tmp_path / "images"
    for i in range(6):
        make_image(d / f"img{i}.png", i)
    return d


@pytest.fixture
def video_dir(tmp_path) -> Path:
    d = tmp_path / "videos"
    for i in range(3):
        make_video(d / f"video{i}.mp4", i)
    return d


# ---------------------------------------------------------------- task files

def _mcq_item(row: int, media: str, rng: random.Random):
    from negbench.inputs.formats import MCQItem

    a, b, n = rng.sample(OBJECTS, 3)
    options = {
        "positive": f"This image features {a} and {b}.",
        "negative": f"This image does not feature {n}.",
        "hybrid": f"This image features {b}, but not {n}.",
    }
    wrong = {"hybrid": f"This image features {n}, but not {b}.", "positive": f"This image features {n}.",
             "negative": f"This image does not feature {a}."}
    template = rng.choice(["positive", "negative", "hybrid"])
    opts = [(options[template], template)] + [(c, t) for t, c in wrong.items()]
    rng.shuffle(opts)
    answer = [c for c, _ in opts].index(options[template])
    return MCQItem(row, media, tuple(c for c, _ in opts), answer, template, tuple(t for _, t in opts))


def write_sample_tasks(root: Path, n_images: int = 12, n_questions: int = 50, n_videos: int = 3,
                       seed: int = 0, extra_tasks: Sequence[dict] = ()) -> Path:
    """Images, videos, an MCQ (n_questions over n_images), a retrieval file, a video MCQ and a
    binary MCQ under root, plus root/tasks.yaml naming them (and `extra_tasks`, entries whose
    files the caller writes). Returns the YAML path."""
    from negbench.inputs.formats import MCQItem, RetrievalItem, write_task_file

    rng = random.Random(seed)
    images = [f"images/img{i}.png" for i in range(n_images)]
    for i, rel in enumerate(images):
        make_image(root / rel, i)
    videos = [f"videos/video{i}.mp4" for i in range(n_videos)]
    for i, rel in enumerate(videos):
        make_video(root / rel, i)
    mcq = [_mcq_item(r, images[(r - 1) % n_images], rng) for r in range(1, n_questions + 1)]
    write_task_file(root / "sample_mcq.csv", "mcq", mcq, {"source": "tests"})
    retr = [RetrievalItem(i + 1, rel, (f"A picture of a {OBJECTS[i % 8]}.",
                                       f"A {OBJECTS[(i + 1) % 8]} and no {OBJECTS[(i + 2) % 8]}."))
            for i, rel in enumerate(images)]
    write_task_file(root / "sample_retrieval.csv", "retrieval", retr, {"source": "tests"})
    vmcq = [_mcq_item(r, videos[(r - 1) % n_videos], rng) for r in range(1, 7)]
    write_task_file(root / "sample_video_mcq.csv", "mcq", vmcq, {"source": "tests"})
    binary = [MCQItem(i + 1, rel, (f"This image shows {OBJECTS[i % 8]}.", f"This image does not show {OBJECTS[i % 8]}."),
                      i % 2) for i, rel in enumerate(images)]
    write_task_file(root / "sample_binary.csv", "binary-mcq", binary, {"source": "tests"})
    spec = {"tasks": [
        {"name": "sample_mcq", "kind": "mcq", "file": "sample_mcq.csv", "group": "Sample"},
        {"name": "sample_retrieval", "kind": "retrieval", "file": "sample_retrieval.csv", "group": "Sample"},
        {"name": "sample_video_mcq", "kind": "mcq", "modality": "video", "file": "sample_video_mcq.csv",
         "group": "Sample"},
        {"name": "sample_binary", "kind": "binary-mcq", "file": "sample_binary.csv", "group": "Sample"},
        *extra_tasks,
    ], "suites": {"sample": ["sample_mcq", "sample_retrieval", "sample_video_mcq", "sample_binary"]}}
    import yaml

    path = root / "tasks.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


@pytest.fixture(scope="session")
def sample_tasks(tmp_path_factory) -> Path:
    """A folder of generated sample tasks (session-wide; treat as read-only). Returns tasks.yaml."""
    return write_sample_tasks(tmp_path_factory.mktemp("sample_tasks"))


# ---------------------------------------------------------------- tiny open_clip

@pytest.fixture(scope="session")
def tiny_openclip_arch(tmp_path_factory) -> str:
    """Registers a 2-layer width-32 open_clip architecture and returns its name."""
    import open_clip

    if TINY_OPENCLIP_ARCH not in open_clip.list_models():
        d = tmp_path_factory.mktemp("openclip_cfg")
        (d / f"{TINY_OPENCLIP_ARCH}.json").write_text(json.dumps(TINY_OPENCLIP_CONFIG))
        open_clip.add_model_config(d / f"{TINY_OPENCLIP_ARCH}.json")
    return TINY_OPENCLIP_ARCH


@pytest.fixture(scope="session")
def tiny_openclip_checkpoint(tiny_openclip_arch, tmp_path_factory) -> Path:
    """A random tiny open_clip model saved NegCLIP-style: {'epoch', 'state_dict' with 'module.' keys}."""
    import open_clip
    import torch

    torch.manual_seed(1)
    model = open_clip.create_model(tiny_openclip_arch, pretrained=None)
    path = tmp_path_factory.mktemp("openclip_ckpt") / "tiny_negclip.pt"
    torch.save({"epoch": 3, "name": "tiny", "state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}},
               path)
    return path


@pytest.fixture(scope="session")
def tiny_openclip_model(tiny_openclip_arch, tiny_openclip_checkpoint) -> str:
    """The model string of the tiny checkpoint."""
    return f"openclip:{tiny_openclip_arch}@{tiny_openclip_checkpoint}"


# ---------------------------------------------------------------- tiny transformers CLIP

SENTENCES = [f"This image features {a} and {b}." for a in OBJECTS for b in OBJECTS] + [
    f"This image does not feature {a}, but not {b} a picture of the there is no in image video"
    for a in OBJECTS for b in OBJECTS]


def build_tiny_tokenizer():
    """A WordLevel tokenizer trained locally on a few sentences, as a PreTrainedTokenizerFast."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(SENTENCES, trainers.WordLevelTrainer(special_tokens=["[PAD]", "[UNK]", "<s>", "</s>"]))
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", tok.token_to_id("<s>")), ("</s>", tok.token_to_id("</s>"))])
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]",
                                   bos_token="<s>", eos_token="</s>", model_max_length=32)


@pytest.fixture(scope="session")
def tiny_hf_dir(tmp_path_factory) -> Path:
    """A random tiny transformers CLIPModel + image processor + local tokenizer, save_pretrained'd."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    tok = build_tiny_tokenizer()
    text = dict(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                num_attention_heads=2, max_position_embeddings=32, pad_token_id=tok.pad_token_id,
                bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                  image_size=32, patch_size=8)
    torch.manual_seed(2)
    model = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=16))
    d = tmp_path_factory.mktemp("hf_clip")
    model.save_pretrained(d)
    tok.save_pretrained(d)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(d)
    return d


@pytest.fixture(scope="module")
def adapter(tiny_openclip_model):
    """The tiny open_clip model, loaded once per test module."""
    from negbench.models.base import load_model

    return load_model(tiny_openclip_model, device="cpu")


@pytest.fixture
def sample_copy(sample_tasks, tmp_path):
    """A private copy of the sample task files: (folder, {task name: TaskSpec}), free to edit."""
    import shutil

    from negbench.inputs.tasks import load_task_file

    root = tmp_path / "copy"
    shutil.copytree(sample_tasks.parent, root)
    return root, {s.name: s for s in load_task_file(root / "tasks.yaml")}
