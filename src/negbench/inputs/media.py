"""Loading media for evaluation: images (PIL) and videos (PyAV, uniform frame sampling).

A video is represented by N frames sampled uniformly: frame i of N is the one at the centre
of the i-th of N equal segments of the video, index floor((i + 0.5) * total / N). Videos
shorter than N frames repeat frames so every video yields exactly N.
"""
from __future__ import annotations

import bisect
import contextlib
import threading
from pathlib import Path

from negbench.core.errors import NegbenchError

DEFAULT_FRAMES = 4


class MediaError(NegbenchError):
    """An image or video that exists but cannot be decoded."""


# Pillow's own bomb guard warns above 89 Mpx and raises above twice that; negbench raises
# above this limit with a message naming the file and the way out
MAX_IMAGE_PIXELS = 89_478_485
BIG_IMAGES_ENV = "NEGBENCH_ALLOW_BIG_IMAGES"  # an env var, so DataLoader workers see it too


def allow_big_images(allow: bool = True) -> None:
    """Lift the decompression-bomb limit (for genuinely huge images you trust)."""
    import os

    if allow:
        os.environ[BIG_IMAGES_ENV] = "1"
    else:
        os.environ.pop(BIG_IMAGES_ENV, None)


def big_images_allowed() -> bool:
    import os

    return os.environ.get(BIG_IMAGES_ENV) == "1"


_PIL_LIMIT_LOCK = threading.Lock()


@contextlib.contextmanager
def _pil_pixel_limit(limit):
    """PIL's bomb limit is a module global: set it for one Image.open and put it back, so
    --allow-big-images never leaves the rest of the process (or a notebook) without a limit."""
    from PIL import Image

    with _PIL_LIMIT_LOCK:
        before = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = limit
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = before


def open_image_checked(path):
    """Image.open with negbench's bomb limit: MediaError naming the file and the flag."""
    import warnings

    from PIL import Image

    allowed = big_images_allowed()
    try:
        with warnings.catch_warnings(), _pil_pixel_limit(None if allowed else Image.MAX_IMAGE_PIXELS):
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(path)
    except Image.DecompressionBombError as exc:
        raise MediaError(f"{path}: image over the decompression-bomb limit ({exc}); pass "
                         f"--allow-big-images if you trust this file") from None
    w, h = im.size
    if w * h > MAX_IMAGE_PIXELS and not allowed:
        im.close()
        raise MediaError(f"{path}: image is {w}x{h} = {w * h:,} pixels, over the {MAX_IMAGE_PIXELS:,}-pixel "
                         f"decompression-bomb limit; pass --allow-big-images if you trust this file")
    return im


def _to_rgb(im) -> "Image.Image":  # noqa: F821
    """Any PIL mode -> RGB, with high bit depths scaled, never clipped: Pillow's convert("RGB")
    clips 16-bit grayscale ('I;16', 'I') at 255, turning an x-ray into a white image."""
    import numpy as np
    from PIL import Image

    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(im, dtype=np.float64)
        if im.mode.startswith("I;16"):
            top = 65535.0
        else:  # 32-bit int or float: the range actually used
            lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
            arr, top = arr - lo, (hi - lo) or 1.0
        arr = np.clip(np.nan_to_num(arr) / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(arr, mode="L").convert("RGB")
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        # transparent pixels become white (what a viewer shows), not whatever colour they hide
        rgba = im.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(canvas, rgba).convert("RGB")
    return im.convert("RGB")


def load_image(path) -> "Image.Image":  # noqa: F821
    """Open an image file as RGB; MediaError (naming the file) when it cannot be decoded or is
    bigger than MAX_IMAGE_PIXELS (unless allow_big_images())."""
    from PIL import UnidentifiedImageError

    try:
        with open_image_checked(path) as im:
            return _to_rgb(im)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise MediaError(f"{path}: unreadable image: {exc}") from None


def uniform_indices(total: int, n: int) -> list[int]:
    """Indices of n frames sampled uniformly from `total` (segment centres; repeats if total < n)."""
    if total <= 0:
        return []
    return [min(total - 1, int((i + 0.5) * total / n)) for i in range(n)]


def sample_video_frames(path, n: int = DEFAULT_FRAMES) -> list:
    """Decode n uniformly spaced frames of a video as RGB PIL images (see module docstring).

    Where the stream has a constant frame rate and a known frame count, it reads where the
    keyframes are from the packet headers and seeks to a wanted frame only when a keyframe lies
    between the last decoded frame and it (otherwise it decodes on), so a long clip costs a few
    GOPs and a clip with a single keyframe is decoded once up to its last wanted frame; every
    decoded frame is checked to be the wanted index (from its timestamp),
    and anything unexpected falls back to decoding the whole clip.
    """
    try:
        import av
    except ImportError as exc:  # optional dependency
        raise NegbenchError("video tasks need PyAV: pip install 'negbench[video]'") from exc
    if n < 1:
        raise NegbenchError(f"frames must be >= 1, got {n}")
    path = Path(path)
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise MediaError(f"{path}: no video stream")
            stream = container.streams.video[0]
            # slice threads: frame threading costs ~1.8x the CPU time per decoded frame (measured
            # on 320x240 H.264), and on a few cores that CPU is taken from the forward pass
            stream.thread_type = "SLICE"
            total = int(stream.frames or 0)
            if total > 0:
                wanted = uniform_indices(total, n)
                got = _seek_frames(container, stream, wanted)
                if got is None:
                    container.seek(0)
                    got = _decode_until(container, stream, wanted)
                if got is not None:
                    return [got[i].copy() for i in wanted]
                container.seek(0)  # the header lied about the count: decode everything
            frames = [f.to_image() for f in container.decode(video=0)]
    except MediaError:
        raise
    except Exception as exc:  # av raises many error types (InvalidDataError, OSError, ...)
        raise MediaError(f"{path}: unreadable video: {exc}") from None
    if not frames:
        raise MediaError(f"{path}: video has no decodable frames")
    return [frames[i] for i in uniform_indices(len(frames), n)]


def _decode_until(container, stream, wanted: list[int]) -> dict | None:
    """{index: PIL image} of the wanted frames, decoding from the start up to the last one."""
    keep: dict[int, object] = {}
    for i, frame in enumerate(container.decode(stream)):
        if i in wanted:
            keep[i] = frame.to_image()
        if i >= wanted[-1]:
            break
    return keep if len(keep) == len(set(wanted)) else None


class _FrameIndex:
    """A frame's index from its timestamp at a constant rate: (pts - start) * time_base * rate,
    when within 0.01 of a whole number (else None: it falls between frames).

    In integers, not Fractions, as it runs on every packet and decoded frame (~280 per
    MSR-VTT-shaped video): 25.8 vs 26.1 ms of decode-worker CPU per video. Exact: with
    x = (pts - start) * N / D, x is within 0.01 of its nearest integer q' exactly when
    100 * |x * D - q' * D| < D, and a remainder of exactly D / 2 (where rounding could go
    either way) is 0.5 away and gives None in both.
    """

    def __init__(self, start: int, time_base, rate):
        self.start = start
        self.num = time_base.numerator * rate.numerator
        self.den = time_base.denominator * rate.denominator

    def __call__(self, pts) -> int | None:
        if pts is None:
            return None
        quotient, remainder = divmod((pts - self.start) * self.num, self.den)
        if 100 * remainder < self.den:
            return quotient
        if 100 * (self.den - remainder) < self.den:
            return quotient + 1
        return None


def _keyframe_indices(container, stream, start: int, frame_index: _FrameIndex, last: int) -> list[int] | None:
    """Sorted frame indices of the stream's keyframes up to the first one past `last`, read from
    packet headers (no decoding; a long clip is not read beyond its last wanted frame's GOP).

    Seeking always lands on a keyframe, so knowing where they are tells whether a seek skips
    any decoding: in a clip with one keyframe (libx264's default GOP of 250 covers most short
    clips) every seek returns to frame 0. None when a keyframe's timestamp is unusable.
    """
    keys = []
    for packet in container.demux(stream):
        if packet.is_keyframe:
            index = frame_index(packet.pts)
            if index is None:
                return None
            keys.append(index)
            if index > last:
                break
    container.seek(start, stream=stream, backward=True)  # rewind: demuxing consumed the packets
    return sorted(keys) or None


def _needs_seek(target: int, position: int, keys: list[int]) -> bool:
    """Whether seeking to `target` skips decoding: a keyframe lies after `position`, at or before it."""
    before = bisect.bisect_right(keys, target) - 1
    return before >= 0 and keys[before] > position


def _seek_frames(container, stream, wanted: list[int]) -> dict | None:
    """{index: PIL image} of the wanted frames via seeking, or None where that cannot be trusted."""
    rate, time_base = stream.average_rate, stream.time_base
    if not rate or not time_base or stream.duration is None:
        return None
    start = stream.start_time or 0
    if abs(float(stream.duration * time_base * rate) - int(stream.frames)) > 1:  # not constant-rate
        return None
    frame_index = _FrameIndex(start, time_base, rate)
    keys = _keyframe_indices(container, stream, start, frame_index, max(wanted))
    if keys is None:
        return None
    keep: dict[int, object] = {}
    decoder, position = None, -1
    for target in sorted(set(wanted)):
        if decoder is None or _needs_seek(target, position, keys):
            container.seek(start + int(target / (rate * time_base)), stream=stream, backward=True)
            decoder, position = container.decode(stream), -1
        for frame in decoder:
            index = frame_index(frame.pts)
            if index is None or index > target or index <= position:  # not the frames we expect
                return None
            position = index
            if index == target:
                keep[index] = frame.to_image()
                break
        else:
            return None
    return keep

