"""deg.tune without training: the search spaces, Optuna's draws from them, best.json checks.

The tiny search itself (real trials, pruning, the best configuration feeding a run) runs in
tests/test_pipeline.py, on that module's cached tiny run.
"""
from __future__ import annotations

import json

import optuna
import pytest

from deg import presets, tune


@pytest.mark.parametrize("stage", sorted(presets.SEARCH_SPACES))
def test_random_draws_stay_in_the_paper_search_space(stage):
    space = presets.SEARCH_SPACES[stage]
    assert set(space) <= set(presets.HPARAMS)            # every searched name is a real hyperparameter
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0), direction="maximize")
    draws = [tune.suggest(study.ask(), space) for _ in range(20)]
    for name, spec in space.items():
        values = [d[name] for d in draws]
        if spec[0] == "choice":
            assert set(values) <= set(spec[1]) and len(set(values)) > 1, name
        else:
            assert all(spec[1] <= v <= spec[2] for v in values) and len(set(values)) > 1, name
        if spec[0] == "int":
            assert all((v - spec[1]) % spec[3] == 0 for v in values), name


def test_tuned_names_belong_to_the_tuned_stage_only():
    """Per-stage names (keys.HP_PREFIX): tuning one stage cannot change the key of a stage before it."""
    from deg.train.keys import HP_PREFIX, HP_SHARED

    def reads(stage, name):
        return name.startswith(HP_PREFIX.get(stage, ())) or any(
            name == s or (s.endswith("_") and name.startswith(s)) for s in HP_SHARED.get(stage, ()))

    for stage, upstream in (("feature", ("flow",)), ("sequence", ("flow", "feature"))):
        for name in presets.SEARCH_SPACES[stage]:
            assert reads(stage, name), (stage, name)
            assert not any(reads(before, name) for before in upstream), (stage, name)


def test_read_overrides_names_the_file_and_the_problem(tmp_path):
    good = tmp_path / "best.json"
    good.write_text(json.dumps({"overrides": {"sequence_lr": 3e-4, "tgm_n_layers": 2}}))
    assert tune.read_overrides(good) == {"sequence_lr": 3e-4, "tgm_n_layers": 2}
    bad = tmp_path / "typo.json"
    bad.write_text(json.dumps({"overrides": {"sequense_lr": 3e-4}}))
    with pytest.raises(ValueError, match=r"typo\.json.*unknown HPARAMS entries \['sequense_lr'\]"):
        tune.read_overrides(bad)
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(ValueError, match=r"broken\.json: not a tuning result"):
        tune.read_overrides(broken)


def test_flow_generators_are_not_tuned():
    with pytest.raises(ValueError, match="did not tune flow generators"):
        tune.tune("synthetic_tiny", "DEG_f", "flow", trials=1, profile="tiny")


def test_pruning_callback_stops_a_trial_below_its_rung_and_ignores_other_stages():
    """ASHA as the loop sees it: validations of the tuned stage are reported; a poor one is stopped."""
    study = optuna.create_study(direction="maximize",
                                pruner=optuna.pruners.SuccessiveHalvingPruner(min_resource=2, reduction_factor=4))
    good = study.ask()
    for step, f1 in ((2, 0.8), (4, 0.85)):
        tune.Pruning(good, "sequence").on_validation(stage="sequence", step=step, metric=f1)
    study.tell(good, 0.85)
    poor = study.ask()
    callback = tune.Pruning(poor, "sequence")
    callback.on_validation(stage="feature", step=2, metric=0.1)      # another stage: not reported
    callback.on_validation(stage="sequence", step=2, metric=float("nan"))   # no F1: not reported
    assert study.trials[-1].intermediate_values == {}
    with pytest.raises(optuna.TrialPruned, match="validation F1 0.300 at step 2"):
        callback.on_validation(stage="sequence", step=2, metric=0.3)


def test_tuning_rules_leave_all_the_default_target():
    """Snakemake runs the first rule when given no target (`make figures`): that must stay `all`."""
    import re

    from deg import paths

    snakefile = (paths.REPO / "workflow" / "Snakefile").read_text()
    rules = re.findall(r"^(?:rule (\w+):|include: \"([^\"]+)\")", snakefile, re.M)
    assert rules[0] == ("all", ""), rules[:3]
    assert ("", "rules/tune.smk") in rules
