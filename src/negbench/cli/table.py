"""`negbench table`: a markdown + CSV leaderboard from results JSON files."""
from __future__ import annotations

import argparse

HELP = "print a markdown leaderboard from results JSON files and write it as .md + .csv"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results", nargs="+", help="results JSON files, folders or globs (results/**/*.json)")
    parser.add_argument("--out", default="leaderboard", help="writes OUT.md and OUT.csv ('' to skip)")
    parser.add_argument("--metric", default=None,
                        help="metric per cell (default: accuracy for MCQ, t2i_recall@5 for retrieval)")


def run(args: argparse.Namespace) -> int:
    from negbench.analysis.leaderboard import write_leaderboard

    print(write_leaderboard(args.results, args.out or None, args.metric), end="")
    if args.out:
        print(f"\nwrote {args.out}.md and {args.out}.csv")
    return 0
