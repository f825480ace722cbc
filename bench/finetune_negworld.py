"""Negation fine-tuning on NegWorld, measured with the real pipeline (issue 5, point 6).

    python bench/finetune_negworld.py [--work /tmp/negworld_ft] [--size small] [--seed 0]
        [--recipe negworld] [--sweep] [--sweep-steps N]

Stages (each reused when its output exists, so a rerun only redoes what is missing):
world (`generate_world`) -> pretrain (`pretrain`, the built-in model on the affirmative corpus)
-> negdata (`generate_negdata` on the corpus with the world's vocab, training wordings only)
-> build (`build_world_suite`, held-out COCO-test images; wordings `default` + `without`)
-> eval before -> finetune (`finetune(recipe=...)`) -> eval after; prints the before/after
table. The `without` wording family is held out: it never occurs in a training caption
(checked), so the `_without` rows measure generalisation to unseen negation wordings.
`--sweep` adds the clw/mlw ablation (`sweep_weights`) with the same recipe.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

# training wordings: every negdata set except the held-out `without` family
TRAIN_TEMPLATE_SETS = ("default", "no", "not", "contain", "except")
HELD_OUT_WORDS = ("without",)
COCO_TASKS = ("world_coco_mcq", "world_coco_mcq_without", "world_coco_retrieval",
              "world_coco_negated_retrieval", "world_coco_negated_retrieval_without")


def stage(name: str, fn, *a, **kw):
    t = time.time()
    print(f"[{name}] ...", flush=True)
    out = fn(*a, **kw)
    dt = time.time() - t
    print(f"[{name}] done in {dt:.0f}s", flush=True)
    return out, dt


def check_held_out(negdata_dir: Path) -> int:
    import pandas as pd

    n = 0
    for kind, cols in (("negcap", ["caption"]), ("negmcq", [f"caption_{k}" for k in range(4)])):
        for part in sorted((negdata_dir / kind).glob("part-*.parquet")):
            df = pd.read_parquet(part, columns=cols)
            for c in cols:
                s = df[c].str.lower()
                for w in HELD_OUT_WORDS:
                    n += int(s.str.contains(rf"\b{w}\b", regex=True).sum())
    return n


def evaluate(model: str, specs, results_dir: Path, bootstrap: int = 200, shared_lower=None) -> dict:
    """{task: metrics} with `template:<type>` MCQ accuracies as in the demo's table.

    shared_lower=(k, dict): the model's lowest k text layers are the untouched base MiniLM (a
    fine-tune with train_text_layers=6-k), so their per-caption outputs are shared between the
    models of a sweep instead of being recomputed for each (same numbers up to float rounding).
    """
    from negbench.evaluation.engine import evaluate_task
    from negbench.models.base import load_model

    from negbench.models.builtin import BuiltinAdapter

    adapter = load_model(model, device="cpu")
    if shared_lower is not None and shared_lower[0] > 0 and isinstance(adapter, BuiltinAdapter):
        adapter.set_text_cache(shared_lower[0], store=shared_lower[1])
        adapter.text_cache_max = 10 ** 9
    out = {}
    for spec in specs:
        res = evaluate_task(spec, adapter, results_dir=str(results_dir), bootstrap_samples=bootstrap,
                            progress=False, skip_existing=True)
        m = {k: v["value"] for k, v in res["metrics"].items()}
        for t, v in (res.get("breakdowns") or {}).get("accuracy_by_template", {}).items():
            m[f"template:{t}"] = v["value"]
        out[spec.name] = m
    return out


ROWS = (("MCQ total", "accuracy"), ("MCQ Affirmation", "template:positive"),
        ("MCQ Negation", "template:negative"), ("MCQ Hybrid", "template:hybrid"))


def table(before: dict, after: dict) -> str:
    lines = [f"{'metric':44s} {'before':>7s} {'after':>7s} {'delta':>7s}"]

    def row(label, task, key):
        if task not in before or key not in before[task]:
            return
        b, a = 100 * before[task][key], 100 * after[task].get(key, float("nan"))
        lines.append(f"{label:44s} {b:7.1f} {a:7.1f} {a - b:+7.1f}")

    for suffix, tag in (("", "trained wording (default)"), ("_without", "held-out wording (without)")):
        for label, key in ROWS:
            row(f"COCO {label} [{tag}]", f"world_coco_mcq{suffix}", key)
        row(f"COCO negated R@5 [{tag}]", f"world_coco_negated_retrieval{suffix}", "t2i_recall@5")
    row("COCO plain R@5", "world_coco_retrieval", "t2i_recall@5")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", default="/tmp/negworld_ft")
    ap.add_argument("--size", default="small")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--recipe", default="negworld")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--finetune-json", default="{}", help="extra finetune() overrides as JSON")
    ap.add_argument("--tag", default="ft", help="name of the fine-tuned run folder")
    ap.add_argument("--sweep", action="store_true")
    ap.add_argument("--sweep-steps", type=int, default=None)
    args = ap.parse_args(argv)

    import torch
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    from negbench.world.suite import build_world_suite
    from negbench.inputs.tasks import get_task, load_task_file
    from negbench.train.finetune import finetune, sweep_weights
    from negbench.train.trainer import finished_model
    from negbench.construct.negdata import generate_negdata
    from negbench.train.pretrain import PretrainConfig, pretrain
    from negbench.world import generate_world

    work = Path(args.work)
    world = work / "world"
    times = {}
    if not (world / "world.json").exists():
        _, times["world"] = stage("world", generate_world, world, seed=args.seed, size=args.size)
    pre_dir = work / "pretrained"
    if (pre_dir / "config.json").exists():
        pre = f"builtin:{pre_dir}"
    else:
        pre_cfg = PretrainConfig(corpus=str(world / "corpus" / "corpus.tsv"), out=str(pre_dir), seed=args.seed,
                                 num_threads=args.threads)
        pre, times["pretrain"] = stage("pretrain", pretrain, pre_cfg, resume=True)
    nd = work / "negdata"
    if not (nd / "negmcq" / "manifest.json").exists():
        _, times["negdata"] = stage("negdata", generate_negdata, world / "corpus" / "corpus.tsv", nd,
                                    seed=args.seed, vocab=world / "vocab.txt", template_sets=TRAIN_TEMPLATE_SETS)
    leaks = check_held_out(nd)
    print(f"held-out wording {HELD_OUT_WORDS} in training captions: {leaks}", flush=True)
    if leaks:
        raise SystemExit("held-out wording leaked into the training data")
    tasks_yaml = work / "tasks" / "tasks.yaml"
    if not tasks_yaml.exists():
        tasks_yaml, times["build"] = stage("build", build_world_suite, world, work / "tasks", seed=args.seed)
    load_task_file(tasks_yaml)
    specs = [get_task(n) for n in COCO_TASKS]

    before, times["eval_before"] = stage("eval before", evaluate, pre, specs, work / "results")
    overrides = json.loads(args.finetune_json)
    run = work / args.tag
    ft = finished_model(run)
    if ft is None:
        ft, times["finetune"] = stage("finetune", finetune, pre, nd / "negcap", nd / "negmcq", run,
                                      recipe=args.recipe, seed=args.seed, num_threads=args.threads,
                                      resume=True, **overrides)
    after, times["eval_after"] = stage("eval after", evaluate, ft, specs, work / "results")
    print(f"\nrecipe {args.recipe} {overrides or ''}: before = {pre}, after = {ft}")
    print(table(before, after))
    print("timings (s):", json.dumps({k: round(v) for k, v in times.items()}))
    (work / f"{args.tag}_summary.json").write_text(json.dumps({"before": before, "after": after, "times": times},
                                                              indent=1))

    if args.sweep:
        from negbench.train.finetune import load_recipe

        k = {**load_recipe(args.recipe), **overrides}.get("train_text_layers")
        shared = (6 - k if k is not None else 0, {})

        def score(model: str) -> dict:
            r = evaluate(model, specs, work / "results", shared_lower=shared)
            return {"mcq": r["world_coco_mcq"]["accuracy"], "mcq_without": r["world_coco_mcq_without"]["accuracy"],
                    "mcq_negation": r["world_coco_mcq"].get("template:negative"),
                    "neg_r5": r["world_coco_negated_retrieval"]["t2i_recall@5"],
                    "neg_r5_without": r["world_coco_negated_retrieval_without"]["t2i_recall@5"],
                    "plain_r5": r["world_coco_retrieval"]["t2i_recall@5"]}

        extra = dict(overrides)
        if args.sweep_steps:
            extra["steps"] = args.sweep_steps
        t = time.time()
        rows = sweep_weights(pre, nd / "negcap", nd / "negmcq", work / "sweep", eval_fn=score, recipe=args.recipe,
                             seed=args.seed, num_threads=args.threads, **extra)
        print(f"\nsweep ({time.time() - t:.0f}s, steps {extra.get('steps', 'recipe')}):")
        print(f"{'clw/mlw':10s} {'MCQ':>6s} {'MCQ-w/o':>8s} {'MCQ-neg':>8s} {'negR@5':>7s} {'negR@5-w/o':>10s} "
              f"{'plainR@5':>9s}")
        for r in rows:
            print(f"{r['clw']:g}/{r['mlw']:g}".ljust(10) + f" {100 * r['mcq']:6.1f} {100 * r['mcq_without']:8.1f} "
                  f"{100 * (r['mcq_negation'] or 0):8.1f} {100 * r['neg_r5']:7.1f} {100 * r['neg_r5_without']:10.1f} "
                  f"{100 * r['plain_r5']:9.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
