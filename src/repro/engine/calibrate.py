"""The estimate's calibration: seconds per training step of a run's model, batch and
precision on this machine, measured on random images in a short child process
(`python -m repro step-time`, started by plan.estimate)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from ..files import write_atomic
from ..plan.estimate import CALIBRATION_STEPS_S, CALIBRATION_TOTAL_S
from .devices import device_name


def measure_step_seconds(rc, budget_s: float = CALIBRATION_STEPS_S, max_steps: int = 8) -> dict:
    """Seconds per training step of ``rc``'s model, batch and precision on random images:
    one warm-up step, then steps until ``budget_s`` has passed (none when start-up and
    warm-up already took CALIBRATION_TOTAL_S: then the warm-up step is the figure). Compile
    modes are not applied (compiling alone takes longer than the whole calibration)."""
    t_import = time.perf_counter()

    from ..engine.model import Net
    from ..engine.train import make_optimizer, make_step, setup_device

    device = setup_device(rc)
    torch.manual_seed(0)
    model = Net(rc.model).to(device).to(memory_format=torch.channels_last)
    step = make_step(model, make_optimizer(model, rc), device, rc.precision)
    x = torch.randn(rc.batch_size, 3, 32, 32, device=device)
    x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, rc.model.num_classes, (rc.batch_size,), device=device)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()
        elif device.type == "mps":
            torch.mps.synchronize()

    model.train()
    t_warm = time.perf_counter()
    step(x, y)
    sync()
    warmup_s = time.perf_counter() - t_warm
    startup_s = time.perf_counter() - t_import
    n, t0 = 0, time.perf_counter()
    # on a slow or busy machine the warm-up step stands in for the timed ones (a slight
    # overestimate), so that the whole calibration stays within about TOTAL_S
    while (n < 1 and startup_s + warmup_s < CALIBRATION_TOTAL_S) or (
        0 < n < max_steps and time.perf_counter() - t0 < budget_s
    ):
        step(x, y)
        sync()
        n += 1
    return {
        "step_s": (time.perf_counter() - t0) / n if n else warmup_s,
        "steps": n,
        "batch": rc.batch_size,
        "precision": rc.precision,
        "device": rc.device,
        "device_name": device_name(rc.device),
        "threads": torch.get_num_threads(),
        "startup_s": startup_s,
        "measured": time.strftime("%Y-%m-%d %H:%M"),
    }


def write_step_seconds(rc, out: Path) -> dict:
    rec = measure_step_seconds(rc)
    write_atomic(out, json.dumps(rec, indent=2) + "\n")
    return rec
