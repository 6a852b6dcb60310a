"""Command line: ``python -m repro <stage> ...``, one subcommand per workflow stage.

Each stage module defines ``add_arguments(parser)`` and ``main(args)``; this file only
wires them up. Problems the user can fix end as one line ``error: ...`` and exit 2.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import sys

from .errors import UserError

WRITE_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EROFS, errno.EPERM}
STAGES = {
    "check": ("cli_check", "validate a config file (schema and semantic checks)"),
    "prepare": ("cli_data", "prepare the CIFAR-10 cache (uint8 images + labels)"),
    "train": ("cli_train", "train one (head, learning rate, device, seed) run"),
    "timing": ("cli_train", "time the model for a few epochs on one device"),
    "status": ("cli_status", "where the study's runs stand (from their files; --watch)"),
    "estimate": ("cli_status", "the study's plan and estimated run time on this machine"),
    "step-time": ("cli_train", "time a few training steps of one run's model (for estimate)"),
    "write-config": ("cli_check", "write the resolved config as JSON"),
    "device-run": ("device_run", "the paper grid on a lent GPU: calibrate, plan, train, pack"),
    "calibrate": ("device_run", "measure training variants' throughput (for device-run)"),
    "train-run": ("device_run", "train one run from a run description (JSON)"),
    "timing-run": ("device_run", "the timing stage for a run description (JSON)"),
    "record": ("recording", "a GPU machine's device-run tarball -> recorded/<label>/"),
    "recorded": ("recorded", "copy recorded runs (recorded/<label>) instead of training"),
    "tables": ("cli_report", "Tables 1-4, statistics and the paper's claims as CSV"),
    "figures": ("cli_report", "Figs. 2-4 and the timing chart as SVG and PNG"),
    "provenance": ("cli_report", "git, config, versions, data and hosts as JSON"),
    "report": ("cli_report", "the PDF report (jinja2 -> HTML -> weasyprint)"),
}


def _hooks(stage: str):
    """The stage module's (add_arguments, main); imported only for the stage in use."""
    module = importlib.import_module(f"repro.{STAGES[stage][0]}")
    suffix = stage.replace("-", "_")
    add = getattr(module, f"add_arguments_{suffix}", None) or module.add_arguments
    run = getattr(module, f"main_{suffix}", None) or module.main
    return add, run


def build_parser(stage: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m repro", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="stage", required=True, metavar="STAGE")
    for name, (_, help_text) in STAGES.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == stage:
            add, run = _hooks(name)
            add(p)
            p.set_defaults(_main=run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    stage = argv[0] if argv and argv[0] in STAGES else None
    args = build_parser(stage).parse_args(argv)
    try:
        return args._main(args) or 0
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        if e.errno not in WRITE_ERRORS:
            raise
        print(
            f"error: cannot write {e.filename or 'output'}: {e.strerror}; free space or "
            "choose a writable results folder (finished files were not touched)",
            file=sys.stderr,
        )
        return 1
