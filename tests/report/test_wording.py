"""Seed-dependent wording: one run never reads as a mean, a standard deviation or an
interval over seeds; two seeds say how uncertain their spread is."""

import pytest

from repro.report.wording import over_seeds, phrases

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


@pytest.mark.parametrize("n", [1, 2, 3])
def test_the_rendered_report_speaks_of_the_seeds_it_has(tmp_path, n):
    """The whole report's HTML for a synthetic study with n seeds: with one run no mean
    over seeds, no sd band, no "seed(s)"; with several, their number."""
    import json

    from test_tables import make_study, paper_config

    from repro.report import figures, provenance, tables
    from repro.report import pdf as report

    cfg = paper_config(seeds=list(range(n)))
    finals = {lr: [v + 0.1 * s for s in range(n)] for lr, v in PAPER.items()}
    make_study(tmp_path, cfg, finals, epochs=40)
    config = tmp_path / "config.json"
    cfg["train"]["epochs"] = 40
    config.write_text(json.dumps(cfg))
    runs = sorted(tmp_path.glob("results/runs/*/*/*/*/*/metrics.json"))
    tables.build(config, runs, [], None, tmp_path / "tables")
    figures.build(config, runs, [], tmp_path / "figures")
    prov = tmp_path / "provenance.json"
    provenance.build(config, runs, [], None, tmp_path, None, prov)
    html = report.render_html(
        report.context(config, runs, [], tmp_path / "tables", tmp_path / "figures", prov)
    )
    assert "seed(s)" not in html and "mean of 1 seed" not in html
    assert ("no band" in html) == (n == 1)
    assert ("over 1 seeds" not in html) and (f"Mean over {n} seeds" in html) == (n > 1)
    assert ("standard deviation over" in html) == (n > 1)
    assert ("1 degree of freedom" in html) == (n == 2)


PAPER = {"0.01": 89.55, "0.005": 87.56, "0.001": 87.44}
