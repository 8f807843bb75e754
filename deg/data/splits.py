"""Random train / validation / test splits by video, with every behaviour in every subset.

The paper (Methods, "Training protocol"): "we randomly picked 60% of videos for training, 20%
for validation, and 20% for test ... Our only restriction on random splitting was ensuring that
at least one frame of each class was included in each split." Sturman-EPM allowed only three
such splits ("only three [videos] contain one example of all behaviors").

Figure 6 subsampling (Results, "How much data ..."): "We selected 1, 2, 4, 8, 12, or 16 random
videos for training and used the remaining videos for evaluation. We only required that each
training set had at least one frame of each behavior", with training and validation sets only.

Labels are ``{video: (T, K) array}`` with column 0 = background, 1 = positive, 0 = negative,
-1 = unlabelled. A behaviour is *present* in a video when it has at least one frame equal to 1.
Splits depend only on the set of video names, the labels and the seed (names are sorted first).
"""
from __future__ import annotations

import itertools
import logging
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from deg import io
from deg.presets import HPARAMS, PROFILES

log = logging.getLogger(__name__)

SUBSETS = ("train", "val", "test")
_SUBSET_WORDS = {"train": "train", "val": "validation", "test": "test"}
MAX_TRIES = 2000          # random permutations tried before giving up on a split


class SplitError(ValueError):
    """No split satisfies the constraints (e.g. a behaviour occurs in too few videos)."""


@dataclass
class Split:
    """Video names per subset; ``missing`` lists behaviours absent from a subset (subsampling)."""

    train: list[str]
    val: list[str]
    test: list[str] = field(default_factory=list)
    seed: int | None = None
    missing: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        seen: dict[str, str] = {}
        for subset in SUBSETS:
            for video in getattr(self, subset):
                if video in seen:
                    raise ValueError(f"video {video!r} is in both {seen[video]} and {subset}")
                seen[video] = subset

    @property
    def videos(self) -> list[str]:
        return self.train + self.val + self.test

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Split":
        unknown = set(data) - {"train", "val", "test", "seed", "missing"}
        if unknown or "train" not in data or "val" not in data:
            raise ValueError(f"not a split: keys {sorted(data)} (need train, val; optional test, "
                             f"seed, missing; unknown {sorted(unknown)})")
        return cls(train=list(data["train"]), val=list(data["val"]), test=list(data.get("test", [])),
                   seed=data.get("seed"), missing={k: list(v) for k, v in data.get("missing", {}).items()})


class SubsampleSplits(list):
    """``[(n_train, draw, Split), ...]`` plus ``notes``: sizes skipped and compromises made."""

    def __init__(self, items=(), notes: Sequence[str] = ()):
        super().__init__(items)
        self.notes: list[str] = list(notes)


# --------------------------------------------------------------------------------------
# Presence of behaviours per video
# --------------------------------------------------------------------------------------
def presence_matrix(videos: Sequence[str], labels_by_video: Mapping[str, np.ndarray]) -> np.ndarray:
    """(n_videos, K) bool: does video i have at least one positive frame of behaviour k."""
    rows, k_ref = [], None
    for video in videos:
        if video not in labels_by_video:
            raise SplitError(f"no labels for video {video!r}")
        labels = np.asarray(labels_by_video[video])
        if labels.ndim != 2:
            raise SplitError(f"labels of video {video!r}: expected a (T, K) matrix, got shape {labels.shape}")
        if k_ref is None:
            k_ref = labels.shape[1]
        elif labels.shape[1] != k_ref:
            raise SplitError(f"labels of video {video!r} have {labels.shape[1]} columns, "
                             f"others have {k_ref}")
        rows.append((labels == 1).any(axis=0))
    return np.stack(rows) if rows else np.zeros((0, 0), bool)


def _names(behaviours: Sequence[str] | None, k: int) -> list[str]:
    if behaviours is None:
        return ["background"] + [f"behaviour {i}" for i in range(1, k)]
    if len(behaviours) != k:
        raise SplitError(f"{len(behaviours)} behaviour names for {k} label columns")
    return list(behaviours)


def _required(presence: np.ndarray) -> np.ndarray:
    """Indices of non-background behaviours with a positive frame somewhere in the dataset."""
    cols = np.flatnonzero(presence.any(axis=0))
    return cols[cols > 0]


def _subset_sizes(n: int, fractions: Sequence[float]) -> tuple[int, int, int]:
    if len(fractions) != 3 or any(f < 0 for f in fractions) or not np.isclose(sum(fractions), 1.0):
        raise ValueError(f"fractions must be three non-negative numbers summing to 1, got {fractions}")
    # Round half up (not Python's round-half-even); every subset with a share gets >= 1 video.
    n_val = max(1, int(np.floor(n * fractions[1] + 0.5))) if fractions[1] > 0 else 0
    n_test = max(1, int(np.floor(n * fractions[2] + 0.5))) if fractions[2] > 0 else 0
    n_train = n - n_val - n_test
    needed = 1 + (n_val > 0) + (n_test > 0)
    if n_train < 1:
        raise SplitError(f"{n} video(s) cannot be split into {needed} non-empty subsets "
                         f"(fractions {tuple(fractions)})")
    return n_train, n_val, n_test


def _too_rare(presence: np.ndarray, required: np.ndarray, names: list[str], subsets: list[str],
              videos: Sequence[str]) -> str | None:
    """Message for behaviours present in fewer videos than subsets that must contain them."""
    counts = presence[:, required].sum(axis=0)
    rare = required[counts < len(subsets)]
    if not len(rare):
        return None
    need = "/".join(_SUBSET_WORDS[s] for s in subsets)
    parts = []
    for k in rare:
        holders = [videos[i] for i in np.flatnonzero(presence[:, k])]
        parts.append(f"behaviour {names[k]!r} occurs in only {len(holders)} video(s) "
                     f"({', '.join(holders)}); {need} need at least {len(subsets)}")
    return "; ".join(parts)


# --------------------------------------------------------------------------------------
# Train / validation / test
# --------------------------------------------------------------------------------------
def random_split(videos: Sequence[str], labels_by_video: Mapping[str, np.ndarray], seed: int,
                 fractions: Sequence[float] = HPARAMS["split_fractions"],
                 behaviours: Sequence[str] | None = None, max_tries: int = MAX_TRIES) -> Split:
    """A seeded random split by video in which every present behaviour is in every subset.

    Subset sizes come from ``fractions`` (rounded half up, >= 1 video per subset with a share).
    Candidate assignments of the (sorted) videos are drawn in seeded random order (all of them
    when there are at most ``max_tries``, which makes "impossible" certain; otherwise
    ``max_tries`` random permutations) and the first where each subset has >= 1 positive frame
    of every non-background behaviour with any positive frame in the dataset is returned.
    ``behaviours`` names the K label columns for error messages. Raises :class:`SplitError`
    when no such split exists (or none is found among the random tries).
    """
    videos = sorted(videos)
    presence = presence_matrix(videos, labels_by_video)
    names = _names(behaviours, presence.shape[1])
    sizes = _subset_sizes(len(videos), fractions)
    required = _required(presence)
    active = [s for s, n in zip(SUBSETS, sizes) if n > 0]
    message = _too_rare(presence, required, names, active, videos)
    if message:
        raise SplitError(message)
    rng = np.random.default_rng(seed)
    need = presence[:, required]
    n_assignments = _n_assignments(sizes)
    exhaustive = n_assignments <= max_tries
    for parts in _candidates(len(videos), sizes, rng, exhaustive, max_tries):
        if all(need[idx].any(axis=0).all() for idx in parts if len(idx)):
            subsets = [sorted(videos[i] for i in idx) for idx in parts]
            return Split(*subsets, seed=int(seed))
    counts = ", ".join(f"{names[k]!r} in {int(c)} video(s)"
                       for k, c in zip(required, need.sum(axis=0)))
    complete = [videos[i] for i in np.flatnonzero(need.all(axis=1))]
    searched = (f"none of all {n_assignments} assignments" if exhaustive
                else f"none of {max_tries} random assignments")
    raise SplitError(f"no split of {len(videos)} videos into {'/'.join(active)} of sizes {sizes} has "
                     f"every behaviour in every subset: {searched} works ({counts}; "
                     f"{len(complete)} video(s) show every behaviour: {', '.join(complete) or 'none'})")


def _n_assignments(sizes: Sequence[int]) -> int:
    """Number of ways to deal n videos into subsets of these sizes (a multinomial)."""
    return math.factorial(sum(sizes)) // math.prod(math.factorial(s) for s in sizes)


def _candidates(n: int, sizes: Sequence[int], rng: np.random.Generator, exhaustive: bool,
                max_tries: int) -> Iterator[list[np.ndarray]]:
    """Index arrays per subset: every assignment in a seeded random order when there are at
    most ``max_tries`` of them (so "impossible" is certain), else ``max_tries`` random ones."""
    bounds = np.cumsum(sizes)[:-1]
    if not exhaustive:
        for _ in range(max_tries):
            yield np.split(rng.permutation(n), bounds)
        return
    everything = list(_assignments(list(range(n)), list(sizes)))
    for i in rng.permutation(len(everything)):
        yield [np.asarray(part, dtype=int) for part in everything[i]]


def _assignments(items: list[int], sizes: list[int]) -> Iterator[list[tuple[int, ...]]]:
    if len(sizes) == 1:
        yield [tuple(items)]
        return
    for first in itertools.combinations(items, sizes[0]):
        rest = [i for i in items if i not in first]
        for tail in _assignments(rest, sizes[1:]):
            yield [first, *tail]


def derived_seeds(seed: int, n: int) -> list[int]:
    """``n`` independent 32-bit seeds derived from one (stable across numpy versions)."""
    return [int(s.generate_state(1)[0]) for s in np.random.SeedSequence(seed).spawn(n)]


def make_splits(videos: Sequence[str], labels_by_video: Mapping[str, np.ndarray], n_splits: int,
                seed: int, fractions: Sequence[float] = HPARAMS["split_fractions"],
                behaviours: Sequence[str] | None = None, distinct: bool = True,
                max_tries: int = MAX_TRIES) -> list[Split]:
    """``n_splits`` random splits from seeds derived from ``seed``.

    With ``distinct`` (default) repeated splits are replaced by ones from further derived
    seeds (up to ``10 * n_splits`` seeds); SplitError if fewer distinct splits exist.
    """
    if n_splits < 1:
        raise ValueError(f"n_splits must be >= 1, got {n_splits}")
    out: list[Split] = []
    seen: set[tuple] = set()
    budget = n_splits if not distinct else 10 * n_splits
    for s in derived_seeds(seed, budget):
        split = random_split(videos, labels_by_video, s, fractions, behaviours, max_tries)
        key = (tuple(split.train), tuple(split.val), tuple(split.test))
        if distinct and key in seen:
            continue
        seen.add(key)
        out.append(split)
        if len(out) == n_splits:
            return out
    raise SplitError(f"found only {len(out)} distinct split(s) of {len(videos)} videos satisfying "
                     f"the every-behaviour constraint in {budget} seeds; asked for {n_splits}")


# --------------------------------------------------------------------------------------
# Figure 6: training-set size subsampling (train + validation only)
# --------------------------------------------------------------------------------------
def subsample_splits(videos: Sequence[str], labels_by_video: Mapping[str, np.ndarray],
                     n_train_list: Sequence[int] = PROFILES["paper"].subsample_videos,
                     draws: int = PROFILES["paper"].subsample_draws, seed: int = 0,
                     val_fraction: float | None = None, behaviours: Sequence[str] | None = None,
                     max_tries: int = MAX_TRIES) -> SubsampleSplits:
    """Train/validation splits with ``n_train`` training videos, ``draws`` random draws per size.

    Validation: every remaining video (the paper's "used the remaining videos for evaluation")
    or, with ``val_fraction``, a random ``round(val_fraction * n)`` of them (>= 1), the rest
    unused. No test set. Every present behaviour must be in validation (draws are redrawn until
    it is). Training has every behaviour whenever some draw allows it; otherwise (e.g. one
    training video cannot show every behaviour) the draw with the fewest absent behaviours is
    kept and they are listed in ``Split.missing["train"]``. Draws of one size are distinct when
    possible. Sizes the dataset cannot support (``n_train`` larger than the videos left after
    validation) are skipped; ``.notes`` of the returned list says which and why (also logged).
    Each size uses its own seed derived from (seed, n_train), so sizes do not affect each other.
    """
    videos = sorted(videos)
    n = len(videos)
    presence = presence_matrix(videos, labels_by_video)
    names = _names(behaviours, presence.shape[1])
    required = _required(presence)
    need = presence[:, required]
    if val_fraction is None:
        n_val = None
        max_train = n - 1
    else:
        if not 0 < val_fraction < 1:
            raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
        n_val = max(1, int(np.floor(n * val_fraction + 0.5)))
        max_train = n - n_val
    out = SubsampleSplits()
    for n_train in n_train_list:
        if n_train < 1 or n_train > max_train:
            note = (f"n_train={n_train} skipped: {n} videos leave at most {max_train} for training "
                    f"after validation")
            out.notes.append(note)
            log.info(note)
            continue
        rng = np.random.default_rng([int(seed), int(n_train)])
        chosen: list[frozenset] = []
        for draw in range(draws):
            best = None     # ((n_missing_in_train, repeat), train_idx, val_idx)
            for _ in range(max_tries):
                order = rng.permutation(n)
                train_idx = np.sort(order[:n_train])
                rest = order[n_train:]
                val_idx = np.sort(rest if n_val is None else rest[:n_val])
                if not need[val_idx].any(axis=0).all():
                    continue            # validation must show every behaviour
                n_missing = int((~need[train_idx].any(axis=0)).sum())
                repeat = frozenset(train_idx.tolist()) in chosen
                score = (n_missing, repeat)     # the paper's requirement first, then variety
                if best is None or score < best[0]:
                    best = (score, train_idx, val_idx)
                if score == (0, False):
                    break
            if best is None:
                note = (f"n_train={n_train}: draw {draw} and later skipped: no draw with every "
                        f"behaviour in validation found in {max_tries} tries")
                out.notes.append(note)
                log.info(note)
                break
            (n_missing, repeat), train_idx, val_idx = best
            missing_train = [names[k] for k, ok in zip(required, need[train_idx].any(axis=0)) if not ok]
            if repeat:
                out.notes.append(f"n_train={n_train} draw {draw}: repeats an earlier training set "
                                 "(too few distinct choices)")
            if missing_train:
                out.notes.append(f"n_train={n_train} draw {draw}: training set lacks {missing_train}")
            chosen.append(frozenset(train_idx.tolist()))
            split = Split(train=[videos[i] for i in train_idx], val=[videos[i] for i in val_idx],
                          seed=int(seed), missing={"train": missing_train} if missing_train else {})
            out.append((int(n_train), draw, split))
    return out


# --------------------------------------------------------------------------------------
# Persistence
# --------------------------------------------------------------------------------------
def write_splits(path, splits: Sequence[Split]) -> None:
    """Write splits as JSON (atomically)."""
    io.write_json(path, [s.to_dict() for s in splits])


def read_splits(path) -> list[Split]:
    data = io.read_json(path)
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a JSON list of splits")
    try:
        return [Split.from_dict(d) for d in data]
    except (TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"{path}: {exc}") from exc
