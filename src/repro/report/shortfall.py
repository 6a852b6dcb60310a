"""Page 1's "Why it falls short": one row per candidate cause, with the
measured effect of its variant against the reference setup, the interval, the share of
the paper gap it would explain and a status, as plain dicts that a template renders.

Statuses: tested (runs of the variant and of the reference exist at the rate), not yet
run (either is missing), cannot be tested here (e.g. lossless images: no copy can be had
on our machines; an extrapolation may stand in, labelled as one).
"""

from __future__ import annotations

import math

import pandas as pd

from ..errors import UserError
from ..text import joined
from .effects import detectable, resolution, scoring_var, share_of_gap, variant_effects
from .stats import holm

TESTED, NOT_YET_RUN, CANNOT = "tested", "not yet run", "cannot be tested here"
REPORTED = "reported elsewhere, not measured here"  # a prior range, drawn apart
DECLARED = "declared in the config, not measured here"
POWER, POWER_WORDS = 0.8, "4 times in 5"  # a planned design's effect: the one it finds so often
NEEDED = ("variant", "lr", "final_test_acc", "final_train_acc", "n_test", "n_train")


def shortfall_rows(
    runs: pd.DataFrame,
    variants: list[dict],
    lr: str,
    paper: float,
    confidence: float,
    reference: str = "paper",
    untestable: tuple = (),
) -> list[dict]:
    """The rows, in the order of ``variants`` then ``untestable``.

    ``runs``: one row per run with a ``variant`` column (the study frame); ``variants``:
    dicts with ``name``, ``reason`` and optionally ``against`` (the config's variants, the
    reference excluded; ``against``: the variant the effect is measured against, by
    default ``reference``);
    ``untestable``: dicts with ``name``, ``reason`` and optionally ``extrapolation`` (what
    ``effects.jpeg_extrapolation`` returned) and ``prior`` (a deviations.Cost: the range
    reported elsewhere, shown as such until the extrapolation replaces it). Effects are at
    learning rate ``lr`` against
    the runs of each row's ``against``; the gap (and a row's share of it) is ``paper`` minus
    the mean of those runs."""
    missing = [c for c in NEEDED if c not in runs.columns]
    if missing:
        raise UserError(
            f"shortfall_rows: the study frame lacks {', '.join(missing)}; load runs that record"
            " their variant"
        )
    at_lr = runs[runs["lr"] == lr]
    rows = []
    for v in variants:
        if v["name"] == reference:
            continue
        base = v.get("against") or reference
        sel, ref = at_lr[at_lr["variant"] == v["name"]], at_lr[at_lr["variant"] == base]
        rows.append({**_tested_row(v, sel, ref, paper, confidence), "against": base})
    # several causes tested at once: an interval excluding zero by chance becomes likely,
    # so each tested effect's p value is also given Holm-adjusted across them
    tested = [r for r in rows if r["status"] == TESTED]
    for r, adjusted in zip(tested, holm([r["p"] for r in tested]), strict=True):
        r["p_holm"] = adjusted
    rows += [{**_untestable_row(u), "against": reference} for u in untestable]
    return rows


def _blank(name: str, reason: str, status: str) -> dict:
    nan = math.nan
    return {
        "cause": name,
        "reason": reason,
        "status": status,
        "effect": nan,
        "low": nan,
        "high": nan,
        "share": nan,
        "share_low": nan,
        "share_high": nan,
        "n_variant": 0,
        "n_reference": 0,
        "train_effect": nan,
        "gap_effect": nan,
        "method": "",
        "note": "",
        "machines": "",  # where the arms trained on other machines: which (also in note)
        "p": nan,  # the test-accuracy effect's two-sided p value
        "p_holm": nan,  # that p, Holm-adjusted across the tested causes
        "resolution": nan,
        "detectable": nan,  # the effect the planned design finds with probability POWER
        "planned_variant": 0,
        "planned_reference": 0,
        # a range reported elsewhere for this cause (an untestable one's prior), until a
        # measurement replaces it
        "prior_low": nan,
        "prior_high": nan,
    }


def _tested_row(variant: dict, sel: pd.DataFrame, ref: pd.DataFrame, paper, confidence) -> dict:
    row = _blank(variant["name"], variant.get("reason", ""), NOT_YET_RUN)
    row.update(n_variant=len(sel), n_reference=len(ref))
    planned = variant.get("planned")
    if planned and not ref.empty:
        row.update(planned_variant=planned[0], planned_reference=planned[1])
        var, floor = _design_var(ref)
        row["resolution"] = resolution(*planned, confidence, var)
        row["detectable"] = detectable(*planned, confidence, var, floor, POWER)
    if sel.empty or ref.empty:
        return row
    test, train, gap = variant_effects(_arm(sel), _arm(ref), confidence)
    share = share_of_gap(
        sel.final_test_acc, ref.final_test_acc, paper, int(ref.n_test.iloc[0]), confidence
    )
    row.update(
        status=TESTED,
        effect=test.difference,
        low=test.low,
        high=test.high,
        p=test.p_value,
        share=share["share"],
        share_low=share["low"],
        share_high=share["high"],
        train_effect=train.difference,
        gap_effect=gap.difference,
        method=f"{test.method}; share: {share['method']}",
        machines=_machines_note(variant["name"], sel, ref),
    )
    # said where the number is shown: one run per arm has no seed spread, and its interval
    # is too narrow by it; arms trained on other GPUs differ in that too
    few = "" if min(len(sel), len(ref)) >= 2 else _few_note(len(sel), len(ref))
    row["note"] = "; ".join(n for n in (few, row["machines"]) if n)
    return row


def _machines_note(name: str, sel: pd.DataFrame, ref: pd.DataFrame) -> str:
    """Where the variant's runs and its baseline's ran on different GPUs (or CPUs), the
    effect also holds the hardware's: said on the row, naming both."""
    if "device_name" not in sel.columns or "device_name" not in ref.columns:
        return ""
    if set(sel.device_name.astype(str)) == set(ref.device_name.astype(str)):
        return ""
    return f"{name} trained on {joined(sel.device_name)}, its baseline on {joined(ref.device_name)}"


def _design_var(ref: pd.DataFrame) -> tuple[float, float]:
    """Per-run variance (points squared) of final test accuracy that a planned design is
    judged with: the baseline's seed spread where it has seeds, at least the scoring
    floor of its test set (with one run, the floor alone: a lower bound); and that floor."""
    acc = ref.final_test_acc.to_numpy(float)
    floor = scoring_var(float(acc.mean()), int(ref.n_test.iloc[0]))
    return (max(float(acc.var(ddof=1)), floor) if len(acc) >= 2 else floor), floor


def _few_note(n_variant: int, n_reference: int) -> str:
    if n_variant >= 2 or n_reference >= 2:
        return "one arm a single run: its seed spread is borrowed from the other"
    return "one run each: the interval covers test-set noise only, not the seed spread"


def _arm(sel: pd.DataFrame) -> dict:
    return {
        "final_test_acc": sel.final_test_acc.to_numpy(float),
        "final_train_acc": sel.final_train_acc.to_numpy(float),
        "n_test": int(sel.n_test.iloc[0]),
        "n_train": int(sel.n_train.iloc[0]),
    }


def _untestable_row(item: dict) -> dict:
    row = _blank(item["name"], item.get("reason", ""), CANNOT)
    ex, prior = item.get("extrapolation"), item.get("prior")
    if ex:
        effect = float(sum(ex["gain"]) / 2)
        row.update(
            effect=effect,
            low=ex["gain_low"],
            high=ex["gain_high"],
            method=f"{ex['label']}, not a measured effect: lossless minus q75 data, the middle"
            f" of {ex['gain'][0]:.2f}-{ex['gain'][1]:.2f} over the bound on q75's own"
            f" distortion; {ex['assumption']}",
        )
        if prior:
            row["note"] = against_prior(effect, ex["gain_low"], ex["gain_high"], prior)
    elif prior:
        said = REPORTED if prior.word == "reported" else DECLARED
        # the range itself is in the row's interval cell
        row.update(prior_low=prior.low, prior_high=prior.high, note=said)
    return row


def against_prior(effect: float, low: float, high: float, prior) -> str:
    """Where an extrapolated effect lies against the range reported elsewhere: its
    estimate inside, below or above it, and whether its interval overlaps it."""
    side = prior.side(effect)
    overlap = low <= prior.high and high >= prior.low
    tail = "" if side == "inside" else f"; its interval {'overlaps' if overlap else 'misses'} it"
    return (
        f"the extrapolation's {effect:+.2f} lies {side} the {prior.word} range of"
        f" {prior.text()} points{tail}"
    )
