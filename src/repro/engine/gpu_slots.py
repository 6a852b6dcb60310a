"""One GPU per cuda job: the workflow's concurrent train jobs on a machine with several
GPUs each take a GPU of their own instead of all starting on GPU 0 (no torch here).

A job claims a GPU by an exclusive ``flock`` on that GPU's lock file, before CUDA is
initialised, and keeps it until the process ends: the kernel releases the lock then,
also when the job crashes or is killed, so a dead job never holds a GPU. While every
GPU is taken the job waits, polling, and says so once in its log.

The lock files are named by the GPU as this process sees it named: the entries of
``CUDA_VISIBLE_DEVICES`` where it is set (SLURM sets it to the GPUs it gave the job,
so two jobs on one node lock different files), else the indices 0..n-1. They lie in a
folder per host, so that a project folder shared by several machines (a cluster's file
system) never makes one machine's jobs wait for another's GPUs.

``REPRO_SIMULATED_GPUS=n`` (tests) stands in n GPUs on a machine without any: a job
claims one of them as a cuda job would, whatever its device, and no CUDA call is made.
"""

from __future__ import annotations

import fcntl
import os
import re
import socket
import stat
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError

SIMULATED_ENV = "REPRO_SIMULATED_GPUS"
POLL_S = 2.0
# the slots of this process, held open until it ends (closing a file releases its lock)
_HELD: list[GpuSlot] = []


@dataclass(frozen=True)
class GpuSlot:
    index: int  # torch's index of the GPU in this process (torch.cuda.set_device)
    of: int  # how many GPUs this process sees
    name: str  # the GPU's name in CUDA_VISIBLE_DEVICES, else its index
    fd: int

    def record(self) -> dict:
        """What metrics.json says of the GPU the job trained on."""
        return {"index": self.index, "of": self.of}


def simulated_count(env) -> int | None:
    """The number of simulated GPUs (REPRO_SIMULATED_GPUS), or None when not set."""
    text = env.get(SIMULATED_ENV)
    if text is None:
        return None
    if not text.isdigit() or int(text) < 1:
        raise UserError(
            f"{SIMULATED_ENV}={text!r} is not a number of GPUs; set it to an integer >= 1 "
            "(tests only) or unset it"
        )
    return int(text)


def visible_gpus(env, count: int) -> list[str]:
    """The GPUs this process may use, by the names their lock files carry: the entries of
    CUDA_VISIBLE_DEVICES when it is set (ids or UUIDs), else ``count`` indices."""
    listed = env.get("CUDA_VISIBLE_DEVICES")
    if listed is None:
        return [str(i) for i in range(count)]
    # CUDA stops reading the list at its first entry that names no device; torch's count
    # is what CUDA found, so the first ``count`` entries are the ones in use
    return [name.strip() for name in listed.split(",")][:count]


def _safe_folder(lock_dir: Path) -> Path:
    """``lock_dir``/<host>, created, each of its parts a real folder, never a link: a link
    planted there would carry the lock files elsewhere."""
    host = re.sub(r"[^A-Za-z0-9._-]", "_", socket.gethostname()) or "host"
    folder = Path(lock_dir) / host
    # a relative folder (the workflow's) is checked from the working directory down
    parts = folder.parts if not folder.is_absolute() else (str(lock_dir), host)
    current = Path()
    for part in parts:
        current = current / part
        try:
            os.mkdir(current, 0o755)
        except FileExistsError:
            pass
        info = os.lstat(current)
        if not stat.S_ISDIR(info.st_mode):
            raise UserError(
                f"GPU lock folder {current} is a link or not a folder; remove it so that "
                "the train jobs can take their GPUs"
            )
    return folder


def _lock_file(folder: Path, name: str) -> int:
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", name) or "gpu"
    path = folder / f"gpu-{safe}.lock"
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except OSError as e:
        raise UserError(
            f"GPU lock file {path} cannot be opened ({e.strerror}); remove it (a link is "
            "refused) so that the train jobs can take their GPUs"
        ) from None
    # the holder truncates and writes its pid: never into a FIFO or device, nor through a
    # hard link into another file
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
        os.close(fd)
        raise UserError(
            f"GPU lock file {path} is not a plain file of its own (a FIFO, a device or a "
            "hard link); remove it so that the train jobs can take their GPUs"
        )
    return fd


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def claim(
    lock_dir: Path,
    gpus: list[str],
    poll_s: float = POLL_S,
    log: Callable[[str], None] = _log,
    orphaned: Callable[[], bool] = lambda: False,
) -> GpuSlot:
    """The first free GPU of ``gpus``, locked for the rest of this process; waits while
    all are taken (one log line), and stops when ``orphaned()`` says the job's parent is
    gone (a killed workflow must not leave a job waiting for a GPU)."""
    if not gpus:
        raise UserError(
            "a cuda job sees no GPU (CUDA_VISIBLE_DEVICES empty or no device found); "
            "run it where a GPU is visible, or use devices: [cpu]"
        )
    folder = _safe_folder(lock_dir)
    waiting = False
    while True:
        for index, name in enumerate(gpus):
            fd = _lock_file(folder, name)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            os.ftruncate(fd, 0)
            os.write(fd, str(os.getpid()).encode())
            slot = GpuSlot(index, len(gpus), name, fd)
            _HELD.append(slot)
            if waiting:
                log(f"GPU {index} of {len(gpus)} is free now; training on it")
            return slot
        if not waiting:
            log(
                f"all {len(gpus)} GPUs of this host are taken by other jobs of this project "
                f"(locks in {folder}); waiting for one"
            )
            waiting = True
        if orphaned():
            raise UserError("the workflow that started this job is gone; stopped waiting for a GPU")
        time.sleep(poll_s)


def release(slot: GpuSlot) -> None:
    """Give the GPU back before the process ends (the process's end does it anyway)."""
    if slot in _HELD:
        _HELD.remove(slot)
        fcntl.flock(slot.fd, fcntl.LOCK_UN)
        os.close(slot.fd)
