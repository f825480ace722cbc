"""The clw / mlw loss-weight ablation on NegWorld, with 95% bootstrap CIs, from a finished demo.

    python bench/loss_weight_ablation.py --demo demo-out [--steps N] [--weights 1/0,0.99/0.01,...]

Reuses the demo's pretrained model, NegCap/NegMCQ and task suite; fine-tunes once per
(clw, mlw) with the demo's recipe (`negworld` + the size preset's overrides) through
`sweep_weights` into DEMO/ablation/, so a rerun only trains what is missing; scores each on the
held-out COCO-style test images (MCQ on the trained and the never-trained `without` wording,
negated and plain retrieval) and prints a markdown table, every number with its CI.
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

COLUMNS = (("MCQ", "world_coco_mcq", "accuracy"),
           ("MCQ `without`", "world_coco_mcq_without", "accuracy"),
           ("MCQ Negation", "world_coco_mcq", "accuracy_negative"),
           ("MCQ Hybrid", "world_coco_mcq", "accuracy_hybrid"),
           ("negated R@5", "world_coco_negated_retrieval", "t2i_recall@5"),
           ("negated R@5 `without`", "world_coco_negated_retrieval_without", "t2i_recall@5"),
           ("plain R@5", "world_coco_retrieval", "t2i_recall@5"))


HELD_OUT_WORDS = ("without",)


def held_out_leaks(negcap: Path, negmcq: Path) -> int:
    """Training captions that use a held-out wording (must be 0 for the `without` columns to
    measure an unseen wording)."""
    import pandas as pd

    n = 0
    for folder, cols in ((negcap, ["caption"]), (negmcq, [f"caption_{k}" for k in range(4)])):
        for part in sorted(Path(folder).glob("part-*.parquet")):
            df = pd.read_parquet(part, columns=cols)
            for c in cols:
                for w in HELD_OUT_WORDS:
                    n += int(df[c].str.lower().str.contains(rf"\b{w}\b", regex=True).sum())
    return n


def parse_weights(text: str) -> tuple[tuple[float, float], ...]:
    return tuple(tuple(float(x) for x in pair.split("/")) for pair in text.split(","))


def scorer(specs, results_dir: Path, shared: dict, trained_top_layers: int | None):
    """eval_fn for sweep_weights: {column label: (value, ci_low, ci_high)} for one model."""
    from negbench.evaluation.engine import evaluate_task
    from negbench.models.base import load_model

    def score(model: str) -> dict:
        adapter = load_model(model, device="cpu")
        if trained_top_layers is not None:   # the fine-tunes keep the base's lower text layers
            adapter.share_text_encodings(shared, trained_top_layers)
        res = {s.name: evaluate_task(s, adapter, results_dir=str(results_dir), bootstrap_samples=1000,
                                     progress=False, skip_existing=True)["metrics"] for s in specs}
        return {label: tuple(res[task][key][f] for f in ("value", "ci_low", "ci_high"))
                for label, task, key in COLUMNS}
    return score


def cell(v: tuple[float, float, float]) -> str:
    return f"{100 * v[0]:.1f} [{100 * v[1]:.1f}, {100 * v[2]:.1f}]"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    ap.add_argument("--demo", type=Path, default=Path("demo-out"), help="a finished `negbench demo` folder")
    ap.add_argument("--weights", type=parse_weights, default=parse_weights("1/0,0.99/0.01,0.9/0.1,0.5/0.5,0/1"),
                    help="clw/mlw pairs, comma separated")
    ap.add_argument("--steps", type=int, default=None, help="fine-tuning steps per run (default: the demo's)")
    args = ap.parse_args()

    from negbench.demo import SIZES
    from negbench.core.io import read_json
    from negbench.inputs.tasks import select_tasks
    from negbench.train.finetune import load_recipe, sweep_weights

    demo = args.demo.resolve()
    state = {s: read_json(demo / ".demo" / f"{s}.json")["info"] for s in ("pretrain", "build", "negdata")}
    size = SIZES[read_json(demo / ".demo" / "config.json")["config"]["size"]]
    overrides = dict(size.finetune, **({"steps": args.steps} if args.steps else {}))
    recipe = {**load_recipe("negworld"), **overrides}
    leaks = held_out_leaks(state["negdata"]["negcap"], state["negdata"]["negmcq"])
    if leaks:
        raise SystemExit(f"held-out wording {HELD_OUT_WORDS} occurs in {leaks} training captions")
    specs = select_tasks(names=sorted({task for _, task, _ in COLUMNS}), files=[state["build"]["tasks_yaml"]])
    score = scorer(specs, demo / "ablation" / "results", {}, recipe.get("train_text_layers"))
    before = score(state["pretrain"]["model"])
    t0 = time.perf_counter()
    # the demo's own fine-tune is the recipe's weights (same data, recipe and seed): scored, not retrained
    own = (recipe["clw"], recipe["mlw"])
    others = tuple(w for w in args.weights if w != own)
    rows = sweep_weights(state["pretrain"]["model"], state["negdata"]["negcap"], state["negdata"]["negmcq"],
                         demo / "ablation", eval_fn=score, weights=others, recipe="negworld", seed=0,
                         **overrides)
    if own in args.weights and not args.steps:
        finetuned = read_json(demo / ".demo" / "finetune.json")["info"]["model"]
        rows.append({"clw": own[0], "mlw": own[1], "model": finetuned, **score(finetuned)})
    rows.sort(key=lambda r: args.weights.index((r["clw"], r["mlw"])))
    print(f"clw/mlw ablation: {len(others)} new fine-tunes of {recipe['steps']} steps (+ the demo's own run), "
          f"{time.perf_counter() - t0:.0f} s; 95% bootstrap CIs; held-out COCO-style test images")
    print("| clw / mlw | " + " | ".join(label for label, _, _ in COLUMNS) + " |")
    print("|---|" + "---:|" * len(COLUMNS))
    print("| before (pretrained) | " + " | ".join(cell(before[label]) for label, _, _ in COLUMNS) + " |")
    for r in rows:
        print(f"| {r['clw']:g} / {r['mlw']:g} | " + " | ".join(cell(r[label]) for label, _, _ in COLUMNS) + " |")


if __name__ == "__main__":
    main()
