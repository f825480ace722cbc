"""Batched media encoding: workers decode between CPU forward passes, with the same embeddings."""
from __future__ import annotations

import os
import time

import numpy as np
import pytest

from conftest import make_image, make_video
from negbench.evaluation.encoding import decoding_competes_with_forward, encode_media, usable_cores


@pytest.fixture
def forward_uses_every_core():
    """The CPU forward pass with one thread per core, as torch's default is on most machines."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(usable_cores())
    yield
    torch.set_num_threads(before)


def test_decoding_competes_only_with_a_cpu_forward_pass(forward_uses_every_core):
    assert decoding_competes_with_forward("cpu", 1)
    assert decoding_competes_with_forward(None, 2)
    assert not decoding_competes_with_forward("cpu", 0)
    assert not decoding_competes_with_forward("cuda", 2)


@pytest.mark.parametrize("modality", ["image", "video"])
def test_workers_between_forward_passes_give_the_main_process_embeddings(adapter, tmp_path, modality,
                                                                         forward_uses_every_core):
    make = make_video if modality == "video" else make_image
    paths = [make(tmp_path / f"m{i}.{'mp4' if modality == 'video' else 'png'}", i) for i in range(9)]
    paths.insert(4, tmp_path / "missing.png")
    in_main, failed_main = encode_media(adapter, paths, modality=modality, batch_size=4, num_workers=0,
                                        progress=False)
    in_workers, failed_workers = encode_media(adapter, paths, modality=modality, batch_size=4, num_workers=2,
                                              progress=False)
    assert np.array_equal(in_main, in_workers)
    assert list(failed_main) == list(failed_workers) == [4]
    assert np.abs(in_main[[i for i in range(10) if i != 4]]).sum(axis=1).min() > 0


class _Timed:
    """The tiny adapter, with a slow forward pass whose intervals are recorded, and a preprocess
    (run in the workers) that appends its start time and process id to a file."""

    def __init__(self, adapter, log_path):
        self.inner, self.log_path, self.forwards = adapter, str(log_path), []
        self.device = adapter.device

    def preprocess(self, image):
        fd = os.open(self.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        os.write(fd, f"{time.monotonic()} {os.getpid()}\n".encode())
        os.close(fd)
        time.sleep(0.01)
        return self.inner.preprocess(image)

    def encode_images(self, pixels):
        start = time.monotonic()
        time.sleep(0.4)
        out = self.inner.encode_images(pixels)
        self.forwards.append((start, time.monotonic()))
        return out


def test_no_item_starts_decoding_during_a_cpu_forward_pass(adapter, tmp_path, forward_uses_every_core):
    """Each worker may finish the item it began when the gate closed; none begins another."""
    paths = [make_image(tmp_path / f"m{i}.png", i) for i in range(40)]
    timed = _Timed(adapter, tmp_path / "starts.txt")
    emb, failed = encode_media(timed, paths, batch_size=8, num_workers=2, progress=False)
    assert not failed and emb.shape[0] == 40 and len(timed.forwards) == 5
    starts = [start for start, _ in _decode_starts(tmp_path / "starts.txt")]
    assert len(starts) == 40
    for begin, end in timed.forwards:
        during = [t for t in starts if begin < t < end]
        assert len(during) <= 2, f"{len(during)} items began decoding during one forward pass"


def _decode_starts(path) -> list[tuple[float, int]]:
    return [(float(t), int(pid)) for t, pid in (line.split() for line in path.read_text().splitlines())]


@pytest.mark.parametrize("torch_threads", [1, None])
def test_each_item_is_decoded_once_by_one_set_of_workers(adapter, tmp_path, torch_threads):
    """With and without the gate (1 forward thread + 1 worker fit on 2 cores): a progress bar that
    iterated the DataLoader twice once started a second set of workers, the first set decoding
    two batches each for nothing."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(torch_threads or usable_cores())
    try:
        paths = [make_image(tmp_path / f"m{i}.png", i) for i in range(30)]
        timed = _Timed(adapter, tmp_path / "starts.txt")
        timed.encode_images = adapter.encode_images
        encode_media(timed, paths, batch_size=4, num_workers=1, progress=True)
    finally:
        torch.set_num_threads(before)
    starts = _decode_starts(tmp_path / "starts.txt")
    assert len(starts) == 30 and len({pid for _, pid in starts}) == 1
