"""The ethogram viewer and labeller inside JupyterLab: an anywidget over :class:`EthogramModel`.

    from deg.widgets.viewer import EthogramWidget
    EthogramWidget.for_labels("video.mp4", "video_labels.csv", editing="alice")   # label a video
    EthogramWidget.for_run("results/demo/<dataset>/DEG_f/split0", "video03")     # review a run
    EthogramWidget.for_prediction("new.mp4", "new_probabilities.npz", "new_labels.csv")  # make predict output

Shown: the frame at the cursor (decoded on demand), a slider, and beneath it the ethogram rasters of
every annotator, the model's predictions and probabilities, over a window of frames centred on the
cursor (a red line marks it), then the list of bouts (click one to jump to it and select it).

Keys (click the widget first): Left/Right one frame (Shift: 10), the behaviour's key (1, 2, ... in the
order of the behaviours, shown in the legend) toggles it from the cursor (press again to close the bout),
``[`` / ``]`` move the selected bout's start / end to the cursor, Delete or Backspace removes it, ``z``
undoes, ``s`` saves (atomic, with a backup of an existing file). The Python side does every edit, so
the labels in the kernel are always the ones shown.
"""
from __future__ import annotations

import base64
import io as _bytes_io
from pathlib import Path

import anywidget
import numpy as np
import traitlets
from PIL import Image

from deg.figs.ethovideo import behaviour_colours, ethogram_image
from deg.widgets.model import Bout, EthogramError, EthogramModel

WINDOW = 200          # frames of ethogram shown around the cursor
ROW_H, COL_W = 8, 2   # pixels per behaviour row and per frame

_ESM = r"""
function render({ model, el }) {
  const root = document.createElement("div");
  root.className = "deg-ethogram";
  root.tabIndex = 0;
  // keys pressed in the widget are its own: JupyterLab (Lumino) must not run notebook shortcuts on them
  root.setAttribute("data-lm-suppress-shortcuts", "true");
  root.setAttribute("data-p-suppress-shortcuts", "true");
  root.innerHTML = `
    <div class="deg-top"><img class="deg-frame"/><div class="deg-side">
      <div class="deg-pos"></div><div class="deg-legend"></div>
      <button class="deg-save">save (s)</button><div class="deg-status"></div></div></div>
    <input class="deg-scrub" type="range" min="0" step="1"/>
    <img class="deg-raster"/><div class="deg-rows"></div>
    <div class="deg-bouts"></div>`;
  el.appendChild(root);
  const q = (s) => root.querySelector(s);
  const scrub = q(".deg-scrub");
  function draw() {
    q(".deg-frame").src = "data:image/png;base64," + model.get("frame_png");
    q(".deg-raster").src = "data:image/png;base64," + model.get("raster_png");
    scrub.max = model.get("n_frames") - 1;
    scrub.value = model.get("cursor");
    q(".deg-pos").textContent = `frame ${model.get("cursor")} / ${model.get("n_frames") - 1}`;
    q(".deg-status").textContent = model.get("status");
    q(".deg-rows").textContent = model.get("raster_rows").join(" | ");
    const keys = model.get("key_map");
    q(".deg-legend").innerHTML = Object.entries(keys).map(([k, b]) =>
      `<span class="deg-key" style="color:${model.get("colours")[b]}">${k}: ${b}</span>`).join("<br/>");
    const list = q(".deg-bouts");
    list.innerHTML = "";
    model.get("bouts").forEach((b, i) => {
      const item = document.createElement("button");
      item.className = "deg-bout" + (i === model.get("selected") ? " deg-selected" : "");
      item.textContent = `${b.behaviour} ${b.start}-${b.stop - 1}`;
      item.onclick = () => { model.send({ cmd: "select", index: i }); root.focus(); };
      list.appendChild(item);
    });
  }
  scrub.addEventListener("input", () => { model.set("cursor", Number(scrub.value)); model.save_changes(); });
  q(".deg-save").onclick = () => model.send({ cmd: "save" });
  root.addEventListener("keydown", (e) => {
    const step = e.shiftKey ? 10 : 1;
    const keys = model.get("key_map");
    let handled = true;
    if (e.key === "ArrowRight") { model.set("cursor", Math.min(model.get("cursor") + step, model.get("n_frames") - 1)); model.save_changes(); }
    else if (e.key === "ArrowLeft") { model.set("cursor", Math.max(model.get("cursor") - step, 0)); model.save_changes(); }
    // edits carry the frame on screen: the cursor's own sync may still be on its way to the kernel
    else if (e.key in keys) model.send({ cmd: "toggle", behaviour: keys[e.key], at: model.get("cursor") });
    else if (e.key === "[") model.send({ cmd: "stretch", side: "start", at: model.get("cursor") });
    else if (e.key === "]") model.send({ cmd: "stretch", side: "stop", at: model.get("cursor") });
    else if (e.key === "Delete" || e.key === "Backspace") model.send({ cmd: "delete" });
    else if (e.key === "z") model.send({ cmd: "undo" });
    else if (e.key === "s") model.send({ cmd: "save" });
    else handled = false;
    if (handled) { e.preventDefault(); e.stopPropagation(); }
  });
  ["frame_png", "raster_png", "cursor", "bouts", "status", "selected"].forEach((n) => model.on("change:" + n, draw));
  draw();
}
export default { render };
"""

_CSS = """
.deg-ethogram { font: 12px sans-serif; outline: none; padding: 4px; border: 1px solid #ccc; }
.deg-ethogram:focus { border-color: #1f77b4; }
.deg-top { display: flex; gap: 12px; }
.deg-frame { width: 256px; height: 256px; image-rendering: pixelated; background: #000; }
.deg-scrub { width: 400px; display: block; }
.deg-raster { width: 400px; image-rendering: pixelated; display: block; }
.deg-bout { margin: 1px; font-size: 11px; }
.deg-selected { background: #ffd54f; }
"""


def _png(image: np.ndarray) -> str:
    buf = _bytes_io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


class EthogramWidget(anywidget.AnyWidget):
    """JupyterLab view of an :class:`EthogramModel` (``widget.model_state`` holds it)."""

    _esm = _ESM
    _css = _CSS
    frame_png = traitlets.Unicode("").tag(sync=True)
    raster_png = traitlets.Unicode("").tag(sync=True)
    raster_rows = traitlets.List([]).tag(sync=True)
    cursor = traitlets.Int(0).tag(sync=True)
    n_frames = traitlets.Int(1).tag(sync=True)
    key_map = traitlets.Dict({}).tag(sync=True)
    colours = traitlets.Dict({}).tag(sync=True)
    bouts = traitlets.List([]).tag(sync=True)
    selected = traitlets.Int(-1).tag(sync=True)
    status = traitlets.Unicode("").tag(sync=True)

    def __init__(self, model: EthogramModel, **kwargs):
        super().__init__(**kwargs)
        self.model_state = model
        names = model.behaviours[1:]
        self.key_map = {str(i + 1): b for i, b in enumerate(names[:9])}
        self._colours = behaviour_colours(len(model.behaviours))
        self.colours = {b: "#%02x%02x%02x" % tuple(self._colours[i + 1]) for i, b in enumerate(names)}
        self.n_frames = model.n_frames
        self.observe(self._on_cursor, names="cursor")
        self.on_msg(self._on_msg)
        self.status = f"editing {model.editing!r}" + (f" -> {model.label_path}" if model.label_path else "")
        self._refresh()

    # ------------------------------------------------------------------ openers
    @classmethod
    def for_labels(cls, video_path, label_path, editing: str = "me", **kwargs) -> "EthogramWidget":
        return cls(EthogramModel.open_labels(video_path, label_path, editing=editing, **kwargs))

    @classmethod
    def for_run(cls, run_dir, video: str, editing: str | None = None) -> "EthogramWidget":
        return cls(EthogramModel.open_run(run_dir, video, editing=editing))

    @classmethod
    def for_prediction(cls, video_path, probabilities_npz, label_path, editing: str = "me") -> "EthogramWidget":
        return cls(EthogramModel.open_prediction(video_path, probabilities_npz, label_path, editing=editing))

    # ------------------------------------------------------------------ drawing
    def raster_image(self) -> np.ndarray:
        """(rows * ROW_H, WINDOW * COL_W, 3) uint8: every raster over the window around the cursor."""
        m = self.model_state
        start = int(min(max(m.cursor - WINDOW // 2, 0), max(m.n_frames - WINDOW, 0)))
        stop = min(start + WINDOW, m.n_frames)
        blocks, rows = [], []
        colours = self._colours[1:]
        for name, raster in m.rasters().items():
            window = raster[1:, start:stop].T                              # (t, K-1), background dropped
            if name == "probabilities":
                shade = (255 - (np.nan_to_num(window)[..., None] * (255 - colours[None].astype(float)))).astype(np.uint8)
                img = np.repeat(np.repeat(shade.transpose(1, 0, 2), ROW_H, 0), COL_W, 1)
            else:
                img = ethogram_image(np.where(np.isnan(window), -1, window).astype(np.int8), colours, ROW_H, COL_W)
            blocks += [img, np.full((2, img.shape[1], 3), 255, np.uint8)]
            rows.append(name)
        image = np.concatenate(blocks[:-1]) if blocks else np.zeros((ROW_H, WINDOW * COL_W, 3), np.uint8)
        if image.shape[1] < WINDOW * COL_W:
            image = np.pad(image, ((0, 0), (0, WINDOW * COL_W - image.shape[1]), (0, 0)), constant_values=255)
        x = (m.cursor - start) * COL_W
        image[:, x:x + COL_W] = (220, 30, 30)
        self.raster_rows = [f"frames {start}-{stop - 1}: " + rows[0]] + rows[1:] if rows else []
        return image

    def _refresh(self) -> None:
        m = self.model_state
        self.frame_png = _png(m.frame())
        self.raster_png = _png(self.raster_image())
        self.bouts = [{"behaviour": b.behaviour, "start": b.start, "stop": b.stop} for b in m.bouts()]
        if self.selected >= len(self.bouts):
            self.selected = -1

    def _on_cursor(self, change) -> None:
        self.model_state.seek(change["new"])
        self._refresh()

    def _selected_bout(self) -> Bout | None:
        bouts = self.model_state.bouts()
        if 0 <= self.selected < len(bouts):
            return bouts[self.selected]
        under = [b for b in bouts if b.start <= self.model_state.cursor < b.stop]
        return under[0] if under else None

    def command(self, cmd: str, **args) -> None:
        """Run one view command (what a key or click sends); the status line says what happened."""
        m = self.model_state
        if args.get("at") is not None and int(args["at"]) != m.cursor:   # the frame the user saw
            self.cursor = int(args["at"])
        args.pop("at", None)
        try:
            if cmd == "toggle":
                bout = m.toggle(args["behaviour"])
                self.status = (f"{args['behaviour']} from frame {m.cursor}: move and press again to close"
                               if bout is None else f"marked {bout.behaviour} {bout.start}-{bout.stop - 1}")
            elif cmd == "select":
                self.selected = int(args["index"])
                self.cursor = self.model_state.bouts()[self.selected].start
            elif cmd in ("stretch", "delete"):
                bout = self._selected_bout()
                if bout is None:
                    raise EthogramError("no bout selected or under the cursor")
                if cmd == "delete":
                    m.delete(bout.behaviour, bout.start)
                    self.selected = -1
                    self.status = f"deleted {bout.behaviour} {bout.start}-{bout.stop - 1}"
                else:
                    start, stop = (m.cursor, bout.stop) if args["side"] == "start" else (bout.start, m.cursor + 1)
                    new = m.stretch(bout.behaviour, bout.start, start, stop)
                    self.selected = m.bouts().index(new)
                    self.status = f"{new.behaviour} now {new.start}-{new.stop - 1}"
            elif cmd == "undo":
                self.status = "undone" if m.undo() else "nothing to undo"
            elif cmd == "save":
                path = m.save()
                backup = getattr(m, "last_backup", None)
                self.status = f"saved {path}" + (f" (backup {Path(backup).name})" if backup else "")
            else:
                raise EthogramError(f"unknown command {cmd!r}")
        except EthogramError as exc:
            self.status = f"error: {exc}"
        self._refresh()

    def _on_msg(self, _widget, content, _buffers) -> None:
        content = dict(content)
        self.command(content.pop("cmd"), **content)
