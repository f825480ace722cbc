"""`negbench probe-text --model MODEL`: how a text encoder represents negation."""
from __future__ import annotations

import argparse

HELP = "probe a text encoder's negation: 'X' vs 'no X' cosines, linear probes, PCA plot"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True,
                        help="negbench model string (builtin:DIR, openclip:..., hf:...) or st:PATH_OR_ID "
                             "for a sentence-transformers encoder (st:all-MiniLM-L6-v2 works offline)")
    parser.add_argument("--objects", nargs="+", default=None, help="nouns to probe (default: NegWorld's 24)")
    parser.add_argument("--out", default=None, help="folder for probe.json and probe_pca.png")
    parser.add_argument("--templates", default=None, help="template JSON (default: the shipped one)")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default=None)


def run(args: argparse.Namespace) -> int:
    from negbench.analysis.probe import TEMPLATES_FILE, probe_text, summary_lines

    res = probe_text(args.model, args.objects, out_dir=args.out, templates=args.templates or TEMPLATES_FILE,
                     folds=args.folds, seed=args.seed, device=args.device)
    print("\n".join(summary_lines(res)))
    if args.out:
        print(f"written: {args.out}/probe.json" + (f", {res['pca']['plot']}" if res["pca"]["plot"] else ""))
    return 0
