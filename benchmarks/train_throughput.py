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
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from repro import data as data_mod  # noqa: E402
from repro.architecture import macs_per_image  # noqa: E402
from repro.config import precision_for  # noqa: E402
from repro.devices import device_name, resolve  # noqa: E402
from repro.settings import ModelSpec  # noqa: E402
from repro.throughput import matmul_flops, project_loop, reference_loop  # noqa: E402
from repro.train import RunConfig  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=20, help="timed steps per loop")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument(
        "--precision",
        default="auto",
        choices=["auto", "fp32", "bf16"],
        help="auto: what the workflow would choose on this machine (bf16 only with bf16 units)",
    )
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
    precision = args.precision
    if precision == "auto":
        precision = precision_for({"train": {"precision": "auto"}}, device.type)
        print(f"precision auto -> {precision} on this {device.type}")
    args.precision = precision
    spec = ModelSpec(widths=tuple(int(w) for w in args.widths.split(",")))
    cfg = RunConfig(
        lr=0.01, batch_size=args.batch, precision=args.precision, compile=args.compile, model=spec
    )
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
    ours = project_loop(ds, cfg, device, args.steps, args.warmup)["img_s"]
    results["project_img_s"] = ours
    print(
        f"project loop ({args.precision}, channels_last"
        f"{', compiled' if args.compile else ''}): {ours:9.1f} img/s"
    )
    if not args.skip_reference:
        ref = reference_loop(ds, cfg, device, args.steps, args.warmup, args.workers)
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
