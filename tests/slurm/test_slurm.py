"""The workflow on a real single-node SLURM (issue 4).

Select with ``pytest -m slurm``. Needs root and the Debian packages from
tests/slurm/install.sh. Each test class brings up its own cluster with
tests/slurm/slurm_up.sh and stops every daemon it started with slurm_down.sh,
also when a test fails:

* TestWithAccounting: slurmdbd + MariaDB; the executor's default status
  check (sacct) is used and every cluster job must have a sacct row.
* TestWithoutAccounting: no slurmdbd; ``slurm-status-command: squeue``.

Both run the toy workflow in tests/slurm/toy (scheduler path, failing rule);
the accounting class also runs the project's smoke config through
``--profile profiles/slurm``, overlaid with profiles/slurm-test and a per-test
profile written here (the squeue path is the same DAG code; one smoke run on
the cluster keeps CI short).
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slurm

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
TOY = HERE / "toy"
VENV_BIN = Path(sys.executable).parent
SNAKEMAKE = VENV_BIN / "snakemake"
STATE = Path(os.environ.get("SLURM_TEST_STATE", "/tmp/repro-slurm"))
ACCOUNT = os.environ.get("SLURM_TEST_ACCOUNT", "repro")

# The smoke config, made smaller still for the cluster runs (cpu only, one
# learning rate, one epoch). The local reference run uses the same files, so
# the results are comparable. A YAML file rather than --config: --config
# values arrive as strings.
SMOKE_CONFIG = REPO / "config" / "smoke.yaml"
TINY = {
    "devices": ["cpu"],
    "timing": {"devices": ["cpu"], "epochs": 1},
    "learning_rates": [0.01],
    "seeds": [0, 1],
    "train": {"epochs": 1},
    "data": {"subset": {"train_per_class": 20, "test_per_class": 10}},
}
# Train and timing jobs ask for 8 cores and 6 GB on cpu; the test node has 2 cores.
SET_RESOURCES = {
    rule: {"cpus_per_task": 1, "mem_mb": 2000} for rule in ("prepare_data", "train", "timing")
}
# rules that must have been sent to SLURM in the smoke run
CLUSTER_RULES = {"prepare_data", "train", "timing"}
FINAL_TARGET = "results/report.pdf"

RUN_TIMEOUT = 600


# --------------------------------------------------------------------------- helpers
def _env() -> dict[str, str]:
    """Environment for snakemake: the venv first on PATH (SLURM jobs inherit
    it through sbatch --export=ALL), and no SLURM job context."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["SLURM_TEST_STATE"] = str(STATE)
    return env


def _sh(*cmd: str | Path, check: bool = True, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(c) for c in cmd],
        env=_env(),
        capture_output=True,
        text=True,
        check=check,
        timeout=timeout,
    )


@dataclass
class Run:
    rc: int
    log: str
    seconds: float
    workdir: Path

    @property
    def run_id(self) -> str:
        m = re.search(r"SLURM run ID: (\S+)", self.log)
        assert m, "no SLURM run ID in the snakemake log"
        return m.group(1)

    def submissions(self) -> dict[str, str]:
        """snakemake job id -> SLURM job id, from 'Job N has been submitted with SLURM jobid M'."""
        return dict(re.findall(r"Job (\d+) has been submitted with SLURM jobid (\d+)", self.log))

    def jobs(self) -> tuple[dict[str, str], dict[str, str]]:
        """(cluster jobs, local jobs), each snakemake job id -> rule name, from the
        'rule X:' / 'localrule X:' blocks that snakemake prints per job."""
        cluster: dict[str, str] = {}
        local: dict[str, str] = {}
        current = None
        # show-failed-logs prints job logs (which contain rule blocks too)
        # between two identical lines of '='; skip them
        logfile_fence: str | None = None
        expect_fence = False
        for line in self.log.splitlines():
            if expect_fence:
                expect_fence = False
                if re.fullmatch(r"=+", line):
                    logfile_fence = line
                    continue
            if logfile_fence is not None:
                if line == logfile_fence:
                    logfile_fence = None
                continue
            if line.startswith("Logfile ") and line.endswith(":"):
                expect_fence = True
                continue
            m = re.match(r"^(local)?rule (\w+):$", line)
            if m:
                current = (local if m.group(1) else cluster, m.group(2))
                continue
            m = re.match(r"^\s+jobid: (\d+)$", line)
            if m and current:
                table, rule = current
                table[m.group(1)] = rule
                current = None
        return cluster, local


def snakemake(workdir: Path, *args: str | Path, name: str = "snakemake") -> Run:
    """Run snakemake in workdir; its full output is also kept in workdir/<name>.out."""
    t0 = time.monotonic()
    proc = subprocess.run(
        [str(SNAKEMAKE), *map(str, args)],
        cwd=workdir,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=RUN_TIMEOUT,
    )
    seconds = time.monotonic() - t0
    (workdir / f"{name}.out").write_text(proc.stdout)
    print(f"[{name}] rc={proc.returncode} in {seconds:.1f} s ({workdir})")
    return Run(proc.returncode, proc.stdout, seconds, workdir)


def profile_args(workdir: Path, overlay: dict) -> list[str | Path]:
    """The real profile, the test overlay, then a per-run overlay (later wins
    per top-level key)."""
    extra = workdir / ".profile-extra"
    extra.mkdir(exist_ok=True)
    (extra / "config.yaml").write_text(yaml.safe_dump(overlay))
    return [
        "--profile",
        REPO / "profiles" / "slurm",
        "--profile",
        REPO / "profiles" / "slurm-test",
        "--profile",
        extra,
    ]


def real_default_resources() -> dict:
    cfg = yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())
    return dict(cfg["default-resources"])


def copy_repo(dest: Path) -> Path:
    """Copy the workflow's files (tracked and untracked-but-not-ignored) so that
    the cluster run does not touch the checkout's results/."""
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\n")
    for rel in filter(None, files):
        src = REPO / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


def sacct_rows(job_ids) -> dict[str, dict[str, str]]:
    fields = ["JobIDRaw", "JobName", "State", "ExitCode", "Account", "Partition"]
    out = _sh("sacct", "-X", "-n", "-P", "-o", ",".join(fields), "-j", ",".join(job_ids)).stdout
    rows = [dict(zip(fields, line.split("|"), strict=True)) for line in out.splitlines() if line]
    return {r["JobIDRaw"]: r for r in rows}


def scontrol_state(job_id: str) -> dict[str, str]:
    out = _sh("scontrol", "show", "job", "-o", job_id).stdout
    return dict(kv.split("=", 1) for kv in out.split() if "=" in kv)


def output_structure(root: Path) -> dict[str, list[str] | None]:
    """Relative path of every file under results/ -> CSV header (None for non-CSV)."""
    found: dict[str, list[str] | None] = {}
    for p in sorted((root / "results").rglob("*")):
        if not p.is_file():
            continue
        header = None
        if p.suffix == ".csv":
            with p.open(newline="") as fh:
                header = next(csv.reader(fh), [])
        found[str(p.relative_to(root))] = header
    return found


def assert_all_cluster_jobs_submitted(run: Run) -> dict[str, str]:
    """Every job snakemake ran as 'rule' (not 'localrule') has a SLURM job id.
    Returns snakemake job id -> SLURM job id."""
    cluster, local = run.jobs()
    submitted = run.submissions()
    assert cluster, "no cluster jobs in the log"
    assert set(cluster) == set(submitted), (
        f"cluster jobs {sorted(cluster.items())} vs submitted {sorted(submitted.items())}"
    )
    assert not set(local) & set(submitted), "a local rule was submitted to SLURM"
    return submitted


# --------------------------------------------------------------------------- fixtures
def _require_slurm():
    """Root and the Debian packages; installs them (tests/slurm/install.sh) when
    missing and apt-get is there."""
    if os.geteuid() == 0 and not shutil.which("slurmctld") and shutil.which("apt-get"):
        proc = _sh("bash", HERE / "install.sh", check=False, timeout=900)
        if proc.returncode != 0:
            pytest.fail(f"tests/slurm/install.sh failed:\n{proc.stdout}\n{proc.stderr}")
    if shutil.which("slurmctld") and shutil.which("sbatch") and os.geteuid() == 0:
        return
    msg = "SLURM test needs root and tests/slurm/install.sh"
    if os.environ.get("CI"):
        pytest.fail(msg)
    pytest.skip(msg)


def _cluster(request, flag: str):
    _require_slurm()
    down = lambda: print(_sh("bash", HERE / "slurm_down.sh", check=False).stdout)  # noqa: E731
    request.addfinalizer(down)  # registered first: runs even if bring-up fails
    t0 = time.monotonic()
    up = _sh("bash", HERE / "slurm_up.sh", flag, check=False, timeout=300)
    print(up.stdout, up.stderr)
    if up.returncode != 0:
        logs = "\n".join(
            f"--- {p}\n{p.read_text(errors='replace')[-3000:]}"
            for p in sorted(STATE.glob("*.log")) + sorted(STATE.glob("*.out"))
        )
        pytest.fail(f"slurm_up.sh {flag} failed:\n{up.stdout}\n{up.stderr}\n{logs}")
    print(f"SLURM bring-up ({flag}): {time.monotonic() - t0:.1f} s")


@pytest.fixture(scope="class")
def slurm_accounting(request):
    _cluster(request, "--accounting")


@pytest.fixture(scope="class")
def slurm_no_accounting(request):
    _cluster(request, "--no-accounting")


@pytest.fixture
def toy(tmp_path) -> Path:
    shutil.copy(TOY / "Snakefile", tmp_path / "Snakefile")
    return tmp_path


def _workflow_ready():
    if not (REPO / "Snakefile").exists() or not SMOKE_CONFIG.exists():
        pytest.skip("workflow or config/smoke.yaml not there yet")


def smoke_config_args(workdir: Path) -> list[str | Path]:
    """--configfile smoke.yaml plus the TINY overrides (nargs=+: put targets first).
    The data archive path of config/config.yaml is relative to the checkout; make
    it absolute for the copy."""
    tiny = dict(TINY)
    base = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    archive = (base.get("data") or {}).get("archive")
    if archive and (REPO / archive).exists():
        tiny["data"] = {**tiny["data"], "archive": str((REPO / archive).resolve())}
    (workdir / "slurm-tiny.yaml").write_text(yaml.safe_dump(tiny))
    return ["--configfile", SMOKE_CONFIG, workdir / "slurm-tiny.yaml"]


@pytest.fixture(scope="module")
def local_reference(tmp_path_factory) -> Path:
    """The same (tiny) smoke config run locally, without SLURM."""
    _workflow_ready()
    work = copy_repo(tmp_path_factory.mktemp("local"))
    run = snakemake(work, FINAL_TARGET, "--cores", "2", *smoke_config_args(work), name="local")
    assert run.rc == 0, run.log[-5000:]
    return work


# --------------------------------------------------------------------------- shared checks
def check_toy(toy: Path, overlay: dict) -> tuple[Run, str]:
    """Toy DAG plus a rule that fails on the cluster, in one run (keep-going):
    returns the run and the failing job's SLURM id."""
    run = snakemake(toy, *profile_args(toy, overlay), "all", "boom.txt", name="toy")
    assert run.rc != 0, "the boom rule should have failed"
    submitted = assert_all_cluster_jobs_submitted(run)
    cluster, _ = run.jobs()
    assert sorted(cluster.values()) == ["boom", "work", "work", "work"]

    # each output was written inside the SLURM job that the log names, by the
    # venv's python (PATH reached the job); the local aggregate ran too
    work_ids = {submitted[j] for j, rule in cluster.items() if rule == "work"}
    for i in range(3):
        idx, job_id, python = (toy / f"work/{i}.txt").read_text().split()
        assert job_id in work_ids, f"work/{i}.txt written outside SLURM ({job_id})"
        assert Path(python).parent == VENV_BIN, python
    assert (toy / "gather.txt").exists()

    # the failure names the rule and the SLURM job, prints the rule's own log
    # (show-failed-logs) and points to the SLURM log
    (boom_job,) = [j for j, rule in cluster.items() if rule == "boom"]
    boom_id = submitted[boom_job]
    assert "Error in rule boom" in run.log, run.log[-5000:]
    assert f"SLURM-job '{boom_id}' failed" in run.log, run.log[-5000:]
    assert "boom-marker: this rule fails on purpose" in run.log, run.log[-5000:]
    slurm_log = toy / f".snakemake/slurm_logs/rule_boom/{boom_id}.log"
    assert slurm_log.exists() and str(slurm_log) in run.log
    assert not (toy / "boom.txt").exists()
    return run, boom_id


def check_smoke(tmp_path: Path, local_reference: Path, overlay: dict) -> Run:
    work = copy_repo(tmp_path)
    overlay = {**overlay, "set-resources": SET_RESOURCES}
    run = snakemake(
        work,
        FINAL_TARGET,
        *profile_args(work, overlay),
        *smoke_config_args(work),
        name="slurm",
    )
    assert run.rc == 0, run.log[-8000:]
    assert_all_cluster_jobs_submitted(run)
    cluster, local = run.jobs()
    assert CLUSTER_RULES <= set(cluster.values()), sorted(set(cluster.values()))
    assert local, "aggregate rules should run locally"
    assert (work / FINAL_TARGET).exists()
    # same files and CSV columns as the local run
    assert output_structure(work) == output_structure(local_reference)
    return run


# --------------------------------------------------------------------------- tests
@pytest.mark.usefixtures("slurm_accounting")
class TestWithAccounting:
    overlay = {"default-resources": {**real_default_resources(), "slurm_account": ACCOUNT}}

    def test_toy_and_failing_rule_with_sacct_rows(self, toy):
        run, boom_id = check_toy(toy, self.overlay)
        rows = sacct_rows(run.submissions().values())
        assert set(rows) == set(run.submissions().values()), "job without a sacct row"
        for job_id, row in rows.items():
            assert row["State"] == ("FAILED" if job_id == boom_id else "COMPLETED"), row
            assert row["JobName"] == run.run_id, row
            assert row["Account"] == ACCOUNT, row

    def test_smoke_config_on_slurm(self, tmp_path, local_reference):
        run = check_smoke(tmp_path, local_reference, self.overlay)
        rows = sacct_rows(run.submissions().values())
        assert set(rows) == set(run.submissions().values()), "job without a sacct row"
        for row in rows.values():
            assert row["State"] == "COMPLETED", row
            assert row["JobName"] == run.run_id, row


@pytest.mark.usefixtures("slurm_no_accounting")
class TestWithoutAccounting:
    overlay = {"slurm-status-command": "squeue"}

    def test_accounting_is_really_off(self):
        proc = _sh("sacct", "-X", "-n", check=False)
        assert proc.returncode != 0 and "disabled" in proc.stdout + proc.stderr

    def test_toy_and_failing_rule_with_squeue(self, toy):
        run, boom_id = check_toy(toy, self.overlay)
        assert "Falling back to 'sacct'" not in run.log
        for job_id in run.submissions().values():
            # MinJobAge=300 keeps finished jobs visible in slurmctld
            expected = "FAILED" if job_id == boom_id else "COMPLETED"
            assert scontrol_state(job_id)["JobState"] == expected
