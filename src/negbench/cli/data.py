"""`negbench data check|download|import`: get the published NegBench data in place and check it."""
from __future__ import annotations

import argparse

from negbench.cli._common import HelpFormatter, add_list, add_progress, add_tasks

HELP = "check, download (COCO, VOC) or import (the authors' CSV release) the data NegBench evaluates on"


def _add_check(sub) -> None:
    p = sub.add_parser("check", help="per task: CSV found, rows, media found/missing, path rewrite, "
                                     "suspicious rows; then what is missing and where to get it",
                       formatter_class=HelpFormatter, allow_abbrev=False)
    p.add_argument("--data-root", required=True, help="folder holding the CSVs and the media")
    add_list(p, "--suite", metavar="NAMES", help="suites to check (default: the tasks of the task YAMLs under "
                                                 "--data-root and --tasks-file, plus negbench when its task "
                                                 "files are there or no YAML names other tasks)")
    add_tasks(p)
    add_list(p, "--tasks-file", metavar="YAMLS", help="also load and check the tasks of these YAMLs")
    p.add_argument("--path-map", action="append", default=[], metavar="OLD=NEW",
                   help="rewrite media paths starting with OLD to start with NEW (repeatable); "
                        "wins over the automatic foreign-prefix rewrite")
    p.set_defaults(_data=run_check)


def _add_download(sub) -> None:
    from negbench.inputs.download import DOWNLOADABLE  # light: no torch at import

    p = sub.add_parser("download", help="download, verify (md5) and unpack media that need no registration",
                       formatter_class=HelpFormatter, allow_abbrev=False)
    p.add_argument("--data-root", required=True, help="folder the archives are unpacked into")
    p.add_argument("--what", default=",".join(DOWNLOADABLE), help=f"comma list from {list(DOWNLOADABLE)}")
    p.add_argument("--mirror", default=None,
                   help="base URL serving the same archive names (checksums still checked)")
    p.add_argument("--retries", type=int, default=2, help="resumptions of an interrupted transfer in this run")
    add_progress(p)
    p.set_defaults(_data=run_download)


def _add_import(sub) -> None:
    p = sub.add_parser("import", help="place the authors' CSV release (folder or zip, any nesting) under "
                                      "the names the task specs expect; writes a manifest with sha256s",
                       formatter_class=HelpFormatter, allow_abbrev=False)
    p.add_argument("path", help="the release as downloaded: a folder or a .zip")
    p.add_argument("--data-root", required=True, help="folder the CSVs are placed under")
    p.add_argument("--force", action="store_true", help="replace CSVs already there with other content")
    p.set_defaults(_data=run_import)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="data_command", metavar="{check,download,import}", required=True)
    _add_check(sub)
    _add_download(sub)
    _add_import(sub)


def _split(text: str) -> list[str]:
    return [t.strip() for t in (text or "").split(",") if t.strip()]


def _specs(args) -> tuple[list, str]:
    """The tasks `data check` checks, and a note on what it left out ('' if nothing). --tasks or
    --suite: those. Else, as `eval` and `tasks` do, the tasks of the YAMLs under --data-root
    (a built suite's tasks.yaml, imported benchmarks) and of --tasks-file, plus the NegBench suite
    when any of its task files is there (or when no YAML names other tasks)."""
    from pathlib import Path

    from negbench.inputs.tasks import expand_tasks, load_task_dir, load_task_file

    found = load_task_dir(args.data_root) if Path(args.data_root).expanduser().is_dir() else []
    for f in getattr(args, "tasks_file", []) or []:
        found += load_task_file(f)
    tasks, suites = list(getattr(args, "tasks", []) or []), list(getattr(args, "suite", []) or [])
    if tasks or suites:
        return expand_tasks(tasks, suites), ""
    negbench = expand_tasks(suites=["negbench"])
    if not found:
        return negbench, ""
    found = list({s.name: s for s in found}.values())
    if any(s.resolve_file(args.data_root).is_file() for s in negbench):
        return list({s.name: s for s in negbench + found}.values()), ""
    return found, (f"(the NegBench suite's {len(negbench)} tasks are not checked: none of their task files is "
                   f"under {args.data_root}; `--suite negbench` checks them)")


def run_check(args) -> int:
    from negbench.inputs.paths import parse_path_map
    from negbench.inputs.release import check_release, format_check

    specs, note = _specs(args)
    statuses = check_release(specs, args.data_root, parse_path_map(args.path_map))
    print(format_check(statuses, args.data_root))
    if note:
        print(note)
    return 0 if any(s.ready for s in statuses) else 1


def run_download(args) -> int:
    from negbench.inputs.download import download_media

    done = download_media(_split(args.what), args.data_root, mirror=args.mirror, retries=args.retries,
                          progress=not args.no_progress)
    for name, folders in done.items():
        print(f"{name}: ready under {args.data_root}: {', '.join(folders)}")
    return 0


def run_import(args) -> int:
    from negbench.inputs.release import MANIFEST_NAME, import_release
    from negbench.inputs.tasks import expand_tasks, load_builtin_tasks, TASKS

    load_builtin_tasks()
    specs = expand_tasks([n for n in TASKS.names()])
    manifest = import_release(args.path, args.data_root, specs, force=args.force)
    for f in manifest["files"]:
        print(f"{f['task']:<48} {f['file']}  <- {f['from']}")
    print(f"{len(manifest['files'])} task files placed; {len(manifest['unmatched'])} CSVs no task names"
          + (": " + ", ".join(manifest["unmatched"]) if manifest["unmatched"] else ""))
    print(f"manifest: {args.data_root}/{MANIFEST_NAME}")
    return 0


def run(args: argparse.Namespace) -> int:
    return args._data(args)
