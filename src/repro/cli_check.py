"""`check` and `write-config`: validate a config file; write the resolved config."""

from __future__ import annotations

from pathlib import Path

from . import config as config_mod


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
    # a file, not the config as an argument: a large one passes the system's limit
    p.add_argument("--config", required=True, type=Path, help="a config file (YAML or JSON)")
    p.add_argument("--out", required=True, type=Path)


def main_write_config(args) -> int:
    config_mod.write_resolved(config_mod.read_yaml(args.config), args.out)
    return 0
