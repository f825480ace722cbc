"""Data-parallel evaluation: 1 process vs N torchrun ranks on the published COCO MCQ shape.

    python bench/eval_distributed.py [--scale 0.1] [--nproc 2] [--model openclip:ViT-B-32@random]
    python bench/eval_distributed.py --device cuda --nproc 4      # on a machine with 4 GPUs

The data are bench/eval_speed.py's (COCO MCQ: 5,914 questions over 3,926 images, 9,281 distinct
options, token lengths as published; --scale multiplies the counts). Two cold runs of the same
command line, each on an empty embedding cache:
  (1) `python -m negbench.eval ...`: one process, --threads torch threads (CPU; default: N);
  (2) `torchrun --nproc_per_node N -m negbench.eval ...`: N ranks of one thread each on the CPU
      (one GPU each with --device cuda).
So on the CPU both runs use the same N cores, and the ratio says what splitting the work across
processes gains over threads within one. Wall times include starting Python and loading the model
(each rank loads its own copy); `eval_s` is the results' own total_s of the task. Prints both,
the ratio (1)/(2), and whether predictions, metrics and per-option scores are identical. Each rank
runs exactly the batches one process runs, so with the same threads per process (--threads 1)
the scores are identical bit for bit; a process of 2 threads may split a matrix product's sums
differently and round the last bit otherwise (predictions and metrics must still be identical).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def run_eval(launcher: list[str], task_yaml: Path, out: Path, args, threads: int) -> dict:
    cmd = [*launcher, "-m", "negbench.eval", "--model", args.model, "--tasks-file", str(task_yaml),
           "--out", str(out / "res"), "--cache-dir", str(out / "cache"), "--no-progress",
           "--bootstrap-samples", "100", "--num-workers", str(args.workers)]
    if args.device:
        cmd += ["--device", args.device]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "HF_HUB_OFFLINE": "1"}
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        sys.exit(f"failed ({res.returncode}): {' '.join(cmd)}\n{res.stdout[-2000:]}\n{res.stderr[-3000:]}")
    (doc_path,) = (out / "res").glob("*/*.json")
    doc = json.loads(doc_path.read_text())
    return {"wall_s": round(wall, 2), "eval_s": doc["timings"]["total_s"], "doc": doc,
            "parquet": doc_path.with_suffix(".parquet")}


def write_yaml(task_csv: Path) -> Path:
    import yaml

    path = task_csv.parent / "tasks.yaml"
    path.write_text(yaml.safe_dump({"tasks": [{"name": "coco_shape_mcq", "kind": "mcq", "file": task_csv.name}]}))
    return path


def measure(args, root: Path) -> dict:
    sys.path.insert(0, str(HERE))
    from eval_speed import make_task  # the published COCO MCQ shape

    task_csv, stats = make_task(root / "data", "coco", args.scale)
    task_yaml = write_yaml(task_csv)
    on_cpu = args.device in (None, "cpu")
    threads = args.threads or args.nproc
    one = run_eval([sys.executable], task_yaml, root / "one", args, threads if on_cpu else 1)
    many = run_eval([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
                     str(args.nproc)], task_yaml, root / "many", args, 1)
    return {"shape": stats, "one": one, "many": many, "threads_one": threads if on_cpu else None}


def compare(report: dict) -> dict:
    import numpy as np
    import pandas as pd

    a, b = pd.read_parquet(report["one"]["parquet"]), pd.read_parquet(report["many"]["parquet"])
    same_pred = bool((a["predicted"].to_numpy() == b["predicted"].to_numpy()).all())
    sa, sb = np.stack(a["scores"]), np.stack(b["scores"])
    same_scores = bool(np.array_equal(sa, sb))
    same_metrics = report["one"]["doc"]["metrics"] == report["many"]["doc"]["metrics"]
    return {"identical_predictions": same_pred, "identical_scores": same_scores, "identical_metrics": same_metrics,
            "max_abs_score_difference": float(np.abs(sa - sb).max()),
            "computed_by_rank": report["many"]["doc"]["distributed"]["computed_by_rank"]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False,
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--scale", type=float, default=0.1, help="multiplies the COCO shape's counts")
    ap.add_argument("--nproc", type=int, default=2, help="torchrun ranks of run (2)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads of run (1) on the CPU (default: --nproc)")
    ap.add_argument("--model", default="openclip:ViT-B-32@random", help="model string")
    ap.add_argument("--device", default=None, help="cpu (default) or cuda: one GPU per rank")
    ap.add_argument("--workers", type=int, default=0, help="media-decoding workers per process")
    ap.add_argument("--out", type=Path, default=None, help="keep data and results here (default: a temp folder)")
    args = ap.parse_args(argv)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        report = measure(args, args.out)
        check = compare(report)
    else:
        with tempfile.TemporaryDirectory(prefix="negbench-evaldist-") as tmp:
            report = measure(args, Path(tmp))
            check = compare(report)
    one, many = report["one"], report["many"]
    summary = {"shape": report["shape"], "device": args.device or "cpu", "nproc": args.nproc,
               "threads_one_process": report["threads_one"], "one_wall_s": one["wall_s"],
               "one_eval_s": one["eval_s"], "many_wall_s": many["wall_s"], "many_eval_s": many["eval_s"],
               "ratio_wall": round(one["wall_s"] / many["wall_s"], 3),
               "ratio_eval": round(one["eval_s"] / many["eval_s"], 3), **check}
    print(json.dumps(summary))
    print(f"1 process ({report['threads_one'] or 1} threads): {one['wall_s']} s wall, {one['eval_s']} s eval   "
          f"{args.nproc} ranks: {many['wall_s']} s wall, {many['eval_s']} s eval   "
          f"ratio {summary['ratio_wall']}x wall, {summary['ratio_eval']}x eval   "
          f"identical predictions {check['identical_predictions']}, scores {check['identical_scores']} "
          f"(max difference {check['max_abs_score_difference']:.2g}), "
          f"metrics {check['identical_metrics']}")
    return 0 if check["identical_predictions"] and check["identical_metrics"] else 1


if __name__ == "__main__":
    sys.exit(main())
