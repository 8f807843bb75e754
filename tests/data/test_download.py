"""The downloader against real HTTP servers on 127.0.0.1 serving real Sturman label files."""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import io as pyio
import os
import shutil
import socket
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from deg.data import download, registry
from deg.data.download import ArchiveError, ChecksumError, DownloadError, fetch
from deg.data.registry import RemoteFile

EPM = "AllEPMLables.csv"
OFT = "AllLabDataOFT_final.csv"
FAST = dict(progress=False, retries=0, backoff=0.0, timeout=10.0)


# --------------------------------------------------------------------------------------
# Servers
# --------------------------------------------------------------------------------------
class _Quiet:
    def log_message(self, *args):      # keep pytest output clean
        pass


class RecordingHandler(_Quiet, SimpleHTTPRequestHandler):
    """The stdlib static server (it ignores Range), recording each request's headers."""

    requests: list = []

    def do_GET(self):
        type(self).requests.append((self.path, dict(self.headers)))
        super().do_GET()


class RangeHandler(_Quiet, BaseHTTPRequestHandler):
    """Serves ``root`` with Range support; can drop the connection or answer 503 at first."""

    root: Path
    drop_after: int | None = None      # first request: send only this many body bytes, then hang up
    fail_first: int = 0                # answer 503 to this many requests first
    requests: list = []

    def do_GET(self):
        cls = type(self)
        cls.requests.append((self.path, dict(self.headers)))
        if len(cls.requests) <= cls.fail_first:
            self.send_error(503, "try later")
            return
        path = cls.root / self.path.lstrip("/")
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        start = 0
        if "Range" in self.headers:
            start = int(self.headers["Range"].split("=")[1].split("-")[0])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if cls.drop_after is not None and len(cls.requests) == 1:
            self.wfile.write(body[: cls.drop_after])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)


@pytest.fixture
def serve():
    """serve(root, handler_cls, **attrs) -> base URL of a ThreadingHTTPServer on 127.0.0.1."""
    servers = []

    def start(root: Path, handler=RecordingHandler, **attrs):
        attrs = {"requests": [], **attrs}
        cls = type("Handler", (handler,), attrs)
        if handler is RecordingHandler:
            factory = functools.partial(cls, directory=str(root))
        else:
            cls.root = root
            factory = cls
        server = ThreadingHTTPServer(("127.0.0.1", 0), factory)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(server)
        start.handler = cls
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def mirror(tmp_path, shared_data):
    """A mirror folder <mirror>/<dataset>/<name> with the real Sturman files (copies)."""
    root = download.build_local_mirror(tmp_path / "mirror", ["sturman_oft", "sturman_epm"],
                                       shared=shared_data)
    assert (root / "sturman_oft" / OFT).is_file() and not (root / "sturman_oft" / OFT).is_symlink()
    return root


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# --------------------------------------------------------------------------------------
# Success paths
# --------------------------------------------------------------------------------------
def test_http_mirror_success_and_skip(tmp_path, mirror, serve, monkeypatch):
    monkeypatch.delenv(download.MIRROR_ENV, raising=False)
    url = serve(mirror)
    dest = tmp_path / "raw"
    out = fetch("sturman_epm", dest, files=[EPM], mirror=url, **FAST)
    assert out == {EPM: dest / EPM}
    assert _sha(dest / EPM) == registry.get("sturman_epm").file(EPM).sha256
    assert _leftovers(dest) == [EPM]                        # no .part left behind
    assert serve.handler.requests[0][0] == f"/sturman_epm/{EPM}"
    # A verified file is skipped without any network access (the mirror is now unreachable).
    out2 = fetch("sturman_epm", dest, files=[EPM], mirror="http://127.0.0.1:9", **FAST)
    assert out2 == out and len(serve.handler.requests) == 1


def test_local_folder_and_file_url_mirrors(tmp_path, mirror, monkeypatch):
    wanted = registry.get("sturman_oft").file_names("labels") + registry.get("sturman_oft").file_names("pose")
    out = fetch("sturman_oft", tmp_path / "a", files=wanted, mirror=str(mirror), **FAST)
    assert sorted(out) == sorted(wanted) and len(wanted) == 3
    for name, path in out.items():
        assert _sha(path) == registry.get("sturman_oft").file(name).sha256
    # file:// URL through the environment variable; default destination under DEG_DATA
    monkeypatch.setenv("DEG_DATA", str(tmp_path / "data"))
    monkeypatch.setenv(download.MIRROR_ENV, mirror.as_uri())
    out = fetch("sturman_epm", files=[EPM], progress=False)
    assert out[EPM] == tmp_path / "data" / "sturman_epm" / "raw" / EPM
    assert _sha(out[EPM]) == registry.get("sturman_epm").file(EPM).sha256


def test_resume_after_cut_connection(tmp_path, mirror, serve):
    cut = 50_000
    url = serve(mirror, RangeHandler, drop_after=cut)
    dest = tmp_path / "raw"
    with pytest.raises(DownloadError, match="after 1 attempt"):
        fetch("sturman_oft", dest, files=[OFT], mirror=url, chunk_size=4096, **FAST)
    part = dest / (OFT + ".part")
    assert part.stat().st_size == cut and not (dest / OFT).exists()
    # The next call resumes from the partial file with a Range request.
    out = fetch("sturman_oft", dest, files=[OFT], mirror=url, chunk_size=4096, **FAST)
    requests = serve.handler.requests
    assert len(requests) == 2 and "Range" not in requests[0][1]
    assert requests[1][1]["Range"] == f"bytes={cut}-"
    assert _sha(out[OFT]) == registry.get("sturman_oft").file(OFT).sha256
    assert _leftovers(dest) == [OFT]


def test_resume_within_one_call_by_retry(tmp_path, mirror, serve):
    url = serve(mirror, RangeHandler, drop_after=10_000)
    out = fetch("sturman_epm", tmp_path, files=[EPM], mirror=url, progress=False, retries=2,
                backoff=0.0, chunk_size=1024)
    assert serve.handler.requests[1][1]["Range"] == "bytes=10000-"
    assert _sha(out[EPM]) == registry.get("sturman_epm").file(EPM).sha256


def test_server_ignoring_range_restarts_cleanly(tmp_path, mirror, serve):
    url = serve(mirror)                                     # stdlib server: always 200, full body
    dest = tmp_path / "raw"
    dest.mkdir()
    (dest / (EPM + ".part")).write_bytes(b"garbage that must not survive" * 100)
    out = fetch("sturman_epm", dest, files=[EPM], mirror=url, **FAST)
    assert serve.handler.requests[0][1]["Range"] == f"bytes={29 * 100}-"
    assert _sha(out[EPM]) == registry.get("sturman_epm").file(EPM).sha256


def test_complete_part_file_answered_416_is_verified(tmp_path, mirror, serve):
    url = serve(mirror, RangeHandler)
    dest = tmp_path / "raw"
    dest.mkdir()
    shutil.copyfile(mirror / "sturman_epm" / EPM, dest / (EPM + ".part"))
    out = fetch("sturman_epm", dest, files=[EPM], mirror=url, **FAST)
    assert serve.handler.requests[0][1]["Range"].startswith("bytes=")
    assert _sha(out[EPM]) == registry.get("sturman_epm").file(EPM).sha256


def test_retries_transient_server_errors(tmp_path, mirror, serve):
    url = serve(mirror, RangeHandler, fail_first=2)
    out = fetch("sturman_epm", tmp_path, files=[EPM], mirror=url, progress=False, retries=2, backoff=0.0)
    assert len(serve.handler.requests) == 3
    assert _sha(out[EPM]) == registry.get("sturman_epm").file(EPM).sha256


def test_corrupt_existing_file_is_replaced(tmp_path, mirror):
    dest = tmp_path / "raw"
    dest.mkdir()
    (dest / EPM).write_text("not the real file")
    out = fetch("sturman_epm", dest, files=[EPM], mirror=mirror, **FAST)
    assert _sha(out[EPM]) == registry.get("sturman_epm").file(EPM).sha256


# --------------------------------------------------------------------------------------
# Failures
# --------------------------------------------------------------------------------------
@pytest.fixture
def bad_mirror(tmp_path, shared_data):
    """A mirror whose EPM file has one byte altered."""
    root = tmp_path / "bad"
    (root / "sturman_epm").mkdir(parents=True)
    data = bytearray((shared_data / "sturman" / "EPM" / EPM).read_bytes())
    data[1000] ^= 0x01
    (root / "sturman_epm" / EPM).write_bytes(bytes(data))
    return root, hashlib.sha256(bytes(data)).hexdigest()


def test_checksum_mismatch_over_http(tmp_path, bad_mirror, serve):
    root, bad_sha = bad_mirror
    url = serve(root)
    dest = tmp_path / "raw"
    expected = registry.get("sturman_epm").file(EPM).sha256
    with pytest.raises(ChecksumError) as info:
        fetch("sturman_epm", dest, files=[EPM], mirror=url, **FAST)
    message = str(info.value)
    assert EPM in message and expected in message and bad_sha in message
    assert _leftovers(dest) == []                          # neither final file nor .part


def test_checksum_mismatch_from_local_folder(tmp_path, bad_mirror):
    root, bad_sha = bad_mirror
    dest = tmp_path / "raw"
    with pytest.raises(ChecksumError, match=bad_sha):
        fetch("sturman_epm", dest, files=[EPM], mirror=root, **FAST)
    assert _leftovers(dest) == []                          # the temporary copy is gone too


def test_unknown_origin_without_mirror(tmp_path, monkeypatch):
    monkeypatch.delenv(download.MIRROR_ENV, raising=False)
    with pytest.raises(download.UnavailableError) as info:
        fetch("mouse_ventral1", tmp_path, **FAST)
    message = str(info.value)
    assert "DEG_DATA_MIRROR" in message and "unknown URL" in message
    assert registry.DEG_DATA_ORIGIN in message and "mouse_ventral1.zip" in message
    assert "make data DATASET=mouse_ventral1 FROM=" in message
    with pytest.raises(DownloadError, match="zenodo.3608658"):      # per-file homepage
        fetch("sturman_oft", tmp_path, files=["sturman_oft.zip"], **FAST)


def _dead_port() -> int:
    with socket.socket() as sock:                          # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _with_origin(dataset_id: str, base: str, names=None) -> registry.DatasetRecord:
    """The registry record with the origin URL of its files (or of ``names``) moved to ``base``."""
    record = registry.get(dataset_id)
    files = tuple(dataclasses.replace(f, url=f"{base}/{f.name}") if f.url and (names is None or f.name in names)
                  else f for f in record.files)
    return dataclasses.replace(record, files=files)


def test_http_404_names_url_and_is_not_retried(tmp_path, serve):
    (tmp_path / "empty").mkdir()
    url = serve(tmp_path / "empty")
    record = _with_origin("sturman_epm", url)
    with pytest.raises(DownloadError) as info:
        fetch(record, tmp_path / "raw", files=[EPM], mirror="", progress=False, retries=3, backoff=0.0)
    assert f"{url}/{EPM}" in str(info.value) and "404" in str(info.value)
    assert len(serve.handler.requests) == 1


def test_missing_in_local_mirror_and_at_origin_names_both(tmp_path):
    origin = f"http://127.0.0.1:{_dead_port()}"
    with pytest.raises(DownloadError) as info:
        fetch(_with_origin("sturman_epm", origin), tmp_path / "raw", files=[EPM], mirror=tmp_path / "nothing", **FAST)
    message = str(info.value)
    assert f"sturman_epm/{EPM}: not found in the mirror folder" in message and "both attempts failed" in message
    assert f"{origin}/{EPM}" in message


def test_network_down_retries_then_names_url(tmp_path):
    url = f"http://127.0.0.1:{_dead_port()}"
    with pytest.raises(DownloadError) as info:
        fetch("sturman_epm", tmp_path, files=[EPM], mirror=url, progress=False, retries=2, backoff=0.0)
    assert f"{url}/sturman_epm/{EPM}" in str(info.value) and "3 attempt(s)" in str(info.value)
    assert "DEG_DATA_MIRROR" in str(info.value)


def test_bad_requests():
    with pytest.raises(ValueError, match="generated by deg.data.synthetic"):
        fetch("synthetic_tiny")
    with pytest.raises(ValueError, match="no file"):
        fetch("sturman_epm", files=["nope.csv"])


# --------------------------------------------------------------------------------------
# Archives
# --------------------------------------------------------------------------------------
def _archive_record(tmp_path: Path, name: str, data: bytes):
    """A registry record with one extract=True file, placed in a local mirror."""
    (tmp_path / "mirror" / "custom").mkdir(parents=True)
    (tmp_path / "mirror" / "custom" / name).write_bytes(data)
    remote = RemoteFile(name, None, hashlib.sha256(data).hexdigest(), len(data), extract=True,
                        role="archive", note="test archive")
    return dataclasses.replace(registry.get("dlc_openfield"), id="custom", files=(remote,))


def _tar_gz(members: dict[str, bytes]) -> bytes:
    buf = pyio.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for member, payload in members.items():
            info = tarfile.TarInfo(member)
            info.size = len(payload)
            tf.addfile(info, pyio.BytesIO(payload))
    return buf.getvalue()


def test_tar_gz_extraction(tmp_path):
    record = _archive_record(tmp_path, "bundle.tar.gz",
                             _tar_gz({"bundle/a.txt": b"alpha", "bundle/sub/b.csv": b"1,2\n"}))
    dest = tmp_path / "raw"
    out = fetch(record, dest, mirror=tmp_path / "mirror", **FAST)
    folder = out["bundle.tar.gz"]
    assert folder == dest / "bundle" and folder.is_dir()
    assert (folder / "bundle" / "a.txt").read_bytes() == b"alpha"
    assert (folder / "bundle" / "sub" / "b.csv").read_bytes() == b"1,2\n"
    assert _leftovers(dest) == ["bundle", "bundle.tar.gz"]            # no temporary folder
    # Extracted folder present: skipped even if the mirror disappears.
    shutil.rmtree(tmp_path / "mirror")
    assert fetch(record, dest, mirror=tmp_path / "mirror", **FAST) == out


def test_zip_extraction_by_content(tmp_path):
    buf = pyio.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("videos/v1.txt", "one")
    record = _archive_record(tmp_path, "custom.zip", buf.getvalue())
    out = fetch(record, tmp_path / "raw", mirror=tmp_path / "mirror", **FAST)
    assert (out["custom.zip"] / "videos" / "v1.txt").read_text() == "one"


def test_unsafe_archive_is_refused_and_leaves_nothing(tmp_path):
    record = _archive_record(tmp_path, "evil.tar.gz", _tar_gz({"../escape.txt": b"x"}))
    dest = tmp_path / "raw"
    with pytest.raises(ArchiveError, match="unsafe"):
        fetch(record, dest, mirror=tmp_path / "mirror", **FAST)
    assert _leftovers(dest) == ["evil.tar.gz"] and not (tmp_path / "escape.txt").exists()


def test_build_local_mirror_decompresses_rat_pose(tmp_path, shared_data):
    root = download.build_local_mirror(tmp_path / "m", ["rat_social"], shared=shared_data, link=True)
    rat = registry.get("rat_social")
    pose = rat.file_names("pose")[0]
    assert (root / "rat_social" / pose).read_text().startswith("scorer,")
    annot = rat.file_names("labels")[0]
    assert (root / "rat_social" / annot).is_symlink()
    out = fetch("rat_social", tmp_path / "raw", files=[annot, pose], mirror=root, **FAST)
    assert _sha(out[annot]) == rat.file(annot).sha256
    assert os.path.getsize(out[pose]) > 1_000_000


# --------------------------------------------------------------------------------------
# What arrived: HTML pages, bodies cut short, re-validation, mirror fallback, partial fetch
# --------------------------------------------------------------------------------------
LOGIN_PAGE = (b"<!DOCTYPE html>\n<html><head><title>Sign in - Dropbox</title></head>"
              b"<body><form>email, password</form></body></html>\n")


class BodyHandler(_Quiet, BaseHTTPRequestHandler):
    """Answers every GET with ``body``: as given, without Content-Length, or chunked."""

    body: bytes = b""
    content_type: str = "text/csv"
    framing: str = "length"            # "length", "close" (no Content-Length: ends when the server hangs up), "chunked"
    requests: list = []

    def do_GET(self):
        cls = type(self)
        cls.requests.append((self.path, dict(self.headers)))
        if cls.framing == "close":
            self.protocol_version = "HTTP/1.0"
        else:
            self.protocol_version = "HTTP/1.1"
        self.send_response(200)
        self.send_header("Content-Type", cls.content_type)
        if cls.framing == "length":
            self.send_header("Content-Length", str(len(cls.body)))
        elif cls.framing == "chunked":
            self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        if cls.framing == "chunked":
            for i in range(0, len(cls.body), 50_000):
                piece = cls.body[i:i + 50_000]
                self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.wfile.write(cls.body)
        self.close_connection = True


def _one_file_record(name: str, url: str, sha256=None, size=None) -> registry.DatasetRecord:
    remote = RemoteFile(name, url, sha256, size, role="labels")
    return dataclasses.replace(registry.get("sturman_epm"), id="custom", files=(remote,))


@pytest.mark.parametrize("content_type", ["text/html; charset=utf-8", "text/csv"])
def test_html_page_is_rejected(tmp_path, serve, content_type):
    url = serve(tmp_path, BodyHandler, body=LOGIN_PAGE, content_type=content_type)
    dest = tmp_path / "raw"
    with pytest.raises(download.ContentError) as info:
        fetch(_one_file_record("labels.csv", f"{url}/labels.csv"), dest, mirror="", **FAST)
    message = str(info.value)
    assert f"got an HTML page from {url}/labels.csv instead of a CSV table" in message
    assert "Sign in - Dropbox" in message
    assert _leftovers(dest) == []                         # neither the final name nor a .part


@pytest.fixture
def rat_pose(shared_data):
    """(registry record, the real uncompressed bytes) of rat_social's first pose CSV."""
    rat = registry.get("rat_social")
    remote = rat.file(rat.file_names("pose")[0])
    import gzip
    return rat, remote, gzip.decompress((shared_data / remote.shared).read_bytes())


def _cut_at_line(data: bytes, fraction: float) -> bytes:
    return data[: data.rindex(b"\n", 0, int(len(data) * fraction)) + 1]


def test_body_cut_without_content_length_is_rejected(tmp_path, serve, rat_pose):
    rat, remote, data = rat_pose
    cut = _cut_at_line(data, 0.34)                    # a CSV still parses: only completeness checks catch it
    url = serve(tmp_path, BodyHandler, body=cut, framing="close")
    dest = tmp_path / "raw"
    # The rat pose CSV has a known size and sha256 (filled from the shared copy): refused.
    record = _with_origin("rat_social", url, names=[remote.name])
    with pytest.raises(ChecksumError, match=f"expected {remote.size} bytes, got {len(cut)}|sha256 mismatch"):
        fetch(record, dest, files=[remote.name], mirror="", **FAST)
    assert _leftovers(dest) == []
    # Without a known size either, a close-delimited body cannot be proven whole: refused too.
    with pytest.raises(DownloadError, match="neither a Content-Length nor chunked encoding"):
        fetch(_one_file_record("pose.csv", f"{url}/pose.csv"), dest, mirror="", **FAST)
    assert _leftovers(dest) == []
    # A later fetch does not find a short copy under the final name to return without a request.
    n = len(serve.handler.requests)
    with pytest.raises(DownloadError):
        fetch(_one_file_record("pose.csv", f"{url}/pose.csv"), dest, mirror="", **FAST)
    assert len(serve.handler.requests) == n + 1


def test_chunked_body_is_framed_and_accepted(tmp_path, serve, rat_pose):
    _, remote, data = rat_pose
    url = serve(tmp_path, BodyHandler, body=data, framing="chunked")
    out = fetch(_one_file_record("pose.csv", f"{url}/pose.csv"), tmp_path / "raw", mirror="", **FAST)
    assert out["pose.csv"].read_bytes() == data


def test_existing_bad_copy_is_revalidated_not_trusted(tmp_path, serve, shared_data):
    real = (shared_data / "sturman" / "EPM" / EPM).read_bytes()
    url = serve(tmp_path, BodyHandler, body=real)
    record = _one_file_record("labels.csv", f"{url}/labels.csv")     # no checksum known
    dest = tmp_path / "raw"
    dest.mkdir()
    (dest / "labels.csv").write_bytes(LOGIN_PAGE)                     # what an old downloader kept
    out = fetch(record, dest, mirror="", **FAST)
    assert out["labels.csv"].read_bytes() == real and len(serve.handler.requests) == 1
    fetch(record, dest, mirror="", **FAST)                            # now valid: no new request
    assert len(serve.handler.requests) == 1


def test_mirror_fallback_to_origin(tmp_path, mirror, serve, shared_data):
    # A mirror holding only the label file; the pose files come from their (local) origin.
    only_labels = tmp_path / "partial_mirror"
    (only_labels / "sturman_oft").mkdir(parents=True)
    shutil.copyfile(mirror / "sturman_oft" / OFT, only_labels / "sturman_oft" / OFT)
    mirror_url = serve(only_labels)
    mirror_requests = serve.handler
    origin_url = serve(shared_data / "sturman_pose_oft")
    origin_requests = serve.handler
    record = _with_origin("sturman_oft", origin_url, names=registry.get("sturman_oft").file_names("pose"))
    wanted = record.file_names("labels") + record.file_names("pose")
    out = fetch(record, tmp_path / "raw", files=wanted, mirror=mirror_url, **FAST)
    for name in wanted:
        assert _sha(out[name]) == record.file(name).sha256
    assert [p for p, _ in mirror_requests.requests] == [f"/sturman_oft/{n}" for n in wanted]
    assert sorted(p for p, _ in origin_requests.requests) == sorted(f"/{n}" for n in record.file_names("pose"))
    # A mirror answering with an HTML "not found" page counts as absent too.
    html_mirror = serve(tmp_path, BodyHandler, body=LOGIN_PAGE, content_type="text/html")
    out = fetch(record, tmp_path / "raw2", files=record.file_names("pose")[:1], mirror=html_mirror, **FAST)
    assert _sha(next(iter(out.values()))) == record.file(record.file_names("pose")[0]).sha256
    # Absent from the mirror and unreachable at the origin: the error names both attempts.
    dead = f"http://127.0.0.1:{_dead_port()}"
    with pytest.raises(DownloadError) as info:
        fetch(_with_origin("sturman_oft", dead), tmp_path / "raw3", files=record.file_names("pose")[:1],
              mirror=mirror_url, **FAST)
    message = str(info.value)
    assert f"{mirror_url}/sturman_oft/{record.file_names('pose')[0]}: HTTP 404" in message
    assert f"{dead}/{record.file_names('pose')[0]}" in message and "both attempts failed" in message


def test_partial_fetch_reports_the_placeholders(tmp_path, mirror):
    with pytest.warns(UserWarning, match="could not fetch the placeholder.*sturman_oft.zip"):
        out = fetch("sturman_oft", tmp_path / "raw", mirror=mirror, **FAST)
    record = registry.get("sturman_oft")
    assert sorted(out) == sorted(record.file_names("labels") + record.file_names("pose"))
    assert list(out.missing) == ["sturman_oft.zip"] and "zenodo.3608658" in out.missing["sturman_oft.zip"]
    # Only the placeholder selected: nothing can come, so that is an error.
    with pytest.raises(download.UnavailableError, match="zenodo.3608658"):
        fetch("sturman_oft", tmp_path / "raw", files=["sturman_oft.zip"], mirror=mirror, **FAST)


def test_registry_checksums_match_the_shared_files(shared_data):
    import gzip
    checked = 0
    for record in registry.records():
        for remote in record.files:
            if remote.shared is None:
                continue
            assert remote.sha256 and remote.size, f"{record.id}/{remote.name}: checksum or size missing"
            data = (shared_data / remote.shared).read_bytes()
            if remote.shared.endswith(".gz") and not remote.name.endswith(".gz"):
                data = gzip.decompress(data)
            assert (hashlib.sha256(data).hexdigest(), len(data)) == (remote.sha256, remote.size), remote.name
            checked += 1
    assert checked >= 85        # 80 rat files, 2 Sturman label files, 2 pose excerpts, 1 video
    assert registry.get("sturman_fst").file("AllFSTLables.csv").size == 54_757


@pytest.mark.parametrize("relative", [
    "videos/dlc_openfield_m3v1.mp4",                       # H.264 MP4
    "mabe22/EGS8X2MN4SSUGFWAV976.h5",                      # pandas/PyTables HDF5
    "behaviordepot/demo2/hB_demo2_manual_annotations.mat",  # MATLAB v5
    "behaviordepot/demo1/hB_demo1_manual_annotations.mat.mat",  # MATLAB v7.3 (HDF5)
    "sturman/EPM/AllEPMLables.csv",
    "rat_social/dlc_csv/1DLC_dlcrnetms5_DLC_ratJan24shuffle1_5000_el_filtered.csv.gz",
    "bundle.zip", "bundle.tar.gz",
])
def test_content_checks_accept_real_files_and_refuse_cut_ones(tmp_path, shared_data, relative):
    from deg.data import filecheck

    if relative.startswith("bundle"):
        source = tmp_path / relative
        real = shared_data / "sturman" / "OFT" / OFT
        if relative.endswith(".zip"):
            with zipfile.ZipFile(source, "w", zipfile.ZIP_DEFLATED) as zf:
                zf.write(real, "project/labels.csv")
        else:
            with tarfile.open(source, "w:gz") as tf:
                tf.add(real, "project/labels.csv")
    else:
        source = shared_data / relative
    name = Path(relative).name
    good = tmp_path / ("good_" + name)
    shutil.copyfile(source, good)
    filecheck.validate_content(good, name)                            # the real file passes
    data = source.read_bytes()
    cut = tmp_path / ("cut_" + name)
    cut.write_bytes(data[: len(data) // 2] if not name.endswith(".csv") else data[: len(data) // 2 + 7])
    with pytest.raises(filecheck.ContentError, match=str(cut)):
        filecheck.validate_content(cut, name)
