"""The fine-tuning command line, shared by `negbench finetune` and `python -m negbench.train`
(torchrun's entry point, which must not import the CLI package): flags -> finetune()."""
from __future__ import annotations

from negbench.core.lists import split_list

HELP = "fine-tune a model on NegCap/NegMCQ (loss = clw * contrastive + mlw * MCQ); torchrun-ready"


def add_arguments(p) -> None:
    p.add_argument("--model", required=True, help="model string, e.g. builtin:runs/pre, openclip:ViT-B-32@openai")
    p.add_argument("--negcap", default=None, help="NegCap folder (from `negbench negdata`)")
    p.add_argument("--negmcq", default=None, help="NegMCQ folder (from `negbench negdata`)")
    p.add_argument("--out", required=True, help="run folder: final model + train/ (logs, checkpoint, eval)")
    p.add_argument("--recipe", default=None, metavar="NAME|FILE",
                   help="preset overriding the defaults: 'paper', 'negworld' (built-in model on NegWorld; "
                        "negbench/data/recipes/) or a YAML file of training options")
    p.add_argument("--clw", type=float, default=None, help="contrastive loss weight (default: 0.99)")
    p.add_argument("--mlw", type=float, default=None, help="MCQ loss weight (default: 0.01)")
    p.add_argument("--steps", type=int, default=None, help="optimizer steps (default: 1000)")
    p.add_argument("--batch-size", type=int, default=None, help="contrastive pairs per rank (default: 64)")
    p.add_argument("--mcq-batch-size", type=int, default=None, help="MCQ questions per rank (default = batch size)")
    p.add_argument("--accum-steps", type=int, default=None, help="gradient accumulation micro-steps")
    p.add_argument("--lr", type=float, default=None, help="peak learning rate (default: 1e-5)")
    p.add_argument("--warmup-steps", type=int, default=None, help="linear warm-up steps (default: 50)")
    p.add_argument("--max-images", type=int, default=None, help="use at most N images / questions")
    p.add_argument("--augment-wordings", type=int, default=None, metavar="K",
                   help="add K extra negation wordings per NegCap caption and NegMCQ question, drawn from "
                        "the template sets the NegMCQ was made with (default: 0; recipe negworld: 1)")
    p.add_argument("--precision", choices=["fp32", "bf16", "fp16"], default=None, help="autocast on GPU")
    p.add_argument("--lock-image", action="store_true", default=None, help="freeze the image tower")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--lock-text", action="store_true", default=None, help="freeze the text tower")
    g.add_argument("--train-text-layers", type=int, default=None, metavar="K",
                   help="train only the top K text transformer blocks + final norm and projection")
    p.add_argument("--eval-tasks", action="append", default=[], metavar="NAMES",
                   help="task names or task YAML files to evaluate (comma list; repeatable)")
    p.add_argument("--eval-every", type=int, default=None, help="evaluate every N steps (and at the end)")
    p.add_argument("--data-root", default=None, help="media root for --eval-tasks")
    p.add_argument("--save-every", type=int, default=None, help="checkpoint every N steps (and at the end)")
    p.add_argument("--log-every", type=int, default=None, help="steps between train/log.jsonl lines (default: 10)")
    p.add_argument("--tensorboard", action="store_true", default=None, help="also log to TensorBoard")
    p.add_argument("--seed", type=int, default=None, help="seed (+ rank) of initialisation and data order (default: 0)")
    p.add_argument("--device", default=None, help="torch device (default: cuda > mps > cpu)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--resume", action="store_true",
                   help="continue from OUT/train/checkpoint.pt; refused when settings that change the numbers differ")
    p.add_argument("--force", action="store_true",
                   help="with --resume: resume even though settings differ; without: start over in an OUT that "
                        "holds a run (deletes OUT/train: log, checkpoints, eval)")
    p.add_argument("--sweep-weights", action="store_true",
                   help="run clw/mlw in {1/0, 0.99/0.01, 0.9/0.1, 0.5/0.5, 0/1} into OUT/clw*_mlw*/ and "
                        "report MCQ accuracy, negated and plain R@5 on --eval-tasks")


def overrides(args) -> dict:
    return dict(clw=args.clw, mlw=args.mlw, steps=args.steps, batch_size=args.batch_size,
                mcq_batch_size=args.mcq_batch_size, accum_steps=args.accum_steps, lr=args.lr,
                warmup_steps=args.warmup_steps, max_images=args.max_images,
                augment_wordings=args.augment_wordings, precision=args.precision,
                lock_image=args.lock_image, lock_text=args.lock_text, train_text_layers=args.train_text_layers,
                eval_tasks=split_list(args.eval_tasks) or None, eval_every=args.eval_every, eval_data_root=args.data_root,
                save_every=args.save_every, log_every=args.log_every, tensorboard=args.tensorboard,
                seed=args.seed, device=args.device, num_threads=args.threads)


def run(args) -> int:
    from negbench.core.errors import ConfigError
    from negbench.train.finetune import finetune, sweep_weights

    kw = {k: v for k, v in overrides(args).items() if v is not None}
    if not args.sweep_weights:
        print(finetune(args.model, args.negcap, args.negmcq, args.out, recipe=args.recipe, resume=args.resume,
                       force=args.force, **kw))
        return 0
    if not args.eval_tasks:
        raise ConfigError("--sweep-weights needs --eval-tasks (an MCQ task and negated/plain retrieval tasks)")
    kw.pop("clw", None), kw.pop("mlw", None)
    tasks = kw.pop("eval_tasks")
    rows = sweep_weights(args.model, args.negcap, args.negmcq, args.out, recipe=args.recipe,
                         eval_fn=lambda m: eval_summary(m, tasks, args.data_root), **kw)
    for r in rows:
        print("  ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in r.items()))
    return 0


def eval_summary(model: str, tasks, data_root) -> dict:
    """MCQ accuracy and t2i R@5 per task, flat: {'TASK/accuracy': .., 'TASK/t2i_recall@5': ..}."""
    from negbench.evaluation.engine import evaluate_task
    from negbench.models.base import load_model
    from negbench.inputs.tasks import select_tasks

    adapter = load_model(model)
    out = {}
    for spec in select_tasks(tasks):
        res = evaluate_task(spec, adapter, data_root=data_root, progress=False, bootstrap_samples=200)
        for name in ("accuracy", "accuracy_negative", "t2i_recall@5"):
            if name in res["metrics"]:
                out[f"{spec.name}/{name}"] = res["metrics"][name]["value"]
    return out

