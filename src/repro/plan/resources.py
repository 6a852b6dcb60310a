"""What the workflow's jobs ask of the machine or cluster (SLURM resources, partitions)
and the data-preparation job's flags."""

from __future__ import annotations

import math
import shlex

from . import paper

JOB_RESOURCE_KEYS = ("runtime", "mem_mb", "cpus_per_task", "gpu", "gpu_model")


# Minutes per epoch of the full training set (50,000 images), generous upper bounds:
# an H100 takes seconds, a slow datacenter GPU well under a minute, a CPU core minutes.
MINUTES_PER_FULL_EPOCH = {"cuda": 1.0, "mps": 3.0, "cpu": 20.0}


def job_resources(cfg: dict, kind: str, device: str, runs: int = 1) -> dict:
    """SLURM (and local) resources of one `train` or `timing` job; a train job of a pack
    trains ``runs`` runs at once, and gets their time added up (an upper bound: the
    wide network is at worst as slow as the runs one after the other)."""
    epochs = cfg["timing"]["epochs"] if kind == "timing" else cfg["train"]["epochs"]
    per_class = cfg["data"]["subset"]["train_per_class"]
    fraction = min(1.0, (per_class or paper.TRAIN_PER_CLASS) / paper.TRAIN_PER_CLASS)
    runtime = 10 + math.ceil(runs * epochs * fraction * MINUTES_PER_FULL_EPOCH[device])
    return {
        "runtime": runtime,
        # the padded uint8 training set, the normalised test set, model and optimizer
        "mem_mb": 8000 if device == "cuda" else 6000,
        "cpus_per_task": 4 if device == "cuda" else 8,
        "gpu": 1 if device == "cuda" else 0,
        "gpu_model": (cfg["slurm"]["gpu_model"] or "") if device == "cuda" else "",
    }


def partition_resource(cfg: dict, device: str | None = None) -> dict:
    """`slurm_partition` only when the config names one; otherwise the profile's default.
    Of the rule's ``device`` wildcard, or of ``device`` (a pack's rule has no wildcards)."""
    s = cfg["slurm"]
    if not (s["partition"] or s["gpu_partition"]):
        return {}

    def partition_of(device: str) -> str:
        if device == "cuda":
            return s["gpu_partition"] or s["partition"] or ""
        return s["partition"] or ""

    if device is not None:
        return {"slurm_partition": partition_of(device)}
    return {"slurm_partition": lambda wildcards: partition_of(wildcards.device)}


def prepare_flags(cfg: dict) -> str:
    d = cfg["data"]
    flags = [f"--source {d['source']} --download-root {shlex.quote(d['download_root'])}"]
    for key in ("archive", "archive_sha256", "folder"):
        if d[key]:
            flags.append(f"--{key.replace('_', '-')} {shlex.quote(str(d[key]))}")
    for key in ("train_per_class", "test_per_class"):
        if d["subset"][key]:
            flags.append(f"--{key.replace('_', '-')} {d['subset'][key]}")
    if d.get("jpeg_quality"):
        flags.append(f"--jpeg-quality {int(d['jpeg_quality'])}")
    return " ".join(flags)
