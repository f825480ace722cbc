"""`negbench recogniser`: train the object recogniser that verifies absence for `negdata`/`build`."""
from __future__ import annotations

import argparse

HELP = "train a multi-label object recogniser on an annotated dataset (absence verifier for caption-only corpora)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="model string whose image embeddings the recogniser reads "
                                                       "(e.g. the pretrained model that fine-tuning starts from)")
    parser.add_argument("--source", default="coco", help="annotated dataset reader: coco, voc, csv (with an "
                                                         "objects column), ... (default: %(default)s)")
    parser.add_argument("--data", required=True, help="the dataset folder (NegWorld: WORLD/coco)")
    parser.add_argument("--split", default="train", help="split to train on (default: %(default)s)")
    parser.add_argument("--vocab", default=None, help="vocabulary file (NegWorld: WORLD/vocab.txt)")
    parser.add_argument("--out", required=True, help="folder for recogniser.pt + recogniser.json")
    parser.add_argument("--keep-absent", type=float, default=0.9,
                        help="share of held-out absent objects the absence threshold verifies absent (lower: "
                             "fewer false negations, but only the easy negatives survive) (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the held-out split and the head's init")
    parser.add_argument("--device", default=None, help="torch device (default: best available)")


def run(args: argparse.Namespace) -> int:
    from negbench.construct.recogniser import RecogniserConfig, train_recogniser
    from negbench.inputs.sources import read_source
    from negbench.inputs.vocab import load_vocab

    kwargs = {"split": args.split} if args.source != "csv" else {}
    if args.vocab:
        kwargs["vocab"] = load_vocab(args.vocab)
    cfg = RecogniserConfig(model=args.model, keep_absent=args.keep_absent, seed=args.seed, device=args.device)
    data = read_source(args.source, args.data, **kwargs)
    meta = train_recogniser(data, args.out, cfg, progress=True)
    q = meta["held_out"]
    print(f"recogniser over {len(meta['categories'])} categories, trained on {meta['trained_on']['samples']} "
          f"{data.name} {data.split} images -> {args.out}\n"
          f"  absence threshold {meta['threshold']:.4f}: on {meta['trained_on']['held_out']} held-out images "
          f"{q['absent_verdicts_present']} of {q['absent_verdicts']} 'absent' verdicts were wrong, "
          f"{100 * q['absent_kept']:.1f}% of absent objects kept, present-object recall {100 * q['present_recall']:.1f}%")
    print(f"  use it: negbench negdata ... --verifier recogniser --verifier-model {args.out}")
    return 0
