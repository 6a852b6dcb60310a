"""The tolerance of the claims: the noise of one more run, against simulated runs."""

import numpy as np
import pytest

from repro.report import stats, tolerance


@pytest.mark.parametrize("n", [1, 3])
def test_the_papers_run_lies_within_the_half_width_95_percent_of_the_time(n):
    """Known truth: our n runs and the paper's one run score on 10,000 test images with the
    same true accuracy, the test images the only noise. The paper's run must lie within
    ours +- half_width in ~95 % of studies (n = 3: at least that, the floor and t(2) are
    conservative here); with one run both carry the noise, hence sqrt(2)."""
    rng = np.random.default_rng(5 + n)
    sims, inside = 4000, 0
    for _ in range(sims):
        ours, paper = rng.binomial(10_000, 0.88, n) / 100, rng.binomial(10_000, 0.88) / 100
        half = tolerance.noise_of(ours, 10_000, 0.95).half_width
        inside += abs(paper - ours.mean()) <= half
    assert 0.935 <= inside / sims <= (0.965 if n == 1 else 1.0)


@pytest.mark.parametrize("values", [[86.07], [89.5, 89.7, 89.6], [87.0, 87.0]])
def test_the_tolerance_is_the_prediction_intervals_half_width(values):
    """One formula for the noise of one more run: every claim's tolerance is Table 4's
    prediction interval's half-width (away from the 0-100 % clip)."""
    lo, hi, _ = stats.prediction_interval(values, 0.95, 10_000)
    assert tolerance.noise_of(values, 10_000, 0.95).half_width == pytest.approx((hi - lo) / 2)
