"""`negbench probe-text --model MODEL`: how a text encoder represents negation."""
from __future__ import annotations

import argparse

from negbench.cli._common import add_list

HELP = "probe a text encoder's negation: 'X' vs 'no X' cosines, linear probes, PCA plot"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True,
                        help="negbench model string (builtin:DIR, openclip:..., hf:...) or st:PATH_OR_ID "
                             "for a sentence-transformers encoder (st:all-MiniLM-L6-v2 works offline)")
    add_list(parser, "--objects", metavar="NOUNS", help="nouns to probe (default: NegWorld's 24)")
    parser.add_argument("--out", default=None, help="folder for probe.json and probe_pca.png")
    parser.add_argument("--templates", default=None, help="template JSON (default: the shipped one)")
    parser.add_argument("--folds", type=int, default=5, help="cross-validation folds of the linear probes")
    parser.add_argument("--seed", type=int, default=0, help="seed of the probe splits")
    parser.add_argument("--device", default=None, help="torch device (default: cpu for st:, else best available)")


def run(args: argparse.Namespace) -> int:
    import sys

    from negbench.analysis.probe import TEMPLATES_FILE, probe_text, summary_lines

    # loading a text tower can take a minute before the first bar: say what is happening
    print(f"probe-text: loading {args.model} and encoding the probe captions ...", file=sys.stderr, flush=True)
    res = probe_text(args.model, args.objects or None, out_dir=args.out, templates=args.templates or TEMPLATES_FILE,
                     folds=args.folds, seed=args.seed, device=args.device)
    print("\n".join(summary_lines(res)))
    if args.out:
        print(f"written: {args.out}/probe.json" + (f", {res['pca']['plot']}" if res["pca"]["plot"] else ""))
    else:
        print("nothing written (pass --out DIR for probe.json and the PCA plot)")
    return 0
