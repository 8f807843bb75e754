# %% [markdown]
# # Lesson 7 — Your own data: from a BORIS export or a DeepEthogram project to predictions
#
# **What you learn:** how a lab's own labels get in (a BORIS export, or an existing DeepEthogram
# project folder), how one command trains DeepEthogram's fast model DEG_f on them (flow generator,
# feature extractor, sequence model: every stage of lessons 2-4), how to predict a video it has never
# seen (what `make predict` does), and how to review those predictions against labels.
#
# Functions doing the work: `deg.data.boris`, `deg.data.labels.write_deg_labels` and
# `import_deg_project`, `deg.pipeline.run`, `deg.infer.predict_video`, `deg.metrics`.
#
# The BORIS part reads a real public export (`../shared/data/ethome/boris`, skipped with a reason when
# absent; its videos are not public). The project we train on is built here from synthetic videos, in
# exactly the folder layout DeepEthogram writes, so the same cells work on your own project folder.

# %% tags=["parameters"]
size = "full"
dataset = "synthetic_openfield"
strict_checks = False

# %%
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from deg import infer, metrics, paths, pipeline
from deg.course import checks
from deg.data import boris, synthetic
from deg.data.labels import import_deg_project, read_deg_labels, write_deg_labels

# tiny: the tests' sizes; full: a few minutes on a 2-core CPU (the "demo" profile with fewer steps)
profile, overrides, n_videos = {
    "full": ("demo", dict(flow_steps=10, feature_steps=40, sequence_steps=40, n_splits=1), 6),
    "tiny": ("tiny", dict(flow_steps=1, feature_steps=2, sequence_steps=2, val_every=1, val_batches=1), 5),
}[size]
source = synthetic.generate(dataset, progress=False)
work = Path(tempfile.mkdtemp(prefix="deg-lesson7-"))
print(f"working folder {work}")

# %% [markdown]
# ## 1. A BORIS export
# BORIS records *events*: a behaviour STARTs and STOPs at media times in seconds. Per-frame labels
# follow from the frame rate: frame i carries a behaviour when START <= i / fps < STOP.
# `deg.data.boris.read_boris` reads exports and `.boris` project files; `observation_labels` makes the
# (T, K) matrix, background first, which `write_deg_labels` saves in DeepEthogram's CSV layout.

# %%
export = paths.shared_data_dir() / "ethome" / "boris" / "e3v813a-20210610T120637-121213_reencode_multiple_behaviors.csv"
if not export.exists():
    print(f"SKIPPED: the BORIS export {export} is absent (public file, see ../shared/data/README.md)")
else:
    obs = boris.read_boris(export)[0]
    print(f"observation {obs.observation!r}: {obs.fps} fps, {obs.length_s} s, behaviours {obs.behaviours}")
    print(obs.events.head(6).to_string(index=False))
    for subject, (matrix, names) in boris.observation_labels(obs).items():
        csv = write_deg_labels(work / "boris" / f"{subject}_labels.csv", matrix, names)
        print(f"subject {subject}: {matrix.shape[0]} frames, frames per behaviour "
              f"{dict(zip(names, matrix.sum(0).tolist()))} -> {csv.name}")

# %% [markdown]
# ## 2. A DeepEthogram project
# A DeepEthogram project is a folder with `project_config.yaml` (its `class_names`: background first) and
# `DATA/<video>/` holding each video and its `<video>_labels.csv`. We build one from a few synthetic videos
# but the last; the last plays the "new video" that comes in after training.
#
# ### Exercise 7.1
# Write `class_names` for the project's config from the label files' columns `label_columns`
# (the synthetic videos' behaviours in some order).

# %%
label_columns = [b for b in source.behaviours if b != "background"] + ["background"]   # order as a tool might write them

# %% tags=["solution"]
class_names = ["background"] + [b for b in label_columns if b != "background"]

# %%
checks.project_config(class_names, label_columns, strict=strict_checks)
reference_names = ["background"] + [b for b in label_columns if b != "background"]
project = work / "my_project"
*train_videos, new_video = source.videos[:n_videos]
for v in train_videos:
    folder = project / "DATA" / v
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(source.video_path(v), folder / f"{v}.mp4")
    write_deg_labels(folder / f"{v}_labels.csv", source.labels(v, "truth"), source.behaviours)
(project / "project_config.yaml").write_text(yaml.safe_dump({"project": {"name": "my_project",
                                                                         "class_names": reference_names}}))
ds = import_deg_project(project, paths.data_dir(), dataset_id="course_my_project")
print(f"imported {len(ds.videos)} labelled videos as dataset {ds.id!r} at {ds.root}")

# %% [markdown]
# ## 3. Train DEG_f
# `deg.pipeline.run` runs every stage and caches each one under `results/<profile>/<dataset>/DEG_f/split0`:
# run it again and it returns at once. (On the command line: `make figures DATASETS=...` or the
# `run_pipeline` notebook.) The steps here are far fewer than the paper's; the numbers below show the
# mechanics, not DeepEthogram's accuracy.

# %%
run_dir = pipeline.run(ds.id, "DEG_f", 0, profile=profile, progress=False, **overrides)
print(sorted(p.name for p in run_dir.iterdir()))

# %% [markdown]
# ## 4. Predict a new video
# `deg.infer.predict_video` streams the video through the trained models (chunk by chunk: a long video
# never sits in memory whole) and writes `<video>_predictions.csv` (DeepEthogram layout) and
# `<video>_probabilities.npz`. This is `make predict RUN=... VIDEOS=...`.

# %%
out = infer.predict_video(run_dir, source.video_path(new_video), out_dir=work / "predictions", progress=False)
print(f"{out['n_frames']} frames at {out['frames_per_s']:.0f} frames/s -> {out['paths']['predictions'].name}")
preds, names = read_deg_labels(out["paths"]["predictions"])

# %% [markdown]
# ## 5. Review against labels
# Someone labels the new video (here: its synthetic truth) and we score the predictions.
#
# ### Exercise 7.2
# Compute `review_f1`: the macro F1 over behaviours *without background* of `preds` against `labels`.

# %%
labels = source.labels(new_video, "truth")
behaviours = names

# %% tags=["solution"]
table = metrics.metrics_table(labels, preds, None, behaviours)
review_f1 = float(table[(table.behaviour == "macro_nobg") & (table.metric == "f1")].value.iloc[0])

# %%
checks.review_f1(review_f1, labels, preds, behaviours, strict=strict_checks)
t = metrics.metrics_table(labels, preds, None, behaviours)
print(t[t.metric == "f1"].set_index("behaviour").value.round(3))

# %% [markdown]
# To review frame by frame, open the video with its predictions and labels in the ethogram viewer
# (`deg.widgets`, see the README's "Teaching with deg"), scrub to the disagreements, correct the labels,
# save, and train again.
#
# ## Discuss
# * Which of your lab's behaviours would the flow stream need, and which a still frame?
# * How many labelled videos are enough? (The paper's Figure 6: performance against training videos.)
# * Before trusting predictions on a new cohort, what would you check (lighting, camera, strain)?

# %%
shutil.rmtree(work, ignore_errors=True)
