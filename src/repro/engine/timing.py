"""Stage 3: the seed's device comparison ("5 epochs: Colab GPU 3 min, Apple MPS 6 min"),
measured: train the configured model for ``timing.epochs`` on one device and record
wall time, images per second and the device's name."""

from __future__ import annotations

import json
import math
from pathlib import Path

from ..files import write_atomic
from .devices import device_name
from .train import (
    DeviceData,
    RunConfig,
    RunState,
    epoch_row,
    fit,
    fresh_state,
    load_data,
    log_epoch,
    log_start,
    run_versions,
    setup_device,
    stop_if_orphaned,
    stoppable,
    time_rows,
)
from .train_lock import Ancestry


def measure(cfg: RunConfig, cache: Path, out: Path) -> dict:
    """Train ``cfg`` from its start (no checkpoint, no step log, no run folder) and write
    ``out`` (timing JSON)."""
    cfg = cfg.on_this_machine()
    ancestry = Ancestry()
    dd = DeviceData(load_data(cfg, cache), setup_device(cfg))
    state = fresh_state(cfg, dd.device)

    def after_epoch(state: RunState) -> None:
        log_epoch(state.history, cfg.epochs)
        stop_if_orphaned(ancestry, state.history["epoch"], cfg.epochs)

    with stoppable(lambda: f"timing {out} not written"):
        log_start(cfg, dd)
        history = fit(cfg, dd, state, keep_steps=False, after_epoch=after_epoch)
    result = timing_result(cfg, history, dd.n_train)
    write_atomic(out, json.dumps(result, indent=2) + "\n")
    return result


def timing_result(cfg: RunConfig, history: dict, n_train: int) -> dict:
    """The timing JSON of a finished ``history`` of ``n_train`` images per epoch."""
    times = time_rows(history)
    steady = times[1:] or times  # the epochs after the warm-up one (see below)
    last = epoch_row(history)
    return {
        "device": cfg.device,
        "device_name": device_name(cfg.device),
        "precision": cfg.precision,
        "epochs": cfg.epochs,
        "n_train": n_train,
        "seconds_total": history["elapsed"],
        "seconds_per_epoch": history["elapsed"] / cfg.epochs,
        # the first epoch carries warm-up (cudnn autotune, compile); report it apart
        "seconds_first_epoch": times[0]["seconds"],
        "train_images_per_s": n_train * cfg.epochs / sum(t["train_seconds"] for t in times),
        "seconds_per_epoch_after_first": sum(t["seconds"] for t in steady) / len(steady),
        "train_images_per_s_after_first": n_train
        * len(steady)
        / sum(t["train_seconds"] for t in steady),
        "finite": all(math.isfinite(last[k]) for k in ("train_loss", "test_loss")),
        "final_test_acc": last["test_acc"],
        "versions": run_versions(),
    }
