"""The self-supervised pretraining stage (deg.train.selfsup) and pretrained="selfsup" runs, on synthetic_tiny."""
from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from deg import pipeline, provenance
from deg.data.datasets import open_dataset
from deg.presets import HPARAMS, get_preset, get_profile
from deg.train import common, feature, flow, selfsup
from deg.train.loop import WeightPenalty

DATASET = "synthetic_tiny"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    from deg.data import synthetic

    root = tmp_path_factory.mktemp("selfsup")
    mp = pytest.MonkeyPatch()
    for var, name in (("DEG_DATA", "data"), ("DEG_RESULTS", "results"), ("DEG_FIGURES", "figures")):
        (root / name).mkdir()
        mp.setenv(var, str(root / name))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    synthetic.generate(DATASET, progress=False)
    yield root
    torch.set_num_threads(threads)
    mp.undo()


def _ctx(pretrained: str) -> common.RunContext:
    ds = open_dataset(DATASET)
    prof = get_profile("tiny", pretrained=pretrained)
    return common.RunContext(dataset=ds, preset=get_preset("DEG_f"), profile=prof, hparams=dict(HPARAMS),
                             split=pipeline.resolve_split(DATASET, 0, "tiny"),
                             labels={v: ds.labels(v) for v in ds.videos}, videos=list(ds.videos),
                             image_size=selfsup.image_size("tiny", ds), device=torch.device("cpu"),
                             precision=common.choose_precision(torch.device("cpu"), False), seed=0, progress=False)


def test_pretraining_stage_is_keyed_and_cached(workspace):
    path = selfsup.pretrain("tiny", DATASET, "resnet18-rgb", progress=False)
    weights = path / "weights.pt"
    saved = torch.load(weights, map_location="cpu", weights_only=True)
    import torchvision

    resnet = torchvision.models.resnet18(weights=None)
    resnet.fc = torch.nn.Identity()
    resnet.load_state_dict(saved["backbone"])            # torchvision layout, every tensor
    log = (path / "log.csv").read_text().splitlines()
    assert len(log) > 1 and "nan" not in log[-1]
    mtime = weights.stat().st_mtime_ns
    t0 = time.perf_counter()
    assert selfsup.pretrain("tiny", DATASET, "resnet18-rgb", progress=False) == path
    assert weights.stat().st_mtime_ns == mtime and time.perf_counter() - t0 < 2.0
    ds = open_dataset(DATASET)
    key = provenance.config_key(selfsup.stage_config("tiny", ds, "resnet18-rgb"))
    assert key == provenance.config_key(selfsup.stage_config("tiny", ds, "resnet18-rgb", seed=0))
    assert key != provenance.config_key(selfsup.stage_config("tiny", ds, "resnet18-rgb", seed=1))
    assert key != provenance.config_key(selfsup.stage_config("tiny", ds, "resnet18-live"))
    with pytest.raises(ValueError, match="unknown pretraining kind"):
        selfsup.pretrain("tiny", DATASET, "resnet18-gray", progress=False)


def test_selfsup_option_sets_initial_weights_l2sp_reference_and_keys(workspace):
    ctx, scratch_ctx = _ctx("selfsup"), _ctx("kinetics")
    fe = feature.build(ctx, pretrained=True)
    fe_scratch = feature.build(scratch_ctx, pretrained=True)
    backbone = torch.load(selfsup.stage_dir("tiny", DATASET, "resnet18-rgb") / "weights.pt", weights_only=True)["backbone"]
    for name, tensor in backbone.items():
        torch.testing.assert_close(fe.spatial.backbone.state_dict()[name], tensor)
    conv = "spatial.backbone.conv1.weight"
    assert not torch.equal(dict(fe.named_parameters())[conv], dict(fe_scratch.named_parameters())[conv])
    fg = flow.build(ctx, pretrained=True)
    flow_weights = torch.load(selfsup.stage_dir("tiny", DATASET, "flow-tinymotionnet") / "weights.pt",
                              weights_only=True)["model"]
    for name, tensor in flow_weights.items():
        torch.testing.assert_close(fg.state_dict()[name], tensor)

    # L2-SP as the feature stage sets it up (reference = starting weights): no penalty at the
    # self-supervised weights, a penalty once the weights move back towards a random init
    reg = WeightPenalty(fe, alpha=HPARAMS["fe_l2sp_alpha"], beta=HPARAMS["fe_l2sp_beta"],
                        reference={k: v.detach().clone() for k, v in fe.named_parameters()},
                        new_names=fe.new_parameter_names())
    start = reg.value()
    with torch.no_grad():
        dict(fe.named_parameters())[conv].copy_(dict(fe_scratch.named_parameters())[conv])
    assert reg.value() > start + 1e-6

    base = pipeline.stage_keys(DATASET, "DEG_f", 0, profile="tiny")
    ss = pipeline.stage_keys(DATASET, "DEG_f", 0, profile="tiny", pretrained="selfsup")
    assert all(base[s] != ss[s] for s in pipeline.STAGES)
    with pytest.raises(ValueError, match="pretrained="):
        pipeline.stage_keys(DATASET, "DEG_f", 0, profile="tiny", pretrained="imagenet")
    assert selfsup.run_dir("tiny", DATASET, "DEG_f", "split0").parts[-3:] == ("selfsup", "DEG_f", "split0")


def test_selfee_rows_are_scored_like_deg(workspace):
    from deg import selfee

    out = selfee.run_split("tiny", DATASET, "split0")
    import pandas as pd

    metrics = pd.read_csv(out / "metrics.csv")
    assert {"model", "feature_extractor", "shuffle"} <= set(metrics["source"])
    assert set(metrics["preset"]) == {"selfee"} and set(metrics["subset"]) == {"test"}
    split = pipeline.resolve_split(DATASET, 0, "tiny")
    assert set(metrics.loc[metrics["video"] != "all", "video"]) - {"mean"} == set(split.test)
    knn = pd.read_csv(out / "knn.csv")
    assert set(knn["representation"]) == {"selfee", "random_init"}
    with np.load(out / "predictions" / f"{split.test[0]}.npz") as npz:
        preds = npz["preds"]
    assert ((preds[:, 0] == 1) == (preds[:, 1:].sum(1) == 0)).all()     # background = no other behaviour
    # (the t-SNE table, selfee.embedding_table, runs in tests/test_figures_e2e.py)
