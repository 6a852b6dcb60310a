"""Training throughput, measured: the project's step loop, a seed-style reference loop and
a matrix-product ceiling, on the same images and device. Used by the throughput benchmark
(benchmarks/train_throughput.py) and by the GPU calibration (repro.engine.device_run).

* reference: torchvision-style data set of PIL images + DataLoader + RandomCrop /
  RandomHorizontalFlip / ToTensor / Normalize transforms, NCHW fp32, ``loss.item()``
  every step (what the seed's notebook did);
* project: repro.engine.train's loop (uint8 data resident on the device, batched crop+flip
  gather, channels_last, the run's precision and compile mode, no per-step sync).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import DataLoader
from torchvision import transforms

from ..files import write_atomic
from ..plan import dataset
from .model import Net
from .train import DeviceData, RunConfig, evaluate, make_optimizer, make_steps


class PILDataset(torch.utils.data.Dataset):
    """What torchvision.datasets.CIFAR10 does: uint8 arrays -> PIL image -> transforms."""

    def __init__(self, x, y, transform):
        self.x, self.y, self.transform = x, y, transform

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.transform(Image.fromarray(self.x[i])), int(self.y[i])


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()
    elif device.type == "mps":
        torch.mps.synchronize()


def reference_loop(ds, cfg: RunConfig, device, steps: int, warmup: int, workers: int) -> float:
    """Images per second of the seed-style loop (fp32, NCHW, DataLoader + PIL)."""
    tf = transforms.Compose(
        [
            transforms.RandomCrop(32, padding=4),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize(dataset.MEAN, dataset.STD),
        ]
    )
    loader = DataLoader(
        PILDataset(ds.x_train, ds.y_train, tf),
        batch_size=cfg.batch_size,
        shuffle=True,
        num_workers=workers,
        drop_last=True,
        persistent_workers=workers > 0,
    )
    torch.manual_seed(0)
    model = Net(cfg.model).to(device)
    opt = make_optimizer(model, cfg)
    criterion = torch.nn.CrossEntropyLoss()
    it = iter(loader)
    done, t0 = 0, None
    for i in range(warmup + steps):
        if i == warmup:
            sync(device)
            t0 = time.perf_counter()
        try:
            x, y = next(it)
        except StopIteration:
            it = iter(loader)
            x, y = next(it)
        x, y = x.to(device), y.to(device)
        model.train()
        out = model(x)
        loss = criterion(out, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        loss.item()  # the seed logged every step
        if i >= warmup:
            done += len(y)
    sync(device)
    return done / (time.perf_counter() - t0)


def project_loop(
    ds,
    cfg: RunConfig,
    device,
    steps: int,
    warmup: int,
    channels_last: bool = True,
    keep_losses: bool = False,
) -> dict:
    """The training loop of repro.engine.train with ``cfg``'s precision and compile mode
    (``channels_last`` False: NCHW model and batches, to measure what the layout buys;
    ``keep_losses``: return the timed steps' losses, to compare variants' arithmetic).

    Returns images/s over ``steps`` full batches after ``warmup`` steps, the warm-up's
    wall time (compilation, autotuning; it includes one step of the epoch's last,
    smaller batch, taken as training takes it), and the time of one evaluation of the test
    set."""
    dd = DeviceData(ds, device)
    torch.manual_seed(0)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    model = Net(cfg.model).to(device).to(memory_format=layout)
    step, last_step = make_steps(model, make_optimizer(model, cfg), device, cfg)
    if not channels_last:
        step_cl, last_cl = step, last_step
        step = lambda x, y: step_cl(x.contiguous(), y)  # noqa: E731
        last_step = lambda x, y: last_cl(x.contiguous(), y)  # noqa: E731
    perm, dy, dx, flip = dd.epoch_plan(torch.Generator().manual_seed(0))
    bs = cfg.batch_size
    batches = list(zip(*(t.split(bs) for t in (perm, dy, dx, flip)), strict=True))
    # tiny data sets (tests) may have no full batch: then time what there is
    full = [b for b in batches if len(b[0]) == bs] or batches
    partial = [b for b in batches if len(b[0]) != bs and b is not full[0]]
    model.train()
    t0 = time.perf_counter()
    for i in range(warmup):
        step(*dd.batch(*full[i % len(full)]))
    for b in partial:
        last_step(*dd.batch(*b))
    sync(device)
    warmup_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    losses = [step(*dd.batch(*full[i % len(full)]))[0] for i in range(steps)]
    sync(device)
    img_s = steps * bs / (time.perf_counter() - t0)
    losses = torch.stack(losses).float().cpu()
    finite = bool(torch.isfinite(losses).all())
    softmax_head = cfg.model.head == "softmax"
    args = (cfg.test_batch_size, cfg.precision, cfg.model.num_classes, softmax_head)
    evaluate(model, dd, *args)  # warm-up (cudnn autotuning of the eval shapes)
    t0 = time.perf_counter()
    evaluate(model, dd, *args)
    eval_s = time.perf_counter() - t0
    res = {"img_s": img_s, "warmup_s": warmup_s, "eval_s": eval_s, "finite_loss": finite}
    if keep_losses:
        res["losses"] = losses.tolist()
    return res


def matmul_flops(device: torch.device, dtype: torch.dtype, n: int, reps: int) -> float:
    """FLOP/s of an n x n x n matrix product on random data (the ceiling)."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    sync(device)
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    sync(device)
    return 2 * n**3 * reps / (time.perf_counter() - t0)


def measure_each(names, measure_one: Callable[[str], dict], out: Path, verb: str) -> dict:
    """``measure_one(name)`` for each name in turn, a failure only ruling that one out;
    ``out`` (JSON) is rewritten after each, so a time limit keeps what was measured."""
    results: dict = {}
    for name in names:
        t0 = time.perf_counter()
        try:
            res = measure_one(name)
        except Exception as e:  # noqa: BLE001 - any failure only rules this one out
            first = (str(e).splitlines() or [""])[0][:300]
            res = {"ok": False, "error": f"{type(e).__name__}: {first}"}
        res["seconds"] = time.perf_counter() - t0
        results[name] = res
        write_atomic(out, json.dumps(results, indent=2))
        print(f"{verb} {name}: {res}", file=sys.stderr, flush=True)
    return results
