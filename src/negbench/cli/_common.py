"""The conventions every `negbench` subcommand follows, in one place.

    from negbench.cli._common import add_out, add_progress, add_tasks, split_list

- parsers: `make_parser` / `add_subparser` set ArgumentDefaultsHelpFormatter (defaults shown
  from the code, "(default: None)" left out) and allow_abbrev=False, so `--tasks coco` can
  never silently become `--tasks-file coco`;
- multi-values: one convention, comma lists that may also be repeated
  (`--tasks a,b --tasks c` == `--tasks a,b,c`), parsed by `CommaList`;
- `--out` for every output folder (`add_out` keeps old names such as `--results-dir` as aliases);
- one progress flag, `--no-progress` (`--quiet` kept as an alias);
- only argparse here: importing this module must keep `negbench --help` instant.
"""
from __future__ import annotations

import argparse
from typing import Sequence

from negbench.core.lists import split_list  # noqa: F401  (the CLI's list convention)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each flag's default, except None/False (nothing worth printing) and help text
    that already says where its default comes from."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        d = action.default
        if d is None or d is False or d == [] or d is argparse.SUPPRESS or "default" in text:
            return text
        return super()._get_help_string(action)


class EpilogHelpFormatter(HelpFormatter, argparse.RawDescriptionHelpFormatter):
    """HelpFormatter that keeps the line breaks of the description and epilog (column lists)."""


def make_parser(prog: str, description: str) -> argparse.ArgumentParser:
    """The top-level parser with the project's formatter and no prefix matching."""
    return argparse.ArgumentParser(prog=prog, description=description, formatter_class=HelpFormatter,
                                   allow_abbrev=False)


def add_subparser(sub, name: str, help: str, description: str | None = None) -> argparse.ArgumentParser:
    """A subcommand parser that follows the same conventions as the top-level one."""
    return sub.add_parser(name, help=help, description=description or help, formatter_class=HelpFormatter,
                          allow_abbrev=False)


class CommaList(argparse.Action):
    """A comma list that may be repeated; the values accumulate in order."""

    def __call__(self, parser, namespace, values, option_string=None):
        current = list(getattr(namespace, self.dest, None) or [])
        setattr(namespace, self.dest, split_list(current + [values]))


def add_list(parser: argparse.ArgumentParser, *flags: str, metavar: str, help: str, **kw) -> None:
    """A comma-list flag (repeatable) under the project's one list convention."""
    parser.add_argument(*flags, action=CommaList, default=[], metavar=metavar,
                        help=help + " (comma list; repeatable)", **kw)


def add_tasks(parser: argparse.ArgumentParser) -> None:
    """--tasks a,b (repeatable; 'list' lists them) with the old --task kept as an alias."""
    add_list(parser, "--tasks", "--task", dest="tasks", metavar="NAMES",
             help="task names; `--tasks list` prints the registered tasks")


def add_out(parser: argparse.ArgumentParser, *aliases: str, help: str, **kw) -> None:
    """--out for an output folder; `aliases` are older names that still work."""
    parser.add_argument("--out", *aliases, dest="out", help=help, **kw)


def add_progress(parser: argparse.ArgumentParser) -> None:
    """The one progress flag: --no-progress (and its old name --quiet)."""
    parser.add_argument("--no-progress", "--quiet", dest="no_progress", action="store_true",
                        help="no progress bars")


def wants_listing(tasks: Sequence[str]) -> bool:
    """`--tasks list` asks for the listing instead of a run."""
    return list(tasks) == ["list"]


def load_model_clearly(model: str, **kwargs):
    """load_model: any backend failure is one ConfigError line naming the model (models.base)."""
    from negbench.models import load_model

    return load_model(model, **kwargs)


def add_llm_options(parser: argparse.ArgumentParser, *, url_help: str, fallback_help: str) -> None:
    """The LLM client's flags (paraphrasing in `build`, NegCap rewrites in `negdata`)."""
    parser.add_argument("--llm-url", default=None, help=url_help)
    parser.add_argument("--llm-model", default=None, help="model name served by --llm-url")
    parser.add_argument("--llm-concurrency", type=int, default=4, help="LLM requests in flight at once")
    parser.add_argument("--llm-timeout", type=float, default=60.0,
                        help="total seconds per LLM request (connect, headers and body together)")
    parser.add_argument("--llm-retries", type=int, default=3, help="retries of a failed LLM request (timeouts, 5xx)")
    parser.add_argument("--allow-fallback", action="store_true", help=fallback_help)


VERIFIER_NAMES = ("annotations", "captions", "recogniser", "owl", "clip")


def add_verifier_options(parser: argparse.ArgumentParser, *, default: str | None) -> None:
    """--verifier NAME, --verifier-model, --verifier-threshold: one shape for build and negdata."""
    parser.add_argument("--verifier", default=default, choices=VERIFIER_NAMES,
                        help="absence verifier for negatives: annotations (exhaustive labels), captions (not named "
                             "= absent), recogniser (a folder from `negbench recogniser`), owl (open-vocabulary "
                             "detector), clip (image-text score) (default: %(default)s)")
    parser.add_argument("--verifier-model", default=None,
                        help="recogniser folder, owl HF id/folder, or clip model string")
    parser.add_argument("--verifier-threshold", type=float, default=None,
                        help="override the verifier's threshold (recogniser: its calibrated one; owl 0.1; clip 0.2)")


def verifier_options(args: argparse.Namespace) -> dict:
    """Keyword arguments for negbench.construct.concepts.make_verifier from those flags."""
    opts = {}
    if args.verifier_model:
        opts["model"] = args.verifier_model
    if args.verifier_threshold is not None:
        opts["threshold"] = args.verifier_threshold
    return opts
