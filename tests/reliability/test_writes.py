"""Writing files: permissions follow the umask, a full disk names the file and the cause, the frame
cache checks what it reads and rebuilds what is damaged.

The full disk is real: a 64 KiB tmpfs when this process may mount one (root), and in every case a
child process whose file-size limit (``RLIMIT_FSIZE``) is 64 KiB, which the kernel enforces with
``EFBIG`` exactly where a full disk gives ``ENOSPC``.
"""
from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deg import io, paths


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _write_every_kind(folder: Path) -> list[Path]:
    out = [io.write_text(folder / "a.txt", "x"), io.write_json(folder / "b.json", {"a": 1}),
           io.write_npz(folder / "c.npz", x=np.zeros(3)), io.write_csv(folder / "d.csv", pd.DataFrame({"a": [1]})),
           io.write_bytes(folder / "e.bin", b"\0")]
    return out


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_written_files_get_the_mode_open_would_give(tmp_path, umask):
    previous = os.umask(umask)
    try:
        written = _write_every_kind(tmp_path)
        with open(tmp_path / "plain.txt", "w") as fh:       # what a normal open() gives
            fh.write("x")
    finally:
        os.umask(previous)
    expected = 0o666 & ~umask
    assert _mode(tmp_path / "plain.txt") == expected
    assert {p.name: _mode(p) for p in written} == {p.name: expected for p in written}


def test_frame_cache_and_labels_are_not_private(tmp_path):
    from deg.data.labels import write_deg_labels

    previous = os.umask(0o022)
    try:
        path = write_deg_labels(tmp_path / "l.csv", np.array([[1, 0], [0, 1]], dtype=np.int8), ["background", "a"])
    finally:
        os.umask(previous)
    assert _mode(path) == 0o644


_CHILD = textwrap.dedent("""
    import resource, sys
    import numpy as np
    from deg import io
    limit = int(sys.argv[2])
    if limit:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    try:
        if sys.argv[3] == "npz":
            io.write_npz(sys.argv[1], x=np.random.default_rng(0).random(200_000))
        else:
            from deg.train.clips import write_frame_cache
            n = 64
            chunks = (np.full((16, 32, 32, 3), i, np.uint8) for i in range(n // 16))
            write_frame_cache(__import__("pathlib").Path(sys.argv[1]), chunks, n, (32, 32), source="video.mp4")
    except OSError as exc:
        print(f"{type(exc).__name__}: {exc}")
        sys.exit(3)
""")


def _child(dest: Path, limit: int, kind: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(paths.REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-c", _CHILD, str(dest), str(limit), kind], capture_output=True,
                          text=True, env=env, timeout=60)


@pytest.mark.parametrize("kind", ["npz", "frames"])
def test_file_size_limit_names_the_file_and_the_cause(tmp_path, kind):
    dest = tmp_path / f"out.{'npz' if kind == 'npz' else 'npy'}"
    result = _child(dest, 64 * 1024, kind)
    assert result.returncode == 3, result.stderr[-2000:]
    assert result.stdout.startswith("DiskFullError") and str(dest) in result.stdout and "EFBIG" in result.stdout
    assert not dest.exists() and not list(tmp_path.glob(".tmp-*"))   # nothing half-written is left


@pytest.fixture
def tiny_disk(tmp_path):
    """A real 64 KiB tmpfs (needs root / CAP_SYS_ADMIN)."""
    mount = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (not root); the RLIMIT_FSIZE test covers the full disk")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_full_disk_names_the_file_and_enospc(tiny_disk):
    dest = tiny_disk / "sub" / "out.npz"
    result = _child(dest, 0, "npz")
    assert result.returncode == 3, result.stderr[-2000:]
    assert result.stdout.startswith("DiskFullError") and str(dest) in result.stdout and "ENOSPC" in result.stdout
    assert not dest.exists() and not list(dest.parent.glob(".tmp-*"))


def _dataset(isolated):
    from deg.data import synthetic

    return synthetic.generate("synthetic_tiny", progress=False)


def test_damaged_frame_cache_is_rebuilt_with_a_warning_naming_it(isolated):
    from deg.train.clips import FrameCacheWarning, frame_cache_path, load_frames

    ds = _dataset(isolated)
    video = ds.videos[0]
    good = load_frames(ds, [video], (16, 16))[video].copy()
    cache = frame_cache_path(ds.id, video, ds.video_path(video), (16, 16))
    size = cache.stat().st_size
    damages = {
        "cut": lambda b: b[: size // 2],
        "header": lambda b: b"garbage" + b[7:],
        "shape": lambda b: b.replace(f"({len(good)}, 16, 16, 3)".encode(), f"({len(good) - 1}, 16, 16, 3)".encode()),
        "longer": lambda b: b + b"\0" * 48,
    }
    for name, damage in damages.items():
        cache.write_bytes(damage(cache.read_bytes()) if cache.exists() else b"")
        with pytest.warns(FrameCacheWarning, match=str(cache).replace("+", r"\+")):
            again = load_frames(ds, [video], (16, 16))[video]
        assert np.array_equal(again, good), name
        assert cache.stat().st_size == size, name
