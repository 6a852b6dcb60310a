"""The whole study through Snakemake on the smoke config, in a fresh copy of the project:
real data subset, real training, real PDF. Then what a rerun after a change rebuilds."""

from __future__ import annotations

import csv
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from pypdf import PdfReader

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ["--configfile", "config/smoke.yaml"]
pytestmark = pytest.mark.integration


def snakemake(
    cwd: Path, *args: str, check: bool = True, env: dict | None = None
) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "--cores", "2", *args]
    res = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env)
    if check and res.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{res.stdout[-4000:]}\n{res.stderr[-4000:]}")
    return res


def planned_jobs(res: subprocess.CompletedProcess) -> dict[str, int]:
    """Job counts from a dry run's 'Job stats' table."""
    text = res.stdout + res.stderr
    if "Nothing to be done" in text:
        return {}
    block = text.split("Job stats:")[1].split("total")[0]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", block, re.M)}


def project_copy(tmp_path_factory, copy_project) -> Path:
    """A copy of the project next to a link to ../shared, as CI lays it out."""
    base = tmp_path_factory.mktemp("wf")
    (base / "shared").symlink_to((ROOT / ".." / "shared").resolve())
    return copy_project(base / "repo")


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory, copy_project) -> tuple[Path, str]:
    """The smoke study run in a fresh copy: the copy and Snakemake's output."""
    repo = project_copy(tmp_path_factory, copy_project)
    res = snakemake(repo, *SMOKE)
    return repo, res.stdout + res.stderr


@pytest.fixture(scope="module")
def project(smoke_run) -> Path:
    return smoke_run[0]


def test_estimate_comes_before_the_first_job_and_outcomes_at_job_ends(smoke_run):
    out = smoke_run[1]
    plan = out.index("plan: 6 runs x 2 epochs (heads softmax; lr 0.01, 0.005, 0.001; seeds 0, 1)")
    assert plan < out.index("rule prepare_data")
    assert "on 500 training / 200 test images = 12 epochs, 6,000 training images" in out
    # a fresh copy has no cached calibration: a few real steps, unless the machine is too
    # busy to finish them in time (then the estimate says so and the run goes on)
    cpu = re.search(
        r"^  cpu \((fp32|bf16)\): 13 epochs(: time unknown \(the calibration did not finish"
        r"| on .+ s per step of 128 \(calibrated now\), .+ -> about .+ one run after the other$)",
        out,
        re.M,
    )
    assert cpu, out[plan : plan + 2000]
    assert "for scale: on one NVIDIA H100" in out
    for lr in ("0.01", "0.005", "0.001"):
        for seed in (0, 1):
            assert f"run softmax lr={lr} cpu seed={seed}: 2 epochs, final train acc" in out


def test_estimate_of_the_paper_plan_without_calibration(tmp_path_factory, copy_project):
    repo = project_copy(tmp_path_factory, copy_project)
    res = snakemake(repo, "results/config.json", "--config", "estimate={calibrate: false}")
    out = res.stdout + res.stderr
    assert "plan: 3 runs x 150 epochs (heads softmax; lr 0.01, 0.005, 0.001; seeds 0) on " in out
    assert "50,000 training / 10,000 test images = 450 epochs, 22.50 M training images" in out
    assert re.search(
        r"^  cpu \((fp32|bf16)\): 455 epochs: time unknown \(calibration skipped\)$", out, re.M
    )
    assert (
        "for scale: on one NVIDIA H100 80GB (recorded 2026-11-26), compiled with CUDA graphs, "
        "these runs take about 15 min" in out
    )
    assert "for a quick look: --configfile config/smoke.yaml" in out
    assert not (repo / "resources" / "calibration").exists()


def test_smoke_report_is_complete(project):
    pdf = project / "results" / "report.pdf"
    assert pdf.exists() and pdf.stat().st_size > 20_000
    text = "\n".join(page.extract_text() for page in PdfReader(pdf).pages)
    flat = " ".join(text.split())
    # the seed's Tables 1-3 (one per model) are one table with a column per model
    for table in ("Tables 1-3", "Table 4", "Table 5"):
        assert table in flat, table
    for fig in ("Fig. 2", "Fig. 3", "Fig. 4"):
        assert fig in flat, fig
    with open(project / "results" / "tables" / "test_accuracy.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3  # one per learning rate (one head)
    for lr, paper in (("0.01", "89.55"), ("0.005", "87.56"), ("0.001", "87.44")):
        assert lr in flat and paper in flat, (lr, paper)
    assert "not comparable" in flat.lower()


def test_every_run_wrote_its_histories(project):
    runs = sorted((project / "results" / "runs").glob("softmax/lr*/*/seed*/*/epochs.csv"))
    assert len(runs) == 6  # 3 learning rates x 2 seeds
    for path in runs:
        with open(path) as f:
            rows = list(csv.DictReader(f))
        assert [int(r["epoch"]) for r in rows] == [1, 2]
        steps = (path.parent / "steps.csv").read_text().splitlines()
        assert len(steps) == 1 + 2 * 4  # 500 images / batch 128 -> 4 steps per epoch
    assert not list((project / "results").rglob("*.tmp"))
    assert not (project / "results" / "checkpoints").exists() or not list(
        (project / "results" / "checkpoints").rglob("*.pt")
    )


def test_nothing_to_do_after_a_complete_run(project):
    assert planned_jobs(snakemake(project, *SMOKE, "-n")) == {}


def test_plot_option_change_retrains_nothing(project):
    jobs = planned_jobs(snakemake(project, *SMOKE, "-n", "--config", "figures={dpi: 100}"))
    assert "figures" in jobs and "report" in jobs
    assert "train" not in jobs and "prepare_data" not in jobs and "timing" not in jobs


def test_new_learning_rate_trains_only_that_rate(project):
    res = snakemake(project, *SMOKE, "-n", "--config", "learning_rates=[0.01, 0.005, 0.001, 0.02]")
    assert planned_jobs(res)["train"] == 2  # the new rate, two seeds
    trained = re.findall(r"wildcards: head=\w+, lr=([^,]+),", res.stdout + res.stderr)
    assert trained == ["0.02", "0.02"]


def test_training_setting_change_gets_new_folders_and_keeps_old_runs(project):
    res = snakemake(project, *SMOKE, "-n", "--config", "train={epochs: 3}")
    assert planned_jobs(res)["train"] == 6
    old = sorted((project / "results" / "runs").rglob("metrics.json"))
    assert len(old) == 6  # still there; the new runs go to folders with another hash


def test_bad_config_fails_before_any_job(project):
    res = snakemake(project, *SMOKE, "--config", "learning_rates=[0.01, -0.5]", check=False)
    assert res.returncode != 0
    err = [line for line in (res.stdout + res.stderr).splitlines() if line.startswith("error:")]
    assert err == [
        "error: config key learning_rates[1] = -0.5 is not allowed; "
        "allowed: a non-empty list of distinct numbers > 0"
    ]
    assert "rule train" not in res.stdout + res.stderr


def test_snakemake_html_report(project):
    out = project / "results" / "snakemake-report.zip"
    snakemake(project, *SMOKE, "--report", str(out))
    assert out.exists() and out.stat().st_size > 10_000


def test_paper_config_plans_three_runs_of_150_epochs(project, tmp_path):
    # planning is torch-free (devices: [auto] included): a torch that cannot be
    # imported first on the path must not matter to a dry run
    poisoned = tmp_path / "torch"
    poisoned.mkdir()
    (poisoned / "__init__.py").write_text("raise ImportError('planning imported torch')\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    res = snakemake(project, "-n", "-p", env=env)
    assert planned_jobs(res)["train"] == 3
    assert "plan:" not in res.stdout + res.stderr  # a dry run neither estimates nor calibrates
    commands = [line for line in res.stdout.splitlines() if "python -m repro train-pack" in line]
    # each job gets its whole run description as one JSON argument
    runs = [json.loads(shlex.split(c)[shlex.split(c).index("--runs") + 1]) for c in commands]
    assert len(runs) == 3 and all(r["epochs"] == 150 for r in runs)
    assert {r["lr"] for r in runs} == {0.01, 0.005, 0.001}
    assert {r["precision"] for r in runs} == {"auto"}, "resolved by the job, not here"
    assert planned_jobs(res)["prepare_data"] == 1  # the full data set: a cache of its own


def test_crashing_job_shows_its_cause_from_the_log(project):
    """Last in this module: it spoils the copy's data cache."""
    cache = next((project / "resources" / "data").glob("*.npz"))
    cache.write_bytes(b"not a cache")
    target = str(next((project / "results" / "runs").rglob("metrics.json")).relative_to(project))
    res = snakemake(
        project, *SMOKE, "--forcerun", "train", "--show-failed-logs", target, check=False
    )
    out = res.stdout + res.stderr
    assert res.returncode != 0 and "Error in rule train" in out
    assert f"error: data cache {cache.relative_to(project)} is unreadable" in out


# shell values that Snakemake interpolates and repro builds itself (validated numbers
# and names, or shlex-quoted paths); every other value must be quoted with :q
BUILT_BY_REPRO = {"params.flags", "threads"}


def test_every_interpolated_shell_value_is_quoted():
    """A path with a space or `$(...)` reaches each command as one argument."""
    unquoted = []
    for smk in sorted((ROOT / "workflow" / "rules").glob("*.smk")):
        # a rule's shell, or a command that rules share (TRAIN_SHELL = (...))
        shells = r"(?:shell:|_SHELL = \()\n((?:\s+\".*\"\n)+)"
        for block in re.findall(shells, smk.read_text()):
            for field in re.findall(r"(?<!\{)\{([^{}]+)\}(?!\})", block):
                if not field.endswith(":q") and field not in BUILT_BY_REPRO:
                    unquoted.append(f"{smk.name}: {{{field}}}")
    assert not unquoted


def test_project_path_with_space_and_command_substitution(tmp_path_factory, copy_project):
    """The planned commands of a project whose path holds `a b $(touch pwned)` split
    back into the same paths (dry run: nothing trains)."""
    import shlex

    base = tmp_path_factory.mktemp("quoting") / "a b $(touch pwned)"
    base.mkdir()
    (base / "shared").symlink_to((ROOT / ".." / "shared").resolve())
    repo = copy_project(base / "repo", "recorded", "docs", "benchmarks")
    # the SLURM plugin asks `scontrol` at import, which waits 10 s where SLURM is
    # installed but not running; a dry run needs no answer
    stub = base.parent / "bin"
    stub.mkdir()
    (stub / "scontrol").write_text("#!/bin/sh\nexit 1\n")
    (stub / "scontrol").chmod(0o755)
    env = {**os.environ, "PATH": f"{stub}:{os.environ['PATH']}"}
    res = snakemake(repo, *SMOKE, "-n", "-p", env=env)
    commands = [shlex.split(c) for c in res.stdout.splitlines() if "python -m repro" in c]
    stages = {c[c.index("repro") + 1] for c in commands}
    wanted = {"prepare", "train-pack", "timing", "tables", "figures", "provenance", "report"}
    assert wanted <= stages
    provenance = next(c for c in commands if "provenance" in c)
    assert provenance[provenance.index("--repo") + 1] == str(repo)
    assert not any(p.name == "pwned" for p in base.parent.rglob("pwned"))


def test_a_failing_report_stage_shows_its_error_line(tmp_path_factory, copy_project):
    """The tables stage's one-line error reaches Snakemake's output, not only
    logs/tables.log: here a metrics.json replaced after the copy by deeply nested JSON."""
    repo = project_copy(tmp_path_factory, copy_project)
    # the recording whole (the copy leaves out every logs/ folder, the recording's too)
    shutil.copytree(ROOT / "recorded", repo / "recorded", dirs_exist_ok=True)
    recorded = ["results/tables/claims.csv", "--configfile", "config/recorded.yaml"]
    snakemake(repo, *recorded)
    metrics = next((repo / "results" / "runs").rglob("metrics.json"))
    metrics.write_text("[" * 100_000 + "]" * 100_000)
    res = snakemake(repo, *recorded, check=False)
    out = res.stdout + res.stderr
    assert res.returncode != 0 and "Error in rule tables" in out
    line = f"error: run metrics {metrics.relative_to(repo)} is nested too deeply to be ours"
    assert any(shown.startswith(line) for shown in out.splitlines()), out[-3000:]
