"""`negbench report RESULTS... --out DIR`: HTML + Markdown report with plots from results files."""
from __future__ import annotations

import argparse

from negbench.cli._common import add_list, add_out

HELP = "write a self-contained report.html, report.md and PNG plots from results files"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results", nargs="+", help="results JSON files or folders holding them")
    add_out(parser, required=True, help="output folder for report.html, report.md and PNGs")
    parser.add_argument("--title", default="negbench report", help="heading of the report")
    parser.add_argument("--label", action="append", default=[], metavar="MODEL=LABEL",
                        help="display label for a model, e.g. builtin:/runs/base=before (repeatable)")
    parser.add_argument("--before", default=None,
                        help="model or label to compare from (default: the model labelled 'before…')")
    parser.add_argument("--after", default=None,
                        help="model or label to compare to (default: the model labelled 'after…')")
    parser.add_argument("--train-log", action="append", default=[], metavar="[NAME=]LOG",
                        help="a trainer's RUN/train/log.jsonl (or RUN folder) for the training curves (repeatable)")
    add_list(parser, "--trained-wordings", metavar="NAMES",
             help="template sets the fine-tuning data used, e.g. default,no,not; other wordings are marked "
                  "held out (default: unknown)")
    parser.add_argument("--gallery-size", type=int, default=4, help="questions shown per gallery")
    parser.add_argument("--probe", action="append", default=[], metavar="PROBE_JSON",
                        help="probe.json written by `negbench probe-text` (repeatable)")


def _logs(items: list[str]) -> dict:
    out = {}
    for item in items:
        name, sep, path = item.partition("=")
        out[name if sep else f"run {len(out) + 1}"] = path if sep else item
    return out


def run(args: argparse.Namespace) -> int:
    from negbench.analysis.report import ReportOptions, make_report
    from negbench.analysis.results import parse_labels

    opts = ReportOptions(title=args.title, labels=parse_labels(args.label), before=args.before, after=args.after,
                         train_logs=_logs(args.train_log), trained_wordings=args.trained_wordings or None,
                         probes=args.probe, gallery_size=args.gallery_size)
    path = make_report(args.results, args.out, opts)
    print(f"report: {path}")
    print(f"        {path.with_name('report.md')}")
    return 0
