"""Time `negbench demo` end to end in a fresh folder and print each stage's wall time.

    python bench/demo_time.py                 # the README demo (size small); target <= 15 min on 2 cores
    python bench/demo_time.py --size tiny     # the test-suite size; target <= 2 min
    python bench/demo_time.py --keep DIR      # keep the outputs in DIR (must not exist yet)
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

TARGET_S = {"tiny": 120, "small": 15 * 60}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="small", choices=sorted(TARGET_S))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", default=None, help="output folder to keep (default: a temp folder, removed)")
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import logging

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")  # trainer progress

    from negbench.demo import STAGES, run_demo

    if args.keep and Path(args.keep).exists():
        ap.error(f"{args.keep} exists; the benchmark needs a fresh folder")
    out = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="negbench-demo-bench-")) / "demo"
    t0 = time.perf_counter()
    try:
        run_demo(out, size=args.size, seed=args.seed)
        total = time.perf_counter() - t0
        stages = json.loads((out / "demo.json").read_text())["stages"]
        table = (out / "before_after.md").read_text().rstrip()
    finally:
        if not args.keep:
            shutil.rmtree(out.parent, ignore_errors=True)
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    print(f"\n== negbench demo --size {args.size}: stage wall times "
          f"({os.cpu_count()} CPUs, load average now {load[0]:.2f} {load[1]:.2f} {load[2]:.2f})")
    for name, _, _ in STAGES:
        s = stages[name]
        print(f"  {name:<9} {s['seconds']:8.1f} s  {100 * s['seconds'] / total:5.1f}%")
    target = TARGET_S[args.size]
    print(f"  {'total':<9} {total:8.1f} s  = {total / 60:.1f} min; target {target / 60:.0f} min "
          f"-> {total / target:.2f}x of target ({'OK' if total <= target else 'OVER'})")
    print("\n" + table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
