"""Video I/O with PyAV on a real video (../shared/data, skipped when absent) and on written clips.

The real video is decoded twice in full (read_video and iter_frames) at 64x64 and compared;
everything else reads short windows. Malformed files are made in ``tmp_path``.
"""
from __future__ import annotations

import time
from pathlib import Path

import av
import numpy as np
import pytest

from deg import paths
from deg.data.video import (
    LabelLengthError,
    VideoError,
    check_labels_match,
    default_codec,
    iter_frames,
    read_video,
    video_info,
    write_video,
)

REAL_NAME = "videos/dlc_openfield_m3v1.mp4"   # 640x480, 30 fps, 2,330 frames, keyframes every ~200
REAL_FRAMES = 2330
SMALL = (48, 64)                              # (H, W) every full read of the real video is resized to


@pytest.fixture(scope="module")
def real_video() -> Path:
    path = paths.shared_data_dir() / REAL_NAME
    if not path.exists():
        pytest.skip(f"real video {path} is absent (../shared/data lies beside the checkout in CI only)")
    return path


@pytest.fixture(scope="module")
def real_full(real_video):
    """The whole real video at SMALL, and the decoding rate (frames/s) of that read."""
    t0 = time.perf_counter()
    frames = read_video(real_video, size=SMALL)
    rate = len(frames) / (time.perf_counter() - t0)
    return frames, rate


def _moving_clip(n: int = 24, h: int = 48, w: int = 64) -> np.ndarray:
    """(n, h, w, 3) uint8: smooth colour gradients drifting over time (compresses well)."""
    t, y, x = np.meshgrid(np.arange(n), np.arange(h), np.arange(w), indexing="ij")
    r = 128 + 100 * np.sin(2 * np.pi * (x + 2 * t) / w)
    g = 128 + 100 * np.cos(2 * np.pi * (y - t) / h)
    b = 60 + 2 * (x + y)
    return np.stack([r, g, b], axis=-1).clip(0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------- real video
def test_info_of_real_video(real_video):
    info = video_info(real_video)
    assert info.n_frames == REAL_FRAMES
    assert info.fps == pytest.approx(30.0, abs=0.01)
    assert (info.height, info.width) == (480, 640)
    assert info.codec == "h264"


def test_full_read_shape_and_speed(real_full):
    frames, rate = real_full
    assert frames.shape == (REAL_FRAMES, *SMALL, 3) and frames.dtype == np.uint8
    # not a constant or empty picture: the floor and the mouse give contrast
    assert frames.std() > 10
    print(f"\nread_video, 640x480 H.264 -> {SMALL[0]}x{SMALL[1]} RGB: {rate:.0f} frames/s")
    # Measured 270-330 frames/s on an idle 2-core machine; the floor is loose for shared CI machines.
    assert rate > 100


@pytest.mark.parametrize("start,stop", [(0, 5), (181, 184), (182, 183), (700, 760), (2300, None)])
def test_window_equals_same_frames_of_full_read(real_video, real_full, start, stop):
    # (181, 184) straddles the keyframe at 182; (182, 183) starts on it; (700, 760) starts mid-GOP
    window = read_video(real_video, size=SMALL, start=start, stop=stop)
    expected = real_full[0][start:stop]
    assert window.shape == expected.shape
    np.testing.assert_array_equal(window, expected)


def test_resize_shape_and_full_resolution(real_video, real_full):
    full_res = read_video(real_video, start=10, stop=12)
    assert full_res.shape == (2, 480, 640, 3)
    small = read_video(real_video, size=(30, 40), start=10, stop=12)
    assert small.shape == (2, 30, 40, 3)
    # a downscaled frame keeps the picture: close to a block average of the full frame
    blocks = full_res.reshape(2, 30, 16, 40, 16, 3).mean(axis=(2, 4))
    assert np.abs(small.astype(float) - blocks).mean() < 8


def test_iter_frames_chunks_concatenate_to_full_read(real_video, real_full):
    chunks = list(iter_frames(real_video, size=SMALL, chunk=1000))
    assert [len(c) for c in chunks] == [1000, 1000, 330]
    np.testing.assert_array_equal(np.concatenate(chunks), real_full[0])


def test_bad_windows_and_sizes_raise(real_video):
    with pytest.raises(ValueError, match="outside"):
        read_video(real_video, start=2000, stop=REAL_FRAMES + 1)
    with pytest.raises(ValueError, match="outside"):
        read_video(real_video, start=10, stop=5)
    with pytest.raises(ValueError, match="positive"):
        read_video(real_video, size=(0, 10), stop=1)
    with pytest.raises(ValueError, match="chunk"):
        next(iter_frames(real_video, chunk=0))


def test_check_labels_match(real_video):
    assert check_labels_match(real_video, REAL_FRAMES) == REAL_FRAMES
    with pytest.raises(LabelLengthError, match=rf"{REAL_FRAMES} frames but labels x.csv have {REAL_FRAMES - 1}"):
        check_labels_match(real_video, REAL_FRAMES - 1, labels_path="x.csv")
    with pytest.raises(ValueError, match="2331"):
        check_labels_match(real_video, REAL_FRAMES + 1)


def test_truncated_real_video_raises(real_video, tmp_path):
    # the real file keeps its index (moov) at the end: the first 30% cannot even be opened
    data = real_video.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: int(0.3 * len(data))])
    with pytest.raises(VideoError, match="cut.mp4"):
        video_info(cut)
    with pytest.raises(VideoError, match="cut.mp4"):
        read_video(cut, stop=1)


# ----------------------------------------------------------------------------- writing
def test_write_read_round_trip(tmp_path):
    clip = _moving_clip()
    assert default_codec() == "libx264"      # the pinned av wheels ship x264
    out = write_video(tmp_path / "clip.mp4", clip, fps=25)
    info = video_info(out)
    assert (info.n_frames, info.height, info.width, info.codec) == (24, 48, 64, "h264")
    assert info.fps == pytest.approx(25.0)
    back = read_video(out)
    assert back.shape == clip.shape
    err = np.abs(back.astype(float) - clip).mean()
    assert err < 4, err
    # windows are exact on our own files too (B-frames, one keyframe)
    np.testing.assert_array_equal(read_video(out, start=7, stop=19), back[7:19])
    assert not list(tmp_path.glob(".tmp-*")), "temporary file left behind"


def test_write_from_chunks_and_mpeg4_fallback(tmp_path):
    clip = _moving_clip(n=30)
    chunks = (clip[i:i + 7] for i in range(0, 30, 7))         # a generator: streaming write
    a = read_video(write_video(tmp_path / "chunks.mp4", chunks, fps=30))
    b = read_video(write_video(tmp_path / "whole.mp4", clip, fps=30))
    np.testing.assert_array_equal(a, b)                       # x264 is deterministic
    m = write_video(tmp_path / "m4.mp4", clip, fps=30, codec="mpeg4")
    assert video_info(m).codec == "mpeg4"
    assert np.abs(read_video(m).astype(float) - clip).mean() < 6


def test_write_rejects_bad_input(tmp_path):
    clip = _moving_clip(n=4)
    with pytest.raises(ValueError, match="odd"):
        write_video(tmp_path / "odd.mp4", clip[:, :47], fps=30)
    with pytest.raises(ValueError, match="uint8"):
        write_video(tmp_path / "float.mp4", clip.astype(np.float32), fps=30)
    with pytest.raises(ValueError, match="no frames"):
        write_video(tmp_path / "empty.mp4", clip[:0], fps=30)
    with pytest.raises(ValueError, match=".mp4"):
        write_video(tmp_path / "clip.avi", clip, fps=30)
    with pytest.raises(ValueError, match="size"):
        write_video(tmp_path / "mixed.mp4", [clip, clip[:, :, :32]], fps=30)
    # a failed write leaves nothing under the final name and no temporary file
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_windows_exact_with_open_gop(tmp_path):
    # Open GOPs: frames shown just before a keyframe may depend on the previous GOP, and a seek
    # can land on that keyframe; read_video must then start from an earlier keyframe.
    from fractions import Fraction

    clip = _moving_clip(n=60, h=32, w=32)
    path = tmp_path / "open_gop.mp4"
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=30, options={
            "x264-params": "keyint=12:min-keyint=12:open-gop=1:bframes=3:scenecut=0"})
        stream.width = stream.height = 32
        stream.pix_fmt = "yuv420p"
        for i, rgb in enumerate(clip):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, 30)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    full = read_video(path)
    assert len(full) == 60
    for start in range(1, 59):
        np.testing.assert_array_equal(read_video(path, start=start, stop=start + 2), full[start:start + 2],
                                      err_msg=f"window starting at {start}")


def test_truncated_written_video_gives_clear_error(tmp_path):
    # our files carry their index up front (faststart): a cut copy opens but is short
    noise = np.random.default_rng(0).integers(0, 256, (60, 64, 64, 3), dtype=np.uint8)
    path = write_video(tmp_path / "noise.mp4", noise, fps=30)
    cut = tmp_path / "noise_cut.mp4"
    cut.write_bytes(path.read_bytes()[: int(0.3 * path.stat().st_size)])
    with pytest.raises(VideoError, match=r"noise_cut.mp4.*truncated.*60 frames"):
        video_info(cut)


# ----------------------------------------------------------------------------- not videos
def test_text_file_named_mp4(tmp_path):
    fake = tmp_path / "notes.mp4"
    fake.write_text("frame,label\n0,1\n" * 50)
    with pytest.raises(VideoError, match="notes.mp4.*not a readable video"):
        video_info(fake)
    with pytest.raises(VideoError, match="notes.mp4"):
        read_video(fake)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(VideoError, match="absent.mp4: no such video file"):
        video_info(tmp_path / "absent.mp4")
    with pytest.raises(VideoError, match="no such video file"):
        list(iter_frames(tmp_path / "absent.mp4"))
    with pytest.raises(VideoError, match="directory"):
        video_info(tmp_path)


def test_audio_only_file_has_no_video_stream(tmp_path):
    path = tmp_path / "tone.mp4"
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=16000)
        stream.layout = "mono"
        t = np.arange(16000) / 16000
        frame = av.AudioFrame.from_ndarray((0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None],
                                           format="fltp", layout="mono")
        frame.sample_rate = 16000
        for packet in stream.encode(frame):
            container.mux(packet)
        container.mux(stream.encode(None))
    with pytest.raises(VideoError, match="tone.mp4: contains no video stream"):
        video_info(path)
