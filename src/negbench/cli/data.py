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
    add_list(p, "--suite", metavar="NAMES", help="suites to check (default: negbench)")
    add_tasks(p)
    add_list(p, "--tasks-file", metavar="YAMLS", help="also load task specs from these YAMLs")
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


def _specs(args):
    from negbench.inputs.tasks import expand_tasks, load_task_file

    for f in getattr(args, "tasks_file", []) or []:
        load_task_file(f)
    tasks = list(getattr(args, "tasks", []) or [])
    return expand_tasks(tasks, [] if tasks else (list(getattr(args, "suite", []) or []) or ["negbench"]))


def run_check(args) -> int:
    from negbench.inputs.paths import parse_path_map
    from negbench.inputs.release import check_release, format_check

    statuses = check_release(_specs(args), args.data_root, parse_path_map(args.path_map))
    print(format_check(statuses, args.data_root))
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
