"""Page 1's "why it falls short" rows from synthetic study frames with planted effects."""

import math

import numpy as np
import pandas as pd
import pytest

from repro.report import effects, shortfall


def frame(rng, plan: dict, lr: str = "0.01") -> pd.DataFrame:
    """One row per run: variant -> (test %, train %, seeds); seed spread 0.5 points."""
    rows = []
    for variant, (test, train, seeds) in plan.items():
        for seed in range(seeds):
            rows.append(
                {
                    "variant": variant,
                    "lr": lr,
                    "seed": seed,
                    "final_test_acc": test + rng.normal(0, 0.5),
                    "final_train_acc": train + rng.normal(0, 0.3),
                    "n_test": 10_000,
                    "n_train": 50_000,
                }
            )
    return pd.DataFrame(rows)


VARIANTS = [
    {"name": "paper", "reason": "the reference"},
    {"name": "narrow", "reason": "widths are not given in the seed"},
    {"name": "gate", "reason": "the gate's form is not given"},
]


def test_rows_say_tested_not_yet_run_and_cannot_be_tested_with_planted_effects():
    rng = np.random.default_rng(0)
    runs = pd.concat(
        [
            frame(rng, {"paper": (86.0, 96.0, 3), "narrow": (88.0, 94.0, 3)}),
            frame(rng, {"paper": (70.0, 70.0, 2), "gate": (90.0, 90.0, 2)}, lr="0.001"),
        ]
    )
    x = effects.lossless_distortion(np.repeat([0.0, 89.0, 117.0], 2), 70.0)
    ex = effects.jpeg_extrapolation(x, x, 86.0 - 0.01 * (x - 70.0), 10_000, 0.95)
    lossless = {"name": "lossless images", "reason": "no copy here", "extrapolation": ex}
    rows = shortfall.shortfall_rows(runs, VARIANTS, "0.01", 89.5, 0.95, untestable=[lossless])
    by = {r["cause"]: r for r in rows}
    assert list(by) == ["narrow", "gate", "lossless images"]  # the reference is no cause
    narrow = by["narrow"]
    assert narrow["status"] == shortfall.TESTED and narrow["low"] <= 2.0 <= narrow["high"]
    assert narrow["effect"] > 0 and narrow["train_effect"] < 0 and narrow["gap_effect"] < 0
    # planted share: 2 of the 3.5-point gap
    assert narrow["share_low"] <= 2 / 3.5 <= narrow["share_high"]
    assert (narrow["n_variant"], narrow["n_reference"]) == (3, 3)
    # gate ran at another rate only: not yet run at 0.01, with no numbers
    assert by["gate"]["status"] == shortfall.NOT_YET_RUN and math.isnan(by["gate"]["effect"])
    jpeg_row = by["lossless images"]
    assert jpeg_row["status"] == shortfall.CANNOT and "extrapolation" in jpeg_row["method"]
    assert jpeg_row["effect"] == pytest.approx(0.7)  # 0.01 points per MSE unit x 70


def test_a_frame_without_variants_is_refused_in_one_line():
    runs = frame(np.random.default_rng(1), {"paper": (86.0, 96.0, 2)}).drop(columns="variant")
    with pytest.raises(shortfall.UserError, match="lacks variant"):
        shortfall.shortfall_rows(runs, VARIANTS, "0.01", 89.5, 0.95)


def test_a_variant_measured_against_another_variant_gets_its_own_effect():
    """bf16 reference at 86, fp32 at 88, narrow (fp32 and half the channels) at 90: the
    narrow cause is +2 against fp32 (its ``against``), not the +4 it would be against the
    bf16 reference, which would add the precision cause to it; with no fp32 runs it is
    not yet run, whatever the reference has."""
    rng = np.random.default_rng(3)
    plan = {"paper": (86.0, 96.0, 4), "fp32": (88.0, 96.0, 4), "narrow": (90.0, 94.0, 4)}
    variants = [
        {"name": "fp32", "reason": "precision"},
        {"name": "narrow", "reason": "widths", "against": "fp32"},
    ]
    rows = {
        r["cause"]: r
        for r in shortfall.shortfall_rows(frame(rng, plan), variants, "0.01", 89.5, 0.95)
    }
    narrow = rows["narrow"]
    assert narrow["against"] == "fp32" and rows["fp32"]["against"] == "paper"
    assert narrow["low"] <= 2.0 <= narrow["high"] and not narrow["low"] <= 4.0 <= narrow["high"]
    assert rows["fp32"]["low"] <= 2.0 <= rows["fp32"]["high"]
    no_fp32 = frame(rng, {"paper": (86.0, 96.0, 4), "narrow": (89.0, 94.0, 4)})
    rows = {r["cause"]: r for r in shortfall.shortfall_rows(no_fp32, variants, "0.01", 89.5, 0.95)}
    assert rows["narrow"]["status"] == shortfall.NOT_YET_RUN


def test_a_single_run_per_arm_is_tested_with_its_caveat_on_the_row():
    """One run of the variant against one of the reference: the row is tested, and says
    that its interval covers test-set noise only; with seeds on both arms it says nothing."""
    rng = np.random.default_rng(4)
    variants = [{"name": "fp32", "reason": "precision"}]
    one = frame(rng, {"paper": (86.0, 96.0, 1), "fp32": (86.5, 96.0, 1)})
    (row,) = shortfall.shortfall_rows(one, variants, "0.01", 89.5, 0.95)
    assert row["status"] == shortfall.TESTED and "test-set noise only" in row["note"]
    seeded = frame(rng, {"paper": (86.0, 96.0, 3), "fp32": (86.5, 96.0, 3)})
    (row,) = shortfall.shortfall_rows(seeded, variants, "0.01", 89.5, 0.95)
    assert row["status"] == shortfall.TESTED and row["note"] == ""


def test_a_variant_trained_on_other_hardware_says_so_on_the_row():
    """The fp32 run on one GPU against the bf16 runs on another: its effect holds the
    hardware's too, so the row names both machines; on one machine it names none."""
    rng = np.random.default_rng(5)
    variants = [{"name": "fp32", "reason": "precision"}]
    runs = frame(rng, {"paper": (86.0, 96.0, 1), "fp32": (85.8, 96.0, 1)})
    runs["device_name"] = np.where(runs.variant == "fp32", "GPU B", "GPU A")
    (row,) = shortfall.shortfall_rows(runs, variants, "0.01", 89.5, 0.95)
    assert "fp32 trained on GPU B, its baseline on GPU A" in row["note"]
    assert "test-set noise only" in row["note"]  # the one-run caveat stays
    runs["device_name"] = "GPU A"
    (row,) = shortfall.shortfall_rows(runs, variants, "0.01", 89.5, 0.95)
    assert "GPU" not in row["note"]


def test_five_null_causes_are_declared_in_about_5_percent_of_studies_after_holm():
    """Known truth: five causes with no effect, 3 seeds each against 3 of the reference,
    seed spread 1 point (above the test set's 0.35: the floors do not make each test
    conservative). In 200 simulated studies some interval excludes zero in about 13 %
    (below 1 - 0.95^5 = 23 %: the causes share their reference, so their errors go
    together); after Holm across the five, some cause is declared in at most about 5 %."""
    rng = np.random.default_rng(11)
    variants = [{"name": f"null{i}", "reason": "none"} for i in range(5)]
    some_interval, some_holm = [], []
    for _ in range(200):
        runs = pd.DataFrame(
            {
                "variant": name,
                "lr": "0.01",
                "final_test_acc": 86.0 + rng.normal(),
                "final_train_acc": 96.0 + 0.3 * rng.normal(),
                "n_test": 10_000,
                "n_train": 50_000,
            }
            for name in ["paper", *(v["name"] for v in variants)]
            for _ in range(3)
        )
        rows = shortfall.shortfall_rows(runs, variants, "0.01", 89.55, 0.95)
        some_interval.append(any(r["low"] > 0 or r["high"] < 0 for r in rows))
        some_holm.append(any(r["p_holm"] < 0.05 for r in rows))
    assert 0.06 <= np.mean(some_interval) <= 0.25
    assert np.mean(some_holm) <= 0.06
