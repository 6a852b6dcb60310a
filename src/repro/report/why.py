"""Why our accuracy falls short of the paper's, from the study's variants:
page 1's "why" rows (shortfall.shortfall_rows on every run with its variant), the one
sentence that sums them up, the reporting variants computed from existing histories
(final epoch, best epoch, mean of the last ten epochs) and the two figures of "What
explains the gap" (each variant's effect with its interval against the paper gap; train
against test accuracy per run, the seed's point marked)."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display: files only, as figures.py

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ..errors import UserError  # noqa: E402
from ..files import read_json_bounded  # noqa: E402
from ..plan import grid, paper  # noqa: E402
from ..plan.dataset import cache_path  # noqa: E402
from ..plan.variants import REFERENCE, against  # noqa: E402
from .effects import jpeg_extrapolation, lossless_distortion  # noqa: E402
from .shortfall import CANNOT, NOT_YET_RUN, POWER_WORDS, TESTED, shortfall_rows  # noqa: E402

LOSSLESS = {
    "name": "lossless images",
    "reason": "the seed trained on CIFAR-10's lossless images, we on a JPEG q75 copy; no"
    " lossless copy can be had on our machines, so only an extrapolation from the JPEG"
    " variants can stand in",
}
LAST = 10  # epochs averaged in "mean of the last ten epochs"
# The MSE (0-255 scale) that the archive's q75 encoding added to CIFAR-10, bounded from
# lossless scikit-image photographs cut into 32x32 tiles (benchmarks/jpeg_distortion.py,
# measured on a 2-core AMD EPYC for issue 21): about 29.6 dB.
Q75_MSE = (69.3, 72.3)
MAX_META_BYTES = 1 << 20


def rate(study) -> str:
    """The learning rate the causes are measured at: the seed's selected one, where the
    reference has runs at it."""
    rates = set(study.runs.lr)
    return paper.SELECTED_LR if paper.SELECTED_LR in rates else study.lr_order()[0]


def rows(study, added: dict | None = None) -> list[dict]:
    """One row per configured variant (in config order), then lossless images, with the
    labelled extrapolation where JPEG variants have runs and known distortions
    (``added``: variant -> MSE its re-encode added; default: read from the caches)."""
    lr = rate(study)
    # the runs the config plans at that rate, per variant: what the design can resolve
    planned = Counter(r["variant"] for r in grid.runs(study.config) if r["lr"] == lr)
    variants = []
    for v in study.config["variants"]:
        base = against(study.config, v["name"])
        variants.append(
            {"name": v["name"], "reason": v["reason"], "against": base,
             "planned": (planned[v["name"]], planned[base])}
        )  # fmt: skip
    added = jpeg_added(study.config) if added is None else added
    return shortfall_rows(
        study.variant_runs,
        variants,
        lr,
        study.paper_accuracy(lr),
        study.confidence,
        reference=REFERENCE,
        # the images' cost reported elsewhere stands in until the JPEG variants measure it
        untestable=(
            {**LOSSLESS, "extrapolation": extrapolation(study, added), "prior": study.cost()},
        ),
    )


def jpeg_added(cfg: dict) -> dict[str, float]:
    """Variant -> the MSE its re-encode added (mean of the train and test splits), read
    from its cache's JSON where the cache was built here, else (recorded runs) from the
    cache JSON of that quality that a GPU session brought back into the recording."""
    recorded = _recorded_jpeg(Path(cfg["recorded"])) if cfg.get("recorded") else {}
    out = {}
    for entry in grid.variant_configs(cfg):
        quality = entry["config"]["data"].get("jpeg_quality")
        if not quality:
            continue
        meta = Path(cache_path(entry["config"])).with_suffix(".json")
        if meta.is_file():
            jpeg = read_json_bounded(meta, MAX_META_BYTES, "data cache JSON").get("jpeg") or {}
        else:
            jpeg = recorded.get(quality, {})
        added = _added(jpeg)
        if added is not None:
            out[entry["name"]] = added
    return out


def _added(jpeg) -> float | None:
    values = (
        [jpeg.get(f"added_mse_{s}") for s in ("train", "test")] if isinstance(jpeg, dict) else []
    )
    if values and all(isinstance(v, int | float) and math.isfinite(v) for v in values):
        return float(sum(values) / 2)
    return None


def _recorded_jpeg(folder: Path) -> dict[int, dict]:
    """JPEG quality -> the ``jpeg`` entry of a re-encoded cache's JSON in the recording
    (``data/*.json`` of any of its sessions), read as the recording's other files are."""
    from ..plan import recorded  # torch-free; here: only recorded studies need it

    out: dict[int, dict] = {}
    if not folder.is_dir():
        return out
    for rel in recorded.folder_files(folder):
        parts = rel.split("/")
        if not (rel.endswith(".json") and len(parts) >= 2 and parts[-2] == "data"):
            continue
        meta = recorded.read_json(folder, rel)
        # a recording made before `record` checked them: a forged MSE is no verdict
        problem = recorded.jpeg_problem(meta)
        if problem:
            raise UserError(f"recorded file {folder / rel}: {problem}; record the runs again")
        jpeg = meta.get("jpeg")
        if isinstance(jpeg, dict):
            out.setdefault(jpeg["quality"], jpeg)
    return out


def extrapolation(study, added: dict) -> dict | None:
    """Accuracy on lossless images from the reference (q75) and the JPEG variants' runs
    at the rate (effects.jpeg_extrapolation, q75's own cost bounded by Q75_MSE, the two
    errors taken to add); None without runs at two distortion levels."""
    runs = study.variant_runs[study.variant_runs.lr == rate(study)]
    sel = runs[runs.variant.isin([REFERENCE, *added])]
    # the gain is read at the reference's distortion (q75's): without its runs the line's
    # lowest point is a re-encode, and "lossless minus q75" would be mislabelled
    if sel.variant.nunique() < 2 or REFERENCE not in set(sel.variant):
        return None
    extra = sel.variant.map(lambda v: added.get(v, 0.0)).to_numpy(float)
    try:
        return jpeg_extrapolation(
            lossless_distortion(extra, Q75_MSE[0]),
            lossless_distortion(extra, Q75_MSE[1]),
            sel.final_test_acc.to_numpy(float),
            int(sel.n_test.iloc[0]),
            study.confidence,
        )
    except UserError:
        return None  # too few runs for a line: the row stays without a number


def gap(study) -> float:
    lr = rate(study)
    return study.paper_accuracy(lr) - float(study.runs[study.runs.lr == lr].final_test_acc.mean())


def sentence(why_rows: list[dict], gap_points: float, lr: str, alpha: float = 0.05) -> str:
    """The honest summary: which tested causes moved accuracy (interval excluding zero),
    with their share of the gap, and how many are still untested."""
    tested = [r for r in why_rows if r["status"] == TESTED]
    waiting = [r["cause"] for r in why_rows if r["status"] == NOT_YET_RUN]
    opening = f"At lr {lr} our reference {gap_words(gap_points)}."
    if not tested:
        return (
            f"{opening} No candidate cause has been measured yet: the runs of "
            f"{', '.join(waiting) or 'its variants'} are not yet run, so the gap is unexplained."
        )
    moved = [r for r in tested if r["low"] > 0 or r["high"] < 0]
    parts = [
        f"{r['cause']} {r['effect']:+.2f} points ({r['low']:+.2f} to {r['high']:+.2f}, {_share(r)})"
        + _multiplicity(r, len(tested), alpha)
        for r in moved
    ]
    found = (
        "Measured effects whose interval excludes zero: " + "; ".join(parts) + "."
        if parts
        else f"The one tested cause, {tested[0]['cause']}, shows no effect beyond noise:"
        " its interval includes zero."
        if len(tested) == 1
        else f"None of the {len(tested)} tested causes shows an effect beyond noise: each"
        " interval includes zero."
    )
    rest = f" Not yet run: {', '.join(waiting)}." if waiting else ""
    return f"{opening} {found}{rest}{_untestable_words(why_rows)}"


def _untestable_words(why_rows: list[dict]) -> str:
    """What the sentence says of a cause that cannot be tested here: its extrapolation,
    where one exists, against the range reported elsewhere."""
    out = ""
    for r in why_rows:
        if r["status"] != CANNOT:
            continue
        if r["effect"] == r["effect"]:
            out += (
                f" {r['cause'].capitalize()}, extrapolated from the JPEG variants:"
                f" {r['effect']:+.2f} points ({r['low']:+.2f} to {r['high']:+.2f})"
                + (f"; {r['note']}." if r["note"] else ".")
            )
        # a prior alone is not a finding: the table's row shows it, labelled
    return out


def _multiplicity(row: dict, n_tested: int, alpha: float) -> str:
    """What an interval excluding zero is worth among ``n_tested`` causes: with several,
    one may do so by chance; Holm's adjustment across them says whether it still does."""
    if n_tested < 2:
        return ""
    if row["p_holm"] < alpha:
        return (
            f"; beyond noise also with all {n_tested} tested causes counted"
            f" (Holm p = {row['p_holm']:.2g})"
        )
    return (
        f"; but not beyond noise once all {n_tested} tested causes are counted (Holm p ="
        f" {row['p_holm']:.2g}): one of several intervals excludes zero by chance too often"
    )


def gap_words(gap_points: float) -> str:
    """The gap (paper minus ours, points) as words: a reference above the paper does not
    fall "-0.01 points short"; without the paper's accuracy at the rate, no "nan points"."""
    if math.isnan(gap_points):
        return "has no paper accuracy to be compared with (the config gives none at this rate)"
    if gap_points < 0:
        return f"lies {-gap_points:.2f} points above the paper"
    return f"falls {gap_points:.2f} points short of the paper"


NO_SHARE = "the gap is within noise"  # why an unbounded share is none


def _bounded_share(row: dict) -> tuple[float, float, float] | None:
    """A row's share of the gap and its interval in percent; None where the interval is
    unbounded (the gap within noise: any share, of either sign, fits the data)."""
    if not math.isfinite(row["share_low"]) or not math.isfinite(row["share_high"]):
        return None
    return 100 * row["share"], 100 * row["share_low"], 100 * row["share_high"]


def share_cell(row: dict) -> str:
    """Page 1's share-of-the-gap cell: the share and its interval, "none" with the reason
    where the interval is unbounded, blank for a cause without a measured effect."""
    if row["share"] != row["share"]:
        return ""
    share = _bounded_share(row)
    return f"{share[0]:.0f} % ({share[1]:.0f} to {share[2]:.0f})" if share else f"none: {NO_SHARE}"


def _share(row: dict) -> str:
    """The sentence's words for a row's share of the gap (see ``_bounded_share``)."""
    share = _bounded_share(row)
    if share is None:
        return f"no share of the gap can be stated: {NO_SHARE}"
    return f"{share[0]:.0f} % of the gap ({share[1]:.0f} to {share[2]:.0f} %)"


def resolution_text(why_rows: list[dict]) -> str:
    """Each planned design and what it can show, causes of one design together:
    "narrow, hidden256: 2 against 3 runs, ±1.22 points, 1.86 found 4 times in 5";
    "" when none is planned."""
    groups: dict[tuple, list[str]] = {}
    for r in why_rows:
        if r["resolution"] == r["resolution"]:
            key = (r["planned_variant"], r["planned_reference"], round(r["resolution"], 2),
                   round(r["detectable"], 2))  # fmt: skip
            groups.setdefault(key, []).append(r["cause"])
    return "; ".join(
        f"{', '.join(causes)}: {nv} against {nr} runs, ±{res:.2f} points, {found:.2f} found"
        f" {POWER_WORDS}"
        for (nv, nr, res, found), causes in groups.items()
    )


def precision_effect(study, why_rows: list[dict]) -> str:
    """The measured cost of bf16 where a tested cause is that arithmetic alone: a variant
    whose runs are all fp32, measured against runs that are all bf16. Its words replace
    "not measured" in the declared deviation, with the caveats its row carries; "" when
    no such variant has runs."""
    runs = study.variant_runs
    precision = runs.precision if "precision" in runs.columns else pd.Series("", runs.index)
    for r in why_rows:
        if r["status"] != TESTED:
            continue
        ours = set(precision[runs.variant == r["cause"]])
        base = set(precision[runs.variant == r["against"]])
        if ours == {"fp32"} and base == {"bf16"}:
            # the row's caveats, short: its status says them in full
            caveats = []
            if min(r["n_variant"], r["n_reference"]) < 2:
                caveats.append(
                    "one run each"
                    if max(r["n_variant"], r["n_reference"]) < 2
                    else "one arm a single run"
                )
            if r["machines"]:
                caveats.append("on different GPUs")
            said = f", {' '.join(caveats)}" if caveats else ""
            return (
                f"measured at lr {rate(study)}: fp32 minus bf16 {r['effect']:+.2f} points"
                f" ({r['low']:+.2f} to {r['high']:+.2f}){said} (Section 11)"
            )
    return ""


def cover_rows(why_rows: list[dict]) -> list[dict]:
    """Page 1's shorter table: every measured or untestable cause as its own row, the
    causes not yet run as one row naming them all (Section 11 lists each)."""
    waiting = [r for r in why_rows if r["status"] == NOT_YET_RUN]
    out = []
    for r in why_rows:
        if r["status"] != NOT_YET_RUN:
            out.append({**r, "share_cell": share_cell(r)})
        elif r is waiting[0]:
            names = ", ".join(w["cause"] for w in waiting)
            out.append({**r, "cause": names, "against": REFERENCE, "share_cell": ""})
    return out


def reporting_rows(study) -> list[dict]:
    """Per learning rate of the reference: the mean over seeds of the final epoch's, the
    best epoch's and the last ten epochs' mean test accuracy, against the paper's number
    (which of these the seed reported, its text does not say)."""
    out = []
    hist = study.history
    for lr in study.lr_order():
        h = hist[hist.lr == lr]
        per_run = h.sort_values("epoch").groupby(["head", "device", "seed"]).test_acc
        out.append(
            {
                "lr": lr,
                "n": int(per_run.ngroups),
                "final": float(per_run.last().mean()),
                "best": float(per_run.max().mean()),
                "last_ten": float(per_run.apply(lambda s: s.tail(LAST).mean()).mean()),
                "paper": study.paper_accuracy(lr),
            }
        )
    return out


def fig_effects(study, why_rows: list[dict]):
    """Each cause's effect on test accuracy with its interval; the paper gap as the line
    an effect would have to reach to explain it all. Untested causes are listed, empty; a
    range reported elsewhere (a prior, not measured here) is drawn as a hatched outline."""
    g = gap(study)  # NaN where the config gives the paper no accuracy at this rate
    measured = [r for r in why_rows if not math.isnan(r["effect"])]
    priors = [r for r in why_rows if math.isnan(r["effect"]) and _has_prior(r)]
    left = min([-1.0, *(r["low"] for r in measured), *(r["prior_low"] for r in priors)])
    right = max(
        [
            1.0 if math.isnan(g) else g + 0.5,
            *(r["high"] for r in measured),
            *(r["prior_high"] for r in priors),
        ]
    )
    # room beyond the outermost interval, so that its cap is drawn whole
    pad = 0.04 * (right - left)
    left, right = left - pad, right + pad
    fig, ax = plt.subplots(figsize=(6.4, 0.3 * len(why_rows) + 1.2))
    ys = np.arange(len(why_rows))[::-1]
    for y, r in zip(ys, why_rows, strict=True):
        if math.isnan(r["effect"]) and _has_prior(r):
            # an outline, not a dot with whiskers: nothing here measured it
            ax.barh(
                y, r["prior_high"] - r["prior_low"], left=r["prior_low"], height=0.5,
                fill=False, hatch="///", edgecolor="C1", lw=0.8, label=r["note"],
            )  # fmt: skip
            continue
        if math.isnan(r["effect"]):
            ax.text(left + 0.05, y, r["status"], va="center", ha="left", fontsize=7, color="0.45")
            continue
        ax.errorbar(
            r["effect"],
            y,
            xerr=[[r["effect"] - r["low"]], [r["high"] - r["effect"]]],
            fmt="o",
            color="C0",
            capsize=3,
        )
    ax.set_xlim(left, right)
    ax.set_ylim(-0.6, len(why_rows) - 0.4)  # the last row's text clear of the axis
    ax.axvline(0, color="0.5", lw=0.8)
    if not math.isnan(g):
        ax.axvline(g, color="C3", ls="--", lw=1, label=f"the paper gap ({g:+.2f} points)")
    ax.set_yticks(ys, [_label(r) for r in why_rows])
    ax.set_xlabel(
        f"effect on final test accuracy at lr {rate(study)} (points, variant - its baseline)"
    )
    if not math.isnan(g):
        ax.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    fig.tight_layout()
    return fig


def _has_prior(row: dict) -> bool:
    low = row.get("prior_low", math.nan)
    return low == low


def _label(row: dict) -> str:
    base = row["against"]
    return row["cause"] if base == REFERENCE else f"{row['cause']} (vs {base})"


def fig_train_test(study):
    """Final train against test accuracy, one point per run, coloured by variant; the
    seed's selected model marked: points below and right of it overfit more."""
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    runs = study.variant_runs
    for i, (name, sel) in enumerate(runs.groupby("variant", sort=False)):
        # "paper" is the reference setup's name, not the paper's numbers (the star)
        label = f"{name} (our reference)" if name == REFERENCE else name
        ax.scatter(sel.final_train_acc, sel.final_test_acc, label=label, color=f"C{i % 10}", s=22)
    train, test = paper.ACCURACY["train"][1], study.paper_accuracy(paper.SELECTED_LR)
    star = not math.isnan(test)  # the config may give the paper no accuracy at lr 0.01
    if star:
        ax.scatter([train], [test], marker="*", s=160, color="k", label="the seed (lr 0.01)")
    lo = min(runs.final_test_acc.min(), test if star else math.inf) - 1
    hi = max(runs.final_train_acc.max(), train if star else -math.inf) + 1
    ax.plot([lo, hi], [lo, hi], color="0.7", lw=0.8, label="train = test")
    ax.set_xlabel("final train accuracy (%)")
    ax.set_ylabel("final test accuracy (%)")
    ax.legend(fontsize=7, frameon=False, loc="upper left")
    fig.tight_layout()
    return fig


def frame(why_rows: list[dict]) -> pd.DataFrame:
    """The rows as the tables stage writes them (why.csv)."""
    return pd.DataFrame(why_rows)
