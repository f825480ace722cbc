"""`negbench demo`: NegWorld -> pretrain -> NegBench-World -> eval -> fine-tune -> eval -> report."""
from __future__ import annotations

import argparse

HELP = "run the paper's whole story offline on NegWorld and write a report (resumable)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="demo-out",
                        help="output folder (default %(default)s; a rerun skips finished stages, "
                             "an interrupted run resumes)")
    parser.add_argument("--size", default="small", choices=("tiny", "small"),
                        help="small (default): the README demo, ~18 min on 2 CPU cores; "
                             "tiny: a smoke test whose numbers mean little (40 s on an idle 2-core machine, several minutes on a loaded one)")
    parser.add_argument("--seed", type=int, default=0,
                        help="same seed: same world and data, and on the same hardware the same numbers "
                             "(default 0)")
    parser.add_argument("--device", default=None, help="torch device (default: cuda > mps > cpu)")


def run(args: argparse.Namespace) -> int:
    from negbench.demo import run_demo

    run_demo(args.out, size=args.size, seed=args.seed, device=args.device)
    return 0
