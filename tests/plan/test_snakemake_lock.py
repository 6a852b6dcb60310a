"""A lock left by a killed Snakemake is named in one line, with the fix; a lock held by
a running Snakemake, or no lock, says nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from repro.plan.snakemake_lock import LOCKS, stale_lock

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc")


def lock(root: Path) -> None:
    (root / LOCKS).mkdir(parents=True)
    (root / LOCKS / "0.input.lock").write_text("results/report.pdf\n")


def test_no_lock_is_no_message(tmp_path):
    assert stale_lock(tmp_path) is None
    (tmp_path / LOCKS).mkdir(parents=True)  # Snakemake leaves the folder, empty
    assert stale_lock(tmp_path) is None


def test_a_lock_without_a_snakemake_is_stale_one_line_and_status_2(tmp_path):
    lock(tmp_path)
    assert "no longer runs here" in stale_lock(tmp_path)
    res = subprocess.run(
        [sys.executable, "-m", "repro.plan.snakemake_lock"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
    )
    assert res.returncode == 2
    assert res.stderr.splitlines() == [
        "error: .snakemake/locks holds a lock of a Snakemake that no longer runs here "
        "(killed, or a power loss?); clear it with `snakemake --unlock` and the same "
        "arguments, then rerun with --rerun-incomplete (training resumes from its checkpoints)"
    ]


def test_a_lock_of_a_running_snakemake_is_not_stale(tmp_path):
    """A process named snakemake working in the folder holds the lock; the same process
    in another folder does not."""
    lock(tmp_path)
    fake = tmp_path / "bin" / "snakemake"
    fake.parent.mkdir()
    fake.write_text("import time\ntime.sleep(60)\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for cwd, expected_stale in ((elsewhere, True), (tmp_path, False)):
        proc = subprocess.Popen([sys.executable, str(fake)], cwd=cwd)
        try:
            assert (stale_lock(tmp_path) is not None) == expected_stale
        finally:
            proc.kill()
            proc.wait()
