"""`train` and `timing`: one run from flags; every flag maps to a config key and is
checked by the same schema and messages as the config file."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from . import config as config_mod
from . import devices
from .errors import UserError
from .settings import RunConfig
from .timing import measure
from .train import hms, train_run


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def _common(p, cache: bool = True) -> None:
    if cache:
        p.add_argument("--cache", required=True, type=Path, help="prepared data (.npz)")
    p.add_argument(
        "--run",
        type=json.loads,
        default=None,
        help="the whole run description as JSON (what the workflow passes, from its "
        "validated config); the run flags below are then not used",
    )
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--head", default="softmax", help="softmax (faithful) or logits")
    p.add_argument("--epochs", type=int, default=150)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--test-batch-size", type=int, default=128)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--precision", default="auto", help="auto, fp32 or bf16")
    p.add_argument(
        "--compile",
        nargs="?",
        const=True,
        default=False,
        help="torch.compile the model; optional mode: default, reduce-overhead (CUDA graphs) "
        "or max-autotune-no-cudagraphs",
    )
    p.add_argument("--cuda-deterministic", action="store_true")
    p.add_argument("--widths", type=_ints, default=[64, 64, 128, 128, 256, 256])
    p.add_argument("--kernel-sizes", type=_ints, default=[1, 3, 5])
    p.add_argument("--pool-after", type=_ints, default=[2, 4, 5])
    p.add_argument("--hidden", type=int, default=512)
    p.add_argument("--dropout", type=float, default=0.5)
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch")


def _run_config(args):
    if args.threads is not None:
        if args.threads < 1:
            raise UserError(f"--threads {args.threads} is not allowed; give an integer >= 1")
        torch.set_num_threads(args.threads)
    if args.run is not None:
        # the workflow validated the config this description comes from: trusted as is
        return RunConfig.from_dict(args.run).on_this_machine()
    raw = {
        "heads": [args.head],
        "learning_rates": [args.lr],
        "devices": [args.device],
        "seeds": [args.seed],
        "model": {
            "widths": args.widths,
            "kernel_sizes": args.kernel_sizes,
            "pool_after": args.pool_after,
            "hidden": args.hidden,
            "dropout": args.dropout,
        },
        "train": {
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "test_batch_size": args.test_batch_size,
            "momentum": args.momentum,
            "weight_decay": args.weight_decay,
            "precision": args.precision,
            "compile": args.compile,
            "cuda_deterministic": args.cuda_deterministic,
        },
        "timing": {"enabled": False},
    }
    cfg = config_mod.validate(raw)
    device = devices.resolve(args.device)
    return config_mod.run_config(cfg, args.head, args.lr, device, args.seed)


def add_arguments_train(p) -> None:
    _common(p)
    p.add_argument("--out", required=True, type=Path, help="run folder for CSVs and weights")
    p.add_argument(
        "--checkpoint",
        type=Path,
        default=None,
        help="per-epoch checkpoint; an existing one of the same config is resumed",
    )
    p.add_argument(
        "--progress",
        type=Path,
        default=None,
        help="progress JSON rewritten every epoch (what `python -m repro status` reads)",
    )


def main_train(args) -> int:
    rc = _run_config(args)
    if not args.cache.exists():
        raise UserError(f"data cache {args.cache} does not exist; run `python -m repro prepare`")
    m = train_run(rc, args.cache, args.out, checkpoint=args.checkpoint, progress=args.progress)
    # stdout, not the log: Snakemake shows it when the job ends
    print(outcome_line(m), flush=True)
    return 0


def outcome_line(m: dict) -> str:
    return (
        f"run {m['head']} lr={m['lr']:g} {m['device']} seed={m['seed']}: {m['epochs']} epochs, "
        f"final train acc {m['final_train_acc']:.4f}, test acc {m['final_test_acc']:.4f} "
        f"(best {m['best_test_acc']:.4f} at epoch {m['best_epoch']}), "
        f"{hms(m['train_seconds'])} training, {hms(m['wall_seconds_this_process'])} wall "
        "in this process"
    )


def add_arguments_timing(p) -> None:
    _common(p)
    p.set_defaults(epochs=5)
    p.add_argument("--out", required=True, type=Path, help="timing JSON")


def main_timing(args) -> int:
    if args.out.is_dir():
        raise UserError(f"--out {args.out} is a folder; give the timing JSON's file path")
    rc = _run_config(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    measure(rc, args.cache, args.out)
    return 0


def add_arguments_step_time(p) -> None:
    _common(p, cache=False)
    p.add_argument("--out", required=True, type=Path, help="calibration JSON")


def main_step_time(args) -> int:
    from .estimate import write_step_seconds

    rec = write_step_seconds(_run_config(args), args.out)
    print(f"{rec['step_s']:.3f} s per step of {rec['batch']} on {rec['device_name']}")
    return 0
