"""A Snakemake lock left behind by a Snakemake that no longer runs (kill -9, a power
loss, a closed terminal): every later run stops at "Directory cannot be locked". The
lock files name no process, so a lock counts as stale when no process on this host
whose working folder is the project runs Snakemake (Linux /proc; elsewhere unknown).
Used by scripts/run.sh before it starts Snakemake; `python -m repro.plan.snakemake_lock`
prints the one line and exits 2 for a stale lock."""

from __future__ import annotations

import os
import sys
from pathlib import Path

LOCKS = Path(".snakemake/locks")


def snakemake_here(root: Path) -> bool | None:
    """Whether a Snakemake process (not this one) works in ``root``; None without /proc."""
    proc = Path("/proc")
    if not proc.is_dir():
        return None
    root = root.resolve()
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cwd = Path(os.readlink(entry / "cwd"))
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:  # gone meanwhile, or another user's process
            continue
        if cwd == root and any(Path(os.fsdecode(a)).name == "snakemake" for a in cmdline):
            return True
    return False


def stale_lock(root: Path = Path(".")) -> str | None:
    """One line saying that the project's lock is stale and how to clear it, or None
    (no lock, a Snakemake runs here, or this host cannot tell)."""
    locks = root / LOCKS
    if not locks.is_dir() or not any(locks.iterdir()):
        return None
    if snakemake_here(root) is not False:
        return None
    return (
        f"{locks} holds a lock of a Snakemake that no longer runs here (killed, or a power "
        "loss?); clear it with `snakemake --unlock` and the same arguments, then rerun "
        "with --rerun-incomplete (training resumes from its checkpoints)"
    )


if __name__ == "__main__":
    line = stale_lock()
    if line:
        print(f"error: {line}", file=sys.stderr)
        sys.exit(2)
