"""`negbench world`: generate or inspect NegWorld (negbench.world.generate_world / contact_sheet)."""
from __future__ import annotations

import argparse
from pathlib import Path

from negbench.cli._common import add_subparser

HELP = "generate or inspect NegWorld, the offline procedural dataset"

# flag -> generate_world override; defaults come from the size preset, never from here
_COUNT_FLAGS = {
    "--n-train": ("n_train", "COCO/VOC train images"),
    "--n-val": ("n_val", "COCO/VOC val images"),
    "--n-test": ("n_test", "COCO/VOC test images (the held-out evaluation split)"),
    "--n-corpus": ("n_corpus", "caption-corpus images"),
    "--n-videos": ("n_videos", "MSR-VTT-style clips (split 60/10/30 train/validate/test)"),
    "--n-xrays": ("n_xrays", "CheXpert-style films (30%% go to valid)"),
    "--n-frames": ("n_frames", "frames per clip (default: 16)"),
    "--fps": ("fps", "clip frame rate (default: 8)"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="world_command", metavar="{generate,show}")
    gen = add_subparser(sub, "generate", help="write a NegWorld folder", description="Write a NegWorld folder "
                         "(COCO + VOC, MSR-VTT, CheXpert, caption corpus). A folder that already holds the "
                         "same world is left as is; an interrupted run resumes by part.")
    gen.add_argument("--out", required=True, type=Path, help="output folder")
    gen.add_argument("--seed", type=int, default=0, help="same seed: same world")
    gen.add_argument("--size", choices=("tiny", "small", "full"), default="small",
                     help="size preset (tiny: seconds, for tests; small: the demo; full: a longer study)")
    gen.add_argument("--resolution", type=int, default=None, help="image side in px (default: 64; e.g. 96, 128, 224)")
    for flag, (dest, help_) in _COUNT_FLAGS.items():
        gen.add_argument(flag, dest=dest, type=int, default=None,
                         help=help_ if "default" in help_ else help_ + " (default: from --size)")
    gen.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    gen.add_argument("--overwrite", action="store_true", help="replace a different world already in --out")
    gen.add_argument("--no-progress", action="store_true", help="no progress bar")

    show = add_subparser(sub, "show", help="write a contact sheet PNG with boxes and captions")
    show.add_argument("dir", type=Path, help="a NegWorld folder")
    show.add_argument("--n", type=int, default=16, help="items to show")
    show.add_argument("--out", type=Path, default=None, help="PNG path (default DIR/contact_sheet_DATASET.png)")
    show.add_argument("--dataset", choices=("coco", "corpus", "msrvtt", "chexpert"), default="coco",
                      help="which of the world's datasets to show")
    show.add_argument("--split", default="test", help="COCO split")
    parser.set_defaults(_world_parser=parser)


def run(args: argparse.Namespace) -> int:
    if args.world_command == "generate":
        import time

        from negbench.world import generate_world

        overrides = {dest: getattr(args, dest) for dest, _ in _COUNT_FLAGS.values()}
        overrides["resolution"] = args.resolution
        overrides = {k: v for k, v in overrides.items() if v is not None}
        t0 = time.perf_counter()
        manifest = generate_world(args.out, seed=args.seed, size=args.size, workers=args.workers,
                                  overwrite=args.overwrite, progress=not args.no_progress, **overrides)
        print(_generated_lines(args.out, time.perf_counter() - t0, manifest["counts"]))
        return 0
    if args.world_command == "show":
        from negbench.world.sheet import contact_sheet

        path = contact_sheet(args.dir, out=args.out, n=args.n, dataset=args.dataset, split=args.split)
        print(path)
        return 0
    args._world_parser.print_help()
    return 2


def _generated_lines(out, seconds: float, counts: dict) -> str:
    """What `world generate` wrote, one line per dataset and split (the full counts: OUT/world.json)."""
    lines = [f"NegWorld written to {out} in {seconds:.1f}s (manifest: {out}/world.json)"]
    for dataset, value in sorted(counts.items()):
        if isinstance(value, dict) and all(isinstance(v, dict) for v in value.values()):
            parts = [f"{split}: " + ", ".join(f"{n} {what}" for what, n in sorted(c.items()))
                     for split, c in sorted(value.items())]
        elif isinstance(value, dict):
            parts = [", ".join(f"{n} {what}" for what, n in sorted(value.items()))]
        else:
            parts = [str(value)]
        lines.append(f"  {dataset:<10} " + "; ".join(parts))
    return "\n".join(lines)
