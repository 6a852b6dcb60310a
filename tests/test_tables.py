"""Tables and claims from hand-written run folders with known histories."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from repro import claims, tables
from repro import config as config_mod
from repro.data import CLASSES

EPOCHS = 150


def paper_config(**overrides) -> dict:
    raw = {"data": {"source": "torchvision"}, "devices": ["cpu"], **overrides}
    return config_mod.validate(raw, check_devices=False)


def history(final_test: float, epochs: int = EPOCHS, onset: int = 30) -> pd.DataFrame:
    """Train accuracy rises to 94 %, test lies 3 points above it before ``onset`` and 5
    below from then on; test loss falls linearly to 1.57 at epoch 50 and stays; train
    loss falls linearly from 2.07 to 1.52. Accuracies end at ``final_test``."""
    e = np.arange(1, epochs + 1)
    train = 40 + 54 * (1 - np.exp(-e / 25))
    train = train - train[-1] + final_test + 5
    test = np.where(e < onset, train + 3, train - 5)
    test_loss = np.where(e <= 50, 2.00 - 0.43 * (e - 1) / 49, 1.57)
    train_loss = 2.07 - 0.55 * (e - 1) / max(epochs - 1, 1)
    return pd.DataFrame(
        {
            "epoch": e,
            "train_loss": train_loss,
            "train_acc": train / 100,
            "test_loss": test_loss,
            "test_acc": test / 100,
        }
    )


def confusion(n: int = 1000) -> np.ndarray:
    m = np.zeros((10, 10), int)
    for i in range(10):
        m[i, i] = n - 50
        m[i, (i + 1) % 10] = 50
    cat, dog = CLASSES.index("cat"), CLASSES.index("dog")
    m[cat] = 0
    m[cat, cat], m[cat, dog], m[cat, 2] = 800, 150, 50
    m[dog] = 0
    m[dog, dog], m[dog, cat], m[dog, 7] = 820, 150, 30
    return m


def write_run(root, head, lr, seed, hist, n_train=50_000, n_test=10_000):
    d = root / config_mod.RUN_DIR.format(head=head, lr=lr, device="cpu", seed=seed, hash="x")
    d.mkdir(parents=True)
    hist.to_csv(d / "epochs.csv", index=False)
    conf = pd.DataFrame(confusion(), columns=CLASSES)
    conf.insert(0, "true", CLASSES)
    conf.to_csv(d / "confusion.csv", index=False)
    last = hist.iloc[-1]
    best = int(hist.test_acc.idxmax())
    metrics = {
        "lr": float(lr),
        "seed": seed,
        "device": "cpu",
        "device_name": "Test CPU",
        "head": head,
        "precision": "fp32",
        "epochs": len(hist),
        "n_train": n_train,
        "n_test": n_test,
        "steps_per_epoch": math.ceil(n_train / 128),
        "test_steps_per_epoch": math.ceil(n_test / 128),
        "parameters": 4_595_045,
        "final_test_acc": last.test_acc,
        "best_test_acc": hist.test_acc.max(),
        "best_epoch": best + 1,
        "final_train_acc": last.train_acc,
        "final_train_loss": last.train_loss,
        "final_test_loss": last.test_loss,
        "train_seconds": 10.0 * len(hist),
    }
    (d / "metrics.json").write_text(json.dumps(metrics))
    return d / "metrics.json"


FINALS = {"0.01": [89.5, 89.7, 89.6], "0.005": [87.5, 87.6, 87.4], "0.001": [87.4, 87.3, 87.5]}


def make_study(tmp_path, cfg, finals=FINALS, epochs=EPOCHS, onset=30):
    paths = []
    for lr, values in finals.items():
        for seed, v in enumerate(values):
            paths.append(write_run(tmp_path, "softmax", lr, seed, history(v, epochs, onset)))
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(cfg))
    return tables.load_study(config_path, paths)


@pytest.fixture
def study(tmp_path):
    return make_study(tmp_path, paper_config(seeds=[0, 1, 2]))


def test_hyperparameters_steps_from_data_size(study):
    hp = tables.hyperparameters(study).set_index("hyperparameter")
    assert list(hp.columns[:3]) == ["Model 1", "Model 2", "Model 3"]
    assert hp.loc["Learning rate", "Model 2"] == "0.005"
    assert hp.loc["Training steps per epoch"].tolist()[:3] == [391] * 3
    assert hp.loc["Test steps per epoch"].tolist()[:3] == [79] * 3
    assert hp.loc["Test steps per epoch", "paper"] == 78


def test_table4_mean_std_interval(study):
    t4 = tables.test_accuracy(study).set_index("lr")
    r = t4.loc["0.01"]
    assert r.n_seeds == 3
    assert r.final_mean == pytest.approx(89.6)
    assert r.final_std == pytest.approx(0.1)
    half = 4.302653 * 0.1 / math.sqrt(3)
    assert (r.final_ci_low, r.final_ci_high) == pytest.approx((89.6 - half, 89.6 + half), abs=1e-5)
    assert r.paper == 89.55 and r.difference == pytest.approx(0.05)
    assert r.paper_in_ci == "yes"
    assert t4.loc["0.001", "paper_in_ci"] == "yes"  # 87.44 in 87.4 +- 0.25
    assert t4.loc["0.005", "paper_in_ci"] == "yes"


def test_table4_single_seed_says_n_1(tmp_path):
    finals = {"0.01": [89.0], "0.005": [87.0]}
    s = make_study(tmp_path, paper_config(learning_rates=[0.01, 0.005]), finals)
    t4 = tables.test_accuracy(s)
    assert t4.n_seeds.tolist() == [1, 1]
    assert all(m.startswith("n = 1") for m in t4.ci_method)
    comp = tables.lr_comparison(s)
    assert comp.test.tolist() == [tables.stats.Z_TEST]


def test_lr_comparison_names_welch_and_finds_the_difference(study):
    comp = tables.lr_comparison(study)
    assert len(comp) == 3 and set(comp.test) == {tables.stats.WELCH}
    first = comp.iloc[0]
    assert (first.lr_a, first.lr_b) == ("0.01", "0.005")
    assert first.conclusion == "lr 0.01 better than lr 0.005"
    assert comp.iloc[2].conclusion == "no difference beyond noise"


def test_loss_floor_table(study):
    lf = tables.loss_floor(study)
    assert lf.floor.iloc[0] == pytest.approx(1.46115, abs=1e-5)
    paper = lf[lf.source == "paper"].iloc[0]
    assert paper.expected_test_loss == pytest.approx(1.5656, abs=1e-4)
    m = lf[(lf.source == "measured") & (lf.lr == "0.01")].iloc[0]
    assert m.expected_test_loss == pytest.approx(math.log(math.e + 9) - 0.896, abs=1e-9)


def test_timing_table_scales_subsets_and_keeps_paper_rows(study):
    study.timing = [
        {
            "device": "cpu",
            "device_name": "Test CPU",
            "precision": "fp32",
            "epochs": 2,
            "n_train": 1000,
            "seconds_total": 4.0,
            "seconds_per_epoch": 2.0,
            "train_images_per_s": 500.0,
        }
    ]
    t = tables.timing(study)
    cpu = t.iloc[0]
    assert cpu.minutes_per_5_epochs == pytest.approx(5 * 2.0 * 50 / 60)
    assert "not comparable" in cpu.note
    assert t[t.source == "paper"].minutes_per_5_epochs.tolist() == [3, 6]


def test_timing_table_keeps_the_warm_up_epoch_apart(study):
    """A compiled run's first epoch (44 s of compilation) must not set the rate: 150
    epochs are the first plus 149 at the later epochs' mean."""
    study.timing = [
        {
            "device": "cuda",
            "device_name": "Test GPU",
            "precision": "bf16",
            "epochs": 5,
            "n_train": 50_000,
            "seconds_total": 52.0,
            "seconds_per_epoch": 10.4,
            "seconds_first_epoch": 44.0,
            "seconds_per_epoch_after_first": 2.0,
            "train_images_per_s": 5000.0,
            "train_images_per_s_after_first": 31000.0,
        }
    ]
    gpu = tables.timing(study).iloc[0]
    assert gpu.seconds_first_epoch == 44.0 and gpu.seconds_per_epoch == 2.0
    assert gpu.images_per_s == 31000.0
    assert gpu.minutes_per_5_epochs == pytest.approx((44 + 4 * 2) / 60)
    assert gpu.hours_per_150_epochs == pytest.approx((44 + 149 * 2) / 3600)


def test_timing_table_without_measurements_has_the_same_columns(study):
    study.timing = []
    t = tables.timing(study)
    assert t.source.tolist() == ["paper", "paper"]
    assert "precision" in t.columns and "note" in t.columns


def test_detection_rules_on_constructed_curves():
    h = history(89.6)
    assert claims.gap_onset(h.train_acc * 100, h.test_acc * 100) == 30
    # a single-epoch excursion is not an onset
    gap = np.zeros(40)
    gap[10] = 5
    gap[20:] = 3
    assert claims.gap_onset(gap, np.zeros(40)) == 21
    assert claims.gap_onset(np.zeros(10), np.zeros(10)) is None
    # linear fall of 0.01 per epoch to epoch 41, then flat: delta = 5 % of 0.4 = 0.02
    loss = np.maximum(2.0 - 0.01 * np.arange(100), 1.6)
    assert claims.plateau_epoch(loss, smooth=1) == 39
    assert 45 <= claims.plateau_epoch(h.test_loss) <= 50


def test_claims_hold_on_a_paper_like_study(study):
    c = claims.check_all(study, tables.lr_comparison(study)).set_index("claim")
    assert list(c.columns) == ["paper", "measured", "verdict", "rule"]
    assert set(c.verdict) <= {claims.HOLDS, claims.FAILS, claims.NOT_MEASURABLE}
    for claim in (
        "Learning rate 0.01 gives the best test accuracy",
        "Final test accuracy is about 5 points below train accuracy",
        "Test accuracy starts to fall below train accuracy around epoch 30",
        "Test loss stops decreasing after about epoch 50",
        "Train loss falls from about 2.07 to 1.52",
        "Test loss falls from about 2.00 to 1.57",
        "Cat and dog are the classes most confused with each other",
        "Cat and dog have the lowest per-class accuracies",
        "Per-class accuracy of cat and dog is 78 % to 83.8 %",
        "lr 0.01 reaches 89.55 % test accuracy (Table 4)",
    ):
        assert c.loc[claim, "verdict"] == claims.HOLDS, claim
    assert (
        "epoch 30"
        in c.loc["Test accuracy starts to fall below train accuracy around epoch 30"].measured
    )
    assert c.loc["5 epochs take 3 min on a Colab GPU and 6 min on Apple MPS", "verdict"] == (
        claims.NOT_MEASURABLE
    )


def test_claims_fail_when_the_gap_opens_early(tmp_path):
    s = make_study(tmp_path, paper_config(seeds=[0, 1, 2]), onset=5)
    c = claims.check_all(s, tables.lr_comparison(s)).set_index("claim")
    row = c.loc["Test accuracy starts to fall below train accuracy around epoch 30"]
    assert row.verdict == claims.FAILS and "epoch 5" in row.measured


def test_claims_not_measurable_on_short_subset_runs(tmp_path):
    cfg = paper_config(seeds=[0, 1, 2], train={"epochs": 20})
    cfg["data"]["subset"] = {"train_per_class": 100, "test_per_class": 50}
    s = make_study(tmp_path, cfg, epochs=20)
    c = claims.check_all(s, tables.lr_comparison(s)).set_index("claim")
    assert (
        c.loc["Test loss stops decreasing after about epoch 50", "verdict"] == claims.NOT_MEASURABLE
    )
    assert (
        "needs >= 100 epochs, ran 20"
        in c.loc["Test loss stops decreasing after about epoch 50"].rule
    )
    # the heatmap claims are decided on any config
    assert c.loc["Cat and dog have the lowest per-class accuracies", "verdict"] == claims.HOLDS
    assert claims.comparability(cfg) == [
        "data subset (100 train / 50 test images per class)",
        "20 epochs instead of the paper's 150",
    ]
    assert claims.comparability(paper_config()) == []


def test_tables_cli_writes_exactly_the_six_csvs(tiny_runs, tmp_path):
    from repro.cli import main

    out = tmp_path / "tables"
    args = ["tables", "--config", str(tiny_runs["config_path"]), "--runs"]
    args += (
        [str(p) for p in tiny_runs["runs"]] + ["--timing"] + [str(p) for p in tiny_runs["timing"]]
    )
    assert main(args + ["--out-dir", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(tables.TABLE_FILES)
    t4 = pd.read_csv(out / "test_accuracy.csv")
    assert len(t4) == len(tiny_runs["config"]["learning_rates"])
    assert (t4.n_seeds == 2).all()
    assert (
        main(
            [
                "tables",
                "--config",
                str(tiny_runs["config_path"]),
                "--runs",
                str(tiny_runs["runs"][0]),
                "--timing",
                "--out-dir",
                str(tmp_path / "one"),
            ]
        )
        == 0
    )
