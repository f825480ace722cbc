"""`negbench` console script: subcommand -> typed arguments -> Python API.

Each subcommand lives in negbench/cli/<name>.py with HELP, add_arguments(parser) and
run(args) -> int. Those modules import only argparse at top level; heavy imports (torch,
open_clip, transformers) happen inside run(), so `negbench --help` answers instantly.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from negbench import __version__

# subcommand -> module, in the order a user meets them
COMMANDS = {
    "demo": "negbench.cli.demo",
    "eval": "negbench.cli.eval",
    "table": "negbench.cli.table",
    "tasks": "negbench.cli.tasks",
    "data": "negbench.cli.data",
    "world": "negbench.cli.world",
    "build": "negbench.cli.build",
    "pretrain": "negbench.cli.pretrain",
    "recogniser": "negbench.cli.recogniser",
    "negdata": "negbench.cli.negdata",
    "finetune": "negbench.cli.finetune",
    "report": "negbench.cli.report",
    "probe-text": "negbench.cli.probe",
    "import-benchmark": "negbench.cli.import_benchmark", "models": "negbench.cli.models",
}


def build_parser() -> argparse.ArgumentParser:
    from negbench.cli._common import add_subparser, make_parser

    parser = make_parser("negbench", "Measure and fix negation understanding in vision-language models (NegBench).")
    parser.add_argument("--version", action="version", version=f"negbench {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="debug logging, and third-party progress bars and INFO logs")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name != module_name:  # a real missing dependency: let it surface
                raise
            continue  # subcommand not installed in this build (tests check all are present)
        cmd = add_subparser(sub, name, module.HELP, add_help=getattr(module, "ADD_HELP", True))
        module.add_arguments(cmd)
        cmd.set_defaults(_run=module.run)
    return parser


def configure_output(verbose: bool) -> None:
    """negbench's own INFO lines always; other libraries' INFO logs and progress bars
    (transformers' "Loading weights", huggingface_hub downloads, matplotlib's font cache)
    only with -v, so the output a user reads is negbench's."""
    if not sys.stderr.isatty():  # a log file: a bar redraw every 30 s, not thousands of fragments
        os.environ.setdefault("TQDM_MININTERVAL", "30")
    if not verbose:  # read by transformers / huggingface_hub when they are first imported
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("negbench").setLevel(logging.DEBUG if verbose else logging.INFO)


def _innermost_parser(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.ArgumentParser:
    """The (sub)subcommand parser argv selects (`negbench data check ...` -> data check's)."""
    for token in argv:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if subs and token in subs[0].choices:
            parser = subs[0].choices[token]
    return parser


def parse_args(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """parse_args, with a did-you-mean for an unknown command or flag (lm-eval's and
    CLIP_benchmark's spellings included: --output_path -> --out, --pretrained -> the model string);
    the underscore spelling of a flag of the command is that flag (--batch_size = --batch-size)."""
    from negbench.cli._common import accept_underscores, suggest_command, unknown_flags_message

    command = next((a for a in argv if not a.startswith("-")), None)
    if command is not None and command not in COMMANDS:
        close = suggest_command(command, list(COMMANDS))
        parser.error(f"unknown command {command!r}" + (f"; did you mean {close!r}?" if close else "")
                     + f" (commands: {', '.join(COMMANDS)})")
    # unknown flags first: argparse would otherwise report a missing required flag that the user
    # did give, in another spelling (`data check --data_root X`)
    sub = _innermost_parser(parser, argv)
    known = {s for a in sub._actions for s in a.option_strings}
    argv = accept_underscores(argv, known)  # --batch_size is --batch-size
    unknown = [a for a in argv if a.startswith("--") and a != "--" and a.split("=", 1)[0] not in known]
    if unknown and sub is not parser:
        sub.error(unknown_flags_message(unknown, sub, argv))
    args, extras = parser.parse_known_args(argv)
    if extras:
        sub.error(unknown_flags_message(extras, sub, argv))
    return args


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parse_args(parser, list(sys.argv[1:] if argv is None else argv))
    configure_output(args.verbose)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    from negbench.core.reporting import run_reporting_errors

    return run_reporting_errors(f"negbench {args.command}", lambda: args._run(args), args.verbose)


if __name__ == "__main__":
    sys.exit(main())
