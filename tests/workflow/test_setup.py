"""scripts/setup.sh refuses to start installing on a disk too full to hold the pinned
torch, in one line, instead of failing halfway through pip with a broken .venv."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_setup(tmp_path: Path, free_kib: int) -> tuple[subprocess.CompletedProcess, Path]:
    project = tmp_path / "project"
    (project / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "setup.sh", project / "scripts")
    shutil.copy(ROOT / "pyproject.toml", project)
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    called = tmp_path / "python-called"
    for name, body in {
        # df -Pk's POSIX layout; the fourth column is the free space in KiB
        "df": f'echo "Filesystem 1024-blocks Used Available Capacity Mounted"\n'
        f'echo "/dev/x 999999999 1 {free_kib} 1% /"',
        "id": "echo 1000",  # not root: no apt-get
        "python-stub": f'touch "{called}"; exit 3',
    }.items():
        stub = stubs / name
        stub.write_text(f"#!/bin/sh\n{body}\n")
        stub.chmod(0o755)
    env = {"PATH": f"{stubs}:/usr/bin:/bin", "PYTHON": str(stubs / "python-stub")}
    res = subprocess.run(
        ["bash", "scripts/setup.sh"], cwd=project, env=env, capture_output=True, text=True
    )
    return res, called


def test_setup_refuses_a_full_disk_before_creating_anything(tmp_path):
    res, called = run_setup(tmp_path, free_kib=3 * 1024 * 1024)
    assert res.returncode == 1
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert "only 3 GiB free" in lines[0] and "needs about 7 GiB" in lines[0]
    assert not called.exists()
    assert not (tmp_path / "project" / ".venv").exists()


def test_setup_with_room_goes_on_to_create_the_venv(tmp_path):
    res, called = run_setup(tmp_path, free_kib=50 * 1024 * 1024)
    assert "GiB free" not in res.stderr
    assert called.exists()  # the stub python was asked to make .venv
    assert res.returncode == 3
