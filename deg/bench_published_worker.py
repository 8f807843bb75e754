"""Timed by ``deg.bench_published``: the published DeepEthogram 0.5.0 model path, in its own venv.

Run with the published package's interpreter (it imports ``deepethogram``, never ``deg``)::

    python bench_published_worker.py PRESET FRAMES.npy N_FRAMES THREADS OUT.json

What it times -- facts read from deepethogram 0.5.0's ``feature_extractor/inference.py``
(``predict_single_video``): batches of 16 stacks of 11 frames, frame-major RGB channels (N, 33, H,
W), converted to float, divided by 255 and z-scored (its inference ``gpu_transform``), through the
hidden two-stream model built by its own ``deg_f`` / ``deg_m`` (random weights,
``reload_imagenet=False``); the spatial and flow features are the inputs of each stream's last
linear layer, caught by forward hooks as its ``unpack_penultimate_layer`` does (its inference
module itself is not imported: it pulls in its video readers); then sigmoid. Left out: its video decoding
(VideoIterable: OpenCV / vidio workers), which the frames file replaces, and its sequence model.
"""
from __future__ import annotations

import json
import sys
import time

import numpy as np
import torch


def main(preset: str, frames_path: str, n_frames: int, threads: int, out: str) -> None:
    torch.set_num_threads(threads)
    from deepethogram.feature_extractor.models import hidden_two_stream

    torch.manual_seed(0)
    model = getattr(hidden_two_stream, preset.lower())(6, reload_imagenet=False).eval()
    activation: dict[str, torch.Tensor] = {}
    for name, stream in (("spatial", model.spatial_classifier), ("flow", model.flow_classifier)):
        last = [m for m in stream.modules() if isinstance(m, torch.nn.Linear)][-1]
        last.register_forward_hook(lambda mod, inputs, output, name=name: activation.__setitem__(name, inputs[0]))
    frames = np.load(frames_path)[:n_frames]                        # (T, H, W, 3) uint8
    T = len(frames)
    idx = np.clip(np.arange(T)[:, None] + np.arange(11)[None, :] - 5, 0, T - 1)
    mean = torch.full((1, 33, 1, 1), 0.5)
    std = torch.full((1, 33, 1, 1), 0.25)

    def run() -> np.ndarray:
        feats = []
        with torch.no_grad():
            for start in range(0, T, 16):
                stack = frames[idx[start:start + 16]]                # (B, 11, H, W, 3)
                b, n, h, w, c = stack.shape
                x = torch.from_numpy(stack).permute(0, 1, 4, 2, 3).reshape(b, n * c, h, w)
                x = (x.float() / 255.0 - mean) / std
                logits = model(x)
                torch.sigmoid(logits)
                feats.append(torch.cat([activation["spatial"], activation["flow"]], dim=1).numpy())
        return np.concatenate(feats)

    run()                                                           # warm-up (first-call costs)
    t0 = time.perf_counter()
    feats = run()
    seconds = time.perf_counter() - t0
    import deepethogram

    with open(out, "w") as fh:
        json.dump({"frames_per_s": T / seconds, "n_frames": T, "features": list(feats.shape),
                   "deepethogram": getattr(deepethogram, "__version__", "0.5.0"), "torch": torch.__version__}, fh)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
