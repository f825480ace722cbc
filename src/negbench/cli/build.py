"""`negbench build`: turn an annotated dataset into NegBench task files (+ tasks.yaml)."""
from __future__ import annotations

import argparse
import sys

from negbench.cli._common import add_list, add_llm_options, add_verifier_options, verifier_options

HELP = "build NegBench task files (MCQ, negated retrieval, binary) from COCO, VOC, MSR-VTT, CheXpert, CSV or NegWorld"
CSV_COLUMNS = """\
columns of a `csv` source (CSV, TSV or Parquet; extra columns are ignored, any order; first match wins):
  media path   filepath | image_path | image | path | file | url | video_id   (required)
  captions     captions (a JSON / Python-literal list)  or  caption | text | title | alt_text | sentence
               (one per row; rows with the same path are grouped)            (required)
  objects      exhaustive object labels per image: a list, or a ';' '|' ',' separated string.
               Optional, but without it objects come from the captions and absence cannot be
               verified by annotation: give `objects`, or pass --verifier captions|recogniser|owl|clip.
  split        optional; --split picks rows of one split
A header-less TSV (CC12M's url<TAB>caption) is read as path, caption."""
SOURCES = ("coco", "voc", "msrvtt", "chexpert", "csv", "world", "merge")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from negbench.cli._common import EpilogHelpFormatter

    parser.formatter_class, parser.epilog = EpilogHelpFormatter, CSV_COLUMNS  # the csv columns, verbatim
    parser.add_argument("source", choices=SOURCES,
                        help="dataset format; 'world' builds the whole suite from a NegWorld folder; "
                             "'merge' joins the --shard outputs found in --out")
    parser.add_argument("--src", help="dataset folder or file (not needed for 'merge')")
    parser.add_argument("--out", required=True, help="output folder for task files, manifests and tasks.yaml")
    add_list(parser, "--tasks", "--task", dest="tasks", metavar="KINDS",
             help="task kinds: mcq, retrieval (negated + plain), binary (CheXpert-style), hardneg "
                  "(default: mcq,retrieval,binary; kinds a source cannot support are skipped and reported)")
    add_list(parser, "--template-set", metavar="NAMES",
             help="wording sets: default, no, not, without, contain, neither_nor, except "
                  "(default: default; world: default,without)")
    add_list(parser, "--order", metavar="ORDERS", help="negated retrieval orders: affneg, negaff (default: affneg)")
    parser.add_argument("--split", default=None, help="dataset split (default: val for COCO, test for VOC/MSR-VTT, "
                                                      "valid for CheXpert)")
    parser.add_argument("--vocab", default=None,
                        help="category vocabulary file ('name, synonym, ...' per line); 'builtin' = COCO-80 + VOC-20; "
                             "'builtin,FILE' merges both")
    add_verifier_options(parser, default="annotations")
    parser.add_argument("--paraphrase", default="none", choices=("none", "openai"),
                        help="also write LLM-paraphrased variants through an OpenAI-compatible endpoint")
    parser.add_argument("--llm-cache", default=None, help="paraphrase cache folder (default: OUT/.llm_cache)")
    add_llm_options(parser, url_help="e.g. http://localhost:8000/v1 (key from OPENAI_API_KEY or NEGBENCH_LLM_KEY)",
                    fallback_help="when no paraphrase is usable, write the file labelled 'templated' instead of failing")
    parser.add_argument("--seed", type=int, default=0, help="seed of every random choice (same seed: same files)")
    parser.add_argument("--shard", default=None, help="i/n: build only block i of n (join with 'negbench build merge')")
    parser.add_argument("--name", default=None, help="task-name prefix and suite name (default: built; world: world)")
    parser.add_argument("--questions-per-image", type=int, default=3,
                        help="MCQ questions per image, one per sampled absent object")
    parser.add_argument("--layout", default="negbench", choices=("negbench", "authors"),
                        help="MCQ file layout: negbench (correct index shuffled, caption_types, one-object images "
                             "as modified_positive) or authors (as the authors' generator: correct option at index 0, "
                             "images with < 2 objects skipped, no trailing period; their evaluator scores it)")
    parser.add_argument("--skip-invalid", action="store_true", help="drop bad records (counted in manifests) "
                                                                     "instead of stopping at the first")


def empty_tasks(files) -> list[tuple[str, dict]]:
    """(file, drops) of every written task file that holds no items."""
    from negbench.core.io import read_json
    from negbench.inputs.formats import manifest_path

    out = []
    for f in files:
        m = manifest_path(f)
        man = read_json(m) if m.exists() else {}
        if (man.get("counts") or {}).get("items", 1) == 0:
            out.append((str(f), man.get("drops") or {}))
    return out


def explain_empty(source: str, empty) -> str:
    lines = [f"{len(empty)} task file(s) hold 0 items:"] + [f"  {f} (dropped: {d or 'nothing listed'})"
                                                            for f, d in empty]
    if source == "csv":
        lines.append("a csv source needs to know which objects each image shows to build negated questions: "
                     "add an `objects` column (exhaustive labels), or pass --verifier captions|recogniser|owl|clip so "
                     "absent objects can be verified; `negbench build --help` lists the columns")
    else:
        lines.append("no sample had both present and verifiably absent objects; check --vocab and --verifier")
    return "\n".join(lines)


def make_paraphraser(args, out_dir):
    if args.paraphrase == "none":
        return None
    from pathlib import Path
    from negbench.core.errors import ConfigError
    from negbench.construct.paraphrase import OpenAIParaphraser
    if not args.llm_url or not args.llm_model:
        raise ConfigError("--paraphrase openai needs --llm-url and --llm-model")
    cache = args.llm_cache or str(Path(out_dir) / ".llm_cache")
    return OpenAIParaphraser(args.llm_url, args.llm_model, cache_dir=cache, concurrency=args.llm_concurrency,
                             timeout=args.llm_timeout, retries=args.llm_retries, allow_fallback=args.allow_fallback,
                             seed=args.seed)


def run(args: argparse.Namespace) -> int:
    from negbench.construct.build import build_benchmark, merge_shards
    from negbench.core.errors import ConfigError
    from negbench.core.shards import parse_shard
    from negbench.world.suite import build_world_suite

    if args.source == "merge":
        path = merge_shards(args.out)
        print(f"merged shards; tasks: {path}")
        return 0
    if not args.src:
        raise ConfigError(f"negbench build {args.source} needs --src")
    paraphraser = make_paraphraser(args, args.out)
    if args.source == "world":
        path = build_world_suite(args.src, args.out, seed=args.seed, template_sets=tuple(args.template_set)
                                 if args.template_set else ("default", "without"),
                                 name=args.name or "world", paraphraser=paraphraser,
                                 questions_per_image=args.questions_per_image)
        print(f"wrote the NegBench-World suite: {path}\n"
              f"  negbench eval --tasks-file {path} --suite {args.name or 'world'} --model MODEL")
        return 0
    vopts = verifier_options(args)
    res = build_benchmark(args.source, args.src, args.out, tasks=tuple(args.tasks or ["mcq", "retrieval", "binary"]),
                          template_sets=tuple(args.template_set or ["default"]), seed=args.seed, split=args.split,
                          vocab=args.vocab, verifier=args.verifier, verifier_options=vopts,
                          paraphraser=paraphraser, shard=parse_shard(args.shard), skip_invalid=args.skip_invalid,
                          name=args.name or "built", questions_per_image=args.questions_per_image,
                          orders=tuple(args.order or ["affneg"]), layout=args.layout)
    for f in res.files:
        print(f"wrote {f}")
    for s in res.skipped_tasks:
        print(f"skipped: {s}")
    if res.drops:
        print("dropped: " + ", ".join(f"{k}={v}" for k, v in sorted(res.drops.items())))
    if getattr(paraphraser, "totals", None):
        print("paraphrase: " + ", ".join(f"{k}={v}" for k, v in sorted(paraphraser.totals.items())))
    empty = empty_tasks(res.files)
    if empty:
        print(explain_empty(args.source, empty), file=sys.stderr)
        return 1
    if res.tasks_yaml:
        print(f"tasks: {res.tasks_yaml}\n  negbench eval --tasks-file {res.tasks_yaml} --suite "
              f"{args.name or 'built'} --model MODEL")
    else:
        print(f"shard {args.shard} done; after all shards: negbench build merge --out {args.out}")
    return 0
