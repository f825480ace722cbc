"""`negbench eval`: evaluate one model on tasks, suites or task YAMLs; writes results JSON + Parquet."""
from __future__ import annotations

import argparse

HELP = "evaluate a model on NegBench tasks (MCQ, binary MCQ, retrieval); writes results JSON + Parquet"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True,
                        help="model string: openclip:ARCH@TAG_OR_PATH, hf:ID_OR_DIR, builtin:DIR")
    parser.add_argument("--task", action="append", default=[], metavar="NAME", help="task name (repeatable)")
    parser.add_argument("--suite", action="append", default=[], metavar="NAME", help="suite name (repeatable)")
    parser.add_argument("--tasks-file", action="append", default=[], metavar="YAML",
                        help="task YAML (e.g. written by `negbench build`); all its tasks run unless "
                             "--task/--suite pick some")
    parser.add_argument("--data-root", default=None, help="folder the task files and media paths resolve against")
    parser.add_argument("--results-dir", default="results", help="results go to DIR/MODEL_SLUG/TASK.{json,parquet}")
    parser.add_argument("--skip-existing", action="store_true", help="skip tasks whose results already exist")
    parser.add_argument("--skip-invalid", action="store_true",
                        help="skip bad rows (counted in the results) instead of stopping")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--num-workers", type=int, default=0, help="DataLoader workers decoding media")
    parser.add_argument("--precision", choices=["fp32", "fp16", "bf16"], default="fp32",
                        help="autocast dtype (cuda; bf16 also on cpu)")
    parser.add_argument("--device", default=None, help="cuda, cuda:1, mps, cpu (default: best available)")
    parser.add_argument("--frames", type=int, default=4, help="frames sampled uniformly per video")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    parser.add_argument("--bootstrap-samples", type=int, default=1000, help="bootstrap resamples for the 95%% CIs")
    parser.add_argument("--cache-dir", default=None,
                        help="embedding cache (default $NEGBENCH_CACHE_DIR or ~/.cache/negbench/embeddings)")
    parser.add_argument("--no-cache", action="store_true", help="neither read nor write the embedding cache")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def format_result(result: dict) -> str:
    """A compact text table of one result: metric, value, 95% CI (+ per-template for MCQ)."""
    task, m = result["task"], result["metrics"]
    c = result["counts"]
    head = (f"{task['name']}  ({task['kind']}, {task['modality']}; {c['items']} items, "
            f"{c['skipped']} skipped; chance {result['chance'] if result['chance'] is not None else '-'})")
    lines = [head]

    def row(name, v):
        lines.append(f"  {name:<22} {100 * v['value']:6.2f}   [{100 * v['ci_low']:6.2f}, {100 * v['ci_high']:6.2f}]")

    if task["kind"] == "retrieval":
        for k in (1, 5, 10):
            row(f"text->media R@{k}", m[f"t2i_recall@{k}"])
        for k in (1, 5, 10):
            row(f"media->text R@{k}", m[f"i2t_recall@{k}"])
    else:
        row("accuracy", m["accuracy"])
        by = result.get("breakdowns", {}).get("accuracy_by_template", {})
        for tmpl, v in by.items():
            row(f"  {tmpl} (n={v['n']})", v)
        shares = result.get("breakdowns", {}).get("wrong_answer_type_shares", {})
        if shares:
            lines.append("  wrong answers chose: " + ", ".join(f"{t} {100 * s:.1f}%" for t, s in shares.items()))
    cache = result.get("cache", {})
    lines.append(f"  ({result['timings']['total_s']:.1f}s; cache media {cache.get('media_hits', 0)} hit / "
                 f"{cache.get('media_misses', 0)} miss, text {cache.get('text_hits', 0)} hit / "
                 f"{cache.get('text_misses', 0)} miss)")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from negbench.evaluation.engine import default_cache_dir, evaluate_task, result_paths
    from negbench.inputs.tasks import select_tasks
    from negbench.models.base import load_model

    specs = select_tasks(args.task, args.suite, args.tasks_file)
    cache_dir = None if args.no_cache else Path(args.cache_dir or default_cache_dir())
    adapter = None
    for spec in specs:
        json_path, parquet_path = result_paths(args.results_dir, args.model, spec.name)
        done = args.skip_existing and json_path.exists() and parquet_path.exists()
        if adapter is None and not done:  # load once, and only if something has to run
            adapter = load_model(args.model, device=args.device, precision=args.precision)
            try:  # results folders are named by the string the user typed
                adapter.model_string = args.model
            except AttributeError:
                pass
        result = evaluate_task(
            spec, adapter if adapter is not None else args.model, data_root=args.data_root,
            results_dir=args.results_dir, batch_size=args.batch_size, cache_dir=cache_dir,
            skip_invalid=args.skip_invalid, seed=args.seed, bootstrap_samples=args.bootstrap_samples,
            skip_existing=args.skip_existing, num_workers=args.num_workers, frames=args.frames,
            progress=not args.quiet, precision=args.precision)
        print(format_result(result) + ("\n  (existing result)" if done else ""))
        print(f"  -> {json_path}")
    return 0
