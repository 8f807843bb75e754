"""Atomic file writes: nothing half-written ever sits under its final name.

Every writer in the package goes through :func:`atomic_path`: it yields a temporary path in
the destination's folder, and only when the block finishes without an exception is that file
fsync'ed and renamed over the destination (``os.replace`` is atomic on POSIX). A crash or a
``kill -9`` mid-write leaves at worst a ``.tmp-*`` file, which no reader takes for a result.

Written files get the mode a plain ``open(path, "w")`` would give (``0o666`` minus the umask),
not the private ``0o600`` of :func:`tempfile.mkstemp`: datasets, tables and predictions are
meant to be read by the rest of a lab. A write that fails because the disk (or the quota, or
the file-size limit) is full raises :class:`DiskFullError` naming the destination, the folder
and the cause, and leaves the destination as it was; one into a read-only folder raises
:class:`ReadOnlyError` naming the folder (both map to exit codes in :mod:`deg.cli`).
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np


# errno values that mean "no room": disk full, quota exceeded, file-size limit (RLIMIT_FSIZE).
_NO_SPACE = {errno.ENOSPC: "ENOSPC, no space left on device", errno.EDQUOT: "EDQUOT, disk quota exceeded",
             errno.EFBIG: "EFBIG, file too large for the file-size limit"}


class _MessageOnly(OSError):
    """An OSError whose str() is its message alone (no "[Errno 28]" prefix), as a one-line error shows it."""

    def __str__(self) -> str:
        return str(self.strerror)


class DiskFullError(_MessageOnly):
    """A write ran out of room; the message names the file, its folder and the cause."""


class ReadOnlyError(_MessageOnly, PermissionError):
    """A write into a read-only folder (read-only mount, or no write permission); the message names
    the folder and the file. Nothing was written and nothing already there changed."""


_READ_ONLY = {errno.EROFS: "EROFS, read-only file system", errno.EACCES: "EACCES, permission denied",
              errno.EPERM: "EPERM, operation not permitted"}


def ensure_dir(folder: str | os.PathLike) -> Path:
    """``mkdir -p folder``; a read-only place raises :class:`ReadOnlyError` naming the folder."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise read_only_error(exc, folder, folder) from exc
    return folder


def read_only_error(exc: OSError, folder: Path, dest: Path) -> OSError:
    """:class:`ReadOnlyError` for a write of ``dest`` refused because ``folder`` (or the nearest
    existing folder above it) is read-only; any other ``exc`` is returned as it is."""
    if isinstance(exc, ReadOnlyError) or exc.errno not in _READ_ONLY:
        return exc
    folder = next((p for p in (folder, *folder.parents) if p.exists()), folder)   # the one that refused
    return ReadOnlyError(exc.errno, f"{folder}: read-only ({_READ_ONLY[exc.errno]}), cannot write {dest}; make it "
                                    "writable or point DEG_RESULTS / DEG_DATA / DEG_FIGURES at a writable folder")


def current_umask() -> int:
    """The process umask, read without changing it (Linux ``/proc``); else set-and-restore."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def default_file_mode() -> int:
    """The mode ``open(path, "w")`` gives a new file: ``0o666`` minus the umask."""
    return 0o666 & ~current_umask()


def _no_space_cause(exc: BaseException, folder: Path, tmp: Path) -> str | None:
    """Why ``exc`` is a full-disk failure (errno anywhere in its chain, no free block left, or the
    file at the process's file-size limit), else None."""
    seen = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in _NO_SPACE:
            return _NO_SPACE[seen.errno]
        seen = seen.__cause__ or seen.__context__
    # libraries that wrap the OSError in their own error (torch.save's RuntimeError) hide the errno
    try:
        if os.statvfs(folder).f_bavail == 0:
            return "ENOSPC, no space left on device (0 bytes free)"
        import resource

        limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
        if limit != resource.RLIM_INFINITY and tmp.exists() and tmp.stat().st_size >= limit:
            return _NO_SPACE[errno.EFBIG]
    except (OSError, ImportError):
        pass
    return None


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``dest``; rename it to ``dest`` on success.

    ``suffix`` defaults to ``dest``'s own suffix so that libraries that pick a format by
    extension (PyAV, matplotlib, numpy) behave as they would on the final name.
    """
    dest = Path(dest)
    ensure_dir(dest.parent)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".tmp-{dest.name}-", suffix=suffix if suffix is not None else dest.suffix,
                                   dir=dest.parent)
    except OSError as exc:
        raise read_only_error(exc, dest.parent, dest) from exc
    tmp_path = Path(tmp)
    try:
        os.fchmod(fd, default_file_mode())      # mkstemp's 0o600 would make every result private
    finally:
        os.close(fd)
    try:
        try:
            yield tmp_path
            with open(tmp_path, "rb") as fh:  # read-only fd: fsync works, and so do hard links to read-only files
                os.fsync(fh.fileno())
            os.replace(tmp_path, dest)
        except Exception as exc:
            cause = _no_space_cause(exc, dest.parent, tmp_path)
            if cause is None or isinstance(exc, DiskFullError):
                raise
            advice = ("raise the file-size limit (ulimit -f)" if "EFBIG" in cause else
                      "free space there or point DEG_RESULTS / DEG_DATA at a larger disk")
            raise DiskFullError(errno.EFBIG if "EFBIG" in cause else errno.ENOSPC,
                                f"{dest}: cannot write ({cause}) in {dest.parent}; {advice}") from exc
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_bytes(dest: str | os.PathLike, data: bytes) -> Path:
    with atomic_path(dest) as tmp:
        tmp.write_bytes(data)
    return Path(dest)


def write_text(dest: str | os.PathLike, text: str) -> Path:
    with atomic_path(dest) as tmp:
        tmp.write_text(text)
    return Path(dest)


def write_json(dest: str | os.PathLike, obj: Any) -> Path:
    return write_text(dest, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from exc


def write_npz(dest: str | os.PathLike, **arrays: np.ndarray) -> Path:
    with atomic_path(dest, suffix=".npz") as tmp:
        np.savez_compressed(tmp, **arrays)
    return Path(dest)


def write_csv(dest: str | os.PathLike, frame) -> Path:
    """Write a pandas DataFrame as CSV atomically (no index)."""
    with atomic_path(dest) as tmp:
        frame.to_csv(tmp, index=False)
    return Path(dest)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (set, tuple)):
        return list(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


# ============================================================================ text files
class TextEncodingError(ValueError):
    """A text file is in no encoding we can read with confidence; names the file and byte offset."""


class TextEncodingWarning(UserWarning):
    """A text file was not UTF-8 and was read as Windows-1252; the message names it."""


# Non-ASCII characters a Windows-1252 label or config file plausibly holds besides letters.
_PLAUSIBLE_SYMBOLS = set("°µ±×÷·–—‘’‚“”„…€£§©®²³¹½¼¾¿¡«»•")


# Characters no text file holds: C0 controls other than tab, LF, FF and CR; DEL and the C1
# controls; the replacement character. A compiled class: a per-character Python loop took
# 1.5 s per 3 MB pose CSV (two minutes for rat_social's 40 sessions).
_BAD_CHARACTER = re.compile("[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f\ufffd]")


def _bad_character(text: str) -> int | None:
    """Index of the first character no text file holds (controls other than tab, CR, LF, FF)."""
    found = _BAD_CHARACTER.search(text)
    return None if found is None else found.start()


def decode_text(raw: bytes, path: str | os.PathLike) -> str:
    """Decode a text file's bytes without ever replacing a byte silently.

    Order: a UTF-8 or UTF-16 byte-order mark says the encoding; else strict UTF-8; else
    Windows-1252 (a superset of Latin-1's printable range) when every byte decodes and every
    non-ASCII character is a letter or a common symbol, with a :class:`TextEncodingWarning`
    naming the file. Anything else (invalid bytes, NUL or other control characters, UTF-16
    without a BOM) raises :class:`TextEncodingError` naming the file and the byte offset.
    """
    bom = b""
    if raw.startswith(b"\xef\xbb\xbf"):
        encoding, bom = "utf-8", raw[:3]
    elif raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        encoding, bom = ("utf-16-le" if raw[:2] == b"\xff\xfe" else "utf-16-be"), raw[:2]
    else:
        encoding = "utf-8"
    body = raw[len(bom):]
    try:
        text = body.decode(encoding)
    except UnicodeDecodeError as exc:
        offset = exc.start + len(bom)
        if bom:
            raise TextEncodingError(f"{path}: byte offset {offset}: invalid {encoding} although the file starts with "
                                    f"a {encoding} byte-order mark") from None
        try:
            text = body.decode("cp1252")
        except UnicodeDecodeError:
            text = None
        plausible = (text is not None and _bad_character(text) is None
                     and all(ch.isalpha() or ch in _PLAUSIBLE_SYMBOLS for ch in text if ord(ch) > 127))
        if not plausible:
            raise TextEncodingError(f"{path}: not UTF-8 text: byte 0x{body[exc.start]:02x} at byte offset {offset} "
                                    "is invalid, and the file is not plausible Windows-1252/Latin-1 text either; "
                                    "re-save it as UTF-8") from None
        import warnings

        shown = text[max(0, exc.start - 20):exc.start + 20].replace("\n", " ")
        warnings.warn(f"{path}: not UTF-8 (byte 0x{body[exc.start]:02x} at byte offset {offset}); read as "
                      f"Windows-1252, giving ...{shown}...", TextEncodingWarning, stacklevel=3)
        return text
    bad = _bad_character(text)
    if bad is not None:
        offset = len(bom) + len(text[:bad].encode(encoding))
        hint = " (UTF-16 without a byte-order mark?)" if text[bad] == "\0" else ""
        raise TextEncodingError(f"{path}: byte offset {offset}: control character {text[bad]!r} in a text "
                                f"file{hint}; not a {encoding} text file")
    return text


def cut_short(text: str) -> str | None:
    """Why a machine-written text file looks cut short (its last line has no line break), or None."""
    if text and not text.endswith(("\n", "\r")):
        last = text.rsplit("\n", 1)[-1]
        return (f"the last line ({last[:60]!r}) has no line break, so the file looks cut short (an interrupted "
                "download or copy); fetch it again, or end it with a newline if it is complete")
    return None
