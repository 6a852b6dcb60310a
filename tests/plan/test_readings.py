"""The block's later readings (model.gate, model.gate_hidden, model.branch_norm) leave
every earlier run as it was: at their defaults they are in no fingerprint and no
settings hash, so the recorded runs keep both; away from them, a run is another run."""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path

import pytest

from repro.errors import UserError
from repro.plan import config, grid
from repro.plan.settings import ModelSpec, RunConfig
from repro.plan.status import load_config

ROOT = Path(__file__).resolve().parents[2]
RECORDED = ROOT / "recorded" / "h100-2026-11-26"


def test_the_recorded_runs_fingerprints_and_folders_are_unchanged():
    """Every recorded run's metrics.json was written before the readings existed: its
    description (without them) and the same description with them at their defaults
    give the fingerprint it recorded; and the recorded config's variants still hash to
    the recording's folder names."""
    metrics = sorted(RECORDED.glob("results/runs/*/*/*/*/*/metrics.json"))
    assert len(metrics) >= 4
    for path in metrics:
        m = json.loads(path.read_text())
        assert "gate" not in m["config"]["model"]
        rc = RunConfig.from_dict(m["config"])
        assert (rc.model.gate, rc.model.branch_norm) == ("linear", "after_sum")
        assert rc.fingerprint() == m["fingerprint"]
        written_now = json.loads(json.dumps(asdict(rc)))  # what a run writes today
        assert written_now["model"]["gate"] == "linear"
        assert RunConfig.from_dict(written_now).fingerprint() == m["fingerprint"]
    cfg = load_config([ROOT / "config" / "recorded.yaml"])
    folders = {p.parent.name for p in metrics}
    hashes = {grid.settings_hash(e["config"], "cuda") for e in grid.variant_configs(cfg)}
    assert folders <= hashes


def test_a_reading_away_from_its_default_is_another_run():
    rc = RunConfig(lr=0.01)
    others = [
        replace(rc, model=replace(rc.model, gate="mlp")),
        replace(rc, model=replace(rc.model, gate="mlp", gate_hidden=32)),
        replace(rc, model=replace(rc.model, branch_norm="per_branch")),
    ]
    prints = {r.fingerprint() for r in [rc, *others]}
    assert len(prints) == 4
    # the gate's hidden size shapes nothing with a linear gate
    linear = replace(rc, model=replace(rc.model, gate_hidden=32))
    assert linear.fingerprint() == rc.fingerprint()
    # at its default the hidden size is implied by the gate, as every reading's default
    assert "gate_hidden" not in ModelSpec(gate="mlp").identity()
    assert ModelSpec(gate="mlp", gate_hidden=32).identity()["gate_hidden"] == 32


def study(**model) -> dict:
    return {"devices": ["cpu"], "learning_rates": [0.01], "model": model}


def test_the_readings_change_the_folder_hash_only_away_from_their_defaults():
    adopted = grid.settings_hash(config.validate(study()), "cpu")
    same = config.validate(study(gate="linear", gate_hidden=40, branch_norm="after_sum"))
    assert grid.settings_hash(same, "cpu") == adopted
    for reading in ({"gate": "mlp"}, {"branch_norm": "per_branch"}):
        assert grid.settings_hash(config.validate(study(**reading)), "cpu") != adopted


@pytest.mark.parametrize(
    "model, message",
    [
        ({"gate": "mlp2"}, "config key model.gate = 'mlp2' is not allowed; allowed: one of linear"),
        ({"gate_hidden": 0}, "config key model.gate_hidden = 0 is not allowed"),
        ({"branch_norm": "before"}, "config key model.branch_norm = 'before' is not allowed"),
    ],
)
def test_a_bad_reading_is_one_line(model, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(")) as e:
        config.validate(study(**model))
    assert "\n" not in str(e.value)


def test_a_recorded_run_from_before_the_readings_passes_the_run_checks_with_their_defaults():
    """A recorded run's config lacks the later readings: the run checks read it with their
    defaults (the model it trained), and its fingerprint still decides; a config that
    says another reading than its fingerprint is refused."""
    from repro.plan import runfiles
    from repro.plan.settings import with_later_readings

    path = sorted(RECORDED.glob("results/runs/*/*/*/*/*/metrics.json"))[0]
    m = json.loads(path.read_text())
    filled = with_later_readings(m["config"])
    assert filled["model"]["gate"] == "linear" and "gate" not in m["config"]["model"]
    run = runfiles.Run(str(path.parent), {})
    runfiles._check_fingerprint(run, m)  # accepted: the defaults are what it trained
    forged = {**m, "config": {**m["config"], "model": {**m["config"]["model"], "gate": "mlp"}}}
    with pytest.raises(UserError, match="fingerprint"):
        runfiles._check_fingerprint(run, forged)
