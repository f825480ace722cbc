"""Images: high bit depths are scaled, not clipped; decompression bombs are a clear error."""
from __future__ import annotations

import csv
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from negbench.core.errors import TaskFileError
from negbench.inputs.formats import read_task_file
from negbench.inputs.media import MediaError, allow_big_images, load_image


def test_16bit_grayscale_is_scaled_not_clipped(tmp_path):
    ramp = np.linspace(13878, 63222, 64 * 64).reshape(64, 64).astype(np.uint16)
    path = tmp_path / "xray16.png"
    Image.fromarray(ramp).save(path)
    assert Image.open(path).mode.startswith("I")
    rgb = np.asarray(load_image(path))
    assert rgb.shape == (64, 64, 3)
    expect = np.round(ramp.astype(float) / 65535 * 255)
    assert np.abs(rgb[..., 0].astype(float) - expect).max() <= 1
    assert rgb.min() < 60 and rgb.max() > 240 and len(np.unique(rgb)) > 100  # not a white image


def test_32bit_float_image_uses_its_range(tmp_path):
    arr = np.linspace(-1.0, 3.0, 32 * 32, dtype=np.float32).reshape(32, 32)
    path = tmp_path / "f.tif"
    Image.fromarray(arr, mode="F").save(path)
    rgb = np.asarray(load_image(path))
    assert rgb.min() == 0 and rgb.max() == 255


def test_transparent_png_composites_on_white(tmp_path):
    path = tmp_path / "a.png"
    Image.new("RGBA", (4, 4), (10, 20, 30, 0)).save(path)
    assert np.asarray(load_image(path)).min() == 255


def _bomb_png(path, width=20000, height=20000):
    """A valid PNG header claiming width x height with a tiny (truncated) body."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))
    return path


def test_decompression_bomb_is_a_clear_error_and_a_flag_allows_it(tmp_path, monkeypatch):
    bomb = _bomb_png(tmp_path / "bomb.png")
    with pytest.raises(MediaError, match=r"bomb.png: image .*decompression-bomb limit.*--allow-big-images"):
        load_image(bomb)
    task = tmp_path / "t.csv"
    with open(task, "w", newline="") as f:
        csv.writer(f).writerows([["image_path", "caption_0", "caption_1", "correct_answer"],
                                 ["bomb.png", "a dog", "no dog", "0"]])
    with pytest.raises(TaskFileError) as info:
        read_task_file(task, "binary-mcq", tmp_path)
    assert (info.value.row, info.value.column) == (1, "image_path") and "decompression-bomb" in str(info.value)
    assert len(read_task_file(task, "binary-mcq", tmp_path, skip_invalid=True).skipped) == 1
    big = _bomb_png(tmp_path / "big.png", 10000, 10000)  # under Pillow's raise, over our limit
    with pytest.raises(MediaError, match=r"10000x10000 = 100,000,000 pixels.*--allow-big-images"):
        load_image(big)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", Image.MAX_IMAGE_PIXELS)  # restored after the test
    monkeypatch.delenv("NEGBENCH_ALLOW_BIG_IMAGES", raising=False)
    allow_big_images()
    try:
        with pytest.raises(MediaError, match="unreadable image"):  # past the guard: the body is truncated
            load_image(bomb)
    finally:
        allow_big_images(False)
