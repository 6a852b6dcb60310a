"""Stage 4: Tables 1-4, the learning-rate comparison, the paper's claims, device timing
and the loss floor, as CSV files, from the runs' histories and metrics.

This module also loads a study (config, runs, timing JSONs) for the figures and the
report, so that every stage reads the same numbers the same way.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from . import claims as claims_mod
from . import stats
from .config import lr_tag
from .errors import UserError
from .files import write_atomic

TABLE_FILES = (
    "hyperparameters.csv",
    "test_accuracy.csv",
    "lr_comparison.csv",
    "claims.csv",
    "timing.csv",
    "loss_floor.csv",
)
FULL_TRAIN = 50_000  # CIFAR-10 training images


@dataclass
class Study:
    """Everything the reporting stages read, with accuracies in percent."""

    config: dict
    runs: pd.DataFrame  # one row per run (metrics.json)
    history: pd.DataFrame  # one row per run and epoch (epochs.csv)
    confusion: dict = field(default_factory=dict)  # (head, lr, device, seed) -> DataFrame
    timing: list = field(default_factory=list)  # timing JSON dicts
    correct: dict = field(default_factory=dict)  # (head, lr, device, seed) -> bool per image
    data: dict = field(default_factory=dict)  # the data cache's metadata (sha256, source)

    @property
    def confidence(self) -> float:
        return float(self.config["report"]["confidence"])

    def lr_order(self) -> list[str]:
        """Learning rates in config order (the paper's Model 1, 2, 3), then any others."""
        order = [lr_tag(v) for v in self.config.get("learning_rates", [])]
        extra = sorted(set(self.runs["lr"]) - set(order), key=lambda t: -float(t))
        return [t for t in order if t in set(self.runs["lr"])] + extra

    def heads(self) -> list[str]:
        order = [h for h in self.config.get("heads", []) if h in set(self.runs["head"])]
        return order + sorted(set(self.runs["head"]) - set(order))

    def groups(self):
        """(head, device, lr) groups in report order, with their runs."""
        for head in self.heads():
            for device in sorted(set(self.runs["device"])):
                for lr in self.lr_order():
                    sel = self.runs[
                        (self.runs["head"] == head)
                        & (self.runs.device == device)
                        & (self.runs.lr == lr)
                    ]
                    if len(sel):
                        yield head, device, lr, sel.sort_values("seed")

    def paper_accuracy(self, lr: str) -> float:
        for key, value in self.config.get("paper", {}).get("test_accuracy", {}).items():
            if math.isclose(float(key), float(lr)):
                return float(value)
        return math.nan

    def mean_history(self, head: str, device: str, lr: str) -> pd.DataFrame:
        """Per-epoch mean and std over seeds of every history column."""
        h = self.history
        sel = h[(h["head"] == head) & (h.device == device) & (h.lr == lr)]
        cols = ["train_loss", "train_acc", "test_loss", "test_acc"]
        g = sel.groupby("epoch")[cols]
        out = g.mean().join(g.std(ddof=1).fillna(0.0).add_suffix("_std"))
        out["n"] = g.size()
        return out.reset_index()

    def select(self, head: str, device: str, lr: str | None = None) -> pd.DataFrame:
        """The runs of one head and device (and learning rate), by seed."""
        r = self.runs
        sel = r[(r["head"] == head) & (r.device == device)]
        return (sel if lr is None else sel[sel.lr == lr]).sort_values("seed")

    def paired_correct(self, head: str, device: str, lr_a: str, lr_b: str):
        """Per-image correctness of one run of each rate on the same test images (their
        lowest common seed), for a paired test; None where a run saved no predictions."""
        seeds_a = set(self.select(head, device, lr_a).seed)
        common = sorted(seeds_a & set(self.select(head, device, lr_b).seed))
        for seed in common[:1]:
            a = self.correct.get((head, lr_a, device, seed))
            b = self.correct.get((head, lr_b, device, seed))
            if a is not None and b is not None and len(a) == len(b):
                return a, b
        return None

    def deviations(self) -> list:
        """What this study changes against the seed, with the accuracy each may cost."""
        return claims_mod.deviations(self.data, sorted(set(self.runs.precision)))

    def tolerance(self) -> float:
        return sum(d.tolerance for d in self.deviations())

    def summed_confusion(self, head: str, device: str, lr: str) -> pd.DataFrame:
        mats = [m for (h, r, d, _), m in self.confusion.items() if (h, r, d) == (head, lr, device)]
        return sum(mats[1:], mats[0].copy())


def _read_json(path: Path, what: str) -> dict:
    path = Path(path)
    if not path.exists():
        raise UserError(f"{what} {path} does not exist; run the stage that writes it first")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise UserError(f"{what} {path} is not valid JSON ({e}); delete it and rerun") from None


def _correct(path: Path):
    """Per-image correctness from a run's predictions.csv (label, pred columns); None when
    the run predates them."""
    if not path.exists():
        return None
    df = pd.read_csv(path, usecols=["label", "pred"])
    return (df.label.to_numpy() == df.pred.to_numpy()).astype(bool)


def load_study(config_path, run_paths, timing_paths=(), data_meta=None) -> Study:
    cfg = _read_json(config_path, "config JSON")
    rows, histories, confusion, correct = [], [], {}, {}
    for path in run_paths:
        m = _read_json(path, "run metrics")
        run_dir = Path(path).parent
        key = (m["head"], lr_tag(m["lr"]), m["device"], int(m["seed"]))
        rows.append(
            {
                "head": key[0],
                "lr": key[1],
                "device": key[2],
                "seed": key[3],
                "device_name": m.get("device_name", m["device"]),
                "precision": m.get("precision", ""),
                "epochs": int(m["epochs"]),
                "n_train": int(m["n_train"]),
                "n_test": int(m["n_test"]),
                "steps_per_epoch": int(m["steps_per_epoch"]),
                "test_steps_per_epoch": int(m["test_steps_per_epoch"]),
                "parameters": int(m["parameters"]),
                "final_test_acc": 100 * m["final_test_acc"],
                "best_test_acc": 100 * m["best_test_acc"],
                "best_epoch": int(m["best_epoch"]),
                "final_train_acc": 100 * m["final_train_acc"],
                "final_train_loss": m["final_train_loss"],
                "final_test_loss": m["final_test_loss"],
                "train_seconds": m["train_seconds"],
                "wall_seconds": m.get("wall_seconds_this_process", math.nan),
                "path": str(run_dir),
            }
        )
        hist = pd.read_csv(run_dir / "epochs.csv")
        hist[["train_acc", "test_acc"]] *= 100
        histories.append(hist.assign(head=key[0], lr=key[1], device=key[2], seed=key[3]))
        confusion[key] = pd.read_csv(run_dir / "confusion.csv", index_col="true")
        correct[key] = _correct(run_dir / "predictions.csv")
    if not rows:
        raise UserError("no runs given (--runs); pass the metrics.json of every training run")
    timing = [_read_json(p, "timing JSON") for p in timing_paths or ()]
    data = _read_json(data_meta, "data metadata") if data_meta else {}
    history = pd.concat(histories, ignore_index=True)
    return Study(cfg, pd.DataFrame(rows), history, confusion, timing, correct, data)


# ---- the tables -------------------------------------------------------------------


def hyperparameters(study: Study) -> pd.DataFrame:
    """Tables 1-3: one column per learning rate (model), the paper's values alongside."""
    t = study.config["train"]
    r = study.runs.iloc[0]
    n_train, n_test = int(r.n_train), int(r.n_test)
    steps = math.ceil(n_train / t["batch_size"])
    test_steps = math.ceil(n_test / t["test_batch_size"])
    names = [
        "Batch size - Training set",
        "Batch size - Test set",
        "Learning rate",
        "Weight decay",
        "Momentum",
        "Number of epochs",
        "Training steps per epoch",
        "Test steps per epoch",
    ]
    table = pd.DataFrame({"hyperparameter": names})
    for i, lr in enumerate(study.lr_order(), start=1):
        table[f"Model {i}"] = [
            t["batch_size"],
            t["test_batch_size"],
            lr,
            f"{t['weight_decay']:g}",
            f"{t['momentum']:g}",
            t["epochs"],
            steps,
            test_steps,
        ]
    lrs = study.lr_order()
    paper_lrs = " / ".join(lr for lr in lrs if not math.isnan(study.paper_accuracy(lr)))
    table["paper"] = [128, 128, paper_lrs, "5e-4", 0.9, study.config["paper"]["epochs"], 391, 78]
    table["note"] = [
        "",
        "",
        "one model per learning rate",
        "",
        "",
        "",
        f"ceil({n_train} / {t['batch_size']}); ceil(50000 / 128) = 391 on full data",
        f"ceil({n_test} / {t['test_batch_size']}); full data gives ceil(10000 / 128) = 79,"
        " the seed printed 78 (10000 / 128 rounded down)",
    ]
    return table


def test_accuracy(study: Study) -> pd.DataFrame:
    """Table 4: final and best test accuracy per head and learning rate over seeds, and
    whether the paper's single run is where one more run of ours would land (prediction
    interval, raised by the declared tolerance of our deviations)."""
    rows = []
    c = study.confidence
    tol = study.tolerance()
    decided = not claims_mod.comparability(study.config)
    for head, device, lr, runs in study.groups():
        n_test = int(runs.n_test.iloc[0])
        fin = stats.summarize(runs.final_test_acc, c, n_test)
        best = stats.summarize(runs.best_test_acc, c, n_test)
        lo, hi, method = stats.prediction_interval(runs.final_test_acc, c, n_test, tol)
        paper = study.paper_accuracy(lr)
        verdict = claims_mod.NOT_MEASURABLE
        if not math.isnan(paper) and decided:
            verdict = claims_mod.HOLDS if lo <= paper <= hi else claims_mod.FAILS
        rows.append(
            {
                "head": head,
                "device": device,
                "lr": lr,
                "n_seeds": fin.n,
                "final_mean": fin.mean,
                "final_std": fin.std,
                "final_ci_low": fin.ci_low,
                "final_ci_high": fin.ci_high,
                "best_mean": best.mean,
                "best_std": best.std,
                "best_ci_low": best.ci_low,
                "best_ci_high": best.ci_high,
                "ci_method": fin.method,
                "pred_low": lo,
                "pred_high": hi,
                "pred_method": method,
                "tolerance": tol,
                "paper": paper,
                "difference": fin.mean - paper,
                "verdict": verdict if not math.isnan(paper) else "n/a",
            }
        )
    return pd.DataFrame(rows)


def lr_comparison(study: Study) -> pd.DataFrame:
    rows = []
    alpha = 1 - study.confidence
    for head in study.heads():
        for device in sorted(set(study.runs.device)):
            sel = study.select(head, device)
            groups = {lr: sel[sel.lr == lr].final_test_acc.tolist() for lr in study.lr_order()}
            groups = {k: v for k, v in groups.items() if v}
            if len(groups) < 2:
                continue
            paired = functools.partial(study.paired_correct, head, device)
            for r in stats.pairwise(groups, int(sel.n_test.iloc[0]), alpha, paired):
                rows.append(
                    {
                        "head": head,
                        "device": device,
                        "lr_a": r["a"],
                        "lr_b": r["b"],
                        "n_a": len(groups[r["a"]]),
                        "n_b": len(groups[r["b"]]),
                        "mean_a": r["mean_a"],
                        "mean_b": r["mean_b"],
                        "difference": r["difference"],
                        "test": r["test"],
                        "statistic": r["statistic"],
                        "p_value": r["p_value"],
                        "p_holm": r["p_holm"],
                        "alpha": alpha,
                        "better": r["better"] or "",
                        "conclusion": _conclusion(r),
                    }
                )
    cols = ["head", "device", "lr_a", "lr_b", "n_a", "n_b", "mean_a", "mean_b", "difference"]
    cols += ["test", "statistic", "p_value", "p_holm", "alpha", "better", "conclusion"]
    return pd.DataFrame(rows, columns=cols)


def _conclusion(r: dict) -> str:
    if r["better"] is None:
        return "inconclusive"
    worse = r["b"] if r["better"] == r["a"] else r["a"]
    return f"lr {r['better']} better than lr {worse}"


def timing(study: Study) -> pd.DataFrame:
    """Measured devices (timing JSONs) next to the paper's 5-epoch times."""
    rows = []
    for t in study.timing:
        scale = FULL_TRAIN / t["n_train"]
        # the first epoch carries one-time warm-up (cuDNN autotuning; compilation and
        # CUDA-graph capture for a compiled model): the later epochs give the rate
        first = t.get("seconds_first_epoch", t["seconds_per_epoch"])
        later = t.get("seconds_per_epoch_after_first", t["seconds_per_epoch"])
        subset = t["n_train"] < FULL_TRAIN
        rows.append(
            {
                "source": "measured",
                "device": t["device"],
                "device_name": t["device_name"],
                "precision": t.get("precision", ""),
                "epochs": t["epochs"],
                "n_train": t["n_train"],
                "seconds_total": t["seconds_total"],
                "seconds_first_epoch": first,
                "seconds_per_epoch": later,
                "images_per_s": t.get("train_images_per_s_after_first", t["train_images_per_s"]),
                "minutes_per_5_epochs": (first + 4 * later) * scale / 60,
                "hours_per_150_epochs": (first + 149 * later) * scale / 3600,
                "note": (
                    f"subset of {t['n_train']} images: scaled linearly to 50000, an estimate,"
                    " not comparable"
                    if subset
                    else "full data"
                ),
            }
        )
    for label, minutes in study.config["paper"]["timing_minutes_5_epochs"].items():
        rows.append(
            {
                "source": "paper",
                "device": label,
                "device_name": label,
                # the column must exist when nothing was measured (timing disabled or
                # not recorded): the report reads it
                "precision": "",
                "epochs": 5,
                "n_train": FULL_TRAIN,
                "seconds_total": 60 * minutes,
                "seconds_first_epoch": float("nan"),
                "seconds_per_epoch": 12 * minutes,
                "images_per_s": FULL_TRAIN * 5 / (60 * minutes),
                "minutes_per_5_epochs": float(minutes),
                "hours_per_150_epochs": 30 * minutes / 60,
                "note": "as reported by the seed (150 epochs: 1.5 h Colab, 3 h MPS)",
            }
        )
    return pd.DataFrame(rows)


def loss_floor(study: Study) -> pd.DataFrame:
    """The Softmax + CrossEntropyLoss floor next to expected and measured losses."""
    floor = stats.softmax_ce_floor(10)
    rows = []
    for head, device, lr, runs in study.groups():
        soft = head == "softmax"
        tr_acc, te_acc = runs.final_train_acc.mean(), runs.final_test_acc.mean()
        rows.append(
            {
                "source": "measured",
                "head": head,
                "device": device,
                "lr": lr,
                "n_seeds": len(runs),
                "floor": floor if soft else 0.0,
                "uniform_loss": stats.softmax_ce_uniform(10),
                "final_train_acc": tr_acc,
                "expected_train_loss": stats.softmax_ce_expected(tr_acc) if soft else math.nan,
                "final_train_loss": runs.final_train_loss.mean(),
                "final_test_acc": te_acc,
                "expected_test_loss": stats.softmax_ce_expected(te_acc) if soft else math.nan,
                "final_test_loss": runs.final_test_loss.mean(),
            }
        )
    # The seed's own numbers: about 94 % train and 89.55 % test accuracy, loss 1.52 / 1.57.
    rows.append(
        {
            "source": "paper",
            "head": "softmax",
            "device": "",
            "lr": "0.01",
            "n_seeds": 1,
            "floor": floor,
            "uniform_loss": stats.softmax_ce_uniform(10),
            "final_train_acc": 94.0,
            "expected_train_loss": stats.softmax_ce_expected(94.0),
            "final_train_loss": 1.52,
            "final_test_acc": 89.55,
            "expected_test_loss": stats.softmax_ce_expected(89.55),
            "final_test_loss": 1.57,
        }
    )
    return pd.DataFrame(rows)


def build_all(study: Study) -> dict[str, pd.DataFrame]:
    comparison = lr_comparison(study)
    return {
        "hyperparameters.csv": hyperparameters(study),
        "test_accuracy.csv": test_accuracy(study),
        "lr_comparison.csv": comparison,
        "claims.csv": claims_mod.check_all(study, comparison),
        "timing.csv": timing(study),
        "loss_floor.csv": loss_floor(study),
    }


def write_csv(df: pd.DataFrame, path: Path) -> None:
    write_atomic(path, df.to_csv(index=False, float_format="%.6g"))


# ---- CLI --------------------------------------------------------------------------


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="resolved config (results/config.json)")
    parser.add_argument("--runs", nargs="+", required=True, help="metrics.json of every run")
    parser.add_argument("--timing", nargs="*", default=[], help="timing.json per device")
    parser.add_argument("--data-meta", help="the data cache's .json (sha256, source)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser)
    parser.add_argument("--out-dir", required=True, help="folder for the CSV tables")


def main(args: argparse.Namespace) -> int:
    study = load_study(args.config, args.runs, args.timing, args.data_meta)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, df in build_all(study).items():
        write_csv(df, out / name)
    return 0


def read_tables(folder) -> dict[str, pd.DataFrame]:
    """The CSVs written by ``main`` (for the report)."""
    folder = Path(folder)
    out = {}
    for name in TABLE_FILES:
        path = folder / name
        if not path.exists():
            raise UserError(f"table {path} does not exist; run `python -m repro tables` first")
        text = dict.fromkeys(("lr", "lr_a", "lr_b", "better"), str)
        dtype = str if name == "hyperparameters.csv" else text
        out[name] = pd.read_csv(path, keep_default_na=False, na_values=[""], dtype=dtype)
    return out
