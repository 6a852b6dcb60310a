"""A training run's progress file: one small JSON, rewritten atomically after every epoch
and when the run stops, fails or ends, so that `repro status` can read the study from
files alone (a SLURM login node sees the compute nodes' runs only through the shared
file system). No torch here: status and the workflow's estimate read it.

The file is kept apart from the run folder: it holds wall times and a host name, and
the run folder's CSVs stay byte-identical between two CPU runs of one seed.
"""

from __future__ import annotations

import json
import math
import os
import socket
import time
from pathlib import Path

from ..errors import UserError
from ..files import read_json_bounded, write_atomic

# where the workflow puts a run's checkpoint, progress file and log (train.smk)
CHECKPOINT = "results/checkpoints/{head}/lr{lr}/{device}/seed{seed}/{hash}.pt"
PROGRESS = "results/progress/{head}/lr{lr}/{device}/seed{seed}/{hash}.json"
TRAIN_LOG = "logs/train/{head}/lr{lr}/{device}/seed{seed}/{hash}.log"
# the lock files by which concurrent cuda jobs of a project take one GPU each
GPU_SLOTS = ".repro/gpu-slots"

STATES = ("running", "stopped", "failed", "done")
MAX_PROGRESS_BYTES = 2**20  # a progress record is a few hundred bytes
MAX_EPOCHS = 10**6  # far above any run's (the schema bounds train.epochs)
MAX_SECONDS = 365 * 86400.0
MAX_CLOCK = 1e11
MAX_PID = 2**22  # Linux's pid_max limit; a larger one would overflow os.kill


class ProgressFile:
    """Writes one run's progress; ``path`` None writes nothing (runs outside the
    workflow that did not ask for one)."""

    def __init__(self, path: Path | None, epochs: int):
        self.path = Path(path) if path is not None else None
        self.record = {
            "state": "running",
            "epoch": 0,
            "epochs": epochs,
            "train_acc": None,
            "test_acc": None,
            "seconds_per_epoch": None,
            "elapsed": 0.0,
            "error": None,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started": time.time(),
            "updated": time.time(),
        }

    def update(self, **fields) -> None:
        if self.path is None:
            return
        self.record.update(fields, updated=time.time())
        write_atomic(self.path, json.dumps(self.record, indent=1) + "\n")


def read(path: Path) -> dict | None:
    """The progress record, or None when there is none or it is not one of ours (a
    half-written file cannot occur: it is replaced atomically)."""
    try:
        rec = read_json_bounded(path, MAX_PROGRESS_BYTES, "progress file")
    except UserError:
        return None
    if not isinstance(rec, dict) or rec.get("state") not in STATES or not _well_typed(rec):
        return None
    return rec


def number(value, low: float = 0.0, high: float = math.inf, optional: bool = True) -> bool:
    if value is None:
        return optional
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    return ok and math.isfinite(value) and low <= value <= high


def _well_typed(rec: dict) -> bool:
    """The fields status reads have the types this module writes (a forged or damaged
    file with a text accuracy or an infinite time is treated as no progress file)."""
    epoch, epochs = rec.get("epoch"), rec.get("epochs")
    return (
        # whole epochs, never more done than planned (an ETA is never negative)
        type(epoch) is int
        and type(epochs) is int
        and 0 <= epoch <= epochs <= MAX_EPOCHS
        and all(number(rec.get(k), high=1.0) for k in ("train_acc", "test_acc"))
        # times of this world: an epoch within a year, a clock before the year 5000
        and number(rec.get("seconds_per_epoch"), high=MAX_SECONDS)
        and number(rec.get("elapsed"), high=MAX_SECONDS * MAX_EPOCHS)
        and all(number(rec.get(k), high=MAX_CLOCK) for k in ("started", "updated"))
        and (rec.get("pid") is None or (type(rec["pid"]) is int and 0 < rec["pid"] < MAX_PID))
        and all(rec.get(k) is None or isinstance(rec[k], str) for k in ("host", "error"))
    )


def hms(seconds: float | None) -> str:
    """Seconds as h:mm:ss (the logs, the outcome line and status); '-' for unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "-"
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"
