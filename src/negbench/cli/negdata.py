"""`negbench negdata`: NegCap + NegMCQ fine-tuning data (sharded Parquet) from a caption corpus."""
from __future__ import annotations

import argparse

import sys

from negbench.cli._common import add_list, add_llm_options, add_verifier_options, verifier_options

HELP = "make NegCap / NegMCQ negation fine-tuning data from a caption corpus (CC12M-style TSV/CSV/Parquet)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--corpus", required=True, help="TSV/CSV/Parquet with a path column and a caption column "
                                                        "(optional 'objects' column)")
    parser.add_argument("--out", required=True, help="output folder (negcap/ and negmcq/ are made in it)")
    parser.add_argument("--images", default=None, help="folder the corpus paths are relative to "
                                                       "(default: the corpus file's folder)")
    parser.add_argument("--vocab", default=None, help="vocabulary file ('name, synonym, ...' per line; "
                        "NegWorld: WORLD/vocab.txt); default: built-in COCO-80 + VOC-20")
    add_list(parser, "--template-set", metavar="SETS",
             help="negation wordings to generate (default: default,no,not); hold some out (e.g. without, "
                  "contain) to test generalisation")
    parser.add_argument("--captions-per-image", type=int, default=3, help="NegCap captions made per corpus image")
    parser.add_argument("--chunk-rows", type=int, default=50_000, help="corpus rows per output part")
    parser.add_argument("--max-rows", type=int, default=None,
                        help="use only the first N corpus rows (co-occurrence statistics still use all)")
    add_llm_options(parser, url_help="OpenAI-compatible endpoint to rewrite NegCap captions",
                    fallback_help="exit 0 even when no LLM rewrite was usable (captions stay templated)")
    add_verifier_options(parser, default=None)
    parser.add_argument("--shard", default=None, help="i/n: process every n-th chunk starting at i")
    parser.add_argument("--seed", type=int, default=0, help="seed of every random choice (same seed: same data)")


def run(args: argparse.Namespace) -> int:
    from collections import Counter
    from pathlib import Path

    from negbench.core.errors import ConfigError
    from negbench.construct.concepts import make_verifier
    from negbench.construct.negdata import DEFAULT_TEMPLATE_SETS, generate_negdata

    llm = None
    if args.llm_url:
        if not args.llm_model:
            raise ConfigError("--llm-url needs --llm-model")
        from negbench.construct.paraphrase import OpenAIParaphraser
        llm = OpenAIParaphraser(args.llm_url, args.llm_model, cache_dir=str(Path(args.out) / ".llm_cache"),
                                concurrency=args.llm_concurrency, seed=args.seed, timeout=args.llm_timeout,
                                retries=args.llm_retries, allow_fallback=args.allow_fallback)
    sets = tuple(args.template_set) or DEFAULT_TEMPLATE_SETS
    verifier = make_verifier(args.verifier, **verifier_options(args)) if args.verifier else None
    m = generate_negdata(args.corpus, args.out, seed=args.seed, vocab=args.vocab, shard=args.shard,
                         template_sets=sets, llm=llm, verifier=verifier, captions_per_image=args.captions_per_image,
                         image_root=args.images, chunk_rows=args.chunk_rows, max_rows=args.max_rows, progress=True)
    c = m["counts"]
    print(f"NegCap: {c.get('negcap', 0)} captions, NegMCQ: {c.get('negmcq', 0)} questions from "
          f"{c.get('rows_in', 0)} corpus captions in {len(m['shards'])} parts -> {args.out}")
    if m["drops"]:
        print("dropped: " + ", ".join(f"{k}={v}" for k, v in m["drops"].items()))
    if verifier is None:   # the manifest says so too; a user reading only the console must not assume otherwise
        print("negatives: not verified against the images (an object a caption does not name is taken as absent; "
              "a corpus `objects` column, where present, is trusted); --verifier recogniser|owl|clip checks them")
    if llm is not None:
        llm.outcome(Counter({k[len("llm_"):]: v for k, v in m["drops"].items() if k.startswith("llm_")}),
                    f"NegCap in {args.out}")
    warning = vocab_warning(c.get("rows_in", 0), m["drops"].get("no_objects", 0), args.vocab)
    if warning:
        print(warning, file=sys.stderr)
    return 0


def vocab_warning(rows_in: int, no_objects: int, vocab: str | None) -> str | None:
    """More than 10% of rows naming no known object usually means the wrong vocabulary."""
    if not rows_in or no_objects / rows_in <= 0.10:
        return None
    hint = ("the default vocabulary is COCO-80 + VOC-20; pass --vocab FILE naming this corpus's objects "
            "(NegWorld: --vocab WORLD/vocab.txt)") if vocab is None else f"check that --vocab {vocab} covers them"
    return (f"warning: {no_objects} of {rows_in} corpus captions ({100 * no_objects / rows_in:.0f}%) name no "
            f"object of the vocabulary and were dropped; {hint}")
