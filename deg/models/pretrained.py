"""Loading pretrained weights from local files (nothing is downloaded).

Two formats:

* torchvision-style ResNet state dicts (``conv1.weight``, ``layer1.0.conv1.weight``, ...,
  ``fc.weight``), 2D (ImageNet) or 3D with the same names (Hara et al. 3D-ResNets); loaded into
  a stream's ``backbone`` by name and shape. The ImageNet head (``fc.*``) is never loaded. A
  3-channel stem loads into a 20-channel (or 2-channel) one by averaging the RGB kernel and
  repeating it (paper "Feature extractors", after Wang et al. 2015): :func:`adapt_stem`.
* checkpoints of the original DeepEthogram models (Kinetics700): a ``torch.save``d dict whose
  ``state_dict`` keys belong to the flow generator, the spatial or the flow classifier. Keys
  are matched by name (after removing wrapper prefixes such as ``module.``/``model.``), then
  by a unique name suffix, then -- for checkpoints whose module names differ from ours -- by
  registration order within groups of tensors of the same shape and kind when both sides have
  the same number of them. The published flow generators and feature extractors load
  completely by name: our modules have the published names and shapes (tested against the
  layout recorded in ``tests/models/data/deepethogram_published_layout.json.gz``). Everything
  that did not load is listed in the :class:`LoadReport`.

Without a file, :func:`maybe_load` logs one line and the model trains from scratch.
"""
from __future__ import annotations

import logging
import os
import pickle
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import torch
from torch import nn

from deg.models.flow import FlowGenerator

log = logging.getLogger(__name__)

SCRATCH_NOTICE = "no pretrained weights: training from scratch"
WRAPPER_PREFIXES = ("module.", "model.", "_orig_mod.")       # DataParallel, Lightning, torch.compile
PART_MARKERS = {
    "flow_generator": ("flow_generator", "flowgenerator", "flow_gen"),
    "spatial": ("spatial_classifier", "spatial"),
    "flow": ("flow_classifier", "flow"),
}
_STEM_NAMES = ("conv1.weight",)


class PretrainedError(ValueError):
    """A weights file cannot be read or does not fit the model."""


@dataclass
class LoadReport:
    """What a load did. Names in ``loaded``/``adapted``/``by_order``/``missing`` are the model's
    (relative to the module passed in); ``skipped`` are checkpoint keys that were not used."""

    loaded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    adapted: list[str] = field(default_factory=list)
    by_order: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    source: str = ""

    def merged(self, other: "LoadReport", prefix: str = "") -> "LoadReport":
        """This report plus ``other`` whose model names get ``prefix``."""
        p = lambda names: [prefix + n for n in names]  # noqa: E731
        return LoadReport(self.loaded + p(other.loaded), self.skipped + other.skipped,
                          self.adapted + p(other.adapted), self.by_order + p(other.by_order),
                          self.missing + p(other.missing), self.source or other.source)

    def __str__(self) -> str:
        def some(names: list[str]) -> str:
            return ", ".join(names[:4]) + (", ..." if len(names) > 4 else "")
        total = len(self.loaded) + len(self.missing)
        s = f"loaded {len(self.loaded)}/{total} tensors from {self.source or 'a state dict'}"
        if self.adapted:
            s += f" ({len(self.adapted)} stem(s) adapted: {some(self.adapted)})"
        if self.by_order:
            s += f"; {len(self.by_order)} matched by shape and order"
        if self.skipped:
            s += f"; {len(self.skipped)} checkpoint tensors unused ({some(self.skipped)})"
        if self.missing:
            s += f"; {len(self.missing)} model tensors left at init ({some(self.missing)})"
        return s


def adapt_stem(weight: torch.Tensor, n_channels: int) -> torch.Tensor:
    """(out, C, k, k[, k]) stem kernel -> (out, n_channels, k, k[, k]): the mean over the C input
    channels, repeated ``n_channels`` times (ImageNet RGB -> 20 stacked flow channels)."""
    if weight.dim() not in (4, 5):
        raise PretrainedError(f"a stem kernel is (out, C, k, k[, k]), got {tuple(weight.shape)}")
    mean = weight.mean(dim=1, keepdim=True)
    return mean.repeat(1, n_channels, *([1] * (weight.dim() - 2)))


# --------------------------------------------------------------------------------------
# Reading files
# --------------------------------------------------------------------------------------
def _strip(key: str) -> str:
    changed = True
    while changed:
        changed = False
        for p in WRAPPER_PREFIXES:
            if key.startswith(p):
                key, changed = key[len(p):], True
    return key


def read_state_dict(path_or_state_dict: str | os.PathLike | Mapping[str, torch.Tensor],
                    trusted: bool = False) -> tuple[dict[str, torch.Tensor], str]:
    """(tensors by key with wrapper prefixes removed, a description of the source).

    Accepts a state dict, or a file holding one directly or under ``state_dict`` /
    ``model_state_dict`` / ``model``. Files are read with ``weights_only=True``; a file that also
    pickles arbitrary objects needs ``trusted=True``.
    """
    if isinstance(path_or_state_dict, Mapping):
        obj, source = path_or_state_dict, "a state dict"
    else:
        path = Path(path_or_state_dict)
        source = str(path)
        if not path.is_file():
            raise FileNotFoundError(f"pretrained weights file not found: {path}")
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except (pickle.UnpicklingError, RuntimeError, AttributeError, TypeError) as err:
            if not trusted:
                raise PretrainedError(f"{path}: cannot be read as plain tensors ({type(err).__name__}); "
                                      "if you trust this file, pass trusted=True") from err
            obj = torch.load(path, map_location="cpu", weights_only=False)
    for key in ("state_dict", "model_state_dict", "model"):
        if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
            obj = obj[key]
            break
    if not isinstance(obj, Mapping):
        raise PretrainedError(f"{source}: expected a state dict (a mapping of tensors), got {type(obj).__name__}")
    tensors = {_strip(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise PretrainedError(f"{source}: holds no tensors")
    return tensors, source


# --------------------------------------------------------------------------------------
# Matching
# --------------------------------------------------------------------------------------
def _copy(dst: torch.Tensor, src: torch.Tensor) -> None:
    with torch.no_grad():
        dst.copy_(src.to(dtype=dst.dtype, device=dst.device))


def _stem_adaptable(name: str, dst: torch.Tensor, src: torch.Tensor) -> bool:
    return (name.endswith(_STEM_NAMES) and dst.dim() == src.dim() and dst.dim() in (4, 5)
            and dst.shape[0] == src.shape[0] and dst.shape[2:] == src.shape[2:] and dst.shape[1] != src.shape[1])


def _kind(name: str) -> str:
    return name.rsplit(".", 1)[-1]


def _load_matching(module: nn.Module, source: dict[str, torch.Tensor], by_order: bool, source_name: str,
                   ignore: tuple[str, ...] = ()) -> LoadReport:
    """Copy ``source`` tensors into ``module``'s parameters and buffers (see module docstring)."""
    targets = dict(module.state_dict(keep_vars=True))
    report = LoadReport(source=source_name)
    unused = {k: v for k, v in source.items() if not k.startswith(ignore)}
    report.skipped.extend(k for k in source if k.startswith(ignore))
    pending = []

    def take(tname: str, skey: str) -> bool:
        dst, src = targets[tname], unused[skey]
        if dst.shape == src.shape:
            _copy(dst, src)
        elif _stem_adaptable(tname, dst, src):
            _copy(dst, adapt_stem(src.float(), dst.shape[1]))
            report.adapted.append(tname)
        else:
            return False
        report.loaded.append(tname)
        del unused[skey]
        return True

    for tname in targets:
        bare = tname[len("backbone."):] if tname.startswith("backbone.") else tname
        candidates = [k for k in (tname, bare) if k in unused]
        if not candidates:  # unique suffix match, e.g. "features.conv1.weight" <-> "conv1.weight"
            candidates = [k for k in unused if k.endswith("." + bare) or bare.endswith("." + k)]
            candidates = candidates if len(candidates) == 1 else []
        if not (candidates and take(tname, candidates[0])):
            pending.append(tname)

    if by_order and pending:
        groups_t, groups_s = defaultdict(list), defaultdict(list)
        for t in pending:
            groups_t[(tuple(targets[t].shape), _kind(t))].append(t)
        for s, v in unused.items():
            groups_s[(tuple(v.shape), _kind(s))].append(s)
        for key, tnames in groups_t.items():
            snames = groups_s.get(key, [])
            if len(snames) == len(tnames):
                for t, s in zip(tnames, snames):
                    take(t, s)
                    report.by_order.append(t)
        pending = [t for t in pending if t not in set(report.loaded)]
    report.missing = pending
    report.skipped.extend(unused)
    return report


# --------------------------------------------------------------------------------------
# Public loaders
# --------------------------------------------------------------------------------------
def load_torchvision_resnet(stream_module: nn.Module,
                            path_or_state_dict: str | os.PathLike | Mapping[str, torch.Tensor],
                            in_channels: int | None = None, trusted: bool = False) -> LoadReport:
    """Load a torchvision-format ResNet state dict into a stream's backbone (2D or 3D).

    ``fc.*`` (the ImageNet/Kinetics head) is not loaded; ``conv1.weight`` is adapted to the
    stream's input channels when they differ (:func:`adapt_stem`). ``in_channels``, if given,
    must equal the stream's. Names in the report are relative to ``stream_module``.
    """
    backbone = getattr(stream_module, "backbone", stream_module)
    have = backbone.conv1.in_channels
    if in_channels is not None and in_channels != have:
        raise PretrainedError(f"stream takes {have} input channels, not in_channels={in_channels}")
    source, name = read_state_dict(path_or_state_dict, trusted)
    if "conv1.weight" not in source:
        raise PretrainedError(f"{name}: not a torchvision-style ResNet state dict (no 'conv1.weight')")
    report = _load_matching(backbone, source, by_order=False, source_name=name, ignore=("fc.",))
    prefix = "backbone." if backbone is not stream_module else ""
    out = LoadReport(source=name).merged(report, prefix)
    if backbone is not stream_module:  # the stream's own new layers are "missing" too
        own = [n for n in stream_module.state_dict() if not n.startswith("backbone.")]
        out.missing.extend(own)
    log.info("torchvision ResNet weights: %s", out)
    return out


def _select_part(source: dict[str, torch.Tensor], part: str) -> dict[str, torch.Tensor]:
    """The tensors of one part, with everything up to and including its marker removed."""
    if part not in PART_MARKERS:
        raise ValueError(f"part must be one of {', '.join(PART_MARKERS)}, got {part!r}")

    def locate(key: str, markers: tuple[str, ...]) -> int | None:
        parts = key.split(".")
        for i, p in enumerate(parts[:-1]):
            if p in markers:
                return len(".".join(parts[: i + 1])) + 1
        return None

    any_marker = tuple(m for ms in PART_MARKERS.values() for m in ms)
    scoped = {k for k in source if locate(k, any_marker) is not None}
    if not scoped:  # a checkpoint of this one component
        return dict(source)
    out = {}
    for k, v in source.items():
        # the earliest marker in the key decides ("flow_generator.x.flow.w" is the flow generator's)
        cut = None
        for other, markers in PART_MARKERS.items():
            pos = locate(k, markers)
            if pos is not None and (cut is None or pos < cut[1]):
                cut = (other, pos)
        if cut is not None and cut[0] == part:
            out[k[cut[1]:]] = v
    return out


def load_deepethogram_checkpoint(model: nn.Module, path: str | os.PathLike, part: str,
                                 trusted: bool = False) -> LoadReport:
    """Load one part ("flow_generator" | "spatial" | "flow") of a DeepEthogram checkpoint.

    ``model`` is the module to fill; for a two-stream model with part "spatial"/"flow" the
    matching stream is filled (report names then start with "spatial."/"flow.").
    """
    target, prefix = model, ""
    if part in ("spatial", "flow") and isinstance(getattr(model, part, None), nn.Module):
        target, prefix = getattr(model, part), f"{part}."
    source, name = read_state_dict(path, trusted)
    selected = _select_part(source, part)
    if not selected:
        raise PretrainedError(f"{name}: holds no tensors of part {part!r}")
    report = LoadReport(source=name).merged(_load_matching(target, selected, True, name), prefix)
    if not report.loaded:
        raise PretrainedError(f"{name}: none of its {len(selected)} {part} tensors fit the model")
    log.info("DeepEthogram %s weights: %s", part, report)
    return report


def _looks_torchvision(source: dict[str, torch.Tensor]) -> bool:
    return "conv1.weight" in source and "layer1.0.conv1.weight" in source


def maybe_load(model: nn.Module, path_or_none: str | os.PathLike | Mapping | None, part: str | None = None,
               trusted: bool = False) -> LoadReport:
    """Load pretrained weights if a file is given; otherwise log the one-line scratch notice.

    part: None infers it -- a flow generator loads "flow_generator"; a two-stream model loads
    both streams, from a DeepEthogram checkpoint ("spatial" and "flow") or, for a
    torchvision-format file, the same ResNet into both with the flow stem adapted.
    Returns the (merged) :class:`LoadReport`; an empty one when training from scratch.
    """
    if path_or_none is None or str(path_or_none) == "":
        log.warning(SCRATCH_NOTICE)
        return LoadReport(missing=list(model.state_dict()), source="")
    if part is None and hasattr(model, "spatial") and hasattr(model, "flow"):
        source, _ = read_state_dict(path_or_none, trusted)
        report = LoadReport()
        for stream in ("spatial", "flow"):
            if _looks_torchvision(source):
                r = load_torchvision_resnet(getattr(model, stream), path_or_none, trusted=trusted)
                report = report.merged(r, f"{stream}.")
            else:
                report = report.merged(load_deepethogram_checkpoint(model, path_or_none, stream, trusted))
        return report
    if part is None:
        part = "flow_generator" if isinstance(model, FlowGenerator) else None
    if part is None:
        raise ValueError("maybe_load cannot infer which part to load; pass part=")
    return load_deepethogram_checkpoint(model, path_or_none, part, trusted)


def pretrained_reference(model: nn.Module, report: LoadReport) -> dict[str, torch.Tensor]:
    """Detached copies of the parameters ``report`` loaded: the L2-SP reference w0."""
    loaded = set(report.loaded)
    return {n: p.detach().clone() for n, p in model.named_parameters() if n in loaded}
