"""Which code trained a run: the git commit, whether the working tree had uncommitted
changes, and a hash of the package files that shape a run, taken by the training job as
it starts (written into metrics.json) and by the provenance stage. Reads files and asks
git; imports nothing heavy, so that training and reporting can both use it.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

UNKNOWN = "unknown"
PACKAGE = Path(__file__).resolve().parents[1]  # src/repro, all three layers
# The modules whose content decides what a run computes (by file name, so that moving
# them between sub-packages keeps the hash; a new module that shapes runs joins here).
RUN_SHAPING = (
    "architecture.py",
    "config.py",
    "data.py",
    "dataset.py",
    "grid.py",
    "model.py",
    "settings.py",
    "train.py",
)


def git_state(repo) -> dict:
    """Commit, branch and dirty flag of ``repo``; "unknown" where git cannot tell."""
    out = {"commit": UNKNOWN, "branch": UNKNOWN, "dirty": UNKNOWN}
    if shutil.which("git") is None or not Path(repo).is_dir():
        return out

    def git(*args) -> str | None:
        try:
            res = subprocess.run(
                ["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=30
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return res.stdout.strip() if res.returncode == 0 else None

    if git("rev-parse", "--is-inside-work-tree") != "true":
        return out
    out["commit"] = git("rev-parse", "HEAD") or f"{UNKNOWN} (no commits yet)"
    out["branch"] = git("rev-parse", "--abbrev-ref", "HEAD") or UNKNOWN
    status = git("status", "--porcelain", "--untracked-files=normal")
    if status is not None:
        out["dirty"] = bool(status)
        out["changed_files"] = len(status.splitlines())
    return out


def code_sha256(package: Path = PACKAGE, names=RUN_SHAPING) -> str:
    """sha256 over (name, content) of the run-shaping modules, found anywhere under
    ``package``, in name order: equal hashes mean the same training code."""
    h = hashlib.sha256()
    for name in sorted(names):
        for path in sorted(Path(package).rglob(name)):
            h.update(f"{path.name}\0".encode())
            h.update(path.read_bytes())
    return h.hexdigest()


def code_identity(package: Path = PACKAGE) -> dict:
    """commit, dirty flag and run-code hash of the checkout ``package`` lies in."""
    git = git_state(package)
    return {"commit": git["commit"], "dirty": git["dirty"], "code_sha256": code_sha256(package)}
