"""The SLURM profile's dry run of the paper config (no SLURM needed, issue 4).

`snakemake -n --profile profiles/slurm` on the paper grid must show, per job,
the resources the executor turns into sbatch options: one GPU (of the
configured model, on the GPU partition) for every cuda train/timing job, none
for cpu jobs; data preparation once.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from test_slurm import REPO, copy_repo  # tests/slurm is on sys.path (pytest's rootdir-less mode)

SNAKEMAKE = Path(sys.executable).parent / "snakemake"

CLUSTER_CONFIG = [
    "devices=[cpu,cuda]",
    "timing={devices: [cpu, cuda]}",
    "slurm={partition: compute, gpu_partition: gpu, gpu_model: a100}",
]
LOCAL_RULES = {"write_config", "tables", "figures", "provenance", "report"}


def parse_jobs(log: str) -> list[dict]:
    """One dict per job block of a dry run: rule, local, wildcards, resources."""
    jobs: list[dict] = []
    job: dict | None = None
    for line in log.splitlines():
        m = re.match(r"^(local)?rule (\w+):$", line)
        if m:
            job = {"rule": m.group(2), "local": bool(m.group(1)), "wildcards": {}, "resources": {}}
            jobs.append(job)
            continue
        if job is None:
            continue
        m = re.match(r"^\s+(wildcards|resources): (.*)$", line)
        if m:
            job[m.group(1)] = dict(
                item.split("=", 1) for item in m.group(2).split(", ") if "=" in item
            )
    return jobs


def dry_run(folder: Path, *config: str) -> dict[str, list[dict]]:
    """The jobs of the profile's dry run of the paper config, by rule."""
    proc = subprocess.run(
        [
            str(SNAKEMAKE),
            "results/report.pdf",
            "-n",
            "--profile",
            str(REPO / "profiles" / "slurm"),
            "--configfile",
            "config/config.yaml",
            "--config",
            *CLUSTER_CONFIG,
            *config,
        ],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=300,
    )
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-5000:]
    by_rule: dict[str, list[dict]] = {}
    for job in parse_jobs(log):
        by_rule.setdefault(job["rule"], []).append(job)
    return by_rule


def test_paper_dry_run_requests_gpus_for_cuda_jobs(tmp_path):
    # a copy without results/, so that every job of the grid is planned
    copy_repo(tmp_path)
    by_rule = dry_run(tmp_path)

    # the paper grid: 3 learning rates x 2 devices x 1 seed, timing per device
    assert len(by_rule["train"]) == 6, [j["wildcards"] for j in by_rule["train"]]
    assert sorted(j["wildcards"]["device"] for j in by_rule["timing"]) == ["cpu", "cuda"]
    assert len(by_rule["prepare_data"]) == 1

    for job in by_rule["train"] + by_rule["timing"]:
        res = job["resources"]
        assert not job["local"], job
        assert int(res["mem_mb"]) > 0 and int(res["cpus_per_task"]) > 0, res
        if job["wildcards"]["device"] == "cuda":
            assert res.get("gpu") == "1", job
            assert res.get("gpu_model") == "a100", job
            assert res.get("slurm_partition") == "gpu", job
        else:
            assert res.get("gpu", "0") == "0", job
            assert res.get("slurm_partition") == "compute", job
        # runtime (minutes) follows the epochs: 150 epochs of training take longer
        # than the 5 epochs of the timing run
        assert int(res["runtime"]) > 0, res
    cuda_train = [j for j in by_rule["train"] if j["wildcards"]["device"] == "cuda"]
    cuda_timing = [j for j in by_rule["timing"] if j["wildcards"]["device"] == "cuda"]
    assert int(cuda_train[0]["resources"]["runtime"]) > int(cuda_timing[0]["resources"]["runtime"])

    # (a dry run prints every job as "rule"; that the aggregates run as
    # localrules and nothing else does is checked on a real SLURM in test_slurm.py)
    assert LOCAL_RULES <= set(by_rule), sorted(by_rule)


def test_a_pack_job_requests_one_gpu_for_its_runs_time(tmp_path):
    """train.pack 3: the three cuda runs are one job on one GPU of the GPU partition, with
    the three runs' time; the cpu runs stay jobs of their own."""
    from repro.plan import config as config_mod
    from repro.plan.resources import job_resources

    copy_repo(tmp_path)
    packed = dry_run(tmp_path, "train={pack: 3}")
    packs = [j for rule, js in packed.items() if rule.startswith("train_pack_") for j in js]
    assert len(packs) == 1 and not packs[0]["local"]
    assert sorted(j["wildcards"]["device"] for j in packed["train"]) == ["cpu"] * 3
    res = packs[0]["resources"]
    assert (res["gpu"], res["gpu_model"], res["slurm_partition"]) == ("1", "a100", "gpu")
    one = job_resources(config_mod.load(REPO / "config" / "config.yaml"), "train", "cuda")
    assert int(res["runtime"]) - 10 == 3 * (one["runtime"] - 10)
