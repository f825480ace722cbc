"""`negbench table`: long-format CSV/Markdown and a wide Markdown view from results JSON files."""
from __future__ import annotations

import argparse

from negbench.cli._common import add_list, add_out

HELP = ("tabulate results JSON files: long format (model, task, metric, value, ci_low, ci_high, n, flags; "
        "n = the items the metric is a mean over) as CSV + Markdown, and a wide Markdown view (models x tasks, "
        "value [95% CI] with n)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results", nargs="+", help="results JSON files, folders or globs (results/**/*.json)")
    add_out(parser, help="folder to write table.csv, table.md (long format) and table_wide.md; "
                         "without it only the wide view is printed")
    add_list(parser, "--metric", metavar="NAMES",
             help="metrics to list (default: all in the long view; each task's headline in the wide view, "
                  "accuracy for MCQ, t2i_recall@5 for retrieval); must be present in the results")
    parser.add_argument("--label", action="append", default=[], metavar="MODEL=NAME",
                        help="show MODEL as NAME, e.g. builtin:/runs/base=before (repeatable)")
    parser.add_argument("--long", action="store_true", help="print the long view instead of the wide one")
    parser.add_argument("--skip-invalid", action="store_true",
                        help="leave out results files that cannot be read (each named, and counted) instead "
                             "of stopping")


def run(args: argparse.Namespace) -> int:
    from negbench.analysis.leaderboard import make_table
    from negbench.analysis.results import parse_labels

    import sys

    skipped = [] if args.skip_invalid else None
    table = make_table(args.results, metrics=args.metric, labels=parse_labels(args.label), out=args.out,
                       skipped=skipped)
    for path, reason in skipped or []:
        print(f"skipped unreadable results file {path}: {reason}", file=sys.stderr)
    if skipped:
        print(f"{len(skipped)} results file(s) skipped (--skip-invalid)", file=sys.stderr)
    print(table.long_md if args.long else table.wide_md, end="")
    if args.out:
        print(f"\nwrote {args.out}/table.csv, table.md and table_wide.md")
    return 0
