"""Generative-VLM scoring speed (questions/s) of both protocols on the tiny random LLaVA of the tests.

    python bench/vlm_speed.py [--questions 120] [--images 40] [--device cpu]

Builds the tests' tiny LLaVA (2-layer CLIP tower, 2-layer Llama, width 32) and an MCQ file
(3 questions per image, 4 options), then measures side by side, in one run, with no cache:
- choice: batched greedy generation (batch 8) vs one question at a time; answers must be equal;
- likelihood: the image+prompt prefix run once per image with its key/value cache reused for
  all options of the image's questions, vs a naive forward pass of prefix+option per option;
  log-probabilities must agree to 1e-4.
Prints questions/s of each and the ratios. A tiny model measures overheads, not a real VLM's
compute; on a GPU pass --device cuda.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))


def naive_logprobs(adapter, images, prompt, options):
    """Reference: one full forward pass (image tokens included) per option."""
    import numpy as np
    import torch

    from negbench.models.vlm.base import Query

    prefix = adapter.inputs([Query(tuple(images), prompt)])
    p = prefix["input_ids"].shape[1]
    out = np.zeros((len(options), 2))
    for k, option in enumerate(options):
        ids = adapter.option_ids(option)
        full = torch.cat([prefix["input_ids"], torch.tensor([ids], device=adapter.device)], dim=1)
        with torch.inference_mode():
            logits = adapter.model(input_ids=full, attention_mask=torch.ones_like(full),
                                   pixel_values=prefix["pixel_values"]).logits[0].float()
        logp = torch.log_softmax(logits, dim=-1)
        out[k] = (sum(float(logp[p - 1 + t, tok]) for t, tok in enumerate(ids)), len(ids))
    return out


def make_questions(n_questions: int, n_images: int):
    import random

    from PIL import Image

    from negbench.evaluation.generative import choice_prompt

    rng = random.Random(0)
    objects = ["dog", "cat", "car", "tree", "apple", "bird"]
    images = [Image.new("RGB", (48, 40), tuple(rng.randrange(256) for _ in range(3))) for _ in range(n_images)]
    questions = []
    for q in range(n_questions):
        a, b, n = rng.sample(objects, 3)
        options = [f"This image features {a} and {b}.", f"This image features {n}, but not {b}.",
                   f"This image features {n}.", f"This image does not feature {a}."]
        questions.append((q % n_images, options, choice_prompt(options)))
    return images, questions


def bench_choice(adapter, images, questions):
    from negbench.models.vlm.base import Query

    queries = [Query((images[i],), prompt) for i, _, prompt in questions]
    t0 = time.perf_counter()
    batched = adapter.choose(queries, max_new_tokens=8, batch_size=8)
    t_batched = time.perf_counter() - t0
    t0 = time.perf_counter()
    single = [adapter.choose([q], max_new_tokens=8, batch_size=1)[0] for q in queries]
    t_single = time.perf_counter() - t0
    same = [a.text for a in batched] == [a.text for a in single]
    return t_batched, t_single, same


def bench_likelihood(adapter, images, questions):
    import numpy as np

    from negbench.evaluation.generative import likelihood_prompt

    prompt, by_image = likelihood_prompt(), {}
    for i, options, _ in questions:
        by_image.setdefault(i, []).extend(options)
    t0 = time.perf_counter()
    fast = {i: adapter.option_logprobs([images[i]], prompt, list(dict.fromkeys(o))) for i, o in by_image.items()}
    t_fast = time.perf_counter() - t0
    t0 = time.perf_counter()
    naive = {i: naive_logprobs(adapter, [images[i]], prompt, list(dict.fromkeys(o))) for i, o in by_image.items()}
    t_naive = time.perf_counter() - t0
    same = all(np.allclose(fast[i], naive[i], atol=1e-4) for i in fast)
    return t_fast, t_naive, same


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                                 allow_abbrev=False)
    ap.add_argument("--questions", type=int, default=120, help="MCQ questions (3 per image by default)")
    ap.add_argument("--images", type=int, default=40, help="distinct images")
    ap.add_argument("--device", default="cpu", help="torch device")
    args = ap.parse_args()

    import torch

    from _vlm_fixtures import build_tiny_vlm
    from negbench.models.vlm.hf import HFVisionLanguageModel

    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        adapter = HFVisionLanguageModel(str(build_tiny_vlm(Path(tmp) / "vlm")), torch.device(args.device))
        adapter.model_string = "vlm:hf:tiny"
        images, questions = make_questions(args.questions, args.images)
        n = len(questions)
        tb, ts, same_c = bench_choice(adapter, images, questions)
        tf, tn, same_l = bench_likelihood(adapter, images, questions)
    print(f"tiny LLaVA on {args.device}, {n} questions over {args.images} images, 4 options each")
    print(f"choice     batched (8)      {n / tb:8.1f} q/s   one at a time {n / ts:8.1f} q/s   "
          f"ratio {ts / tb:5.2f}x   answers identical: {same_c}")
    print(f"likelihood prefix cached    {n / tf:8.1f} q/s   naive per option {n / tn:8.1f} q/s   "
          f"ratio {tn / tf:5.2f}x   log-probs equal (1e-4): {same_l}")


if __name__ == "__main__":
    main()
