"""`negbench tasks`: list the registered tasks and suites and the files each needs."""
from __future__ import annotations

import argparse

HELP = "list the registered NegBench tasks and suites, and the files each needs"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--suite", action="append", default=[], help="only the tasks of this suite")
    parser.add_argument("--tasks-file", action="append", default=[],
                        help="also load task specs from this YAML (e.g. one written by `negbench build`)")
    parser.add_argument("--data-root", default=None,
                        help="show whether each task is ready under this root: CSV found and every media file "
                             "found (as `negbench data check`)")


def _status(spec, data_root) -> str:
    from negbench.inputs.release import check_task

    st = check_task(spec, data_root)
    if st.ready:
        return "ready"
    if not st.csv_found:
        return "CSV missing"
    if st.error:
        return "media not found"
    return f"media missing ({len(st.missing)}/{st.media})"


def run(args: argparse.Namespace) -> int:
    from negbench.inputs.tasks import SUITES, TASKS, expand_tasks, load_builtin_tasks, load_task_file

    load_builtin_tasks()
    for f in args.tasks_file:
        load_task_file(f)
    specs = expand_tasks(suites=args.suite) if args.suite else [TASKS.get(n) for n in TASKS.names()]
    rows = []
    for s in specs:
        status = _status(s, args.data_root) if args.data_root else ""
        rows.append((s.name, s.kind, s.modality, s.group, s.variant, s.file, status))
    widths = [max(len(str(r[i])) for r in rows + [("task", "kind", "modality", "group", "variant", "file", "")])
              for i in range(7)]
    header = ("task", "kind", "modality", "group", "variant", "file", "status" if args.data_root else "")
    for r in [header] + rows:
        print("  ".join(str(v).ljust(w) for v, w in zip(r, widths)).rstrip())
    print(f"\n{len(specs)} tasks. Suites: " + ", ".join(f"{n} ({len(SUITES.get(n))})" for n in SUITES.names()))
    return 0
