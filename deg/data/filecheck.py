"""Is this file what its name says? Content checks for downloads, mirrors and hand-supplied archives.

:func:`validate_content` raises :class:`ContentError` (naming the file, where it came from and
what was found) unless the file at ``path`` is plausibly a complete file of the kind its
``name`` says. What "plausibly complete" means per kind:

* anything: not empty, and not an HTML page (a login, error or "file not found" page saved
  under a data file's name; detected by content and by an HTML ``Content-Type``);
* ``.zip``: the central directory opens and every member's CRC checks (``ZipFile.testzip``);
* ``.tar``, ``.tar.gz``/``.tgz``, ``.tar.bz2``, ``.tar.xz``: the compressed stream decompresses to
  its end and every member header is read; the last member's data lies inside the file;
* ``.gz``: the stream decompresses to its end (a cut stream raises);
* ``.csv`` / ``.tsv``: text (no NUL byte) that parses with one field count on every line, and
  at least one line after the header;
* ``.txt``: text (no NUL byte);
* videos (``.mp4``, ``.avi``, ...): PyAV opens a video stream, every packet demuxes, an MP4
  holds every frame its header declares, and the first and the last frame decode;
* ``.mat``: MATLAB v5 files load with ``scipy.io.loadmat``; v7.3 files are HDF5 (below);
* ``.h5`` / ``.hdf5``: the HDF5 superblock is found and the file is at least as long as the
  end-of-file address it records (a cut file is shorter); h5py, when installed, also opens it;
* ``.json``, ``.yaml`` / ``.yml``: they parse.

A file cut exactly at a line boundary still parses as CSV: completeness of such files comes
from the transfer (Content-Length) or the registry's size and sha256, which
:mod:`deg.data.download` checks as well.
"""
from __future__ import annotations

import bz2
import csv
import gzip
import json
import lzma
import os
import struct
import tarfile
import zipfile
import zlib
from pathlib import Path

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".m4v", ".wmv", ".mpg", ".mpeg", ".webm")
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".tar", ".zip")
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_HTML_TYPES = ("text/html", "application/xhtml+xml")
_CHUNK = 1 << 20


class ContentError(ValueError):
    """A file's content is not what its name says (or it is cut short)."""


class HtmlPageError(ContentError):
    """An HTML page arrived instead of a data file."""


def kind_of(name: str, archive: bool = False) -> str:
    """The kind of file ``name`` should hold: archive, gz, csv, text, video, mat, hdf5, json, yaml, other."""
    lower = name.lower()
    if archive or lower.endswith(ARCHIVE_SUFFIXES):
        return "archive"
    suffix = Path(lower).suffix
    return {".gz": "gz", ".csv": "csv", ".tsv": "csv", ".txt": "text", ".mat": "mat", ".h5": "hdf5",
            ".hdf5": "hdf5", ".json": "json", ".yaml": "yaml", ".yml": "yaml"}.get(
        suffix, "video" if suffix in VIDEO_SUFFIXES else "other")


_WHAT = {"archive": "a .zip/.tar archive", "gz": "a gzip file", "csv": "a CSV table", "text": "a text file",
         "video": "a video", "mat": "a MATLAB .mat file", "hdf5": "an HDF5 file", "json": "a JSON file",
         "yaml": "a YAML file", "other": "the data file"}


def validate_content(path: str | os.PathLike, name: str | None = None, *, content_type: str | None = None,
                     source: str = "", archive: bool = False) -> str:
    """Raise :class:`ContentError` unless ``path`` holds a complete file of the kind ``name`` says.

    ``name`` (default: ``path``'s name) decides the kind (see the module docstring);
    ``archive=True`` expects a .zip or .tar archive whatever the name. ``content_type`` is the
    HTTP Content-Type the file came with, ``source`` where it came from (for the message).
    Returns the kind that was checked.
    """
    path = Path(path)
    name = name or path.name
    kind = kind_of(name, archive)
    where = f" from {source}" if source else ""
    label = f"{name}{where} ({path})" if source else str(path)
    size = path.stat().st_size
    if size == 0:
        raise ContentError(f"{label}: empty file instead of {_WHAT[kind]}")
    with open(path, "rb") as fh:
        head = fh.read(4096)
    html_type = bool(content_type) and content_type.split(";")[0].strip().lower() in _HTML_TYPES
    if not name.lower().endswith((".html", ".htm")) and (html_type or _looks_like_html(head)):
        raise HtmlPageError(f"got an HTML page{where or ' (' + str(path) + ')'} instead of {_WHAT[kind]} "
                            f"{name!r}: {_html_title(head)}; the link needs a login, has expired or names "
                            "a web page, not the file")
    check = _CHECKS.get(kind)
    if check is not None:
        try:
            check(path, head)
        except ContentError as exc:
            raise ContentError(f"{label}: {exc}") from None
        except (OSError, EOFError, ValueError, zlib.error, lzma.LZMAError, tarfile.TarError,
                zipfile.BadZipFile, struct.error) as exc:
            raise ContentError(f"{label}: not a complete {_WHAT[kind]} ({type(exc).__name__}: {exc}); "
                               "it may be cut short or be another kind of file") from None
    return kind


# ------------------------------------------------------------------------------ HTML
def _looks_like_html(head: bytes) -> bool:
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith((b"<!doctype html", b"<html")):
        return True
    return text.startswith(b"<") and any(tag in text for tag in (b"<html", b"<head>", b"<body", b"<title>"))


def _html_title(head: bytes) -> str:
    text = head.decode("utf-8", errors="replace")
    lower = text.lower()
    start, end = lower.find("<title>"), lower.find("</title>")
    if start >= 0 and end > start:
        return f"page title {text[start + 7:end].strip()[:80]!r}"
    return f"it starts {text.strip()[:60]!r}"


# ------------------------------------------------------------------------------ per kind
def _check_text(path: Path, head: bytes) -> None:
    with open(path, "rb") as fh:
        offset = 0
        while chunk := fh.read(_CHUNK):
            nul = chunk.find(b"\x00")
            if nul >= 0:
                raise ContentError(f"binary data (a NUL byte at offset {offset + nul}), not text")
            offset += len(chunk)


def _check_csv(path: Path, head: bytes) -> None:
    _check_text(path, head)
    first = head.splitlines()[0] if head.splitlines() else b""
    delimiter = max((",", ";", "\t"), key=lambda d: first.count(d.encode()))
    with open(path, newline="", encoding="utf-8", errors="replace") as fh:
        reader = csv.reader(fh, delimiter=delimiter)
        expected, rows = None, 0
        for row in reader:
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            if expected is None:
                expected = len(row)
            elif len(row) != expected:
                raise ContentError(f"line {reader.line_num} has {len(row)} fields, the lines before it "
                                   f"{expected} ({delimiter!r}-separated): cut short or not this table")
            rows += 1
    if rows < 2:
        raise ContentError("a header but no data rows")


def _check_gz(path: Path, head: bytes) -> None:
    with gzip.open(path, "rb") as fh:
        while fh.read(_CHUNK):
            pass


def _decompressor_open(path: Path, head: bytes):
    if head.startswith(b"\x1f\x8b"):
        return gzip.open(path, "rb")
    if head.startswith(b"BZh"):
        return bz2.open(path, "rb")
    if head.startswith(b"\xfd7zXZ\x00"):
        return lzma.open(path, "rb")
    return None


def _check_archive(path: Path, head: bytes) -> None:
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()
            if bad is not None:
                raise ContentError(f"zip member {bad!r} fails its CRC check")
            if not zf.namelist():
                raise ContentError("an empty zip archive")
        return
    stream = _decompressor_open(path, head)
    if stream is not None:                 # the whole compressed stream must decompress to its end
        with stream:
            while stream.read(_CHUNK):
                pass
    try:
        tf = tarfile.open(path)
    except tarfile.ReadError:
        raise ContentError("not a .zip or .tar archive") from None
    with tf:
        members = tf.getmembers()
    if not members:
        raise ContentError("an empty tar archive")
    if stream is None:                     # plain tar: the last member's data must be in the file
        end = max(m.offset_data + m.size for m in members)
        if end > path.stat().st_size:
            raise ContentError(f"cut short: member data runs to byte {end}, the file has "
                               f"{path.stat().st_size}")


def _check_video(path: Path, head: bytes) -> None:
    from deg.data import video

    try:
        info = video.video_info(path)      # demuxes every packet; an MP4 missing frames raises
        video.read_video(path, start=0, stop=1)
        video.read_video(path, start=info.n_frames - 1, stop=info.n_frames)
    except video.VideoError as exc:
        raise ContentError(str(exc).replace(f"{path}: ", "")) from None


def _check_mat(path: Path, head: bytes) -> None:
    if len(head) >= 128 and head[126:128] in (b"IM", b"MI") and head[124:126] in (b"\x00\x02", b"\x02\x00"):
        _check_hdf5(path, head)            # MATLAB v7.3 = HDF5 with a 512-byte user block
        return
    if not head.startswith(b"MATLAB"):
        raise ContentError(f"no MATLAB header (starts {head[:20]!r})")
    import scipy.io

    scipy.io.loadmat(str(path))


def _check_hdf5(path: Path, head: bytes) -> None:
    size = path.stat().st_size
    with open(path, "rb") as fh:
        base = 0
        while base < size:
            fh.seek(base)
            if fh.read(8) == HDF5_SIGNATURE:
                break
            base = 512 if base == 0 else base * 2
        else:
            raise ContentError("no HDF5 signature")
        block = fh.read(64)
    version = block[0]
    if version in (0, 1):
        o = block[5]
        start = 16 + (4 if version == 1 else 0)
    elif version in (2, 3):
        o = block[1]
        start = 4
    else:
        raise ContentError(f"unknown HDF5 superblock version {version}")
    # The end-of-file address: measured from the start of the file in the files checked here
    # (MATLAB v7.3 files with a 512-byte user block record their full length, not length - 512).
    end = _uint(block, start + 2 * o, o)
    if end > size:
        raise ContentError(f"cut short: its HDF5 superblock records {end} bytes, the file has {size}")
    try:
        import h5py
    except ImportError:
        return
    with h5py.File(path, "r") as f:
        f.visit(lambda _name: None)


def _uint(block: bytes, start: int, width: int) -> int:
    return int.from_bytes(block[start:start + width], "little")


def _check_json(path: Path, head: bytes) -> None:
    json.loads(path.read_text(encoding="utf-8"))


def _check_yaml(path: Path, head: bytes) -> None:
    import yaml

    try:
        yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ContentError(f"not valid YAML ({exc})") from None


_CHECKS = {"archive": _check_archive, "gz": _check_gz, "csv": _check_csv, "text": _check_text,
           "video": _check_video, "mat": _check_mat, "hdf5": _check_hdf5, "json": _check_json,
           "yaml": _check_yaml}

__all__ = ["ContentError", "HtmlPageError", "kind_of", "validate_content", "VIDEO_SUFFIXES",
           "ARCHIVE_SUFFIXES"]
