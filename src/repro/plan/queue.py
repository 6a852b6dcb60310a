"""The runs a study still lacks, in its priority order (issue 21): what a GPU session
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
          "description": {...}                 # `python -m repro train --run` takes it
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
from . import grid
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


def missing_runs(cfg: dict, root: Path, recorded: Path | None = None) -> tuple[list[dict], int]:
    """(the study's missing runs in priority order, how many it plans)."""
    planned = grid.runs(cfg)
    out = []
    for r in planned:
        vcfg = grid.variant_config(cfg, r["variant"])
        rc = grid.run_config(vcfg, r["head"], float(r["lr"]), r["device"], r["seed"], False)
        folder = grid.RUN_DIR.format(**r)
        places = [root / folder] + ([recorded / folder] if recorded else [])
        if any(_finished(p / "metrics.json", _fingerprint(rc)) for p in places):
            continue
        out.append(
            {
                **{k: r[k] for k in ("variant", "head", "lr", "device", "seed", "hash")},
                "folder": folder,
                "cache": cache_path(vcfg),
                "data": vcfg["data"],
                "description": asdict(rc),
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
    rows = [f"{i:3d}. {r['variant']:<12} {r['folder']}" for i, r in enumerate(q["runs"], 1)]
    return "\n".join([head, *rows])


def write(q: dict, out: Path) -> None:
    write_atomic(out, json.dumps(q, indent=2, sort_keys=False) + "\n")
