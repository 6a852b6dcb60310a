"""Figures from really trained tiny runs: files, valid SVG, panels and curves."""

import xml.etree.ElementTree as ET

import matplotlib.pyplot as plt
import pytest
from PIL import Image

from repro.plan.dataset import CLASSES
from repro.report import figures
from repro.report import study as study_mod

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def study(tiny_runs):
    return study_mod.load_study(tiny_runs["config_path"], tiny_runs["runs"], tiny_runs["timing"])


@pytest.fixture(scope="module")
def written(study, tmp_path_factory):
    out = tmp_path_factory.mktemp("figures")
    return out, figures.make_all(study, out)


def test_every_figure_as_svg_and_png(written):
    out, paths = written
    expected = {f"{n}.{ext}" for n in figures.FIGURES for ext in ("svg", "png")}
    assert {p.name for p in out.iterdir()} == expected
    assert sorted(paths) == sorted(out.iterdir())


def test_svgs_are_valid_xml_with_one_axes_per_head(written, study):
    out, _ = written
    for name in figures.FIGURES:
        root = ET.parse(out / f"{name}.svg").getroot()
        assert root.tag == f"{SVG}svg"
        axes = [g for g in root.iter(f"{SVG}g") if g.get("id", "").startswith("axes_")]
        expected = {"fig2_loss": len(study.heads()), "fig3_accuracy": len(study.heads())}
        expected.update(fig4_confusion=2, fig5_timing=1)  # heatmap + colour bar
        expected.update(fig6_effects=1, fig7_train_test=1, fig8_jpeg_cost=1)
        assert len(axes) == expected[name], name
        assert "<dc:date>" not in (out / f"{name}.svg").read_text()


def test_png_honours_size_and_dpi(written, study):
    out, _ = written
    f = study.config["figures"]
    with Image.open(out / "fig2_loss.png") as im:
        assert im.size == (round(f["width"] * f["dpi"]), round(f["height"] * f["dpi"]))


def test_curves_one_colour_per_learning_rate(study):
    with plt.rc_context(figures.RC):
        fig = figures.fig_loss(study)
    ax = fig.axes[0]
    lrs = study.lr_order()
    curves = [line for line in ax.lines if line.get_label().startswith("lr ")]
    assert len(curves) == 2 * len(lrs)  # train and test per learning rate
    colors = figures.lr_colors(study)
    for line in curves:
        lr = line.get_label().split()[1]
        assert line.get_color() == colors[lr]
    assert len({colors[lr] for lr in lrs}) == len(lrs)
    # the softmax head's floor is drawn
    assert any(
        list(line.get_ydata()) == [pytest.approx(1.46115, abs=1e-5)] * 2 for line in ax.lines
    )
    plt.close(fig)


def test_timing_figure_shows_paper_bars(study):
    with plt.rc_context(figures.RC):
        fig = figures.fig_timing(study)
    widths = [p.get_width() for p in fig.axes[0].patches]
    assert len(widths) == len(study.timing) + 2
    assert widths[-2:] == [3, 6]
    plt.close(fig)


# a $ pair is math text to matplotlib; \nosuch is no TeX command, so drawing it raises
MATH = r"GPU $\nosuch{1}$ $x"


def test_math_text_from_data_or_config_is_drawn_literally(study, tmp_path):
    """A device name from a timing JSON, a paper key from the config and class names
    from confusion.csv with `$...$` in them: the figures draw them as written."""
    import copy
    import dataclasses

    cfg = copy.deepcopy(study.config)
    cfg["paper"]["timing_minutes_5_epochs"] = {f"{MATH} (paper)": 3.0, "$5 laptop$": 6.0}
    forged = dataclasses.replace(
        study,
        config=cfg,
        timing=[dict(t, device_name=MATH) for t in study.timing],
        confusion={
            k: v.rename(columns=lambda c: f"${c}$", index=lambda c: f"${c}\\nosuch$")
            for k, v in study.confusion.items()
        },
    )
    shown = {}
    with plt.rc_context(figures.RC):
        for make in (figures.fig_timing, figures.fig_confusion):
            fig = make(forged)
            fig.canvas.draw()  # math text from the data would raise ValueError here
            labels = fig.axes[0].get_yticklabels()
            # (the text as drawn, whether matplotlib parses it as math)
            shown[make] = [t._preprocess_math(t.get_text()) for t in labels]
            plt.close(fig)
    assert (f"cpu: {MATH}", False) in shown[figures.fig_timing]
    assert ("$5 laptop$ (paper)", False) in shown[figures.fig_timing]
    assert shown[figures.fig_confusion] == [(f"${c}\\nosuch$", False) for c in CLASSES]
    written = figures.make_all(forged, tmp_path)
    assert len(written) == 2 * len(figures.FIGURES)
