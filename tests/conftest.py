"""Shared fixtures: a fixed, stratified subset of the offline CIFAR-10 archive and a
small grid of really trained runs (tiny widths, 2 epochs) to build tables, figures and
reports from."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from repro.engine.data import prepare
from repro.engine.train import train_run
from repro.plan import config as config_mod
from repro.plan import grid

ROOT = Path(__file__).resolve().parents[1]
ARCHIVE = (ROOT / ".." / "shared" / "data" / "cifar10-jpeg.tar.gz").resolve()
TINY_MODEL = {"widths": [8, 8, 16, 16, 32, 32], "hidden": 32}


# what a copy of the project for a workflow test leaves out (built or machine-local)
NOT_COPIED = (".git", ".venv", "results", "resources", "logs", ".snakemake", "__pycache__")


@pytest.fixture(scope="session")
def copy_project():
    """``copy(dest, *also_skip)``: a copy of the project's sources at ``dest``, to run
    Snakemake in."""

    ignored = _ignored_by_git()

    def copy(dest: Path, *also_skip: str) -> Path:
        patterns = shutil.ignore_patterns(*NOT_COPIED, ".pytest_cache", *also_skip)

        def skip(directory: str, names: list[str]) -> set[str]:
            rel = Path(directory).relative_to(ROOT)
            return set(patterns(directory, names)) | {
                n for n in names if (rel / n).as_posix() in ignored
            }

        shutil.copytree(ROOT, dest, ignore=skip)
        return dest

    return copy


def _ignored_by_git() -> set[str]:
    """What git ignores in the checkout (relative paths): built or machine-local things,
    however large (scripts/device_torch_check.sh's venv is 4.7 GiB and filled the disk
    of a copy), that a copy leaves out; empty outside a git checkout."""
    cmd = ["git", "ls-files", "-z", "--others", "--ignored", "--exclude-standard", "--directory"]
    try:
        out = subprocess.run(cmd, cwd=ROOT, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return set()
    return {p.rstrip("/") for p in out.decode().split("\0") if p}


def tiny_config(**overrides) -> dict:
    raw = {
        "data": {
            "source": "archive",
            "archive": str(ARCHIVE),
            "subset": {"train_per_class": 30, "test_per_class": 10},
        },
        "model": dict(TINY_MODEL),
        "devices": ["cpu"],
        "train": {"epochs": 2},
        "timing": {"devices": ["cpu"], "epochs": 1},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(raw.get(key), dict):
            raw[key] = {**raw[key], **value}
        else:
            raw[key] = value
    return config_mod.validate(raw)


@pytest.fixture(scope="session")
def archive() -> Path:
    if not ARCHIVE.exists():
        pytest.fail(f"offline CIFAR-10 archive missing at {ARCHIVE} (see ../shared/data)")
    return ARCHIVE


@pytest.fixture(scope="session")
def tiny_cache(archive, tmp_path_factory) -> Path:
    """300 training and 100 test images (30 and 10 per class), decoded once."""
    out = tmp_path_factory.mktemp("data") / "tiny.npz"
    prepare(tiny_config()["data"], out)
    return out


@pytest.fixture(scope="session")
def tiny_runs(tiny_cache, tmp_path_factory) -> dict:
    """Three learning rates x two seeds of really trained tiny runs, plus a timing JSON.

    Returns dict(config=<resolved config>, config_path, runs=[metrics.json paths],
    timing=[timing.json paths], data_meta=<cache JSON path>, root=<folder>)."""
    from repro.engine.timing import measure

    root = tmp_path_factory.mktemp("study")
    cfg = tiny_config(seeds=[0, 1])
    metrics = []
    for r in grid.runs(cfg):
        rc = grid.run_config(cfg, r["head"], float(r["lr"]), r["device"], r["seed"])
        out = root / grid.RUN_DIR.format(**r)
        train_run(rc, tiny_cache, out)
        metrics.append(out / "metrics.json")
    timing_out = root / "results" / "timing" / "cpu" / "timing.json"
    timing_out.parent.mkdir(parents=True)
    rc = grid.run_config(cfg, "softmax", cfg["learning_rates"][0], "cpu", 0)
    measure(rc, tiny_cache, timing_out)
    config_path = root / "results" / "config.json"
    config_path.write_text(json.dumps(cfg, indent=2))
    return dict(
        config=cfg,
        config_path=config_path,
        runs=metrics,
        timing=[timing_out],
        data_meta=tiny_cache.with_suffix(".json"),
        root=root,
    )
