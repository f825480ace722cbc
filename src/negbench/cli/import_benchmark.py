"""`negbench import-benchmark`: turn another negation benchmark's released files into negbench tasks."""
from __future__ import annotations

import argparse

from negbench.cli._common import HelpFormatter

HELP = ("read a released benchmark (ccneg, valse, spec, negvqa, sugarcrepe) into negbench task files "
        "plus a task YAML for `negbench eval --tasks-file`")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = HelpFormatter
    parser.allow_abbrev = False
    from negbench.inputs.benchmarks import BENCHMARKS  # names only; the importers load lazily

    parser.add_argument("name", choices=BENCHMARKS.names(), help="which benchmark's layout --src is in")
    parser.add_argument("--src", required=True,
                        help="the released file or folder: ccneg_preprocessed.pt, VALSE existence.json, "
                             "SPEC data root (with existence/), NegVQA JSONL folder, SugarCrepe data folder")
    parser.add_argument("--out", required=True, help="folder for the task CSVs and NAME.yaml")
    parser.add_argument("--image-root", default=None,
                        help="folder the release's image paths are relative to (default: beside --src); "
                             "COCO val2017 for SugarCrepe, the CC-Neg images folder for ccneg")
    parser.add_argument("--skip-invalid", action="store_true",
                        help="skip malformed entries (counted and listed in the manifests) instead of stopping")


def run(args: argparse.Namespace) -> int:
    from negbench.inputs.benchmarks import import_benchmark

    result = import_benchmark(args.name, args.src, args.out, image_root=args.image_root,
                              skip_invalid=args.skip_invalid)
    for task in result.tasks:
        print(f"{task.name:<26} {task.kind:<14} {result.counts[task.name]:>7} items -> {result.out / task.file}")
    if result.dropped:
        print("left out on purpose: " + ", ".join(f"{k} {v}" for k, v in result.dropped.items()))
    if result.skipped:
        print(f"skipped {len(result.skipped)} malformed entries (see the manifests)")
    print(f"tasks: {result.tasks_yaml}\nrun:   negbench eval --tasks-file {result.tasks_yaml} --model MODEL")
    return 0
