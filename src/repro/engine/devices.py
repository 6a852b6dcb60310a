"""The devices torch finds on this host: which are present, what `auto` resolves to, what
they are called, and whether the plan's torch-free guess (plan.machine.likely_auto) was
right."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import torch

from ..errors import UserError
from ..plan import machine
from . import gpu_slots
from .train_lock import Ancestry


def available() -> list[str]:
    found = ["cpu"]
    if torch.cuda.is_available():
        found.insert(0, "cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        found.insert(0, "mps")
    return found


def resolve(name: str) -> str:
    """`auto` -> cuda, else mps, else cpu; explicit names are checked for presence."""
    if name == "auto":
        have = available()
        return next(d for d in ("cuda", "mps", "cpu") if d in have)
    if name not in machine.KNOWN:
        raise UserError(f"device {name!r} is unknown; use auto, cpu, cuda or mps")
    if name not in available():
        raise UserError(
            f"device {name!r} is not present on this host ({platform.node()}; present: "
            f"{', '.join(available())}); remove it from the config or run where it exists"
        )
    return name


def device_name(device: str) -> str:
    if device == "cuda":
        return torch.cuda.get_device_name()
    if device == "mps":
        return f"Apple MPS ({machine.cpu_name()})"
    return machine.cpu_name()


def check_presence(cfg: dict) -> None:
    """Every named device (training and timing) exists on this host, and `auto` means
    here what the torch-free guess that planned the runs said (plan.machine.likely_auto)."""
    if cfg.get("recorded"):
        return  # recorded runs are copied, not trained: a cuda run needs no GPU here
    lists = [("devices", cfg["devices"])]
    if cfg["timing"]["enabled"]:
        lists.append(("timing.devices", cfg["timing"]["devices"]))
    present = available()
    for key, names in lists:
        for dev in names:
            if dev != "auto" and dev not in present:
                raise UserError(
                    f"config key {key} requests {dev!r}, which this host does not have "
                    f"(present: {', '.join(present)}); remove it, use auto, "
                    "or submit to a cluster where it exists (--profile profiles/slurm)"
                )
    if any("auto" in names for _, names in lists):
        planned, actual = machine.likely_auto(), resolve("auto")
        if planned != actual:
            raise UserError(
                f"devices: auto was planned as {planned} from the driver and torch's build, "
                f"but torch here finds {actual}; name the devices, e.g. --config "
                f"'devices=[{actual}]' 'timing={{devices: [{actual}]}}'"
            )


def use_threads(threads: int | None) -> None:
    """torch's CPU threads for this process (None: torch's default)."""
    if threads is not None:
        torch.set_num_threads(threads)


def take_gpu(lock_dir: Path | None, device: str) -> dict | None:
    """For a cuda job given the project's GPU lock folder (the workflow's jobs): a GPU of
    this host that no other such job uses, made torch's current device before CUDA is
    initialised; waits while every GPU is taken. Returns what metrics.json records of it
    (``{"index": i, "of": n}``), or None where no GPU is taken (another device, no
    folder: a command run by hand or the device command's own processes)."""
    simulated = gpu_slots.simulated_count(os.environ)
    if lock_dir is None or (device != "cuda" and simulated is None):
        return None
    if simulated is not None:
        gpus = [str(i) for i in range(simulated)]
    else:
        # the device count asks the driver without creating a context on any GPU
        gpus = gpu_slots.visible_gpus(os.environ, torch.cuda.device_count())
    slot = gpu_slots.claim(lock_dir, gpus, orphaned=Ancestry().gone)
    if simulated is None:
        torch.cuda.set_device(slot.index)
    return slot.record()
