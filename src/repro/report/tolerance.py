"""The one source of every claim's tolerance: the noise of one run's final test accuracy.

With two or more seeds it is their spread (the sample sd, never below the test-set
binomial sd); with one seed, the test-set binomial alone. Its half-width is that of the
prediction interval for one more run (Table 4): t(n-1) * s * sqrt(1 + 1/n), or
z * s * sqrt(2) for one run (s known: the binomial sd; sqrt(2): the paper's run and ours
each carry it). Each kind of claim scales it by a stated factor:

- an accuracy on the whole test set: x 1;
- a softmax cross-entropy loss: x 0.01, since near the floor L = log(e + 9) - accuracy,
  so one accuracy point is 0.01 of loss (stats.softmax_ce_expected);
- a difference of two accuracies (the train-test gap): x sqrt(2);
- the accuracy of one class (a tenth of the test images): x sqrt(10);
- a class pair's confusions in percent of its images (a fifth of them): x sqrt(5).

Ranking two classes (or pairs) of our own model against each other uses the same
half-width: at one run it is z * s * sqrt(2) already, the noise of a difference of two.

To it is added the precision the seed printed its number with (half its last digit). On
the side our deviations explain (ours worse), the smallest cost of our images at which
the seed's number would enter that range is its break-even cost; the verdict compares it
with the range our images may cost (deviations.py) and says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .stats import one_more_run_noise

ACCURACY, LOSS, DIFFERENCE, PER_CLASS = 1.0, 0.01, math.sqrt(2), math.sqrt(10)
PER_PAIR = math.sqrt(5)  # a class pair's confusions: a fifth of the test images


@dataclass(frozen=True)
class Noise:
    """One run's final test accuracy noise (points) and the allowance (points): the top
    of the range our deviations may cost (deviations.Cost), with its label ("JPEG")."""

    n: int
    sd: float
    half_width: float
    source: str
    allowance: float = 0.0
    allowance_label: str = ""

    def describe(self) -> str:
        return f"+-{self.half_width:.2f} points ({self.source})"


def noise_of(values, n_test: int, confidence: float, allowance=0.0, label="") -> Noise:
    """The noise of one more run of a group whose final test accuracies (percent) are
    ``values``, at ``confidence``."""
    x = np.asarray(values, dtype=float)
    sd, half = one_more_run_noise(x, confidence, n_test)
    if len(x) >= 2:
        source = f"seed spread of {len(x)} runs, at least the test-set binomial"
    else:
        source = f"one run: the binomial noise of {n_test:,} test images"
    return Noise(len(x), sd, half, source, allowance, label)


@dataclass(frozen=True)
class Agreement:
    """Ours against the paper's number: the range ours allows for the paper (without and
    with the allowance, the top of the cost range) and whether the paper's number is
    inside; ``break_even``: the smallest cost (points of accuracy) of our images at which
    it would be (0 when it is without; inf when no cost can bring it in: it lies on the
    side a worse result of ours does not explain)."""

    low: float
    high: float
    low_allowed: float
    high_allowed: float
    bare: bool  # inside without the allowance
    allowed: bool  # inside with it
    break_even: float = 0.0

    def text(self, digits: int) -> str:
        """The range without any cost of our images: what a cost would need, the verdict
        says (its break-even)."""
        return f"[{self.low:.{digits}f}, {self.high:.{digits}f}]"


def agree(
    ours: float,
    paper: float,
    noise: Noise,
    scale: float,
    precision: float,
    allow: float = 0.0,
    limits: tuple[float, float] = (-math.inf, math.inf),
) -> Agreement:
    """Whether ``paper`` lies within ours +- (noise x ``scale`` + the seed's printed
    ``precision``). The allowance, in this claim's unit (``allow`` per accuracy point:
    +1 for an accuracy, -0.01 for a softmax loss, 0 where it explains nothing), widens
    only the side a worse result of ours explains: above ours for an accuracy, below it
    for a loss. ``limits``: what the quantity can be (an accuracy 0-100 %); the range
    is cut to them (seen: a smoke run at 10 % with two seeds printed -23 %)."""
    half = noise.half_width * scale + precision
    lo, hi = max(ours - half, limits[0]), min(ours + half, limits[1])
    extra = noise.allowance * allow
    lo_a, hi_a = (lo, hi + extra) if extra >= 0 else (lo + extra, hi)
    lo_a, hi_a = max(lo_a, limits[0]), min(hi_a, limits[1])
    cost = break_even(paper, lo, hi, allow)
    # inside with the allowance exactly when its break-even is covered (one comparison,
    # so that a number planted at the break-even is not lost to rounding)
    allowed = cost <= 0 or (noise.allowance > 0 and cost <= noise.allowance)
    return Agreement(lo, hi, lo_a, hi_a, lo <= paper <= hi, allowed, cost)


def break_even(paper: float, low: float, high: float, allow: float) -> float:
    """The smallest cost c (points of accuracy) of our images at which ``paper`` lies in
    [low, high] widened by c x ``allow`` on the side a worse result of ours explains
    (``allow`` per accuracy point: +1 raises the upper end, -0.01 lowers a loss's lower
    end); 0 when it lies inside already, inf when no cost can bring it in."""
    if low <= paper <= high:
        return 0.0
    if allow > 0 and paper > high:
        return (paper - high) / allow
    if allow < 0 and paper < low:
        return (low - paper) / -allow
    return math.inf


def break_even_of(*agreements: Agreement) -> float:
    """The cost at which every one of several comparisons holds (the largest)."""
    return max(a.break_even for a in agreements)


def printed_precision(text: str) -> float:
    """Half a unit of the last digit of a number as the seed printed it: "89.55" -> 0.005,
    "94" -> 0.5."""
    decimals = len(text.split(".")[1]) if "." in text else 0
    return 0.5 * 10.0**-decimals
