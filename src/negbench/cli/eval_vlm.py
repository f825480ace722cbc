"""The generative-VLM flags of `negbench eval` (models `vlm:hf:...`, `vlm:openai:MODEL@URL`)."""
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
    g.add_argument("--concurrency", type=int, default=None, help="vlm:openai: requests in flight (default 4)")
    g.add_argument("--retries", type=int, default=None, help="vlm:openai: retries of a failed request (default 2)")
    g.add_argument("--request-timeout", type=float, default=None,
                   help="vlm:openai: seconds per request (default 60)")
    g.add_argument("--deadline", type=float, default=None,
                   help="vlm:openai: seconds for all requests of the run; later ones count as failed")


def endpoint_options(args: argparse.Namespace) -> dict:
    """The endpoint flags the user gave (a model backend that takes none of them says so)."""
    given = {"concurrency": args.concurrency, "retries": args.retries, "timeout": args.request_timeout,
             "deadline": args.deadline}
    return {k: v for k, v in given.items() if v is not None}
