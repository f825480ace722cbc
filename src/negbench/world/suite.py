"""The NegBench-World suite: every NegBench task built from a NegWorld folder, with the same
readers and the same builder as real data (negbench.construct.build)."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

from negbench.core.errors import ConfigError

log = logging.getLogger(__name__)

# the `world-core` suite: what the tiny demo and quick checks evaluate
WORLD_CORE = ("coco_mcq", "coco_negated_retrieval", "coco_retrieval", "voc_mcq")


def build_world_suite(world_dir, out_dir, seed: int = 0, template_sets: Sequence[str] = ("default", "without"),
                      *, name: str = "world", hardneg: bool = True, paraphraser=None,
                      questions_per_image: int = 3) -> Path:
    """The whole NegBench-World suite from a NegWorld folder.

    COCO-style MCQ + negated + plain retrieval (coco test split), VOC-style MCQ, MSR-VTT-style
    video MCQ + negated + plain retrieval, CheXpert-style binary MCQ + control + 4-way (+ control);
    every negated task in each of `template_sets`. Suites in the YAML: `world` (everything) and
    `world-core` (WORLD_CORE). Returns the tasks.yaml path.
    """
    from negbench.construct.build import BuildConfig, build_source, write_tasks_yaml
    from negbench.inputs.vocab import load_vocab
    from negbench.inputs.sources import read_source

    world_dir, out_dir = Path(world_dir).expanduser(), Path(out_dir).expanduser()
    vocab_file = world_dir / "vocab.txt"
    vocab = load_vocab(vocab_file) if vocab_file.is_file() else None
    plan = [("coco", world_dir / "coco", {"split": "test"}, ("mcq", "retrieval") + (("hardneg",) if hardneg else ())),
            ("voc", world_dir / "VOC", {"split": "test"}, ("mcq",)),
            ("msrvtt", world_dir / "msrvtt", {"split": "test", "vocab": vocab}, ("mcq", "retrieval")),
            ("chexpert", world_dir / "chexpert", {"split": "valid"}, ("mcq", "binary"))]
    specs: list[dict] = []
    for source, src, kwargs, tasks in plan:
        if not src.exists():
            log.warning("NegWorld folder has no %s (looked for %s); skipping", source, src)
            continue
        cfg = BuildConfig(tasks=tasks, template_sets=tuple(template_sets), seed=seed,
                          questions_per_image=questions_per_image, name=name)
        specs += build_source(read_source(source, src, **kwargs), out_dir, cfg, paraphraser=paraphraser).specs
    if not specs:
        raise ConfigError(f"{world_dir}: no NegWorld datasets found (coco/, VOC/, msrvtt/, chexpert/)")
    names = [s["name"] for s in specs]
    core = [f"{name}_{t}" for t in WORLD_CORE if f"{name}_{t}" in names]
    return write_tasks_yaml(out_dir, specs, {name: names, f"{name}-core": core})
