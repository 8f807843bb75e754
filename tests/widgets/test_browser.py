"""The ethogram widget in a real JupyterLab page, driven by headless Chromium (Debian's package).

Load a synthetic video in the widget, scrub with the keys, label a bout, save, check the file on disk,
then run the notebook again (a new widget that re-opens the saved file) and see the bout there.
Chromium is installed with apt-get when missing; without it (no root, no apt) the test is skipped
with the reason. ``DEG_WIDGET_SCREENSHOT=<png>`` also writes a screenshot of the widget (the README's).
"""
from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import nbformat
import pytest

from deg.data.labels import read_deg_labels
from deg.paths import REPO

pytestmark = pytest.mark.slow


# the notebook's kernel is connected and idle (run-all before that can wait on a kernel dialog)
KERNEL_IDLE = """(() => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
  return k && k.connectionStatus === 'connected' && k.status === 'idle'; })()"""
RUN_ALL = "() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }"   # not awaited


def _pos(frame: int) -> str:
    return ("[...document.querySelectorAll('.deg-ethogram .deg-pos')].slice(-1)"
            f".some(e => e.textContent.startsWith('frame {frame} '))")


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        pytest.skip("chromium is not installed and cannot be (needs apt-get as root)")
    proc = subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", "chromium"],
                          capture_output=True, text=True, timeout=900)
    found = shutil.which("chromium")
    if not found:
        pytest.skip(f"apt-get install chromium failed: {proc.stderr.strip()[-500:]}")
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def lab(tmp_path):
    """A JupyterLab server on 127.0.0.1 serving a notebook that opens the widget on a synthetic video."""
    from deg.data import synthetic

    ds = synthetic.generate("synthetic_tiny", root=tmp_path / "data" / "synthetic_tiny", progress=False)
    labels = tmp_path / "video00_me.csv"
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(
        "from deg.widgets.viewer import EthogramWidget\n"
        f"w = EthogramWidget.for_labels({str(ds.video_path('video00'))!r}, {str(labels)!r}, editing='me',\n"
        f"                              others={{'truth': {str(ds.label_path('video00', 'truth'))!r}}})\nw")]
    nbformat.write(nb, tmp_path / "label.ipynb")
    port, token = _free_port(), secrets.token_hex(16)
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", JUPYTER_CONFIG_DIR=str(tmp_path / "cfg"),
               JUPYTER_RUNTIME_DIR=str(tmp_path / "rt"))
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={tmp_path}", "--LabApp.expose_app_in_browser=True",
         "--ServerApp.allow_root=True", "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
        env=env, stdout=subprocess.DEVNULL, stderr=open(tmp_path / "lab.log", "w"))
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=1)
                break
            except OSError:
                if server.poll() is not None:
                    raise RuntimeError((tmp_path / "lab.log").read_text()[-2000:])
                time.sleep(0.25)
        yield f"{base}/lab/tree/label.ipynb?token={token}", labels, tmp_path
    finally:
        _shutdown_kernels(base, token)
        server.terminate()
        server.wait(timeout=60)


def _shutdown_kernels(base: str, token: str) -> None:
    """Stop the server's kernels first: a server stopping them itself waits on each in turn."""
    import json

    try:
        with urllib.request.urlopen(f"{base}/api/kernels?token={token}", timeout=5) as r:
            kernels = json.load(r)
        for k in kernels:
            urllib.request.urlopen(urllib.request.Request(f"{base}/api/kernels/{k['id']}?token={token}",
                                                          method="DELETE"), timeout=30)
    except OSError:
        pass


def test_label_scrub_save_reopen_in_jupyterlab(lab):
    chromium = _chromium()
    from playwright.sync_api import sync_playwright

    url, labels_path, tmp_path = lab
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.set_default_timeout(90_000)
            page.goto(url)
            page.wait_for_function(KERNEL_IDLE)
            page.evaluate(RUN_ALL)
            widget = page.locator(".deg-ethogram").last
            widget.wait_for()
            widget.focus()
            for _ in range(5):
                page.keyboard.press("ArrowRight")                     # scrub with the keys
            page.wait_for_function(_pos(5))
            page.keyboard.press("2")                                  # rear, opened at frame 5
            page.wait_for_selector(".deg-ethogram .deg-status:has-text('rear from frame 5')")
            page.keyboard.press("Shift+ArrowRight")                   # 10 frames on
            page.wait_for_function(_pos(15))
            page.keyboard.press("2")                                  # closed at 15
            page.wait_for_selector(".deg-ethogram .deg-status:has-text('marked rear 5-15')")
            page.wait_for_selector(".deg-ethogram .deg-bout:has-text('rear 5-15')")
            page.keyboard.press("s")
            page.wait_for_selector(".deg-ethogram .deg-status:has-text('saved')")
            if os.environ.get("DEG_WIDGET_SCREENSHOT"):
                widget.screenshot(path=os.environ["DEG_WIDGET_SCREENSHOT"])
            saved, names = read_deg_labels(labels_path)
            rear = names.index("rear")
            assert (saved[5:16, rear] == 1).all() and (saved[5:16, 0] == 0).all()
            assert (saved[:5] == -1).all() and (saved[16:] == -1).all()   # unmarked frames stay unlabelled
            # re-open: run the notebook again; the new widget reads the saved file
            page.evaluate(RUN_ALL)
            page.wait_for_function("document.querySelectorAll('.deg-ethogram').length >= 1 && "
                                   "[...document.querySelectorAll('.deg-ethogram .deg-status')].some("
                                   "e => e.textContent.startsWith(\"editing 'me'\"))")
            page.wait_for_function(_pos(0))
            page.wait_for_selector(".deg-ethogram .deg-bout:has-text('rear 5-15')", timeout=30_000)
        finally:
            browser.close()
