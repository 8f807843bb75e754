"""Stage folders on disk: the DONE marker, stale outputs, the run lock.

A stage folder holds ``config.json`` (its key and configuration), its outputs and, written last,
``DONE`` (the key again, wall time, steps). A folder whose ``DONE`` carries the current key is
finished; one whose ``config.json`` carries another key is deleted (``DONE`` first, so a
half-deleted folder is never taken for a finished one); one without ``DONE`` is resumed.
"""
from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import shutil
from pathlib import Path
from typing import Any, Iterator

from deg import io, provenance


class RunBusyError(RuntimeError):
    """Another process is running the same (dataset, preset, split, profile)."""


@dataclasses.dataclass
class StageDir:
    path: Path
    key: str
    config: dict[str, Any]
    extra_outputs: tuple[Path, ...] = ()     # files outside the folder that belong to the stage

    @property
    def done_path(self) -> Path:
        return self.path / "DONE"

    def done(self) -> dict[str, Any] | None:
        if not self.done_path.exists():
            return None
        record = io.read_json(self.done_path)
        return record if record.get("key") == self.key else None

    def prepare(self) -> None:
        """Delete outputs of another configuration; leave a resumable one; write config.json."""
        cfg_path = self.path / "config.json"
        stale = self.path.exists() and (not cfg_path.exists() or io.read_json(cfg_path).get("key") != self.key)
        if stale:
            self.done_path.unlink(missing_ok=True)       # first: a half-deleted folder is never "done"
            for extra in self.extra_outputs:
                extra.unlink(missing_ok=True)
            shutil.rmtree(self.path)
        self.path.mkdir(parents=True, exist_ok=True)
        for tmp in self.path.glob(".tmp-*"):             # leftovers of writes killed mid-way
            tmp.unlink(missing_ok=True)
        if not cfg_path.exists():
            io.write_json(cfg_path, {"key": self.key, "config": self.config})

    def finish(self, **record: Any) -> dict[str, Any]:
        record = {"key": self.key, "finished_at": provenance.now_iso(), **record}
        io.write_json(self.done_path, record)
        return record


@contextlib.contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """An exclusive advisory lock on the run folder (released by the kernel even on kill -9)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = run_dir / ".lock"
    try:
        fh = open(lock, "a")                 # "a": never truncates; created when missing
    except OSError:
        if not lock.exists():
            # a read-only folder without a lock file: nothing can be written there, by us or anyone
            yield
            return
        fh = open(lock, "r")                 # read-only results (a finished run to load): flock needs no write access
    with fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunBusyError(f"{run_dir}: another process is running this run") from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
