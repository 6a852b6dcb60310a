"""The GPU machine's script, proven here: it runs under a Python that holds only torch,
torchvision, numpy, pillow and pyyaml (and what they require), end to end on the CPU,
and its runs are exactly the workflow's train jobs. The planner and the run-stopping
rule are checked on inputs whose answer is known."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
from importlib import metadata
from pathlib import Path

import pytest

from repro.engine.device_run import choose, must_stop_one
from repro.errors import UserError
from repro.plan import config as config_mod
from repro.plan import grid, recorded
from repro.plan.dataset import sha256_of
from repro.plan.recording import record

ROOT = Path(__file__).resolve().parents[2]
DEVICE_PACKAGES = ("torch", "torchvision", "numpy", "pillow", "pyyaml")


def _closure(names) -> set[str]:
    """The distributions ``names`` need, following their unconditional and
    platform-conditional requirements (not extras)."""
    from packaging.requirements import Requirement

    seen: set[str] = set()
    todo = list(names)
    while todo:
        dist = metadata.distribution(todo.pop())
        key = dist.metadata["Name"].lower().replace("_", "-")
        if key in seen:
            continue
        seen.add(key)
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                continue
            todo.append(req.name)
    return seen


def bare_python(root: Path) -> Path:
    """A virtual environment whose site-packages links only the device's packages and
    their requirements from this interpreter's environment (no copy of torch's GBs)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    site = Path(sysconfig.get_path("purelib", vars={"base": str(root), "platbase": str(root)}))
    for name in _closure(DEVICE_PACKAGES):
        dist = metadata.distribution(name)
        tops = {Path(str(f)).parts[0] for f in dist.files or []}
        for top in tops:
            src = Path(dist.locate_file(top))
            if top.startswith("..") or top == "bin" or not src.exists():
                continue
            if not (site / top).exists():
                (site / top).symlink_to(src)
    return root / "bin" / "python"


@pytest.fixture(scope="module")
def device_python(tmp_path_factory) -> Path:
    # REPRO_DEVICE_PYTHON: an interpreter holding the GPU machine's own versions (torch
    # 2.11 there, 2.14 here), so that an API the device's torch lacks fails here first
    given = os.environ.get("REPRO_DEVICE_PYTHON")
    py = Path(given) if given else bare_python(tmp_path_factory.mktemp("bare"))
    probe = (
        "import importlib.util as u, torch, torchvision, numpy, PIL, yaml;"
        "print([m for m in ('jsonschema', 'snakemake', 'pandas', 'weasyprint') if u.find_spec(m)])"
    )
    res = subprocess.run([str(py), "-c", probe], capture_output=True, text=True, cwd="/")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]", f"the bare venv is not bare: {res.stdout}"
    return py


@pytest.mark.device_script
def test_device_script_runs_in_a_bare_python(device_python, archive, tmp_path, monkeypatch):
    arch = tmp_path / "resources" / "cifar10-jpeg.tar.gz"
    arch.parent.mkdir()
    arch.symlink_to(archive)
    out = tmp_path / "out"
    cmd = ["bash", str(ROOT / "scripts" / "device_run.sh"), str(out), "--device", "cpu"]
    cmd += ["--archive", str(arch), "--subset", "10,5", "--epochs", "1", "--budget-s", "900"]
    cmd += ["--variants", "eager", "--calibration-steps", "2", "--reference-workers", "2"]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(PYTHON=str(device_python), TMPDIR=str(tmp_path))
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    tail = res.stdout.strip().splitlines()
    # the summary comes last (only the end of the output comes back from the GPU machine)
    assert tail[-1].startswith("packed:") and any(line.startswith("0.01 ") for line in tail[-8:])
    assert (out / "device-run.log").read_text() == res.stdout

    with tarfile.open(out / "device-run.tar.gz") as tar:
        names = tar.getnames()
        summary = json.load(tar.extractfile("summary.json"))
        environment = json.load(tar.extractfile("environment.json"))
    assert not any(n.endswith((".pt", ".npz")) for n in names), "weights and data stay out"
    assert {"calibration.json", "environment.json", "plan.json"} <= set(names)
    # it ran under the interpreter it was given (with REPRO_DEVICE_PYTHON: the GPU's torch)
    probe = [str(device_python), "-c", "import torch; print(torch.__version__)"]
    given = subprocess.run(probe, capture_output=True, text=True, cwd="/", check=True)
    assert environment["torch"] == given.stdout.strip()

    # the runs are the workflow's train jobs: same settings hash (folder) and fingerprint
    plan = summary["plan"]
    cfg = config_mod.validate(
        {
            "data": {"source": "archive", "archive": str(archive)},
            "devices": ["cpu"],
            "train": {"epochs": 1, "precision": plan["precision"], "compile": False},
            # the device script times min(timing.epochs, epochs) epochs
            "timing": {"epochs": 1},
        }
    )
    cfg["data"]["subset"] = {"train_per_class": 10, "test_per_class": 5}
    settings = grid.settings_hash(cfg, "cpu")
    assert [r["lr"] for r in summary["runs"]] == ["0.01", "0.005", "0.001"]
    for run in summary["runs"]:
        assert run["complete"] and run["epochs_done"] == 1
        assert run["folder"] == f"results/runs/softmax/lr{run['lr']}/cpu/seed0/{settings}"
        for f in ("epochs.csv", "steps.csv", "predictions.csv", "confusion_by_epoch.csv"):
            assert f"{run['folder']}/{f}" in names, f
        rc = grid.run_config(cfg, "softmax", float(run["lr"]), "cpu", 0)
        assert run["fingerprint"] == rc.fingerprint()
        assert (out / f"weights-lr{run['lr']}-fp16.pt").exists()
    assert "results/timing/cpu/timing.json" in names
    assert re.search(r"grid: 3 epochs in \d+ s", res.stdout)

    # recorded, the runs pass the recorded mode's checks for the matching config; record
    # writes under the project it runs in only (here tmp_path)
    monkeypatch.chdir(tmp_path)
    folder = record(out / "device-run.tar.gz", tmp_path / "recorded", "cpu-test")
    cfg["recorded"] = str(folder)
    found = recorded.plan(cfg, grid.recorded_expectations(cfg))
    assert len(found.runs) == 3
    prov = json.loads((folder / "provenance.json").read_text())
    # the commit the device reported, and each run's code as its training job took it
    assert prov["commit"] == prov["commit_reported_by_device"] != "unknown"
    assert all(r["code"]["commit"] == prov["commit"] for r in prov["runs"])
    # and the commit the caller named (here the same), which the report checks the run
    # code against where a GPU machine's .git is older than its tree
    assert all(r["code"]["named_commit"] == prov["commit"] for r in prov["runs"])
    assert prov["data_sha256"] == sha256_of(archive)
    assert prov["command"].startswith("bash scripts/device_run.sh $OUT --device cpu")
    # a config that differs from the recording (another precision) is refused
    other = "bf16" if plan["precision"] == "fp32" else "fp32"
    cfg["train"]["precision"] = other
    with pytest.raises(UserError, match="precision"):
        recorded.plan(cfg, grid.recorded_expectations(cfg))


def test_plan_prefers_the_seeds_fp32_when_the_grid_fits():
    calib = {
        "eager-fp32": {"ok": True, "img_s": 50_000, "eval_s": 0.0, "warmup_s": 1.0},
        "eager-bf16": {"ok": True, "img_s": 100_000, "eval_s": 0.0, "warmup_s": 1.0},
        "graphs-bf16": {"ok": True, "epoch_s": 0.25, "warmup_s": 20.0, "img_s": 200_000},
        "reference-w2": {"ok": True, "img_s": 5_000},
    }
    # fp32 eager: 3 x 150 x 1 s + 1 = 451 s
    assert choose(calib, 50_000, 3, 150, 600)["variant"] == "eager-fp32"
    # no fp32 fit: the bf16 variant with the shortest grid (graphs: 112.5 + 20 s)
    plan = choose(calib, 50_000, 3, 150, 400)
    assert plan["variant"] == "graphs-bf16" and plan["fits"]
    # nothing fits: still the fastest bf16, marked as not fitting
    plan = choose(calib, 50_000, 3, 150, 60)
    assert plan["variant"] == "graphs-bf16" and not plan["fits"]
    # a failed or non-finite variant is never chosen
    calib["graphs-bf16"]["ok"] = False
    calib["eager-bf16"]["finite_loss"] = False
    assert choose(calib, 50_000, 3, 150, 400)["variant"] == "eager-fp32"


def test_a_run_is_stopped_only_when_the_rest_cannot_finish():
    # three runs sharing a GPU at 1 epoch/s in all: 300 epochs left need 300 s
    rates = [1 / 3, 1 / 3, 1 / 3]
    assert not must_stop_one([100, 100, 100], rates, 301)
    assert must_stop_one([100, 100, 100], rates, 299)
    # a single run is left to the deadline
    assert not must_stop_one([100], [1.0], 10)


@pytest.mark.device_script
def test_gpu_session_trains_a_queue_in_a_bare_python(device_python, archive, tmp_path, monkeypatch):
    """scripts/gpu_session.sh with a queue (a tiny model, 1 epoch), forced to the wide
    layout: every run's folder comes back with its layout, and `record --add` adds the
    runs to a copy of the H100 recording beside its own."""
    from repro.engine.device_queue import standin_queue

    model = {"widths": [4, 6, 8], "kernel_sizes": [1, 3], "pool_after": [1, 2], "hidden": 16}
    q = standin_queue(archive, "cpu", seeds=(1,), subset=(20, 5), epochs=1, model=model)
    queue = tmp_path / "queue.json"
    queue.write_text(json.dumps(q))
    out = tmp_path / "out"
    cmd = ["bash", str(ROOT / "scripts" / "gpu_session.sh"), str(out), "--device", "cpu"]
    cmd += ["--archive", str(archive), "--wide-ks", "2", "4", "--procs", "2"]
    cmd += ["--force-layout", "wide-4", "--threads", "1"]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(PYTHON=str(device_python), TMPDIR=str(tmp_path), QUEUE=str(queue))
    env.update(BUDGET_S="400", MEASURE_S="120", STEPS="2")
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert res.stdout.strip().splitlines()[-1].startswith("packed:")
    assert sorted(p.name for p in out.iterdir()) == ["device-run.log", "device-run.tar.gz"]

    with tarfile.open(out / "device-run.tar.gz") as tar:
        names = set(tar.getnames())
        summary = json.load(tar.extractfile("summary.json"))
        layouts = json.load(tar.extractfile("layouts.json"))
        check = json.load(tar.extractfile("wide_check.json"))
    # the equality check ran after the training (gpu_session's default: a pack of 2)
    assert check["bitwise_equal"] and check["k"] == 2 and check["tensors"] > 10
    assert res.stdout.index("wide check (K = 2") > res.stdout.rindex(": done")
    assert {"single", "wide-2", "wide-4", "procs-2", "ceiling"} <= set(layouts)
    assert summary["layout"]["name"] == "wide-4"
    for name, row in summary["layouts"].items():
        assert row["vs_today_0.70"] == pytest.approx(row["epochs_per_s"] / 0.70), name
        assert row["of_bf16_matmul"] > 0
    folders = [r["folder"] for r in q["runs"]]
    assert [r["folder"] for r in summary["runs"]] == folders
    for slot, run in enumerate(summary["runs"]):
        assert run["complete"] and run["layout"] == {"k": 3, "slot": slot}
        for f in ("epochs.csv", "steps.csv", "predictions.csv", "metrics.json"):
            assert f"{run['folder']}/{f}" in names, f

    copy = tmp_path / "recorded"
    shutil.copytree(ROOT / "recorded" / "h100-2026-11-26", copy / "h100-2026-11-26")
    before = {p.relative_to(copy) for p in copy.rglob("*") if p.name != "provenance.json"}
    monkeypatch.chdir(tmp_path)  # record writes under the working directory only
    folder = record(out / "device-run.tar.gz", copy, "h100-2026-11-26", add=True)
    prov = recorded.read_json(folder, "provenance.json")
    recorded.check_manifest(folder, prov)
    earlier = len(
        recorded.read_json(ROOT / "recorded" / "h100-2026-11-26", "provenance.json")["runs"]
    )
    assert [r["folder"] for r in prov["runs"]][earlier:] == folders
    assert len(prov["sessions"]) == 4
    for f in folders:
        assert (folder / f / "metrics.json").is_file()
    after = {p.relative_to(copy) for p in copy.rglob("*")}
    assert before <= after  # the recording's own runs are kept as they were
