"""MSR-VTT-style clips: 1-3 objects moving over a scene, entering or leaving the frame.

Encoded as H.264 MP4 with PyAV (MPEG-4 Part 2 where libx264 is missing).  An object counts
as present in a clip (objects.json, captions) only if at least MIN_VISIBLE of it is inside
the frame in some frame; objects that would never be clearly visible are not drawn at all.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from negbench.world._util import item_rng
from negbench.world.captions import video_captions
from negbench.world.categories import CATEGORIES, render_object
from negbench.world.scenes import SCENES, SCENE_PROBS, background, scene_prior

VIDEO_SPLITS = ("train", "validate", "test")
SPLIT_FRACTIONS = (0.6, 0.1, 0.3)
CAPTIONS_PER_VIDEO = 5
MIN_VISIBLE = 0.6
_MOTIONS = ("cross", "enter", "leave", "stay")
_MOTION_P = np.array([0.35, 0.2, 0.2, 0.25])


def video_split_counts(n: int) -> dict[str, int]:
    n_val = int(round(n * SPLIT_FRACTIONS[1]))
    n_test = int(round(n * SPLIT_FRACTIONS[2]))
    return {"train": n - n_val - n_test, "validate": n_val, "test": n_test}


def video_split(index: int, counts: dict[str, int]) -> str:
    # contiguous ranges, like MSR-VTT (video0.. train, then validate, then test)
    if index < counts["train"]:
        return "train"
    return "validate" if index < counts["train"] + counts["validate"] else "test"


_CODEC: str | None = None


def codec_name() -> str:
    global _CODEC
    if _CODEC is None:
        import av

        _CODEC = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    return _CODEC


def _trajectory(motion: str, w: int, h: int, res: int, y_lo: int, y_hi: int, rng):
    y0 = int(rng.integers(y_lo, max(y_lo, y_hi) + 1))
    y1 = int(np.clip(y0 + rng.integers(-res // 8, res // 8 + 1), 0, res - h))
    inside = lambda: int(rng.integers(0, res - w + 1))  # noqa: E731
    left, right = -w, res
    if motion == "cross":
        x0, x1 = (left, right) if rng.random() < 0.5 else (right, left)
    elif motion == "enter":
        x0, x1 = (left if rng.random() < 0.5 else right), inside()
    elif motion == "leave":
        x0, x1 = inside(), (left if rng.random() < 0.5 else right)
    else:
        x0 = inside()
        x1 = int(np.clip(x0 + rng.integers(-res // 4, res // 4 + 1), 0, res - w))
    return (x0, y0), (x1, y1)


def _visible_fraction(x: int, y: int, w: int, h: int, res: int) -> float:
    iw = max(0, min(x + w, res) - max(x, 0))
    ih = max(0, min(y + h, res) - max(y, 0))
    return iw * ih / float(w * h)


def render_clip(res: int, n_frames: int, rng: np.random.Generator):
    """Frames (T,H,W,3 uint8), scene, and tracks [(category, colour, motion)] of visible objects."""
    scene = SCENES[int(rng.choice(len(SCENES), p=SCENE_PROBS))]
    bg = np.clip(background(scene, res, rng), 0, 255).astype(np.uint8)
    n = int(rng.integers(1, 4))
    idx = rng.choice(len(CATEGORIES), size=n, replace=False, p=scene_prior(scene))
    band = res // n  # each object keeps to its own horizontal band, so none hides another
    objects = []
    for k, i in enumerate(idx):
        cat = CATEGORIES[i]
        tile, colour = render_object(cat, int(round(rng.uniform(16, 28) * res / 64)), rng)
        w, h = tile.size
        motion = _MOTIONS[int(rng.choice(len(_MOTIONS), p=_MOTION_P))]
        y_lo = min(k * band, res - h)
        p0, p1 = _trajectory(motion, w, h, res, y_lo, min(res - h, y_lo + max(0, band - h)), rng)
        ts = np.linspace(0.0, 1.0, n_frames)
        xs = np.round(p0[0] + (p1[0] - p0[0]) * ts).astype(int)
        ys = np.round(p0[1] + (p1[1] - p0[1]) * ts).astype(int)
        vis = max(_visible_fraction(int(x), int(y), w, h, res) for x, y in zip(xs, ys))
        if vis >= MIN_VISIBLE:
            objects.append((cat, colour, motion, tile, xs, ys))
    if not objects:  # a clip must show something: one object standing still in the middle
        cat = CATEGORIES[int(idx[0])]
        tile, colour = render_object(cat, int(20 * res / 64), rng)
        x, y = (res - tile.size[0]) // 2, (res - tile.size[1]) // 2
        objects.append((cat, colour, "stay", tile, np.full(n_frames, x), np.full(n_frames, y)))
    frames = np.empty((n_frames, res, res, 3), dtype=np.uint8)
    base = Image.fromarray(bg, "RGB")
    for t in range(n_frames):
        im = base.copy()
        for cat, colour, motion, tile, xs, ys in objects:
            im.paste(tile, (int(xs[t]), int(ys[t])), tile)
        frames[t] = np.asarray(im)
    tracks = [(cat, colour, motion) for cat, colour, motion, *_ in objects]
    return frames, scene, tracks


def encode_mp4(path: Path, frames: np.ndarray, fps: int) -> None:
    import av

    tmp = path.with_name(f".{path.name}.tmp.mp4")
    codec = codec_name()
    with av.open(str(tmp), mode="w", format="mp4") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        # one thread per encoder: the pool already uses every core, and it keeps bytes stable
        stream.codec_context.thread_count = 1
        if codec == "libx264":
            # mbtree off: x264's macroblock-tree rate control (with its SIMD code) reads memory
            # that depends on earlier allocations in the process, so with crf the same frames
            # encoded to other bytes (and decoded pixels) from the second video a process
            # encoded onwards — i.e. differently for each worker count. asm=0 or qp mode fix it
            # too; mbtree=0 keeps the SIMD speed.
            stream.options = {"crf": "18", "preset": "veryfast", "mbtree": "0"}
        else:
            stream.codec_context.bit_rate = 400_000
        for arr in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(arr, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    tmp.replace(path)


def make_videos(out: Path, seed: int, start: int, stop: int, res: int, n_frames: int, fps: int) -> list[dict]:
    """Worker job: render and encode videos [start, stop); return their records."""
    vdir = Path(out) / "msrvtt" / "videos"
    records = []
    for i in range(start, stop):
        rng = item_rng(seed, "msrvtt", i)
        frames, scene, tracks = render_clip(res, n_frames, rng)
        captions = video_captions(scene, tracks, rng, CAPTIONS_PER_VIDEO)
        encode_mp4(vdir / f"video{i}.mp4", frames, fps)
        names = sorted({c.name for c, _, _ in tracks})
        records.append({"index": i, "scene": scene, "objects": names, "captions": captions,
                        "tracks": [{"category": c.name, "colour": col, "motion": m} for c, col, m in tracks]})
    return records


def msrvtt_documents(records: list[dict], counts: dict[str, int], n_frames: int, fps: int,
                     seed: int, version: str) -> tuple[dict, dict]:
    """(videodatainfo, objects) documents in MSR-VTT layout."""
    videos, sentences, objects = [], [], {}
    sen_id = 0
    for r in records:
        vid = f"video{r['index']}"
        videos.append({"category": SCENES.index(r["scene"]), "url": f"negworld://msrvtt/{vid}",
                       "video_id": vid, "start time": 0.0, "end time": round(n_frames / fps, 3),
                       "split": video_split(r["index"], counts), "id": r["index"]})
        for c in r["captions"]:
            sentences.append({"caption": c, "video_id": vid, "sen_id": sen_id})
            sen_id += 1
        objects[vid] = r["objects"]
    info = {"contributor": "negbench NegWorld", "data_created": "2025-01-01", "version": version,
            "year": "2025", "seed": seed, "frames": n_frames, "fps": fps}
    return {"info": info, "videos": videos, "sentences": sentences}, objects
