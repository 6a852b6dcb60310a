"""Variants in the config (issue 21): merged over the setup, validated as whole configs,
fanned out in the study's priority order, each run folder mapped back to its variant."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from repro.errors import UserError
from repro.plan import config as config_mod
from repro.plan import grid

ROOT = Path(__file__).resolve().parents[2]


def merged_files(*names: str) -> dict:
    cfg = config_mod.read_yaml(ROOT / "config" / "config.yaml")
    for name in names:
        for key, value in config_mod.read_yaml(ROOT / "config" / name).items():
            if isinstance(value, dict) and isinstance(cfg.get(key), dict):
                cfg[key] = {**cfg[key], **value}
            else:
                cfg[key] = value
    return config_mod.validate(cfg)


def small(**extra) -> dict:
    raw = {"devices": ["cpu"], "learning_rates": [0.01, 0.005], "seeds": [0, 1], **extra}
    return config_mod.validate(raw)


def test_why_config_plans_the_paper_grid_then_its_variants_in_list_order():
    """The workflow's order (grid.runs); the GPU queue's ranking is config key queue
    (tests/plan/test_queue.py)."""
    runs = grid.runs(merged_files("why.yaml"))
    order = [r["variant"] for r in runs]
    assert order[:9] == ["paper"] * 9
    paper = runs[:9]
    assert {(r["lr"], r["seed"]) for r in paper} == {
        (lr, s) for lr in ("0.01", "0.005", "0.001") for s in (0, 1, 2)
    }
    # seed by seed: every rate's seed 0 before any seed 1
    assert [r["seed"] for r in paper] == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    rest = [v for v in dict.fromkeys(order) if v != "paper"]
    causes = ["wider", "bn-per-branch", "mlp-gate", "narrow", "hidden256", "dropout07"]
    assert rest == [*causes, "jpeg-q50", "jpeg-q20", "bf16"]
    for r in runs[9:25]:
        assert r["lr"] == "0.01" and r["seed"] in (0, 1)
    assert len(runs) == 9 + 8 * 2 + 3
    assert len({r["hash"] for r in runs}) == 10  # one folder hash per variant


def test_bf16_variant_is_the_recorded_runs():
    """The committed H100 runs' folders carry the bf16 variant's hash: they are its runs."""
    why, recorded = merged_files("why.yaml"), merged_files("recorded.yaml")
    rec_hash = grid.runs(recorded)[0]["hash"]
    assert grid.variant_of(why, "cuda", rec_hash) == "bf16"
    assert grid.variant_of(why, "cuda", "00000000") is None
    folders = {p.name for p in (ROOT / "recorded" / "h100-2026-11-26").rglob("seed0/*")}
    assert rec_hash in folders


def test_run_description_follows_the_folder_hash():
    cfg = small(variants=[{"name": "wide", "reason": "r", "model": {"hidden": 64}}])
    by_variant = {r["variant"]: r for r in grid.runs(cfg)}
    d = json.loads(grid.run_description(cfg, **_path_keys(by_variant["wide"])))
    assert d["model"]["hidden"] == 64
    d = json.loads(grid.run_description(cfg, **_path_keys(by_variant["paper"])))
    assert d["model"]["hidden"] == 512
    with pytest.raises(UserError, match="matches no variant"):
        grid.run_description(cfg, **{**_path_keys(by_variant["paper"]), "hash": "deadbeef"})


def _path_keys(r: dict) -> dict:
    return {k: str(r[k]) for k in ("head", "lr", "device", "seed", "hash")}


def test_variant_overrides_merge_over_the_setup_and_keep_its_other_values():
    cfg = small(
        train={"epochs": 7},
        variants=[{"name": "v", "reason": "r", "seeds": [5], "train": {"momentum": 0.5}}],
    )
    v = grid.variant_config(cfg, "v")
    assert v["train"]["epochs"] == 7 and v["train"]["momentum"] == 0.5
    assert v["seeds"] == [5] and v["learning_rates"] == [0.01, 0.005]
    assert [r["seed"] for r in grid.runs(cfg) if r["variant"] == "v"] == [5, 5]


def test_jpeg_variant_has_its_own_cache_and_hash(tmp_path):
    cfg = small(variants=[{"name": "q50", "reason": "r", "data": {"jpeg_quality": 50}}])
    caches = grid.data_caches(cfg)
    assert len(caches) == 2
    q50 = [p for p in caches if p.endswith("-q50.npz")]
    assert q50 and caches[q50[0]]["data"]["jpeg_quality"] == 50
    hashes = {r["variant"]: r["hash"] for r in grid.runs(cfg)}
    assert hashes["q50"] != hashes["paper"]
    assert grid.run_cache(cfg, "cpu", hashes["q50"]) == q50[0]


@pytest.mark.parametrize(
    "variant, message",
    [
        ({"name": "v", "reason": "r", "model": {"hiden": 3}}, r"variants\[0\] \(v\): .*hiden"),
        ({"name": "v", "reason": "r", "train": {"epochs": 0}}, r"variants\[0\] \(v\): .*epochs"),
        ({"name": "v", "reason": "r", "data": {"jpeg_quality": 100}}, "jpeg_quality"),
        ({"name": "paper", "reason": "r", "model": {"hidden": 3}}, "reference's name"),
        ({"name": "v", "reason": "r", "heads": ["logits"]}, "heads is unknown"),
        ({"name": "v", "model": {"hidden": 3}}, "variants"),
        ({"name": "v", "reason": "r"}, "same settings as 'paper'"),
        ({"name": "v", "reason": "r", "against": "v", "seeds": [5]}, "names no earlier variant"),
        ({"name": "v", "reason": "r", "against": "nope", "seeds": [5]}, "names no earlier"),
    ],
)
def test_bad_variant_is_one_line(variant, message):
    with pytest.raises(UserError, match=message) as e:
        grid.runs(small(variants=[variant]))
    assert "\n" not in str(e.value)


def test_two_variants_of_one_name_are_refused():
    v = {"name": "v", "reason": "r", "model": {"hidden": 3}}
    with pytest.raises(UserError, match="used twice"):
        small(variants=[v, {**v, "model": {"hidden": 4}}])


def test_numbers_typed_on_the_command_line_are_coerced_in_variants():
    cfg = small(variants=[{"name": "v", "reason": "r", "train": {"epochs": "3"}}])
    assert grid.variant_config(cfg, "v")["train"]["epochs"] == 3


def test_the_queued_why_runs_are_the_recorded_reports_variant_runs():
    """Every run the why study queues (config/why.yaml, bf16 aside: it is the recorded
    reference) is a run of config/recorded.yaml, folder for folder: what a GPU session
    trains from the queue and `record --add`s lands in the recorded report. Each cause
    but fp32 is measured against the fp32 runs there, not against the bf16 reference."""
    why, recorded = merged_files("why.yaml"), merged_files("recorded.yaml")
    folders = {grid.RUN_DIR.format(**r) for r in grid.runs(recorded)}
    queued = {grid.RUN_DIR.format(**r) for r in grid.runs(why) if r["variant"] != "bf16"}
    assert queued <= folders, sorted(queued - folders)[:3]
    from repro.plan.variants import against

    names = [v["name"] for v in recorded["variants"]]
    assert against(recorded, "fp32") == "paper"
    assert {against(recorded, n) for n in names if n != "fp32"} == {"fp32"}


def test_against_names_an_earlier_variant_and_changes_no_run():
    base = {"name": "a", "reason": "r", "model": {"hidden": 3}}
    plain = small(variants=[base, {"name": "b", "reason": "r", "model": {"hidden": 4}}])
    named = small(
        variants=[base, {"name": "b", "reason": "r", "model": {"hidden": 4}, "against": "a"}]
    )
    assert grid.runs(plain) == grid.runs(named)
    with pytest.raises(UserError, match="names no earlier variant") as e:
        small(variants=[{**base, "against": "b"}, {"name": "b", "reason": "r", "seeds": [7]}])
    assert "\n" not in str(e.value)


def test_recorded_report_plans_the_reference_and_leaves_unrecorded_variants_out():
    """config/recorded.yaml lists the why study's causes as variants of its bf16
    reference; every reference run is planned, and of the variants only what the
    recording holds (a missing variant run's folder, named by its own hash, is absent:
    not yet run)."""
    from repro.plan import recorded

    cfg = merged_files("recorded.yaml")
    expected = grid.recorded_expectations(cfg)
    assert {r["variant"] for r in expected} >= {"paper", "fp32", "narrow", "jpeg-q20"}
    plan = recorded.plan(cfg, expected)
    by_variant = {r["hash"]: r["variant"] for r in expected}
    got = sorted((by_variant[r["hash"]], r["lr"], r["seed"]) for r in plan.runs)
    # the reference's three, and the one fp32 run recorded so far (H200, session 3)
    assert got == [("fp32", "0.01", 0), *(("paper", lr, 0) for lr in ("0.001", "0.005", "0.01"))]


def test_a_declared_jpeg_cost_changes_no_run_hash_fingerprint_folder_or_recording():
    """data.jpeg_cost is read by the report alone: declaring one (or another) leaves every
    run's settings hash, fingerprint and folder as they were, and the recorded runs of
    config/recorded.yaml are still found, the same ones."""
    from repro.plan import recorded

    plain = merged_files("recorded.yaml")
    declared = copy.deepcopy(plain)
    declared["data"]["jpeg_cost"] = {
        "low": 0.5, "high": 4.0, "low_source": "a test: low", "high_source": "a test: high",
    }  # fmt: skip
    declared = config_mod.validate(declared)
    assert declared["data"]["jpeg_cost"]["high"] == 4.0 and plain["data"]["jpeg_cost"] is None
    assert grid.runs(plain) == grid.runs(declared)
    for v, w in zip(grid.variant_configs(plain), grid.variant_configs(declared), strict=True):
        assert grid.settings_hash(v["config"], "cuda") == grid.settings_hash(w["config"], "cuda")
    expected = grid.recorded_expectations(plain)
    assert grid.recorded_expectations(declared) == expected
    assert {r["fingerprint"] for r in expected} and all(r["fingerprint"] for r in expected)
    found = recorded.plan(declared, expected).runs
    assert found == recorded.plan(plain, expected).runs and len(found) == 4


def test_a_missing_reference_run_still_stops_the_recorded_plan(tmp_path):
    from repro.plan import recorded

    cfg = merged_files("recorded.yaml")
    cfg["seeds"] = [0, 1]  # the recording has no seed 1 of the reference
    with pytest.raises(UserError, match="seed1"):
        recorded.plan(cfg, grid.recorded_expectations(cfg))
