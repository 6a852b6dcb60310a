"""`check` and `write-config`: validate a config file; write the resolved config."""

from __future__ import annotations

import json
from pathlib import Path

from . import config as config_mod
from .files import write_atomic


def add_arguments_check(p) -> None:
    p.add_argument("configfile", type=Path, help="YAML config, e.g. config/config.yaml")
    p.add_argument(
        "--no-device-check",
        action="store_true",
        help="do not require explicitly listed devices on this host (cluster head nodes)",
    )


def main_check(args) -> int:
    cfg = config_mod.load(args.configfile, check_devices=not args.no_device_check)
    if cfg["recorded"]:
        from . import recorded

        plan = recorded.plan(cfg, config_mod.recorded_expectations(cfg))
        print(f"{args.configfile}: ok ({len(plan.runs)} recorded runs in {plan.folder})")
        return 0
    n = len(config_mod.runs(cfg))
    print(f"{args.configfile}: ok ({n} training runs)")
    return 0


def add_arguments_write_config(p) -> None:
    p.add_argument("--json", required=True, help="the resolved config as a JSON string")
    p.add_argument("--out", required=True, type=Path)


def main_write_config(args) -> int:
    cfg = config_mod.validate(json.loads(args.json), check_devices=False)
    write_atomic(args.out, json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    return 0
