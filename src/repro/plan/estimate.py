"""What a workflow run is about to do and how long it will take, printed before its first
job (the Snakefile's onstart): runs, epochs, images, and per device an estimate from a
short calibration (a few real training steps of the configured model, in a child
process with a time limit) or from a figure recorded earlier.

The calibration runs only when Snakemake is about to execute jobs (never for
`snakemake -n`), only for devices present on this host, and is cached per machine and
model settings under resources/calibration/, so a second start costs nothing.
`estimate.calibrate: false` skips it. Nothing here can stop a run: a failed or slow
calibration only leaves the time unknown. No torch: the calibration's steps are timed
by the engine (engine.calibrate) in that child process.
"""

from __future__ import annotations

import hashlib
import json
import math
import socket
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

from ..errors import UserError
from ..files import read_json_bounded
from ..text import for_terminal
from . import dataset, grid, paper
from . import machine as devices
from .architecture import macs_per_image
from .config import short
from .machine import package_versions
from .settings import ModelSpec, RunConfig
from .status import load_config, planned_runs, run_status

CACHE_DIR = Path("resources/calibration")
MAX_CACHE_BYTES = 2**20  # a cached calibration is a few hundred bytes
CALIBRATION_TIMEOUT_S = 30.0
# what the child process aims to stay within, start-up included (the bound: 15 s)
CALIBRATION_TOTAL_S = 12.0
# seconds of timed training steps the child process aims for after one warm-up step
CALIBRATION_STEPS_S = 2.0
# Recorded full-data epochs (50,000 training + 10,000 test images, paper model) for
# devices that cannot be calibrated here (a cluster's GPUs seen from the login node);
# BENCHMARKS.md has the measurements.
RECORDED = {
    "cuda": {
        "name": "one NVIDIA H100 80GB (recorded 2026-11-26)",
        "compiled": 2.0,  # torch.compile reduce-overhead, bf16 (recorded/h100-2026-11-26)
        "eager": 8.3,  # eager, bf16 autocast
    },
}
# a test image costs about a third of a training image (forward only)
EVAL_COST = 1 / 3
# Full-data epochs of the adopted model (ModelSpec(): 0.484 GMAC per image), one run
# alone, compiled with CUDA graphs, by GPU and precision (BENCHMARKS.md): what a queued
# run's GPU time is scaled from. H100 bf16: measured, 2026-11-26; H100 fp32: the bf16
# epoch times the profiled steps' ratio (4.98 / 4.25 ms), not a measured epoch; H200
# fp32: the median epoch of the run trained 2026-11-30.
GPU_EPOCH_S = {"H100": {"bf16": 2.0, "fp32": 2.3}, "H200": {"fp32": 2.0}}
FULL_TRAIN, FULL_TEST = 50_000, 10_000


def images(cfg: dict) -> tuple[int, int]:
    n = dataset.subset_images(cfg)
    return n["train"], n["test"]


def calibration_run(cfg: dict, device: str):
    """The run a calibration times: the config's model, batch and precision on
    ``device`` (lr and seed change no step's cost)."""
    return grid.run_config(cfg, cfg["heads"][0], 0.01, device, 0)


def calibration_key(cfg: dict, device: str) -> str:
    """This machine, this torch and every setting that changes a step's cost."""
    rc = calibration_run(cfg, device)
    key = {
        "host": socket.gethostname(),
        "cpu": devices.cpu_name(),
        "torch": package_versions(("torch",))["torch"],
        "device": device,
        "batch": rc.batch_size,
        "precision": rc.precision,
        "model": asdict(rc.model),
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    return f"{device}-{digest}"


def cached(cfg: dict, device: str, root: Path) -> dict | None:
    """The cached calibration of this machine and config on ``device``, or None where
    there is none; a cache that is not one of ours (a missing key, text where a number
    belongs, a step time of Infinity or 1e-12) is one line naming the file: an estimate
    of "about inf h" or "-999999998 s" would mislead."""
    path = root / CACHE_DIR / f"{calibration_key(cfg, device)}.json"
    if not path.is_file() and not path.is_symlink():
        return None
    rec = read_json_bounded(path, MAX_CACHE_BYTES, "calibration cache")
    problem = calibration_problem(rec)
    if problem:
        raise UserError(
            f"calibration cache {path}: {problem}; delete it (the estimate measures again)"
        )
    return rec


# what a calibration of one training step may say: a step of one batch takes between
# 10 us (a tiny model on a GPU) and an hour; start-up within an hour
CALIBRATION_FIELDS = {
    "step_s": (float, 1e-5, 3600.0),
    "startup_s": (float, 0.0, 3600.0),
    "threads": (int, 1, 4096),
}


def calibration_problem(rec) -> str | None:
    """What makes ``rec`` no calibration of ours, or None."""
    if not isinstance(rec, dict):
        return "not a JSON object"
    for key, (kind, low, high) in CALIBRATION_FIELDS.items():
        value = rec.get(key)
        ok = type(value) is int or (kind is float and type(value) is float)
        if not (ok and math.isfinite(value) and low <= value <= high):
            return f"{key} = {short(value)} is not a number in [{low:g}, {high:g}]"
    for key in ("device_name", "measured"):
        if not (isinstance(rec.get(key), str) and len(rec[key]) <= 200):
            return f"{key} = {short(rec.get(key))} is not a name"
    return None


def calibrate(cfg: dict, device: str, root: Path, timeout: float = CALIBRATION_TIMEOUT_S):
    """Time a few training steps in a child process (`python -m repro step-time`), cache
    and return the result; None when it failed or ran out of time."""
    out = root / CACHE_DIR / f"{calibration_key(cfg, device)}.json"
    run = json.dumps(asdict(calibration_run(cfg, device)), sort_keys=True)
    cmd = [sys.executable, "-m", "repro", "step-time", "--run", run, "--out", str(out)]
    t0 = time.perf_counter()
    try:
        subprocess.run(cmd, cwd=root, capture_output=True, timeout=timeout, check=True)
    except (subprocess.SubprocessError, OSError):
        return None
    rec = cached(cfg, device, root)
    if rec is not None:
        rec["calibration_wall_s"] = time.perf_counter() - t0
    return rec


def epoch_seconds(step_s: float, batch: int, n_train: int, n_test: int) -> float:
    return (math.ceil(n_train / batch) + EVAL_COST * n_test / batch) * step_s


def gpu_minutes(rc: RunConfig, n_train: int, n_test: int) -> dict[str, float | None]:
    """Estimated minutes of training epochs for ``rc`` on each GPU of ``GPU_EPOCH_S``
    (None where its precision was not measured there; ``auto`` is bf16 on a GPU): the
    measured epoch scaled by the run's multiply-accumulates per image over the adopted
    model's, by its images and by its epochs. Scaling by MACs assumes the convolutions
    bound the step, as the fp32 profile shows at today's widths (kernels 5.08 ms of a
    4.98 ms step); wider convolutions usually use a GPU better, so this errs long.
    Compilation (about 36 s in fp32) and data preparation are not included."""
    precision = "bf16" if rc.precision == "auto" else rc.precision
    ratio = macs_per_image(rc.model) / macs_per_image(ModelSpec())
    images = (n_train + EVAL_COST * n_test) / (FULL_TRAIN + EVAL_COST * FULL_TEST)
    return {
        gpu: None if precision not in s else s[precision] * ratio * images * rc.epochs / 60
        for gpu, s in GPU_EPOCH_S.items()
    }


def hours(seconds: float) -> str:
    if 0 < seconds < 1:
        return "a second"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 72 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 3600:.0f} h ({seconds / 86400:.1f} days)"


def for_study(configfiles: list[Path], calibrate: bool = True) -> list[str]:
    """`python -m repro estimate`: the estimate for the study the config files describe
    (as `status` reads them), run from the project folder."""
    cfg = load_config(configfiles)
    if cfg["recorded"]:
        return [f"nothing trains: the runs are copied from {cfg['recorded']}"]
    runs = planned_runs(cfg, Path("."))
    timing = grid.timing_devices(cfg)
    return lines(cfg, runs, timing, Path("."), True, calibrate and cfg["estimate"]["calibrate"])


def lines(
    cfg: dict,
    runs: list[dict],
    timing: list[str],
    root: Path,
    local: bool,
    calibrate_now: bool,
) -> list[str]:
    """The estimate: ``runs`` as repro.grid.runs gives them, ``timing`` the timing
    stage's devices; epochs already trained or checkpointed (repro.plan.status) are not
    counted again. ``local``: the jobs run on this host (calibrate only then)."""
    n_train, n_test = images(cfg)
    epochs = cfg["train"]["epochs"]
    now = time.time()
    done: dict[str, int] = {}
    jobs: dict[str, int] = {}
    for r in runs:
        st = run_status(root, r, epochs, now)
        done[r["device"]] = done.get(r["device"], 0) + st.epoch
        jobs[r["device"]] = jobs.get(r["device"], 0) + (st.state != "done")
    planned = len(runs) * epochs
    lrs = ", ".join(grid.lr_tag(lr) for lr in cfg["learning_rates"])
    seeds = ", ".join(map(str, cfg["seeds"]))
    head = (
        f"plan: {len(runs)} runs x {epochs} epochs (heads {', '.join(cfg['heads'])}; "
        f"lr {lrs}; seeds {seeds}) on {n_train:,} training / {n_test:,} test images = "
        f"{planned:,} epochs, {_images(planned * n_train)} training images; "
        f"{planned - sum(done.values()):,} epochs left"
    )
    if timing:
        head += f"; timing stage: {cfg['timing']['epochs']} epochs on {', '.join(timing)}"
    out = [head]
    for device in sorted(set(jobs) | set(timing)):
        left = sum(r["device"] == device for r in runs) * epochs - done.get(device, 0)
        n_jobs = jobs.get(device, 0)
        timed = (root / "results" / "timing" / device / "timing.json").exists()
        if device in timing and not timed:
            left, n_jobs = left + cfg["timing"]["epochs"], n_jobs + 1
        line = device_line(cfg, device, left, n_jobs, root, local, calibrate_now)
        out.append("  " + line)
    packs = [p for p in grid.packs(cfg) if any(r in runs for r in p)]
    if packs:
        # the wide layout's speed on a GPU is not measured yet: said, not guessed
        out.append(
            f"  cuda: {sum(len(p) for p in packs)} runs in {len(packs)} packs of up to "
            f"{cfg['train']['pack']} (train.pack); the estimate above counts them one "
            "after the other: a pack's own speed is not measured yet"
        )
    if "cuda" not in jobs:
        rec = RECORDED["cuda"]
        full = rec["compiled"] * planned * epoch_share(n_train, n_test)
        out.append(
            f"  for scale: on {rec['name']}, compiled with CUDA graphs, these runs take "
            f"about {hours(full)}"
        )
    if n_train == paper.N_TRAIN:
        out.append("  for a quick look: --configfile config/smoke.yaml (minutes on a CPU)")
    if cfg["estimate"]["calibrate"]:
        out.append("  to skip the calibration: --config 'estimate={calibrate: false}'")
    return out


def epoch_share(n_train: int, n_test: int) -> float:
    """An epoch on these images as a fraction of a full-data epoch."""
    return (n_train + EVAL_COST * n_test) / (paper.N_TRAIN + EVAL_COST * paper.N_TEST)


def device_line(cfg, device, epochs_left, jobs, root, local, calibrate_now) -> str:
    n_train, n_test = images(cfg)
    batch = cfg["train"]["batch_size"]
    precision = grid.precision_for(cfg, device)
    head = f"{device} ({precision}): {epochs_left:,} epochs"
    rec = cached(cfg, device, root)
    # dated: a figure cached on a busy afternoon stays until resources/calibration/ is
    # cleared
    how = f"calibrated {rec['measured']}" if rec else ""
    present = local and device in ("cpu", devices.likely_auto())
    tried = rec is None and calibrate_now and present
    if tried:
        rec, how = calibrate(cfg, device, root), "calibrated now"
    if rec is not None:
        per_epoch = epoch_seconds(rec["step_s"], batch, n_train, n_test)
        total = epochs_left * per_epoch + jobs * rec["startup_s"]
        return (
            f"{head} on {rec['device_name']}, {rec['threads']} threads: "
            f"{rec['step_s']:.2f} s per step of {batch} ({how}), {per_epoch:.1f} s per epoch "
            f"-> about {hours(total)} one run after the other"
        )
    if device in RECORDED:
        r = RECORDED[device]
        full = r["compiled"] if cfg["train"]["compile"] else r["eager"]
        total = epochs_left * full * epoch_share(n_train, n_test)
        return f"{head}: about {hours(total)} on {r['name']}"
    if tried:
        why = (
            f"the calibration did not finish within {CALIBRATION_TIMEOUT_S:.0f} s, a busy "
            "machine?; `python -m repro estimate` retries"
        )
    else:
        why = "calibration skipped" if not calibrate_now else "not on this host: not calibrated"
    return f"{head}: time unknown ({why})"


def announce(cfg: dict, runs: list[dict], timing: list[str], root: Path, local: bool) -> None:
    """Print the estimate (Snakemake's onstart); any failure is reported, never raised:
    the estimate must not stop a run."""
    try:
        text = lines(cfg, runs, timing, root, local, cfg["estimate"]["calibrate"])
    except Exception as e:  # noqa: BLE001 - whatever went wrong, the run goes on
        text = [f"estimate unavailable ({type(e).__name__}: {e})"]
    print("\n".join(map(for_terminal, text)), file=sys.stderr, flush=True)


def _images(n: int) -> str:
    """A count of images as a reader takes it in: millions from 100,000 on, else exact."""
    return f"{n / 1e6:.2f} M" if n >= 100_000 else f"{n:,}"
