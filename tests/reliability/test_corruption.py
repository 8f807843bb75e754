"""Property test: every reader, fed randomly corrupted copies of real files, refuses with the file's
name or returns the right answer; never a silent wrong result, never a bare library traceback.

Corruptions (seeded, ``CASES`` per reader, drawn from copies of the files in ``../shared/data``):

* ``cut``: the file cut inside a line (an interrupted download): machine-written formats must be
  refused; a DeepEthogram label CSV may instead read as the rows before the cut, exactly;
* ``structure``: one separator or line break replaced by a letter (fields shift): refused;
* ``high_byte``: one byte replaced by a random byte >= 0x80: refused with the byte offset, or read
  with a :class:`deg.io.TextEncodingWarning` naming the file (never replaced silently);
* ``shuffle``: data rows shuffled: interval formats (order carries no meaning) read exactly as the
  original; per-frame formats (order is time) are refused;
* ``utf16`` (with BOM): read exactly as the original; ``utf16_nobom``: refused.
"""
from __future__ import annotations

import gzip
import warnings
from pathlib import Path

import numpy as np
import pytest

from deg import io, paths
from deg.data.keypoints import KeypointFormatError, read_dlc
from deg.data.labels import LabelFormatError, read_caltech, read_deg_labels, read_sturman, write_deg_labels

CASES = 30
KINDS = ("cut", "structure", "high_byte", "shuffle", "utf16", "utf16_nobom")
STURMAN_FRAMES = 1000          # a short window keeps each read fast; the original is read the same way


# ----------------------------------------------------------------------------- readers and results
def _sturman(path):
    parsed = read_sturman(path, n_frames=STURMAN_FRAMES)
    return parsed.behaviours, parsed.matrices, parsed.dlc_files


def _dlc(path):
    kp = read_dlc(path)
    return kp.animals, kp.bodyparts, kp.frame_index, kp.xy, kp.likelihood


READERS = {
    # name: (reader, header lines kept in place when shuffling, rows are time-ordered, separator)
    "sturman_epm": (_sturman, 1, False, ";"),
    "sturman_oft": (_sturman, 1, False, ";"),
    "caltech": (read_caltech, None, False, "\t"),
    "dlc_single": (_dlc, 3, True, ","),
    "dlc_multi": (_dlc, 4, True, ","),
    "deg_labels": (read_deg_labels, 1, True, ","),
}


def _equal(a, b) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, np.ndarray):
        return a.shape == b.shape and np.array_equal(a, b, equal_nan=a.dtype.kind == "f")
    return a == b


@pytest.fixture(scope="module")
def originals(tmp_path_factory) -> dict[str, bytes]:
    """name -> bytes of a real file (prefixes of the long pose files, cut at a line break)."""
    shared_data = paths.shared_data_dir()
    if not shared_data.is_dir():
        pytest.skip(f"real data folder {shared_data} is absent (it lies beside the checkout in CI only)")
    root = tmp_path_factory.mktemp("originals")
    single = sorted((shared_data / "sturman_pose_oft").glob("*.csv"))[0].read_bytes()
    (multi,) = (shared_data / "rat_social" / "dlc_csv").glob("12DLC_*.csv.gz")
    multi = gzip.decompress(multi.read_bytes())
    epm = shared_data / "sturman" / "EPM" / "AllEPMLables.csv"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parsed = read_sturman(epm, n_frames=STURMAN_FRAMES)
    (video, annotator), matrix = next(iter(parsed.matrices.items()))      # (1000, 6) of a real annotator
    labels = write_deg_labels(root / f"{video}_{annotator}.csv", matrix, parsed.behaviours)
    prefix = lambda raw, n: b"".join(raw.splitlines(keepends=True)[:n])          # noqa: E731
    return {"sturman_epm": prefix(epm.read_bytes(), 250),
            "sturman_oft": prefix((shared_data / "sturman" / "OFT" / "AllLabDataOFT_final.csv").read_bytes(), 250),
            "caltech": (shared_data / "rat_social" / "annotations" / "1_annot.txt").read_bytes(),
            "dlc_single": prefix(single, 153), "dlc_multi": prefix(multi, 154), "deg_labels": labels.read_bytes()}


# ----------------------------------------------------------------------------- corruptions
def _data_lines(name: str, lines: list[bytes]) -> range:
    keep = READERS[name][1]
    if keep is None:        # caltech: the segment lines of the first stream
        start = next(i for i, line in enumerate(lines) if line.startswith(b"-----")) + 1
        stop = next((i for i in range(start, len(lines)) if lines[i].strip().startswith(b"S")), len(lines))
        return range(start, stop)
    return range(keep, len(lines))


def corrupt(name: str, raw: bytes, kind: str, rng: np.random.Generator) -> bytes:
    sep = READERS[name][3].encode()
    if kind == "cut":       # strictly inside a line: neither side of the cut is a line break
        data = np.frombuffer(raw, np.uint8)
        breaks = (data == 10) | (data == 13)
        inside = np.flatnonzero(~breaks[:-1] & ~breaks[1:]) + 1          # cut between bytes i-1 and i
        return raw[:int(rng.choice(inside))]
    if kind == "structure":
        where = np.flatnonzero((np.frombuffer(raw, np.uint8) == sep[0]) | (np.frombuffer(raw, np.uint8) == 10))
        if name == "caltech":   # the segment lines (a tab in the configuration block only pads)
            lines = raw.splitlines(keepends=True)
            span = _data_lines(name, lines)
            lo = sum(len(x) for x in lines[:span.start])
            hi = sum(len(x) for x in lines[:span.stop])
            where = where[(where >= lo) & (where < hi) & (np.frombuffer(raw, np.uint8)[where] == sep[0])]
            where = where[[raw[w - 1:w] not in (b" ", b"\t") for w in where]]          # not the leading pad
        i = int(rng.choice(where))
        return raw[:i] + b"x" + raw[i + 1:]
    if kind == "high_byte":
        i = int(rng.integers(0, len(raw)))
        return raw[:i] + bytes([int(rng.integers(0x80, 0x100))]) + raw[i + 1:]
    if kind == "shuffle":
        lines = raw.splitlines(keepends=True)
        span = _data_lines(name, lines)
        body = [lines[i] for i in span]
        order = rng.permutation(len(body))
        while len(body) > 1 and (order == np.arange(len(body))).all():
            order = rng.permutation(len(body))
        return b"".join(lines[:span.start] + [body[i] for i in order] + lines[span.stop:])
    if kind == "utf16":
        return raw.decode("utf-8").encode("utf-16")
    if kind == "utf16_nobom":
        return raw.decode("utf-8").encode("utf-16-le")
    raise ValueError(kind)


def _expected(name: str, kind: str) -> str:
    """'refuse', 'same' (the original's result), 'warn_or_refuse', or 'prefix_or_refuse'."""
    if kind == "cut":
        return "prefix_or_refuse" if name == "deg_labels" else "refuse"
    if kind in ("structure", "utf16_nobom"):
        return "refuse"
    if kind == "high_byte":
        return "warn_or_refuse"
    if kind == "shuffle":
        return "refuse" if READERS[name][2] else "same"
    return "same"


@pytest.mark.parametrize("name", list(READERS))
def test_corrupted_real_files_are_refused_or_read_correctly(name, originals, tmp_path):
    reader = READERS[name][0]
    source = tmp_path / f"original-{name}.csv"
    source.write_bytes(originals[name])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = reader(source)
    rng = np.random.default_rng(sum(map(ord, name)))           # seeded per reader, stable across runs
    seen = []
    for case in range(CASES):
        kind = KINDS[case % len(KINDS)]
        path = tmp_path / f"{name}-{case}-{kind}.csv"
        path.write_bytes(corrupt(name, originals[name], kind, rng))
        expected = _expected(name, kind)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                result = reader(path)
            except (LabelFormatError, KeypointFormatError) as exc:
                assert str(path) in str(exc), f"case {case} ({kind}): message does not name the file: {exc}"
                assert expected != "same", f"case {case} ({kind}) should read as the original: {exc}"
                seen.append((kind, "refused"))
                continue
        encoding_warned = any(issubclass(w.category, io.TextEncodingWarning) and str(path) in str(w.message)
                              for w in caught)
        assert expected != "refuse", f"case {case} ({kind}): a corrupted file was accepted silently"
        if expected == "same":
            assert _equal(result, reference), f"case {case} ({kind}): read differently from the original"
        elif expected == "warn_or_refuse":
            assert encoding_warned, f"case {case} ({kind}): a non-UTF-8 byte was accepted without a warning"
        elif expected == "prefix_or_refuse":
            matrix, names = result
            assert names == reference[1] and np.array_equal(matrix, reference[0][:len(matrix)]), f"case {case}"
        seen.append((kind, "read"))
    assert {kind for kind, _ in seen} == set(KINDS)
