"""Configuration keys of the pipeline's stages: what each stage's outputs depend on.

A stage's key hashes (:func:`deg.provenance.config_key`) its own settings -- the ``HPARAMS``
entries and profile fields it reads, its seed, the source code of the modules that compute it,
a pretrained checkpoint if one is used -- plus the key of the stage it reads from. Changing a
sequence-model hyperparameter therefore changes the keys of the sequence model and of the
predictions only; changing the flow generator's loss changes every key. ``HPARAMS`` entries that
no rule assigns to a stage go into every key (always safe), except those known to be read
elsewhere (:data:`HP_UNUSED`).
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from deg import io, provenance
from deg.train import common

STAGES = ("flow", "feature", "features", "sequence", "predictions")

# Source files whose code determines each stage's outputs (part of the stage key).
CODE = {
    "flow": ["models/flow.py", "models/pretrained.py", "losses.py", "augment.py", "train/loop.py",
             "train/clips.py", "train/common.py", "train/flow.py"],
    "feature": ["models/feature.py", "models/pretrained.py", "losses.py", "augment.py", "train/loop.py",
                "train/clips.py", "train/common.py", "train/feature.py", "metrics.py", "postprocess.py"],
    "features": ["train/feature.py", "train/clips.py"],
    "sequence": ["models/sequence.py", "losses.py", "train/loop.py", "train/common.py", "train/sequence.py",
                 "metrics.py", "postprocess.py"],
    "predictions": ["postprocess.py", "train/calibrate.py", "train/sequence.py"],
}
# HPARAMS entries by the stage that reads them (name prefixes; a shared entry ending in "_" is a
# prefix too). Entries no rule assigns go into every stage's key, which is always safe.
HP_PREFIX = {"flow": ("flow",), "feature": ("fe_",), "sequence": ("tgm_", "sequence_"),
             "predictions": ("bout_",)}
HP_SHARED = {"flow": ("lr", "lr_factor", "lr_min", "aug_"),
             "feature": ("lr", "lr_factor", "lr_min", "aug_", "focal_gamma", "pos_weight_beta", "label_smoothing"),
             "sequence": ("lr", "lr_factor", "lr_min", "focal_gamma", "pos_weight_beta", "label_smoothing")}
# Read elsewhere: the profile's own value, evaluation, other datasets' or keypoint models.
HP_UNUSED = ("lr_patience_steps", "shuffle_repeats", "train_annotator_", "keypoint_")
PROFILE_FIELDS = {
    "flow": ("flow_steps", "flow_batch", "val_every", "val_batches", "lr_patience_steps"),
    "feature": ("feature_steps", "feature_batch", "val_every", "val_batches", "lr_patience_steps"),
    "sequence": ("sequence_steps", "sequence_batch", "sequence_length", "val_every", "lr_patience_steps"),
}


def _code_hash(stage: str) -> str:
    root = Path(__file__).resolve().parent.parent   # the deg package
    parts = {}
    for rel in CODE[stage]:
        path = root / rel
        parts[rel] = provenance.config_key(path.read_bytes().decode("utf-8", "replace")) if path.exists() else None
    return provenance.config_key(parts)


def _hp_unassigned(hparams: dict[str, Any]) -> dict[str, Any]:
    assigned = {k for k in hparams if k.startswith(HP_UNUSED)}
    for stage in STAGES:
        assigned |= set(_hp_select(stage, hparams))
    return {k: v for k, v in hparams.items() if k not in assigned}


def _hp_select(stage: str, hparams: dict[str, Any]) -> dict[str, Any]:
    """HPARAMS entries read by ``stage``: its prefixes, plus shared names/prefixes ("aug_")."""
    out = {}
    for k, v in hparams.items():
        if k.startswith(HP_PREFIX.get(stage, ())):
            out[k] = v
        for shared in HP_SHARED.get(stage, ()):
            if k == shared or (shared.endswith("_") and k.startswith(shared)):
                out[k] = v
    return out


def _dataset_fingerprint(ctx: common.RunContext) -> dict[str, Any]:
    ds = ctx.dataset
    meta = io.read_json(ds.root / "dataset.json")
    files = {}
    for v in ctx.videos:
        st = ds.video_path(v).stat()
        files[v] = [st.st_size, st.st_mtime_ns]
    return {"id": ds.id, "meta": provenance.config_key(meta), "videos": files}


def _file_fingerprint(path: Path | None) -> list | None:
    if path is None:
        return None
    st = path.stat()
    return [path.name, st.st_size, st.st_mtime_ns]


def _labels_hash(ctx: common.RunContext) -> str:
    h = hashlib.sha256()
    for v in sorted(ctx.labels):
        h.update(v.encode())
        h.update(np.ascontiguousarray(ctx.labels[v]).tobytes())
    return h.hexdigest()[:16]


def _initial_weights(ctx: common.RunContext, part: str):
    """What a stage starts from: the self-supervised stage's key, or the pretrained file (None = random)."""
    from deg.presets import check_init_weights

    if check_init_weights(ctx.profile.pretrained) == "selfsup":
        from deg.train import selfsup

        return selfsup.weights_key(ctx, part)
    return _file_fingerprint(common.pretrained_file(ctx.preset.name, part))


def stage_configs(ctx: common.RunContext) -> dict[str, dict[str, Any]]:
    """The configuration of every stage (what its key hashes), upstream keys chained in."""
    hp, prof, preset = ctx.hparams, ctx.profile, ctx.preset
    base = {"dataset": _dataset_fingerprint(ctx), "split": {"train": ctx.split.train, "val": ctx.split.val,
                                                            "test": ctx.split.test},
            "image_size": list(ctx.image_size), "hparams": _hp_unassigned(hp),
            "precision": ctx.precision.name}

    def stage_part(stage: str) -> dict[str, Any]:
        return {"hparams": _hp_select(stage, hp), "profile": {f: getattr(prof, f) for f in PROFILE_FIELDS.get(stage, ())},
                "seed": common.stage_seed(ctx.seed, stage), "code": _code_hash(stage)}

    configs: dict[str, dict[str, Any]] = {}
    configs["flow"] = {"base": base, "model": {"flow_generator": preset.flow_generator,
                                               "n_flow_frames": preset.n_flow_frames},
                       "pretrained": _initial_weights(ctx, "flow_generator"),
                       **stage_part("flow")}
    keys = {"flow": provenance.config_key(configs["flow"])}
    configs["feature"] = {"flow": keys["flow"], "labels": _labels_hash(ctx),
                          "model": {"feature_extractor": preset.feature_extractor, "n_rgb_frames": preset.n_rgb_frames,
                                    "n_flow_frames": preset.n_flow_frames},
                          "pretrained": _initial_weights(ctx, "feature_extractor"),
                          **stage_part("feature")}
    keys["feature"] = provenance.config_key(configs["feature"])
    configs["features"] = {"feature": keys["feature"], "videos": ctx.videos, "code": _code_hash("features")}
    keys["features"] = provenance.config_key(configs["features"])
    configs["sequence"] = {"features": keys["features"], "model": {"sequence_model": preset.sequence_model},
                           **stage_part("sequence")}
    keys["sequence"] = provenance.config_key(configs["sequence"])
    configs["predictions"] = {"sequence": keys["sequence"], "hparams": _hp_select("predictions", hp),
                              "code": _code_hash("predictions")}
    return configs


def keys_of(configs: dict[str, dict[str, Any]]) -> dict[str, str]:
    return {stage: provenance.config_key(cfg) for stage, cfg in configs.items()}
