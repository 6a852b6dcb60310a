"""`status` and `estimate`: the study seen from its config and the files its runs write.
Both import no torch (estimate's calibration runs in a child process)."""

from __future__ import annotations

import os
from pathlib import Path

from .errors import UserError


def _study(p) -> None:
    p.add_argument(
        "--configfile",
        type=Path,
        nargs="+",
        action="extend",
        default=[],
        help="the config files of the snakemake call, merged over config/config.yaml",
    )
    p.add_argument(
        "--directory",
        "-d",
        type=Path,
        default=None,
        help="the project folder the workflow runs in (default: here)",
    )


def _enter(directory: Path | None) -> None:
    if directory is None:
        return
    if not directory.is_dir():
        raise UserError(f"--directory {directory} is not a folder; give the project's folder")
    os.chdir(directory)


def add_arguments_status(p) -> None:
    _study(p)
    p.add_argument("--watch", action="store_true", help="redraw every --interval seconds")
    p.add_argument("--interval", type=float, default=2.0, help="seconds between redraws")


def main_status(args) -> int:
    from .status import show

    if args.interval <= 0:
        raise UserError(f"--interval {args.interval} is not allowed; give seconds > 0")
    _enter(args.directory)
    show(args.configfile, watch=args.watch, interval=args.interval)
    return 0


def add_arguments_estimate(p) -> None:
    _study(p)
    p.add_argument(
        "--no-calibrate",
        action="store_true",
        help="use cached or recorded figures only (as estimate.calibrate: false)",
    )


def main_estimate(args) -> int:
    from . import estimate, status

    _enter(args.directory)
    cfg = status.load_config(args.configfile)
    if cfg["recorded"]:
        print(f"nothing trains: the runs are copied from {cfg['recorded']}")
        return 0
    calibrate = cfg["estimate"]["calibrate"] and not args.no_calibrate
    runs = status.planned_runs(cfg, Path("."))
    timing = estimate.timing_devices(cfg)
    print("\n".join(estimate.lines(cfg, runs, timing, Path("."), True, calibrate)))
    return 0
