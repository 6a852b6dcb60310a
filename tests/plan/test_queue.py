"""The queue of runs a study still lacks (issue 21), in priority order, each with the
folder and description a GPU session trains it from."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from repro.errors import UserError
from repro.plan import grid
from repro.plan import queue as queue_mod
from repro.plan.settings import RunConfig

ROOT = Path(__file__).resolve().parents[2]
RECORDED = ROOT / "recorded" / "h100-2026-11-26"

STUDY = {
    "devices": ["cpu"],
    "learning_rates": [0.01, 0.005],
    "seeds": [0, 1],
    "train": {"precision": "fp32"},
    "variants": [
        {"name": "narrow", "reason": "r", "learning_rates": [0.01], "model": {"hidden": 64}}
    ],
}


@pytest.fixture
def study(tmp_path) -> Path:
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(STUDY))
    return path


def finish(root: Path, run: dict, fingerprint: str) -> None:
    d = root / run["folder"]
    d.mkdir(parents=True)
    (d / "metrics.json").write_text(json.dumps({"fingerprint": fingerprint}))


def test_queue_lists_missing_runs_in_priority_order_and_skips_finished_ones(study, tmp_path):
    q = queue_mod.queue([study], tmp_path, None)
    assert q["planned"] == 6 and q["done"] == 0
    assert [(r["variant"], r["lr"], r["seed"]) for r in q["runs"]] == [
        ("paper", "0.01", 0),
        ("paper", "0.005", 0),
        ("paper", "0.01", 1),
        ("paper", "0.005", 1),
        ("narrow", "0.01", 0),
        ("narrow", "0.01", 1),
    ]
    first, narrow = q["runs"][0], q["runs"][4]
    finish(tmp_path, first, RunConfig.from_dict(first["description"]).fingerprint())
    # a finished run of other settings in the folder does not count
    finish(tmp_path, narrow, "0" * 16)
    q2 = queue_mod.queue([study], tmp_path, None)
    assert q2["done"] == 1
    assert [r["folder"] for r in q2["runs"]] == [r["folder"] for r in q["runs"][1:]]


def test_each_entry_is_what_the_train_command_takes(study, tmp_path):
    q = queue_mod.queue([study], tmp_path, None)
    out = tmp_path / "q.json"
    queue_mod.write(q, out)
    back = json.loads(out.read_text())
    assert back["format"] == "repro-queue/1"
    for r in back["runs"]:
        rc = RunConfig.from_dict(r["description"])
        assert r["folder"] == grid.RUN_DIR.format(**r)
        assert rc.model.hidden == (64 if r["variant"] == "narrow" else 512)
        assert r["cache"].endswith(".npz") and r["data"]["subset"]


def test_recorded_runs_count_as_done():
    """The why study against the committed recording: the three bf16 runs and the fp32
    run the H200 trained (lr 0.01, seed 0) are done, the other 18 are queued with the
    fp32 paper grid first."""
    q = queue_mod.queue([ROOT / "config" / "why.yaml"], Path("/nonexistent"), RECORDED)
    assert (q["planned"], q["done"]) == (22, 4)
    assert ("0.01", 0) not in {(r["lr"], r["seed"]) for r in q["runs"] if r["variant"] == "paper"}
    assert "bf16" not in {r["variant"] for r in q["runs"]}
    assert [r["variant"] for r in q["runs"][:8]] == ["paper"] * 8
    assert q["runs"][0]["description"]["precision"] == "fp32"


def test_a_folder_that_is_not_a_recording_is_one_line(study, tmp_path):
    with pytest.raises(UserError, match="not a recorded folder"):
        queue_mod.queue([study], tmp_path, tmp_path)
