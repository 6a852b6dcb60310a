"""Stage 5: Figs. 2-8 as SVG (vector, for the PDF) and PNG.

Fig. 2 loss and Fig. 3 accuracy per epoch (with one seed its run; with two or more
the mean over seeds and a band of +-1 standard deviation, drawn only then), one panel
per head, test solid and train dashed; Fig. 4 the confusion heatmap in percent per true
class; Fig. 5 minutes per 5 epochs next to the paper's. Each learning rate keeps one
colour in every figure. SVGs carry no date and fixed ids, so the same results give the
same bytes.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import seaborn as sns  # noqa: E402

from ..files import write_atomic  # noqa: E402
from ..plan import paper  # noqa: E402
from ..text import for_figure  # noqa: E402
from . import claims as claims_mod  # noqa: E402
from . import stats, why  # noqa: E402
from .study import load_study  # noqa: E402
from .tables import lr_comparison, timing  # noqa: E402

FIGURES = (
    "fig2_loss",
    "fig3_accuracy",
    "fig4_confusion",
    "fig5_timing",
    "fig6_effects",
    "fig7_train_test",
    "fig8_jpeg_cost",
)
RC = {
    "font.size": 9,
    "axes.titlesize": 9.5,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "svg.hashsalt": "repro",
    "svg.fonttype": "path",
    "axes.spines.top": False,
    "axes.spines.right": False,
}


def lr_colors(study) -> dict[str, tuple]:
    """One colour per learning rate, from the configured palette, in config order."""
    lrs = study.lr_order()
    palette = sns.color_palette(study.config["figures"]["palette"], max(len(lrs), 3))
    return dict(zip(lrs, palette, strict=False))


def _figsize(study, scale_h: float = 1.0) -> tuple[float, float]:
    f = study.config["figures"]
    return float(f["width"]), float(f["height"]) * scale_h


# What the seed's text states about its curves (paper.py), drawn as markers so that
# paper and ours share a picture.
SEED_STATED = {"loss": paper.LOSS, "acc": paper.ACCURACY}


def _seed_markers(ax, study, metric: str) -> None:
    last = int(study.config["paper"]["epochs"])
    epochs = [1, last] if study.runs.epochs.max() >= last else [1]
    for split, marker in (("test", "o"), ("train", "s")):
        values = SEED_STATED[metric][split][: len(epochs)]
        ax.plot(
            epochs,
            values,
            marker,
            ms=5,
            mfc="none",
            mec="black",
            mew=1.0,
            ls="none",
            label=f"seed {split} (stated)",
            zorder=5,
        )


# a marker per learning rate, so that rates with similar colours stay apart in print
LR_MARKERS = ("o", "^", "s", "D", "v", "P")


def _curves(study, metric: str, ylabel: str, floor: bool = False):
    heads = study.heads()
    colors = lr_colors(study)
    fig, axes = plt.subplots(1, len(heads), figsize=_figsize(study), squeeze=False)
    for ax, head in zip(axes[0], heads, strict=True):
        for device in study.devices():
            for lr in study.lr_order():
                h = study.mean_history(head, device, lr)
                if h.empty:
                    continue
                for split, style in (("test", "-"), ("train", "--")):
                    col = f"{split}_{metric}"
                    mean, sd = h[col].to_numpy(), h[f"{col}_std"].to_numpy()
                    label = for_figure(f"lr {lr} {split}")
                    ax.plot(
                        h.epoch,
                        mean,
                        style,
                        color=colors[lr],
                        lw=1.4,
                        label=label,
                        marker=LR_MARKERS[study.lr_order().index(lr) % len(LR_MARKERS)],
                        markevery=max(1, len(h) // 8),
                        ms=3.5,
                    )
                    if h.n.min() > 1:
                        ax.fill_between(h.epoch, mean - sd, mean + sd, color=colors[lr], alpha=0.18)
        if head == "softmax":
            _seed_markers(ax, study, metric)
        if floor and head == "softmax":
            ax.axhline(stats.softmax_ce_floor(), color="0.35", lw=0.9, ls=":")
            # at the left: the train curves come near the floor only at the right
            ax.annotate(
                "floor 1.461",
                (0.02, stats.softmax_ce_floor()),
                xycoords=("axes fraction", "data"),
                xytext=(0, 2),
                textcoords="offset points",
                ha="left",
                va="bottom",
                fontsize=7.5,
                color="0.3",
            )
        title = "Softmax head (faithful)" if head == "softmax" else "Logits head (ablation)"
        ax.set_title(title if len(heads) > 1 else "")
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.grid(True, lw=0.4, alpha=0.5)
        if study.runs.epochs.max() <= 10:
            ax.set_xticks(range(1, int(study.runs.epochs.max()) + 1))
    handles, labels = axes[0][0].get_legend_handles_labels()
    ncol = max(1, len(labels) // 2)  # column-major: each column one lr, test above train
    fig.legend(handles, labels, loc="lower center", ncol=ncol, frameon=False)
    fig.tight_layout(rect=(0, 0.16, 1, 1))
    return fig


def fig_loss(study):
    return _curves(study, "loss", "cross-entropy loss", floor=True)


def fig_accuracy(study):
    return _curves(study, "acc", "accuracy (%)")


def fig_confusion(study):
    head, device, lr = study.reference()  # the model the cat/dog claims judge
    conf = study.summed_confusion(head, device, lr)
    m = conf.to_numpy(dtype=float)
    pct = 100 * m / np.maximum(m.sum(axis=1, keepdims=True), 1)
    w, _ = _figsize(study)
    fig, ax = plt.subplots(figsize=(w, w * 0.78))
    sns.heatmap(
        pct,
        annot=True,
        fmt=".0f",
        cmap="Blues",
        vmin=0,
        vmax=100,
        square=True,
        # class names come from confusion.csv's header: never read as math text
        xticklabels=[for_figure(c) for c in conf.columns],
        yticklabels=[for_figure(c) for c in conf.index],
        cbar_kws={"label": "% of true class", "shrink": 0.8},
        annot_kws={"fontsize": 7.5},
        ax=ax,
    )
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.tick_params(axis="x", rotation=45)
    plt.setp(ax.get_xticklabels(), ha="right", rotation_mode="anchor")
    fig.tight_layout()
    return fig


def fig_timing(study):
    t = timing(study)
    labels = [
        f"{r.device_name}\n(paper)" if r.source == "paper" else f"{r.device}: {r.device_name}"
        for r in t.itertuples()
    ]
    # device names come from timing JSONs and the config: never read as math text
    labels = [for_figure(_wrap(s, 34)) for s in labels]
    measured = sns.color_palette(study.config["figures"]["palette"], 10)[4:]
    colors = [
        "0.65" if r.source == "paper" else measured[i % 6] for i, r in enumerate(t.itertuples())
    ]
    w, h = _figsize(study)
    fig, ax = plt.subplots(figsize=(w, max(h * 0.6, 0.55 * len(t) + 0.9)))
    y = np.arange(len(t))
    bars = ax.barh(y, t.minutes_per_5_epochs, color=colors)
    for bar, r in zip(bars, t.itertuples(), strict=True):
        if r.source == "measured" and r.n_train < paper.N_TRAIN:
            bar.set_hatch("///")
            bar.set_edgecolor("white")
        ax.annotate(
            f"{r.minutes_per_5_epochs:,.1f} min",
            (bar.get_width(), bar.get_y() + bar.get_height() / 2),
            xytext=(3, 0),
            textcoords="offset points",
            va="center",
            fontsize=8,
        )
    ax.set_yticks(y, labels)
    ax.invert_yaxis()
    subset = ((t.source == "measured") & (t.n_train < paper.N_TRAIN)).any()
    hatched = "\n(hatched: scaled from a subset)" if subset else ""
    ax.set_xlabel(f"minutes per 5 epochs on {paper.N_TRAIN:,} images{hatched}")
    ax.set_xlim(0, t.minutes_per_5_epochs.max() * 1.2)
    ax.grid(True, axis="x", lw=0.4, alpha=0.5)
    fig.tight_layout()
    return fig


def fig_jpeg_cost(study, claim_rows):
    """Each decided paper-vs-ours claim's break-even cost (the cost of our JPEG images at
    which the paper's number enters our range), on one axis in points, with the range
    our images may cost shaded: which verdicts the JPEG question decides. A claim that
    holds without any cost sits at 0; one no cost can bring in (the paper's number lies
    on the side a worse result of ours does not explain) is marked at the left, as text."""
    cost = study.cost()
    rows = [
        r
        for r in claim_rows.to_dict("records")
        if r["break_even"] == r["break_even"]
        and claims_mod.kind(r["verdict"]) in (claims_mod.HOLDS, claims_mod.FAILS)
    ]
    finite = [float(r["break_even"]) for r in rows if np.isfinite(r["break_even"])]
    right = 1.15 * max([1.0, *finite, *([cost.high] if cost else [])])
    fig, ax = plt.subplots(figsize=(_figsize(study)[0], 0.32 * max(len(rows), 1) + 1.3))
    if cost:
        label = f"{cost.word} range, {cost.text()} points (not measured here)"
        ax.axvspan(cost.low, cost.high, color="C1", alpha=0.18, lw=0, label=label)
    ys = np.arange(len(rows))[::-1]
    for y, r in zip(ys, rows, strict=True):
        b = float(r["break_even"])
        if np.isfinite(b):
            color = "C2" if b <= 0 else "C0" if cost and b <= cost.high else "C3"
            ax.plot([b], [y], "o", color=color, ms=5)
        else:
            ax.text(0.02 * right, y, "no cost helps: the paper's number lies on the other side",
                    va="center", ha="left", fontsize=7, color="0.4")  # fmt: skip
    if not rows:
        ax.text(0.5, 0.5, "no comparison with the paper is decided here", transform=ax.transAxes,
                ha="center", va="center", fontsize=8, color="0.4")  # fmt: skip
    ax.set_xlim(-0.03 * right, right)
    ax.set_ylim(-0.6, max(len(rows), 1) - 0.4)
    ax.set_yticks(ys, [for_figure(_wrap(r["claim"], 34)) for r in rows])
    ax.axvline(0, color="0.5", lw=0.8)
    ax.set_xlabel("break-even cost of our JPEG images (points of test accuracy)")
    if cost:
        ax.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    fig.tight_layout()
    return fig


def _wrap(text: str, width: int) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width)) or text


def save(fig, out_dir: Path, name: str, dpi: int) -> list[Path]:
    paths = [out_dir / f"{name}.svg", out_dir / f"{name}.png"]
    write_atomic(paths[0], lambda f: fig.savefig(f, format="svg", metadata={"Date": None}))
    png = {"Software": None}
    write_atomic(paths[1], lambda f: fig.savefig(f, format="png", dpi=dpi, metadata=png))
    plt.close(fig)
    return paths


def make_all(study, out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    dpi = int(study.config["figures"]["dpi"])
    why_rows = why.rows(study)
    claim_rows = claims_mod.check_all(study, lr_comparison(study))
    makers = dict(
        zip(
            FIGURES,
            (
                fig_loss,
                fig_accuracy,
                fig_confusion,
                fig_timing,
                lambda s: why.fig_effects(s, why_rows),
                why.fig_train_test,
                lambda s: fig_jpeg_cost(s, claim_rows),
            ),
            strict=True,
        )
    )
    written = []
    with sns.axes_style("ticks"), plt.rc_context(RC):
        for name, make in makers.items():
            written += save(make(study), out_dir, name, dpi)
    return written


def build(config, runs, timing, out_dir, data_meta=None) -> list[Path]:
    """The figures stage: Figs. 2-8 of the study into ``out_dir`` (``data_meta``: the data
    cache's JSON, which says what the images may cost)."""
    return make_all(load_study(config, runs, timing, data_meta), Path(out_dir))
