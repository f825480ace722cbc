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


class Parser(argparse.ArgumentParser):
    """argparse's parser with a one-line error: `negbench eval: error: MESSAGE (see ...)`, exit 2.
    argparse prints the whole usage first (about 20 lines for `eval`), which buries the one line
    that says what is wrong (a did-you-mean, the allowed values); `--help` still prints it all.
    Subparsers made from this parser are of this class too (add_subparsers' default)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (`{self.prog} --help` lists the flags)\n")


def make_parser(prog: str, description: str) -> argparse.ArgumentParser:
    """The top-level parser with the project's formatter and no prefix matching."""
    return Parser(prog=prog, description=description, formatter_class=HelpFormatter, allow_abbrev=False)


def add_subparser(sub, name: str, help: str, description: str | None = None,
                  add_help: bool = True) -> argparse.ArgumentParser:
    """A subcommand parser that follows the same conventions as the top-level one. `help` is plain
    text ('95% CI'): argparse %-formats a command's help in the top-level listing, so '%' is escaped.
    add_help=False: the command adds its own -h/--help (build's shows only the chosen source's options)."""
    return sub.add_parser(name, help=help.replace("%", "%%"), description=description or help,
                          formatter_class=HelpFormatter, allow_abbrev=False, add_help=add_help)


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
    unset = ("none: an object a caption does not name is taken as absent, unverified (a corpus `objects` column "
             "is trusted)") if default is None else "%(default)s"
    parser.add_argument("--verifier", default=default, choices=VERIFIER_NAMES,
                        help="absence verifier for negatives: annotations (exhaustive labels), captions (not named "
                             "= absent), recogniser (a folder from `negbench recogniser`), owl (open-vocabulary "
                             f"detector), clip (image-text score) (default: {unset})")
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


# ---------------------------------------------------------------- did you mean (unknown flags)

# Spellings of lm-evaluation-harness, CLIP_benchmark and open_clip users type by habit -> what
# negbench calls the same thing. A value is a flag name (suggested when the subcommand has it)
# or a sentence (said as is). Checked before close-match guessing: `--pretrained` is not a typo.
FOREIGN_FLAGS = {
    "--output_path": "--out", "--output-path": "--out", "--output": "--out", "--output_dir": "--out",
    "--output-dir": "--out", "--results_dir": "--out", "--dataset": "--tasks", "--datasets": "--tasks",
    "--task_name": "--tasks", "--include_path": "--tasks-file", "--dataset_root": "--data-root",
    "--dataset-root": "--data-root", "--data_dir": "--data-root", "--data-dir": "--data-root",
    "--batch_size": "--batch-size", "--num_workers": "--num-workers", "--workers": "--num-workers",
    "--use_cache": "--cache-dir", "--bootstrap_iters": "--bootstrap-samples",
    "--pretrained": "a model is one string: --model openclip:ARCH@TAG (e.g. openclip:ViT-B-32@openai; "
                    "a local file: openclip:ViT-B-32@/ckpt/negclip.pth; transformers: hf:ID_OR_DIR)",
    "--model_args": "a model is one string: --model openclip:ARCH@TAG, hf:ID_OR_DIR or builtin:DIR "
                    "(`negbench models` lists known ones)",
    "--model_type": "the backend is the model string's prefix: --model openclip:ARCH@TAG | hf:ID_OR_DIR | "
                    "builtin:DIR | vlm:hf:ID_OR_DIR",
    "--log_samples": "per-item predictions are always written (a Parquet beside each results JSON)",
    "--num_fewshot": "negbench's tasks are zero-shot; there is no few-shot setting",
    "--recall_k": "R@1, R@5 and R@10 are always reported",
}


def _with_value(argv: Sequence[str], flag: str) -> str | None:
    """The value given to `flag` in argv ('--flag V' or '--flag=V'), or None."""
    for i, a in enumerate(argv):
        if a == flag and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith(flag + "="):
            return a.split("=", 1)[1]
    return None


def _model_string_hint(argv: Sequence[str]) -> str | None:
    """CLIP_benchmark's `--model ViT-B-32 --pretrained openai` written as negbench's one string."""
    arch, tag = _with_value(argv, "--model"), _with_value(argv, "--pretrained")
    if arch and tag and ":" not in arch:
        return f"--model openclip:{arch}@{tag}"
    return None


def suggest_flag(unknown: str, known: Sequence[str], argv: Sequence[str] = ()) -> str | None:
    """What to say about an unknown flag: 'did you mean --out?' or how negbench says it; None
    when nothing is close. `known`: the option strings of the subcommand being parsed."""
    import difflib

    flag = unknown.split("=", 1)[0]
    if not flag.startswith("-"):
        return None
    if flag == "--pretrained" and _model_string_hint(argv):
        return f"did you mean {_model_string_hint(argv)}? (negbench names a model by one string)"
    foreign = FOREIGN_FLAGS.get(flag)
    if foreign and foreign.startswith("--"):
        if foreign in known:
            return f"did you mean {foreign}?"
    elif foreign:
        return foreign
    dashed = "--" + flag.lstrip("-").replace("_", "-")
    if dashed in known:
        return f"did you mean {dashed}?"
    close = difflib.get_close_matches(dashed, [k for k in known if k.startswith("--")], n=1, cutoff=0.75)
    return f"did you mean {close[0]}?" if close else None


def unknown_flags_message(extras: Sequence[str], parser: argparse.ArgumentParser, argv: Sequence[str]) -> str:
    """'--output_path: did you mean --out? (unrecognized arguments: --output_path)' for parser.error:
    the suggestion first, where a reader looks."""
    known = [s for a in parser._actions for s in a.option_strings]
    hints = [f"{e.split('=', 1)[0]}: {h}" for e in extras if (h := suggest_flag(e, known, argv))]
    unknown = f"unrecognized arguments: {' '.join(extras)}"
    return f"{'; '.join(hints)} ({unknown})" if hints else unknown


def accept_underscores(argv: Sequence[str], known: Sequence[str]) -> list[str]:
    """`--batch_size 8` -> `--batch-size 8`: the underscore spelling of one of this command's own
    flags (lm-eval's and CLIP_benchmark's habit) is that flag. Other spellings stay as typed, for
    the did-you-mean of unknown_flags_message. Values are never touched (a value may hold '_')."""
    known_set = set(known)
    out = []
    for token in argv:
        flag, eq, value = token.partition("=")
        dashed = flag.replace("_", "-")
        if token == "--":  # everything after it is a value
            out += argv[len(out):]
            break
        if flag.startswith("--") and "_" in flag and flag not in known_set and dashed in known_set:
            token = dashed + eq + value
        out.append(token)
    return out


def suggest_command(name: str, commands: Sequence[str]) -> str | None:
    """'evaluate' -> 'eval' (lm-eval's and CLIP_benchmark's verbs included)."""
    import difflib

    foreign = {"evaluate": "eval", "run": "eval", "train": "finetune", "download": "data", "results": "table",
               "leaderboard": "table", "list": "tasks", "build_benchmark": "build", "generate": "world"}
    if foreign.get(name) in commands:
        return foreign[name]
    close = difflib.get_close_matches(name, list(commands), n=1, cutoff=0.6)
    return close[0] if close else None
