"""Training throughput: the project's step loop against a seed-style reference, one run.

Both loops train the same model (same widths, batch, optimizer) on the same prepared
images, in one process, one after the other:

* reference: torchvision-style dataset of PIL images + DataLoader + RandomCrop /
  RandomHorizontalFlip / ToTensor / Normalize transforms, NCHW fp32, ``loss.item()``
  every step (what the seed's notebook did);
* project: repro.train's loop (uint8 data resident on the device, batched crop+flip
  gather, channels_last, optional bf16 autocast, no per-step sync).

Prints images per second for each and their ratio, and the model's training FLOP/s
next to a large matmul's FLOP/s measured in the same run. Not a test: run it by hand,
record the output in BENCHMARKS.md.

  python benchmarks/train_throughput.py --device cpu --steps 20
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import DataLoader
from torchvision import transforms

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from repro import data as data_mod  # noqa: E402
from repro.devices import device_name, resolve  # noqa: E402
from repro.model import ModelSpec, Net, macs_per_image  # noqa: E402
from repro.train import DeviceData, RunConfig, make_optimizer, make_step  # noqa: E402


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


def reference_loop(ds, spec, cfg, device, steps, warmup, workers) -> float:
    tf = transforms.Compose(
        [
            transforms.RandomCrop(32, padding=4),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize(data_mod.MEAN, data_mod.STD),
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
    model = Net(spec).to(device)
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


def project_loop(ds, spec, cfg, device, steps, warmup) -> float:
    dd = DeviceData(ds, device)
    torch.manual_seed(0)
    model = Net(spec).to(device).to(memory_format=torch.channels_last)
    step_model = torch.compile(model) if cfg.compile else model
    step = make_step(step_model, make_optimizer(model, cfg), device, cfg.precision)
    gen = torch.Generator().manual_seed(0)
    perm, dy, dx, flip = dd.epoch_plan(gen)
    bs = cfg.batch_size
    batches = list(zip(*(t.split(bs) for t in (perm, dy, dx, flip)), strict=True))
    batches = [b for b in batches if len(b[0]) == bs]
    done, t0 = 0, None
    model.train()
    for i in range(warmup + steps):
        if i == warmup:
            sync(device)
            t0 = time.perf_counter()
        x, y = dd.batch(*batches[i % len(batches)])
        step(x, y)
        if i >= warmup:
            done += len(y)
    sync(device)
    return done / (time.perf_counter() - t0)


def matmul_flops(device: torch.device, dtype: torch.dtype, n: int, reps: int) -> float:
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    sync(device)
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    sync(device)
    return 2 * n**3 * reps / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=20, help="timed steps per loop")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--precision", default="bf16", choices=["fp32", "bf16"])
    p.add_argument("--compile", action="store_true")
    p.add_argument("--workers", type=int, default=2, help="reference DataLoader workers")
    p.add_argument("--widths", default="64,64,128,128,256,256")
    p.add_argument("--per-class", type=int, default=500, help="training images per class")
    p.add_argument("--archive", default=str(ROOT.parent / "shared/data/cifar10-jpeg.tar.gz"))
    p.add_argument("--cache", default=None, help="a prepared .npz instead of the archive")
    p.add_argument("--skip-reference", action="store_true")
    p.add_argument("--json", default=None, help="also write the results here")
    args = p.parse_args()

    device = torch.device(resolve(args.device))
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    spec = ModelSpec(widths=tuple(int(w) for w in args.widths.split(",")))
    cfg = RunConfig(lr=0.01, batch_size=args.batch, precision=args.precision, compile=args.compile)
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(args.cache) if args.cache else Path(tmp) / "bench.npz"
        if not args.cache:
            data_mod.prepare(
                {
                    "source": "archive",
                    "archive": args.archive,
                    "subset": {"train_per_class": args.per_class, "test_per_class": 10},
                },
                cache,
            )
        ds = data_mod.load(cache)

    print(
        f"device: {device_name(device.type)}; torch {torch.__version__}; "
        f"threads {torch.get_num_threads()}; batch {args.batch}; widths {args.widths}"
    )
    results = {"device": device_name(device.type), "batch": args.batch, "widths": args.widths}
    ours = project_loop(ds, spec, cfg, device, args.steps, args.warmup)
    results["project_img_s"] = ours
    print(
        f"project loop ({args.precision}, channels_last"
        f"{', compiled' if args.compile else ''}): {ours:9.1f} img/s"
    )
    if not args.skip_reference:
        ref = reference_loop(ds, spec, cfg, device, args.steps, args.warmup, args.workers)
        results["reference_img_s"] = ref
        results["ratio"] = ours / ref
        print(f"reference loop (DataLoader+PIL, NCHW fp32):  {ref:9.1f} img/s")
        print(f"ratio project / reference:                   {ours / ref:9.2f}x")
    train_flop = 6 * macs_per_image(spec)  # forward 2*MAC, backward twice the forward
    n = 4096 if device.type == "cuda" else 1024
    reps = 50 if device.type == "cuda" else 5
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        peak = matmul_flops(device, dtype, n, reps)
        results[f"matmul_{name}_flops"] = peak
        print(f"matmul {n}x{n} {name}: {peak / 1e12:7.3f} TFLOP/s")
    model_flops = ours * train_flop
    results["model_train_flops"] = model_flops
    print(
        f"model training: {model_flops / 1e12:7.3f} TFLOP/s "
        f"({train_flop / 1e9:.2f} GFLOP per image) = "
        f"{model_flops / results['matmul_fp32_flops']:.2f} of the fp32 matmul, "
        f"{model_flops / results['matmul_bf16_flops']:.2f} of the bf16 matmul"
    )
    if args.device != "cpu" and device.type != "cpu":
        full_epoch = 50000 / ours
        results["full_epoch_seconds"] = full_epoch
        print(f"projected full-data epoch (50,000 images): {full_epoch:.1f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
