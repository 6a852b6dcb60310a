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


def test_recorded_runs_count_as_done_and_the_queue_is_ranked():
    """The why study against the committed recording: the three bf16 runs and the fp32
    run the H200 trained (lr 0.01, seed 0) are done; the other 24 are queued in the
    config's ranking: the reference's fp32 seeds at lr 0.01, the JPEG question, the
    wider blocks, the block's other readings, the capacity-reducing readings, and the
    reference's other rates last."""
    q = queue_mod.queue([ROOT / "config" / "why.yaml"], Path("/nonexistent"), RECORDED)
    assert (q["planned"], q["done"]) == (28, 4)
    assert ("0.01", 0) not in {(r["lr"], r["seed"]) for r in q["runs"] if r["variant"] == "paper"}
    assert "bf16" not in {r["variant"] for r in q["runs"]}
    order = [(r["variant"], r["lr"], r["seed"]) for r in q["runs"]]
    assert order[:2] == [("paper", "0.01", 1), ("paper", "0.01", 2)]
    ranked = ["jpeg-q50", "jpeg-q20", "wider", "bn-per-branch", "mlp-gate", "narrow"]
    ranked += ["hidden256", "dropout07"]
    assert order[2:18] == [(v, "0.01", seed) for v in ranked for seed in (0, 1)]
    assert order[18:] == [("paper", lr, s) for s in (0, 1, 2) for lr in ("0.005", "0.001")]
    assert q["runs"][0]["description"]["precision"] == "fp32"
    # each run's estimated GPU minutes: the adopted model 5.8 (H100) / 5.0 (H200); the
    # wider blocks' 1.56 times its multiply-accumulates within one 10-minute command
    minutes = {r["variant"]: r["gpu_minutes"] for r in q["runs"]}
    assert minutes["paper"] == {"H100": 5.8, "H200": 5.0}
    assert minutes["wider"] == {"H100": 9.0, "H200": 7.8}
    assert all(m["H100"] < 10 and m["H200"] < 10 for m in minutes.values())
    text = queue_mod.lines(q)
    assert "wider" in text and "GPU min 9.0/7.8" in text


def test_the_queue_key_puts_its_runs_first_in_its_order(study, tmp_path):
    """An entry with learning rates takes only those of the variant's runs; the runs no
    entry names keep the grid's order (seed by seed) after the named ones."""
    cfg = yaml.safe_load(study.read_text())
    cfg["queue"] = [{"variant": "narrow"}, {"variant": "paper", "learning_rates": [0.005]}]
    study.write_text(yaml.safe_dump(cfg))
    q = queue_mod.queue([study], tmp_path, None)
    assert [(r["variant"], r["lr"], r["seed"]) for r in q["runs"]] == [
        ("narrow", "0.01", 0),
        ("narrow", "0.01", 1),
        ("paper", "0.005", 0),
        ("paper", "0.005", 1),
        ("paper", "0.01", 0),
        ("paper", "0.01", 1),
    ]


def test_gpu_minutes_scale_the_measured_epoch_by_macs_images_and_epochs():
    """The adopted model's full-data fp32 epoch is the measured 2.3 s (H100) / 2.0 s
    (H200); a model with four times the multiply-accumulates per image (every width
    doubled) takes four times as long, a tenth of the images a tenth (test images at a
    third of the cost), and bf16 has a figure only where it was measured."""
    from repro.plan import estimate
    from repro.plan.settings import ModelSpec

    rc = RunConfig(lr=0.01, epochs=150, precision="fp32")
    assert estimate.gpu_minutes(rc, 50_000, 10_000) == pytest.approx(
        {"H100": 2.3 * 150 / 60, "H200": 2.0 * 150 / 60}
    )
    double = RunConfig(
        lr=0.01,
        epochs=150,
        precision="fp32",
        model=ModelSpec(widths=(128, 128, 256, 256, 512, 512)),
    )
    ratio = estimate.macs_per_image(double.model) / estimate.macs_per_image(rc.model)
    assert ratio == pytest.approx(4, rel=0.01)  # the first block's 3 input channels
    assert estimate.gpu_minutes(double, 50_000, 10_000)["H200"] == pytest.approx(
        2.0 * 150 / 60 * ratio
    )
    assert estimate.gpu_minutes(rc, 5_000, 1_000)["H200"] == pytest.approx(0.5)
    bf16 = estimate.gpu_minutes(RunConfig(lr=0.01, epochs=150, precision="bf16"), 50_000, 10_000)
    assert bf16 == {"H100": pytest.approx(5.0), "H200": None}


def test_a_folder_that_is_not_a_recording_is_one_line(study, tmp_path):
    with pytest.raises(UserError, match="not a recorded folder"):
        queue_mod.queue([study], tmp_path, tmp_path)
