"""Provenance of a run: configuration keys, package versions, git commit, device.

A *configuration key* is a short hash of the canonical JSON of everything that determines a
stage's outputs (its own settings plus the keys of the stages it depends on). The pipeline
stores it beside each stage's outputs; a stage whose stored key differs from the current one is
stale and is recomputed, while an unchanged one is reused. Keys therefore must not depend on
dict ordering, tuple-vs-list, or numpy scalar types: :func:`canonical_json` normalises those.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import importlib.metadata
import json
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from deg import io, paths

# Packages whose versions can change a result; recorded in every run.json.
TRACKED_PACKAGES = ("deg", "torch", "torchvision", "kornia", "numpy", "scipy", "scikit-learn",
                    "pandas", "av")


def _normalise(obj: Any) -> Any:
    """JSON-ready, order-independent form of ``obj`` (tuples -> lists, numpy -> Python)."""
    if isinstance(obj, dict):
        return {str(k): _normalise(v) for k, v in sorted(obj.items(), key=lambda kv: str(kv[0]))}
    if isinstance(obj, (list, tuple)):
        return [_normalise(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _normalise(obj.tolist())
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, float) and obj.is_integer() and abs(obj) < 2**53:
        # 1e3 and 1000 are the same setting; hash them the same way.
        return int(obj)
    return obj


def canonical_json(obj: Any) -> str:
    """Deterministic JSON text of ``obj`` (sorted keys, no whitespace)."""
    return json.dumps(_normalise(obj), sort_keys=True, separators=(",", ":"), default=str)


def config_key(obj: Any, length: int = 16) -> str:
    """Short sha256 hex digest of :func:`canonical_json` (``obj``)."""
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()[:length]


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_state(repo: Path | None = None) -> dict[str, Any]:
    """``{"commit": sha or None, "dirty": bool or None}`` of the checkout holding ``deg``."""
    repo = repo or paths.REPO
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True,
                                timeout=10)
        if commit.returncode != 0:
            return {"commit": None, "dirty": None}
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo,
                                capture_output=True, text=True, timeout=10)
        return {"commit": commit.stdout.strip(), "dirty": bool(status.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> set[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where it cannot be read)."""
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="ignore").splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def device_info(device: str) -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {"device": device, "cpu": cpu_name(), "torch_threads": torch.get_num_threads(),
                            "platform": platform.platform()}
    if device.startswith("cuda") and torch.cuda.is_available():
        index = torch.device(device).index or 0
        info["gpu"] = torch.cuda.get_device_name(index)
        info["cuda"] = torch.version.cuda
    return info


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def write_run_json(path: Path, record: dict[str, Any]) -> Path:
    """Write ``record`` plus versions, git state and the command line (atomically)."""
    full = dict(record)
    full.setdefault("versions", package_versions())
    full.setdefault("git", git_state())
    full.setdefault("argv", list(sys.argv))
    full["written_at"] = now_iso()
    return io.write_json(path, _normalise(full))
