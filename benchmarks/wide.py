"""Training steps per second of K separate runs against one wide K-pack (issue 20), with
the real model at batch 128 in float32, on random images (a step does not care what
the pixels are). Prints one line per K and the ratio wide / separate (median
over the timed steps, separate and wide steps alternating), and the CPU or
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

from repro.engine import data as data_mod  # noqa: E402
from repro.engine.devices import device_name  # noqa: E402
from repro.engine.pack import fresh_pack  # noqa: E402
from repro.engine.train import DeviceData, fresh_state, make_step  # noqa: E402
from repro.engine.wide import dropout_masks  # noqa: E402
from repro.engine.wide_step import make_wide_step  # noqa: E402
from repro.plan.settings import RunConfig  # noqa: E402


def random_data(n: int, device: torch.device) -> DeviceData:
    rng = np.random.default_rng(0)
    images = lambda m: rng.integers(0, 256, (m, 32, 32, 3), dtype=np.uint8)  # noqa: E731
    labels = lambda m: np.arange(m, dtype=np.int64) % 10  # noqa: E731
    ds = data_mod.Dataset(images(n), labels(n), images(10), labels(10), {})
    return DeviceData(ds, device)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def separate_steps(rcs, dd: DeviceData) -> list:
    """Per run, a callable that takes its next training step alone (the project's
    single-run step, on the run's own batches)."""
    steps = []
    for rc in rcs:
        state = fresh_state(rc, dd.device)
        step = make_step(state.model, state.opt, dd.device, "fp32")
        plan = dd.epoch_plan(state.gen)
        batches = iter(list(zip(*(t.split(rc.batch_size) for t in plan), strict=True)))
        steps.append(lambda step=step, batches=batches: step(*dd.batch(*next(batches))))
    return steps


def wide_step(rcs, dd: DeviceData):
    """A callable that takes the K-pack's next step (masks drawn as pack_epoch does)."""
    state = fresh_pack(rcs, dd.device)
    step = make_wide_step(state.wide, state.opt, dd, "fp32")
    plans = [dd.epoch_plan(gen) for gen in state.gens]
    stacked = [torch.stack(ts).split(rcs[0].batch_size, dim=1) for ts in zip(*plans, strict=True)]
    batches = iter(list(zip(*stacked, strict=True)))
    spec, like = state.wide.spec, state.wide.fc1_weight

    def take():
        batch = next(batches)
        masks = dropout_masks(state.drop_gens, (batch[0].shape[1], spec.hidden), spec.dropout, like)
        return step(*batch, masks)

    return take


def seconds(fn, device: torch.device) -> float:
    sync(device)
    t0 = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t0


def measure(rcs, dd: DeviceData, steps: int) -> tuple[float, float]:
    """Median seconds of one step of all K runs: separately (the K runs' steps one
    after the other) and as one wide step. The two alternate, step by step, so that
    load from other processes falls on both alike; one warm-up step each, not timed."""
    singles, wide = separate_steps(rcs, dd), wide_step(rcs, dd)
    for fn in (*singles, wide):
        seconds(fn, dd.device)
    sep, packed = [], []
    for _ in range(steps):
        sep.append(sum(seconds(fn, dd.device) for fn in singles))
        packed.append(seconds(wide, dd.device))
    return float(np.median(sep)), float(np.median(packed))


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
        f"threads, batch {args.batch}, fp32, median of {args.steps} timed steps"
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
        sep, wide = measure(rcs, dd, args.steps)
        print(
            f"K={k}: separate {k / sep:.3f} run-steps/s ({sep:.2f} s per step of all K), "
            f"wide {k / wide:.3f} run-steps/s ({wide:.2f} s per wide step); "
            f"wide/separate {sep / wide:.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
