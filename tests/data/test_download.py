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
    with pytest.raises(DownloadError) as info:
        fetch("mouse_ventral1", tmp_path, **FAST)
    message = str(info.value)
    assert "DEG_DATA_MIRROR" in message and "unknown URL" in message
    assert "https://github.com/jbohnslav/deepethogram" in message and "mouse_ventral1.zip" in message
    with pytest.raises(DownloadError, match="zenodo.3608658"):      # per-file homepage
        fetch("sturman_oft", tmp_path, files=["sturman_oft.zip"], **FAST)


def test_http_404_names_url_and_is_not_retried(tmp_path, serve):
    (tmp_path / "empty").mkdir()
    url = serve(tmp_path / "empty")
    with pytest.raises(DownloadError) as info:
        fetch("sturman_epm", tmp_path / "raw", files=[EPM], mirror=url, progress=False, retries=3,
              backoff=0.0)
    assert f"{url}/sturman_epm/{EPM}" in str(info.value) and "404" in str(info.value)
    assert len(serve.handler.requests) == 1


def test_missing_in_local_mirror(tmp_path):
    with pytest.raises(DownloadError, match=f"sturman_epm/{EPM}.*not found in the mirror folder"):
        fetch("sturman_epm", tmp_path / "raw", files=[EPM], mirror=tmp_path / "nothing", **FAST)


def test_network_down_retries_then_names_url(tmp_path):
    with socket.socket() as sock:                          # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
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
