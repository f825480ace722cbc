"""`negbench tasks`: list the registered tasks and suites and the files each needs."""
from __future__ import annotations

import argparse

HELP = "list the registered NegBench tasks and suites, and the files each needs"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--suite", action="append", default=[], help="only the tasks of this suite")
    parser.add_argument("--tasks-file", action="append", default=[],
                        help="also load task specs from this YAML (e.g. one written by `negbench build`)")
    parser.add_argument("--data-root", default=None, help="show whether each file exists under this root")


def run(args: argparse.Namespace) -> int:
    from negbench.inputs.tasks import SUITES, TASKS, expand_tasks, load_builtin_tasks, load_task_file

    load_builtin_tasks()
    for f in args.tasks_file:
        load_task_file(f)
    specs = expand_tasks(suites=args.suite) if args.suite else [TASKS.get(n) for n in TASKS.names()]
    rows = []
    for s in specs:
        path = s.resolve_file(args.data_root)
        status = ("found" if path.exists() else "missing") if args.data_root else ""
        rows.append((s.name, s.kind, s.modality, s.group, s.variant, s.file, status))
    widths = [max(len(str(r[i])) for r in rows + [("task", "kind", "modality", "group", "variant", "file", "")])
              for i in range(7)]
    header = ("task", "kind", "modality", "group", "variant", "file", "status" if args.data_root else "")
    for r in [header] + rows:
        print("  ".join(str(v).ljust(w) for v, w in zip(r, widths)).rstrip())
    print(f"\n{len(specs)} tasks. Suites: " + ", ".join(f"{n} ({len(SUITES.get(n))})" for n in SUITES.names()))
    return 0
