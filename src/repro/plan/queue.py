"""The runs a study still lacks, in its priority order: what a GPU machine
trains next. Torch-free: planning only.

``python -m repro queue --configfile config/why.yaml [--recorded recorded/<label>]
[--out queue.json]`` prints one line per missing run and with ``--out`` writes the
queue as JSON:

    {
      "format": "repro-queue/1",
      "configfiles": ["config/why.yaml"],      # merged over config/config.yaml
      "planned": 22, "done": 3,                # runs of the study; finished or recorded
      "runs": [                                # missing runs, first to train first
        {
          "variant": "paper",                  # the config's variant (paper: reference)
          "head": "softmax", "lr": "0.01", "device": "cuda", "seed": 1,
          "hash": "630e8d25",                  # the settings hash (folder's last part)
          "folder": "results/runs/softmax/lr0.01/cuda/seed1/630e8d25",
          "cache": "resources/data/cifar10-archive-full.npz",
          "data": {...},                       # the variant's data: section (prepare it)
          "description": {...},                # `python -m repro train --run` takes it
          "gpu_minutes": {"H100": 5.8, "H200": 5.0}  # estimated training minutes
        }
      ]
    }

A run is done when ``results/runs/<folder>/metrics.json`` exists, or the recording
holds it (``<recorded>/results/runs/<head>/lr<lr>/<device>/seed<seed>/<hash>/``), and
the metrics' fingerprint is the description's (same settings): a finished run of other
settings does not count. The description keeps ``precision: auto`` unresolved for the
training machine to resolve, as the workflow's jobs do.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from ..errors import UserError
from ..files import read_json_bounded, write_atomic
from . import estimate, grid
from .dataset import cache_path
from .recorded import check_manifest, read_provenance
from .settings import RunConfig
from .status import load_config

FORMAT = "repro-queue/1"
MAX_METRICS_BYTES = 1 << 20  # a metrics.json is a few kB


def _finished(metrics: Path, fingerprint: str) -> bool:
    if not metrics.is_file() or metrics.is_symlink():
        return False
    try:
        m = read_json_bounded(metrics, MAX_METRICS_BYTES, "run metrics")
    except UserError:
        return False  # unreadable: train it again rather than trust it
    return isinstance(m, dict) and m.get("fingerprint") == fingerprint


def _fingerprint(rc: RunConfig) -> str:
    """As the job records it: with precision auto resolved where it trains. An explicit
    precision (the why study's) fingerprints the same everywhere."""
    return rc.on_this_machine().fingerprint()


def ordered(runs: list[dict], first: list[dict]) -> list[dict]:
    """``runs`` (grid.runs' order) with those the config's ``queue`` names first: all runs
    of its first entry (a variant, at the entry's learning rates or all of them), then of
    its second, and so on; the runs no entry names after them. Within each part the grid's
    order stays (seed by seed), so a session that stops early leaves whole seeds."""

    def rank(r: dict) -> int:
        for i, entry in enumerate(first):
            lrs = entry.get("learning_rates")
            if entry["variant"] == r["variant"] and (
                lrs is None or float(r["lr"]) in [float(x) for x in lrs]
            ):
                return i
        return len(first)

    return sorted(runs, key=rank)  # stable: the grid's order within a rank


def missing_runs(cfg: dict, root: Path, recorded: Path | None = None) -> tuple[list[dict], int]:
    """(the study's missing runs in priority order, how many it plans)."""
    planned = ordered(grid.runs(cfg), cfg.get("queue") or [])
    out = []
    for r in planned:
        vcfg = grid.variant_config(cfg, r["variant"])
        rc = grid.run_config(vcfg, r["head"], float(r["lr"]), r["device"], r["seed"], False)
        folder = grid.RUN_DIR.format(**r)
        places = [root / folder] + ([recorded / folder] if recorded else [])
        if any(_finished(p / "metrics.json", _fingerprint(rc)) for p in places):
            continue
        minutes = estimate.gpu_minutes(rc, *estimate.images(vcfg))
        out.append(
            {
                **{k: r[k] for k in ("variant", "head", "lr", "device", "seed", "hash")},
                "folder": folder,
                "cache": cache_path(vcfg),
                "data": vcfg["data"],
                "description": asdict(rc),
                "gpu_minutes": {k: None if v is None else round(v, 1) for k, v in minutes.items()},
            }
        )
    return out, len(planned)


def queue(configfiles: list[Path], root: Path, recorded: Path | None) -> dict:
    """The queue as the JSON above."""
    if recorded is not None and not (recorded / "provenance.json").is_file():
        raise UserError(
            f"--recorded {recorded} is not a recorded folder (no provenance.json); give "
            "recorded/<label>"
        )
    if recorded is not None:  # its runs count as done only as recorded: checked first
        check_manifest(recorded, read_provenance(recorded))
    cfg = load_config(configfiles)
    runs, planned = missing_runs(cfg, root, recorded)
    return {
        "format": FORMAT,
        "configfiles": [str(p) for p in configfiles],
        "planned": planned,
        "done": planned - len(runs),
        "runs": runs,
    }


def lines(q: dict) -> str:
    head = f"{len(q['runs'])} of {q['planned']} runs still to train ({q['done']} done)"
    gpus = list(estimate.GPU_EPOCH_S)
    rows = [
        f"{i:3d}. {r['variant']:<13} {r['folder']}  " + _minutes(r["gpu_minutes"], gpus)
        for i, r in enumerate(q["runs"], 1)
    ]
    note = (
        f"GPU min ({', '.join(gpus)}): an estimate of the training epochs alone, the measured "
        "epoch times of BENCHMARKS.md scaled by each run's multiply-accumulates per image "
        "(convolution-bound assumed); compile and data preparation add about a minute"
    )
    return "\n".join([head, *rows, note])


def _minutes(minutes: dict, gpus: list[str]) -> str:
    return "GPU min " + "/".join(
        "-" if minutes.get(g) is None else f"{minutes[g]:.1f}" for g in gpus
    )


def write(q: dict, out: Path) -> None:
    write_atomic(out, json.dumps(q, indent=2, sort_keys=False) + "\n")
