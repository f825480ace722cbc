"""Generate a whole NegWorld: COCO + VOC scenes, MSR-VTT clips, CheXpert films, caption corpus.

Every item is a pure function of (seed, dataset, index), so the pool size never changes a
byte.  Items stream to disk from the workers; the parent only gathers small records and
writes the annotation files.  Each part leaves a marker when complete and world.json is
written last, so a finished world is skipped and an interrupted one resumes by part.
"""
from __future__ import annotations

import json
import multiprocessing as mp
import os
import shutil
import sys
import threading
from pathlib import Path
from typing import Any, Callable

from negbench.core.errors import ConfigError
from negbench.core.configs import load_data_config
from negbench.core.io import read_json, stable_hash, write_json_atomic, write_text_atomic

GENERATOR_VERSION = "2"   # 2: identifying captions, truth/ files
# size presets (images per split, corpus captions, videos, X-rays): negbench/data/sizes/world.yaml
SIZES: dict[str, dict[str, int]] = load_data_config("sizes/world")
DEFAULTS: dict[str, int] = {"resolution": 64, "n_frames": 16, "fps": 8}
PARTS = ("coco", "msrvtt", "chexpert", "corpus")
_CHUNK = {"coco": 50, "msrvtt": 6, "chexpert": 80, "corpus": 100}


class WorldExistsError(ConfigError):
    """The output folder holds a different world (other seed, size or counts)."""


def resolve_config(seed: int = 0, size: str = "small", **overrides: Any) -> dict[str, Any]:
    """The full, validated configuration: size preset + defaults + overrides."""
    if size not in SIZES:
        raise ConfigError(f"unknown world size {size!r}; available: {', '.join(SIZES)}")
    cfg: dict[str, Any] = {**SIZES[size], **DEFAULTS}
    unknown = sorted(k for k in overrides if k not in cfg)
    if unknown:
        raise ConfigError(f"unknown world option(s) {', '.join(unknown)}; available: {', '.join(sorted(cfg))}")
    for k, v in overrides.items():
        if v is None:
            continue
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise ConfigError(f"world option {k} must be a non-negative integer, got {v!r}")
        cfg[k] = v
    if cfg["resolution"] < 32 or cfg["resolution"] % 2:
        raise ConfigError(f"resolution must be an even number >= 32 (e.g. 64, 96, 128, 224), got {cfg['resolution']}")
    if cfg["n_frames"] < 1 or cfg["fps"] < 1:
        raise ConfigError(f"n_frames and fps must be >= 1, got {cfg['n_frames']} and {cfg['fps']}")
    cfg.update(seed=int(seed), size=size, version=GENERATOR_VERSION)
    return cfg


def _dump_compact(obj: Any) -> str:
    # like the real COCO / MSR-VTT files: one line, but keys sorted so bytes are stable
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n"


def _part_key(cfg: dict, part: str) -> str:
    keys = {"coco": ("n_train", "n_val", "n_test", "resolution"), "msrvtt": ("n_videos", "n_frames", "fps", "resolution"),
            "chexpert": ("n_xrays", "resolution"), "corpus": ("n_corpus", "resolution")}[part]
    return stable_hash(part, cfg["seed"], cfg["version"], {k: cfg[k] for k in keys})


# ---------------------------------------------------------------- jobs
def _jobs(cfg: dict, out: Path, parts: list[str]) -> list[tuple]:
    """(part, split, start, stop) work units, heaviest first so the pool drains evenly."""
    from negbench.world.xray import xray_split_counts

    jobs: list[tuple] = []

    def add(part, split, n):
        step = _CHUNK[part]
        jobs.extend((part, split, s, min(n, s + step)) for s in range(0, n, step))

    if "msrvtt" in parts:
        add("msrvtt", None, cfg["n_videos"])
    if "coco" in parts:
        for split in ("train", "val", "test"):
            add("coco", split, cfg[f"n_{split}"])
    if "chexpert" in parts:
        for split, n in xray_split_counts(cfg["n_xrays"]).items():
            add("chexpert", split, n)
    if "corpus" in parts:
        add("corpus", None, cfg["n_corpus"])
    return jobs


_WORKER_CFG: dict = {}


def _init_worker(cfg: dict, out: str) -> None:
    _WORKER_CFG.update(cfg=cfg, out=out)


def _run_job(job: tuple) -> tuple[tuple, Any]:
    cfg, out = _WORKER_CFG["cfg"], _WORKER_CFG["out"]
    part, split, start, stop = job
    res, seed = cfg["resolution"], cfg["seed"]
    if part == "coco":
        from negbench.world.coco import make_images
        return job, make_images(out, seed, split, start, stop, res)
    if part == "msrvtt":
        from negbench.world.video import make_videos
        return job, make_videos(out, seed, start, stop, res, cfg["n_frames"], cfg["fps"])
    if part == "chexpert":
        from negbench.world.xray import make_xrays
        return job, make_xrays(out, seed, split, start, stop, res)
    from negbench.world.corpus import make_corpus
    return job, make_corpus(out, seed, start, stop, res)


def _mp_context():
    # fork is the cheap start; after threads exist (e.g. a caller's torch), use forkserver
    methods = mp.get_all_start_methods()
    if "fork" in methods and threading.active_count() == 1:
        return mp.get_context("fork")
    return mp.get_context("forkserver" if "forkserver" in methods else "spawn")


def _execute(jobs: list[tuple], cfg: dict, out: Path, workers: int,
             progress: Callable[[int, int], None] | None) -> dict[tuple, Any]:
    results: dict[tuple, Any] = {}
    total = len(jobs)
    if workers <= 1 or total <= 1:
        _init_worker(cfg, str(out))
        for job in jobs:
            k, r = _run_job(job)
            results[k] = r
            if progress:
                progress(len(results), total)
        return results
    ctx = _mp_context()
    with ctx.Pool(workers, initializer=_init_worker, initargs=(cfg, str(out))) as pool:
        for k, r in pool.imap_unordered(_run_job, jobs):
            results[k] = r
            if progress:
                progress(len(results), total)
    return results


def _gather(results: dict[tuple, Any], part: str, split=None) -> list:
    keys = sorted((k for k in results if k[0] == part and k[1] == split), key=lambda k: k[2])
    return [rec for k in keys for rec in results[k]]


# ---------------------------------------------------------------- writers per part
def write_truth(out: Path, name: str, resolution: int, items: dict) -> None:
    from negbench.world import truth  # numpy + PIL: only when a world is written

    truth.write_truth(out, name, resolution, items)


def _finish_coco(out: Path, cfg: dict, results) -> dict:
    from negbench.world.coco import COCO_SPLITS, coco_documents

    counts = {}
    for split in COCO_SPLITS:
        recs = _gather(results, "coco", split)
        inst, caps = coco_documents(split, recs, cfg["resolution"], cfg["seed"], cfg["version"])
        write_text_atomic(out / "coco" / "annotations" / f"instances_{split}.json", _dump_compact(inst))
        write_text_atomic(out / "coco" / "annotations" / f"captions_{split}.json", _dump_compact(caps))
        write_truth(out, f"coco_{split}", cfg["resolution"],
                    {r["file_name"]: {"scene": r["scene"], "objects": r["objects"]} for r in recs})
        write_text_atomic(out / "VOC" / "ImageSets" / "Main" / f"{split}.txt",
                          "".join(r["file_name"][:-4] + "\n" for r in recs))
        counts[split] = {"images": len(recs), "objects": len(inst["annotations"]),
                         "captions": len(caps["annotations"])}
    return counts


def _finish_msrvtt(out: Path, cfg: dict, results) -> dict:
    from negbench.world.video import codec_name, msrvtt_documents, video_split_counts

    recs = _gather(results, "msrvtt")
    counts = video_split_counts(cfg["n_videos"])
    info, objects = msrvtt_documents(recs, counts, cfg["n_frames"], cfg["fps"], cfg["seed"], cfg["version"])
    write_text_atomic(out / "msrvtt" / "videodatainfo.json", _dump_compact(info))
    write_json_atomic(out / "msrvtt" / "objects.json", objects)
    write_truth(out, "msrvtt", cfg["resolution"],
                {f"video{r['index']}.mp4": {"scene": r["scene"], "objects": r["tracks"]} for r in recs})
    return {**counts, "sentences": len(info["sentences"]), "codec": codec_name() if recs else None}


def _finish_chexpert(out: Path, cfg: dict, results) -> dict:
    from negbench.world.xray import ROOT, chexpert_csv, xray_split_counts

    counts = xray_split_counts(cfg["n_xrays"])
    for split in counts:
        write_text_atomic(out / "chexpert" / ROOT / f"{split}.csv", chexpert_csv(_gather(results, "chexpert", split)))
    return counts


def _finish_corpus(out: Path, cfg: dict, results) -> dict:
    from negbench.world.corpus import corpus_tsv

    rows = _gather(results, "corpus")
    write_text_atomic(out / "corpus" / "corpus.tsv", corpus_tsv(rows))
    write_truth(out, "corpus", cfg["resolution"], {path: truth for path, _, truth in rows})
    return {"images": len(rows)}


_FINISH = {"coco": _finish_coco, "msrvtt": _finish_msrvtt, "chexpert": _finish_chexpert, "corpus": _finish_corpus}


def _make_dirs(out: Path, cfg: dict, parts: list[str]) -> None:
    dirs = []
    if "coco" in parts:
        dirs += [out / "coco" / "images" / s for s in ("train", "val", "test")]
        dirs += [out / "coco" / "annotations", out / "VOC" / "JPEGImages", out / "VOC" / "Annotations",
                 out / "VOC" / "ImageSets" / "Main"]
    if "msrvtt" in parts:
        dirs.append(out / "msrvtt" / "videos")
    if "chexpert" in parts:
        dirs.append(out / "chexpert" / "CheXpert-v1.0-small")
    if "corpus" in parts:
        dirs.append(out / "corpus" / "images")
    for d in dirs:
        d.mkdir(parents=True, exist_ok=True)


_PART_DIRS = {"coco": ("coco", "VOC"), "msrvtt": ("msrvtt",), "chexpert": ("chexpert",), "corpus": ("corpus",)}


# ---------------------------------------------------------------- entry point
def generate_world(out: Path | str, seed: int = 0, size: str = "small", *, workers: int | None = None,
                   overwrite: bool = False, progress: bool | Callable[[int, int], None] = False,
                   **overrides: Any) -> dict:
    """Generate NegWorld under `out` and return its world.json manifest.

    overrides: n_train, n_val, n_test, n_corpus, n_videos, n_xrays, resolution, n_frames, fps.
    A folder that already holds this exact world is returned untouched (world.json is
    written last, so its presence means done); parts finished by an interrupted run are kept.
    A folder holding a different world raises WorldExistsError unless overwrite=True.
    """
    out = Path(out)
    cfg = resolve_config(seed, size, **overrides)
    _check_video_support(cfg)
    manifest_path = out / "world.json"
    marker_dir = out / ".negworld"
    finished = _prepare_folder(out, cfg, overwrite)
    if finished is not None:
        return finished
    marker_dir.mkdir(parents=True, exist_ok=True)
    todo, part_counts = _pending_parts(out, cfg, marker_dir)
    _make_dirs(out, cfg, todo)
    jobs = _jobs(cfg, out, todo)
    if workers is None:
        workers = os.cpu_count() or 1
    report = progress if callable(progress) else (_tqdm_progress() if progress else None)
    results = _execute(jobs, cfg, out, workers, report)
    for part in todo:
        part_counts[part] = _FINISH[part](out, cfg, results)
        write_json_atomic(marker_dir / f"{part}.json", {"key": _part_key(cfg, part), "counts": part_counts[part]})

    from negbench.world.categories import vocab_lines

    write_text_atomic(out / "vocab.txt", "\n".join(vocab_lines()) + "\n")
    manifest = _world_manifest(cfg, size, part_counts)
    write_json_atomic(manifest_path, manifest)
    if report is not None and hasattr(report, "close"):
        report.close()
    return manifest


def _check_video_support(cfg: dict) -> None:
    if cfg["n_videos"]:
        try:
            import av  # noqa: F401
        except ImportError as e:
            raise ConfigError("NegWorld videos need PyAV: pip install 'negbench[video]' (or set n_videos=0)") from e


def _prepare_folder(out: Path, cfg: dict, overwrite: bool) -> dict | None:
    """The manifest when `out` already holds this world; else None, with `out` cleared when
    overwrite asks for it. Refuses folders that are not NegWorld or hold another world."""
    manifest_path = out / "world.json"
    marker_dir = out / ".negworld"
    is_world = marker_dir.exists() or manifest_path.exists()
    if out.exists() and not is_world and any(out.iterdir()):
        # never delete or mix into a folder we did not make (it might hold real datasets)
        raise WorldExistsError(f"{out} is not empty and is not a NegWorld folder; choose an empty or new folder")
    if manifest_path.exists():
        old = read_json(manifest_path)
        if old.get("config") == cfg:
            return old
        if not overwrite:
            raise WorldExistsError(f"{out} already holds a different NegWorld (seed {old.get('seed')}, "
                                   f"size {old.get('size')!r}); choose another folder or pass overwrite=True")
    if overwrite:
        for part in PARTS:
            for sub in _PART_DIRS[part]:
                shutil.rmtree(out / sub, ignore_errors=True)
        shutil.rmtree(marker_dir, ignore_errors=True)
        manifest_path.unlink(missing_ok=True)
    return None


def _pending_parts(out: Path, cfg: dict, marker_dir: Path) -> tuple[list[str], dict]:
    """(parts to build, counts of the parts already finished for this config)."""
    todo, part_counts = [], {}
    for part in PARTS:
        marker = marker_dir / f"{part}.json"
        if marker.exists():
            m = read_json(marker)
            if m.get("key") == _part_key(cfg, part):
                part_counts[part] = m["counts"]
                continue
        todo.append(part)
        for sub in _PART_DIRS[part]:  # a stale or half-written part is rebuilt from scratch
            shutil.rmtree(out / sub, ignore_errors=True)
    return todo, part_counts


def _world_manifest(cfg: dict, size: str, part_counts: dict) -> dict:
    from negbench.world.categories import CATEGORIES
    from negbench.world.scenes import SCENES
    from negbench.world.xray import DRAWN_FINDINGS

    return {
        "generator": "negbench.world", "version": GENERATOR_VERSION, "seed": cfg["seed"], "size": size,
        "resolution": cfg["resolution"], "config": cfg,
        "counts": {"coco": part_counts["coco"], "voc": {s: c["images"] for s, c in part_counts["coco"].items()},
                   "msrvtt": part_counts["msrvtt"], "chexpert": part_counts["chexpert"],
                   "corpus": part_counts["corpus"]},
        "categories": [{"id": c.id, "name": c.name, "supercategory": c.supercategory,
                        "synonyms": list(c.synonyms), "colours": list(c.palette)} for c in CATEGORIES],
        "scenes": list(SCENES),
        "xray_findings": sorted(DRAWN_FINDINGS),
        "video": {"frames": cfg["n_frames"], "fps": cfg["fps"]},
        "eval_splits": {"coco": "test", "voc": "test", "msrvtt": "test", "chexpert": "valid"},
        "files": {"coco": "coco", "voc": "VOC", "msrvtt": "msrvtt", "chexpert": "chexpert", "corpus": "corpus/corpus.tsv",
                  "vocab": "vocab.txt", "truth": "truth"},
    }


def _tqdm_progress():
    from tqdm import tqdm

    class _Bar:
        def __init__(self):
            self.bar = None

        def __call__(self, done: int, total: int):
            if self.bar is None:
                self.bar = tqdm(total=total, desc="negworld", unit="job", file=sys.stderr)
            self.bar.update(done - self.bar.n)

        def close(self):
            if self.bar is not None:
                self.bar.close()

    return _Bar()
