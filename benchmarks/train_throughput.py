"""Training throughput: the project's step loop against a seed-style reference and against
the machine's fp32 ceiling, one process.

Every loop trains the same model (same widths, batch, optimizer) on the same prepared
images, one after the other:

* reference: torchvision-style dataset of PIL images + DataLoader + RandomCrop /
  RandomHorizontalFlip / ToTensor / Normalize transforms, NCHW fp32, ``loss.item()``
  every step (what the seed's notebook did);
* project: repro.engine.train's loop (uint8 data resident on the device, batched crop+flip
  gather, channels_last, the workflow's precision for this machine, no per-step sync),
  and any --variants to compare with it (layout, compile, threads);
* ceiling: a 2048^3 fp32 matrix product (sgemm), and bf16 where the CPU has bf16 units.

Prints images per second, each loop's ratio to the reference and its model FLOP/s as a
fraction of the sgemm ceiling. With the defaults it finishes in about two minutes on a
2-core CPU. Not a test: run it by hand, record the output in BENCHMARKS.md.

  python benchmarks/train_throughput.py
  python benchmarks/train_throughput.py --precision fp32 --variants nchw,compile,threads1
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from repro.engine import data as data_mod  # noqa: E402
from repro.engine.devices import device_name, resolve  # noqa: E402
from repro.engine.throughput import matmul_flops, project_loop, reference_loop  # noqa: E402
from repro.engine.train import RunConfig  # noqa: E402
from repro.plan.architecture import macs_per_image  # noqa: E402
from repro.plan.machine import auto_precision, cpu_has_bf16  # noqa: E402
from repro.plan.settings import ModelSpec  # noqa: E402


def parse_variant(name: str, base: dict) -> dict:
    """``nchw``, ``compile``, ``threads<N>``, ``fp32``/``bf16``, joined with ``+``."""
    v = dict(base, name=name)
    for part in name.split("+"):
        if part == "nchw":
            v["channels_last"] = False
        elif part == "compile":
            v["compile"] = True
        elif part.startswith("threads") and part[7:].isdigit():
            v["threads"] = int(part[7:])
        elif part in ("fp32", "bf16"):
            v["precision"] = part
        else:
            sys.exit(
                f"error: variant part {part!r} is unknown; use nchw, compile, threadsN, fp32, bf16"
            )
    return v


def describe(v: dict) -> str:
    layout = "channels_last" if v["channels_last"] else "NCHW"
    extra = ", compiled" if v["compile"] else ""
    return f"project loop ({v['precision']}, {layout}{extra}, {v['threads']} threads)"


def main() -> None:
    t_start = time.perf_counter()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=10, help="timed steps per loop")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument(
        "--precision",
        default="auto",
        choices=["auto", "fp32", "bf16"],
        help="auto: what the workflow would choose on this machine (bf16 only with bf16 units)",
    )
    p.add_argument("--compile", action="store_true", help="compile the first project loop")
    p.add_argument(
        "--variants",
        default="",
        help="more project loops to compare, comma-separated: nchw, compile, threadsN, "
        "fp32, bf16, or several joined with + (e.g. compile+nchw)",
    )
    p.add_argument("--workers", type=int, default=2, help="reference DataLoader workers")
    p.add_argument("--widths", default="64,64,128,128,256,256")
    p.add_argument("--per-class", type=int, default=100, help="training images per class")
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
        precision = auto_precision(device.type)
        amx = "with" if cpu_has_bf16() else "without"
        where = f"this CPU ({amx} AMX bf16 units)" if device.type == "cpu" else device.type
        print(f"precision auto -> {precision} on {where}")
    # compiled dropout draws from torch's generator as eager does, so the variants' losses
    # can be compared step by step
    torch._inductor.config.fallback_random = True
    spec = ModelSpec(widths=tuple(int(w) for w in args.widths.split(",")))
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

    threads = torch.get_num_threads()
    print(
        f"device: {device_name(device.type)}; torch {torch.__version__}; "
        f"threads {threads}; batch {args.batch}; widths {args.widths}; "
        f"{len(ds.y_train)} training images"
    )
    results = {"device": device_name(device.type), "batch": args.batch, "widths": args.widths}
    base = {"precision": precision, "channels_last": True, "compile": args.compile}
    base["threads"] = threads
    variants = [dict(base, name="default")]
    variants += [parse_variant(n, base) for n in args.variants.split(",") if n]
    train_flop = 6 * macs_per_image(spec)  # forward 2*MAC, backward twice the forward

    n = 4096 if device.type == "cuda" else 2048
    reps = 50 if device.type == "cuda" else 8
    sgemm = matmul_flops(device, torch.float32, n, reps)
    results["matmul_fp32_flops"] = sgemm
    print(f"ceiling: {n}x{n} fp32 matmul (sgemm) {sgemm / 1e12:7.3f} TFLOP/s")
    if device.type != "cpu" or cpu_has_bf16() or precision == "bf16":
        peak = matmul_flops(device, torch.bfloat16, n, reps)
        results["matmul_bf16_flops"] = peak
        print(f"ceiling: {n}x{n} bf16 matmul        {peak / 1e12:7.3f} TFLOP/s")

    ref = None
    if not args.skip_reference:
        cfg = RunConfig(lr=0.01, batch_size=args.batch, model=spec)
        ref = reference_loop(ds, cfg, device, args.steps, args.warmup, args.workers)
        results["reference_img_s"] = ref
        print(
            f"reference loop (DataLoader+PIL, NCHW fp32): {ref:9.1f} img/s, "
            f"{ref * train_flop / sgemm:.3f} of the sgemm ceiling"
        )

    first = None
    results["variants"] = {}
    for v in variants:
        torch.set_num_threads(v["threads"])
        cfg = RunConfig(
            lr=0.01,
            batch_size=args.batch,
            precision=v["precision"],
            compile=v["compile"],
            model=spec,
        )
        res = project_loop(
            ds, cfg, device, args.steps, args.warmup, v["channels_last"], keep_losses=True
        )
        torch.set_num_threads(threads)
        img_s = res["img_s"]
        share = img_s * train_flop / sgemm
        line = f"{describe(v)}: {img_s:9.1f} img/s, {share:.3f} of the sgemm ceiling"
        if ref:
            line += f", {img_s / ref:.2f}x the reference"
        if first is None:
            first = res
        else:
            diff = max(
                abs(a - b) / abs(b) for a, b in zip(res["losses"], first["losses"], strict=True)
            )
            line += f", {img_s / first['img_s']:.2f}x the default, loss rel. diff {diff:.1e}"
            res["loss_rel_diff"] = diff
        if v["compile"]:
            line += f" (warm-up incl. compiling {res['warmup_s']:.0f} s)"
        print(line)
        results["variants"][v["name"]] = {**res, **v}
    ours = first["img_s"]
    results["project_img_s"] = ours
    if ref:
        results["ratio"] = ours / ref
        print(f"ratio project / reference:                   {ours / ref:9.2f}x")
    print(
        f"model training: {ours * train_flop / 1e12:7.3f} TFLOP/s "
        f"({train_flop / 1e9:.2f} GFLOP per image) = {ours * train_flop / sgemm:.2f} of the "
        "fp32 sgemm ceiling"
    )
    if device.type != "cpu":
        full_epoch = 50000 / ours
        results["full_epoch_seconds"] = full_epoch
        print(f"projected full-data epoch (50,000 images): {full_epoch:.1f} s")
    results["wall_s"] = time.perf_counter() - t_start
    print(f"wall time: {results['wall_s']:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
