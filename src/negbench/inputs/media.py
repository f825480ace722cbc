"""Loading media for evaluation: images (PIL) and videos (PyAV, uniform frame sampling).

A video is represented by N frames sampled uniformly: frame i of N is the one at the centre
of the i-th of N equal segments of the video, index floor((i + 0.5) * total / N). Videos
shorter than N frames repeat frames so every video yields exactly N.
"""
from __future__ import annotations

from pathlib import Path

from negbench.core.errors import NegbenchError

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
    """Decode n uniformly spaced frames of a video as RGB PIL images (see module docstring)."""
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
            if total > 0:  # frame count known: keep only the wanted frames while decoding
                wanted = uniform_indices(total, n)
                keep: dict[int, object] = {}
                for i, frame in enumerate(container.decode(stream)):
                    if i in wanted:
                        keep[i] = frame.to_image()
                    if i >= wanted[-1]:
                        break
                if len(keep) == len(set(wanted)):
                    return [keep[i].copy() for i in wanted]
                container.seek(0)  # header lied about the count: fall back to a full decode
            frames = [f.to_image() for f in container.decode(video=0)]
    except MediaError:
        raise
    except Exception as exc:  # av raises many error types (InvalidDataError, OSError, ...)
        raise MediaError(f"{path}: unreadable video: {exc}") from None
    if not frames:
        raise MediaError(f"{path}: video has no decodable frames")
    return [frames[i] for i in uniform_indices(len(frames), n)]
