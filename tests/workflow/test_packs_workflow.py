"""Packs and GPUs through Snakemake, in a fresh copy of the project: a cuda config plans
one job per pack (a dry run: no GPU needed), concurrent train jobs take distinct
(simulated) GPUs, and packing a finished study differently retrains none of its runs."""

from __future__ import annotations

import base64
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from repro.engine.gpu_slots import SIMULATED_ENV
from repro.plan import recorded

ROOT = Path(__file__).resolve().parents[2]
RUN_FILES = tuple(recorded.TRAINED_FILES.values())
# a study small enough to train in seconds: 100 images, a tiny model, one epoch
TINY = """
data: {subset: {train_per_class: 10, test_per_class: 5}}
model: {widths: [8, 8, 16, 16, 32, 32], hidden: 32}
learning_rates: [0.01, 0.005]
seeds: [0]
devices: [cpu]
train: {epochs: 1}
timing: {devices: [cpu], epochs: 1}
estimate: {calibrate: false}
"""
pytestmark = pytest.mark.integration


@pytest.fixture
def repo(tmp_path, copy_project) -> Path:
    """A copy of the project next to a link to ../shared, and a PATH on which the SLURM
    plugin's `scontrol` answers at once (installed but not running, it waits 10 s)."""
    (tmp_path / "shared").symlink_to((ROOT / ".." / "shared").resolve())
    repo = copy_project(tmp_path / "repo", "recorded", "docs", "benchmarks")
    stub = tmp_path / "bin"
    stub.mkdir()
    (stub / "scontrol").write_text("#!/bin/sh\nexit 1\n")
    (stub / "scontrol").chmod(0o755)
    (repo / "config" / "tiny.yaml").write_text(TINY)
    return repo


def snakemake(repo: Path, *args: str, env: dict | None = None) -> str:
    path = f"{repo.parent / 'bin'}:{os.environ['PATH']}"
    env = {**os.environ, **(env or {}), "PATH": path}
    cmd = [sys.executable, "-m", "snakemake", *args]
    res = subprocess.run(cmd, cwd=repo, capture_output=True, text=True, env=env)
    out = res.stdout + res.stderr
    assert res.returncode == 0, f"{' '.join(cmd)} failed:\n{out[-4000:]}"
    return out


def jobs(out: str) -> dict[str, dict[str, list[str]]]:
    """A dry run's jobs (-p): rule name -> its input, output and log, and its command."""
    found = {}
    for block in re.split(r"\n(?=\[.*\]\n(?:local)?rule )", out):
        m = re.search(r"^(?:local)?rule (\w+):", block, re.M)
        if not m:
            continue
        fields = {k: v.split(", ") for k, v in re.findall(r"^    (\w+): (.*)$", block, re.M)}
        command = re.search(r"^(?:Shell command: )?(\(?python -m repro .*)$", block, re.M)
        fields["command"] = shlex.split(command[1]) if command else []
        found.setdefault(m[1], []).append(fields)
    return found


def flag_values(command: list[str], flag: str) -> list[str]:
    start = command.index(flag) + 1
    end = next((i for i in range(start, len(command)) if command[i].startswith("-")), None)
    return command[start:end]


def run_folders(cfg: list[str], device: str, repo: Path) -> list[str]:
    """The study's run folders on ``device``, as the planning code names them."""
    code = (
        "import json, sys; from repro.plan import config, grid; "
        "cfg = config.load_study([*map(__import__('pathlib').Path, sys.argv[2:])]); "
        f"cfg['devices'] = ['{device}']; cfg['train']['pack'] = int(sys.argv[1]); "
        "print(json.dumps([grid.RUN_DIR.format(**r) for r in grid.runs(cfg)]))"
    )
    env = {**os.environ, "PYTHONPATH": str(repo / "src")}
    res = subprocess.run(
        [sys.executable, "-c", code, "1", *cfg],
        cwd=repo,
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return json.loads(res.stdout)


def test_a_cuda_config_plans_one_job_per_pack(repo):
    """Six cuda runs, train.pack 4: one job trains the first four in priority order, one
    the last two; each job's outputs are every file of its runs, and the report's tables
    still read every run. With train.pack 5 the sixth run trains alone (rule train)."""
    smoke = ["--configfile", "config/smoke.yaml"]
    cuda = ["devices=[cuda]", "timing={devices: [cpu]}"]
    out = snakemake(repo, "-n", "-p", "--cores", "2", *smoke, "--config", *cuda, "train={pack: 4}")
    planned = jobs(out)
    packs = {name: js for name, js in planned.items() if name.startswith("train_pack_")}
    assert "train" not in planned and sorted(len(js) for js in packs.values()) == [1, 1]
    folders = run_folders(["config/smoke.yaml"], "cuda", repo)
    assert len(folders) == 6
    by_size = sorted((js[0] for js in packs.values()), key=lambda j: -len(j["log"]))
    assert [flag_values(j["command"], "--outs") for j in by_size] == [folders[:4], folders[4:]]
    for job in by_size:
        outs = flag_values(job["command"], "--outs")
        assert job["output"] == [f"{f}/{name}" for f in outs for name in RUN_FILES]
        assert len(job["log"]) == len(outs) == len(flag_values(job["command"], "--progress"))
        descs = [json.loads(d) for d in flag_values(job["command"], "--runs")]
        assert {d["device"] for d in descs} == {"cuda"}
        assert job["command"][job["command"].index("--gpu-slots") + 1] == ".repro/gpu-slots"
    tables = planned["tables"][0]["input"]
    assert all(f"{f}/metrics.json" in tables for f in folders)

    out = snakemake(repo, "-n", "-p", "--cores", "2", *smoke, "--config", *cuda, "train={pack: 5}")
    planned = jobs(out)
    assert len(planned["train"]) == 1
    assert flag_values(planned["train"][0]["command"], "--outs") == folders[5:]
    assert [len(js) for name, js in planned.items() if name.startswith("train_pack_")] == [1]


def test_concurrent_jobs_take_distinct_gpus_and_repacking_retrains_nothing(repo):
    """Two train jobs at once on two simulated GPUs take one each. Then the finished runs
    stand in for cuda runs trained alone (their files and Snakemake's records copied to
    the cuda folders, which have the same hash): packing them (train.pack 2) or not
    plans no job, since a pack's rule runs the same command with the same params."""
    tiny = ["--configfile", "config/tiny.yaml"]
    folders = run_folders(["config/tiny.yaml"], "cpu", repo)
    targets = [f"{f}/metrics.json" for f in folders]
    # the targets first: --configfile takes every word after it
    two_at_once = ["--cores", "2", "--set-threads", "train=1"]
    snakemake(repo, *targets, *two_at_once, *tiny, env={SIMULATED_ENV: "2"})
    gpus = [json.loads((repo / t).read_text())["gpu"] for t in targets]
    assert sorted(g["index"] for g in gpus) == [0, 1] and {g["of"] for g in gpus} == {2}

    cuda_folders = run_folders(["config/tiny.yaml"], "cuda", repo)
    assert [f.replace("/cuda/", "/cpu/") for f in cuda_folders] == folders  # same hash
    records = repo / ".snakemake" / "metadata"
    for cpu, cuda in zip(folders, cuda_folders, strict=True):
        shutil.copytree(repo / cpu, repo / cuda)
        for name in RUN_FILES:
            record = records / base64.b64encode(f"{cpu}/{name}".encode()).decode()
            assert record.is_file(), f"no Snakemake record of {cpu}/{name}"
            shutil.copy2(record, records / base64.b64encode(f"{cuda}/{name}".encode()).decode())
    cuda_targets = [f"{f}/metrics.json" for f in cuda_folders]
    for pack in (2, 1):
        config = ["devices=[cuda]", f"train={{epochs: 1, pack: {pack}}}"]
        out = snakemake(repo, *cuda_targets, "-n", "--cores", "2", *tiny, "--config", *config)
        assert "Nothing to be done" in out, out[-3000:]
