"""deg.presets: profiles with overrides, their results folders, the command-line form."""
from __future__ import annotations

import pytest

from deg.presets import HPARAMS, PROFILES, get_profile, parse_overrides, results_name


def test_overrides_replace_fields_and_hparams_and_are_recorded():
    paper = PROFILES["paper"]
    prof = get_profile("paper", flow_steps=2, image_size=[32, 32], lr=1e-3, subsample_videos=[1, 2])
    assert (prof.flow_steps, prof.image_size, prof.subsample_videos) == (2, (32, 32), (1, 2))
    assert prof.hparams == {**paper.hparams, "lr": 1e-3}
    assert prof.feature_steps == paper.feature_steps and prof.datasets == paper.datasets
    assert prof.overrides == {"flow_steps": 2, "image_size": (32, 32), "lr": 1e-3, "subsample_videos": (1, 2)}
    assert HPARAMS["lr"] == 1e-4 and PROFILES["paper"] is paper and paper.overrides == {}
    # the caller keeps the last word over the profile's per-preset replacements
    demo = get_profile("demo", feature_steps=9, feature_batch=3)
    assert demo.for_preset("DEG_s").feature_steps == 9 and demo.for_preset("DEG_s").feature_batch == 3
    assert get_profile("demo").for_preset("DEG_s").feature_batch == PROFILES["demo"].preset_overrides["DEG_s"]["feature_batch"]


def test_overridden_profile_has_its_own_results_name():
    assert get_profile("paper").results_name == "paper"
    a = get_profile("paper", flow_steps=2, image_size=(32, 32))
    b = get_profile("paper", image_size=[32, 32], flow_steps=2)       # order and list/tuple do not matter
    c = get_profile("paper", flow_steps=3, image_size=(32, 32))
    assert a.results_name == b.results_name == results_name("paper", {"flow_steps": 2, "image_size": [32, 32]})
    assert a.results_name.startswith("paper+") and len(a.results_name) == len("paper+") + 8
    assert c.results_name != a.results_name


def test_command_line_overrides_json_and_snakemake_form():
    text = '{"flow_steps": 2, "image_size": [32, 32], "lr": 0.001, "tgm_kernel": "gaussian"}'
    want = {"flow_steps": 2, "image_size": [32, 32], "lr": 0.001, "tgm_kernel": "gaussian"}
    assert parse_overrides(text) == want
    # snakemake --config reads the value as YAML with every scalar a string
    assert parse_overrides({"flow_steps": "2", "image_size": ["32", "32"], "lr": "0.001",
                            "tgm_kernel": "gaussian"}) == want
    assert parse_overrides("") == {} and parse_overrides(None) == {}
    assert get_profile("paper", **parse_overrides(text)).results_name == get_profile(
        "paper", flow_steps=2, image_size=(32, 32), lr=1e-3, tgm_kernel="gaussian").results_name
    with pytest.raises(TypeError, match="flow_stepz"):
        parse_overrides('{"flow_stepz": 2}')
    with pytest.raises(ValueError, match="JSON object"):
        parse_overrides("flow_steps=2")
    with pytest.raises(TypeError, match="unknown override"):
        get_profile("demo", overrides={"lr": 1.0})


def test_run_splits_caps_a_preset_at_its_preset_splits_and_never_beyond_the_profile(isolated):
    demo = get_profile("demo")
    assert demo.run_splits("synthetic_openfield", "DEG_f") == demo.splits_for("synthetic_openfield") == 3
    assert demo.run_splits("synthetic_openfield", "DEG_s") == 1
    # more than the profile has: the profile's count (the splits are defined by n_splits)
    wide = get_profile("demo", preset_splits={"DEG_s": 10}, n_splits=2)
    assert wide.run_splits("synthetic_openfield", "DEG_s") == 2
    # an override of the field reaches the plan's runs
    from deg.workflow import plan

    runs = plan("demo", overrides={"presets": ["DEG_f", "DEG_s"], "preset_splits": {"DEG_s": 2}}).runs
    assert sorted(s for _, p, s in runs if p == "DEG_s") == ["split0", "split1"]
