"""`negbench pretrain`: contrastive pre-training of the built-in model on a caption corpus."""
from __future__ import annotations

HELP = "pre-train the built-in CLIP-style model on an affirmative caption corpus (filepath<TAB>caption)"


def add_arguments(p) -> None:
    p.add_argument("--corpus", required=True, help="corpus TSV, e.g. WORLD/corpus/corpus.tsv")
    p.add_argument("--images", default=None, help="image root of the corpus paths (default: the TSV's folder)")
    p.add_argument("--out", required=True, help="model folder to write (load it as builtin:OUT)")
    p.add_argument("--steps", type=int, default=None, help="optimizer steps (default: 200)")
    p.add_argument("--batch-size", type=int, default=None, help="pairs per step (default: 256)")
    p.add_argument("--lr", type=float, default=None, help="peak learning rate (default: 2e-3)")
    p.add_argument("--max-images", type=int, default=None, help="use only the first N corpus images")
    p.add_argument("--text-model", default="minilm",
                   help="text tower: 'minilm' (shipped all-MiniLM-L6-v2), a BERT folder or hub id")
    p.add_argument("--seed", type=int, default=0, help="seed of initialisation and data order")
    p.add_argument("--device", default=None, help="torch device (default: cuda > mps > cpu)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--resume", action="store_true", help="continue from OUT/train/checkpoint.pt")
    p.add_argument("--force", action="store_true",
                   help="without --resume: start over in an OUT that holds a run (deletes OUT/train: init, log, "
                        "checkpoints)")


def run(args) -> int:
    from negbench.train.pretrain import PretrainConfig, pretrain

    kw = {k: v for k, v in dict(steps=args.steps, batch_size=args.batch_size, lr=args.lr).items() if v is not None}
    cfg = PretrainConfig(corpus=args.corpus, images=args.images, out=args.out, max_images=args.max_images,
                         text_model=args.text_model, seed=args.seed, device=args.device, num_threads=args.threads,
                         **kw)
    model = pretrain(cfg, resume=args.resume, force=args.force)
    print(model)
    return 0
