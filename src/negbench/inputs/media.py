"""Loading media for evaluation: images (PIL) and videos (PyAV, uniform frame sampling).

A video is represented by N frames sampled uniformly: frame i of N is the one at the centre
of the i-th of N equal segments of the video, index floor((i + 0.5) * total / N). Videos
shorter than N frames repeat frames so every video yields exactly N.
"""
from __future__ import annotations

from pathlib import Path

from negbench.core.errors import NegbenchError

VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".gif"}
DEFAULT_FRAMES = 4


class MediaError(NegbenchError):
    """An image or video that exists but cannot be decoded."""


def load_image(path) -> "Image.Image":  # noqa: F821
    """Open an image file as RGB; MediaError (naming the file) when it cannot be decoded."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise MediaError(f"{path}: unreadable image: {exc}") from None


def uniform_indices(total: int, n: int) -> list[int]:
    """Indices of n frames sampled uniformly from `total` (segment centres; repeats if total < n)."""
    if total <= 0:
        return []
    return [min(total - 1, int((i + 0.5) * total / n)) for i in range(n)]


def sample_video_frames(path, n: int = DEFAULT_FRAMES) -> list:
    """Decode n uniformly spaced frames of a video as RGB PIL images (see module docstring).

    Where the stream has a constant frame rate and a known frame count, it seeks to each
    wanted frame (decoding from the keyframe before it), so a long clip costs a few GOPs, not
    a full decode; every decoded frame is checked to be the wanted index (from its timestamp),
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
            stream.thread_type = "AUTO"
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


def _frame_index(frame, start: int, time_base, rate) -> int | None:
    """The frame's index from its timestamp at a constant rate; None when it falls between frames."""
    if frame.pts is None:
        return None
    exact = (frame.pts - start) * time_base * rate
    index = round(exact)
    return int(index) if abs(exact - index) < 0.01 else None


def _seek_frames(container, stream, wanted: list[int]) -> dict | None:
    """{index: PIL image} of the wanted frames via seeking, or None where that cannot be trusted."""
    rate, time_base = stream.average_rate, stream.time_base
    if not rate or not time_base or stream.duration is None:
        return None
    start = stream.start_time or 0
    if abs(float(stream.duration * time_base * rate) - int(stream.frames)) > 1:  # not constant-rate
        return None
    keep: dict[int, object] = {}
    decoder, position = None, -1
    for target in sorted(set(wanted)):
        if decoder is None or target - position > rate:  # far ahead: seek instead of decoding on
            container.seek(start + int(target / (rate * time_base)), stream=stream, backward=True)
            decoder, position = container.decode(stream), -1
        for frame in decoder:
            index = _frame_index(frame, start, time_base, rate)
            if index is None or index > target or index <= position:  # not the frames we expect
                return None
            position = index
            if index == target:
                keep[index] = frame.to_image()
                break
        else:
            return None
    return keep


def is_video(path) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES
