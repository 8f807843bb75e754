"""Random splits: determinism, disjointness, every behaviour in every subset, subsampling."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from deg.data.splits import (Split, SplitError, make_splits, presence_matrix, random_split,
                             read_splits, subsample_splits, write_splits)
from deg.presets import HPARAMS


def _labels(presence: np.ndarray, t: int = 40, seed: int = 0) -> dict[str, np.ndarray]:
    """Labels whose per-video presence is ``presence`` (n, K-1): random positive frames where
    True, a few -1 (unlabelled) frames everywhere, background where nothing else is."""
    rng = np.random.default_rng(seed)
    n, k = presence.shape
    out = {}
    for i in range(n):
        beh = (rng.random((t, k)) < 0.3) & presence[i]
        beh[rng.integers(0, t, size=k), np.arange(k)] |= presence[i]    # at least one frame
        matrix = np.concatenate([~beh.any(1, keepdims=True), beh], axis=1).astype(np.int8)
        matrix[rng.integers(0, t, size=3)] = -1
        out[f"v{i:02d}"] = matrix
    return out


def _covers(split_videos, labels) -> np.ndarray:
    return presence_matrix(split_videos, labels)[:, 1:].any(axis=0)


def _assert_valid(split: Split, labels, n_subsets=3):
    videos = sorted(labels)
    assert sorted(split.videos) == videos and len(set(split.videos)) == len(videos)
    required = presence_matrix(videos, labels)[:, 1:].any(axis=0)
    for subset in ("train", "val", "test")[:n_subsets]:
        members = getattr(split, subset)
        assert members, subset
        assert (_covers(members, labels) >= required).all(), subset


def test_sizes_determinism_and_order_independence():
    labels = _labels(np.ones((20, 3), bool))
    a = random_split(list(labels), labels, seed=3)
    assert (len(a.train), len(a.val), len(a.test)) == (12, 4, 4)    # 60/20/20
    assert HPARAMS["split_fractions"] == (0.6, 0.2, 0.2)
    _assert_valid(a, labels)
    assert random_split(list(labels)[::-1], labels, seed=3) == a    # input order is irrelevant
    others = {tuple(random_split(list(labels), labels, seed=s).test) for s in range(4, 10)}
    assert len(others) > 1                                          # seeds matter
    for n, expected in ((5, (3, 1, 1)), (28, (16, 6, 6)), (3, (1, 1, 1))):
        lab = _labels(np.ones((n, 2), bool))
        s = random_split(list(lab), lab, seed=0)
        assert (len(s.train), len(s.val), len(s.test)) == expected


def _feasible(presence: np.ndarray, sizes: tuple[int, int, int]) -> bool:
    """Brute force over all 3**n assignments: does any give every subset every behaviour?"""
    n = len(presence)
    assign = np.array(list(itertools.product(range(3), repeat=n)))          # (3**n, n)
    assign = assign[(np.stack([(assign == s).sum(1) for s in range(3)], 1) == sizes).all(1)]
    required = presence.any(0)
    ok = np.ones(len(assign), bool)
    for s in range(3):
        covered = ((assign == s)[:, :, None] & presence[None]).any(1)       # (A, K)
        ok &= (covered >= required).all(1)
    return bool(ok.any())


def test_every_behaviour_in_every_subset_on_random_labels():
    """random_split finds a valid split exactly when brute force says one exists."""
    outcomes = {True: 0, False: 0}
    for trial in range(40):
        rng = np.random.default_rng(100 + trial)
        n, k = int(rng.integers(5, 10)), int(rng.integers(2, 6))
        presence = rng.random((n, k)) < rng.uniform(0.3, 0.9)
        labels = _labels(presence, seed=trial)
        n_val = int(np.floor(0.2 * n + 0.5))
        sizes = (n - 2 * n_val, n_val, n_val)
        feasible = _feasible(presence, sizes)
        outcomes[feasible] += 1
        if feasible:
            split = random_split(list(labels), labels, seed=trial)
            assert (len(split.train), len(split.val), len(split.test)) == sizes
            _assert_valid(split, labels)
        else:
            with pytest.raises(SplitError, match="occurs in only|in every subset"):
                random_split(list(labels), labels, seed=trial)
    assert min(outcomes.values()) >= 5, outcomes        # both branches were exercised


def test_every_behaviour_in_every_subset_larger_sets():
    for trial in range(10):
        rng = np.random.default_rng(trial)
        presence = rng.random((int(rng.integers(15, 40)), 6)) < 0.5
        labels = _labels(presence, seed=trial)
        _assert_valid(random_split(list(labels), labels, seed=trial), labels)


def test_unlabelled_and_absent_behaviours_are_not_required():
    presence = np.ones((6, 3), bool)
    presence[:, 2] = False                  # behaviour 3 never occurs: not required
    labels = _labels(presence)
    labels["v00"][:, 2] = -1                # -1 is "unlabelled", never a positive frame
    split = random_split(list(labels), labels, seed=1)
    _assert_valid(split, labels)


def test_rare_behaviour_constraint_is_enforced():
    """EPM-like: 5 videos, 'rear' in only 3 of them -> it must be one per subset."""
    presence = np.ones((5, 2), bool)
    presence[[0, 3], 1] = False
    labels = _labels(presence)
    for seed in range(20):
        split = random_split(list(labels), labels, seed=seed, behaviours=["background", "walk", "rear"])
        holders = {"v01", "v02", "v04"}
        assert all(holders & set(getattr(split, s)) for s in ("train", "val", "test"))
    # Only 6 valid assignments exist (val and test each one of the 3 holders).
    assert len(make_splits(list(labels), labels, 6, seed=0)) == 6
    with pytest.raises(SplitError, match="only 6 distinct split"):
        make_splits(list(labels), labels, 7, seed=0)


def test_impossible_split_names_behaviour():
    presence = np.ones((8, 2), bool)
    presence[:, 1] = False
    presence[[2, 5], 1] = True
    labels = _labels(presence)
    with pytest.raises(SplitError) as info:
        random_split(list(labels), labels, seed=0, behaviours=["background", "groom", "jump"])
    message = str(info.value)
    assert "behaviour 'jump' occurs in only 2 video(s) (v02, v05)" in message
    assert "train/validation/test need at least 3" in message
    assert isinstance(info.value, ValueError)
    # Frequent enough but still impossible: validation and test (1 video each) both need
    # 'a' and 'b', which only v02 shows.
    presence = np.zeros((5, 2), bool)
    presence[[0, 1, 2], 0] = True
    presence[[2, 3, 4], 1] = True
    labels = _labels(presence)
    with pytest.raises(SplitError) as info:
        random_split(list(labels), labels, seed=0, behaviours=["background", "a", "b"])
    assert "none of all 20 assignments works" in str(info.value)
    assert "1 video(s) show every behaviour: v02" in str(info.value)


def test_bad_inputs():
    labels = _labels(np.ones((4, 2), bool))
    with pytest.raises(SplitError, match="cannot be split"):
        random_split(["v00", "v01"], labels, seed=0)
    with pytest.raises(SplitError, match="no labels for video 'v09'"):
        random_split(["v00", "v01", "v09"], labels, seed=0)
    labels["v03"] = labels["v03"][:, :2]
    with pytest.raises(SplitError, match="'v03' have 2 columns"):
        random_split(list(labels), labels, seed=0)
    with pytest.raises(ValueError, match="fractions"):
        random_split(["v00", "v01", "v02"], labels, seed=0, fractions=(0.5, 0.2, 0.2))


def test_make_splits_deterministic_and_distinct():
    labels = _labels(np.random.default_rng(0).random((12, 3)) < 0.7)
    a = make_splits(list(labels), labels, n_splits=5, seed=7)
    assert a == make_splits(list(labels), labels, n_splits=5, seed=7)
    assert len({(tuple(s.train), tuple(s.val), tuple(s.test)) for s in a}) == 5
    assert len({s.seed for s in a}) == 5
    for split in a:
        _assert_valid(split, labels)
    assert make_splits(list(labels), labels, n_splits=5, seed=8) != a


def test_split_serialisation(tmp_path):
    s = Split(train=["a", "b"], val=["c"], test=["d"], seed=4, missing={"train": ["jump"]})
    assert Split.from_dict(s.to_dict()) == s
    write_splits(tmp_path / "splits.json", [s, s])
    assert read_splits(tmp_path / "splits.json") == [s, s]
    with pytest.raises(ValueError, match="in both train and test"):
        Split(train=["a"], val=["b"], test=["a"])
    with pytest.raises(ValueError, match="not a split"):
        Split.from_dict({"train": [], "validation": []})
    (tmp_path / "bad.json").write_text('[{"train": ["a"], "val": ["a"]}]')
    with pytest.raises(ValueError, match="bad.json"):
        read_splits(tmp_path / "bad.json")


# --------------------------------------------------------------------------------------
# Figure 6 subsampling
# --------------------------------------------------------------------------------------
def test_subsample_sizes_and_skips():
    labels = _labels(np.random.default_rng(1).random((10, 3)) < 0.8)
    out = subsample_splits(list(labels), labels, n_train_list=(1, 2, 4, 8, 12, 16), draws=3, seed=0)
    sizes = sorted({n for n, _, _ in out})
    assert sizes == [1, 2, 4, 8]
    assert len(out) == 4 * 3
    assert any("n_train=12 skipped" in note for note in out.notes)
    assert any("n_train=16 skipped" in note for note in out.notes)
    required = presence_matrix(sorted(labels), labels)[:, 1:].any(axis=0)
    for n_train, draw, split in out:
        assert len(split.train) == n_train and split.test == []
        assert sorted(split.train + split.val) == sorted(labels)     # the rest is validation
        assert (_covers(split.val, labels) >= required).all()
        if not split.missing:
            assert (_covers(split.train, labels) >= required).all()
    # draws of one size differ; results are deterministic
    assert len({tuple(s.train) for n, _, s in out if n == 2}) == 3
    again = subsample_splits(list(labels), labels, n_train_list=(1, 2, 4, 8, 12, 16), draws=3, seed=0)
    assert [(n, d, s) for n, d, s in again] == [(n, d, s) for n, d, s in out]


def test_subsample_with_val_fraction():
    labels = _labels(np.ones((10, 2), bool))
    out = subsample_splits(list(labels), labels, n_train_list=(1, 8, 9), draws=2, seed=1, val_fraction=0.2)
    assert sorted({n for n, _, _ in out}) == [1, 8]
    assert any("n_train=9 skipped" in note for note in out.notes)
    for n_train, _, split in out:
        assert len(split.val) == 2 and len(split.train) == n_train
        assert not set(split.train) & set(split.val)


def test_subsample_one_video_cannot_hold_every_behaviour():
    """Each video shows one behaviour: one training video must miss the others (recorded)."""
    presence = np.zeros((9, 3), bool)
    presence[np.arange(9), np.arange(9) % 3] = True
    labels = _labels(presence)
    out = subsample_splits(list(labels), labels, n_train_list=(1, 3), draws=2, seed=0,
                           behaviours=["background", "a", "b", "c"])
    for n_train, draw, split in out:
        if n_train == 1:
            assert len(split.missing["train"]) == 2
            assert any(f"n_train=1 draw {draw}: training set lacks" in note for note in out.notes)
        else:                               # 3 videos can cover a, b and c: they must
            assert split.missing == {}
            assert _covers(split.train, labels).all()
        assert _covers(split.val, labels).all()
