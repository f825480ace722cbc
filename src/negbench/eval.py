"""`torchrun --nproc_per_node N -m negbench.eval ARGS` = `negbench eval ARGS` on N ranks.

The flags, parser and run() are `negbench eval`'s: this module hands its arguments to the command
line's one entry point (`python -m negbench`) as `eval ARGS`. The ranks split the missing
embeddings or questions of every task and rank 0 writes results and prints (see
negbench/evaluation/distributed.py). Without torchrun it is a plain `negbench eval`.
"""
from __future__ import annotations

import runpy
import sys


def main(argv: list[str] | None = None) -> None:
    """Run `negbench eval ARGV` (default: this process's arguments); exits with its status."""
    sys.argv = ["negbench", "eval", *(sys.argv[1:] if argv is None else argv)]
    runpy.run_module("negbench", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
