"""`negbench report RESULTS... --out DIR`: HTML + Markdown report with plots from results files."""
from __future__ import annotations

import argparse

HELP = "write a self-contained report.html, report.md and PNG plots from results files"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results", nargs="+", help="results JSON files or folders holding them")
    parser.add_argument("--out", required=True, help="output folder for report.html, report.md and PNGs")
    parser.add_argument("--title", default="negbench report")
    parser.add_argument("--label", action="append", default=[], metavar="MODEL=LABEL",
                        help="display label for a model, e.g. builtin:/runs/base=before (repeatable)")
    parser.add_argument("--before", default=None,
                        help="model or label to compare from (default: the model labelled 'before')")
    parser.add_argument("--after", default=None,
                        help="model or label to compare to (default: the model labelled 'after')")
    parser.add_argument("--gallery-model", default=None, help="model or label whose errors the gallery shows")
    parser.add_argument("--gallery-size", type=int, default=8)
    parser.add_argument("--probe", action="append", default=[], metavar="PROBE_JSON",
                        help="probe.json written by `negbench probe-text` (repeatable)")


def run(args: argparse.Namespace) -> int:
    from negbench.analysis.report import make_report, parse_labels

    path = make_report(args.results, args.out, title=args.title, labels=parse_labels(args.label),
                       before=args.before, after=args.after, gallery_model=args.gallery_model,
                       gallery_size=args.gallery_size, probes=args.probe)
    print(f"report: {path}")
    print(f"        {path.with_name('report.md')}")
    return 0
