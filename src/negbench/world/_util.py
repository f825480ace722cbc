"""Small helpers shared by the NegWorld writers: per-item RNG and fixed-format output."""
from __future__ import annotations

import io
import zlib
from pathlib import Path

import numpy as np

JPEG_QUALITY = 90


def item_rng(seed: int, dataset: str, index: int) -> np.random.Generator:
    """The RNG of one item, a pure function of (seed, dataset, index).

    Items never share a stream, so the output does not depend on how many workers
    there are or in which order they finish.
    """
    return np.random.default_rng([int(seed), zlib.crc32(dataset.encode()), int(index)])


def jpeg_bytes(img) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=JPEG_QUALITY, optimize=False, subsampling=0)
    return buf.getvalue()


def write_file(path: Path, data: bytes) -> None:
    """Write one item file directly.

    No temp-and-rename per item: a part only counts as done once its marker is written
    after all its items, and an unfinished part is rebuilt from scratch, so a half-written
    image can never be taken for a finished one.
    """
    with open(path, "wb") as f:
        f.write(data)
