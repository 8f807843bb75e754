"""Inference backends for the per-frame feature path: flow generator + both feature streams.

Issue 14 (speed). The paper sells DeepEthogram on inference speed (Results, Table 1); on a CPU
the flow generator and the two streams are nearly all of the work, and the sequence model (TGM)
is cheap. This module runs that feature path with one of:

* ``eager``: the PyTorch models themselves (the reference; always available). The same forward
  pass as training's (:func:`deg.train.feature` reads the finest flow).
* ``onnxruntime``: the same path exported to ONNX (float32) and run by ONNX Runtime.
* ``onnxruntime-int8``: the float32 ONNX model quantised by ONNX Runtime's static post-training
  quantisation (QDQ format, per-channel int8 weights, uint8 activations), calibrated on clips of
  the video being predicted (so its activation ranges are this run's and this video's); the
  flow generator and the flow stream (85-88% of the FLOPs) in int8, the spatial stream in
  float32 (:data:`KEEP_FLOAT`: it is where int8 lost agreement). On CPUs with int8 dot products
  (VNNI, AMX) the export it quantises has the flow generator's transposed convs as sub-pixel
  convs (:class:`SubPixelDeconv2d`): ONNX Runtime has int8 kernels for convs, none for transposed convs.

A backend maps a standardised clip batch ``(N, 3, T, H, W)`` float32 to features ``(N, 2D)``
float32 (spatial features then flow features, as :class:`deg.infer.Predictor` feeds the TGM).
The export works for any flow generator ``nn.Module`` whose forward returns a list of flows,
finest first (``deg.models.flow``), and any two-stream model returning a dict with
``spatial_features`` and ``flow_features``: it traces the modules, it reads none of their
internals.

Exported and quantised models are cached (atomic writes, :func:`deg.io.atomic_path`) under
``<cache_dir>/<key>/``, keyed by what produced them: a hash of both models' weights and buffers,
the clip shape, the backend, the ONNX opset, the torch / onnx / onnxruntime versions and, for
int8, a hash of the calibration clips. Anything else means a new key, never a stale model.

:func:`select` (``--backend auto``) measures each installed candidate on a check batch, keeps those
whose probabilities agree with eager float32 (:data:`TOLERANCE`) and returns the fastest; a
backend that fails to build or disagrees is skipped with a one-line logged reason, and eager
is the fallback.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch

from deg import io, provenance

log = logging.getLogger("deg.backends")

NAMES = ("eager", "onnxruntime", "onnxruntime-int8")
CHOICES = NAMES + ("auto",)
OPSET = 17
EXPORT_REVISION = 3         # bump when what is exported changes (2: initializers unshared; 3: int8 sub-pixel deconvs)
# Agreement with eager float32, on sigmoid probabilities of the TGM (absolute difference).
# float32 ONNX Runtime: same arithmetic up to summation order (measured ~1e-6).
# int8 (spatial stream float32, KEEP_FLOAT): quantisation noise; measured 0.0006-0.0008 on
# random-weight DEG_f at 128 and 256 and 0.0012 on a trained demo DEG_f over a whole video
# (README "Speed"), so 0.05 leaves room for other weights without letting a broken model through.
TOLERANCE = {"onnxruntime": 1e-4, "onnxruntime-int8": 0.05}
EXPORT_CHECK = 1e-3         # float32 export: max |features - eager| relative to max |features|
CALIBRATION_CLIPS = 32     # clips of the video that calibrate int8 activation ranges
# Module scopes of FeaturePath that int8 leaves in float32: the spatial stream (one RGB frame
# through a ResNet: 12% / 15% of DEG_f's / DEG_m's FLOPs, torch's FLOP counter). A trained demo
# DEG_f fully quantised gave max |dp| 0.052 and 4.4% of frames flipped, from the spatial
# features (up to 17% off); with the spatial stream in float32, 0.0012 and none flipped, for 3-9%
# of int8's speed on pre-made clips and 5-18% from the mp4 (README, "Speed").
KEEP_FLOAT = ("feature_model/spatial",)


# CPU flags of int8 dot-product instructions. With them an int8 conv runs ~3x float32 and the int8
# export pays for its sub-pixel convs' 9/4 multiply-adds (measured, AVX512-VNNI EPYC); without
# them (AVX2: vpmaddubsw + vpmaddwd + add) int8 is ~1.5x float32 and the gain was never measured,
# so the transposed convs stay as they were (README, "Speed").
INT8_DOT_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")


def int8_dot_products() -> bool:
    """Whether this CPU has int8 dot-product instructions (:data:`INT8_DOT_FLAGS`, /proc/cpuinfo)."""
    return bool(provenance.cpu_flags() & set(INT8_DOT_FLAGS))


class BackendError(RuntimeError):
    """A backend cannot be built or run here (not installed, export failed, ...)."""


# --------------------------------------------------------------------------------------
# The feature path as one module
# --------------------------------------------------------------------------------------
class FeaturePath(torch.nn.Module):
    """Standardised clip (N, 3, T, H, W) -> features (N, 2D) = [spatial, flow] (eval mode)."""

    def __init__(self, flow_model: torch.nn.Module, feature_model: torch.nn.Module):
        super().__init__()
        self.flow_model, self.feature_model = flow_model, feature_model

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        flows = self.flow_model(clip)[0]            # finest scale only: the flow stream's input
        out = self.feature_model(clip, flows)
        return torch.cat([out["spatial_features"].float(), out["flow_features"].float()], dim=1)


class SubPixelDeconv2d(torch.nn.Module):
    """A ``ConvTranspose2d(cin, cout, 4, stride=2, padding=1)`` as a 3x3 conv to 4 * cout channels
    and a pixel shuffle (ONNX ``DepthToSpace``): the same function (up to summation order), but a
    plain conv, which ONNX Runtime runs in int8, where it has no int8 kernel for transposed convs.

    Output pixel (2i + a, 2j + b) of the transposed conv reads input rows i - 1, i (a = 0; kernel
    rows 3, 1) or i, i + 1 (a = 1; kernel rows 2, 0), and the same for columns; the 3x3 conv holds
    those four taps per phase (a, b) and zeros elsewhere, so it does 9/4 of the multiply-adds.
    Measured on the 2-core AVX512-VNNI AMD EPYC (random weights, int8 flow generator, ONNX
    Runtime alone, median of 5): DEG_m 128x128 33.6 -> 43.6 clips/s, DEG_f 128 67.5 -> 75.1, DEG_f
    224 22.5 -> 23.8 (README, "Speed"). x (N, cin, H, W) -> (N, cout, 2H, 2W).
    """

    TAPS = ((3, 1, None), (None, 2, 0))     # kernel row of output phase a at conv row u (None: zero)

    def __init__(self, deconv: torch.nn.ConvTranspose2d):
        super().__init__()
        if not is_subpixel_deconv(deconv):
            raise ValueError(f"not a kernel-4, stride-2, padding-1 transposed conv: {deconv}")
        cin, cout = deconv.in_channels, deconv.out_channels
        w = deconv.weight.detach()                                   # (cin, cout, 4, 4)
        k = w.new_zeros(cout, 2, 2, cin, 3, 3)                       # (cout, a, b, cin, u, v)
        for a in range(2):
            for u, kh in enumerate(self.TAPS[a]):
                for b in range(2):
                    for v, kw in enumerate(self.TAPS[b]):
                        if kh is not None and kw is not None:
                            k[:, a, b, :, u, v] = w[:, :, kh, kw].t()
        self.conv = torch.nn.Conv2d(cin, 4 * cout, 3, 1, 1, bias=deconv.bias is not None)
        with torch.no_grad():                 # output channel 4o + 2a + b: pixel_shuffle's order
            self.conv.weight.copy_(k.reshape(4 * cout, cin, 3, 3))
            if deconv.bias is not None:
                self.conv.bias.copy_(deconv.bias.detach().repeat_interleave(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.pixel_shuffle(self.conv(x), 2)


def is_subpixel_deconv(m: torch.nn.Module) -> bool:
    """Whether ``m`` is a transposed conv that :class:`SubPixelDeconv2d` can replace."""
    return (isinstance(m, torch.nn.ConvTranspose2d) and m.kernel_size == (4, 4) and m.stride == (2, 2)
            and m.padding == (1, 1) and m.output_padding == (0, 0) and m.dilation == (1, 1) and m.groups == 1)


def subpixel_deconvs(module: torch.nn.Module) -> torch.nn.Module:
    """A copy of ``module`` with every replaceable ``ConvTranspose2d`` a :class:`SubPixelDeconv2d`
    (the int8 backend's export; the run's own models are left as they are)."""
    import copy

    out = copy.deepcopy(module)
    for parent in list(out.modules()):
        for name, child in list(parent.named_children()):
            if is_subpixel_deconv(child):
                setattr(parent, name, SubPixelDeconv2d(child))
    return out


def weights_hash(*modules: torch.nn.Module) -> str:
    """sha256 of every parameter and buffer (names, shapes, dtypes, values) of ``modules``."""
    h = hashlib.sha256()
    for i, m in enumerate(modules):
        for name, t in sorted(m.state_dict().items()):
            t = t.detach().cpu().contiguous().reshape(-1)
            h.update(f"{i}:{name}:{tuple(t.shape)}:{t.dtype}".encode())
            h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def available(name: str) -> bool:
    """Whether backend ``name`` can be built here (its package is installed)."""
    if name == "eager":
        return True
    if name.startswith("onnxruntime"):
        return all(importlib.util.find_spec(p) is not None for p in ("onnx", "onnxruntime"))
    raise ValueError(f"unknown backend {name!r}; choose from {', '.join(CHOICES)}")


def versions() -> dict[str, str]:
    out = {"torch": torch.__version__}
    for pkg in ("onnx", "onnxruntime"):
        try:
            out[pkg] = __import__(pkg).__version__
        except ImportError:
            pass
    return out


# --------------------------------------------------------------------------------------
# Backends
# --------------------------------------------------------------------------------------
@dataclass
class Backend:
    """``features(clip (N, 3, T, H, W) float32 tensor) -> (N, 2D) float32 numpy``."""

    name: str
    run: Callable[[torch.Tensor], np.ndarray]
    info: dict[str, Any] = field(default_factory=dict)

    def features(self, clip: torch.Tensor) -> np.ndarray:
        return self.run(clip)


def eager(flow_model: torch.nn.Module, feature_model: torch.nn.Module, precision=None) -> Backend:
    """The PyTorch models themselves (autocast when ``precision`` says so)."""
    path = FeaturePath(flow_model, feature_model).eval()

    @torch.inference_mode()
    def run(clip: torch.Tensor) -> np.ndarray:
        if precision is not None:
            with precision.autocast():
                return path(clip).float().cpu().numpy()
        return path(clip).cpu().numpy()

    return Backend("eager", run)


def export_onnx(path_module: torch.nn.Module, example: torch.Tensor, dest: Path) -> Path:
    """Export ``path_module`` (clip -> features) to ONNX at ``dest`` (atomic), batch axis dynamic."""
    import onnx

    with io.atomic_path(dest) as tmp:
        with torch.no_grad(), warnings.catch_warnings():
            # shape checks in the models' forward become constants of the trace: the shape is fixed
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.simplefilter("ignore", DeprecationWarning)     # the TorchScript exporter: still works
            torch.onnx.export(path_module, (example,), str(tmp), input_names=["clip"], output_names=["features"],
                              dynamic_axes={"clip": {0: "n"}, "features": {0: "n"}}, opset_version=OPSET,
                              dynamo=False)
        model = onnx.load(str(tmp))
        if unshare_initializers(model.graph):
            onnx.save(model, str(tmp))
        onnx.checker.check_model(str(tmp))
    return dest


def unshare_initializers(graph) -> int:
    """Replace every ``Identity`` of an initializer in ``graph`` (an ONNX GraphProto) by a copy of
    that initializer under the Identity's output name; returns how many were replaced.

    ``torch.onnx.export`` stores equal constant tensors once and feeds the other users through
    Identity nodes. In freshly initialised models many convolution biases are equal (zeros, or
    the same folded BatchNorm), and ONNX Runtime's quantiser leaves a convolution whose bias is
    not an initializer in float32 behind dequantised weights: measured on random-weight DEG_f
    at 128x128, 44 of 49 convs stayed float and int8 ran at 0.9x of float32; with the copies all
    49 are int8 and it runs at 1.6x (README, "Speed").
    """
    inits = {t.name: t for t in graph.initializer}
    keep, copies = [], []
    for node in graph.node:
        if node.op_type == "Identity" and node.input[0] in inits:
            t = type(inits[node.input[0]])()
            t.CopyFrom(inits[node.input[0]])
            t.name = node.output[0]
            copies.append(t)
        else:
            keep.append(node)
    if copies:
        del graph.node[:]
        graph.node.extend(keep)
        graph.initializer.extend(copies)
    return len(copies)


def _session(model_path: Path, threads: int):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = max(1, int(threads))
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(model_path), opts, providers=["CPUExecutionProvider"])


class _ClipReader:
    """onnxruntime.quantization CalibrationDataReader over calibration clips (N, 3, T, H, W)."""

    def __init__(self, clips: np.ndarray, batch: int = 4):
        self._batches = iter([{"clip": clips[i:i + batch]} for i in range(0, len(clips), batch)])

    def get_next(self):
        return next(self._batches, None)


def quantize_int8(float_model: Path, calibration: np.ndarray, dest: Path) -> Path:
    """Static QDQ int8 quantisation of ``float_model`` calibrated on ``calibration`` clips (atomic).

    Per-channel symmetric int8 weights, uint8 activations with min/max ranges from the
    calibration clips. Nodes under the module scopes :data:`KEEP_FLOAT` (ONNX node names start
    with ``/<scope>/``; part of the int8 cache key, :func:`model_dir`) stay float32; a scope that
    matches no node is ignored (a feature model without a ``spatial`` stream is quantised whole).
    """
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with io.atomic_path(dest.with_name(dest.stem + "-pre.onnx")) as pre:
        quant_pre_process(str(float_model), str(pre), skip_symbolic_shape=True)
        prefixes = tuple(f"/{scope.strip('/')}/" for scope in KEEP_FLOAT)
        excluded = [n.name for n in onnx.load(str(pre)).graph.node if n.name.startswith(prefixes)]
        with io.atomic_path(dest) as tmp:
            quantize_static(str(pre), str(tmp), _ClipReader(calibration), quant_format=QuantFormat.QDQ,
                            per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            calibrate_method=CalibrationMethod.MinMax, nodes_to_exclude=excluded)
    return dest


def model_dir(cache_dir: Path, name: str, flow_model: torch.nn.Module, feature_model: torch.nn.Module,
              clip_shape: Sequence[int], calibration: np.ndarray | None = None,
              subpixel: bool = False) -> tuple[Path, dict[str, Any]]:
    """(folder of backend ``name``'s cached model, the key that names it) under ``cache_dir``.

    The key: a hash of both models' weights, the clip shape (C, T, H, W), the backend, the ONNX
    opset, the export's revision, the package versions and, for int8, what stays float32, whether
    its transposed convs were exported as sub-pixel convs and a hash of the calibration clips.
    """
    key: dict[str, Any] = {"weights": weights_hash(flow_model, feature_model),
                           "clip": [int(s) for s in clip_shape], "opset": OPSET, "export": EXPORT_REVISION,
                           "versions": versions(),
                           "backend": name}
    if name == "onnxruntime-int8":
        key["keep_float"] = list(KEEP_FLOAT)
    if subpixel:
        key["deconvs"] = "subpixel"
    if calibration is not None:
        key.update(calibration=hashlib.sha256(np.ascontiguousarray(calibration).tobytes()).hexdigest(),
                   calibration_shape=list(calibration.shape))
    return Path(cache_dir) / hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20], key


def _export_checked(source: torch.nn.Module, reference: tuple[torch.nn.Module, torch.nn.Module],
                    clip_shape: Sequence[int], check: torch.Tensor, dest: Path, key: dict[str, Any]) -> Path:
    """Export ``source`` (clip -> features) to ``dest`` unless it is there, checked against the
    eager feature path of ``reference`` (flow model, feature model) on ``check`` clips: a trace
    silently freezes whatever Python decided from the example input (a branch, a numpy detour),
    so the model must agree on other clips too. A model that fails is deleted, never reused."""
    if dest.is_file():
        return dest
    C, T, H, W = (int(s) for s in clip_shape)
    try:
        export_onnx(source, torch.zeros(1, C, T, H, W), dest)
    except Exception as exc:
        raise BackendError(f"ONNX export failed: {type(exc).__name__}: {exc}") from exc
    expected = eager(*reference).features(check)
    try:
        diff = float(np.abs(_session(dest, torch.get_num_threads()).run(
            ["features"], {"clip": np.ascontiguousarray(check.numpy(), dtype=np.float32)})[0] - expected).max())
    except Exception as exc:
        diff, why = float("nan"), f"it fails on other clips ({type(exc).__name__}: {str(exc)[:120]})"
    else:
        why = f"it disagrees with eager by {diff:.3g}"
    if not diff <= EXPORT_CHECK * max(1.0, float(np.abs(expected).max())):
        dest.unlink(missing_ok=True)
        raise BackendError(f"ONNX export failed: {why} (the trace froze input-dependent Python code?)")
    io.write_json(dest.parent / "key.json", key)
    return dest


def onnxruntime(flow_model: torch.nn.Module, feature_model: torch.nn.Module, clip_shape: Sequence[int],
                cache_dir: Path, int8: bool = False, calibration: np.ndarray | None = None,
                threads: int | None = None, subpixel: bool | None = None) -> Backend:
    """ONNX Runtime float32 (or int8 with ``calibration`` clips) of the feature path, cached in ``cache_dir``.

    With ``subpixel`` (default: :func:`int8_dot_products`), int8 quantises an export in which the
    flow generator's transposed convs are sub-pixel convs (:func:`subpixel_deconvs`), which ONNX
    Runtime runs in int8; otherwise, and always in float32, the models are exported as they are.
    """
    if not available("onnxruntime"):
        raise BackendError("onnxruntime is not installed (pip install -e . installs it)")
    name = "onnxruntime-int8" if int8 else "onnxruntime"
    C, T, H, W = (int(s) for s in clip_shape)
    check = (torch.from_numpy(np.ascontiguousarray(calibration[:2], dtype=np.float32))
             if calibration is not None and len(calibration)
             else torch.randn(2, C, T, H, W, generator=torch.Generator().manual_seed(0)))
    if not int8:
        float_dir, float_key = model_dir(cache_dir, name, flow_model, feature_model, clip_shape)
        model = _export_checked(FeaturePath(flow_model, feature_model).eval(), (flow_model, feature_model),
                                clip_shape, check, float_dir / "model.onnx", float_key)
        info: dict[str, Any] = {"model": str(model)}
    else:
        if calibration is None or not len(calibration):
            raise BackendError("int8 needs calibration clips")
        calibration = np.ascontiguousarray(calibration, dtype=np.float32)
        subpixel = int8_dot_products() if subpixel is None else bool(subpixel)
        source_dir, source_key = model_dir(cache_dir, "onnxruntime", flow_model, feature_model, clip_shape,
                                           subpixel=subpixel)
        source = _export_checked(FeaturePath(subpixel_deconvs(flow_model) if subpixel else flow_model,
                                             feature_model).eval(),
                                 (flow_model, feature_model), clip_shape, check, source_dir / "model.onnx", source_key)
        q_dir, q_key = model_dir(cache_dir, name, flow_model, feature_model, clip_shape, calibration,
                                 subpixel=subpixel)
        model = q_dir / "model.onnx"
        if not model.is_file():
            try:
                quantize_int8(source, calibration, model)
                io.write_json(q_dir / "key.json", q_key)
            except Exception as exc:
                raise BackendError(f"int8 quantisation failed: {type(exc).__name__}: {exc}") from exc
        info = {"model": str(model), "calibration_clips": int(len(calibration)), "subpixel": subpixel}
    session = _session(model, threads or torch.get_num_threads())

    def run(clip: torch.Tensor) -> np.ndarray:
        x = np.ascontiguousarray(clip.detach().cpu().numpy(), dtype=np.float32)
        return session.run(["features"], {"clip": x})[0]

    return Backend(name, run, info)


# --------------------------------------------------------------------------------------
# Agreement and selection
# --------------------------------------------------------------------------------------
def agreement(reference: np.ndarray, other: np.ndarray, thresholds: np.ndarray | None = None) -> dict[str, float]:
    """max |p - p_ref| over (T, K) probabilities, and the fraction of frames whose thresholded
    prediction (any behaviour) changes (thresholds default to 0.5)."""
    thr = np.full(reference.shape[1], 0.5) if thresholds is None else np.asarray(thresholds)
    flips = ((reference >= thr) != (other >= thr)).any(axis=1)
    return {"max_abs_diff": float(np.abs(reference - other).max()), "flip_fraction": float(flips.mean())}


def agrees(name: str, max_abs_diff: float, tolerance: dict[str, float] | None = None) -> bool:
    """Whether backend ``name``, whose probabilities differ from eager's by ``max_abs_diff`` at
    most, is within its tolerance (default :data:`TOLERANCE`; eager always agrees)."""
    tolerance = TOLERANCE if tolerance is None else tolerance
    return name == "eager" or bool(max_abs_diff <= tolerance[name])


def build(name: str, flow_model, feature_model, clip_shape, cache_dir: Path, precision=None,
          calibration: np.ndarray | None = None, threads: int | None = None,
          subpixel: bool | None = None) -> Backend:
    """Backend ``name`` (one of :data:`NAMES`); BackendError when it cannot be built here.
    ``subpixel``: int8's transposed convs as sub-pixel convs (default: by the CPU, :func:`onnxruntime`)."""
    if name == "eager":
        return eager(flow_model, feature_model, precision)
    if name in ("onnxruntime", "onnxruntime-int8"):
        return onnxruntime(flow_model, feature_model, clip_shape, cache_dir, int8=name.endswith("int8"),
                           calibration=calibration, threads=threads, subpixel=subpixel)
    raise ValueError(f"unknown backend {name!r}; choose from {', '.join(CHOICES)}")


TIMING_CLIPS = 8        # clips each candidate is timed on (after a one-clip warm-up)


def _rate(backend: Backend, clips: torch.Tensor, repeats: int = 1) -> float:
    """Clips/s of ``backend`` on ``clips`` (best of ``repeats`` after one warm-up call)."""
    clips = clips[:TIMING_CLIPS]
    backend.features(clips[:1])
    best = 0.0
    for _ in range(repeats):
        t0 = time.perf_counter()
        backend.features(clips)
        best = max(best, len(clips) / max(time.perf_counter() - t0, 1e-9))
    return best


def select(flow_model, feature_model, clip_shape, cache_dir: Path, check_clips: torch.Tensor,
           probabilities: Callable[[np.ndarray], np.ndarray], precision=None,
           candidates: Iterable[str] | None = None, threads: int | None = None,
           tolerance: dict[str, float] | None = None) -> tuple[Backend, list[dict[str, Any]]]:
    """The fastest candidate whose probabilities agree with eager within ``tolerance`` (default
    :data:`TOLERANCE`).

    ``candidates`` default to every backend (:data:`NAMES`): int8 too, on every CPU (measured on a
    2-core AVX2-only AMD EPYC without int8 dot-product instructions, it ran at 1.4-1.8x of ONNX
    Runtime float32; README, "Speed"), its quantisation costing 7-31 s per video (DEG_f / DEG_m).
    ``check_clips``: standardised clips (n, 3, T, H, W) of the video (they also calibrate int8;
    the first :data:`TIMING_CLIPS` time); ``probabilities(features (n, 2D)) -> (n, K)`` runs the sequence model. Returns (backend,
    report rows {"backend", "clips_per_s", "max_abs_diff", "flip_fraction", "ok", "reason"}).
    """
    tolerance = TOLERANCE if tolerance is None else tolerance
    candidates = NAMES if candidates is None else candidates
    ref = eager(flow_model, feature_model, precision)
    ref_probs = probabilities(ref.features(check_clips))
    report = [{"backend": "eager", "clips_per_s": _rate(ref, check_clips), "max_abs_diff": 0.0,
               "flip_fraction": 0.0, "ok": True, "reason": ""}]
    best = (report[0]["clips_per_s"], ref)
    for name in candidates:
        if name == "eager":
            continue
        row: dict[str, Any] = {"backend": name, "ok": False}
        if not available(name):
            row["reason"] = "not installed"
            report.append(row)
            continue
        try:
            b = build(name, flow_model, feature_model, clip_shape, cache_dir, precision,
                      calibration=check_clips.numpy(), threads=threads)
            row.update(agreement(ref_probs, probabilities(b.features(check_clips))))
            row["clips_per_s"] = _rate(b, check_clips)
        except Exception as exc:                     # any failure: fall back, say why
            row["reason"] = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
            log.warning("backend %s skipped: %s", name, row["reason"])
            report.append(row)
            continue
        row["ok"] = agrees(name, row["max_abs_diff"], tolerance)
        row["reason"] = "" if row["ok"] else (f"disagrees with eager: max |dp| {row['max_abs_diff']:.2g} "
                                               f"> {tolerance[name]:g}")
        if not row["ok"]:
            log.warning("backend %s skipped: %s", name, row["reason"])
        elif row["clips_per_s"] > best[0]:
            best = (row["clips_per_s"], b)
        report.append(row)
    return best[1], report
