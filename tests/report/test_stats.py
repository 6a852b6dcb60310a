"""Statistics: intervals, tests and the loss floor, against values computed by hand."""

import math

import numpy as np
import pytest

from repro.report import stats


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


def test_summary_of_seeds_that_agree_keeps_the_test_sets_noise():
    """Two seeds at exactly 87 %: their sample sd is 0, yet each carries the binomial
    noise of 10,000 test images (0.336 points), so the interval is t(1) * 0.336 / sqrt(2)
    either side, not a point; seeds that spread more keep their own spread."""
    s = stats.summarize([87.0, 87.0], 0.95, n_test=10_000)
    half = 12.706205 * math.sqrt(0.87 * 0.13 / 10_000) * 100 / math.sqrt(2)
    assert s.std == 0.0 and (s.ci_low, s.ci_high) == pytest.approx((87 - half, 87 + half), abs=1e-4)
    wide = stats.summarize([86.5, 87.5], 0.95, n_test=10_000)
    assert wide.ci_high - 87 == pytest.approx(12.706205 * math.sqrt(0.5) / math.sqrt(2), abs=1e-4)


def test_summary_clips_interval_to_percent_range():
    s = stats.summarize([1.0, 9.0], 0.95)
    assert s.ci_low == 0.0 and s.ci_high < 100


def test_welch_over_seeds_with_spread_above_the_test_set_noise():
    r = stats.compare([85.0, 89.0, 93.0], [80.0, 84.0, 88.0], n_test=10_000)
    assert r["test"] == stats.WELCH
    assert r["statistic"] == pytest.approx(5 / math.sqrt(16 / 3 + 16 / 3), rel=1e-9)
    # equal variances and sizes: Welch's df is 2 (n - 1) = 4
    assert r["p_value"] == pytest.approx(2 * (1 - _t_cdf(r["statistic"], 4)), rel=1e-6)


def _t_cdf(t: float, df: int) -> float:
    from scipy import stats as sps

    return float(sps.t.cdf(t, df))


def test_identical_seeds_keep_the_test_set_noise():
    """Zero spread over seeds must not make a 1-point difference certain: each variance is
    at least the binomial variance of one run on 10,000 test images."""
    r = stats.compare([89.0, 89.0, 89.0], [88.0, 88.0, 88.0], n_test=10_000)
    va, vb = 1e4 * 0.89 * 0.11 / 10_000, 1e4 * 0.88 * 0.12 / 10_000
    assert r["statistic"] == pytest.approx(1 / math.sqrt(va / 3 + vb / 3), rel=1e-9)
    assert 0 < r["p_value"] < 1 and math.isfinite(r["statistic"])


def test_mcnemar_counts_only_the_images_one_model_gets_right():
    rng = np.random.default_rng(0)
    both = rng.random(1000) < 0.8
    a, b = both.copy(), both.copy()
    wrong = np.flatnonzero(~both)
    a[wrong[:30]] = True  # 30 images only a gets right
    b[wrong[30:40]] = True  # 10 images only b gets right
    only_a, only_b, p = stats.mcnemar(a, b)
    assert (only_a, only_b) == (30, 10)
    tail = sum(math.comb(40, k) for k in range(11)) / 2**40  # P(X <= 10), X ~ Bin(40, 1/2)
    assert p == pytest.approx(2 * tail, rel=1e-9)
    assert stats.mcnemar(a, a) == (0, 0, 1.0)
    r = stats.compare([a.mean() * 100], [b.mean() * 100], 1000, paired=(a, b))
    assert r["test"] == stats.MCNEMAR and r["p_value"] == pytest.approx(p)


def test_single_runs_without_predictions_use_one_run_each_never_pooled_counts():
    r = stats.compare([89.0], [87.0], n_test=10_000)
    assert r["test"] == stats.Z_TEST
    p = (8900 + 8700) / 20_000
    z = 0.02 / math.sqrt(p * (1 - p) * 2 / 10_000)
    assert r["statistic"] == pytest.approx(z, rel=1e-9)
    # two seeds against one: the first run of each, not 2 x 10,000 pooled images
    assert stats.compare([89.0, 80.0], [87.0], 10_000)["statistic"] == pytest.approx(z)


def test_prediction_interval_by_hand():
    lo, hi, method = stats.prediction_interval([68.0, 70.0, 72.0], 0.95, 10_000, tolerance=1.0)
    half = 4.302653 * 2 * math.sqrt(1 + 1 / 3)
    assert (lo, hi) == pytest.approx((70 - half, 70 + half + 1.0), abs=1e-5)
    assert "t with 2 df" in method and "+ 1 point tolerance" in method
    lo, hi, method = stats.prediction_interval([87.0], 0.95, 10_000)
    # one run: both it and the next carry the test set's binomial sd of 0.336 points
    half = 1.959964 * 100 * math.sqrt(0.87 * 0.13 / 10_000) * math.sqrt(2)
    assert (lo, hi) == pytest.approx((87 - half, 87 + half), abs=1e-5)
    assert "no seed spread" in method
    lo, hi, _ = stats.prediction_interval([89.0] * 5, 0.95, 10_000)
    assert hi - lo > 1.0, "identical seeds still leave the test-set noise"


@pytest.mark.parametrize("n", [2, 10])
def test_a_perfect_reproduction_lands_in_the_prediction_interval_95_percent_of_the_time(n):
    """Known truth: our seeds and the paper's single run come from one distribution. The
    interval for a new run covers the paper's value ~95 % of the time whatever n; the
    interval for our mean would cover it ever more rarely as n grows."""
    rng = np.random.default_rng(n)
    sims, inside, inside_ci = 4000, 0, 0
    for _ in range(sims):
        ours = rng.normal(88.0, 0.5, n)
        paper = rng.normal(88.0, 0.5)
        lo, hi, _ = stats.prediction_interval(ours, 0.95, 10**9)
        inside += lo <= paper <= hi
        clo, chi = stats.t_interval(ours, 0.95)
        inside_ci += clo <= paper <= chi
    assert 0.935 <= inside / sims <= 0.965
    if n == 10:
        assert inside_ci / sims < 0.6


def test_from_one_run_the_papers_run_lands_in_the_prediction_interval_95_percent_of_the_time():
    """Known truth: our one run and the paper's one run score on 10,000 test images with
    the same true accuracy, and the test images are the only noise (what the one-run
    interval says it covers). Both runs carry that noise, so the interval must be
    sqrt(2) times the one run's: a confidence interval of our accuracy covers the paper's
    run only ~84 % of the time."""
    rng = np.random.default_rng(11)
    sims, inside = 4000, 0
    for _ in range(sims):
        ours, paper = rng.binomial(10_000, 0.88, 2) / 100
        lo, hi, _ = stats.prediction_interval([ours], 0.95, 10_000)
        inside += lo <= paper <= hi
    assert 0.935 <= inside / sims <= 0.965


def test_holm_adjustment():
    assert stats.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])


def test_pairwise_names_pairs_in_order():
    groups = {"0.01": [90, 91], "0.005": [80, 81], "0.001": [70, 71.5]}
    rows = stats.pairwise(groups, 10_000, 0.05)
    assert [(r["a"], r["b"]) for r in rows] == [
        ("0.01", "0.005"),
        ("0.01", "0.001"),
        ("0.005", "0.001"),
    ]
    assert rows[0]["difference"] == pytest.approx(10)
    assert [r["better"] for r in rows] == ["0.01", "0.01", "0.005"]
    tied = stats.pairwise({"0.01": [10.0], "0.005": [10.0]}, 100, 0.05)
    assert tied[0]["better"] is None, "a tie is inconclusive, not a ranking"


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


def test_pairwise_names_as_better_the_side_its_test_found_better():
    """Known truth: with one run on one side the test compares single runs (the first of
    each, or the paired ones), so "better" must follow the runs it tested, not the means.
    Here lr 0.01's tested run (89.0 %) is worse than lr 0.1's (90.0 %) on 10,000 images,
    though lr 0.01's mean over three seeds (90.33 %) is higher."""
    groups = {"0.01": [89.0, 91.0, 91.0], "0.1": [90.0]}
    (row,) = stats.pairwise(groups, 10_000, 0.05)
    assert row["test"] == stats.Z_TEST and row["p_holm"] < 0.05
    assert row["statistic"] < 0 and row["better"] == "0.1"
    # the paired variant: the tested lr 0.01 run gets 60 images wrong that lr 0.1 gets right
    both = np.ones(10_000, bool)
    a, b = both.copy(), both.copy()
    a[:60] = False
    (row,) = stats.pairwise(groups, 10_000, 0.05, paired=lambda x, y: (a, b))
    assert row["test"] == stats.MCNEMAR and row["p_holm"] < 0.05
    assert row["better"] == "0.1"
