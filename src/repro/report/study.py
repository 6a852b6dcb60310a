"""A study: the resolved config, the finished runs (metrics, histories, confusion
matrices, per-image predictions), the timing JSONs and the data cache's metadata, loaded
once in one way for the tables, figures, provenance and report stages.

Accuracies are in percent from here on.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..errors import UserError
from ..files import MAX_JSON_BYTES, read_json, read_regular, require
from ..plan import paper
from ..plan.grid import lr_tag, variant_of
from ..plan.recorded import MAX_BYTES as MAX_RUN_FILE_BYTES
from ..plan.runfiles import check_distinct, identity, timing_problem
from ..plan.variants import REFERENCE
from .deviations import Cost, Deviation, cost_of, deviations, total_allowance


def where(df: pd.DataFrame, head: str, device: str, lr: str | None = None) -> pd.DataFrame:
    """The rows of one head and device (and learning rate) of any per-run table."""
    sel = df[(df["head"] == head) & (df["device"] == device)]
    return sel if lr is None else sel[sel["lr"] == lr]


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
    # every run of every variant (a `variant` column), with its history: the "why" section
    variant_runs: pd.DataFrame = field(default_factory=pd.DataFrame)
    variant_history: pd.DataFrame = field(default_factory=pd.DataFrame)

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

    def devices(self) -> list[str]:
        return sorted(set(self.runs["device"]))

    def groups(self):
        """(head, device, lr) groups in report order, with their runs."""
        for head in self.heads():
            for device in self.devices():
                for lr in self.lr_order():
                    sel = self.select(head, device, lr)
                    if len(sel):
                        yield head, device, lr, sel

    def select(self, head: str, device: str, lr: str | None = None) -> pd.DataFrame:
        """The runs of one head and device (and learning rate), by seed."""
        return where(self.runs, head, device, lr).sort_values("seed")

    def reference(self) -> tuple[str, str, str]:
        """(head, device, lr) that stands for the paper's single model: its curves, Fig. 4
        and the cat/dog findings. The faithful head and the seed's selected lr, else the
        best lr by mean final accuracy. Figures, tables and claims use this one choice."""
        heads = self.heads()
        head = "softmax" if "softmax" in heads else heads[0]
        device = self.devices()[0]
        sel = self.select(head, device)
        lrs = [lr for lr in self.lr_order() if lr in set(sel.lr)]
        if paper.SELECTED_LR in lrs:
            return head, device, paper.SELECTED_LR
        means = sel.groupby("lr").final_test_acc.mean()
        return head, device, max(lrs, key=lambda lr: means[lr])

    def paper_accuracy(self, lr: str) -> float:
        for key, value in self.config.get("paper", {}).get("test_accuracy", {}).items():
            if math.isclose(float(key), float(lr)):
                return float(value)
        return math.nan

    def mean_history(self, head: str, device: str, lr: str) -> pd.DataFrame:
        """Per-epoch mean and std over seeds of every history column."""
        cols = ["train_loss", "train_acc", "test_loss", "test_acc"]
        g = where(self.history, head, device, lr).groupby("epoch")[cols]
        out = g.mean().join(g.std(ddof=1).fillna(0.0).add_suffix("_std"))
        out["n"] = g.size()
        return out.reset_index()

    def paired_correct(self, head: str, device: str, lr_a: str, lr_b: str):
        """Per-image correctness of one run of each rate on the same test images (their
        lowest common seed), for a paired test; None where a run saved no predictions."""
        seeds_a = set(self.select(head, device, lr_a).seed)
        common = sorted(seeds_a & set(self.select(head, device, lr_b).seed))
        if not common:
            return None
        a = self.correct.get((head, lr_a, device, common[0]))
        b = self.correct.get((head, lr_b, device, common[0]))
        return (a, b) if a is not None and b is not None and len(a) == len(b) else None

    def deviations(self, precision_effect: str = "") -> list[Deviation]:
        """What this study changes against the seed, with the accuracy each may cost
        (``precision_effect``: see deviations.deviations)."""
        declared = (self.config.get("data") or {}).get("jpeg_cost")
        return deviations(self.data, sorted(set(self.runs.precision)), precision_effect, declared)

    def allowance(self) -> float:
        """The most our deviations may cost: the top of their range (points)."""
        return total_allowance(self.deviations())

    def cost(self) -> Cost | None:
        """What our images may cost in accuracy, with its sources (deviations.py), or None."""
        return cost_of(self.deviations())

    def summed_confusion(self, head: str, device: str, lr: str) -> pd.DataFrame:
        mats = [m for (h, r, d, _), m in self.confusion.items() if (h, r, d) == (head, lr, device)]
        return sum(mats[1:], mats[0].copy())


def _csv(path: Path) -> io.BytesIO:
    """A run's CSV as a regular file of bounded size (never a FIFO or device)."""
    return io.BytesIO(read_regular(require(path, "run file"), MAX_JSON_BYTES, "run file"))


def _correct(path: Path):
    """Per-image correctness from a run's predictions.csv (label, pred columns); None when
    the run predates them."""
    if not path.exists():
        return None
    df = pd.read_csv(_csv(path), usecols=["label", "pred"])
    return (df.label.to_numpy() == df.pred.to_numpy()).astype(bool)


def _run_row(m: dict, run_dir: Path) -> dict:
    return {
        "head": m["head"],
        "lr": lr_tag(m["lr"]),
        "device": m["device"],
        "seed": int(m["seed"]),
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


def _identity(run_dir: Path) -> dict[str, str]:
    """The run's identity (runfiles.identity) from its predictions, which this stage
    reads anyway: 10,000 images' probabilities that no other training repeats (a run
    without them has none here; the recorded runs' checks compare their histories too)."""
    path = run_dir / "predictions.csv"
    if not path.exists():
        return {}
    return identity({path.name: read_regular(path, MAX_RUN_FILE_BYTES, "run file")})


def _timing(path) -> dict:
    """A timing JSON whose numbers the report may print and divide by."""
    t = read_json(path, "timing JSON")
    problem = timing_problem(t)
    if problem:
        raise UserError(f"timing JSON {path} {problem}; run its timing job again")
    return t


def run_variant(cfg: dict, device: str, run_dir: Path) -> str:
    """Which variant of the config a run folder belongs to (its hash, the folder's name);
    ``other`` for a folder of no variant of this config. Without variants every run is
    the reference's (runs given by hand keep whatever folder name they have)."""
    if not cfg.get("variants"):
        return REFERENCE
    return variant_of(cfg, device, run_dir.name) or "other"


def load_study(config_path, run_paths, timing_paths=(), data_meta=None) -> Study:
    """The study: ``runs`` and the per-run tables hold the reference variant (``paper``)
    alone, as every table and figure of the paper's grid expects; ``variant_runs`` and
    ``variant_history`` hold every run with its variant."""
    cfg = read_json(config_path, "config JSON")
    rows, histories, confusion, correct, identities = [], [], {}, {}, []
    for path in run_paths:
        run_dir = Path(path).parent
        row = _run_row(read_json(path, "run metrics"), run_dir)
        identities.append((str(run_dir), _identity(run_dir)))
        row["variant"] = run_variant(cfg, row["device"], run_dir)
        key = (row["head"], row["lr"], row["device"], row["seed"])
        rows.append(row)
        hist = pd.read_csv(_csv(run_dir / "epochs.csv"))
        hist[["train_acc", "test_acc"]] *= 100
        histories.append(
            hist.assign(head=key[0], lr=key[1], device=key[2], seed=key[3], variant=row["variant"])
        )
        if row["variant"] == REFERENCE:
            confusion[key] = pd.read_csv(_csv(run_dir / "confusion.csv"), index_col="true")
            correct[key] = _correct(run_dir / "predictions.csv")
    if not rows:
        raise UserError("no runs given (--runs); pass the metrics.json of every training run")
    # two folders holding one training (a copy under another seed) would count it twice
    check_distinct(identities, "run folders")
    timing = [_timing(p) for p in timing_paths or ()]
    data = read_json(data_meta, "data metadata") if data_meta else {}
    all_runs, all_history = pd.DataFrame(rows), pd.concat(histories, ignore_index=True)
    ref = all_runs.variant == REFERENCE
    if not ref.any():
        raise UserError(
            "none of the runs given (--runs) is of the reference setup (variant paper); pass"
            " the runs the config's top-level settings describe"
        )
    history = all_history[all_history.variant == REFERENCE].reset_index(drop=True)
    return Study(
        cfg,
        all_runs[ref].reset_index(drop=True),
        history,
        confusion,
        timing,
        correct,
        data,
        variant_runs=all_runs,
        variant_history=all_history,
    )
