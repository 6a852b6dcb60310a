"""The why study at smoke scale (config/why-smoke.yaml) through Snakemake on the CPU:
every variant (the three readings of the block among them) trains into its own folders,
the JPEG variant on its own re-encoded cache that records the distortion it added, and
the report builds from all of them."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_workflow import planned_jobs, project_copy, snakemake  # noqa: E402

from repro.plan import config as config_mod  # noqa: E402
from repro.plan import grid  # noqa: E402

WHY = ["--configfile", "config/why-smoke.yaml"]
pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def why_project(tmp_path_factory, copy_project) -> Path:
    repo = project_copy(tmp_path_factory, copy_project)
    snakemake(repo, *WHY)
    return repo


def test_every_variant_trained_into_its_own_folders(why_project):
    cfg = json.loads((why_project / "results" / "config.json").read_text())
    cfg = config_mod.validate(cfg)
    planned = grid.runs(cfg)
    readings = {"wider", "bn-per-branch", "mlp-gate"}
    assert {r["variant"] for r in planned} == {"paper", "narrow", "jpeg-q20", *readings}
    for r in planned:
        metrics = why_project / grid.RUN_DIR.format(**r) / "metrics.json"
        assert metrics.is_file(), r
        m = json.loads(metrics.read_text())
        wanted = grid.run_config(grid.variant_config(cfg, r["variant"]), "softmax", 0.01, "cpu", 0)
        assert list(m["config"]["model"]["widths"]) == list(wanted.model.widths)
        model = m["config"]["model"]
        assert (model["gate"], model["gate_hidden"], model["branch_norm"]) == (
            wanted.model.gate,
            wanted.model.gate_hidden,
            wanted.model.branch_norm,
        )
    # the readings reached their runs (not only the defaults, equal on both sides)
    by_variant = {r["variant"]: grid.RUN_DIR.format(**r) for r in planned}
    model = json.loads((why_project / by_variant["mlp-gate"] / "metrics.json").read_text())
    assert model["config"]["model"]["gate"] == "mlp"
    model = json.loads((why_project / by_variant["bn-per-branch"] / "metrics.json").read_text())
    assert model["config"]["model"]["branch_norm"] == "per_branch"
    assert (why_project / "results" / "report.pdf").stat().st_size > 10_000
    assert planned_jobs(snakemake(why_project, *WHY, "-n")) == {}


def test_jpeg_variant_cache_records_its_added_distortion(why_project):
    data = why_project / "resources" / "data"
    meta = json.loads(next(data.glob("*-q20.json")).read_text())
    base = json.loads(next(p for p in data.glob("*.json") if "-q" not in p.name).read_text())
    assert meta["jpeg"]["quality"] == 20
    # q20 on q75 images adds MSE about 168 on the whole archive (the colleague's measure)
    assert 100 < meta["jpeg"]["added_mse_train"] < 250
    assert meta["n_train"] == base["n_train"] and meta["sha256"] == base["sha256"]
