"""`python -m repro check`: a config file read and validated as the workflow reads it
(merged over config/config.yaml, as `snakemake --configfile` merges it), and what it
would do (its training runs, or the recorded runs it would copy)."""

from __future__ import annotations

from pathlib import Path

from ..errors import UserError
from . import config, grid, recorded


def check(configfile: Path) -> tuple[dict, str]:
    """The validated config and one line saying what it plans; UserError when bad."""
    try:
        cfg = config.load_study([configfile])
    except UserError as e:
        raise UserError(f"{configfile}: {e}") from None
    if cfg["recorded"]:
        plan = recorded.plan(cfg, grid.recorded_expectations(cfg))
        return cfg, f"{configfile}: ok ({len(plan.runs)} recorded runs in {plan.folder})"
    return cfg, f"{configfile}: ok ({len(grid.runs(cfg))} training runs)"
