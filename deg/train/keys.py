"""Configuration keys of the pipeline's stages: what each stage's outputs depend on.

A stage's key hashes (:func:`deg.provenance.config_key`) its own settings -- the ``HPARAMS``
entries and profile fields it reads, its seed, the code of the ``deg`` modules it runs, a
pretrained checkpoint if one is used -- plus its data (dataset fingerprint, split, labels, image
size) and the key of the stage it reads from. Changing a sequence-model hyperparameter therefore
changes the keys of the sequence model and of the predictions only; changing the flow generator's
loss changes every key. ``HPARAMS`` entries that no rule assigns to a stage go into every key
(always safe), except those known to be read elsewhere (:data:`HP_UNUSED`).

Code: a stage's code is every module of ``deg`` that its entry modules (:data:`STAGE_ROOTS`)
import, followed through the whole package (imports inside functions included), read as syntax
trees without docstrings -- so a comment or docstring edit changes nothing, any other edit of a
module a stage runs changes that stage's key. ``deg/presets.py`` is left out: its *values* are in
the keys themselves, so editing one entry re-keys exactly the stages that read it.

:func:`run_settings` is the data-free part of all of this for one run, plus the code that
evaluates it; the workflow (``workflow/Snakefile``) writes its digest as a key file the run
depends on, so Snakemake re-runs exactly the runs whose settings or code changed (their data is the
run's other input). This module imports no torch, so the workflow can use it cheaply.
"""
from __future__ import annotations

import ast
import functools
import hashlib
from pathlib import Path
from typing import Any

from deg import io, paths, provenance

STAGES = ("flow", "feature", "features", "sequence", "predictions")
DEG_ROOT = Path(__file__).resolve().parent.parent       # the deg package

# Entry modules of each stage; their imports inside deg are followed (module_closure).
STAGE_ROOTS: dict[str, tuple[str, ...]] = {
    "flow": ("deg.train.flow",),
    "feature": ("deg.train.feature",),
    "features": ("deg.train.feature",),
    "sequence": ("deg.train.sequence",),
    "predictions": ("deg.train.calibrate",),
}
# What a run of the workflow executes besides the stages: the orchestration and the evaluation
# that notebooks/run_pipeline.ipynb calls (with the notebook itself, see run_settings).
RUN_ROOTS = ("deg.pipeline", "deg.evaluate", "deg.figs.performance", "deg.figs.location")
# Modules whose content enters the keys as values, not as code (their imports are not followed):
# the presets' entries are in the keys themselves; the registry's facts reach a run through the
# prepared dataset.json (dataset fingerprint) and the split count (split), both in the keys.
NOT_CODE = frozenset({"deg.presets", "deg.data.registry"})

# HPARAMS entries by the stage that reads them (name prefixes; a shared entry ending in "_" is a
# prefix too). Entries no rule assigns go into every stage's key, which is always safe.
HP_PREFIX = {"flow": ("flow",), "feature": ("fe_",), "sequence": ("tgm_", "sequence_"),
             "predictions": ("bout_",)}
HP_SHARED = {"flow": ("lr", "lr_factor", "lr_min", "aug_"),
             "feature": ("lr", "lr_factor", "lr_min", "aug_", "focal_gamma", "pos_weight_beta", "label_smoothing"),
             "sequence": ("lr", "lr_factor", "lr_min", "focal_gamma", "pos_weight_beta", "label_smoothing")}
# Read by TinyMotionNet3D's loss only (paper: lambda_3 and the 0.25 smoothness factor).
HP_FLOW_3D = ("flow3d_",)
# Read elsewhere: the profile's own value, evaluation, other datasets' or keypoint models.
HP_UNUSED = ("lr_patience_steps", "shuffle_repeats", "train_annotator_", "keypoint_")
PROFILE_FIELDS = {
    "flow": ("flow_steps", "flow_batch", "val_every", "val_batches", "lr_patience_steps"),
    "feature": ("feature_steps", "feature_batch", "val_every", "val_batches", "lr_patience_steps"),
    "features": ("infer_batch",),
    "sequence": ("sequence_steps", "sequence_batch", "sequence_length", "val_every", "lr_patience_steps"),
}
# Stages that read a pretrained checkpoint, by checkpoint name (<data>/pretrained/<preset>/<part>.pt)
PRETRAINED_PART = {"flow": "flow_generator", "feature": "feature_extractor"}


# Figure 6 (paper, Results: "we trained the flow generator only once and kept it fixed for all
# experiments"): every subsample run of a dataset uses the flow generator of this split's run.
FLOW_PARENT_SPLIT = "split0"


def flow_parent(split: str) -> str:
    """The split whose run trains the flow generator that run ``split`` uses: itself for
    ``split<k>``, :data:`FLOW_PARENT_SPLIT` for a Figure 6 run ``sub<n>_d<draw>``."""
    return FLOW_PARENT_SPLIT if str(split).startswith("sub") else str(split)


# --------------------------------------------------------------------------------------
# Seeds and checkpoints (torch-free, so they live here; deg.train.common re-exports them)
# --------------------------------------------------------------------------------------
def stage_seed(seed: int, stage: str) -> int:
    """A model-initialisation seed per stage, independent of the split seed and of other stages.

    Each stage reseeds from it, so a stage's result does not depend on whether earlier stages
    were trained in this process or loaded from the cache.
    """
    digest = hashlib.sha256(f"deg:{int(seed)}:{stage}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def pretrained_file(preset: str, part: str) -> Path | None:
    """A user-supplied pretrained checkpoint, ``<data>/pretrained/<preset>/<part>.pt``, if present.

    ``part``: "flow_generator" or "feature_extractor" (DeepEthogram's Kinetics700 checkpoints or
    torchvision-format ResNets; see :mod:`deg.models.pretrained`). Nothing is downloaded: without
    a file the models start from random weights (a documented deviation from the paper).
    """
    path = paths.data_dir() / "pretrained" / preset / f"{part}.pt"
    return path if path.exists() else None


def starts_from_shapes(preset, profile, part: str) -> bool:
    """True when ``part`` of a run of ``preset`` (:class:`deg.presets.Preset`) under ``profile``
    (that preset's) starts from the moving-shapes flow pretraining (:mod:`deg.train.flow_shapes`):
    the flow generator, ``profile.flow_shapes_steps`` > 0, and neither self-supervised weights nor
    a Kinetics file to start from."""
    return (part == "flow_generator" and profile.flow_shapes_steps > 0 and profile.pretrained != "selfsup"
            and pretrained_file(preset.name, part) is None)


def _file_fingerprint(path: Path | None) -> list | None:
    if path is None:
        return None
    st = path.stat()
    return [path.name, st.st_size, st.st_mtime_ns]


# --------------------------------------------------------------------------------------
# Code
# --------------------------------------------------------------------------------------
def _module_file(module: str) -> Path | None:
    """deg.a.b -> deg/a/b.py or deg/a/b/__init__.py (None when it is not a module of deg)."""
    parts = module.split(".")
    if parts[0] != "deg":
        return None
    base = DEG_ROOT.joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


@functools.lru_cache(maxsize=None)
def _imports(module: str) -> tuple[str, ...]:
    """Modules of deg that ``module`` imports anywhere in its file (functions included), with the
    packages on the way (importing deg.a.b runs deg/a/__init__.py)."""
    path = _module_file(module)
    if path is None:
        return ()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            names = [origin] + [f"{origin}.{alias.name}" for alias in node.names]   # from deg import io
        for name in names:
            parts = name.split(".")
            for i in range(1, len(parts) + 1):
                candidate = ".".join(parts[:i])
                if _module_file(candidate) is not None:
                    found.add(candidate)
    found.discard(module)
    return tuple(sorted(found))


def module_closure(roots: tuple[str, ...] | list[str]) -> list[str]:
    """Every module of deg that ``roots`` import, transitively, roots included, sorted."""
    seen: set[str] = set()
    todo = [r for r in roots if _module_file(r) is not None]
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        if module not in NOT_CODE:
            todo.extend(_imports(module))
    return sorted(seen)


def _strip_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) \
                    and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return tree


@functools.lru_cache(maxsize=None)
def _module_code_hash(path: str, mtime_ns: int, size: int) -> str:
    """Hash of a module's syntax tree without docstrings (comments are not in the tree)."""
    source = Path(path).read_text(encoding="utf-8")
    tree = _strip_docstrings(ast.parse(source, filename=path))
    return provenance.config_key(ast.dump(tree, include_attributes=False))


def code_hashes(roots: tuple[str, ...] | list[str]) -> dict[str, str]:
    """{module: hash of its code} over :func:`module_closure` (``roots``), without :data:`NOT_CODE`."""
    out = {}
    for module in module_closure(tuple(roots)):
        if module in NOT_CODE:
            continue
        path = _module_file(module)
        st = path.stat()
        out[module] = _module_code_hash(str(path), st.st_mtime_ns, st.st_size)
    return out


@functools.lru_cache(maxsize=None)
def code_hash(roots: tuple[str, ...]) -> str:
    """One hash of :func:`code_hashes` (``roots``), computed once per process (a workflow or a
    run reads it hundreds of times; the code does not change under a running process)."""
    return provenance.config_key(code_hashes(tuple(roots)))


@functools.lru_cache(maxsize=None)
def _text_key(path: Path) -> str:
    return provenance.config_key(path.read_text(encoding="utf-8"))


def stage_code(stage: str) -> str:
    return code_hash(tuple(STAGE_ROOTS[stage]))


# --------------------------------------------------------------------------------------
# Settings (no data) and configurations (with data)
# --------------------------------------------------------------------------------------
def _hp_select(stage: str, hparams: dict[str, Any], is_3d: bool = True) -> dict[str, Any]:
    """HPARAMS entries read by ``stage``: its prefixes, plus shared names/prefixes ("aug_").
    The flow stage of a 2D flow generator does not read the TinyMotionNet3D entries."""
    out = {}
    for k, v in hparams.items():
        if k.startswith(HP_PREFIX.get(stage, ())):
            out[k] = v
        for shared in HP_SHARED.get(stage, ()):
            if k == shared or (shared.endswith("_") and k.startswith(shared)):
                out[k] = v
    if stage == "flow" and not is_3d:
        out = {k: v for k, v in out.items() if not k.startswith(HP_FLOW_3D)}
    return out


def _hp_unassigned(hparams: dict[str, Any]) -> dict[str, Any]:
    assigned = {k for k in hparams if k.startswith(HP_UNUSED) or k.startswith(HP_FLOW_3D)}
    for stage in STAGES:
        assigned |= set(_hp_select(stage, hparams))
    return {k: v for k, v in hparams.items() if k not in assigned}


def _is_3d(preset) -> bool:
    return preset.flow_generator.endswith("3d")


def stage_settings(preset, profile, hparams: dict[str, Any], seed: int) -> dict[str, dict[str, Any]]:
    """What each stage reads besides data: HPARAMS entries, profile fields, seed, code, model,
    pretrained checkpoint. ``preset``: :class:`deg.presets.Preset`; ``profile``: the profile for
    that preset (``Profile.for_preset``); ``hparams``: the run's complete HPARAMS."""
    models = {"flow": {"flow_generator": preset.flow_generator, "n_flow_frames": preset.n_flow_frames},
              "feature": {"feature_extractor": preset.feature_extractor, "n_rgb_frames": preset.n_rgb_frames,
                          "n_flow_frames": preset.n_flow_frames, "feature_dim": preset.feature_dim},
              "sequence": {"sequence_model": preset.sequence_model}}
    out: dict[str, dict[str, Any]] = {}
    for stage in STAGES:
        part = {"hparams": _hp_select(stage, hparams, _is_3d(preset)),
                "profile": {f: getattr(profile, f) for f in PROFILE_FIELDS.get(stage, ())},
                "code": stage_code(stage)}
        if stage in ("flow", "feature", "sequence"):
            part["seed"] = stage_seed(seed, stage)
        if stage in models:
            part["model"] = models[stage]
        if stage in PRETRAINED_PART:
            part["pretrained"] = _file_fingerprint(pretrained_file(preset.name, PRETRAINED_PART[stage]))
            if starts_from_shapes(preset, profile, PRETRAINED_PART[stage]):
                from deg.presets import FLOW_SHAPES_HPARAMS

                # the moving-shapes stage's settings; its generator, image size and code are in
                # this stage's own model, base and code
                part["pretrained"] = {"flow_shapes": {"steps": profile.flow_shapes_steps,
                                                      "batch": profile.flow_shapes_batch,
                                                      "hparams": FLOW_SHAPES_HPARAMS}}
        out[stage] = part
    return out


def _dataset_fingerprint(ctx) -> dict[str, Any]:
    ds = ctx.dataset
    meta = io.read_json(ds.root / "dataset.json")
    files = {}
    for v in ctx.videos:
        st = ds.video_path(v).stat()
        files[v] = [st.st_size, st.st_mtime_ns]
    return {"id": ds.id, "meta": provenance.config_key(meta), "videos": files}


def _labels_hash(ctx) -> str:
    import numpy as np

    h = hashlib.sha256()
    for v in sorted(ctx.labels):
        h.update(v.encode())
        h.update(np.ascontiguousarray(ctx.labels[v]).tobytes())
    return h.hexdigest()[:16]


def _split_dict(split) -> dict[str, list[str]]:
    return {"train": split.train, "val": split.val, "test": split.test}


def _initial_weights(ctx, stage: str):
    """What ``stage`` starts from under ``Profile.pretrained = "selfsup"``: the self-supervised
    stage's key (:func:`deg.train.selfsup.weights_key`); the Kinetics file otherwise (in
    :func:`stage_settings`)."""
    from deg.train import selfsup

    return selfsup.weights_key(ctx, PRETRAINED_PART[stage])


def stage_configs(ctx) -> dict[str, dict[str, Any]]:
    """The configuration of every stage (what its key hashes), upstream keys chained in.

    ``ctx``: :class:`deg.train.common.RunContext`. The flow generator is trained on
    ``ctx.flow_split`` (a Figure 6 subsample run reuses its parent split's, see
    :func:`deg.pipeline.flow_parent`), so its configuration -- and its key -- is the parent's.
    """
    from deg.presets import check_init_weights

    hp = ctx.hparams
    settings = stage_settings(ctx.preset, ctx.profile, hp, ctx.seed)
    flow_split = getattr(ctx, "flow_split", None) or ctx.split
    base = {"dataset": _dataset_fingerprint(ctx), "image_size": list(ctx.image_size),
            "hparams": _hp_unassigned(hp), "precision": ctx.precision.name}
    configs: dict[str, dict[str, Any]] = {}
    if check_init_weights(ctx.profile.pretrained) == "selfsup":
        for stage in PRETRAINED_PART:
            settings[stage]["pretrained"] = _initial_weights(ctx, stage)
    configs["flow"] = {"base": {**base, "split": _split_dict(flow_split)}, **settings["flow"]}
    keys = {"flow": provenance.config_key(configs["flow"])}
    configs["feature"] = {"flow": keys["flow"], "base": {**base, "split": _split_dict(ctx.split)},
                          "labels": _labels_hash(ctx), **settings["feature"]}
    keys["feature"] = provenance.config_key(configs["feature"])
    configs["features"] = {"feature": keys["feature"], "videos": ctx.videos, **settings["features"]}
    keys["features"] = provenance.config_key(configs["features"])
    configs["sequence"] = {"features": keys["features"], **settings["sequence"]}
    keys["sequence"] = provenance.config_key(configs["sequence"])
    configs["predictions"] = {"sequence": keys["sequence"], **settings["predictions"]}
    return configs


def init_kinds(preset: str) -> dict[str, str]:
    """Pretraining stages (deg.train.selfsup) that a run of ``preset`` with pretrained="selfsup"
    starts from. Here, not in deg.workflow, so that the workflow module stays out of every run's
    code key (an edit to the figure list must not re-train the runs)."""
    from deg.presets import get_preset

    p = get_preset(preset)
    return {"flow_generator": f"flow-{p.flow_generator}", "feature_extractor": f"{p.feature_extractor}-rgb"}


def keys_of(configs: dict[str, dict[str, Any]]) -> dict[str, str]:
    return {stage: provenance.config_key(cfg) for stage, cfg in configs.items()}


def run_settings(dataset: str, preset_name: str, split: str, profile, seed: int = 0) -> dict[str, Any]:
    """Everything a workflow run's outputs depend on except the data (the rule's other input).

    ``profile``: a :class:`deg.presets.Profile` (overrides included); the preset's replacements
    are applied here. Holds every stage's :func:`stage_settings`, what decides the split (split
    name, split count, the Figure 6 sizes and draws for ``sub`` runs, the flow generator's parent
    split), the evaluation's settings, and the code of :data:`RUN_ROOTS` and of the notebook.
    """
    from deg import presets

    preset = presets.get_preset(preset_name)
    prof = profile.for_preset(preset_name)
    hparams = {**presets.HPARAMS, **prof.hparams}
    notebook = paths.REPO / "notebooks" / "run_pipeline.ipynb"
    split_part: dict[str, Any] = {"split": split, "seed": int(seed), "n_splits": prof.splits_for(dataset),
                                  "image_size": prof.image_size, "bf16": prof.bf16}
    if split.startswith("sub"):
        split_part.update(subsample_videos=list(prof.subsample_videos), subsample_draws=prof.subsample_draws,
                          flow_parent=flow_parent(split))
    return {"dataset": dataset, "preset": preset_name, "stages": stage_settings(preset, prof, hparams, seed),
            "split": split_part, "hparams": _hp_unassigned(hparams),
            "evaluation": {"shuffle_repeats": prof.shuffle_repeats,
                           "hparams": {k: v for k, v in hparams.items() if k.startswith(HP_UNUSED)},
                           "code": code_hash(tuple(RUN_ROOTS)),
                           "notebook": _text_key(notebook)}}
