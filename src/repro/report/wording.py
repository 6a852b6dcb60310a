"""Sentences whose truth depends on how many seeds a study has: one run, two runs or
three and more. Every sentence and caption that speaks of seeds takes its words from here,
so that one seed never reads as a mean, a standard deviation or a confidence interval.
"""

from __future__ import annotations


def over_seeds(n: int) -> str:
    """What a number of the reference group is: "one run (seed 0)" / "mean of 2 seeds"."""
    return "one run" if n == 1 else f"mean of {n} seeds"


def phrases(n: int) -> dict[str, str]:
    """The report's seed-dependent phrases for a study whose groups have ``n`` runs each
    (the smallest group's n where they differ)."""
    if n == 1:
        return {
            # one item of the introduction's list: its aside in brackets keeps the list whole
            "repeats": "trains each setup once, as the seed did (one seed: no seed-to-seed"
            " spread can be measured, and intervals cover the noise of the test images only)",
            "table4": "one run per learning rate (no standard deviation: one seed)",
            "band": "One run per learning rate (one seed): no band.",
            "spread": "With one run there is no seed spread; the intervals are binomial ones"
            " on the test images, which understate run-to-run noise.",
        }
    spread = (
        "two seeds give a spread, but a very uncertain one (1 degree of freedom)"
        if n == 2
        else f"{n} seeds give the spread"
    )
    return {
        "repeats": f"repeats each setup over {n} seeds, puts confidence intervals on the"
        " accuracies",
        "table4": f"mean ± standard deviation over {n} seeds",
        "band": f"Mean over {n} seeds (line) and ±1 standard deviation (band).",
        "spread": f"The intervals use the seed spread: {spread}.",
    }
