"""`negbench eval`: evaluate one model on tasks, suites or task YAMLs; writes results JSON + Parquet."""
from __future__ import annotations

import argparse

from negbench.cli._common import add_list, add_out, add_progress, add_tasks, wants_listing

HELP = "evaluate a model on NegBench tasks (MCQ, binary MCQ, retrieval); writes results JSON + Parquet"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_list(parser, "--model", metavar="MODELS",
             help="model strings: openclip:ARCH@TAG_OR_PATH, hf:ID_OR_DIR, builtin:DIR, "
                  "vlm:hf:ID_OR_DIR, vlm:openai:MODEL@URL; several are "
                  "evaluated one after the other, with one summary table at the end")
    add_tasks(parser)
    add_list(parser, "--suite", metavar="NAMES", help="suite names (`negbench tasks` lists them)")
    add_list(parser, "--tasks-file", metavar="YAMLS",
             help="task YAMLs (e.g. written by `negbench build`); all their tasks run unless --tasks/--suite "
                  "pick some. A tasks.yaml inside --data-root is loaded without this flag")
    parser.add_argument("--data-root", default=None,
                        help="folder the task files and media paths resolve against (e.g. the --out of "
                             "`negbench build`); without it, paths resolve against the task YAML's folder")
    add_out(parser, "--results-dir", default="results",
            help="results go to OUT/MODEL_SLUG/TASK.{json,parquet} (--results-dir: old name)")
    parser.add_argument("--limit", type=int, default=None, metavar="N",
                        help="evaluate only the first N items of each task, for a quick check; recorded "
                             "in the results, and --skip-existing never mixes such runs with full ones")
    parser.add_argument("--skip-existing", action="store_true",
                        help="skip tasks whose results already exist (made with the same --limit)")
    parser.add_argument("--skip-invalid", action="store_true",
                        help="skip bad rows (counted in the results) instead of stopping")
    parser.add_argument("--batch-size", type=int, default=64, help="images / captions per forward pass")
    parser.add_argument("--num-workers", type=int, default=None,
                        help="DataLoader workers decoding media; unset: chosen from the cores, 0: in the main process")
    parser.add_argument("--precision", choices=["fp32", "fp16", "bf16"], default="fp32",
                        help="autocast dtype (cuda; bf16 also on cpu)")
    parser.add_argument("--device", default=None, help="cuda, cuda:1, mps, cpu (default: best available)")
    parser.add_argument("--frames", type=int, default=4, help="frames sampled uniformly per video")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    parser.add_argument("--bootstrap-samples", type=int, default=1000, help="bootstrap resamples for the 95%% CIs")
    parser.add_argument("--cache-dir", default=None,
                        help="embedding cache (default: $NEGBENCH_CACHE_DIR or ~/.cache/negbench/embeddings)")
    parser.add_argument("--no-cache", action="store_true", help="neither read nor write the embedding cache")
    add_progress(parser)
    parser.add_argument("--path-map", action="append", default=[], metavar="OLD=NEW",
                        help="rewrite media paths starting with OLD to start with NEW (repeatable); wins over "
                             "the automatic rewrite of foreign absolute paths (recorded in each results JSON)")
    parser.add_argument("--exclude-suspicious", action="store_true",
                        help="evaluate each task without the rows the audit flags (LLM commentary, "
                             "duplicate options), under its own name TASK@clean")
    parser.add_argument("--allow-big-images", action="store_true",
                        help="decode images over the 89-megapixel decompression-bomb limit (trusted files only)")
    from negbench.cli.eval_vlm import add_generative_arguments  # flags of vlm:... models

    add_generative_arguments(parser)


def select_specs(tasks: list[str], suites: list[str], tasks_files: list[str], data_root=None):
    """--tasks/--suite/--tasks-file (+ a tasks.yaml in --data-root) -> ordered TaskSpecs."""
    from pathlib import Path

    from negbench.inputs.tasks import select_tasks

    auto = Path(data_root).expanduser() / "tasks.yaml" if data_root else None
    if auto is not None and auto.is_file() and str(auto) not in tasks_files:
        tasks_files = [str(auto), *tasks_files]  # `negbench build --out D` then `eval --data-root D`
    return select_tasks(tasks, suites, tasks_files)


def check_task_files(specs, data_root) -> None:
    """A missing task file names the flag that places it, before any model is loaded."""
    from negbench.core.errors import ConfigError

    for spec in specs:
        path = spec.resolve_file(data_root)
        if not path.exists():
            hint = ("pass --data-root DIR, the folder that holds the task files (e.g. the --out of "
                    "`negbench build`)" if data_root is None else f"is --data-root {data_root} the right folder?")
            raise ConfigError(f"task {spec.name}: task file {path} does not exist; {hint}")


def format_result(result: dict) -> str:
    """A compact text table of one result: every metric with its 95% CI, question types by the
    paper's names (template id in brackets), wrong-answer shares, timings."""
    from pathlib import Path

    from negbench.analysis.results import TYPE_NAMES, Result
    from negbench.inputs.kinds import template_metric

    task, m, c = result["task"], result["metrics"], result["counts"]
    if result.get("status") == "skipped":  # e.g. a generative-only task with a dual encoder
        return f"{task['name']}  skipped: {result['skip_reason']}"
    extra = "".join(f", {c[k]} {k}" for k in ("ties", "unparsed") if k in c)
    limit = f", first {result['limit']} only (--limit)" if result.get("limit") is not None else ""
    lines = [f"{task['name']}  ({task['kind']}, {task['modality']}; {c['items']} items{limit}, "
             f"{c['skipped']} skipped{extra}; chance {result['chance'] if result['chance'] is not None else '-'})"]
    names = {**TYPE_NAMES, **(task.get("answer_type_names") or {})}
    read = Result(Path(result.get("results_file") or "."), result)
    by = {t: read.metric(template_metric(t)) for t in sorted(read.templates())}
    per_template = {template_metric(t) for t in by}
    for key, v in m.items():
        if key in per_template or not isinstance(v, dict) or "value" not in v:
            continue
        shown = key.replace("t2i_recall@", "text->media R@").replace("i2t_recall@", "media->text R@")
        lines.append(f"  {shown:<28} {100 * v['value']:6.2f}   [{100 * v['ci_low']:6.2f}, {100 * v['ci_high']:6.2f}]")
    for tmpl, v in by.items():
        name = f"{names.get(tmpl, tmpl)} ({tmpl}, n={v['n']})"
        lines.append(f"    {name:<26} {100 * v['value']:6.2f}   "
                     f"[{100 * v['ci_low']:6.2f}, {100 * v['ci_high']:6.2f}]")
    shares = (result.get("breakdowns") or {}).get("wrong_answer_type_shares") or {}
    if shares:
        lines.append("  wrong answers chose: " + ", ".join(f"{names.get(t, t)} {100 * s:.1f}%" for t, s in shares.items()))
    cache = result.get("cache", {})
    lines.append(f"  ({result['timings']['total_s']:.1f}s; cache media {cache.get('media_hits', 0)} hit / "
                 f"{cache.get('media_misses', 0)} miss, text {cache.get('text_hits', 0)} hit / "
                 f"{cache.get('text_misses', 0)} miss)")
    return "\n".join(lines)


def _prepare_specs(args):
    """Selected specs with --path-map applied and, with --exclude-suspicious, renamed TASK@clean."""
    from negbench.inputs.paths import parse_path_map
    from negbench.inputs.tasks import clean_variant, load_task_dir, with_path_map

    if args.data_root:  # task YAMLs written by `negbench import-benchmark` register from there
        load_task_dir(args.data_root)
    pairs = parse_path_map(args.path_map)
    specs = [with_path_map(s, pairs) for s in select_specs(args.tasks, args.suite, args.tasks_file, args.data_root)]
    return [clean_variant(s) for s in specs] if args.exclude_suspicious else specs


def _present_specs(specs, args) -> list:
    """A suite runs the tasks whose CSVs are present (a user rarely has all 18 datasets); a task
    named explicitly must exist, and the error names the flag that places it."""
    if not args.suite:
        check_task_files(specs, args.data_root)
        return specs
    present = []
    for spec in specs:
        if spec.resolve_file(args.data_root).is_file():
            present.append(spec)
        else:
            print(f"{spec.name}: skipped, CSV not found: {spec.resolve_file(args.data_root)} "
                  f"(`negbench data check` lists what is missing)")
    return present


def run(args: argparse.Namespace) -> int:
    if wants_listing(args.tasks):
        from negbench.cli.tasks import print_tasks

        return print_tasks(data_root=args.data_root, tasks_files=args.tasks_file)
    if not args.model:
        from negbench.core.errors import ConfigError

        raise ConfigError("--model is required (e.g. --model builtin:demo-out/models/pretrained)")
    if args.allow_big_images:
        from negbench.inputs.media import allow_big_images

        allow_big_images()
    specs = _present_specs(_prepare_specs(args), args)
    results = []
    for model in args.model:
        results += evaluate_model(model, specs, args)
    if len(results) > 1:
        print("\n" + summary_table(results), end="")
    return 0 if results else 1


def evaluate_model(model: str, specs, args: argparse.Namespace) -> list[dict]:
    """Every spec with one model (loaded once, and only if something has to run)."""
    from pathlib import Path

    from negbench.evaluation.engine import default_cache_dir, evaluate_task, result_is_current, result_paths
    from negbench.evaluation.lazy_model import LazyModel

    if model.startswith("vlm:"):  # generative VLMs: their own loop (cli/eval_vlm.py)
        from negbench.cli.eval_vlm import run_generative

        return run_generative(args, specs, model)
    cache_dir = None if args.no_cache else Path(args.cache_dir or default_cache_dir())
    # loaded once, on the first embedding that is not cached (never when all are)
    lazy, out = LazyModel(model, device=args.device, precision=args.precision), []
    for spec in specs:
        json_path, parquet_path = result_paths(args.out, model, spec.name)
        done = args.skip_existing and result_is_current(
            spec, model, args.out, data_root=args.data_root, seed=args.seed,
            bootstrap_samples=args.bootstrap_samples, precision=args.precision, frames=args.frames,
            skip_invalid=args.skip_invalid, limit=args.limit)
        result = evaluate_task(
            spec, lazy, data_root=args.data_root,
            results_dir=args.out, batch_size=args.batch_size, cache_dir=cache_dir,
            skip_invalid=args.skip_invalid, seed=args.seed, bootstrap_samples=args.bootstrap_samples,
            skip_existing=args.skip_existing, num_workers=args.num_workers, frames=args.frames,
            progress=not args.no_progress, precision=args.precision, limit=args.limit)
        print(format_result(result) + ("\n  (existing result)" if done else ""))
        print(f"  -> {json_path}")
        out.append(result)
    return out


def summary_table(results: list[dict]) -> str:
    """One line per model x task: the headline metric with its CI, after a multi-task run."""
    from pathlib import Path

    from negbench.analysis.results import Result

    lines = [f"{'model':<40} {'task':<36} {'metric':<14} {'value':>6}  95% CI", "-" * 112]
    for r in results:
        headline = Result(Path("."), r).headline()  # the task kind's headline metric
        if headline is None:
            continue
        key, v = headline[0], r["metrics"][headline[0]]
        lines.append(f"{r['model'][-40:]:<40} {r['task']['name'][:36]:<36} {key:<14} {100 * v['value']:6.1f}  "
                     f"[{100 * v['ci_low']:.1f}, {100 * v['ci_high']:.1f}]")
    return "\n".join(lines) + "\n"
