"""One run's description as a training command receives it: the whole JSON description
(`--run`, what the workflow and the GPU command pass), or the run flags checked through
the config's schema (the same checks and messages as a config file)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from ..errors import UserError
from . import config, grid
from .settings import AXES, RunConfig

MAX_DESCRIPTION_BYTES = 1 << 20


def flag_name(path: str, key: str) -> str:
    """A run setting's flag: the field's name for a grid axis (--lr, --seed, --device,
    --head), else the config key's own name (--momentum, --cuda-deterministic)."""
    name = path.split(".")[-1] if key in AXES else key.split(".")[-1]
    return "--" + name.replace("_", "-")


def read_description(run: str) -> dict:
    """--run: JSON text, or the path of a file holding it."""
    text = run
    if not run.lstrip().startswith("{"):
        try:
            if Path(run).stat().st_size > MAX_DESCRIPTION_BYTES:
                raise UserError(f"--run {run} is over 1 MiB; a run description is a few lines")
            text = Path(run).read_text()
        except (OSError, UnicodeDecodeError) as e:
            why = f"cannot read it ({getattr(e, 'strerror', None) or type(e).__name__})"
            raise UserError(f"--run {run}: {why}; give the JSON or a file holding it") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise UserError(f"--run is not valid JSON ({e}); pass the workflow's description") from None


def from_json(run: str) -> RunConfig:
    """--run as it is (the workflow validated the config it comes from)."""
    try:
        return RunConfig.from_dict(read_description(run))
    except (KeyError, TypeError, AttributeError) as e:
        raise UserError(
            f"--run is not a run description ({type(e).__name__}: {e}); pass the one "
            "the workflow writes (python -m repro train --help lists the fields)"
        ) from None


def from_flags(given: dict, timing: bool, devices) -> RunConfig:
    """The run flags ({field path: (config key, value)}) as a one-run config, validated
    and its devices present; ``devices`` checks presence and resolves `auto` on this host
    (the engine's devices, which know what torch finds)."""
    raw: dict = {"timing": {"enabled": False}}
    for key, value in given.values():
        if key in AXES:
            raw[key] = [value]
        else:
            section, name = key.split(".")
            raw.setdefault(section, {})[name] = value
    cfg = config.validate(raw)
    devices.check_presence(cfg)
    device = devices.resolve(cfg["devices"][0])
    rc = grid.run_config(
        cfg, cfg["heads"][0], cfg["learning_rates"][0], device, cfg["seeds"][0], False
    )
    if timing and "train.epochs" not in {key for key, _ in given.values()}:
        rc = replace(rc, epochs=cfg["timing"]["epochs"])
    return rc


def run_description(run: str | None, given: dict, timing: bool, devices) -> RunConfig:
    """The description from --run or from the flags (never both), its device present."""
    if run is not None and given:
        flags = ", ".join(flag_name(path, key) for path, (key, _) in given.items())
        raise UserError(
            f"--run is the whole run description; {flags} would be ignored: "
            "give either --run or the run flags"
        )
    if run is None:
        return from_flags(given, timing, devices)
    rc = from_json(run)
    devices.resolve(rc.device)  # present on this machine, or one line saying so
    return rc
