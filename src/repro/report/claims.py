"""The seed's findings as checkable claims: each gets what the paper says, what we
measured, a verdict and the rule that decided it. Verdicts: holds / does not hold /
inconclusive (a comparison the data cannot settle: not significant is not "does not
hold") / not measurable with this config.

Every claim goes through one verdict function: a claim about the end of a 150-epoch run
on the full data set with the paper's model is only decided when the config trains that
setup; otherwise the measured value is still shown, and the verdict says it is not
measurable with this config.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as sps

from ..plan import paper
from . import effects
from .deviations import OFFLINE_JPEG_Q75_SHA256, Cost, allowance_label
from .stats import MCNEMAR, Z_TEST, binomial_sd
from .study import where
from .tolerance import (
    ACCURACY,
    DIFFERENCE,
    LOSS,
    PER_CLASS,
    PER_PAIR,
    Noise,
    agree,
    break_even_of,
    noise_of,
    printed_precision,
)
from .wording import over_seeds

HOLDS, FAILS, NOT_MEASURABLE = "holds", "does not hold", "not measurable with this config"
INCONCLUSIVE = "inconclusive"
VERDICTS = (HOLDS, FAILS, INCONCLUSIVE, NOT_MEASURABLE)
COLUMNS = ["key", "claim", "paper", "measured", "verdict", "rule", "short", "break_even"]

__all__ = ["OFFLINE_JPEG_Q75_SHA256", "check_all", "kind"]

# Detection rules: each threshold is varied over a reasonable range; a verdict that moves
# inside it is inconclusive (quoted in the rule column).
GAP_THRESHOLDS = (1.0, 2.0, 3.0, 4.0)  # points train above test, below the ~5 final gap ...
GAP_RUN = 3  # ... for this many consecutive epochs
GAP_EPOCH, GAP_WINDOW = paper.GAP_EPOCH, 15  # "around epoch 30": 15-45
PLATEAU_SMOOTH = 5  # centred moving average over epochs
PLATEAU_RELS = (0.01, 0.02, 0.05, 0.10)  # later improvement below this share of the total
PLATEAU_EPOCH, PLATEAU_WINDOW = paper.PLATEAU_EPOCH, 25  # "after about epoch 50": 25-75
SLOW_AFTER = paper.SLOW_AFTER
SLOW_RATIOS = (0.3, 0.5, 0.7, 1.0)  # decrease per epoch after 100 below this x before
STEADY_FROM = paper.GAP_EPOCH  # epoch-to-epoch fluctuation compared from here on
# The seed's "about" figures, with the precision it rounded them to: "around 40 % ...
# around 50 %" to tens; "about 94 %" train and "about 89 %" test to units.
EPOCH1_TRAIN, EPOCH1_TEST = paper.ACCURACY["train"][0], paper.ACCURACY["test"][0]
EPOCH1_PRECISION = 5.0
FINAL_GAP = paper.ACCURACY["train"][1] - paper.ACCURACY["test"][1]
FINAL_GAP_PRECISION = 2 * 0.5
CAT_DOG_RANGE = paper.CAT_DOG_RANGE
PERCENT = (0.0, 100.0)  # what an accuracy can be


def kind(verdict: str) -> str:
    """The three-valued verdict behind a cell: "holds if our JPEG images cost at least ..."
    is a "holds" that says what it rests on; "does not hold even at the top of ..." a
    "does not hold"."""
    for v in (HOLDS, FAILS):
        if verdict.startswith(v):
            return v
    return verdict


def cost_verdict(break_even: float, cost: Cost | None) -> str:
    """A paper-vs-ours verdict from its break-even cost (tolerance.break_even) and the
    range our images may cost: holds without any cost; holds if the cost is at least the
    break-even, where that lies at or below the top of the range (saying which side of
    the range); otherwise does not hold, saying what it would need where a cost could
    bring it in at all."""
    if break_even <= 0:
        return HOLDS
    if cost is None or not math.isfinite(break_even):
        return FAILS
    if break_even <= cost.high:
        return (
            f"{HOLDS} if our JPEG images cost at least {break_even:.2f} points"
            f" ({cost.side(break_even)} the {cost.word} {cost.text()})"
        )
    return (
        f"{FAILS} even at the top of the {cost.word} range, {cost.text()} points"
        f" (needs {break_even:.2f})"
    )


def needs_cost(verdict: str) -> bool:
    """Whether a verdict holds only with a cost of our images (the page-1 count)."""
    return kind(verdict) == HOLDS and verdict != HOLDS


PAPER_MODEL = {
    "widths": paper.WIDTHS,
    "kernel_sizes": paper.KERNEL_SIZES,
    "pool_after": paper.POOL_AFTER,
    "hidden": paper.HIDDEN,
    "dropout": paper.DROPOUT,
}
PAPER_TRAIN = {
    "batch_size": paper.BATCH_SIZE,
    "test_batch_size": paper.TEST_BATCH_SIZE,
    "momentum": paper.MOMENTUM,
    "weight_decay": paper.WEIGHT_DECAY,
}


def setup_differences(cfg: dict) -> list[str]:
    """How the configured data, model and optimiser differ from the paper (epochs apart)."""
    out = []
    sub = cfg.get("data", {}).get("subset") or {}
    if sub.get("train_per_class") or sub.get("test_per_class"):
        out.append(
            f"data subset ({sub.get('train_per_class') or 'all'} train /"
            f" {sub.get('test_per_class') or 'all'} test images per class)"
        )
    model = cfg.get("model", {})
    changed = [k for k, v in PAPER_MODEL.items() if list_or(model.get(k, v)) != list_or(v)]
    if changed:
        out.append("model differs from the paper's (" + ", ".join(changed) + ")")
    train = cfg.get("train", {})
    changed = [k for k, v in PAPER_TRAIN.items() if not math.isclose(train.get(k, v), v)]
    if changed:
        out.append("training differs from the paper's (" + ", ".join(changed) + ")")
    return out


def list_or(v):
    return list(v) if isinstance(v, (list, tuple)) else v


def comparability(cfg: dict) -> list[str]:
    """Reasons why this run is not comparable to the paper (empty list: comparable).
    Deviations that leave it comparable (images, arithmetic) are ``deviations``."""
    out = setup_differences(cfg)
    epochs, stated = cfg["train"]["epochs"], cfg["paper"]["epochs"]
    if epochs != stated:
        out.append(f"{epochs} epochs instead of the paper's {stated}")
    return out


# ---- detection rules ------------------------------------------------------------


def gap_onset(train_acc, test_acc, threshold=GAP_THRESHOLDS[1], run=GAP_RUN) -> int | None:
    """First epoch (1-based) from which train minus test accuracy exceeds ``threshold``
    points for ``run`` consecutive epochs; None if it never does."""
    above = (np.asarray(train_acc, float) - np.asarray(test_acc, float)) > threshold
    for i in range(len(above) - run + 1):
        if above[i : i + run].all():
            return i + 1
    return None


def smoothed(values, smooth=PLATEAU_SMOOTH) -> np.ndarray:
    """Centred moving average over ``smooth`` epochs (shorter at the ends)."""
    s = pd.Series(np.asarray(values, float)).rolling(smooth, center=True, min_periods=1)
    return s.mean().to_numpy()


def plateau_epoch(test_loss, smooth=PLATEAU_SMOOTH, rel=PLATEAU_RELS[2]) -> int:
    """First epoch e (1-based) after which the smoothed test loss S never falls more than
    ``rel`` x (S(1) - min S) below S(e). S is a centred moving average over ``smooth``."""
    s = smoothed(test_loss, smooth)
    delta = rel * max(s[0] - s.min(), 0.0)
    later_min = np.minimum.accumulate(s[::-1])[::-1]  # min of S over epochs >= e
    for i in range(len(s)):
        if later_min[i] >= s[i] - delta - 1e-12:
            return i + 1
    return len(s)


def most_confused_pair(confusion: pd.DataFrame) -> tuple[tuple[str, str], float]:
    """The class pair with the most confusions in both directions, and that count."""
    m = confusion.to_numpy(dtype=float)
    sym = m + m.T
    np.fill_diagonal(sym, -1)
    i, j = np.unravel_index(np.argmax(sym), sym.shape)
    names = list(confusion.columns)
    return tuple(sorted((names[i], names[j]))), float(sym[i, j])


def pair_confusion_rates(confusion: pd.DataFrame) -> pd.Series:
    """Every class pair's confusions in both directions, in percent of the two classes'
    images (so that a pair's noise scales as a class's does), indexed "a-b" (sorted)."""
    m = confusion.to_numpy(dtype=float)
    names, per_class = list(confusion.columns), m.sum(axis=1)
    rates = {
        "-".join(sorted((names[i], names[j]))): 100
        * (m[i, j] + m[j, i])
        / (per_class[i] + per_class[j])
        for i in range(len(names))
        for j in range(i + 1, len(names))
    }
    return pd.Series(rates)


def lowest_beyond(values: pd.Series, wanted: set, tol: float) -> bool | None:
    """Whether ``wanted`` are the ``len(wanted)`` lowest of ``values`` beyond ``tol``
    points: True when each lies more than ``tol`` below every other; False when one is
    missing or at least ``len(wanted)`` others (wanted or not) lie more than ``tol``
    below it (it cannot be among them); None (inconclusive) in between."""
    if not wanted <= set(values.index):
        return False
    inside, outside = values[sorted(wanted)], values.drop(sorted(wanted))
    if outside.empty or inside.max() + tol < outside.min():
        return True
    if any(int((values.drop(w) + tol < values[w]).sum()) >= len(wanted) for w in inside.index):
        return False
    return None


def per_class_accuracy(confusion: pd.DataFrame) -> pd.Series:
    m = confusion.to_numpy(dtype=float)
    return pd.Series(100 * np.diag(m) / m.sum(axis=1), index=list(confusion.columns))


def across(thresholds, decide) -> tuple[bool | None, list]:
    """A threshold rule's outcome over a range of thresholds: ``decide(t)`` gives
    (ok, shown value) at each; ok where every threshold agrees, None (inconclusive) where
    the verdict moves inside the range."""
    results = [decide(t) for t in thresholds]
    oks = {ok for ok, _ in results}
    return (oks.pop() if len(oks) == 1 else None), [v for _, v in results]


# ---- the claims -------------------------------------------------------------------


class Judge:
    """The one verdict function every claim goes through. A claim is decided only when
    the config trains the paper's setup for at least the epochs it needs; ``ok`` None
    means the data cannot settle it (inconclusive); a comparison with the paper gives its
    ``break_even`` cost instead, and its verdict says where that lies against the range
    our images may cost (``cost_verdict``)."""

    def __init__(self, study):
        self.setup = setup_differences(study.config)
        self.epochs = int(study.runs.epochs.max())
        self.paper_epochs = int(study.config["paper"]["epochs"])
        self.cost = study.cost()

    def verdict(
        self, ok: bool | None, needs_epochs: int | None = None, break_even: float | None = None
    ) -> str:
        if self.why(needs_epochs):
            return NOT_MEASURABLE
        if break_even is not None:
            return cost_verdict(break_even, self.cost)
        if ok is None:
            return INCONCLUSIVE
        return HOLDS if ok else FAILS

    def why(self, needs_epochs: int | None = None) -> str:
        needs = self.paper_epochs if needs_epochs is None else needs_epochs
        parts = [r.split(" (")[0] for r in self.setup]
        if self.epochs < needs:
            parts.append(f"needs >= {needs} epochs, ran {self.epochs}")
        return f" Not decided here: {'; '.join(parts)}." if parts else ""

    def row(self, key, claim, paper, measured, ok, rule, needs_epochs=None, short=None, **kw):
        """One claim; ``short`` is the measured value without its qualifiers (page 1);
        ``break_even`` (a comparison with the paper) decides it in place of ``ok``."""
        cost = kw.get("break_even")
        return {
            "key": key,
            "claim": claim,
            "paper": paper,
            "measured": measured,
            "verdict": self.verdict(ok, needs_epochs, cost),
            "rule": rule + self.why(needs_epochs),
            "short": short or measured.split(" (")[0],
            "break_even": math.nan if cost is None else cost,
        }


@dataclass
class Reference:
    """The group that stands for the seed's single model (study.reference), its mean
    history, how many runs it has, and the one noise every tolerance derives from."""

    head: str
    device: str
    lr: str
    hist: pd.DataFrame
    noise: Noise
    judge: Judge

    @property
    def who(self) -> str:
        return f"{self.head} head, lr {self.lr}, {over_seeds(self.noise.n)}"


def reference(study) -> Reference:
    head, device, lr = study.reference()
    runs = study.select(head, device, lr)
    devs = study.deviations()
    noise = noise_of(
        runs.final_test_acc,
        int(runs.n_test.iloc[0]),
        study.confidence,
        study.allowance(),
        allowance_label(devs),
    )
    return Reference(head, device, lr, study.mean_history(head, device, lr), noise, Judge(study))


def ranking_rule(ref: Reference) -> str:
    """The sentence a ranking of our own classes ends with: no seed's number is compared,
    so neither its printed precision nor an allowance enters."""
    return (
        f" Noise: that of one run {ref.noise.describe()}, scaled to the claim's kind (Section 7)."
    )


def tolerance_rule(ref: Reference, allowed: bool = True) -> str:
    """The one sentence every compared claim's rule ends with (``allowed``: the claim's
    kind takes a cost of our images)."""
    cost = ref.judge.cost
    allowance = (
        "; on the side our JPEG images explain, the cost they need (break-even) is set"
        f" against the {cost.word} range of {cost.text()} points"
        if cost and allowed
        else ""
    )
    return (
        f" Tolerance: the seed's printed precision plus the noise of one run"
        f" {ref.noise.describe()}, scaled to the claim's kind (Section 7){allowance}."
    )


def check_all(study, comparison: pd.DataFrame) -> pd.DataFrame:
    """Every claim, in the order of Section 9."""
    ref = reference(study)
    rows = [_best_lr(study, comparison, ref.judge)]
    rows += _table4(study, ref.judge)
    rows += [_epoch1(ref), _final_gap(ref), _overfit_onset(ref), _fluctuation(ref, study)]
    rows += [_plateau(ref)]
    rows += [_loss(ref, split) for split in paper.LOSS]
    rows += [_slowdown(ref)]
    rows += _confusion_claims(study, ref)
    rows.append(_timing_claim(study))
    return pd.DataFrame(rows, columns=COLUMNS)


def _best_lr(study, comparison, judge) -> dict:
    """Three-valued, over seeds (``effects.best_of``: Welch, Holm across the pairs):
    holds when lr 0.01 beats every other rate beyond seed noise, does not hold when
    another rate beats it, otherwise inconclusive; equal means are a tie, not a ranking.
    With one run per rate no rate is ranked: the paired tests of the comparison table
    (McNemar) are quoted, and say only whether these two trained networks differ."""
    head, device, _ = study.reference()
    best = paper.SELECTED_LR
    runs = study.select(head, device)
    means = runs.groupby("lr").final_test_acc.mean()
    row = {
        "key": "best_lr",
        "claim": f"Learning rate {best} gives the best test accuracy",
        "paper": " > ".join(f"{lr}: {acc:.2f} %" for lr, acc in paper.TEST_ACCURACY.items()),
        "rule": f"holds if lr {best} beats every other lr over seeds (Welch's test,"
        " Holm-adjusted across the pairs, p < alpha); does not hold if another lr beats it"
        " there; otherwise inconclusive. A claim about rates needs at least 2 seeds per"
        " rate: one run per rate is two networks, and their paired test says only that"
        " these two runs differ.",
    }
    if best not in means.index or len(means) < 2:
        row.update(measured=f"lr {best} and another lr are needed", verdict=NOT_MEASURABLE)
        row["short"] = row["measured"]
        return row
    groups = {lr: g.final_test_acc.tolist() for lr, g in runs.groupby("lr", sort=False)}
    seeds = effects.best_of(groups, best, int(runs.n_test.iloc[0]), 1 - study.confidence)
    if seeds["pairs"]:
        tests = "; ".join(
            f"vs {_other(r, best)}: Welch p = {r['p_holm']:.3g}"
            for r in seeds["pairs"]
            if best in (r["a"], r["b"])
        )
        ok = {effects.HOLDS: True, effects.FAILS: False}.get(seeds["verdict"])
    else:
        c = where(comparison, head, device)
        c = c[(c.lr_a == best) | (c.lr_b == best)]
        tests = "so only whether these runs differ: " + "; ".join(
            f"vs {r.lr_b if r.lr_a == best else r.lr_a}: {_test_name(r.test)} p = {r.p_holm:.3g}"
            for r in c.itertuples()
        )
        ok = None
    if means.nunique() == 1:
        ranking = f"all tied at {means.iloc[0]:.2f} %"
    else:
        order = means.sort_values(ascending=False, kind="stable")
        ranking = " > ".join(f"{lr}: {order[lr]:.2f} %" for lr in order.index)
    n = int(runs.groupby("lr").size().min())
    row["measured"] = f"{ranking} ({head} head, {over_seeds(n)} per rate; {tests})"
    row["short"] = ranking
    row["verdict"] = judge.verdict(ok)
    row["rule"] += judge.why()
    return row


def _test_name(test: str) -> str:
    return {MCNEMAR: "McNemar", Z_TEST: "two-proportion z"}.get(test, test)


def _other(pair: dict, best: str) -> str:
    return pair["b"] if pair["a"] == best else pair["a"]


def paper_agreement(study, runs: pd.DataFrame, paper_acc: float):
    """Table 4's comparison of one learning rate: the noise of one more run of ``runs``
    and where the paper's accuracy lies against it (shared by Table 4 and its claims)."""
    noise = noise_of(
        runs.final_test_acc,
        int(runs.n_test.iloc[0]),
        study.confidence,
        study.allowance(),
        allowance_label(study.deviations()),
    )
    mean = float(runs.final_test_acc.mean())
    precision = printed_precision(f"{paper_acc:.2f}")
    return noise, agree(mean, paper_acc, noise, ACCURACY, precision, 1, PERCENT)


def _table4(study, judge) -> list[dict]:
    rows = []
    head, device, _ = study.reference()
    c = study.confidence
    for lr in study.lr_order():
        paper_acc = study.paper_accuracy(lr)
        runs = study.select(head, device, lr)
        if math.isnan(paper_acc) or runs.empty:
            continue
        noise, a = paper_agreement(study, runs, paper_acc)
        mean = runs.final_test_acc.mean()
        rows.append(
            judge.row(
                f"table4_lr{lr}",
                f"lr {lr} reaches {paper_acc:.2f} % test accuracy (Table 4)",
                f"{paper_acc:.2f} %",
                f"{mean:.2f} % ({over_seeds(len(runs))}); {c:.0%} range for one more run"
                f" {a.text(2)} ({noise.source})",
                a.allowed,
                f"holds if the paper's single run lies in the {c:.0%} range where one more run"
                " of ours would land; where it lies above it, the verdict says what cost of"
                " our JPEG images (points) would raise the range's upper end to it (its"
                " break-even) and where that lies against the range they may cost.",
                short=f"{mean:.2f} %, one more run in [{a.low:.2f}, {a.high:.2f}]",
                break_even=a.break_even,
            )
        )
    return rows


def _epoch1(ref: Reference) -> dict:
    first = ref.hist.iloc[0]
    tr = agree(first.train_acc, EPOCH1_TRAIN, ref.noise, ACCURACY, EPOCH1_PRECISION, 1, PERCENT)
    te = agree(first.test_acc, EPOCH1_TEST, ref.noise, ACCURACY, EPOCH1_PRECISION, 1, PERCENT)
    return ref.judge.row(
        "epoch1_accuracy",
        "After the first epoch train accuracy is about 40 % and test accuracy about 50 %",
        f"~{EPOCH1_TRAIN:g} % train, ~{EPOCH1_TEST:g} % test (epoch 1)",
        f"{first.train_acc:.1f} % train, {first.test_acc:.1f} % test ({ref.who})",
        tr.allowed and te.allowed,
        f"holds if both lie within the tolerance of the stated values; the seed rounded them"
        f" to tens (precision {EPOCH1_PRECISION:g} points)." + tolerance_rule(ref),
        needs_epochs=1,
        break_even=break_even_of(tr, te),
    )


def _final_gap(ref: Reference) -> dict:
    """The seed's literal gap: about 94 % train against about 89 % test."""
    last = ref.hist.iloc[-1]
    gap = last.train_acc - last.test_acc
    a = agree(gap, FINAL_GAP, ref.noise, DIFFERENCE, FINAL_GAP_PRECISION, 0)
    return ref.judge.row(
        "final_gap",
        f"Final train accuracy about {paper.ACCURACY['train'][1]:g} %, test about"
        f" {paper.ACCURACY['test'][1]:g} % (gap about {FINAL_GAP:g} points)",
        f"train ~{paper.ACCURACY['train'][1]:g} %, test ~{paper.ACCURACY['test'][1]:g} %"
        f" (gap ~{FINAL_GAP:g} points)",
        f"train {last.train_acc:.1f} %, test {last.test_acc:.1f} %: gap {gap:.1f} points at"
        f" epoch {ref.judge.epochs} ({ref.who})",
        a.allowed,
        f"holds if the gap lies within the tolerance of {FINAL_GAP:g} points (the seed's two"
        " whole-number accuracies: precision 1 point; noise x sqrt(2), a difference of two"
        " accuracies; no allowance: the images' cost lowers both)."
        + tolerance_rule(ref, allowed=False),
        short=f"gap {gap:.1f} points ({last.train_acc:.1f} % vs {last.test_acc:.1f} %)",
    )


def _overfit_onset(ref: Reference) -> dict:
    h, lo, hi = ref.hist, GAP_EPOCH - GAP_WINDOW, GAP_EPOCH + GAP_WINDOW

    def decide(threshold):
        onset = gap_onset(h.train_acc, h.test_acc, threshold)
        return onset is not None and lo <= onset <= hi, onset

    ok, onsets = across(GAP_THRESHOLDS, decide)
    shown = ", ".join("none" if o is None else str(o) for o in onsets)
    at = dict(zip(GAP_THRESHOLDS, onsets, strict=True))[GAP_THRESHOLDS[1]]
    return ref.judge.row(
        "overfit_onset",
        "Test accuracy starts to fall below train accuracy around epoch 30",
        "around epoch 30",
        f"epoch {at} at {GAP_THRESHOLDS[1]:g} points; epochs {shown} at thresholds"
        f" {_span(GAP_THRESHOLDS)} points ({ref.who})",
        ok,
        f"first epoch from which train - test accuracy exceeds a threshold for {GAP_RUN}"
        f" consecutive epochs; holds if in {lo}-{hi} at every threshold from"
        f" {_span(GAP_THRESHOLDS)} points, does not hold if outside at every one,"
        " inconclusive if the verdict moves inside that range.",
        2 * GAP_EPOCH,
        short=f"epoch {at} at a {GAP_THRESHOLDS[1]:g}-point train-test gap (epochs {shown} at"
        f" gaps of {_span(GAP_THRESHOLDS)} points)",
    )


def _span(values) -> str:
    return f"{values[0]:g}-{values[-1]:g}"


# second differences of independent noise are correlated (lag 1: -4/6, lag 2: 1/6), so
# their sample variance carries 1 / (1 + 2 (16/36 + 1/36)) of m values' degrees of freedom
SECOND_DIFF_DOF = 1 / (1 + 2 * (16 / 36 + 1 / 36))


def fluctuation_ratio(values, noise_sd: float, confidence: float) -> tuple[float, float, float]:
    """The sd of a curve's second differences over the sd that ``noise_sd`` alone would
    give them (sqrt(6) x), with its ``confidence`` interval (chi-square, the effective
    degrees of freedom of correlated second differences): (ratio, low, high); NaN
    where sampling gives no noise (an accuracy of 0 or 100 %: nothing to divide by)."""
    if not noise_sd > 0:
        return math.nan, math.nan, math.nan
    d = np.diff(np.asarray(values, dtype=float), 2)
    ratio = float(d.std()) / (math.sqrt(6) * noise_sd)
    dof = max(len(d) * SECOND_DIFF_DOF, 1.0)
    a = (1 - confidence) / 2
    low = ratio * math.sqrt(dof / sps.chi2.ppf(1 - a, dof))
    high = ratio * math.sqrt(dof / sps.chi2.ppf(a, dof))
    return ratio, float(low), float(high)


def fluctuates_more(test: tuple, train: tuple) -> bool | None:
    """From (ratio, low, high) of each curve: True when test's interval lies above 1 and
    above train's; False when it lies below 1 or below train's; None in between."""
    if test[1] > max(1.0, train[2]):
        return True
    if test[2] < 1.0 or test[2] < train[1]:
        return False
    return None


def _fluctuation(ref: Reference, study) -> dict:
    """The seed: from about epoch 30 test accuracy fluctuates, train accuracy does not.
    Train accuracy is averaged over an epoch of augmented batches while the weights move,
    test accuracy is one network scored once, so their raw fluctuations are not alike:
    each is measured in units of its own sampling noise. Second differences (the change of
    the epoch-to-epoch change) leave out a smooth trend; on pure sampling noise of sd s
    their sd is sqrt(6) s, s the binomial sd of that split's images for a mean of n runs."""
    h = ref.hist[ref.hist.epoch >= STEADY_FROM]
    runs = study.select(ref.head, ref.device, ref.lr)
    nan3 = (math.nan, math.nan, math.nan)
    ratios = {}
    for split, images in (("train", int(runs.n_train.iloc[0])), ("test", int(runs.n_test.iloc[0]))):
        values = h[f"{split}_acc"].to_numpy()
        if len(h) < 4:
            ratios[split] = nan3
            continue
        noise = binomial_sd(float(values.mean()), images) / math.sqrt(ref.noise.n)
        ratios[split] = fluctuation_ratio(values, noise, study.confidence)
    test, train = ratios["test"], ratios["train"]
    pct = f"{study.confidence:.0%}"
    return ref.judge.row(
        "test_fluctuates",
        "Test accuracy fluctuates more than train accuracy (from about epoch 30)",
        "test accuracy fluctuates, train accuracy does not",
        f"sd of the second differences from epoch {STEADY_FROM}, in units of its own sampling"
        f" noise: test {test[0]:.1f} [{test[1]:.1f}, {test[2]:.1f}], train {train[0]:.1f}"
        f" [{train[1]:.1f}, {train[2]:.1f}] ({ref.who})",
        None if math.isnan(test[0] + train[0]) else fluctuates_more(test, train),
        f"from epoch {STEADY_FROM}, the sd of each curve's second differences (a smooth trend"
        " gives none) is divided by the sd that sampling its images alone would give"
        " (binomial; 10,000 test or 50,000 train images), with its"
        f" {pct} interval (chi-square; second differences are correlated, so about half"
        " their count in degrees of freedom): holds if test's interval lies above 1 (the"
        " network itself changes from epoch to epoch) and above train's; does not hold if it"
        " lies below 1 or below train's; inconclusive in between."
        " Raw sds would not compare like with like: train accuracy is an average over an"
        " epoch of augmented batches, which smooths it.",
        2 * STEADY_FROM,
        short=f"test {test[0]:.1f}, train {train[0]:.1f} x sampling noise",
    )


def _plateau(ref: Reference) -> dict:
    loss = ref.hist.test_loss
    lo, hi = PLATEAU_EPOCH - PLATEAU_WINDOW, PLATEAU_EPOCH + PLATEAU_WINDOW

    def decide(rel):
        epoch = plateau_epoch(loss, rel=rel)
        return lo <= epoch <= hi, epoch

    ok, epochs = across(PLATEAU_RELS, decide)
    lowest = int(np.argmin(smoothed(loss))) + 1
    rels = f"{PLATEAU_RELS[0]:.0%}-{PLATEAU_RELS[-1]:.0%}"
    shown = ", ".join(map(str, epochs))
    return ref.judge.row(
        "test_loss_plateau",
        "Test loss stops decreasing after about epoch 50",
        "after about epoch 50",
        f"epochs {shown} at {rels} of the total decrease; smoothed minimum at epoch"
        f" {lowest} of {ref.judge.epochs} ({ref.who})",
        ok,
        f"first epoch e after which the test loss ({PLATEAU_SMOOTH}-epoch centred mean) never"
        " falls more than a share of its total decrease below its value at e; holds if in"
        f" {lo}-{hi} at every share from {rels}, does not hold if outside at every one,"
        " inconclusive if the verdict moves inside that range.",
        2 * PLATEAU_EPOCH,
        short=f"epochs {shown} ({rels}); minimum at {lowest}",
    )


def _loss(ref: Reference, split: str) -> dict:
    """The seed's loss at epoch 1 and at the end, judged by the accuracy noise converted
    to loss (0.01 per point near the floor): the same tolerance as the accuracy claims."""
    start, end = paper.LOSS[split]
    col = ref.hist[f"{split}_loss"]
    a, b = float(col.iloc[0]), float(col.iloc[-1])
    first = agree(a, start, ref.noise, LOSS, printed_precision(f"{start:.2f}"), -LOSS)
    last = agree(b, end, ref.noise, LOSS, printed_precision(f"{end:.2f}"), -LOSS)
    return ref.judge.row(
        f"{split}_loss",
        f"{split.capitalize()} loss falls from about {start:.2f} to {end:.2f}",
        f"{start:.2f} (epoch 1) to {end:.2f} (epoch {ref.judge.paper_epochs})",
        f"{a:.3f} (epoch 1) to {b:.3f} (epoch {ref.judge.epochs}) ({ref.who}); range for the"
        f" last epoch {last.text(3)}",
        first.allowed and last.allowed,
        "holds if both lie within the tolerance, the accuracy noise x 0.01 (near the floor"
        " the softmax loss is log(e + 9) minus the accuracy, Section 8)." + tolerance_rule(ref),
        short=f"{a:.3f} to {b:.3f}",
        break_even=break_even_of(first, last),
    )


def _slowdown(ref: Reference) -> dict:
    """The seed: after the 100th epoch the training loss falls more slowly."""
    loss = ref.hist.set_index("epoch").train_loss
    n = int(loss.index.max())
    width = min(SLOW_AFTER // 2, max(n - SLOW_AFTER, 1))
    before = (loss.get(SLOW_AFTER - width, math.nan) - loss.get(SLOW_AFTER, math.nan)) / width
    after = (loss.get(SLOW_AFTER, math.nan) - loss.get(SLOW_AFTER + width, math.nan)) / width
    ok, _ = across(SLOW_RATIOS, lambda r: (bool(after < r * before), r))
    ratios = f"{SLOW_RATIOS[0]:g}-{SLOW_RATIOS[-1]:g}"
    return ref.judge.row(
        "train_loss_slowdown",
        "After epoch 100 the training loss falls more slowly",
        "after the 100th epoch the reduction in training loss becomes slower",
        f"{1000 * before:.2f} then {1000 * after:.2f} x 1e-3 per epoch over epochs"
        f" {SLOW_AFTER - width}-{SLOW_AFTER} and {SLOW_AFTER}-{SLOW_AFTER + width}: ratio"
        f" {after / before if before else math.nan:.2f} ({ref.who})",
        ok,
        f"holds if the mean decrease per epoch over the {width} epochs after epoch {SLOW_AFTER}"
        f" is below r x that over the {width} epochs before at every r from {ratios}, does"
        " not hold if at none, inconclusive if the verdict moves inside that range.",
        SLOW_AFTER + 10,
    )


def _confusion_claims(study, ref: Reference) -> list[dict]:
    conf = study.summed_confusion(ref.head, ref.device, ref.lr)
    acc = per_class_accuracy(conf)
    which = f"{ref.head} head, lr {ref.lr}, {_summed(ref.noise.n)}; the model of Fig. 4"
    return [_catdog_lowest(ref, acc, which), _catdog_pair(ref, conf, which)] + [
        _catdog_range(ref, acc, which)
    ]


def _summed(n: int) -> str:
    return "one run" if n == 1 else f"{n} seeds summed"


def _catdog_lowest(ref: Reference, acc: pd.Series, which: str) -> dict:
    """The seed's words taken literally: the two classes misclassified most often, an
    order within the noise of one class's accuracy left undecided."""
    lowest = tuple(sorted(acc.nsmallest(2).index))
    shown = ", ".join(f"{c} {acc[c]:.1f} %" for c in acc.nsmallest(3).index)
    tol = ref.noise.half_width * PER_CLASS
    return ref.judge.row(
        "catdog_lowest",
        "Cat and dog are the most frequently misclassified classes",
        "dog and cat most frequently misclassified",
        f"lowest: {lowest[0]} and {lowest[1]} ({shown}; {which})",
        lowest_beyond(acc, {"cat", "dog"}, tol),
        "read literally: holds if the two lowest per-class accuracies (heatmap diagonal) are"
        f" cat and dog, each more than {tol:.1f} points (the noise of one class's accuracy)"
        " below every other class; does not hold if two other classes lie that far below"
        " cat or dog; inconclusive in between." + ranking_rule(ref),
        short=f"lowest: {shown}",
    )


def _catdog_pair(ref: Reference, conf: pd.DataFrame, which: str) -> dict:
    pair, count = most_confused_pair(conf)
    tol = ref.noise.half_width * PER_PAIR
    return ref.judge.row(
        "catdog_pair",
        "Cat and dog are the classes most confused with each other",
        "dog and cat most frequently misclassified (heatmap), read as a pair",
        f"{pair[0]}-{pair[1]} ({count:.0f} images both ways; {which})",
        lowest_beyond(-pair_confusion_rates(conf), {"cat-dog"}, tol),
        "a weaker reading: holds if cat-dog is the pair with most confusions, counting both"
        f" directions, by more than {tol:.1f} points of the two classes' images (the noise"
        " of a pair: a fifth of the test images); does not hold if another pair has that"
        " many more; inconclusive in between." + ranking_rule(ref),
    )


def _catdog_range(ref: Reference, acc: pd.Series, which: str) -> dict:
    lo, hi = CAT_DOG_RANGE
    half = ref.noise.half_width * PER_CLASS
    low = lo - printed_precision(f"{lo:g}") - half
    high = hi + printed_precision(f"{hi:g}") + half
    values = (acc.get("cat", math.nan), acc.get("dog", math.nan))
    # each class's accuracy: below the range a cost of our images may explain, above none
    cost = max(0.0 if low <= v <= high else low - v if v < low else math.inf for v in values)
    return ref.judge.row(
        "catdog_range",
        f"Per-class accuracy of cat and dog is {lo:g} % to {hi:g} %",
        f'"misclassification rate ranging from {lo:g}% to {hi:g}%" for dog and cat; read as'
        f" their heatmap diagonal (per-class accuracy): an error rate of {lo:g} % would not"
        f" fit {paper.ACCURACY['test'][1]:g} % overall accuracy",
        f"cat {values[0]:.1f} %, dog {values[1]:.1f} % ({which})",
        None,
        f"holds if both lie in {low:.1f}-{high:.1f} % (the stated range widened by the"
        " tolerance; one class is a tenth of the test images: noise x sqrt(10))."
        + tolerance_rule(ref),
        break_even=cost,
    )


def _timing_claim(study) -> dict:
    colab, mps = paper.COLAB_MINUTES_5_EPOCHS, paper.MPS_MINUTES_5_EPOCHS
    parts = []
    for t in study.timing:
        minutes = 5 * t["seconds_per_epoch"] * paper.N_TRAIN / t["n_train"] / 60
        est = " (scaled from a subset)" if t["n_train"] < paper.N_TRAIN else ""
        parts.append(f"{t['device']} ({t['device_name']}): {minutes:.1f} min{est}")
    return {
        "key": "timing",
        "claim": f"5 epochs take {colab} min on a Colab GPU and {mps} min on Apple MPS",
        "paper": f"{colab} min (Colab GPU), {mps} min (Apple MPS)",
        "measured": "; ".join(parts) if parts else "timing disabled in this config",
        "verdict": NOT_MEASURABLE,
        "rule": "the seed's hardware is not available here; our devices are timed for"
        " reference (Table 5, Fig. 5).",
        "short": "; ".join(parts) if parts else "timing disabled",
    }
