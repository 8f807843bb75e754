"""Selfee as a comparison method: meta-representations -> k-NN -> the tables every method writes.

For one (profile, dataset, split) -- the same splits as DEG (:func:`deg.pipeline.resolve_split`) --
this writes ``results/<profile>/<dataset>/selfee/<split>/``:

* ``split.json``, ``predictions/<video>.npz`` (validation and test videos) and ``thresholds.json``,
  then the tables of :func:`deg.evaluate.evaluate_run` (``metrics.csv`` ... with the circular-shift
  chance level and the simulated annotators), so Selfee is scored exactly like DEG. Sources:
  ``model`` = k-NN scores with Selfee's temporal mode filter; ``feature_extractor`` = the same
  k-NN on single frames, no filter.
* ``knn.csv``: the k-NN metrics on the test videos from the Selfee meta-representations and, as a
  control, from the same network at its random initialisation (what self-supervision adds).

k-NN protocol (Selfee's ``knnSorter``, per behaviour because DEG's behaviours overlap): references
= every fully labelled frame of the training videos (training annotator); per-behaviour thresholds
maximise F1 on the validation videos (as DEG's); background = no other behaviour.

``embedding.csv`` (one per dataset): a t-SNE map of the meta-representations of frames drawn
evenly from every labelled video, with each frame's behaviour (the first present behaviour
in the dataset's order, background when none) for the figure coloured by behaviour.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from deg import io, paths
from deg.presets import SELFSUP_HPARAMS as HP
from deg.presets import get_selfsup_profile

METHOD = "selfee"


def method_dir(profile: str, dataset: str) -> Path:
    return paths.results_dir() / profile / dataset / METHOD


def kind(profile: str) -> str:
    return f"{get_selfsup_profile(profile).selfee_backbone}-live"


@torch.no_grad()
def _embed_video(model, frames: np.ndarray, interval: int, device, batch: int = 256) -> np.ndarray:
    from deg.models.selfsup import live_frames

    out = []
    for start in range(0, len(frames), batch):
        idx = np.arange(start, min(start + batch, len(frames)))
        x = torch.from_numpy(live_frames(frames, idx, interval)).to(device).permute(0, 3, 1, 2).float() / 255.0
        out.append(model.embed(x).float().cpu().numpy())
    return np.concatenate(out).astype(np.float32)


def embeddings(profile: str, dataset: str, seed: int = 0, progress: bool = False) -> dict[str, dict[str, np.ndarray]]:
    """{video: {"z": (T, D) meta-representations, "z_random": (T, D) same network at random init}}.

    Cached as ``<pretraining folder>/embeddings/<video>.npz``: inside the keyed stage folder,
    so new weights (a new key) delete them with it.
    """
    from deg.data.datasets import open_dataset
    from deg.models.selfsup import build_selfee
    from deg.train import selfsup

    ds = open_dataset(dataset)
    stage = selfsup.pretrain(profile, ds.id, kind(profile), seed, progress)
    saved = torch.load(stage / "weights.pt", map_location="cpu", weights_only=True)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    trained = build_selfee(saved["arch"])
    trained.load_state_dict({**{f"backbone.{k}": v for k, v in saved["backbone"].items()}, **saved["head"]})
    torch.manual_seed(seed)
    random_init = build_selfee(saved["arch"])
    models = {"z": trained.to(device).eval(), "z_random": random_init.to(device).eval()}
    out = {}
    frames = None
    for video in [v for v in ds.videos if ds.video_path(v) is not None]:
        path = stage / "embeddings" / f"{video}.npz"
        if not path.exists():
            if frames is None:
                frames = selfsup.dataset_frames(ds, tuple(selfsup.image_size(profile, ds)), progress)
            io.write_npz(path, **{name: _embed_video(m, frames[video], int(saved["interval"]), device)
                                  for name, m in models.items()})
        with np.load(path) as npz:
            out[video] = {k: npz[k] for k in npz.files}
    return out


def _knn_predictions(vectors: dict[str, np.ndarray], labels: dict[str, np.ndarray], split, window: int):
    """{video: (scores (T, K), filtered scores, preds, single-frame preds)} for val + test videos, and thresholds."""
    from deg.models.selfsup import knn_scores, mode_filter, window_mean
    from deg.postprocess import best_thresholds

    ref_x, ref_y = [], []
    for v in split.train:
        keep = (labels[v] >= 0).all(axis=1)
        ref_x.append(vectors[v][keep])
        ref_y.append(labels[v][keep])
    ref_x, ref_y = np.concatenate(ref_x), np.concatenate(ref_y)
    videos = list(split.val) + list(split.test)
    scores = {v: knn_scores(ref_x, ref_y, vectors[v]) for v in videos}
    thr = np.asarray(best_thresholds(np.concatenate([scores[v] for v in split.val]),
                                     np.concatenate([labels[v] for v in split.val])))
    out = {}
    for v in videos:
        single = (scores[v] > thr[None, :]).astype(np.uint8)
        filtered = mode_filter(single, window)
        for binary in (single, filtered):
            binary[:, 0] = (binary[:, 1:].sum(axis=1) == 0)      # background = no other behaviour
        out[v] = (scores[v], window_mean(scores[v], window), filtered, single)
    return out, thr


def run_split(profile: str, dataset: str, split: str, seed: int = 0, progress: bool = False) -> Path:
    """Selfee k-NN on one DEG split; writes and evaluates ``results/<profile>/<dataset>/selfee/<split>/``."""
    from deg import evaluate, metrics, pipeline
    from deg.data.datasets import open_dataset
    ds = open_dataset(dataset)
    arg = int(split.removeprefix("split")) if split.startswith("split") else split
    the_split = pipeline.resolve_split(dataset, arg, profile, seed)
    out_dir = method_dir(profile, ds.id) / split
    vectors = embeddings(profile, dataset, seed, progress)
    labels = {v: ds.labels(v) for v in vectors if ds.has_labels(v, ds.train_annotator)}
    window = 2 * (max(1, round(HP["knn_window_s"] * ds.fps)) // 2) + 1      # odd: 21 frames at 30 fps
    preds, thr = _knn_predictions({v: vectors[v]["z"] for v in labels}, labels, the_split, window)
    io.write_json(out_dir / "split.json", {"train": the_split.train, "val": the_split.val, "test": the_split.test,
                                           "missing": the_split.missing, "left_out": ds.left_out()})
    for v, (scores, smooth, filtered, single) in preds.items():
        io.write_npz(out_dir / "predictions" / f"{v}.npz", probs=smooth, preds=filtered, fe_probs=scores,
                     fe_preds=single)
    io.write_json(out_dir / "thresholds.json", {"knn": thr.tolist(), "window_frames": window,
                                                "behaviours": list(ds.behaviours), "k": HP["knn_k"]})
    # control: the same k-NN on the random-initialisation network's representations
    control, _ = _knn_predictions({v: vectors[v]["z_random"] for v in labels}, labels, the_split, window)
    evaluated = the_split.test or the_split.val
    rows = []
    for name, table in (("selfee", preds), ("random_init", control)):
        for source, k_pred, k_score in (("model", 2, 1), ("feature_extractor", 3, 0)):
            truth = np.concatenate([labels[v] for v in evaluated])
            m = metrics.metrics_table(truth, np.concatenate([table[v][k_pred] for v in evaluated]),
                                      np.concatenate([table[v][k_score] for v in evaluated]), list(ds.behaviours))
            rows.append(m.assign(representation=name, source=source, profile=profile, dataset=ds.id, split=split,
                                 subset="test" if the_split.test else "val", n_videos=len(evaluated)))
    io.write_csv(out_dir / "knn.csv", pd.concat(rows, ignore_index=True))
    evaluate.evaluate_run(out_dir, ds, profile, METHOD, split, seed=seed)
    return out_dir


def embedding_table(profile: str, dataset: str, seed: int = 0, progress: bool = False) -> Path:
    """Write ``results/<profile>/<dataset>/selfee/embedding.csv`` (video, frame, x, y, behaviour)."""
    from deg.data.datasets import open_dataset
    from deg.models.selfsup import embed_2d

    ds = open_dataset(dataset)
    vectors = embeddings(profile, dataset, seed, progress)
    videos = [v for v in vectors if ds.has_labels(v, ds.train_annotator)]
    picks = [(v, t) for v in videos for t in np.flatnonzero((ds.labels(v) >= 0).all(axis=1))]
    n = min(HP["embed_max_frames"], len(picks))
    chosen = [picks[i] for i in np.unique(np.linspace(0, len(picks) - 1, n).round().astype(int))]
    xy = embed_2d(np.stack([vectors[v]["z"][t] for v, t in chosen]), seed=seed)
    names = list(ds.behaviours)

    def behaviour(row: np.ndarray) -> str:
        present = np.flatnonzero(row[1:] == 1)
        return names[1 + present[0]] if len(present) else names[0]

    table = pd.DataFrame({"profile": profile, "dataset": ds.id, "video": [v for v, _ in chosen],
                          "frame": [int(t) for _, t in chosen], "x": xy[:, 0], "y": xy[:, 1],
                          "behaviour": [behaviour(ds.labels(v)[t]) for v, t in chosen]})
    return io.write_csv(method_dir(profile, ds.id) / "embedding.csv", table)


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description="Selfee k-NN rows and embedding (after its pretraining)")
    parser.add_argument("what", choices=["split", "embedding"])
    parser.add_argument("dataset")
    parser.add_argument("split", nargs="?", default="split0")
    parser.add_argument("--profile", required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.what == "split":
        print(run_split(args.profile, args.dataset, args.split, args.seed))
    else:
        print(embedding_table(args.profile, args.dataset, args.seed))
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
