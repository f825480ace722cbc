"""NegWorld generation speed: `python bench/world_speed.py [--size small] [--workers N]`.

Target (issue 3): `--size small` in <= 60 s on 2 cores.  Prints images/s per part and the
total; run it once, not in the test suite.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", default="small", choices=("tiny", "small", "full"))
    ap.add_argument("--workers", type=int, default=os.cpu_count())
    ap.add_argument("--out", type=Path, default=None, help="keep the world here (default: a temp dir, removed)")
    args = ap.parse_args()

    from negbench.world import generate_world

    out = args.out or Path(tempfile.mkdtemp(prefix="negworld-bench-")) / "world"
    try:
        t0 = time.perf_counter()
        m = generate_world(out, seed=0, size=args.size, workers=args.workers)
        dt = time.perf_counter() - t0
        ru_self, ru_kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = ru_self.ru_utime + ru_self.ru_stime + ru_kids.ru_utime + ru_kids.ru_stime
        c = m["counts"]
        n_images = sum(s["images"] for s in c["coco"].values()) + c["corpus"]["images"]
        n_videos = sum(v for k, v in c["msrvtt"].items() if k in ("train", "validate", "test"))
        n_xrays = sum(c["chexpert"].values())
        n_frames = n_videos * m["video"]["frames"]
        print(json.dumps({"size": args.size, "workers": args.workers, "cpu_count": os.cpu_count(),
                          "total_s": round(dt, 2), "scene_images": n_images, "videos": n_videos,
                          "video_frames": n_frames, "xrays": n_xrays,
                          "all_images_per_s": round((n_images + n_frames + n_xrays) / dt, 1),
                          # CPU seconds over workers: the wall time on idle cores, whatever else runs now
                          "cpu_s": round(cpu, 1), "cpu_s_per_worker": round(cpu / max(1, args.workers), 1),
                          "load_avg_1m": round(os.getloadavg()[0], 2),
                          "target_s": 60 if args.size == "small" else None}, indent=2))
    finally:
        if args.out is None:
            shutil.rmtree(out.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
