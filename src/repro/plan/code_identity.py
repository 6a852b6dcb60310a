"""Which code trained a run: the git commit, whether the working tree had uncommitted
changes, and a hash of the package files that shape a run, taken by the training job as
it starts (written into metrics.json) and by the provenance stage. Reads files and asks
git; imports nothing heavy, so that training and reporting can both use it.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path, PurePosixPath

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
    # a packed run's computation (train-pack): the wide network, its step and its loop
    "pack.py",
    "pack_run.py",
    "wide.py",
    "wide_step.py",
)
# the list runs hashed before they recorded theirs (metrics.json "code" without "modules")
RUN_SHAPING_BEFORE_PACKS = RUN_SHAPING[:8]
# the commit the caller of the device command named (scripts/device_run.sh --commit): the
# checkout that travels to a GPU machine may carry an older .git than the tree it holds
NAMED_COMMIT_ENV = "REPRO_COMMIT"
COMMIT = re.compile(r"[0-9a-f]{7,40}")


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
    """commit, dirty flag and run-code hash of the checkout ``package`` lies in, the
    modules hashed, and the commit the device command's caller named, where it did."""
    git = git_state(package)
    out = {"commit": git["commit"], "dirty": git["dirty"], "code_sha256": code_sha256(package)}
    out["modules"] = sorted(RUN_SHAPING)
    named = os.environ.get(NAMED_COMMIT_ENV, "")
    if COMMIT.fullmatch(named):
        out["named_commit"] = named
    return out


@functools.lru_cache(maxsize=64)  # a study's runs share a few commits
def code_sha256_at(repo, commit: str, names: tuple[str, ...] = RUN_SHAPING) -> str | None:
    """``code_sha256`` of the run-shaping modules as commit ``commit`` of ``repo`` holds
    them under src/repro (same order and bytes as a checkout of it hashes), or None where
    git cannot tell (no git, not a repository, the commit not in this clone)."""
    if not COMMIT.fullmatch(str(commit)) or shutil.which("git") is None:
        return None  # also: never an option or a revision expression handed to git

    def git(*args) -> bytes | None:
        try:
            res = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, timeout=60)
        except (OSError, subprocess.SubprocessError):
            return None
        return res.stdout if res.returncode == 0 else None

    listing = git("ls-tree", "-r", "-z", "--name-only", f"{commit}^{{commit}}", "--", "src/repro")
    if listing is None:
        return None
    paths = [PurePosixPath(p) for p in listing.decode(errors="replace").split("\0") if p]
    h = hashlib.sha256()
    for name in sorted(names):
        # as sorted(Path.rglob(name)) orders a checkout's paths: by their parts
        for path in sorted((p for p in paths if p.name == name), key=lambda p: p.parts):
            blob = git("cat-file", "blob", f"{commit}:{path}")
            if blob is None:
                return None
            h.update(f"{path.name}\0".encode())
            h.update(blob)
    return h.hexdigest()


def checked_commit(repo, code: dict, also=()) -> str | None:
    """The first of the run's commit, the commit its caller named and ``also`` (the
    commits a recording's sessions name) whose run-shaping modules hash to the run's
    recorded ``code_sha256``: the commit the run's code is known to be; None if none."""
    recorded = code.get("code_sha256")
    if not isinstance(recorded, str) or not recorded:
        return None
    modules = code.get("modules")
    names = (
        tuple(modules)
        if isinstance(modules, list) and all(isinstance(m, str) for m in modules)
        else RUN_SHAPING_BEFORE_PACKS
    )
    for commit in dict.fromkeys([code.get("commit"), code.get("named_commit"), *also]):
        if isinstance(commit, str) and code_sha256_at(repo, commit, names) == recorded:
            return commit
    return None
