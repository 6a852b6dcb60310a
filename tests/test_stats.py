"""Statistics: intervals, tests and the loss floor, against values computed by hand."""

import math

import numpy as np
import pytest

from repro import stats


def test_t_interval_of_known_accuracies():
    # mean 90, s = 2, n = 3: half width t_{0.975,2} * 2 / sqrt(3), t_{0.975,2} = 4.302653
    assert stats.t_quantile(0.95, 2) == pytest.approx(4.302653, abs=1e-6)
    lo, hi = stats.t_interval([88.0, 90.0, 92.0], 0.95)
    half = 4.302653 * 2 / math.sqrt(3)
    assert (lo, hi) == pytest.approx((90 - half, 90 + half), abs=1e-5)


def test_summary_with_one_seed_says_so_and_uses_the_test_set():
    s = stats.summarize([87.0], 0.95, n_test=10_000)
    assert s.n == 1 and math.isnan(s.std)
    assert s.method.startswith("n = 1")
    # Clopper-Pearson for 8700 / 10000 brackets 87 % by roughly +-0.67 points
    assert s.ci_low == pytest.approx(86.33, abs=0.02) and s.ci_high == pytest.approx(
        87.65, abs=0.02
    )


def test_summary_clips_interval_to_percent_range():
    s = stats.summarize([1.0, 9.0], 0.95)
    assert s.ci_low == 0.0 and s.ci_high < 100


def test_welch_for_seeds_and_z_test_for_single_runs():
    r = stats.compare([89.5, 89.7, 89.6], [87.5, 87.6, 87.4], n_test=10_000)
    assert r["test"] == stats.WELCH
    assert r["statistic"] == pytest.approx(2.1 / math.sqrt(0.01 / 3 + 0.01 / 3), rel=1e-6)
    r = stats.compare([89.0], [87.0], n_test=10_000)
    assert r["test"] == stats.Z_TEST
    p = (8900 + 8700) / 20_000
    z = 0.02 / math.sqrt(p * (1 - p) * 2 / 10_000)
    assert r["statistic"] == pytest.approx(z, rel=1e-9)
    assert r["p_value"] < 0.001


def test_holm_adjustment():
    assert stats.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])


def test_pairwise_names_pairs_in_order():
    rows = stats.pairwise({"0.01": [90, 91], "0.005": [80, 81], "0.001": [70, 71.5]}, 100, 0.05)
    assert [(r["a"], r["b"]) for r in rows] == [
        ("0.01", "0.005"),
        ("0.01", "0.001"),
        ("0.005", "0.001"),
    ]
    assert rows[0]["difference"] == pytest.approx(10)


def test_softmax_cross_entropy_floor():
    floor = stats.softmax_ce_floor(10)
    assert floor == pytest.approx(1.46115, abs=1e-5)
    assert math.floor(floor * 1e4) / 1e4 == 1.4611
    # the floor is the loss of a one-hot softmax output under CrossEntropyLoss
    p = np.eye(10)[3]
    direct = -p[3] + math.log(np.exp(p).sum())
    assert direct == pytest.approx(floor, abs=1e-12)
    assert stats.softmax_ce_uniform(10) == pytest.approx(math.log(10))


def test_expected_loss_at_the_papers_accuracies():
    # the seed's 94 % train / 89.55 % test accuracy give its reported 1.52 / 1.57
    assert stats.softmax_ce_expected(94.0) == pytest.approx(1.5211, abs=1e-4)
    assert stats.softmax_ce_expected(89.55) == pytest.approx(1.5656, abs=1e-4)
    assert stats.softmax_ce_expected(100.0) == pytest.approx(stats.softmax_ce_floor())
