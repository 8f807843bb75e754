"""The embedded synthetic datasets: layout, determinism, label properties, visibility of behaviours.

``synthetic_tiny`` is generated several times into ``tmp_path`` (well under a second each);
``synthetic_openfield`` once per module for the statistics that need many frames.
"""
from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from deg.data import synthetic as S
from deg.data.datasets import COMPLETE, Dataset, DatasetError
from deg.data.labels import read_deg_labels
from deg.data.video import read_video, video_info


@pytest.fixture(scope="module")
def openfield(tmp_path_factory):
    t0 = time.perf_counter()
    ds = S.generate("synthetic_openfield", root=tmp_path_factory.mktemp("of") / "synthetic_openfield",
                    progress=False)
    print(f"\nsynthetic_openfield (10 x 450 frames, 64x64): generated in {time.perf_counter() - t0:.2f} s")
    return ds


def _labels(ds: Dataset, annotator: str = "truth") -> dict[str, np.ndarray]:
    return {v: ds.labels(v, annotator) for v in ds.videos}


# ----------------------------------------------------------------------------- layout, speed
def test_tiny_generation_layout(tmp_path):
    t0 = time.perf_counter()
    ds = S.generate("synthetic_tiny", root=tmp_path / "tiny", progress=False)
    # a speed figure, not a target (targets belong in make bench; make test shares its cores)
    print(f"\nsynthetic_tiny generated in {time.perf_counter() - t0:.2f} s")
    spec = S.VARIANTS["synthetic_tiny"]
    again = Dataset.load(tmp_path / "tiny")
    assert again == ds
    assert ds.synthetic and ds.train_annotator == "truth"
    assert ds.annotators == ["truth", "human2", "human3"]
    assert ds.behaviours[0] == "background" and len(ds.videos) == spec.n_videos
    assert ds.extra["synthetic_hash"] == S.spec_hash(spec, 0)
    for v in ds.videos:
        info = video_info(ds.video_path(v))
        assert (info.n_frames, info.height, info.width) == (spec.n_frames, spec.height, spec.width)
        assert info.fps == pytest.approx(spec.fps)
        frames = read_video(ds.video_path(v))
        assert frames.shape == (spec.n_frames, spec.height, spec.width, 3)
        for annotator in ds.annotators:
            matrix, names = read_deg_labels(ds.label_path(v, annotator))
            assert names == ds.behaviours and matrix.shape == (spec.n_frames, len(names))
        extra = pd.read_csv(ds.extra_path(v))
        assert len(extra) == spec.n_frames
        assert {"x", "y", "heading", "quadrant", "behaviour_ids", "behaviours"} <= set(extra.columns)
        assert extra.x.between(0, spec.width).all() and extra.y.between(0, spec.height).all()
        assert extra.quadrant.isin([0, 1, 2, 3]).all()
        # the covariates' behaviour ids are the truth labels
        truth = ds.labels(v)
        ids = [("+".join(map(str, np.flatnonzero(r))) or "0") for r in truth]
        assert list(extra.behaviour_ids.astype(str)) == ids


def test_determinism_and_seed_dependence(tmp_path):
    a = S.generate("synthetic_tiny", root=tmp_path / "a", seed=3, progress=False)
    b = S.generate("synthetic_tiny", root=tmp_path / "b", seed=3, progress=False)
    spec = S.VARIANTS["synthetic_tiny"]
    for v in a.videos:
        for annotator in a.annotators:
            np.testing.assert_array_equal(a.labels(v, annotator), b.labels(v, annotator))
        np.testing.assert_array_equal(read_video(a.video_path(v)), read_video(b.video_path(v)))
    other_seed = [S.sample_script(spec, S.video_rng("synthetic_tiny", 4, i)).labels for i in range(spec.n_videos)]
    assert not all(np.array_equal(a.labels(v), o) for v, o in zip(a.videos, other_seed))
    assert a.extra["synthetic_hash"] != S.spec_hash(spec, 4)
    # datasets of equal sizes do not share behaviour sequences
    openfield, distractor = (S.sample_script(S.VARIANTS[d], S.video_rng(d, 0, 0)).labels
                             for d in ("synthetic_openfield", "synthetic_distractor"))
    assert not np.array_equal(openfield, distractor)
    # render_video is the same pipeline in memory
    frames, truth, cov = S.render_video(spec, S.video_rng("synthetic_tiny", 3, 0))
    np.testing.assert_array_equal(truth, a.labels(a.videos[0]))
    assert np.abs(read_video(a.video_path(a.videos[0])).astype(float) - frames).mean() < 4
    assert len(cov) == len(frames)


def test_idempotent_and_regenerates_on_change(tmp_path):
    root = tmp_path / "tiny"
    S.generate("synthetic_tiny", root=root, progress=False)
    video = root / "videos" / "video00.mp4"
    stamp = video.stat().st_mtime_ns
    S.generate("synthetic_tiny", root=root, progress=False)           # reused, nothing rewritten
    assert video.stat().st_mtime_ns == stamp
    ds = S.generate("synthetic_tiny", root=root, seed=1, progress=False)   # seed change
    assert video.stat().st_mtime_ns != stamp and ds.extra["seed"] == 1
    stamp = video.stat().st_mtime_ns
    S.generate("synthetic_tiny", root=root, seed=1, force=True, progress=False)
    assert video.stat().st_mtime_ns != stamp
    (root / COMPLETE).unlink()                                        # unfinished folder: redone
    S.generate("synthetic_tiny", root=root, seed=1, progress=False)
    assert (root / COMPLETE).exists()


def test_refuses_to_overwrite_a_real_dataset(tmp_path):
    root = tmp_path / "real"
    Dataset(id="real", fps=30.0, behaviours=["background", "a"], annotators=["x"], train_annotator="x",
            videos=[], root=root).save()
    with pytest.raises(DatasetError, match="non-synthetic"):
        S.generate("synthetic_tiny", root=root, progress=False)


def test_unknown_variant():
    with pytest.raises(KeyError, match="synthetic_openfield"):
        S.generate("synthetic_nope")


# ----------------------------------------------------------------------------- labels
@pytest.mark.parametrize("dataset_id", list(S.VARIANTS))
def test_every_video_has_every_behaviour_and_cooccurrence(dataset_id):
    spec = S.VARIANTS[dataset_id]
    for i in range(spec.n_videos):
        truth = S.sample_script(spec, S.video_rng(dataset_id, 0, i)).labels
        assert (truth == 1).any(axis=0).all(), f"{dataset_id} video {i} lacks {np.flatnonzero(~(truth == 1).any(0))}"
        # background exactly where no other behaviour is present
        np.testing.assert_array_equal(truth[:, 0], (truth[:, 1:].sum(1) == 0).astype(np.int8))
        both = (truth[:, S.BEHAVIOURS.index("sniff")] == 1) & (truth[:, S.BEHAVIOURS.index("locomote")] == 1)
        assert both.any(), "no multi-label (sniff + locomote) frame"
        # the primary behaviours exclude each other
        assert truth[:, [1, 2, 3, 5]].sum(1).max() == 1


def test_rare_behaviour_fraction_and_varied_bouts(openfield):
    truth = np.concatenate(list(_labels(openfield).values()))
    jump = truth[:, S.BEHAVIOURS.index("jump")] == 1
    print(f"\njump: {jump.mean():.2%} of frames; frame fractions "
          f"{dict(zip(S.BEHAVIOURS, (truth == 1).mean(0).round(3)))}")
    assert 0.01 < jump.mean() < 0.035
    assert all(0.05 < f < 0.5 for f in (truth[:, [0, 1, 2, 3, 4]] == 1).mean(0))
    # semi-Markov: bout lengths vary
    groom = truth[:, S.BEHAVIOURS.index("groom")]
    lengths = np.diff(np.flatnonzero(np.diff(np.concatenate([[0], groom, [0]]))))[::2]
    assert len(lengths) >= 10 and lengths.std() > 5


def test_annotators_disagree_like_people(openfield):
    truth = _labels(openfield)
    for annotator in ("human2", "human3"):
        human = _labels(openfield, annotator)
        agree = np.mean([(human[v] == truth[v]).all(1).mean() for v in truth])
        print(f"\n{annotator}: frame agreement with truth {agree:.3f}")
        assert 0.85 < agree < 0.99
        onset_shifts, missed, groom_as_rear = [], 0, 0
        for v in truth:
            t, h = truth[v], human[v]
            for k in range(1, len(S.BEHAVIOURS)):
                t_on = np.flatnonzero(np.diff(np.concatenate([[0], t[:, k]])) == 1)
                h_on = np.flatnonzero(np.diff(np.concatenate([[0], h[:, k]])) == 1)
                t_off = np.flatnonzero(np.diff(np.concatenate([t[:, k], [0]])) == -1) + 1
                for on, off in zip(t_on, t_off):
                    if not h[on:off, k].any():
                        missed += 1
                    elif len(h_on):
                        onset_shifts.append(h_on[np.argmin(np.abs(h_on - on))] - on)
            groom_as_rear += int(((t[:, 3] == 1) & (h[:, 2] == 1) & (t[:, 2] == 0)).sum())
        shifts = np.abs(np.asarray(onset_shifts))
        assert (shifts == 0).mean() > 0.2            # many onsets agree exactly ...
        assert ((shifts >= 1) & (shifts <= 6)).mean() > 0.3   # ... many are shifted by a few frames
        assert missed > 0 and groom_as_rear > 0


# ----------------------------------------------------------------------------- pixels
def _subject_stats(ds: Dataset) -> dict[str, tuple[float, float]]:
    """Per behaviour (frames with that behaviour alone; background alone): mean over frames of the
    floor-subtracted grey level in a disc around the subject (still-frame cue) and of the absolute
    frame difference in that disc (motion cue). The floor is each video's per-pixel median."""
    spec = S.VARIANTS[ds.id]
    radius = spec.subject_scale * min(spec.height, spec.width)
    still = {b: [] for b in ds.behaviours}
    motion = {b: [] for b in ds.behaviours}
    for v in ds.videos:
        grey = read_video(ds.video_path(v)).astype(np.float32).mean(-1)
        grey -= np.median(grey, axis=0)
        cov = pd.read_csv(ds.extra_path(v))
        yy, xx = np.mgrid[: spec.height, : spec.width] + 0.5
        disc = (xx - cov.x.to_numpy()[:, None, None]) ** 2 + (yy - cov.y.to_numpy()[:, None, None]) ** 2 <= radius ** 2
        level = (grey * disc).sum((1, 2)) / disc.sum((1, 2))
        diff = np.abs(np.diff(grey, axis=0, prepend=grey[:1]))
        change = (diff * disc).sum((1, 2)) / disc.sum((1, 2))
        truth = ds.labels(v)
        alone = truth.sum(1) == 1
        alone[0] = False                       # frame 0 has no difference
        for k, b in enumerate(ds.behaviours):
            sel = alone & (truth[:, k] == 1)
            still[b].append(level[sel])
            motion[b].append(change[sel])
    return {b: (float(np.concatenate(still[b]).mean()), float(np.concatenate(motion[b]).mean()))
            for b in ds.behaviours}


def test_still_and_motion_signatures(openfield):
    stats = _subject_stats(openfield)
    print("\n" + "\n".join(f"{b:10s} still {s:7.2f}  motion {m:5.2f}" for b, (s, m) in stats.items()))
    bg_still, bg_motion = stats["background"]
    rear_gap = abs(stats["rear"][0] - bg_still)
    assert rear_gap > 5                                       # rear: visible in a single frame
    for motion_only in ("groom", "locomote"):
        still, motion = stats[motion_only]
        assert abs(still - bg_still) < 0.25 * rear_gap        # not visible in a still frame ...
        assert motion > 2 * bg_motion                         # ... but in frame differences
    assert stats["rear"][1] < 1.5 * bg_motion                 # rearing in place barely moves
    assert stats["jump"][1] > stats["locomote"][1]            # a jump is the fastest change


def test_spec_validation():
    good = S.VARIANTS["synthetic_tiny"]
    for bad in ({"height": 33}, {"texture": "carpet"}, {"subject_scale": 0.0}, {"n_frames": 0}):
        with pytest.raises(ValueError):
            S.SyntheticSpec(**{**good.__dict__, **bad})
