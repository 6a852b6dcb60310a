"""Training steps per second of K separate runs against one wide K-pack (issue 20), with
the real model at batch 128 in float32, on random images (a step does not care what
the pixels are). Prints one line per K and the ratio wide / separate, and the CPU or
GPU it ran on; the issue keeps CPU runs on the single-run path unless this says
otherwise.

  PYTHONPATH=src python benchmarks/wide.py [--ks 1 2 4] [--steps 3] [--device cpu]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from repro import data as data_mod  # noqa: E402
from repro.devices import device_name  # noqa: E402
from repro.pack import fresh_pack  # noqa: E402
from repro.settings import RunConfig  # noqa: E402
from repro.train import DeviceData, fresh_state, make_step  # noqa: E402
from repro.wide import dropout_masks  # noqa: E402
from repro.wide_step import make_wide_step  # noqa: E402


def random_data(n: int, device: torch.device) -> DeviceData:
    rng = np.random.default_rng(0)
    images = lambda m: rng.integers(0, 256, (m, 32, 32, 3), dtype=np.uint8)  # noqa: E731
    labels = lambda m: np.arange(m, dtype=np.int64) % 10  # noqa: E731
    ds = data_mod.Dataset(images(n), labels(n), images(10), labels(10), {})
    return DeviceData(ds, device)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def separate_seconds(rcs, dd: DeviceData, steps: int) -> float:
    """Seconds per step of each run trained alone, summed over the runs (one warm-up
    step each, not timed)."""
    total = 0.0
    for rc in rcs:
        state = fresh_state(rc, dd.device)
        step = make_step(state.model, state.opt, dd.device, "fp32")
        perm, dy, dx, flip = dd.epoch_plan(state.gen)
        batches = list(zip(*(t.split(rc.batch_size) for t in (perm, dy, dx, flip)), strict=True))
        step(*dd.batch(*batches[0]))
        sync(dd.device)
        t0 = time.perf_counter()
        for batch in batches[1 : steps + 1]:
            step(*dd.batch(*batch))
        sync(dd.device)
        total += (time.perf_counter() - t0) / steps
    return total


def wide_seconds(rcs, dd: DeviceData, steps: int) -> float:
    """Seconds per step of the K runs as one wide pack (one warm-up step, not timed)."""
    state = fresh_pack(rcs, dd.device)
    step = make_wide_step(state.wide, state.opt, dd, "fp32")
    plans = [dd.epoch_plan(gen) for gen in state.gens]
    perm, dy, dx, flip = (torch.stack(ts) for ts in zip(*plans, strict=True))
    batch = rcs[0].batch_size
    spec = state.wide.spec
    times = []
    for i in range(steps + 1):
        sl = slice(i * batch, (i + 1) * batch)
        masks = dropout_masks(
            state.drop_gens, (batch, spec.hidden), spec.dropout, state.wide.fc1_weight
        )
        sync(dd.device)
        t0 = time.perf_counter()
        step(perm[:, sl], dy[:, sl], dx[:, sl], flip[:, sl], masks)
        sync(dd.device)
        times.append(time.perf_counter() - t0)
    return sum(times[1:]) / steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ks", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    device = torch.device(args.device)
    dd = random_data(args.batch * (args.steps + 1), device)
    print(
        f"{device_name(args.device)}, torch {torch.__version__}, {torch.get_num_threads()} "
        f"threads, batch {args.batch}, fp32, {args.steps} timed steps"
    )
    for k in args.ks:
        rcs = [
            RunConfig(
                lr=0.01 / (i + 1),
                seed=i,
                batch_size=args.batch,
                precision="fp32",
                device=args.device,
            )
            for i in range(k)
        ]
        sep = separate_seconds(rcs, dd, args.steps)
        wide = wide_seconds(rcs, dd, args.steps)
        print(
            f"K={k}: separate {k / sep:.3f} run-steps/s ({sep:.2f} s per step of all K), "
            f"wide {k / wide:.3f} run-steps/s ({wide:.2f} s per wide step); "
            f"wide/separate {sep / wide:.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
