"""Seed-dependent wording: one run never reads as a mean, a standard deviation or an
interval over seeds; two seeds say how uncertain their spread is."""

import pytest

from repro.wording import over_seeds, phrases

FALSE_FOR_ONE = ("mean", "standard deviation", "±", "seeds", "confidence interval")


def test_one_run_is_never_called_a_mean_or_given_a_spread():
    text = " ".join(phrases(1).values()) + " " + over_seeds(1)
    for word in FALSE_FOR_ONE:
        assert word not in text.replace("no standard deviation", ""), word
    assert over_seeds(1) == "one run"


@pytest.mark.parametrize("n", [2, 3, 5])
def test_several_seeds_give_mean_and_spread_with_their_count(n):
    p = phrases(n)
    assert f"over {n} seeds" in p["table4"] and "±" in p["table4"]
    assert f"Mean over {n} seeds" in p["band"]
    assert over_seeds(n) == f"mean of {n} seeds"
    assert ("1 degree of freedom" in p["spread"]) == (n == 2)
