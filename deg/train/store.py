"""Stage folders on disk: the DONE marker, stale outputs, the run lock and the waiting lock.

A stage folder holds ``config.json`` (its key and configuration), its outputs and, written last,
``DONE`` (the key again, wall time, steps). A folder whose ``DONE`` carries the current key is
finished; one whose ``config.json`` carries another key is deleted (``DONE`` first, so a
half-deleted folder is never taken for a finished one); one without ``DONE`` is resumed.
"""
from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
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

    def adopt(self, sources: list[tuple[Path, Path]]) -> dict[str, Any] | None:
        """Copy a finished stage with this key from another folder instead of computing it.

        ``sources``: (stage folder, its run folder) pairs, e.g. the same run under another set of
        overrides of the profile. The first whose ``DONE`` carries this key is copied (hard links
        where possible: every file here is replaced by rename, never rewritten in place) into a
        temporary folder that is then renamed into place, with the extra outputs; ``DONE`` last.
        Returns the new ``DONE`` record, or None when no source matches.
        """
        for source, source_run in sources:
            done = source / "DONE"
            if not done.exists() or io.read_json(done).get("key") != self.key:
                continue
            tmp = self.path.with_name(f".tmp-adopt-{self.path.name}")
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.copytree(source, tmp, copy_function=_link_or_copy,
                            ignore=shutil.ignore_patterns("DONE", ".tmp-*"))
            if self.path.exists():
                self.done_path.unlink(missing_ok=True)
                shutil.rmtree(self.path)
            os.replace(tmp, self.path)
            for extra in self.extra_outputs:
                src = source_run / extra.relative_to(self.path.parent)
                if src.exists():
                    _link_or_copy(src, extra)
            record = {**io.read_json(done), "copied_from": str(source)}
            io.write_json(self.done_path, record)
            return record
        return None

    def finish(self, **record: Any) -> dict[str, Any]:
        record = {"key": self.key, "finished_at": provenance.now_iso(), **record}
        io.write_json(self.done_path, record)
        return record


def _link_or_copy(src: str | Path, dst: str | Path) -> None:
    """Hard-link ``src`` to ``dst`` (replacing it), or copy where links are impossible."""
    dst = Path(dst)
    tmp = dst.with_name(f".tmp-link-{dst.name}")
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copy2(src, tmp)
    os.replace(tmp, dst)


@contextlib.contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """An exclusive advisory lock on the run folder (released by the kernel even on kill -9)."""
    io.ensure_dir(run_dir)                   # a read-only results folder: ReadOnlyError naming it
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


@contextlib.contextmanager
def wait_lock(path: Path) -> Iterator[None]:
    """A blocking exclusive lock on ``path``: parallel runs that need one shared pretraining stage
    wait for it instead of repeating it (released by the kernel even on kill -9)."""
    io.ensure_dir(path.parent)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
