"""The notebook API (re-exported lazily by `negbench`):

    import negbench
    run = negbench.evaluate("builtin:demo-out/models/pretrained", "world_coco_mcq", data_root="demo-out/tasks")
    run.results[0]                   # <Result builtin:… on world_coco_mcq (mcq): accuracy=…%, n=…>
    run.predictions.head()           # one row per question (MCQ kinds), with model and task columns
    run.rankings.head()              # retrieval tasks: one row per caption, its own media's rank
    negbench.load_results("results/").__len__()

`evaluate` is the library call behind `negbench eval`; with no `results_dir` the results JSON and
per-item Parquet go to a temporary folder that is removed once the predictions are read back.
"""
from __future__ import annotations

import contextlib
import importlib.util
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from negbench.analysis.results import Result, load_results  # noqa: F401 - part of the API


@dataclass
class EvalRun:
    """What `evaluate` returns: one Result per task; the per-question predictions of the question
    kinds in one DataFrame (`is_correct` stays boolean), the per-caption ranks of retrieval in
    another (their columns differ)."""

    results: list[Result]
    predictions: "pandas.DataFrame"  # noqa: F821 - pandas is imported lazily
    rankings: "pandas.DataFrame | None" = None  # noqa: F821

    def __repr__(self) -> str:
        ranked = f", {len(self.rankings)} ranked captions" if self.rankings is not None and len(self.rankings) else ""
        count = f"{len(self.results)} result" + ("" if len(self.results) == 1 else "s")
        lines = [f"<EvalRun {count}, {len(self.predictions)} per-item predictions{ranked}>"]
        return "\n".join(lines + [f"  {r!r}" for r in self.results])

    def table(self) -> "pandas.DataFrame":  # noqa: F821
        """The long table of `negbench table`: model, task, metric, value, ci_low, ci_high, n (the
        metric's own: the items it is a mean over), flags (--limit, incomplete, regenerated images)."""
        import pandas as pd

        from negbench.analysis.leaderboard import LONG_COLUMNS, long_rows

        for r in self.results:
            r.label = r.label or r.model
        return pd.DataFrame([[getattr(x, c) for c in LONG_COLUMNS] for x in long_rows(self.results)],
                            columns=list(LONG_COLUMNS))


@contextlib.contextmanager
def _quiet_third_party():
    """transformers' 'Loading weights' bar, its INFO/WARNING logs and huggingface_hub's bars off while
    `evaluate` loads models, as `negbench eval` has them (it sets the same switches as environment
    variables before transformers is imported, cli.configure_output); the caller's settings come back
    afterwards. Without transformers installed there is nothing to quiet."""
    if importlib.util.find_spec("transformers") is None:
        yield
        return
    from huggingface_hub import utils as hub_utils
    from transformers.utils import logging as hf_logging

    bars, hub_bars_off, verbosity = (hf_logging.is_progress_bar_enabled(), hub_utils.are_progress_bars_disabled(),
                                     hf_logging.get_verbosity())
    hf_logging.disable_progress_bar()  # also huggingface_hub's
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
        if not hub_bars_off:
            hub_utils.enable_progress_bars()


def resolve_tasks(tasks, data_root=None) -> list:
    """Task names, suite names, a comma string, TaskSpecs or task YAML paths -> TaskSpecs.
    A tasks.yaml inside data_root is registered first (as `negbench eval --data-root` does)."""
    from negbench.core.lists import split_list
    from negbench.inputs.tasks import SUITES, TaskSpec, expand_tasks, load_task_file

    auto = Path(data_root).expanduser() / "tasks.yaml" if data_root else None
    if auto is not None and auto.is_file():
        load_task_file(auto)
    items = split_list(tasks) if isinstance(tasks, str) else list(tasks)
    specs = []
    for item in items:
        if isinstance(item, TaskSpec):
            specs.append(item)
        elif str(item).endswith((".yaml", ".yml")) and Path(item).expanduser().is_file():
            specs += load_task_file(item)
        elif item in SUITES:
            specs += expand_tasks(suites=[item])
        else:
            specs += expand_tasks([item])
    return list({s.name: s for s in specs}.values())


def _predictions(results: Sequence[dict], ranking: bool = False):
    """The per-item rows of the question kinds (ranking=False) or of retrieval (True), one frame."""
    import pandas as pd

    from negbench.inputs.kinds import KINDS

    frames = []
    for res in results:
        kind = res["task"].get("kind")
        if kind not in KINDS or KINDS.get(kind).is_ranking != ranking:
            continue
        path = Path(res["results_file"]).with_suffix(".parquet") if res.get("results_file") else None
        if path is not None and path.exists():
            df = pd.read_parquet(path)
            df.insert(0, "task", res["task"]["name"])
            df.insert(0, "model", res["model"])
            frames.append(df)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["model", "task"])


def evaluate(model, tasks, *, data_root=None, results_dir=None, **kwargs) -> EvalRun:
    """Evaluate `model` (a model string or a loaded adapter) on `tasks`; returns an EvalRun.

    kwargs are EvalConfig fields, as for `negbench eval` (batch_size, cache_dir, seed,
    bootstrap_samples, limit, progress, device, precision, protocol, ...); the embedding cache is
    on by default, as in the CLI (cache_dir=None turns it off).
    """
    from negbench.evaluation.cache import default_cache_dir
    from negbench.evaluation.engine import evaluate_tasks
    from negbench.train.trainer import check_device  # the one --device check (pretrain, finetune, eval)

    kwargs.setdefault("cache_dir", default_cache_dir())
    check_device(kwargs.get("device"))

    specs = resolve_tasks(tasks, data_root)
    with tempfile.TemporaryDirectory(prefix="negbench-eval-") as tmp, _quiet_third_party():
        out = results_dir if results_dir is not None else tmp
        raw = evaluate_tasks(specs, model, data_root=data_root, results_dir=out, **kwargs)
        predictions, rankings = _predictions(raw), _predictions(raw, ranking=True)
        results = []
        for res in raw:
            path = Path(res.pop("results_file")) if results_dir is not None else Path("<memory>")
            results.append(Result(path, res, label=res["model"]))
    return EvalRun(results, predictions, rankings)
