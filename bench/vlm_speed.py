"""Generative-VLM scoring speed (questions/s) of both protocols, per architecture, on tiny random models.

    python bench/vlm_speed.py [--archs llava,qwen2-vl,...] [--questions 24] [--images 8] [--device cpu]

For each architecture of the tests' matrix (tests/_vlm_fixtures.py: LLaVA, LLaVA-NeXT, Qwen2-VL,
Qwen2.5-VL, Idefics3, SmolVLM, PaliGemma, Gemma 3, Mllama; 1-2 layers, width 32) and an MCQ set
(3 questions per image, 4 options), measures side by side, in one run, with no cache:
- choice: batched greedy generation (batch 8, left padding) vs one question at a time; the
  answers must be identical;
- likelihood: mode `cached-prefix` (image+prompt prefix once, all options of the image in one pass
  over its key/value cache) vs `full-forward` (prefix+option per option); log-probabilities must
  agree to 1e-4.
Prints a Markdown table. A tiny model measures overheads (processor, padding, Python), not a
real VLM's compute; on a GPU pass --device cuda.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))


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
    from negbench.models.vlm.hf import CACHED, FULL

    prompt, by_image = likelihood_prompt(), {}
    for i, options, _ in questions:
        by_image.setdefault(i, []).extend(options)
    timings, scores = {}, {}
    for mode in (CACHED, FULL):
        adapter.likelihood_mode = mode
        t0 = time.perf_counter()
        scores[mode] = {i: adapter.option_logprobs([images[i]], prompt, list(dict.fromkeys(o)))
                        for i, o in by_image.items()}
        timings[mode] = time.perf_counter() - t0
    same = all(np.allclose(scores[CACHED][i], scores[FULL][i], atol=1e-4) for i in by_image)
    return timings[CACHED], timings[FULL], same


def main() -> None:
    import _vlm_fixtures

    archs = ["llava", *_vlm_fixtures.ARCHITECTURES]
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                                 allow_abbrev=False)
    ap.add_argument("--archs", default=",".join(archs), help=f"comma-separated, of {archs}")
    ap.add_argument("--questions", type=int, default=24, help="MCQ questions (3 per image by default)")
    ap.add_argument("--images", type=int, default=8, help="distinct images")
    ap.add_argument("--device", default="cpu", help="torch device")
    args = ap.parse_args()
    chosen = [a for a in args.archs.split(",") if a]
    unknown = sorted(set(chosen) - set(archs))
    if unknown:
        ap.error(f"--archs: unknown {unknown}; known: {archs}")

    import torch
    from transformers.utils import logging as hf_logging

    from negbench.models.vlm.hf import HFVisionLanguageModel

    hf_logging.set_verbosity_error()
    images, questions = make_questions(args.questions, args.images)
    n = len(questions)
    print(f"{n} questions over {args.images} images, 4 options each, device {args.device}, "
          f"torch threads {torch.get_num_threads()}\n")
    print("| architecture | choice batched (8) q/s | one at a time q/s | same answers | "
          "likelihood cached-prefix q/s | full-forward q/s | same log-probs (1e-4) | mode chosen |")
    print("|---|---|---|---|---|---|---|---|")
    for arch in chosen:
        torch.manual_seed(0)
        with tempfile.TemporaryDirectory() as tmp:
            adapter = HFVisionLanguageModel(str(_vlm_fixtures.build_tiny_arch(arch, Path(tmp) / arch)),
                                            torch.device(args.device))
            adapter.model_string = f"vlm:hf:{arch}"
            adapter.option_logprobs([images[0]], "Describe.", ["A dog.", "A cat."])  # decides the mode
            chosen_mode = adapter.likelihood_mode
            tb, ts, same_c = bench_choice(adapter, images, questions)
            tc, tf, same_l = bench_likelihood(adapter, images, questions)
        print(f"| {arch} | {n / tb:.1f} | {n / ts:.1f} | {same_c} | {n / tc:.1f} | {n / tf:.1f} | {same_l} | "
              f"{chosen_mode} |", flush=True)


if __name__ == "__main__":
    main()
