"""Why our accuracy falls short of the paper's: the statistics of its causes.

Where one more run would land (with and without the JPEG allowance), each variant's
effect against the reference setup with a Welch interval over seeds, the share of the
paper gap an effect would explain, the learning-rate ranking over seeds, and the
extrapolation of accuracy to lossless images from the JPEG re-encodes.

Pure functions of numbers (numpy and scipy); no file access, no torch. Accuracies are in
percent, distortions are mean squared errors on the 0-255 scale.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps
from scipy.optimize import brentq

from ..errors import UserError
from .stats import binomial_sd, pairwise, prediction_interval

# ---- one more run -----------------------------------------------------------------


def one_more_run(values, confidence: float, n_test: int, allowance: float = 0.0) -> dict:
    """Where one more run of the same setup would land (percent), as in
    ``stats.prediction_interval``: t-based over seeds from n >= 2 (the seed spread, at least
    the test set's binomial spread), from the test set's binomial sd for n = 1. Given both
    without and with a declared one-sided ``allowance`` (points that a known deviation,
    e.g. JPEG images, may cost: it raises the upper end only)."""
    x = _values(values, "one_more_run")
    lo, hi, method = prediction_interval(x, confidence, n_test)
    _, hi_allowed, _ = prediction_interval(x, confidence, n_test, allowance)
    return {
        "n": len(x),
        "mean": float(x.mean()),
        "low": lo,
        "high": hi,
        "high_with_allowance": hi_allowed,
        "allowance": float(allowance),
        "seed_spread": len(x) >= 2,
        "method": method,
    }


def _values(values, what: str) -> np.ndarray:
    x = np.asarray(values, dtype=float).ravel()
    if len(x) == 0 or not np.isfinite(x).all():
        raise UserError(f"{what}: needs at least one finite accuracy, got {list(x)}")
    return x


# ---- a variant's effect -------------------------------------------------------------


@dataclass(frozen=True)
class Effect:
    """Variant minus reference (points), with its interval and how it was made."""

    metric: str
    difference: float
    low: float
    high: float
    p_value: float
    df: float
    n_variant: int
    n_reference: int
    from_seeds: bool  # False: the interval covers test-set noise only (n = 1 on both arms)
    method: str

    @property
    def significant(self) -> bool:
        return not (self.low <= 0.0 <= self.high)


def welch_difference(
    variant, reference, confidence: float, floor_var: tuple[float, float], metric: str = ""
) -> Effect:
    """Difference of means (variant - reference) with a two-sided Welch interval over
    seeds. Each arm's variance is at least ``floor_var`` (its scoring noise: a finite
    test set, as ``stats.welch_floored``). An arm with one run has no spread of its own:
    against an arm with seeds it borrows that arm's variance (assumed: the same seed
    spread, as a prediction interval does); with one run on both arms only the floors
    are left, and the interval, normal-based, covers scoring noise and not seeds."""
    if min(floor_var) <= 0:
        raise UserError(f"welch_difference: the variance floors must be positive, got {floor_var}")
    a, b = _values(variant, "variant"), _values(reference, "reference")
    na, nb = len(a), len(b)
    va, vb = _spreads(a, b, floor_var)
    se2 = va / na + vb / nb
    diff = float(a.mean() - b.mean())
    df = _df(va, na, vb, nb)
    if na >= 2 and nb >= 2:
        method = f"Welch over seeds ({na} vs {nb} runs, {df:.1f} df)"
    elif na >= 2 or nb >= 2:
        method = (
            f"one run against {max(na, nb)} seeds: the single run's spread taken equal to the"
            f" seeded arm's (t, {df:g} df)"
        )
    else:
        method = (
            "one run per arm: no seed spread can be estimated; the interval covers test-set"
            " noise only and is too narrow by the unknown seed spread"
        )
    return _effect(metric, diff, se2, df, confidence, na, nb, na >= 2 or nb >= 2, method)


def _spreads(a: np.ndarray, b: np.ndarray, floor_var) -> tuple[float, float]:
    """Each arm's per-run variance: its seed spread, or for a single run the other arm's
    (nothing when both are single runs), at least its floor."""
    sa = a.var(ddof=1) if len(a) >= 2 else None
    sb = b.var(ddof=1) if len(b) >= 2 else None
    sa = sa if sa is not None else (sb if sb is not None else 0.0)
    sb = sb if sb is not None else sa
    return max(float(sa), floor_var[0]), max(float(sb), floor_var[1])


def _df(va, na: int, vb, nb: int):
    """Welch-Satterthwaite with seeds on both arms; n - 1 of the seeded arm when the other
    is a single run (its spread is borrowed); infinite (normal) with none. ``va`` and
    ``vb`` may be arrays (``power`` takes it over a grid of sample variances)."""
    if na >= 2 and nb >= 2:
        se2 = va / na + vb / nb
        return se2**2 / ((va / na) ** 2 / (na - 1) + (vb / nb) ** 2 / (nb - 1))
    if na >= 2 or nb >= 2:
        return float(max(na, nb) - 1)
    return math.inf


def _effect(metric, diff, se2, df, confidence, na, nb, from_seeds, method) -> Effect:
    se = math.sqrt(se2)  # > 0: every arm's variance is at least its positive floor
    dist = sps.norm if math.isinf(df) else sps.t(df)
    q = float(dist.ppf((1 + confidence) / 2))
    p = float(2 * dist.sf(abs(diff) / se))
    return Effect(metric, diff, diff - q * se, diff + q * se, p, df, na, nb, from_seeds, method)


METRICS = ("final_test_acc", "final_train_acc", "gap")


def resolution(n_variant: int, n_reference: int, confidence: float, var: float) -> float:
    """Half-width (points) of the interval ``welch_difference`` gives a design of
    ``n_variant`` against ``n_reference`` runs whose per-run variance is ``var`` on both
    arms: the smallest effect whose interval can exclude zero. With ``var`` the scoring
    floor it is a lower bound (seeds that spread more widen it); NaN for an empty arm."""
    if n_variant < 1 or n_reference < 1:
        return math.nan
    if var <= 0 or not math.isfinite(var):
        raise UserError(f"resolution: the per-run variance must be positive, got {var}")
    e = welch_difference(
        [0.0] * n_variant, [0.0] * n_reference, confidence, (var, var), "resolution"
    )
    return e.high


POWER_GRID = 200  # equal-probability points per sample variance in ``power``


def power(
    effect: float, n_variant: int, n_reference: int, confidence: float, var: float,
    floor_var: float,
) -> float:  # fmt: skip
    """Probability that ``welch_difference``'s interval excludes zero when the true effect
    is ``effect``, both arms normal with per-run variance ``var`` and floored at
    ``floor_var`` as the report floors them. Integrated, not simulated: the difference is
    independent of the sample variances, whose chi-square laws are taken at
    ``POWER_GRID`` equal-probability points each."""
    crit, sd = _criticals(n_variant, n_reference, confidence, var, floor_var)
    return _power(effect, crit, sd)


def _criticals(na: int, nb: int, confidence: float, var: float, floor_var: float):
    """The interval's half-widths over the sample variances' grid (they do not depend on
    the effect), and the true sd of the difference of means."""
    q = (1 + confidence) / 2
    u = (np.arange(POWER_GRID) + 0.5) / POWER_GRID

    def sample_var(n: int) -> np.ndarray:
        return var * sps.chi2.ppf(u, n - 1) / (n - 1)

    if na >= 2 and nb >= 2:
        va = np.maximum(sample_var(na), floor_var)[:, None] + np.zeros(POWER_GRID)
        vb = np.maximum(sample_var(nb), floor_var)[None, :] + np.zeros((POWER_GRID, 1))
    elif na >= 2 or nb >= 2:  # the single run borrows the seeded arm's spread
        va = vb = np.maximum(sample_var(max(na, nb)), floor_var)
    else:  # no spread to estimate: the floors alone
        va = vb = np.array([floor_var])
    # welch_difference's degrees of freedom, elementwise (t with infinite df is normal)
    quantile = sps.t.ppf(q, _df(va, na, vb, nb))
    return (quantile * np.sqrt(va / na + vb / nb)).ravel(), math.sqrt(var / na + var / nb)


def _power(effect: float, crit: np.ndarray, sd: float) -> float:
    return float(np.mean(sps.norm.sf((crit - effect) / sd) + sps.norm.cdf((-crit - effect) / sd)))


def detectable(
    n_variant: int, n_reference: int, confidence: float, var: float, floor_var: float,
    target: float = 0.8,
) -> float:  # fmt: skip
    """The effect (points) that a design of ``n_variant`` against ``n_reference`` runs
    finds (its interval excludes zero) with probability ``target`` (``power``). An effect
    of ``resolution``'s size is found only about half the time (a third to three fifths,
    by the design and the spread); NaN for an empty arm."""
    if n_variant < 1 or n_reference < 1:
        return math.nan
    if min(var, floor_var) <= 0 or not math.isfinite(var) or not 0 < target < 1:
        raise UserError(f"detectable: needs positive variances and 0 < power < 1, got {var}")
    crit, sd = _criticals(n_variant, n_reference, confidence, var, floor_var)
    hi = float(crit.max()) + 10 * sd  # where the power is 1 to rounding
    return float(brentq(lambda d: _power(d, crit, sd) - target, 0.0, hi, xtol=1e-6))


def variant_effects(variant: dict, reference: dict, confidence: float) -> list[Effect]:
    """A variant's effect on final test accuracy, train accuracy and the train-test gap.

    ``variant`` and ``reference``: dicts of per-seed lists ``final_test_acc``,
    ``final_train_acc`` (percent) and the sizes ``n_test``, ``n_train`` (images scored).
    The floors are the binomial variances of scoring on those sets; the gap's floor is
    the sum of both (train and test scored on different images)."""
    out = []
    for metric in METRICS:
        arms = []
        for arm in (variant, reference):
            test = np.asarray(arm["final_test_acc"], float)
            train = np.asarray(arm["final_train_acc"], float)
            if len(test) != len(train):
                raise UserError(
                    "variant_effects: final_test_acc and final_train_acc differ in length"
                )
            f_test = scoring_var(test.mean(), int(arm["n_test"]))
            f_train = scoring_var(train.mean(), int(arm["n_train"]))
            values, floor = {
                "final_test_acc": (test, f_test),
                "final_train_acc": (train, f_train),
                "gap": (train - test, f_test + f_train),
            }[metric]
            arms.append((values, floor))
        floors = (arms[0][1], arms[1][1])
        out.append(welch_difference(arms[0][0], arms[1][0], confidence, floors, metric))
    return out


def scoring_var(accuracy_pct: float, n_images: int) -> float:
    """Binomial variance (points squared) of one run's accuracy scored on ``n_images``;
    the accuracy is kept half an image inside 0-100 % so that a perfect score still
    carries the noise of a finite set."""
    if n_images < 1:
        raise UserError(f"scoring_var: needs at least one scored image, got {n_images}")
    half = 50.0 / n_images
    return binomial_sd(min(max(accuracy_pct, half), 100.0 - half), n_images) ** 2


# ---- the share of the paper gap -----------------------------------------------------


def share_of_gap(
    variant, reference, paper: float, n_test: int, confidence: float, paper_noise: bool = True
) -> dict:
    """The share of the paper gap (paper - reference mean) that the variant's effect
    (variant mean - reference mean) would explain, with a Fieller interval for the ratio.

    Both parts share the reference mean, so they are correlated (covariance: its
    variance). The paper's figure is one run: with ``paper_noise`` it is taken to vary
    from seed to seed as our reference does. When the gap itself is within noise the
    interval is unbounded (low = -inf, high = inf): no share can be stated."""
    a, b = _values(variant, "variant"), _values(reference, "reference")
    va, vb = _spreads(a, b, (scoring_var(a.mean(), n_test), scoring_var(b.mean(), n_test)))
    df = _df(va, len(a), vb, len(b))
    var_ref_mean = vb / len(b)
    num, den = float(a.mean() - b.mean()), float(paper - b.mean())
    v_num = va / len(a) + var_ref_mean
    v_den = var_ref_mean + (vb if paper_noise else 0.0)
    dist = sps.norm if math.isinf(df) else sps.t(df)
    q2 = float(dist.ppf((1 + confidence) / 2)) ** 2
    # (num - R den)^2 <= q2 (v_num - 2 R cov + R^2 v_den), a quadratic in R
    a2 = den**2 - q2 * v_den
    a1 = num * den - q2 * var_ref_mean
    a0 = num**2 - q2 * v_num
    share = num / den if den else math.nan
    method = "Fieller interval of effect / gap" + (
        ", the paper's single run varying as ours" if paper_noise else ""
    )
    if a2 <= 0:
        return {
            "share": share,
            "low": -math.inf,
            "high": math.inf,
            "bounded": False,
            "gap": den,
            "effect": num,
            "method": method + "; the gap is within noise",
        }
    root = math.sqrt(max(a1**2 - a2 * a0, 0.0))
    return {
        "share": share,
        "low": (a1 - root) / a2,
        "high": (a1 + root) / a2,
        "bounded": True,
        "gap": den,
        "effect": num,
        "method": method,
    }


# ---- the learning-rate ranking ------------------------------------------------------

HOLDS, FAILS, INCONCLUSIVE = "holds", "does not hold", "inconclusive"


def rank_rates(groups: dict, expected: list, n_test: int, alpha: float) -> dict:
    """Is ``expected`` (best first) the order of the groups' final accuracies over seeds?

    Every pair by Welch's test over seeds, Holm-adjusted (``stats.pairwise``). Holds when
    every pair is decided in the expected direction, does not hold when any pair is
    decided against it, otherwise inconclusive. With fewer than two seeds in a group no
    ranking is claimed: one run per rate says whether two runs differ, not which rate is
    better."""
    out = _over_seeds(groups, expected, n_test, alpha)
    if out["verdict"]:
        return out
    rank = {g: i for i, g in enumerate(expected)}
    rows = out["pairs"]
    return _decided(out, rows, lambda r: rank[r["better"]] > rank[_other(r)])


def best_of(groups: dict, best: str, n_test: int, alpha: float) -> dict:
    """Does ``best`` beat every other group over seeds (the seed's "lr 0.01 gives the
    best accuracy")? The same tests as ``rank_rates`` (Welch over seeds, Holm across all
    pairs); only the pairs with ``best`` decide: holds when it wins each, does not hold
    when another group beats it, otherwise inconclusive (equal means included)."""
    out = _over_seeds(groups, [best, *(g for g in groups if g != best)], n_test, alpha)
    if out["verdict"]:
        return out
    rows = [r for r in out["pairs"] if best in (r["a"], r["b"])]
    return _decided(out, rows, lambda r: r["better"] != best)


def _over_seeds(groups: dict, expected: list, n_test: int, alpha: float) -> dict:
    """Means, the found order and every pair's test; ``verdict`` set (inconclusive) when
    a group has fewer than two seeds, else empty for the caller to decide."""
    missing = [g for g in expected if g not in groups]
    if missing:
        raise UserError(f"rank_rates: no runs for {missing}; train them or drop them from expected")
    groups = {g: list(np.asarray(groups[g], float)) for g in expected}
    means = {g: float(np.mean(v)) for g, v in groups.items()}
    found = sorted(means, key=lambda g: -means[g])
    out = {"verdict": "", "order": found, "means": means, "pairs": [], "why": ""}
    few = [g for g, v in groups.items() if len(v) < 2]
    if few:
        why = f"fewer than 2 seeds for {', '.join(few)}: no ranking over seeds"
        return {**out, "verdict": INCONCLUSIVE, "why": why}
    return {**out, "pairs": pairwise(groups, n_test, alpha)}


def _decided(out: dict, rows: list[dict], is_against) -> dict:
    """The verdict of ``rows`` (the deciding pairs): any pair decided against the claim
    fails it, any undecided one leaves it inconclusive, else it holds."""
    against = [r for r in rows if r["better"] and is_against(r)]
    undecided = [r for r in rows if not r["better"]]
    if against:
        verdict, why = FAILS, ", ".join(f"{r['better']} beats {_other(r)}" for r in against)
    elif undecided:
        verdict = INCONCLUSIVE
        why = "not decided: " + ", ".join(f"{r['a']} vs {r['b']}" for r in undecided)
    else:
        verdict, why = HOLDS, "every pair decided in the claimed order"
    return {**out, "verdict": verdict, "why": why}


def _other(row: dict) -> str:
    return row["b"] if row["better"] == row["a"] else row["a"]


# ---- JPEG: accuracy against distortion, extrapolated to lossless images --------------

EXTRAPOLATION = "extrapolation"


def lossless_distortion(added_mse, q75_mse: float, additivity=1.0) -> np.ndarray:
    """Each run's distortion against lossless images (MSE): what q75 cost plus what its
    re-encode added (0 for the q75 data), times the measured ``additivity`` (total /
    sum on lossless tiles, per run; 1 when the two errors simply add)."""
    added = np.asarray(added_mse, float)
    return np.asarray(additivity, float) * (q75_mse + added)


def jpeg_extrapolation(distortion_low, distortion_high, accuracy, n_test, confidence) -> dict:
    """Accuracy on lossless images, extrapolated from runs on the q75 data and its
    re-encodes: a straight line of final test accuracy against the distortion each run's
    images carry against lossless ones (MSE), fitted by least squares over runs (seeds
    are separate points) and read at zero distortion.

    The distortions are known within bounds (q75's own cost is measured on natural
    images, not on CIFAR-10): ``distortion_low`` and ``distortion_high`` are each run's
    at both ends. The estimate is the line at zero under each; the interval spans the
    fits' confidence intervals of the mean at zero under both (residual variance at
    least the test set's binomial variance)."""
    y = _values(accuracy, "accuracy")
    ends = [
        _fit_at_zero(_values(x, "distortion"), y, n_test, confidence)
        for x in (distortion_low, distortion_high)
    ]
    lo_x, hi_x = np.asarray(distortion_low, float), np.asarray(distortion_high, float)
    nearest = float(min(lo_x.min(), hi_x.min()))
    return {
        "label": EXTRAPOLATION,
        "slope": (ends[0]["slope"], ends[1]["slope"]),  # points per unit of MSE
        "slope_low": min(e["slope_low"] for e in ends),
        "slope_high": max(e["slope_high"] for e in ends),
        "lossless": (ends[0]["mean"], ends[1]["mean"]),
        "low": min(e["low"] for e in ends),
        "high": max(e["high"] for e in ends),
        # lossless minus the line at the q75 data (the runs with the least distortion)
        "gain": (ends[0]["gain"], ends[1]["gain"]),
        "gain_low": min(e["gain_low"] for e in ends),
        "gain_high": max(e["gain_high"] for e in ends),
        "assumption": _assumption(nearest, float(max(lo_x.max(), hi_x.max()))),
    }


def _fit_at_zero(x: np.ndarray, y: np.ndarray, n_test: int, confidence: float) -> dict:
    if len(x) != len(y) or len(x) < 3 or len(set(x.tolist())) < 2:
        raise UserError(
            "jpeg_extrapolation: needs one distortion per run, at least 3 runs and at least 2"
            f" distortion levels (got {len(x)} distortions, {len(y)} accuracies)"
        )
    if x.min() < 0:
        raise UserError(f"jpeg_extrapolation: distortions are MSEs, >= 0; got {x.min()}")
    fit = sps.linregress(x, y)
    resid = y - (fit.intercept + fit.slope * x)
    s2 = max(float(resid @ resid) / (len(x) - 2), scoring_var(float(y.mean()), n_test))
    q = float(sps.t.ppf((1 + confidence) / 2, len(x) - 2))
    sxx = float(((x - x.mean()) ** 2).sum())
    half = q * math.sqrt(s2 * (1 / len(x) + x.mean() ** 2 / sxx))
    slope_half = q * math.sqrt(s2 / sxx)
    q75 = float(x.min())  # the line from zero to there is -slope * q75 points
    return {
        "gain": float(-fit.slope * q75),
        "gain_low": float(-(fit.slope + slope_half) * q75),
        "gain_high": float(-(fit.slope - slope_half) * q75),
        "mean": float(fit.intercept),
        "low": float(fit.intercept - half),
        "high": float(fit.intercept + half),
        "slope": float(fit.slope),
        "slope_low": float(fit.slope - slope_half),
        "slope_high": float(fit.slope + slope_half),
    }


def _assumption(nearest: float, farthest: float) -> str:
    return (
        "Extrapolation: final test accuracy is assumed to fall linearly with the mean squared"
        " error (0-255 scale) between the images trained and tested on and lossless ones,"
        f" from zero to {farthest:.0f}; the measured runs lie at {nearest:.0f} and beyond, so"
        " the lossless point lies outside them. Each run's error against lossless images is"
        " q75's own (measured on lossless natural photographs cut into 32x32 tiles, not on"
        " CIFAR-10) plus what its re-encode added, as the tiles showed they combine."
    )
