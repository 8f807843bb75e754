"""Download the files of a registry record: mirrors, resume, checksums, atomic writes, archives.

:func:`fetch` puts a dataset's files under ``data/<id>/raw/`` (by default). For each file:

1. Already there: re-validated (sha256 and size when known, and always its content, see 4),
   not trusted; a valid file is skipped with no network access, an invalid one is fetched again.
   An extracted archive's folder is complete by construction (extraction is atomic).
2. Sources, in order: the mirror when one is set (``mirror=`` or the ``DEG_DATA_MIRROR``
   variable: a base URL ``http(s)://``, a ``file://`` URL or a local folder holding
   ``<dataset id>/<name>``), then the record's origin URL. A file absent from the mirror (404/410,
   no such file in the folder, or an HTML page instead of the file) comes from its origin; when
   both fail the error names both attempts. A file whose origin is unknown (``url=None``, a
   placeholder) and which no mirror holds raises :class:`UnavailableError` naming the homepage.
   :func:`fetch` fetches every file it can and reports such placeholders at the end
   (``FetchResult.missing`` and a warning) instead of failing on the first.
3. HTTP(S) is streamed in chunks into ``<name>.part``. A later call resumes it with an HTTP
   ``Range`` request; a server that ignores ``Range`` (answers 200) restarts it from byte 0.
   Network errors are retried with exponential backoff; 4xx answers (404...) are not.
   A body is accepted only when its completeness can be checked: a Content-Length that was
   met, chunked transfer encoding (which ends with an explicit last chunk), or a size or
   sha256 in the registry. A body delimited only by the server closing the connection could
   be cut anywhere (even at a line boundary, where a CSV still parses), so it is refused.
4. The finished file is checked for what it claims to be before it gets its final name
   (:func:`deg.data.filecheck.validate_content`): an HTML page (login or error page, or an HTML content type)
   is refused with "got an HTML page from <url> instead of <what>"; archives must open and
   read to the end, .gz files decompress, CSV files parse with one field count on every line,
   videos open and decode with PyAV (and hold every frame their header declares), .mat and
   .h5 files carry a complete MATLAB/HDF5 structure. Then the record's sha256 and size are
   checked (:class:`ChecksumError`). A failed check deletes the partial file; nothing is left
   behind. Only a verified file is renamed to its final name (``os.replace``, atomic), so a
   file under its final name is complete and of the right kind, or it is not there.
   Local-folder mirrors are copied through :func:`deg.io.atomic_path`.
5. ``extract=True`` archives (.zip, .tar, .tar.gz; detected by content) are unpacked into a
   temporary folder beside them which is renamed to the final folder only when complete.
"""
from __future__ import annotations

import gzip
import hashlib
import http.client
import logging
import os
import shutil
import tarfile
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import warnings
import zipfile
from pathlib import Path, PurePosixPath
from typing import Iterable

from tqdm.auto import tqdm

from deg import io, paths
from deg.data import filecheck, registry
from deg.data.registry import DatasetRecord, RemoteFile

log = logging.getLogger(__name__)

MIRROR_ENV = "DEG_DATA_MIRROR"
CHUNK = 1 << 20                     # bytes per read; also the granularity of resumption
RETRY_HTTP_CODES = {408, 425, 429, 500, 502, 503, 504}
_ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".tar", ".zip")
_NETWORK_ERRORS = (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError)


class DownloadError(RuntimeError):
    """A file could not be obtained (unknown URL, HTTP error, network down, missing in mirror)."""


class ChecksumError(DownloadError, ValueError):
    """Downloaded bytes do not match the registry's sha256 or size."""


class ArchiveError(DownloadError, ValueError):
    """An archive is not a readable .zip/.tar or holds unsafe member paths."""


class ContentError(DownloadError, ValueError):
    """What arrived is not what the file should be (an HTML page, a cut archive, not a video...)."""


class _HtmlPage(ContentError):
    """An HTML page arrived instead of the file."""


class UnavailableError(DownloadError):
    """A file has no known origin URL and no mirror holds it (it must be obtained by hand)."""


class _Absent(DownloadError):
    """The mirror does not hold this file (404/410, no such file, an HTML page): try the origin."""


class FetchResult(dict):
    """``{name: path}`` of the files :func:`fetch` obtained; ``missing`` maps each placeholder it
    could not obtain (no origin URL, not in a mirror) to the reason."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.missing: dict[str, str] = {}


# --------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------
def fetch(dataset: str | DatasetRecord, dest: str | os.PathLike | None = None,
          files: Iterable[str] | None = None, mirror: str | os.PathLike | None = None,
          progress: bool = True, *, retries: int = 3, backoff: float = 1.0,
          timeout: float = 60.0, chunk_size: int = CHUNK) -> FetchResult:
    """Download (or copy from a mirror) the files of a dataset and return ``{name: path}``.

    ``dest`` defaults to ``deg.paths.dataset_dir(id) / "raw"``; ``files`` selects file names
    (default: all of the record's files); ``mirror`` overrides ``DEG_DATA_MIRROR`` (pass ``""``
    to ignore the variable). For ``extract=True`` files the path is the extracted folder (the
    archive is kept beside it). ``retries`` extra attempts follow a network error, after
    ``backoff * 2**attempt`` seconds.

    Every selected file is attempted. Placeholders that cannot be obtained (no origin URL, not
    in a mirror) are reported in ``result.missing`` and by a warning; only when *nothing* of the
    selection could be obtained does that raise :class:`UnavailableError`. Any other failure
    (a file with an origin that did not arrive intact) raises :class:`DownloadError` after the
    other files were attempted, naming every failed file.
    """
    record = dataset if isinstance(dataset, DatasetRecord) else registry.get(dataset)
    if not record.files:
        origin = f"generated by {record.generator}" if record.generator else "has no files"
        raise ValueError(f"dataset {record.id!r} has nothing to download: it is {origin}")
    selected = list(record.files)
    if files is not None:
        wanted = list(files)
        unknown = [n for n in wanted if n not in {f.name for f in record.files}]
        if unknown:
            raise ValueError(f"dataset {record.id!r} has no file(s) {unknown}; its files: "
                             f"{', '.join(record.file_names())}")
        selected = [f for f in record.files if f.name in wanted]
    dest = Path(dest) if dest is not None else paths.dataset_dir(record.id) / "raw"
    result = FetchResult()
    failures: dict[str, DownloadError] = {}
    for remote in selected:
        try:
            result[remote.name] = fetch_file(remote, record.id, dest, mirror=mirror, homepage=record.homepage,
                                             progress=progress, retries=retries, backoff=backoff,
                                             timeout=timeout, chunk_size=chunk_size)
        except UnavailableError as exc:
            result.missing[remote.name] = str(exc)
        except DownloadError as exc:
            failures[remote.name] = exc
    if failures:
        if len(failures) == 1 and not result.missing:
            raise next(iter(failures.values()))
        problems = {**failures, **result.missing}
        raise DownloadError(f"{record.id}: {len(problems)} of {len(selected)} file(s) could not be "
                            "obtained:\n" + "\n".join(f"  {name}: {exc}" for name, exc in problems.items()))
    if result.missing:
        if not result:
            if len(result.missing) == 1:
                raise UnavailableError(next(iter(result.missing.values())))
            raise UnavailableError(f"{record.id}: none of its files could be obtained:\n"
                                   + "\n".join(f"  {n}: {why}" for n, why in result.missing.items()))
        warnings.warn(f"{record.id}: fetched {', '.join(result)}; could not fetch the placeholder(s) "
                      f"{', '.join(result.missing)} (no origin URL and no mirror copy; "
                      f"{next(iter(result.missing.values()))})", UserWarning, stacklevel=2)
    return result


def fetch_file(remote: RemoteFile, dataset_id: str, dest: str | os.PathLike, *,
               mirror: str | os.PathLike | None = None, homepage: str = "", progress: bool = True,
               retries: int = 3, backoff: float = 1.0, timeout: float = 60.0,
               chunk_size: int = CHUNK) -> Path:
    """Obtain one file into folder ``dest``; return its path (or its extracted folder)."""
    dest = Path(dest)
    final = dest / remote.name
    folder = dest / archive_folder_name(remote.name) if remote.extract else None
    if folder is not None and folder.is_dir():
        return folder                       # extraction is atomic: the folder is complete
    if final.exists():
        problem = file_problem(final, remote)
        if problem:
            log.warning("%s is not a valid copy (%s); fetching it again", final, problem)
            final.unlink()
    if not final.exists():
        dest.mkdir(parents=True, exist_ok=True)
        attempts: list[str] = []
        for label, source in candidate_sources(remote, dataset_id, mirror):
            try:
                if isinstance(source, Path):
                    _copy_verified(source, final, remote, progress, chunk_size)
                else:
                    hint = ("" if label == "origin" else f" (mirror from {MIRROR_ENV} or mirror=)")
                    if label == "origin" and not _mirror_value(mirror):
                        hint = f"; if this machine is offline, set {MIRROR_ENV} to a mirror folder or URL"
                    _download_verified(source, final, remote, progress=progress, retries=retries,
                                       backoff=backoff, timeout=timeout, chunk_size=chunk_size,
                                       hint=hint, mirror=label == "mirror")
                break
            except _Absent as exc:
                log.info("%s: %s; trying the origin", remote.name, exc)
                attempts.append(f"mirror: {exc}")
            except DownloadError as exc:
                if not attempts:
                    raise
                raise type(exc)(f"{dataset_id}/{remote.name}: both attempts failed; "
                                + "; ".join(attempts + [f"{label}: {exc}"])) from None
        else:
            where = remote.homepage or homepage or "the dataset's homepage"
            tried = f" Tried: {'; '.join(attempts)}." if attempts else ""
            raise UnavailableError(
                f"{dataset_id}: file {remote.name!r} has an unknown URL (URL unknown: see {where}).{tried} "
                f"Obtain it by hand and either provide it through a mirror (set the {MIRROR_ENV} "
                f"environment variable, or pass mirror=, to a folder or base URL holding "
                f"{dataset_id}/{remote.name}) or import it with "
                f"`make data DATASET={dataset_id} FROM=/path/to/it`.")
    if folder is not None:
        return extract_archive(final, folder)
    return final


def candidate_sources(remote: RemoteFile, dataset_id: str,
                      mirror: str | os.PathLike | None = None) -> list[tuple[str, str | Path]]:
    """Where ``remote`` may come from, in order: ``[("mirror", url or Path), ("origin", url)]``."""
    sources: list[tuple[str, str | Path]] = []
    base = _mirror_value(mirror)
    if base:
        name = PurePosixPath(remote.name).name
        if base.startswith(("http://", "https://")):
            sources.append(("mirror", base.rstrip("/") + "/" + urllib.parse.quote(dataset_id) + "/"
                            + urllib.parse.quote(name)))
        else:
            if base.startswith("file://"):
                base = urllib.request.url2pathname(urllib.parse.urlparse(base).path)
            sources.append(("mirror", Path(base).expanduser() / dataset_id / name))
    if remote.url:
        sources.append(("origin", remote.url))
    return sources


def resolve_source(remote: RemoteFile, dataset_id: str,
                   mirror: str | os.PathLike | None = None) -> str | Path | None:
    """The first place ``remote`` is looked for: a URL, a local mirror Path, or None (unknown)."""
    sources = candidate_sources(remote, dataset_id, mirror)
    return sources[0][1] if sources else None


def file_problem(path: str | os.PathLike, remote: RemoteFile) -> str | None:
    """Why ``path`` is not a valid copy of ``remote`` (size, sha256, content), or None."""
    path = Path(path)
    size = path.stat().st_size
    if remote.size is not None and size != remote.size:
        return f"size {size} bytes, expected {remote.size}"
    if remote.sha256 is not None and sha256_file(path) != remote.sha256:
        return "sha256 differs from the registry's"
    try:
        filecheck.validate_content(path, remote.name, archive=remote.extract)
    except filecheck.ContentError as exc:
        return str(exc)
    return None


def sha256_file(path: str | os.PathLike, chunk_size: int = CHUNK) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def archive_folder_name(name: str) -> str:
    """Folder an archive is extracted into: its name without the archive suffix."""
    for suffix in _ARCHIVE_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name + "_extracted"


def extract_archive(archive: str | os.PathLike, folder: str | os.PathLike) -> Path:
    """Unpack a .zip or .tar(.gz/.bz2/.xz) archive into ``folder``, atomically.

    Members are unpacked into a temporary folder beside ``folder`` which is renamed only when
    complete. Absolute paths, ``..`` components and links pointing outside are refused
    (:class:`ArchiveError`).
    """
    archive, folder = Path(archive), Path(folder)
    if folder.is_dir():
        return folder
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{folder.name}-", dir=folder.parent))
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                for member in zf.namelist():
                    parts = PurePosixPath(member.replace("\\", "/")).parts
                    if member.startswith(("/", "\\")) or ".." in parts or ":" in member:
                        raise ArchiveError(f"{archive}: unsafe member path {member!r}")
                zf.extractall(tmp)
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive) as tf:
                try:
                    tf.extractall(tmp, filter="data")   # refuses absolute/.. paths and odd links
                except tarfile.FilterError as exc:
                    raise ArchiveError(f"{archive}: unsafe member ({exc})") from None
        else:
            raise ArchiveError(f"{archive}: not a .zip or .tar archive")
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def build_local_mirror(dest: str | os.PathLike, dataset_ids: Iterable[str] | None = None,
                       shared: str | os.PathLike | None = None, link: bool = False) -> Path:
    """Lay out the registry files that have a copy in the shared data folder as a mirror.

    Writes ``<dest>/<dataset id>/<name>`` for every file with ``RemoteFile.shared`` whose copy
    exists under ``shared`` (default ``deg.paths.shared_data_dir()``); gzip copies are
    decompressed. ``link=True`` symlinks uncompressed files instead of copying them. Serve
    ``dest`` over HTTP, or point ``DEG_DATA_MIRROR`` at it, to run the downloader offline.
    """
    dest = Path(dest)
    shared = Path(shared) if shared is not None else paths.shared_data_dir()
    ids = list(dataset_ids) if dataset_ids is not None else registry.all_ids()
    for dataset_id in ids:
        for remote in registry.get(dataset_id).files:
            if remote.shared is None or not (shared / remote.shared).is_file():
                continue
            source, target = shared / remote.shared, dest / dataset_id / remote.name
            if target.exists():
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            if remote.shared.endswith(".gz") and not remote.name.endswith(".gz"):
                with gzip.open(source, "rb") as src, io.atomic_path(target) as tmp, open(tmp, "wb") as out:
                    shutil.copyfileobj(src, out, CHUNK)
            elif link:
                target.symlink_to(source.resolve())
            else:
                with io.atomic_path(target) as tmp:
                    shutil.copyfile(source, tmp)
    return dest


# --------------------------------------------------------------------------------------
# Internals
# --------------------------------------------------------------------------------------
def _mirror_value(mirror: str | os.PathLike | None) -> str:
    value = os.environ.get(MIRROR_ENV, "") if mirror is None else os.fspath(mirror)
    return value.strip()


def _check(path: Path, remote: RemoteFile, digest: str, source: str) -> None:
    """Raise ChecksumError (after deleting ``path``) when size or sha256 differ."""
    size = path.stat().st_size
    problem = None
    if remote.sha256 is not None and digest != remote.sha256:
        problem = f"sha256 mismatch: expected {remote.sha256}, got {digest}"
    elif remote.size is not None and size != remote.size:
        problem = f"size mismatch: expected {remote.size} bytes, got {size}"
    if problem:
        path.unlink(missing_ok=True)
        raise ChecksumError(f"{remote.name} from {source}: {problem}; the partial file was deleted")


def _verify(path: Path, remote: RemoteFile, source: str, content_type: str | None, chunk_size: int) -> None:
    """Content first (an HTML page says more than a checksum mismatch), then sha256 and size.

    Raises (after deleting ``path``) on any problem.
    """
    try:
        filecheck.validate_content(path, remote.name, content_type=content_type, source=source,
                                   archive=remote.extract)
    except filecheck.ContentError as exc:
        path.unlink(missing_ok=True)
        cls = _HtmlPage if isinstance(exc, filecheck.HtmlPageError) else ContentError
        raise cls(f"{exc}; the partial file was deleted") from None
    _check(path, remote, sha256_file(path, chunk_size), source)


def _progress_bar(name: str, total: int | None, initial: int, enabled: bool) -> tqdm:
    return tqdm(total=total, initial=initial, unit="B", unit_scale=True, unit_divisor=1024,
                desc=name, disable=not enabled, leave=False)


def _copy_verified(source: Path, final: Path, remote: RemoteFile, progress: bool,
                   chunk_size: int) -> None:
    if not source.is_file():
        raise _Absent(f"{source}: not found in the mirror folder (set by {MIRROR_ENV} or "
                      f"mirror=); expected <mirror>/<dataset id>/{remote.name}")
    with io.atomic_path(final) as tmp:
        with open(source, "rb") as src, open(tmp, "wb") as out, \
                _progress_bar(remote.name, source.stat().st_size, 0, progress) as bar:
            while chunk := src.read(chunk_size):
                out.write(chunk)
                bar.update(len(chunk))
        try:
            _verify(tmp, remote, str(source), None, chunk_size)   # raising here leaves no file
        except _HtmlPage as exc:
            raise _Absent(str(exc)) from None


class _RangeMismatch(http.client.HTTPException):
    """The server answered 206 for a different byte range than asked: retry from scratch."""


def _download_verified(url: str, final: Path, remote: RemoteFile, *, progress: bool, retries: int,
                       backoff: float, timeout: float, chunk_size: int, hint: str,
                       mirror: bool = False) -> None:
    part = final.with_name(final.name + ".part")
    attempt = 0
    while True:
        try:
            content_type, framed = _stream(url, part, remote, progress=progress, timeout=timeout,
                                           chunk_size=chunk_size)
            break
        except urllib.error.HTTPError as exc:
            if exc.code == 416 and part.exists():
                # Asked for bytes past the end: the part file is already whole when the server's
                # "bytes */N" names its size (a longer one is caught by the size check below).
                total = _content_range_total(exc.headers.get("Content-Range", "") if exc.headers else "")
                content_type, framed = None, total == part.stat().st_size
                break
            if mirror and exc.code in (404, 410):
                raise _Absent(f"{url}: HTTP {exc.code} {exc.reason}") from None
            if exc.code not in RETRY_HTTP_CODES or attempt >= retries:
                raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}{hint}") from None
            error: Exception = exc
        except _NETWORK_ERRORS as exc:
            if attempt >= retries:
                reason = getattr(exc, "reason", None) or exc
                raise DownloadError(f"could not download {url} after {attempt + 1} attempt(s): "
                                    f"{reason}{hint}") from exc
            error = exc
        delay = backoff * 2 ** attempt
        log.warning("download of %s failed (%s); retrying in %.1f s", url, error, delay)
        time.sleep(delay)
        attempt += 1
    try:
        _verify(part, remote, url, content_type, chunk_size)
    except _HtmlPage as exc:
        if mirror:
            raise _Absent(str(exc)) from None
        raise
    if not framed and remote.size is None and remote.sha256 is None:
        part.unlink(missing_ok=True)
        raise DownloadError(f"{remote.name} from {url}: the server sent neither a Content-Length nor "
                            "chunked encoding, and the registry knows no size or sha256 for this file, so "
                            "a body cut short cannot be told from a complete one; not accepted (the "
                            "partial file was deleted)")
    os.replace(part, final)


def _stream(url: str, part: Path, remote: RemoteFile, *, progress: bool, timeout: float,
            chunk_size: int) -> tuple[str | None, bool]:
    """One HTTP request appending to (or restarting) ``part``; raises on a short body.

    Returns the Content-Type and whether the body's end was framed by the protocol (a
    Content-Length that was met, or chunked encoding, whose cut raises in http.client).
    """
    offset = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": "deg-downloader (python urllib)", "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout) as resp:
        mode = "wb"
        if offset and resp.status == 206:
            start = _content_range_start(resp.headers.get("Content-Range", ""))
            if start != offset:
                part.unlink(missing_ok=True)
                raise _RangeMismatch(f"asked for bytes {offset}-, got Content-Range "
                                     f"{resp.headers.get('Content-Range')!r}")
            mode = "ab"
        else:
            offset = 0      # a 200 answer (Range ignored or not sent): restart from byte 0
        length = resp.headers.get("Content-Length")
        length = int(length) if length and length.isdigit() else None
        chunked = "chunked" in resp.headers.get("Transfer-Encoding", "").lower()
        content_type = resp.headers.get("Content-Type")
        total = offset + length if length is not None else remote.size
        written = 0
        with open(part, mode) as fh, _progress_bar(remote.name, total, offset, progress) as bar:
            while chunk := resp.read(chunk_size):
                fh.write(chunk)
                written += len(chunk)
                bar.update(len(chunk))
            fh.flush()
            os.fsync(fh.fileno())
    # http.client returns b"" on a dropped connection instead of raising: check the length.
    if length is not None and written < length:
        raise http.client.IncompleteRead(b"", length - written)
    return content_type, length is not None or chunked


def _content_range_start(value: str) -> int | None:
    # "bytes 100-999/1000"
    try:
        return int(value.split()[1].split("-")[0])
    except (IndexError, ValueError):
        return None


def _content_range_total(value: str) -> int | None:
    # "bytes */1000" or "bytes 0-999/1000"
    try:
        return int(value.rsplit("/", 1)[1])
    except (IndexError, ValueError):
        return None
