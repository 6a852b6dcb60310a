"""One trainer per run, and no trainer left behind by a killed workflow (no torch here).

``RunLock`` holds an exclusive lock on a file next to the run's checkpoint for as long
as the run trains: a second trainer of the same run (a rerun after ``--unlock``, a
second workflow) stops with one line instead of sharing the checkpoint and its
temporary file. The kernel releases the lock when the holder dies, so a crashed
trainer never blocks the next one.

``Ancestry`` notices that the process that started the trainer is gone: Snakemake runs
a job as ``bash -c`` and, killed with SIGKILL, leaves bash and the trainer running.
The trainer checks after every epoch and stops, its checkpoint kept.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from ..errors import UserError


class RunLock:
    def __init__(self, path: Path, run: str):
        self.path, self.run, self.fd = Path(path), run, None

    def __enter__(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # never through a link planted at the lock's name, never a FIFO
        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        try:
            fd = os.open(self.path, flags, 0o644)
        except OSError as e:
            raise UserError(
                f"run lock {self.path} cannot be opened ({e.strerror}: a link or special file "
                "there?); remove it and rerun"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise UserError(
                f"run {self.run} is being trained by another process (pid {holder}, lock "
                f"{self.path}); wait for it to finish or stop it, then rerun"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self.fd = fd
        return self

    def __exit__(self, *exc) -> None:
        # the file stays: removing it would let a waiting trainer lock a deleted file
        # while a third locks a new one
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)
        self.fd = None


def _parent_of(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) may hold spaces; the fields after it are plain
    return int(stat.rsplit(")", 1)[1].split()[1])


class Ancestry:
    """The trainer's parent and grandparent at start (the grandparent where /proc
    tells it); ``gone()`` is true once either has changed, i.e. died."""

    def __init__(self):
        self.start = self._now()

    @staticmethod
    def _now() -> tuple:
        parent = os.getppid()
        return (parent, _parent_of(parent))

    def gone(self) -> bool:
        return self._now() != self.start
