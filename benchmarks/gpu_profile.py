"""Where a training step's time goes on a GPU: wall time per step against the time the
GPU's kernels are busy (torch.profiler), the kernels that take it, and the test-set
evaluation eager and compiled. Runs under a bare python (torch, torchvision, numpy,
pillow, pyyaml) with PYTHONPATH=src, on a subset of the archive (the cache of the full
set does not travel; a step does not care how many images there are).

  PYTHONPATH=src python benchmarks/gpu_profile.py --archive A --variants graphs-bf16
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from repro.engine import data as data_mod  # noqa: E402
from repro.engine.device_run import MODES  # noqa: E402
from repro.engine.model import Net  # noqa: E402
from repro.engine.throughput import sync  # noqa: E402
from repro.engine.train import (  # noqa: E402
    DeviceData,
    RunConfig,
    evaluate,
    make_optimizer,
    make_steps,
)


def kernel_time(prof) -> tuple[float, list[tuple[str, float, int]]]:
    """Seconds of device kernels in the profile, and the top kernels."""
    rows = []
    for e in prof.key_averages():
        t = getattr(e, "self_device_time_total", None) or getattr(e, "self_cuda_time_total", 0)
        if t > 0 and e.device_type.name == "CUDA":
            rows.append((e.key, t / 1e6, e.count))
    rows.sort(key=lambda r: -r[1])
    return sum(r[1] for r in rows), rows


def profile_variant(ds, variant: str, device, steps: int, warmup: int) -> dict:
    mode, precision = variant.split("-")
    cfg = RunConfig(lr=0.01, device=device.type, precision=precision, compile=MODES[mode])
    dd = DeviceData(ds, device)
    torch.manual_seed(0)
    model = Net(cfg.model).to(device).to(memory_format=torch.channels_last)
    step, _ = make_steps(model, make_optimizer(model, cfg), device, cfg)
    perm, dy, dx, flip = dd.epoch_plan(torch.Generator().manual_seed(0))
    split = zip(*(t.split(128) for t in (perm, dy, dx, flip)), strict=True)
    batches = [b for b in split if len(b[0]) == 128]
    model.train()
    t0 = time.perf_counter()
    for i in range(warmup):
        step(*dd.batch(*batches[i % len(batches)]))
    sync(device)
    warm = time.perf_counter() - t0
    t0 = time.perf_counter()
    for i in range(steps):
        step(*dd.batch(*batches[i % len(batches)]))
    sync(device)
    wall = (time.perf_counter() - t0) / steps
    acts = [torch.profiler.ProfilerActivity.CPU]
    if device.type == "cuda":
        acts.append(torch.profiler.ProfilerActivity.CUDA)
    n_prof = min(steps, 20)
    with torch.profiler.profile(activities=acts) as prof:
        for i in range(n_prof):
            step(*dd.batch(*batches[i % len(batches)]))
        sync(device)
    busy, top = kernel_time(prof)
    args = (1000, precision, 10, True)
    ev = {}
    for name, bs in (("eval_b128_s", 128), ("eval_b1000_s", 1000)):
        evaluate(model, dd, bs, *args[1:])
        sync(device)
        t0 = time.perf_counter()
        evaluate(model, dd, bs, *args[1:])
        ev[name] = time.perf_counter() - t0
    return {
        "variant": variant,
        "warmup_s": warm,
        "wall_ms_per_step": 1000 * wall,
        "kernel_ms_per_step": 1000 * busy / n_prof,
        "top": [(k, 1000 * t / n_prof, c // n_prof) for k, t, c in top[:12]],
        **ev,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--archive", default=str(ROOT / "resources/device/cifar10-jpeg.tar.gz"))
    p.add_argument("--per-class", type=int, default=300)
    p.add_argument("--device", default="cuda")
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--warmup", type=int, default=30)
    p.add_argument("--variants", nargs="+", default=["graphs-bf16", "eager-bf16"])
    args = p.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "c.npz"
        subset = {"train_per_class": args.per_class, "test_per_class": 1000}
        data_mod.prepare({"source": "archive", "archive": args.archive, "subset": subset}, cache)
        ds = data_mod.load(cache)
    results = []
    for v in args.variants:
        try:
            results.append(profile_variant(ds, v, device, args.steps, args.warmup))
        except Exception as e:  # noqa: BLE001 - report and go on to the next variant
            print(f"{v}: {type(e).__name__}: {str(e)[:200]}")
    for r in results:
        print(f"\n== {r['variant']}: warm-up {r['warmup_s']:.1f} s")
        print(f"   wall {r['wall_ms_per_step']:.2f} ms/step, kernels {r['kernel_ms_per_step']:.2f}")
        b128, b1000 = r["eval_b128_s"], r["eval_b1000_s"]
        print(f"   eval of 10,000: batch 128 {b128:.3f} s, batch 1000 {b1000:.3f} s")
        for k, ms, c in r["top"]:
            print(f"   {ms:7.3f} ms x{c:<3} {k[:90]}")


if __name__ == "__main__":
    main()
