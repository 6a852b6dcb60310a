"""A private NVIDIA MPS daemon for the device command's fallback layout (several training
processes at once, whose kernels overlap only under MPS). Its pipe and log folders are
under the work folder, so it never meets another user's daemon; it is stopped when the
``with`` block ends, whatever happens inside."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from pathlib import Path

CONTROL = "nvidia-cuda-mps-control"


def mps_env(work: Path) -> dict[str, str]:
    """What a client (and the control command) needs to find this daemon."""
    return {
        "CUDA_MPS_PIPE_DIRECTORY": str(work / "mps" / "pipe"),
        "CUDA_MPS_LOG_DIRECTORY": str(work / "mps" / "log"),
    }


@contextlib.contextmanager
def mps_daemon(work: Path, log=print):
    """Yields the environment that puts a child process under the daemon, or None where
    the machine has no ``nvidia-cuda-mps-control`` or the daemon does not start."""
    exe = shutil.which(CONTROL)
    if exe is None:
        yield None
        return
    extra = mps_env(work)
    for folder in extra.values():
        Path(folder).mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **extra}
    try:
        subprocess.run([exe, "-d"], env=env, check=True, timeout=30, capture_output=True)
    except (OSError, subprocess.SubprocessError) as e:
        log(f"MPS daemon did not start ({type(e).__name__}); plain processes instead")
        yield None
        return
    log(f"MPS daemon started (pipe {extra['CUDA_MPS_PIPE_DIRECTORY']})")
    try:
        yield extra
    finally:
        try:
            subprocess.run([exe], input=b"quit\n", env=env, timeout=30, capture_output=True)
            log("MPS daemon stopped")
        except (OSError, subprocess.SubprocessError) as e:
            log(f"MPS daemon: quit failed ({type(e).__name__})")
