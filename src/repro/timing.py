"""Stage 3: the seed's device comparison ("5 epochs: Colab GPU 3 min, Apple MPS 6 min"),
measured: train the configured model for ``timing.epochs`` on one device and record
wall time, images per second and the device's name."""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path

from .files import write_atomic
from .train import RunConfig, train_run


def measure(cfg: RunConfig, cache: Path, out: Path) -> dict:
    """Run ``cfg`` (no checkpoints, no step log) and write ``out`` (timing JSON)."""
    with tempfile.TemporaryDirectory(prefix="timing-", dir=out.parent) as tmp:
        # the run one level down: its lock file (beside the run folder) goes with tmp
        run = Path(tmp) / "run"
        m = train_run(cfg, cache, run, checkpoint=None, write_steps=False)
        epoch_times = (run / "epoch_times.csv").read_text()
    rows = [line.split(",") for line in epoch_times.splitlines()[1:]]
    train_seconds = sum(float(r[2]) for r in rows)
    steady = rows[1:] or rows  # the epochs after the warm-up one (see below)
    result = {
        "device": cfg.device,
        "device_name": m["device_name"],
        "precision": cfg.precision,
        "epochs": cfg.epochs,
        "n_train": m["n_train"],
        "seconds_total": m["train_seconds"],
        "seconds_per_epoch": m["train_seconds"] / cfg.epochs,
        # the first epoch carries warm-up (cudnn autotune, compile); report it apart
        "seconds_first_epoch": float(rows[0][1]),
        "train_images_per_s": m["n_train"] * cfg.epochs / train_seconds,
        "seconds_per_epoch_after_first": sum(float(r[1]) for r in steady) / len(steady),
        "train_images_per_s_after_first": m["n_train"]
        * len(steady)
        / sum(float(r[2]) for r in steady),
        "finite": all(math.isfinite(v) for v in (m["final_train_loss"], m["final_test_loss"])),
        "final_test_acc": m["final_test_acc"],
        "versions": m["versions"],
    }
    write_atomic(out, json.dumps(result, indent=2) + "\n")
    return result
