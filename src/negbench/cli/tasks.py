"""`negbench tasks`: list the registered tasks and suites and the files each needs."""
from __future__ import annotations

import argparse

from negbench.cli._common import add_list

HELP = "list the registered NegBench tasks and suites, and the files each needs (also: eval --tasks list)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_list(parser, "--suite", metavar="NAMES", help="only the tasks of these suites")
    add_list(parser, "--tasks-file", metavar="YAMLS",
             help="also load task specs from these YAMLs (e.g. written by `negbench build`)")
    parser.add_argument("--data-root", default=None,
                        help="show whether each task is ready under this root: CSV found and every media file "
                             "found (as `negbench data check`); a tasks.yaml in it is loaded too")


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


def print_tasks(*, suites=(), tasks_files=(), data_root=None) -> int:
    """Print one line per task (name, kind, modality, group, variant, file[, status]) and the suites."""
    from negbench.inputs.tasks import SUITES, TASKS, expand_tasks, load_builtin_tasks, load_task_dir, load_task_file

    load_builtin_tasks()
    if data_root:  # the YAMLs `negbench eval --data-root` registers: built suites, imported benchmarks
        load_task_dir(data_root)
    for f in tasks_files:
        load_task_file(f)
    specs = expand_tasks(suites=list(suites)) if suites else [TASKS.get(n) for n in TASKS.names()]
    header = ("task", "kind", "modality", "group", "variant", "file", "status" if data_root else "")
    rows = []
    for s in specs:
        status = _status(s, data_root) if data_root else ""
        rows.append((s.name, s.kind, s.modality, s.group, s.variant, s.file, status))
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(7)]
    for r in [header] + rows:
        print("  ".join(str(v).ljust(w) for v, w in zip(r, widths)).rstrip())
    print(f"\n{len(specs)} tasks. Suites (tasks): " + ", ".join(_suite_count(n) for n in SUITES.names()))
    return 0


def _suite_count(suite: str) -> str:
    """'negbench (26)'; a suite with optional members not imported also names them:
    'negation-all (26; not registered: ccneg, valse)'. Counts tasks, as every other count here."""
    from negbench.inputs.tasks import expand_with_left_out

    specs, left_out = expand_with_left_out(suites=[suite])
    missing = [m for members in left_out.values() for m in members]
    return f"{suite} ({len(specs)}" + (f"; not registered: {', '.join(missing)})" if missing else ")")


def run(args: argparse.Namespace) -> int:
    return print_tasks(suites=args.suite, tasks_files=args.tasks_file, data_root=args.data_root)
