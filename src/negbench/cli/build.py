"""`negbench build`: turn an annotated dataset into NegBench task files (+ tasks.yaml)."""
from __future__ import annotations

import argparse

HELP = "build NegBench task files (MCQ, negated retrieval, binary) from COCO, VOC, MSR-VTT, CheXpert, CSV or NegWorld"
SOURCES = ("coco", "voc", "msrvtt", "chexpert", "csv", "world", "merge")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", choices=SOURCES,
                        help="dataset format; 'world' builds the whole suite from a NegWorld folder; "
                             "'merge' joins the --shard outputs found in --out")
    parser.add_argument("--src", help="dataset folder or file (not needed for 'merge')")
    parser.add_argument("--out", required=True, help="output folder for task files, manifests and tasks.yaml")
    parser.add_argument("--task", default="mcq,retrieval,binary",
                        help="comma list of mcq, retrieval (negated + plain), binary (CheXpert-style), hardneg "
                             "(default: %(default)s; tasks a source cannot support are skipped and reported)")
    parser.add_argument("--template-set", default="default",
                        help="comma list of wording sets: default, no, not, without, contain, neither_nor, except")
    parser.add_argument("--order", default="affneg", help="negated retrieval order(s): affneg, negaff (comma list)")
    parser.add_argument("--split", default=None, help="dataset split (default: val for COCO, test for VOC/MSR-VTT, "
                                                      "valid for CheXpert)")
    parser.add_argument("--vocab", default=None,
                        help="category vocabulary file ('name, synonym, ...' per line); 'builtin' = COCO-80 + VOC-20; "
                             "'builtin,FILE' merges both")
    parser.add_argument("--verifier", default="annotations", choices=("annotations", "captions", "owl", "clip"),
                        help="absence verifier for negatives (default: %(default)s)")
    parser.add_argument("--verifier-model", default=None, help="model for owl (HF id/folder) or clip (model string)")
    parser.add_argument("--verifier-threshold", type=float, default=None, help="owl default 0.1; clip default 0.2")
    parser.add_argument("--paraphrase", default="none", choices=("none", "openai"),
                        help="also write LLM-paraphrased variants through an OpenAI-compatible endpoint")
    parser.add_argument("--llm-url", default=None, help="e.g. http://localhost:8000/v1 (key from OPENAI_API_KEY "
                                                        "or NEGBENCH_LLM_KEY)")
    parser.add_argument("--llm-model", default=None, help="model name served by the endpoint")
    parser.add_argument("--llm-cache", default=None, help="paraphrase cache folder (default: OUT/.llm_cache)")
    parser.add_argument("--llm-concurrency", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shard", default=None, help="i/n: build only block i of n (join with 'negbench build merge')")
    parser.add_argument("--name", default=None, help="task-name prefix and suite name (default: built; world: world)")
    parser.add_argument("--questions-per-image", type=int, default=3)
    parser.add_argument("--skip-invalid", action="store_true", help="drop bad records (counted in manifests) "
                                                                     "instead of stopping at the first")


def _list(text: str) -> tuple[str, ...]:
    return tuple(t.strip() for t in text.split(",") if t.strip())


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
        path = build_world_suite(args.src, args.out, seed=args.seed, template_sets=_list(args.template_set)
                                 if args.template_set != "default" else ("default", "without"),
                                 name=args.name or "world", paraphraser=paraphraser,
                                 questions_per_image=args.questions_per_image)
        print(f"wrote the NegBench-World suite: {path}\n"
              f"  negbench eval --tasks-file {path} --suite {args.name or 'world'} --model MODEL")
        return 0
    vopts = {}
    if args.verifier_model:
        vopts["model"] = args.verifier_model
    if args.verifier_threshold is not None:
        vopts["threshold"] = args.verifier_threshold
    res = build_benchmark(args.source, args.src, args.out, tasks=_list(args.task),
                          template_sets=_list(args.template_set), seed=args.seed, split=args.split,
                          vocab=args.vocab, verifier=args.verifier, verifier_options=vopts,
                          paraphraser=paraphraser, shard=parse_shard(args.shard), skip_invalid=args.skip_invalid,
                          name=args.name or "built", questions_per_image=args.questions_per_image,
                          orders=_list(args.order))
    for f in res.files:
        print(f"wrote {f}")
    for s in res.skipped_tasks:
        print(f"skipped: {s}")
    if res.drops:
        print("dropped: " + ", ".join(f"{k}={v}" for k, v in sorted(res.drops.items())))
    if res.tasks_yaml:
        print(f"tasks: {res.tasks_yaml}\n  negbench eval --tasks-file {res.tasks_yaml} --suite "
              f"{args.name or 'built'} --model MODEL")
    else:
        print(f"shard {args.shard} done; after all shards: negbench build merge --out {args.out}")
    return 0
