"""`negbench build`: turn an annotated dataset into NegBench task files (+ tasks.yaml)."""
from __future__ import annotations

import argparse
import sys

from negbench.cli._common import add_list, add_llm_options, add_verifier_options, verifier_options

HELP = ("build NegBench task files (MCQ, negated retrieval, binary) from COCO, VOC, MSR-VTT, CheXpert, CSV or NegWorld; "
        "hardneg-syn: generate the HardNeg-Syn image pairs with a diffusers model")
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
SOURCES = ("coco", "voc", "msrvtt", "chexpert", "csv", "world", "merge", "hardneg-syn")


ADD_HELP = False   # -h/--help is SourceHelp: `build coco --help` shows coco's options, not hardneg-syn's


class SourceHelp(argparse.Action):
    """-h/--help of `negbench build`: after a source (`build coco --help`), the options that source
    reads; alone (`build --help`), every option. argparse has read the source by the time it meets
    the flag, so the namespace names it."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        source = getattr(namespace, "source", None)
        if source is not None and source != "hardneg-syn":
            group = getattr(namespace, "hardneg_group", None)
            for action in getattr(namespace, "hardneg_only", ()):
                action.help = argparse.SUPPRESS
            if group is not None:
                group.title = group.description = None
        if source not in (None, "csv"):
            parser.epilog = None   # the csv columns concern the csv source only
        parser.print_help()
        parser.exit()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from negbench.cli._common import EpilogHelpFormatter

    parser.formatter_class, parser.epilog = EpilogHelpFormatter, CSV_COLUMNS  # the csv columns, verbatim
    parser.add_argument("-h", "--help", action=SourceHelp,
                        help="show this help and exit; after a source (build coco --help), only its options")
    parser.add_argument("source", choices=SOURCES,
                        help="dataset format; 'world' builds the whole suite from a NegWorld folder; "
                             "'merge' joins the --shard outputs found in --out; 'hardneg-syn' generates the "
                             "HardNeg-Syn image pairs (docs/hardneg_syn.md)")
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
    add_verifier_options(parser, default="auto")   # auto: annotations for datasets, clip for hardneg-syn
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
    hardneg_group = parser.add_argument_group(
        "hardneg-syn only", "negbench build hardneg-syn --generator diffusers:ID_OR_DIR (--pairs CSV | --from-release CSV) "
                       "--out DIR; --verifier auto means clip here (annotations for datasets); docs/hardneg_syn.md")
    parser.set_defaults(hardneg_only=add_hardneg_arguments(hardneg_group), hardneg_group=hardneg_group)


def add_hardneg_arguments(group) -> list[argparse.Action]:
    """The options of `build hardneg-syn` only; returned so another source refuses them instead of
    ignoring them (`build coco --steps 2` would otherwise look as if it did something)."""
    actions: list[argparse.Action] = []

    def add(*flags, **kwargs):
        actions.append(group.add_argument(*flags, **kwargs))   # add_argument returns the Action

    add("--generator", help="text-to-image model: diffusers:HUB_ID or diffusers:/pipeline/folder "
        "(any DiffusionPipeline, e.g. diffusers:stabilityai/sd-turbo)")
    add("--pairs", help="CSV of pairs: kept, removed[, pair_id] (the positive image shows both, "
        "the negative one kept only)")
    add("--from-release", action="append", metavar="CSV",
        help="a published synthetic CSV (synthetic_mcq*.csv, synthetic_retrieval_v1/v2.csv); "
        "repeatable; its pair ids and image names are reused")
    add("--max-tries", type=int, default=3, help="images per pair slot before the pair is dropped")
    add("--batch-size", type=int, default=8, help="images per pipeline call")
    add("--steps", type=int, default=None, help="inference steps (default: the pipeline's)")
    add("--guidance-scale", type=float, default=None,
        help="classifier-free guidance (default: the pipeline's; negative prompts act only above 1)")
    add("--size", type=int, default=None, help="image height and width (default: the pipeline's)")
    add("--precision", default="fp32", choices=("fp32", "fp16", "bf16"),
        help="pipeline dtype (fp16 needs a GPU)")
    add("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    add("--prompt-set", default="default", help="prompt set of data/templates/hardneg_syn.json")
    add("--no-verify", action="store_true",
        help="keep every image unchecked (speed runs; the manifests say verified: false)")
    return actions


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


def dataset_verifier(name: str) -> str:
    return "annotations" if name == "auto" else name


def refuse_hardneg_only(args: argparse.Namespace) -> None:
    """`build SOURCE` with an option only `build hardneg-syn` reads: one line naming it."""
    from negbench.core.errors import ConfigError

    given = [a.option_strings[0] for a in getattr(args, "hardneg_only", ())
             if getattr(args, a.dest, a.default) != a.default]
    if given:
        raise ConfigError(f"{', '.join(given)}: only `negbench build hardneg-syn` reads "
                          f"{'this option' if len(given) == 1 else 'these options'}; `build {args.source}` does not")


def run(args: argparse.Namespace) -> int:
    from negbench.construct.build import build_benchmark, merge_shards
    from negbench.core.errors import ConfigError
    from negbench.core.shards import parse_shard
    from negbench.world.suite import build_world_suite

    if args.source == "hardneg-syn":
        return run_hardneg(args)
    refuse_hardneg_only(args)
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
                          vocab=args.vocab, verifier=dataset_verifier(args.verifier), verifier_options=vopts,
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


def run_hardneg(args: argparse.Namespace) -> int:
    from negbench.construct.hardneg_syn import HardNegSynConfig, build_hardneg_syn
    from negbench.core.errors import ConfigError
    from negbench.core.shards import parse_shard

    if not args.generator:
        raise ConfigError("negbench build hardneg-syn needs --generator diffusers:ID_OR_DIR")
    if args.verifier in ("annotations", "captions"):
        raise ConfigError(f"--verifier {args.verifier}: cannot look at generated images; use clip, owl or recogniser")
    verifier = "clip" if args.verifier == "auto" else args.verifier
    vopts = verifier_options(args)
    if args.device:     # the verifier looks at the images where they are made
        vopts["device"] = args.device
    cfg = HardNegSynConfig(generator=args.generator, out=args.out, pairs=args.pairs,
                           from_release=tuple(args.from_release or ()),
                           verifier=None if args.no_verify else verifier,
                           verifier_options=vopts, max_tries=args.max_tries, seed=args.seed,
                           batch_size=args.batch_size, steps=args.steps, guidance_scale=args.guidance_scale,
                           height=args.size, width=args.size, precision=args.precision, device=args.device,
                           prompt_set=args.prompt_set, shard=parse_shard(args.shard), skip_invalid=args.skip_invalid,
                           progress=sys.stderr.isatty())
    res = build_hardneg_syn(cfg)
    speed = f"; {res.images_per_s:.2f} images/s" if res.images_per_s else ""
    if not res.files:
        print(f"shard {args.shard} done ({res.counts}){speed}; after all shards, rerun without --shard "
              f"to write the task files")
        return 0
    for f in res.files:
        print(f"wrote {f}")
    c = res.counts
    kept = (f"{c['pairs_kept']} kept (not verified: --no-verify)" if args.no_verify
            else f"{c['pairs_verified']} verified")
    print(f"pairs: {kept}, {c['pairs_dropped']} dropped after --max-tries, "
          f"{c['pairs_not_generated']} not generated; {c['pairs_regenerated']} needed new seeds{speed}")
    if res.drops:
        print("dropped: " + ", ".join(f"{k}={v}" for k, v in sorted(res.drops.items())))
    tasks = "hardneg_syn_mcq,hardneg_syn_mcq_templated,hardneg_syn_retrieval,hardneg_syn_retrieval_templated" \
        if args.from_release else "hardneg_syn_mcq_templated,hardneg_syn_retrieval_templated"
    print(f"manifest: {res.manifest}\n  negbench eval --tasks {tasks} --data-root {args.out} --model MODEL")
    return 0 if c["pairs_kept"] else 1
