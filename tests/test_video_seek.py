"""Video frames decoded by seeking are the frames a full decode picks."""
from __future__ import annotations

import numpy as np
import pytest

from hypothesis import given, settings
from hypothesis import strategies as st

from negbench.inputs.media import _FrameIndex, _needs_seek, _seek_frames, sample_video_frames, uniform_indices


def write_mp4(path, codec: str, n_frames: int, rate: int = 25, gop: int = 12, size: int = 48):
    """A real MP4 written by PyAV: every frame's pixels encode its index."""
    import av

    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.codec_context.gop_size = gop
        for i in range(n_frames):
            arr = np.zeros((size, size, 3), dtype=np.uint8)
            arr[:] = (i * 7) % 256
            arr[: size // 2, (i % (size - 8)):(i % (size - 8)) + 8] = 255
            for packet in stream.encode(av.VideoFrame.from_ndarray(arr, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def full_decode(path, n):
    import av

    with av.open(str(path)) as c:
        frames = [f.to_image() for f in c.decode(video=0)]
    return [frames[i] for i in uniform_indices(len(frames), n)]


@pytest.mark.parametrize("codec,n_frames,n", [("mpeg4", 90, 4), ("libx264", 120, 8), ("mpeg4", 7, 4),
                                              ("libx264", 61, 3)])
def test_seeking_gives_the_frames_of_a_full_decode(tmp_path, codec, n_frames, n):
    import av

    path = write_mp4(tmp_path / f"clip_{codec}.mp4", codec, n_frames)
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        assert _seek_frames(c, stream, uniform_indices(int(stream.frames), n)) is not None  # really seeks
    got, ref = sample_video_frames(path, n), full_decode(path, n)
    assert len(got) == len(ref) == n
    for a, b in zip(got, ref):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_world_video_writer_clips(tmp_path):
    """Clips written by NegWorld's own MP4 writer decode to the same frames by seeking."""
    from negbench.world.video import encode_mp4, render_clip

    frames, _, _ = render_clip(48, 75, np.random.default_rng(5))
    path = tmp_path / "video0.mp4"
    encode_mp4(path, frames, fps=15)
    import av

    with av.open(str(path)) as c:
        assert _seek_frames(c, c.streams.video[0], uniform_indices(75, 4)) is not None
    for n in (1, 4, 16, 80):
        got, ref = sample_video_frames(path, n), full_decode(path, n)
        assert [np.asarray(a).tolist() for a in got] == [np.asarray(b).tolist() for b in ref]


@pytest.mark.parametrize("gop,n", [(250, 4), (250, 16), (30, 4), (1, 5)])
def test_keyframe_spacing_does_not_change_frames(tmp_path, gop, n):
    """One keyframe (x264's default GOP covers the clip), sparse ones, or every frame a keyframe."""
    import av

    path = write_mp4(tmp_path / f"gop{gop}.mp4", "libx264", 150, gop=gop)
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        assert _seek_frames(c, stream, uniform_indices(int(stream.frames), n)) is not None
    got, ref = sample_video_frames(path, n), full_decode(path, n)
    assert [np.asarray(a).tolist() for a in got] == [np.asarray(b).tolist() for b in ref]


def test_seeks_only_when_a_keyframe_lies_between():
    keys = [0, 30, 60]
    assert not _needs_seek(50, 40, keys)      # keyframe 30 is behind the decoder: decode on
    assert _needs_seek(65, 40, keys)          # keyframe 60 skips frames 41..59
    assert not _needs_seek(131, 18, [0])      # a single keyframe: never seek back to it
    assert _needs_seek(5, -1, [0])            # nothing decoded yet


class SeekCounter:
    """A real PyAV container that counts its seeks (everything else passes through)."""

    def __init__(self, container):
        self.container, self.seeks = container, 0

    def seek(self, *args, **kwargs):
        self.seeks += 1
        return self.container.seek(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.container, name)


def test_single_keyframe_clip_is_decoded_once(tmp_path):
    """With one keyframe, seeking to later frames would re-decode from frame 0 each time."""
    import av

    from negbench.world.video import encode_mp4

    base = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    path = tmp_path / "one_key.mp4"   # smooth motion: x264's default GOP (250) gives one keyframe
    encode_mp4(path, np.stack([np.roll(base, t, axis=1) for t in range(150)]), fps=15)
    with av.open(str(path)) as c:
        assert sum(p.is_keyframe for p in c.demux(c.streams.video[0])) == 1
    with av.open(str(path)) as c:
        counter = SeekCounter(c)
        assert _seek_frames(counter, c.streams.video[0], uniform_indices(150, 4)) is not None
    assert counter.seeks == 2   # the rewind after reading keyframe positions + the first frame's seek
    got, ref = sample_video_frames(path, 4), full_decode(path, 4)
    assert [np.asarray(a).tolist() for a in got] == [np.asarray(b).tolist() for b in ref]


def _fraction_frame_index(pts, start, time_base, rate):
    """The definition, in Fractions: the index when within 0.01 of a whole number."""
    if pts is None:
        return None
    from fractions import Fraction

    exact = (pts - start) * time_base * rate
    index = round(exact)
    # exactly 1/100, not the float 0.01 (a hair above it: hypothesis found pts - start = 3947.01 frames)
    return int(index) if abs(exact - index) < Fraction(1, 100) else None


@settings(max_examples=400, deadline=None)
@given(pts=st.one_of(st.none(), st.integers(-10**6, 10**9)), start=st.integers(-5000, 5000),
       tb=st.sampled_from([(1, 15360), (1, 12800), (1, 90000), (1001, 30000), (1, 1000), (1, 25), (3, 7)]),
       rate=st.sampled_from([(15, 1), (25, 1), (30000, 1001), (24000, 1001), (8, 1), (7, 3)]))
def test_integer_frame_index_equals_the_fraction_definition(pts, start, tb, rate):
    from fractions import Fraction

    time_base, frame_rate = Fraction(*tb), Fraction(*rate)
    assert _FrameIndex(start, time_base, frame_rate)(pts) == _fraction_frame_index(pts, start, time_base, frame_rate)


def test_integer_frame_index_at_the_edges():
    from fractions import Fraction

    index = _FrameIndex(0, Fraction(1, 1000), Fraction(1, 1))  # a frame every 1000 ticks
    # within 0.01 of a frame (strictly) -> that frame; exactly 0.01 or more away -> between frames
    assert [index(p) for p in (0, 1000, 1009, 991, 990, 1010, 1500, -1000, -1009, -990, None)] == \
        [0, 1, 1, 1, None, None, None, -1, -1, None, None]
