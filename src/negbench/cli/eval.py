"""`negbench eval`: evaluate one model on tasks, suites or task YAMLs; writes results JSON + Parquet."""
from __future__ import annotations

import argparse

from negbench.cli._common import add_list, add_out, add_progress, add_tasks, wants_listing

HELP = "evaluate a model on NegBench tasks (MCQ, binary MCQ, retrieval); writes results JSON + Parquet"
# how a model string of each registered backend looks (models/base.py MODEL_BACKENDS); --help lists
# every registered backend, so a new one shows up even before it gets a line here
MODEL_FORMS = {"openclip": "openclip:ARCH@TAG_OR_PATH", "hf": "hf:ID_OR_DIR", "builtin": "builtin:DIR",
               "vlm": "vlm:hf:ID_OR_DIR, vlm:openai:MODEL@URL", "negaware": "negaware:METHOD:BASE"}


def model_forms() -> str:
    """Every registered model backend's form, in MODEL_FORMS' order (the registry imports no backend)."""
    from negbench.models.base import MODEL_BACKENDS

    names = MODEL_BACKENDS.names()
    ordered = [n for n in MODEL_FORMS if n in names] + [n for n in names if n not in MODEL_FORMS]
    return ", ".join(MODEL_FORMS.get(n, f"{n}:SPEC") for n in ordered)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_list(parser, "--model", metavar="MODELS",
             help=f"model strings: {model_forms()} (`negbench models` lists known ones); several are "
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
    parser.add_argument("--limit", type=_limit, default=None, metavar="N",
                        help="evaluate only the first N items of each task (or that share of them, e.g. 0.1), "
                             "for a quick check; such results are marked `limited` everywhere and never "
                             "stand for the full task (a limit that keeps every item of a task is a full run)")
    parser.add_argument("--skip-existing", action="store_true",
                        help="reuse a task's stored result when it is complete and was computed from the same "
                             "inputs (task file, media, model, settings); anything else is recomputed")
    parser.add_argument("--fail-fast", action="store_true",
                        help="stop at the first task that cannot be evaluated (default: go on, list them at "
                             "the end and exit 2)")
    parser.add_argument("--skip-invalid", action="store_true",
                        help="skip bad rows (counted in the results) instead of stopping")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="images / captions per forward pass (default 64), or questions per generate() "
                             "call of a generative VLM (default 8)")
    parser.add_argument("--num-workers", type=int, default=None,
                        help="DataLoader workers decoding media; unset: chosen from the cores, 0: in the main process")
    parser.add_argument("--precision", choices=["fp32", "fp16", "bf16", "auto"], default="fp32",
                        help="bf16/fp16: the model's weights are cast once and run in that dtype (fast on GPUs "
                             "and on CPUs with AMX-BF16 / AVX512-BF16; the paper's exact numbers need fp32); "
                             "auto: bf16 where this device has a fast bf16 path, else fp32 (recorded in the "
                             "results). Results count `near_ties`: questions a precision change could flip; at bf16/fp16 "
                             "those MCQ questions are scored again at fp32 (see --no-rescore-near-ties)")
    parser.add_argument("--no-rescore-near-ties", action="store_true",
                        help="at bf16/fp16, keep the low-precision answers of near-tied MCQ questions (default: "
                             "score them again at fp32, counted as rescored_fp32)")
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
    add_shard_argument(parser)
    from negbench.cli.eval_vlm import add_generative_arguments  # flags of vlm:... models

    add_generative_arguments(parser)


def check_device(device: str | None) -> None:
    """A --device this machine has, or one ConfigError naming the devices it has: the check of
    `negbench pretrain` / `finetune` (train/trainer.py), made before anything runs."""
    if device is not None:
        from negbench.train.trainer import check_device as check

        check(device)


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
    """A compact text table of one result: every metric with its 95% CI and n, question types by the
    paper's names (template id in brackets), wrong-answer shares, and what the report flags beside a
    number (small n, R@k over a gallery of at most k). The same lines, in the same order, for a fresh
    result and one read back by --skip-existing; the last line says which it is."""
    from pathlib import Path

    from negbench.analysis.results import TYPE_NAMES, Result
    from negbench.inputs.kinds import TEMPLATE_ORDER, template_metric

    task, m, c = result["task"], result["metrics"], result["counts"]
    if result.get("status") == "skipped":  # e.g. a generative-only task with a dual encoder
        return f"{task['name']}  skipped: {result['skip_reason']}"
    read = Result(Path(result.get("results_file") or "."), result)
    extra = "".join(f", {c[k]} {k}" for k in ("ties", "unparsed") if k in c)
    limit = f", LIMITED to the first {c['items']} (--limit {result['limit']})" if read.limited else ""
    protocol = f"; {result['model']}" if result.get("protocol") else ""
    lines = [f"{task['name']}  ({task['kind']}, {task['modality']}{protocol}; {plural(c['items'], 'item')}{limit}, "
             f"{c['skipped']} skipped{extra}; chance {_chance(read)})"]
    if result.get("status", "complete") != "complete":
        f = result.get("failures") or {}
        lines.append(f"  INCOMPLETE: {f.get('unanswered')} of {f.get('of')} questions got no answer "
                     f"({f.get('by_reason')}); counted wrong, never reused by --skip-existing")
    lines += [f"  warning: {w}" for w in result.get("warnings") or []]
    names = {**TYPE_NAMES, **(task.get("answer_type_names") or {})}
    templates = sorted(read.templates(), key=lambda t: (TEMPLATE_ORDER + (t,)).index(t))
    per_template = {template_metric(t) for t in templates}
    for key in _metric_order(m, read.task_kind):
        if key not in per_template and isinstance(m[key], dict) and "value" in m[key]:
            lines.append(f"  {key:<28} {_metric_cells(read, key, m[key])}")
    shown = {t: f"{names.get(t, t)} ({t}, n={read.metric_n(template_metric(t))})" for t in templates}
    width = max([26, *map(len, shown.values())])
    for tmpl in templates:
        key = template_metric(tmpl)
        lines.append(f"    {shown[tmpl]:<{width}} {_metric_cells(read, key, read.metric(key), with_n=False)}")
    shares = (result.get("breakdowns") or {}).get("wrong_answer_type_shares") or {}
    if shares:
        order = sorted(shares, key=lambda t: (TEMPLATE_ORDER + (t,)).index(t))
        lines.append("  wrong answers chose: " + ", ".join(f"{names.get(t, t)} {100 * shares[t]:.1f}%" for t in order))
    if result.get("protocol"):
        lines.append(f"  unparsed {c.get('unparsed', 0)}, failed requests {c.get('request_errors', 0)} "
                     f"{(result.get('breakdowns') or {}).get('request_errors') or ''}".rstrip())
    if result.get("reused"):
        lines.append(f"  reused {result.get('results_file')} (computed {result.get('created', 'at an unknown time')})")
    else:
        lines.append(f"  ({result['timings']['total_s']:.1f}s; {_cache_line(result.get('cache', {}))})")
    return "\n".join(lines)


def plural(n: int, word: str) -> str:
    """'1 item', '2 items'."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _metric_order(metrics: dict, kind) -> list[str]:
    """The kind's own metrics in its order (t2i before i2t, R@1 < R@5 < R@10), then the others by
    name: one order whether the result is fresh or read back from its (key-sorted) JSON."""
    own = [k for k in (kind.metrics if kind else ()) if k in metrics]
    return own + sorted(k for k in metrics if k not in own)


def _metric_cells(read, key: str, v: dict, with_n: bool = True) -> str:
    """'  22.47   [ 16.97,  29.13]  n=178' and what the report says beside it (small n, gallery <= k)."""
    from negbench.analysis.report.tables import result_flags

    n = read.metric_n(key)
    flags = [f for f in result_flags(read, key) if f not in read.marks]  # the marks are in the header
    return (f"{100 * v['value']:6.2f}   [{100 * v['ci_low']:6.2f}, {100 * v['ci_high']:6.2f}]"
            + (f"  n={n}" if with_n else "")
            + (f"  ({'; '.join(flags)})" if flags else ""))


def _chance(read) -> str:
    """Chance as the report states it: the task's (1/4, 1/2) for questions; k / gallery for the
    headline R@k of retrieval (a random ranking puts the own item in the top k that often)."""
    from negbench.analysis.report.tables import chance_of

    head = read.headline()
    value = chance_of(read, head[0]) if head else read.data.get("chance")
    if value is None:
        return "-"
    return f"{100 * value:.1f}%" + (f" for {head[0]} (k / gallery)" if head and "@" in head[0] else "")


def _cache_line(cache: dict) -> str:
    if "answer_hits" in cache:
        return f"cache {cache['answer_hits']} hit / {cache['answer_misses']} miss"
    return (f"cache media {cache.get('media_hits', 0)} hit / {cache.get('media_misses', 0)} miss, "
            f"text {cache.get('text_hits', 0)} hit / {cache.get('text_misses', 0)} miss")


def _prepare_specs(args):
    """Selected specs with --path-map applied and, with --exclude-suspicious, renamed TASK@clean."""
    from negbench.inputs.paths import parse_path_map
    from negbench.inputs.tasks import clean_variant, load_task_dir, with_path_map

    if args.data_root:  # task YAMLs written by `negbench import-benchmark` register from there
        load_task_dir(args.data_root)
    pairs = parse_path_map(args.path_map)
    specs = [with_path_map(s, pairs) for s in select_specs(args.tasks, args.suite, args.tasks_file, args.data_root)]
    return [clean_variant(s) for s in specs] if args.exclude_suspicious else specs


def _present_specs(specs, args) -> tuple[list, list]:
    """(specs to run, [(task, reason)] left out). A suite runs the tasks whose task files are
    present (a user rarely has all 18 datasets); a task named explicitly must exist, and the error
    names the flag that places it."""
    from negbench.core.errors import ConfigError

    if not args.suite:
        check_task_files(specs, args.data_root)
        return specs, []
    present = [s for s in specs if s.resolve_file(args.data_root).is_file()]
    if not present:
        where = ("pass --data-root DIR, the folder that holds the task files (`negbench data import "
                 "RELEASE --data-root DIR` places the published NegBench files there, `negbench data download "
                 "--data-root DIR` their media)" if args.data_root is None else
                 f"is --data-root {args.data_root} the right folder? `negbench data check --data-root "
                 f"{args.data_root}` lists what is missing")
        raise ConfigError(f"suite {', '.join(args.suite)}: none of its {len(specs)} task files was found; {where}")
    for spec in specs:
        if spec not in present:
            print(f"{spec.name}: not present, task file not found: {spec.resolve_file(args.data_root)}")
    return present, []


def _limit(text: str):
    """--limit N or a share in (0, 1), as lm-eval's --limit."""
    from negbench.core.errors import ConfigError
    from negbench.evaluation.config import parse_limit

    try:
        return parse_limit(text)
    except ConfigError as err:  # argparse names the flag: 'argument --limit: must be ...'
        raise argparse.ArgumentTypeError(str(err).removeprefix("--limit ")) from None


def add_shard_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--shard", type=_shard, default=None, metavar="I/N",
                        help="without a process group (SLURM arrays, machines sharing the cache folder): compute "
                             "only part I of N (0-based) of the missing embeddings or answers into the cache and "
                             "write no result; then run without --shard to score from the cache (no model load). "
                             "Under torchrun the ranks split the work themselves")


def _shard(text: str):
    from negbench.core.errors import ConfigError
    from negbench.evaluation.distributed import parse_shard

    try:
        return parse_shard(text)
    except ConfigError as err:  # argparse names the flag and prints usage
        raise argparse.ArgumentTypeError(str(err).removeprefix("--shard ")) from None


def eval_config(args: argparse.Namespace):
    """The one EvalConfig of this run, built once from the flags and passed as is to the end."""
    from pathlib import Path

    from negbench.cli.eval_vlm import endpoint_options
    from negbench.core.filehash import use_cache_dir
    from negbench.evaluation.cache import default_cache_dir
    from negbench.evaluation.config import EvalConfig

    if args.cache_dir:  # the media digest index lives beside the cache the user named
        use_cache_dir(args.cache_dir)

    return EvalConfig(
        data_root=args.data_root, results_dir=args.out, batch_size=args.batch_size,
        cache_dir=None if args.no_cache else Path(args.cache_dir or default_cache_dir()),
        skip_invalid=args.skip_invalid, seed=args.seed, bootstrap_samples=args.bootstrap_samples,
        skip_existing=args.skip_existing, num_workers=args.num_workers, frames=args.frames,
        progress=not args.no_progress, device=args.device, precision=args.precision, limit=args.limit,
        protocol=args.protocol, shuffle_options=args.shuffle_options, shuffle_seed=args.shuffle_seed,
        max_new_tokens=args.max_new_tokens, likelihood_norm=args.likelihood_norm,
        load_options=endpoint_options(args), shard=args.shard, rescore_near_ties=not args.no_rescore_near_ties)


def run(args: argparse.Namespace) -> int:
    if wants_listing(args.tasks):
        from negbench.cli.tasks import print_tasks

        return print_tasks(data_root=args.data_root, tasks_files=args.tasks_file)
    if not args.model:
        from negbench.core.errors import ConfigError

        raise ConfigError("--model is required (e.g. --model builtin:demo-out/models/pretrained)")
    check_device(args.device)  # before any task is read or embedding taken from the cache
    if args.allow_big_images:
        from negbench.inputs.media import allow_big_images

        allow_big_images()
    from negbench.evaluation.distributed import start_ranks

    cfg = start_ranks(eval_config(args))  # under torchrun: join the ranks; only rank 0 prints
    specs, missing = _present_specs(_prepare_specs(args), args)
    outcome = EvalOutcome(not_evaluated=list(missing))
    for model in args.model:
        evaluate_model(model, specs, cfg, outcome, fail_fast=args.fail_fast)
    if len(outcome.results) > 1 and cfg.shard is None:
        print("\n" + summary_table(outcome.results), end="")
    _write_run_summary(cfg, outcome)
    return outcome.report()


def _write_run_summary(cfg, outcome) -> None:
    """The run-level results file beside the per-task ones (rank 0 of a full run only)."""
    from negbench.evaluation.distributed import ranks_for
    from negbench.evaluation.store import write_run_summary

    if cfg.results_dir is None or cfg.shard is not None or not ranks_for(cfg).writes_results:
        return
    if outcome.results or outcome.not_evaluated:
        path = write_run_summary(cfg.results_dir, cfg, outcome.results, outcome.not_evaluated, outcome.not_applicable)
        print(f"run summary -> {path}")


class EvalOutcome:
    """What one `negbench eval` did: results, tasks a model cannot do, tasks that failed."""

    def __init__(self, not_evaluated: list | None = None):
        self.results: list[dict] = []
        self.not_applicable: list[tuple[str, str]] = []
        self.not_evaluated: list[tuple[str, str]] = not_evaluated or []
        self.told_replaced = False

    def note_replaced(self, result: dict, skip_existing: bool) -> None:
        """Once per run: a result recomputed over an earlier one at the same path; with --skip-existing
        the stored one was of other inputs (the log says which), without it the flag would reuse it."""
        if result.get("replaced") and not self.told_replaced:
            self.told_replaced = True
            print("  (an earlier result of other inputs was there: recomputed and replaced)" if skip_existing else
                  "  (an earlier result was there: recomputed and replaced; --skip-existing reuses a stored "
                  "result computed from the same inputs)")

    def report(self) -> int:
        """Print what was not evaluated; exit status 2 when a task could not run, else 0."""
        import sys

        for task, reason in self.not_applicable:
            print(f"not applicable: {task}: {reason}")
        if self.not_evaluated:
            print(f"{plural(len(self.not_evaluated), 'task')} not evaluated:", file=sys.stderr)
            for task, reason in self.not_evaluated:
                print(f"  {task}: {reason}", file=sys.stderr)
            return 2
        return 0 if self.results or self.not_applicable else 1


def evaluate_model(model: str, specs, cfg, outcome: EvalOutcome, *, fail_fast: bool = False) -> None:
    """Every spec with one model (loaded once, and only if something has to run). A task that
    cannot run is reported and the others go on (--fail-fast: the first stops the run)."""
    from negbench.core.errors import NegbenchError
    from negbench.evaluation.distributed import RankFailed
    from negbench.evaluation.engine import as_model, evaluate_task
    from negbench.evaluation.run import NotApplicable

    shared = as_model(model, cfg)  # loaded on the first embedding or answer that is not stored
    for k, spec in enumerate(specs, start=1):
        if len(specs) > 1 and cfg.progress:
            print(f"[{k}/{len(specs)}] {spec.name}", flush=True)
        try:
            result = evaluate_task(spec, shared, cfg)
        except NotApplicable as err:
            outcome.not_applicable.append((spec.name, str(err)))
            continue
        except RankFailed:  # a torchrun rank stopped: no later task can run either
            raise
        except NegbenchError as err:
            if fail_fast or len(specs) == 1:
                raise
            print(f"{spec.name}: not evaluated: {err}")
            outcome.not_evaluated.append((spec.name, str(err)))
            continue
        if result.get("status") == "shard":  # --shard i/n: cached its part, scored nothing
            from negbench.evaluation.distributed import format_shard

            print(format_shard(result))
            outcome.results.append(result)
            continue
        print(format_result(result))
        if not result.get("reused"):
            print(f"  -> {result.get('results_file', '(not written)')}")
        outcome.note_replaced(result, cfg.skip_existing)
        outcome.results.append(result)


def summary_table(results: list[dict]) -> str:
    """One line per model x task: the headline metric with its CI and n, after a multi-task run,
    and what the report flags beside it (small n, R@k over a gallery of at most k)."""
    from pathlib import Path

    from negbench.analysis.report.tables import result_flags
    from negbench.analysis.results import Result

    lines = [f"{'model':<40} {'task':<36} {'metric':<14} {'value':>6}  {'95% CI':<14} {'n':>6}", "-" * 120]
    for r in results:
        read = Result(Path("."), r)
        headline = read.headline()  # the task kind's headline metric
        if headline is None:
            continue
        key, v = headline[0], r["metrics"][headline[0]]
        ci = f"[{100 * v['ci_low']:.1f}, {100 * v['ci_high']:.1f}]"
        # the bare task name (cut, it stays readable); its marks (--limit, incomplete) with the flags
        flags = list(read.marks) + [f for f in result_flags(read, key) if f not in read.marks]
        lines.append(f"{_middle_cut(r['model'], 40):<40} {_middle_cut(read.task_name, 36):<36} {key:<14} "
                     f"{100 * v['value']:6.1f}  {ci:<14} {read.metric_n(key) or '':>6}"
                     + (f"  ({'; '.join(flags)})" if flags else ""))
    return "\n".join(lines) + "\n"


def _middle_cut(text: str, width: int) -> str:
    """A long name shortened in the middle: its head (the backend) and its informative end (the
    checkpoint, the served model, the task's variant) stay readable."""
    if len(text) <= width:
        return text
    head = width // 3
    return f"{text[:head]}…{text[-(width - head - 1):]}"
