"""What the report says about why the accuracy falls short (issue 21), on synthetic
studies with planted effects: a variant's planted effect is found with its sign and an
interval that covers it, a variant without one is not declared, missing variants read
"not yet run", and the reporting variants come from the histories."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from repro.plan import config as config_mod
from repro.report import stats, why
from repro.report.study import Study

PAPER_01 = 89.55


def synthetic(effects: dict, seeds: int = 3, base: float = 86.0, noise: float = 0.3, rng=0):
    """A study at lr 0.01: the reference and one variant per ``effects`` entry (planted
    points of test accuracy; None: no runs), ``seeds`` runs each."""
    gen = np.random.default_rng(rng)
    variants = [
        {"name": n, "reason": f"{n} reason", "model": {"hidden": 100 + i}}
        for i, n in enumerate(effects)
    ]
    cfg = config_mod.validate({"devices": ["cpu"], "learning_rates": [0.01], "variants": variants})
    rows, hist = [], []
    for name, effect in {"paper": 0.0, **effects}.items():
        if effect is None:
            continue
        for seed in range(seeds):
            test = base + effect + noise * gen.standard_normal()
            rows.append(
                {
                    "variant": name,
                    "head": "softmax",
                    "device": "cpu",
                    "lr": "0.01",
                    "seed": seed,
                    "final_test_acc": test,
                    "final_train_acc": 96.0 + noise * gen.standard_normal(),
                    "n_test": 10_000,
                    "n_train": 50_000,
                    "precision": "fp32",
                }
            )
            curve = np.r_[np.linspace(40, test + 1.0, 140), np.full(10, test)]
            curve[120] = test + 2.0  # the best epoch, planted
            hist.append(
                pd.DataFrame(
                    {
                        "epoch": np.arange(1, 151),
                        "test_acc": curve,
                        "head": "softmax",
                        "device": "cpu",
                        "lr": "0.01",
                        "seed": seed,
                        "variant": name,
                    }
                )
            )
    runs, history = pd.DataFrame(rows), pd.concat(hist, ignore_index=True)
    ref_runs = runs[runs.variant == "paper"].reset_index(drop=True)
    ref_hist = history[history.variant == "paper"].reset_index(drop=True)
    return Study(cfg, ref_runs, ref_hist, variant_runs=runs, variant_history=history)


def by_cause(rows):
    return {r["cause"]: r for r in rows}


def test_planted_effect_is_found_and_a_null_variant_is_not_declared():
    s = synthetic({"narrow": 2.0, "hidden": 0.0, "dropout": None})
    rows = by_cause(why.rows(s))
    narrow, hidden = rows["narrow"], rows["hidden"]
    assert narrow["status"] == "tested" and narrow["effect"] > 0
    assert narrow["low"] <= 2.0 <= narrow["high"] and narrow["low"] > 0
    assert hidden["low"] <= 0 <= hidden["high"]
    assert rows["dropout"]["status"] == "not yet run"
    assert rows["lossless images"]["status"] == "cannot be tested here"
    text = why.sentence(why.rows(s), why.gap(s), "0.01")
    assert "narrow +" in text and "hidden +" not in text and "hidden -" not in text
    assert "Not yet run: dropout" in text


def test_planted_interval_covers_the_effect_about_95_percent_of_the_time():
    """With a seed spread (1 point) above the test set's binomial one (0.35), the Welch
    interval is the seeds' and covers the planted effect in about 95 % of studies."""
    covered = []
    for rng in range(200):
        row = by_cause(why.rows(synthetic({"narrow": 2.0}, noise=1.0, rng=rng)))["narrow"]
        covered.append(row["low"] <= 2.0 <= row["high"])
    assert 0.90 <= np.mean(covered) <= 0.99


def test_without_variant_runs_the_sentence_says_nothing_is_measured_yet():
    s = synthetic({"narrow": None, "jpeg-q50": None})
    rows = why.rows(s)
    assert [r["status"] for r in rows[:2]] == ["not yet run"] * 2
    assert why.gap(s) == pytest.approx(PAPER_01 - s.runs.final_test_acc.mean())
    assert "No candidate cause has been measured yet" in why.sentence(rows, why.gap(s), "0.01")


def test_reporting_variants_come_from_the_histories():
    s = synthetic({})
    (row,) = why.reporting_rows(s)
    finals = s.runs.final_test_acc
    assert row["n"] == 3 and row["paper"] == PAPER_01
    assert row["final"] == pytest.approx(finals.mean())
    assert row["best"] == pytest.approx(finals.mean() + 2.0)
    assert row["last_ten"] == pytest.approx(finals.mean())


def test_figures_draw_tested_and_untested_causes():
    s = synthetic({"narrow": 2.0, "hidden": None})
    fig = why.fig_effects(s, why.rows(s))
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels == ["narrow", "hidden", "lossless images"]
    fig2 = why.fig_train_test(s)
    assert len(fig2.axes[0].collections) == 3  # paper, narrow, the seed's star


def test_load_study_groups_runs_by_the_variant_of_their_folder_hash(tmp_path):
    """Runs in the folders the workflow gives them: the reference's alone make the
    tables' frame, every run with its variant the why section's."""
    import json
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from test_tables import history, write_run

    from repro.plan import grid
    from repro.report.study import load_study

    variants = [{"name": "narrow", "reason": "r", "model": {"hidden": 64}}]
    cfg = config_mod.validate(
        {
            "data": {"source": "torchvision"},
            "devices": ["cpu"],
            "learning_rates": [0.01],
            "seeds": [0, 1],
            "variants": variants,
        }
    )
    paths = []
    for r in grid.runs(cfg):
        final = 86.0 if r["variant"] == "paper" else 88.0
        metrics = write_run(tmp_path / r["variant"], "softmax", "0.01", r["seed"], history(final))
        folder = tmp_path / grid.RUN_DIR.format(**r)
        folder.parent.mkdir(parents=True, exist_ok=True)
        metrics.parent.rename(folder)
        paths.append(folder / "metrics.json")
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    s = load_study(tmp_path / "config.json", paths)
    assert set(s.runs.variant) == {"paper"} and len(s.runs) == 2
    assert s.variant_runs.groupby("variant").size().to_dict() == {"narrow": 2, "paper": 2}
    assert len(s.confusion) == 2 and set(s.history.variant) == {"paper"}
    row = by_cause(why.rows(s))["narrow"]
    assert row["status"] == "tested" and row["effect"] == pytest.approx(2.0)


def test_jpeg_extrapolation_recovers_a_planted_slope():
    """Accuracy planted to fall 0.02 points per unit of MSE against lossless images: the
    lossless row's extrapolated gain over the q75 data is 0.02 x q75's own cost."""
    slope, q75 = 0.02, sum(why.Q75_MSE) / 2
    added = {"jpeg-q50": 88.7, "jpeg-q20": 167.9}
    s = synthetic(
        {"jpeg-q50": -slope * added["jpeg-q50"], "jpeg-q20": -slope * added["jpeg-q20"]},
        noise=0.05,
        rng=3,
    )
    row = by_cause(why.rows(s, added))["lossless images"]
    assert row["status"] == "cannot be tested here"
    assert row["effect"] == pytest.approx(slope * q75, abs=0.3)
    assert row["low"] <= slope * q75 <= row["high"]
    assert "extrapolat" in row["method"].lower()
    # without known distortions, no number is claimed
    assert np.isnan(by_cause(why.rows(s, {}))["lossless images"]["effect"])
    # nor without the q75 reference's runs: a line through q50 and q20 alone would give
    # lossless minus q50, not the gain over our data
    s.variant_runs = s.variant_runs[s.variant_runs.variant != "paper"]
    assert why.extrapolation(s, added) is None


def test_recorded_jpeg_runs_take_their_distortion_from_the_recordings_cache_json(tmp_path):
    """Recorded JPEG runs have no cache here: the MSE their re-encode added comes from
    the cache JSON a GPU session brought back (sessions/<n>/data/*.json), matched by
    JPEG quality; a quality no session prepared gets none (no number is made up)."""
    import json

    folder = tmp_path / "recorded" / "h100"
    meta = {"jpeg": {"quality": 50, "added_mse_train": 88.0, "added_mse_test": 90.0}}
    (folder / "sessions" / "3" / "data").mkdir(parents=True)
    (folder / "sessions" / "3" / "data" / "cifar10-1.json").write_text(json.dumps(meta))
    (folder / "data").mkdir()
    (folder / "data" / "cifar10.json").write_text(json.dumps({"n_train": 50000}))
    variants = [
        {"name": f"jpeg-q{q}", "reason": "r", "data": {"jpeg_quality": q}} for q in (50, 20)
    ]
    cfg = config_mod.validate(
        {"devices": ["cpu"], "variants": variants, "data": {"folder": str(tmp_path)}}
    )
    cfg["recorded"] = str(folder)
    assert why.jpeg_added(cfg) == {"jpeg-q50": 89.0}
    cfg["recorded"] = None
    assert why.jpeg_added(cfg) == {}


@pytest.mark.parametrize("mse", [-60.0, 1e300, True])
def test_a_forged_recorded_distortion_is_one_line_not_a_verdict(tmp_path, mse):
    """A recording's cache JSON with an added MSE no re-encode makes (-60 still gave a
    positive distortion, hence a fitted lossless accuracy) stops the report in one line."""
    import json

    from repro.errors import UserError

    folder = tmp_path / "recorded" / "h100"
    meta = {"jpeg": {"quality": 50, "added_mse_train": mse, "added_mse_test": 90.0}}
    (folder / "data").mkdir(parents=True)
    (folder / "data" / "cifar10-1.json").write_text(json.dumps(meta))
    variants = [{"name": "jpeg-q50", "reason": "r", "data": {"jpeg_quality": 50}}]
    cfg = config_mod.validate(
        {"devices": ["cpu"], "variants": variants, "data": {"folder": str(tmp_path)}}
    )
    cfg["recorded"] = str(folder)
    with pytest.raises(UserError, match="cifar10-1.json: its jpeg added_mse_train"):
        why.jpeg_added(cfg)


def test_the_declared_arithmetic_deviation_says_what_the_fp32_variant_measured():
    """bf16 reference runs and an fp32 variant's runs, one each (planted -0.3 points): the
    deviation's words give the fp32 row's effect and interval with its one-run caveat, not
    "not measured"; with no bf16 on either side there is no arithmetic cause to quote."""
    s = synthetic({"fp32": -0.3}, seeds=1)
    s.variant_runs["precision"] = np.where(s.variant_runs.variant == "fp32", "fp32", "bf16")
    s.runs["precision"] = "bf16"
    rows = why.rows(s)
    (fp32,) = [r for r in rows if r["cause"] == "fp32"]
    text = why.precision_effect(s, rows)
    assert f"fp32 minus bf16 {fp32['effect']:+.2f} points" in text
    assert f"({fp32['low']:+.2f} to {fp32['high']:+.2f}), one run each" in text
    assert "different GPUs" not in text  # one machine here
    s.variant_runs["device_name"] = np.where(s.variant_runs.variant == "fp32", "B", "A")
    assert "one run each on different GPUs" in why.precision_effect(s, why.rows(s))
    (_, arithmetic, _) = s.deviations(text)
    assert text in arithmetic.text and "not measured" not in arithmetic.text
    s.variant_runs["precision"] = "fp32"
    assert why.precision_effect(s, why.rows(s)) == ""
    assert "not measured" in s.deviations("")[1].text


def test_the_sentence_says_whether_a_tested_interval_includes_zero():
    """A planted null effect reads as no effect beyond noise (its interval includes zero);
    a planted 2-point effect is named with its interval and share."""
    null = synthetic({"narrow": 0.0}, rng=2)
    rows = why.rows(null)
    assert rows[0]["low"] <= 0 <= rows[0]["high"]
    text = why.sentence(rows, why.gap(null), "0.01")
    assert "The one tested cause, narrow, shows no effect beyond noise: its interval" in text
    moved = synthetic({"narrow": 2.0}, rng=2)
    text = why.sentence(why.rows(moved), why.gap(moved), "0.01")
    assert "Measured effects whose interval excludes zero: narrow +" in text


def test_the_planned_design_says_what_it_can_resolve():
    """Variants planned with 2 seeds against a reference of 3 (the why queue's design):
    each row carries its planned counts and the half-width those runs will give with the
    reference's spread so far; causes of one design are named together."""
    from repro.report import effects

    s = synthetic({"narrow": None, "wide": None}, seeds=3)
    s.config["seeds"] = [0, 1, 2]
    for v in s.config["variants"]:
        v["seeds"] = [0, 1]
    rows = why.rows(s)
    ref = s.variant_runs[s.variant_runs.variant == "paper"].final_test_acc
    floor = effects.scoring_var(ref.mean(), 10_000)
    var = max(ref.var(ddof=1), floor)
    want = effects.resolution(2, 3, s.confidence, var)
    found = effects.detectable(2, 3, s.confidence, var, floor, 0.8)
    for r in rows[:2]:
        assert (r["planned_variant"], r["planned_reference"]) == (2, 3)
        assert r["resolution"] == pytest.approx(want)
        assert r["detectable"] == pytest.approx(found) and found > want
    assert why.resolution_text(rows) == (
        f"narrow, wide: 2 against 3 runs, ±{want:.2f} points, {found:.2f} found 4 times in 5"
    )
    # with no reference run, nothing can be said of the design
    s.variant_runs = s.variant_runs[s.variant_runs.variant != "paper"]
    assert why.resolution_text(why.rows(s)) == ""


def test_the_sentence_states_no_share_of_a_gap_within_noise():
    """Known truth: the reference is planted 0.15 points below the paper, well within the
    noise of three seeds and the paper's one run, so no share of that gap can be stated
    (share_of_gap's interval is unbounded); a planted 2-point effect still reads as one.
    With a 3.55-point gap the share is stated with its interval."""
    s = synthetic({"narrow": 2.0}, base=PAPER_01 - 0.15, rng=2)
    rows = why.rows(s)
    assert rows[0]["low"] > 0 and np.isinf(rows[0]["share_high"])
    text = why.sentence(rows, why.gap(s), "0.01")
    assert "narrow +" in text and "% of the gap" not in text
    assert "the gap is within noise" in text
    s = synthetic({"narrow": 2.0}, rng=2)
    (r, _) = why.rows(s)
    text = why.sentence([r], why.gap(s), "0.01")
    lo, hi = 100 * r["share_low"], 100 * r["share_high"]
    assert f"{100 * r['share']:.0f} % of the gap ({lo:.0f} to {hi:.0f} %)" in text


def test_page_one_states_no_share_and_no_negative_shortfall_where_the_data_give_none():
    """Known truth: a reference planted 0.15 points below the paper (gap within noise)
    gives page 1's share cell "none" with the reason, not "(-inf to inf)"; planted 0.5
    points above, the gap reads as lying above the paper, not "falls -0.50 short"; a
    3.55-point gap gives the share with its bounds, and a cause not yet run a blank."""
    s = synthetic({"narrow": 2.0}, base=PAPER_01 - 0.15, rng=2)
    cells = [r["share_cell"] for r in why.cover_rows(why.rows(s))]
    assert cells[0] == "none: the gap is within noise" and "inf" not in " ".join(cells)
    above = synthetic({"narrow": 2.0}, base=PAPER_01 + 0.5, rng=2)
    assert why.gap(above) < 0
    text = why.sentence(why.rows(above), why.gap(above), "0.01")
    assert f"lies {-why.gap(above):.2f} points above the paper" in text and "short" not in text
    s = synthetic({"narrow": 2.0}, rng=2)
    r = why.cover_rows(why.rows(s))[0]
    lo, hi = 100 * r["share_low"], 100 * r["share_high"]
    assert r["share_cell"] == f"{100 * r['share']:.0f} % ({lo:.0f} to {hi:.0f})"
    waiting = {**r, "status": why.NOT_YET_RUN, "share": float("nan")}
    assert why.cover_rows([waiting])[0]["share_cell"] == ""


def test_the_sentence_says_whether_an_effect_survives_counting_all_causes():
    """A planted +3 effect among five null causes is declared also after Holm across the
    six; a cause whose interval excludes zero only by chance among two is said not to
    be beyond noise once both are counted. The rows carry Holm's adjustment of their p."""
    nulls = {f"null{i}": 0.0 for i in range(5)}
    s = synthetic({**nulls, "narrow": 3.0}, noise=0.3, rng=5)
    rows = why.rows(s)
    tested = [r for r in rows if r["status"] == "tested"]
    assert [r["p_holm"] for r in tested] == pytest.approx(stats.holm([r["p"] for r in tested]))
    text = why.sentence(rows, why.gap(s), "0.01")
    assert "narrow +" in text and "beyond noise also with all 6 tested causes counted" in text
    lucky = {**by_cause(rows)["null0"], "low": 0.1, "high": 1.0, "p_holm": 0.3}
    text = why.sentence([lucky, by_cause(rows)["narrow"]], why.gap(s), "0.01")
    assert "null0 +" in text and "not beyond noise once all 2 tested causes are counted" in text


def test_a_paper_accuracy_for_another_rate_only_draws_the_figures(tmp_path):
    """Regression: a config giving the paper's accuracy only for a rate it does not train
    crashed the figures stage ("Axis limits cannot be NaN or Inf" in the why figure); the
    figures are drawn without the paper's line and star."""
    s = synthetic({"narrow": 2.0, "hidden": None})
    s.config["paper"]["test_accuracy"] = {"0.02": 90.0}
    assert np.isnan(why.gap(s))
    fig = why.fig_effects(s, why.rows(s))
    fig.savefig(tmp_path / "effects.png")
    assert not [line for line in fig.axes[0].lines if "paper gap" in str(line.get_label())]
    fig2 = why.fig_train_test(s)
    fig2.savefig(tmp_path / "train_test.png")
    assert len(fig2.axes[0].collections) == 2  # paper and narrow; no star
    assert all(np.isfinite(fig2.axes[0].get_xlim()))
    text = why.sentence(why.rows(s), why.gap(s), "0.01")
    assert "nan" not in text and "has no paper accuracy to be compared with" in text


def _on_the_archive(s):
    from repro.report.deviations import OFFLINE_JPEG_Q75_SHA256

    s.data = {"sha256": OFFLINE_JPEG_Q75_SHA256, "source": "archive"}
    return s


def test_until_the_jpeg_variants_run_the_reported_range_stands_in_labelled_as_such():
    """No JPEG variant runs: the lossless row carries the range reported elsewhere (1-3
    points) as a prior, labelled, with no effect of its own, drawn as a hatched outline
    (not a measured dot); on lossless images or a copy of unknown cost there is none."""
    s = _on_the_archive(synthetic({"jpeg-q50": None, "jpeg-q20": None}))
    row = by_cause(why.rows(s, {}))["lossless images"]
    assert np.isnan(row["effect"]) and (row["prior_low"], row["prior_high"]) == (1.0, 3.0)
    assert row["note"] == "reported elsewhere, not measured here"
    fig = why.fig_effects(s, why.rows(s, {}))
    ax = fig.axes[0]
    (bar,) = [p for p in ax.patches if p.get_hatch()]
    assert (bar.get_x(), bar.get_width(), bar.get_fill()) == (1.0, 2.0, False)
    assert "reported elsewhere, not measured here" in [t.get_text() for t in ax.get_legend().texts]
    assert ax.get_xlim()[1] > 3.0
    s.data = {"source": "torchvision"}
    assert np.isnan(by_cause(why.rows(s, {}))["lossless images"]["prior_low"])


@pytest.mark.parametrize("slope,side", [(0.02, "inside"), (0.06, "above")])
def test_once_the_jpeg_variants_ran_the_extrapolation_replaces_the_prior_and_says_where_it_lies(
    slope, side
):
    """Accuracy planted to fall ``slope`` points per unit of MSE: the extrapolated gain
    (about 1.4 or 4.2 points) replaces the prior, and the row and page 1's sentence say
    whether it lies inside the reported 1-3 points."""
    added = {"jpeg-q50": 88.7, "jpeg-q20": 167.9}
    effects = {k: -slope * v for k, v in added.items()}
    s = _on_the_archive(synthetic(effects, noise=0.05, rng=3))
    rows = why.rows(s, added)
    row = by_cause(rows)["lossless images"]
    assert row["effect"] == pytest.approx(slope * sum(why.Q75_MSE) / 2, abs=0.3)
    assert np.isnan(row["prior_low"])
    assert f"lies {side} the reported range of 1-3 points" in row["note"]
    assert row["note"] in why.sentence(rows, why.gap(s), "0.01")


def test_the_break_even_figure_has_finite_limits_whatever_the_verdicts():
    """Fig. 8 from claims that hold without a cost (0), need one inside or beyond the
    range, can be helped by none (inf), or take none (NaN: left out); and from no
    decided claim at all, with and without a cost range: never a NaN axis limit."""
    from repro.report import claims, figures

    s = synthetic({})  # no data described: no cost range
    cost = _on_the_archive(synthetic({})).cost()
    costs = {"a": 0.0, "b": 2.5, "c": 10.3, "d": float("inf"), "e": float("nan")}
    frame = pd.DataFrame(
        {
            "claim": list(costs),
            "verdict": [
                claims.cost_verdict(b, cost) if b == b else "holds" for b in costs.values()
            ],
            "break_even": list(costs.values()),
        }
    )
    jpeg = _on_the_archive(synthetic({}))
    for study, claim_rows in ((jpeg, frame), (s, frame), (s, frame.iloc[:0])):
        fig = figures.fig_jpeg_cost(study, claim_rows)
        ax = fig.axes[0]
        assert all(np.isfinite(ax.get_xlim())) and all(np.isfinite(ax.get_ylim()))
        labels = [t.get_text() for t in ax.get_yticklabels()]
        assert labels == (["a", "b", "c", "d"] if len(claim_rows) else [])
        assert (study is jpeg) == bool(ax.get_legend())
