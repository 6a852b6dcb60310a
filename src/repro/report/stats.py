"""Statistics for the report: summaries over seeds with confidence intervals, pairwise
learning-rate tests, and the loss floor of CrossEntropyLoss applied to a Softmax output.

Pure functions of numbers; no file access. Accuracies are in percent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations

import numpy as np
from scipy import stats as sps

WELCH = (
    "Welch t-test on final test accuracy over seeds (two-sided; each variance at least the"
    " test-set binomial variance)"
)
MCNEMAR = "exact McNemar test on the same test images (paired, two-sided; one run per rate)"
Z_TEST = "two-proportion z-test of one run per rate (two-sided; test-set noise only)"


@dataclass
class Summary:
    n: int
    mean: float
    std: float  # sample standard deviation (ddof=1); nan for n = 1
    ci_low: float
    ci_high: float
    method: str


def t_interval(values, confidence: float) -> tuple[float, float]:
    """Two-sided t-based interval for the mean: mean +- t_{(1+c)/2, n-1} * s / sqrt(n)."""
    x = np.asarray(values, dtype=float)
    if len(x) < 2:
        return math.nan, math.nan
    half = t_quantile(confidence, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x))
    return float(x.mean() - half), float(x.mean() + half)


def t_quantile(confidence: float, df: int) -> float:
    return float(sps.t.ppf((1 + confidence) / 2, df))


def binomial_interval(k: int, n: int, confidence: float) -> tuple[float, float]:
    """Clopper-Pearson interval for a proportion k/n, in percent."""
    ci = sps.binomtest(int(k), int(n)).proportion_ci(confidence_level=confidence, method="exact")
    return 100 * ci.low, 100 * ci.high


def summarize(values, confidence: float, n_test: int | None = None) -> Summary:
    """Mean, std and interval of accuracies (percent) over seeds.

    With two or more seeds the interval is t-based and covers seed-to-seed variation,
    its sd at least the test images' binomial sd when ``n_test`` is given (as the
    prediction interval's: seeds that happen to agree do not give a zero-width interval).
    With one seed there is no spread to estimate; if ``n_test`` is given the interval is
    the exact binomial one on the test images, which covers test-set sampling only."""
    x = np.asarray(values, dtype=float)
    n = len(x)
    if n >= 2:
        sd = float(x.std(ddof=1))
        used = max(sd, binomial_sd(float(x.mean()), n_test)) if n_test else sd
        half = t_quantile(confidence, n - 1) * used / math.sqrt(n)
        lo, hi = max(x.mean() - half, 0.0), min(x.mean() + half, 100.0)  # accuracies: 0-100
        method = f"t, {n - 1} df" + (", sd at least the test set's binomial" if n_test else "")
        return Summary(n, float(x.mean()), sd, float(lo), float(hi), method)
    if n == 1 and n_test:
        lo, hi = binomial_interval(round(x[0] / 100 * n_test), n_test, confidence)
        return Summary(1, float(x[0]), math.nan, lo, hi, "n = 1: binomial, test images only")
    return Summary(n, float(x.mean()) if n else math.nan, math.nan, math.nan, math.nan, "n = 1")


def two_proportion_z(k1: int, n1: int, k2: int, n2: int) -> tuple[float, float]:
    """Pooled two-proportion z statistic and two-sided p value."""
    p = (k1 + k2) / (n1 + n2)
    se = math.sqrt(p * (1 - p) * (1 / n1 + 1 / n2))
    if se == 0:
        return 0.0, 1.0
    z = (k1 / n1 - k2 / n2) / se
    return z, float(2 * sps.norm.sf(abs(z)))


def mcnemar(correct_a, correct_b) -> tuple[int, int, float]:
    """Exact McNemar test of two classifiers scored on the same images: the images only
    one of them gets right (a only, b only) and the two-sided binomial p of that split
    under "equally good" (each discordant image a fair coin)."""
    a, b = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
    if a.shape != b.shape:
        raise ValueError(f"paired test needs the same images ({a.shape} vs {b.shape})")
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    if only_a + only_b == 0:
        return 0, 0, 1.0
    return only_a, only_b, float(sps.binomtest(only_a, only_a + only_b, 0.5).pvalue)


def binomial_sd(accuracy_pct: float, n_test: int) -> float:
    """Standard deviation (points) of one run's accuracy from test-set sampling alone."""
    p = min(max(accuracy_pct / 100, 0.0), 1.0)
    return 100 * math.sqrt(p * (1 - p) / n_test)


def welch_floored(a, b, n_test: int) -> tuple[float, float]:
    """Welch's t-test on per-seed accuracies (percent), each group's variance at least the
    test-set binomial variance: seeds that happen to agree exactly still carry the noise
    of scoring on a finite test set, so zero spread never makes a difference certain."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    va = max(a.var(ddof=1), binomial_sd(a.mean(), n_test) ** 2)
    vb = max(b.var(ddof=1), binomial_sd(b.mean(), n_test) ** 2)
    se2 = va / len(a) + vb / len(b)
    t = (a.mean() - b.mean()) / math.sqrt(se2)
    df = se2**2 / ((va / len(a)) ** 2 / (len(a) - 1) + (vb / len(b)) ** 2 / (len(b) - 1))
    return float(t), float(2 * sps.t.sf(abs(t), df))


def compare(a, b, n_test: int, paired=None) -> dict:
    """Compare two groups of final accuracies (percent, one value per seed).

    Two or more seeds on both sides: Welch's t-test over seeds (seed noise). Otherwise one
    run per side: with ``paired`` = (correct_a, correct_b), the per-image correctness of
    one run of each on the same test images, the exact McNemar test; without it the
    two-proportion z-test of the first run of each. Counts are never pooled over seeds
    (the same images counted twice would overstate the evidence)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) >= 2 and len(b) >= 2:
        t, p = welch_floored(a, b, n_test)
        return {"test": WELCH, "statistic": t, "p_value": p}
    if paired is not None:
        only_a, only_b, p = mcnemar(*paired)
        return {"test": MCNEMAR, "statistic": float(only_a - only_b), "p_value": p}
    k1, k2 = round(a[0] / 100 * n_test), round(b[0] / 100 * n_test)
    z, p = two_proportion_z(k1, n_test, k2, n_test)
    return {"test": Z_TEST, "statistic": z, "p_value": p}


def holm(p_values) -> list[float]:
    """Holm-Bonferroni adjusted p values (same order as given)."""
    p = np.asarray(p_values, dtype=float)
    order = np.argsort(p)
    adjusted = np.empty_like(p)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p) - rank) * p[i]))
        adjusted[i] = running
    return adjusted.tolist()


def pairwise(groups: dict[str, list[float]], n_test: int, alpha: float, paired=None) -> list:
    """All pairs of groups (in the given order), each with its test, Holm-adjusted p and a
    three-valued outcome: ``a`` or ``b`` (that group better beyond noise, as the runs its
    test compared say) or None (inconclusive). ``paired(x, y)`` gives the per-image
    correctness of one run of each group on the same images, or None."""
    rows = []
    for x, y in combinations(groups, 2):
        pair = paired(x, y) if paired else None
        r = compare(groups[x], groups[y], n_test, pair)
        a, b = np.mean(groups[x]), np.mean(groups[y])
        rows.append({"a": x, "b": y, "mean_a": a, "mean_b": b, "difference": a - b, **r})
    for r, p in zip(rows, holm([r["p_value"] for r in rows]), strict=True):
        r["p_holm"] = p
        r["significant"] = p < alpha
        # the direction of the runs the test compared: with one run on a side that is
        # one run of each (the first, or the paired ones), whose order the means need not share
        r["better"] = (r["a"] if r["statistic"] > 0 else r["b"]) if p < alpha else None
    return rows


def one_more_run_noise(values, confidence: float, n_test: int) -> tuple[float, float]:
    """The sd (points) that one more run of a group with final accuracies ``values`` is
    judged with, and the half-width of where it lands around their mean: the seed spread,
    at least the test set's binomial sd, times t(n-1) * sqrt(1 + 1/n); with one run the
    binomial sd, known rather than estimated, times z * sqrt(2). The one formula of the
    prediction interval (Table 4) and of every claim's tolerance (tolerance.noise_of)."""
    x = np.asarray(values, dtype=float)
    n = len(x)
    floor = binomial_sd(float(x.mean()), n_test)
    if n >= 2:
        sd = max(float(x.std(ddof=1)), floor)
        return sd, t_quantile(confidence, n - 1) * sd * math.sqrt(1 + 1 / n)
    # sqrt(1 + 1/n) at n = 1: the new run carries the test-set noise as ours does, so an
    # interval for our accuracy alone (e.g. Clopper-Pearson) would cover it ~84 %
    return floor, float(sps.norm.ppf((1 + confidence) / 2)) * floor * math.sqrt(2)


def prediction_interval(
    values, confidence: float, n_test: int, tolerance: float = 0.0
) -> tuple[float, float, str]:
    """Where one more run of the same setup would land (percent), for judging the paper's
    single run against ours: mean +- t(n-1) * s * sqrt(1 + 1/n), with s at least the
    test-set binomial sd; with one run (no seed spread to estimate) s is that binomial sd,
    known rather than estimated: z * s * sqrt(2). The upper end is raised by ``tolerance``
    points: what our known deviations (e.g. JPEG images) may cost, declared with the
    result."""
    x = np.asarray(values, dtype=float)
    n = len(x)
    _, half = one_more_run_noise(x, confidence, n_test)
    lo, hi = x.mean() - half, x.mean() + half
    if n >= 2:
        method = f"prediction interval, t with {n - 1} df"
    else:
        method = "n = 1: no seed spread; z * s * sqrt(2), s the test set's binomial sd"
    if tolerance:
        method += f", upper end + {tolerance:g} point tolerance"
    return max(lo, 0.0), min(hi + tolerance, 100.0), method


# ---- the loss floor ----------------------------------------------------------------


def softmax_ce_floor(num_classes: int = 10) -> float:
    """Lowest CrossEntropyLoss on a Softmax output: the probabilities p in [0, 1] are
    treated as logits, so the best case p = one-hot(y) gives -log(e / (e + K - 1))."""
    return math.log1p((num_classes - 1) / math.e)


def softmax_ce_uniform(num_classes: int = 10) -> float:
    """The loss of a uniform output p = 1/K (the start of training): log K."""
    return math.log(num_classes)


def softmax_ce_expected(accuracy_pct: float, num_classes: int = 10) -> float:
    """Loss of a confident classifier (one-hot outputs) with the given accuracy under
    CrossEntropyLoss on Softmax output: correct images cost log(e + K - 1) - 1, wrong
    ones log(e + K - 1), so the mean is log(e + K - 1) - accuracy."""
    return math.log(math.e + num_classes - 1) - accuracy_pct / 100
