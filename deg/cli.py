"""What every command line of ``deg`` shares: name checks, one-line errors, exit codes.

Every entry point (``python -m deg.evaluate``, ``deg.infer``, ``deg.bench``, ``deg.notebooks``,
``deg.describe``, ``deg.figindex``, ``deg.pose.run`` and the Snakemake plan) checks the names it is given against the
registry, the profiles and the presets *before* anything is computed or written, and reports a
user's mistake as one line, never a traceback:

====  =====================================================================================
code  meaning
====  =====================================================================================
0     success
1     the work ran but some of it failed (e.g. ``deg.infer``: some videos could not be read)
2     usage error: an unknown dataset, profile, preset or device, a value of the wrong kind
3     input refused: a file (labels, keypoints, dataset folder, run folder) is malformed; the
      message names the file and the problem; or a folder to write into is read-only
      (:class:`deg.io.ReadOnlyError`, naming the folder)
4     no room: the disk (or quota) is full; the message names the file that could not be written
====  =====================================================================================

``DEG_DEBUG=1`` re-raises instead, with the full traceback, for bug reports.
"""
from __future__ import annotations

import difflib
import functools
import os
import re
import sys
from typing import Callable, Iterable, Sequence

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INPUT, EXIT_NO_SPACE = 0, 1, 2, 3, 4


class UsageError(ValueError):
    """A name or value on the command line is not one we know; the message lists the known ones."""


def _unknown(kind: str, name: str, known: Sequence[str]) -> UsageError:
    lowered = {k.lower(): k for k in known}
    if name.lower() in lowered:
        hint = f"; did you mean {lowered[name.lower()]!r} (names are case-sensitive)?"
    else:
        close = difflib.get_close_matches(name, list(known), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
    return UsageError(f"unknown {kind} {name!r}{hint} known: {', '.join(known)}")


def known_datasets() -> list[str]:
    """Registry ids, synthetic variants, and every dataset prepared under ``data/`` (a user's own)."""
    from deg import paths
    from deg.data import registry

    known = list(registry.all_ids())
    try:
        from deg.data.synthetic import VARIANTS

        known += [v for v in VARIANTS if v not in known]
    except ImportError:
        pass
    root = paths.data_dir()
    if root.is_dir():
        known += sorted(p.name for p in root.iterdir() if (p / "dataset.json").is_file() and p.name not in known)
    return known


def check_dataset(name: str) -> str:
    if not isinstance(name, str) or name not in known_datasets():
        raise _unknown("dataset", str(name), known_datasets())
    return name


def check_datasets(names: Iterable[str]) -> list[str]:
    return [check_dataset(n) for n in names]


def check_profile(name: str) -> str:
    from deg.presets import PROFILES

    # a results folder name: the profile, or "<profile>+<digest>" for a run with overrides
    # (deg.presets.results_name)
    base, plus, digest = str(name).partition("+")
    if base not in PROFILES or (plus and not re.fullmatch(r"[0-9a-f]{8}", digest)):
        raise _unknown("profile", str(name), list(PROFILES))
    return name


def check_preset(name: str) -> str:
    from deg.presets import PRESETS

    if name not in PRESETS:
        raise _unknown("preset", str(name), list(PRESETS))
    return name


_DEVICE = re.compile(r"cpu|cuda(:\d+)?|mps")


def check_device(name: str | None) -> str | None:
    """``None`` (automatic), ``cpu``, ``cuda`` or ``cuda:N`` (an existing GPU), ``mps``."""
    if name is None:
        return None
    if not _DEVICE.fullmatch(name):
        raise UsageError(f"unknown device {name!r}; use cpu, cuda or cuda:N (e.g. cuda:0)")
    if name.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise UsageError(f"device {name!r}: no CUDA GPU is available here; use cpu")
        index = int(name.split(":")[1]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise UsageError(f"device {name!r}: this machine has {torch.cuda.device_count()} GPU(s) (cuda:0 .. "
                             f"cuda:{torch.cuda.device_count() - 1})")
    return name


def exit_code(exc: BaseException) -> int | None:
    """The documented exit code of a user-facing error, or None for a bug (shown with a traceback)."""
    from deg.io import DiskFullError

    if isinstance(exc, UsageError):
        return EXIT_USAGE
    if isinstance(exc, KeyError):          # get_profile / get_preset / registry.get: "unknown ...; known: ..."
        return EXIT_USAGE if exc.args and str(exc.args[0]).startswith("unknown ") else None
    if isinstance(exc, DiskFullError):
        return EXIT_NO_SPACE
    # deg's own errors name the file and the problem; a bare ValueError from a library is a bug
    if isinstance(exc, (ValueError, OSError)) and (type(exc).__module__.startswith("deg.") or isinstance(
            exc, (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError))):
        return EXIT_INPUT
    return None


def entry_point(prog: str) -> Callable:
    """Decorate ``main(argv) -> int``: user errors become ``prog: error: <one line>`` and their code."""

    def wrap(main: Callable[..., int]) -> Callable[..., int]:
        @functools.wraps(main)
        def run(*args, **kwargs) -> int:
            try:
                return main(*args, **kwargs)
            except Exception as exc:        # noqa: BLE001 - sorted into user errors and bugs below
                code = exit_code(exc)
                if code is None or os.environ.get("DEG_DEBUG"):
                    raise
                message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
                print(f"{prog}: error: {message}", file=sys.stderr)
                return code

        return run

    return wrap
