"""The generative-VLM part of `negbench eval` (models `vlm:hf:...`, `vlm:openai:MODEL@URL`)."""
from __future__ import annotations

import argparse


def add_generative_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("generative VLMs (--model vlm:hf:ID_OR_DIR or vlm:openai:MODEL@URL)")
    g.add_argument("--protocol", choices=["choice", "likelihood"], default=None,
                   help="choice: the model answers a letter for the options listed A-D (parsed strictly, "
                        "unparsed answers count as wrong); likelihood: argmax of the option text's "
                        "log-probability (vlm:hf:, and endpoints that return vLLM's prompt_logprobs). Default: the model string's #protocol, else choice")
    g.add_argument("--shuffle-options", action="store_true",
                   help="choice protocol: show each question's options in a seeded random order "
                        "(the published files put the correct option first)")
    g.add_argument("--shuffle-seed", type=int, default=0, help="seed of --shuffle-options")
    g.add_argument("--max-new-tokens", type=int, default=16, help="choice protocol: answer length limit")
    g.add_argument("--likelihood-norm", choices=["mean", "sum"], default="mean",
                   help="likelihood protocol: predict by the mean (per token) or summed log-probability")
    g.add_argument("--concurrency", type=int, default=4, help="vlm:openai: requests in flight")
    g.add_argument("--retries", type=int, default=2, help="vlm:openai: retries of a failed request")
    g.add_argument("--request-timeout", type=float, default=60.0, help="vlm:openai: seconds per request")
    g.add_argument("--deadline", type=float, default=None,
                   help="vlm:openai: seconds for all requests of the run; later ones count as failed")


def format_generative(result: dict) -> str:
    task, m, c = result["task"], result["metrics"], result["counts"]
    limit = f", first {result['limit']} only (--limit)" if result.get("limit") is not None else ""
    lines = [f"{task['name']}  ({task['kind']}; {result['model']}; {c['items']} items{limit}, {c['skipped']} skipped; "
             f"chance {result['chance']})"]
    for name, v in m.items():
        lines.append(f"  {name:<28} {100 * v['value']:6.2f}   [{100 * v['ci_low']:6.2f}, {100 * v['ci_high']:6.2f}]")
    lines.append(f"  unparsed {c['unparsed']}, failed requests {c['request_errors']} "
                 f"{result['breakdowns'].get('request_errors') or ''}".rstrip())
    lines.append(f"  ({result['timings']['total_s']:.1f}s; cache {result['cache']['answer_hits']} hit / "
                 f"{result['cache']['answer_misses']} miss)")
    return "\n".join(lines)


def run_generative(args: argparse.Namespace, specs, model: str) -> list[dict]:
    """Every spec with one generative model (loaded once, and only if something has to run)."""
    from pathlib import Path

    from negbench.evaluation import generative
    from negbench.evaluation.engine import default_cache_dir
    from negbench.models.vlm.base import load

    cache_dir = None if args.no_cache else Path(args.cache_dir or default_cache_dir())
    load_options = {"concurrency": args.concurrency, "retries": args.retries, "timeout": args.request_timeout,
                    "deadline": args.deadline} if model.startswith("vlm:openai:") else {}
    kwargs = dict(data_root=args.data_root, results_dir=args.out, batch_size=args.batch_size,
                  cache_dir=cache_dir, skip_invalid=args.skip_invalid, seed=args.seed,
                  bootstrap_samples=args.bootstrap_samples, skip_existing=args.skip_existing,
                  frames=args.frames, progress=not args.no_progress, device=args.device, precision=args.precision,
                  protocol=args.protocol, shuffle_options=args.shuffle_options, shuffle_seed=args.shuffle_seed,
                  max_new_tokens=args.max_new_tokens, likelihood_norm=args.likelihood_norm, limit=args.limit)
    adapter, out = None, []
    for spec in specs:
        if adapter is None and not generative.result_exists(spec, model, kwargs):
            adapter = load(model[len("vlm:"):], device=args.device, precision=args.precision, **load_options)
        result = generative.evaluate_task(spec, adapter if adapter is not None else model, **kwargs)
        print(format_generative(result))
        print(f"  -> {result.get('results_file', '(not written)')}")
        out.append(result)
    return out
