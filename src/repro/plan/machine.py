"""This machine as planning sees it, without importing torch: its CPU, what `auto` will
likely resolve to (from the NVIDIA driver and torch's build, read as text), what precision
`auto` means here, and the installed packages' versions (from their metadata)."""

from __future__ import annotations

import importlib.util
import os
import platform
import re
from functools import cache
from importlib import metadata
from pathlib import Path

KNOWN = ("cpu", "cuda", "mps")
PACKAGES = (
    "torch",
    "torchvision",
    "numpy",
    "snakemake",
    "weasyprint",
    "pandas",
    "scipy",
    "matplotlib",
    "seaborn",
    "jinja2",
    "jsonschema",
    "pyyaml",
)


def likely_auto() -> str:
    """What `auto` resolves to on this host, found without importing torch, so that
    planning (`snakemake -n`), status and the estimate stay torch-free: cuda where the
    installed torch is built for CUDA (or ROCm) and the kernel driver shows a GPU that
    CUDA_VISIBLE_DEVICES does not hide; mps on Apple silicon; else cpu. A local run's
    start checks the guess against torch (engine.devices.check_presence)."""
    build = _torch_build()
    if build.get("cuda") and _nvidia_gpu() and _cuda_visible():
        return "cuda"
    if build.get("hip") and Path("/dev/kfd").exists() and _cuda_visible():
        return "cuda"  # ROCm builds answer to the name cuda
    if platform.system() == "Darwin" and platform.machine() == "arm64":
        return "mps"
    return "cpu"


def _nvidia_gpu() -> bool:
    gpus = Path("/proc/driver/nvidia/gpus")
    return (gpus.is_dir() and any(gpus.iterdir())) or Path("/dev/nvidia0").exists()


def _cuda_visible() -> bool:
    hidden = os.environ.get("CUDA_VISIBLE_DEVICES")
    return hidden is None or not (hidden.strip() == "" or hidden.strip().startswith("-1"))


@cache
def _torch_build() -> dict:
    """torch/version.py's cuda and hip strings, read as text: importing torch costs
    seconds, which every dry run would pay."""
    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.submodule_search_locations:
        return {}
    try:
        text = (Path(spec.submodule_search_locations[0]) / "version.py").read_text()
    except OSError:
        return {}
    found = re.findall(r"^(cuda|hip)\b[^=\n]*=\s*'([^']*)'", text, re.M)
    return dict(found)


@cache
def _cpuinfo() -> str:
    """Linux's /proc/cpuinfo, the one place it is read; empty where there is none."""
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


# bf16 autocast where it pays: cuda (tensor cores); mps keeps fp32 (its bf16 support
# varies by chip and OS); a CPU only with AMX (cpu_has_bf16)
AUTO_PRECISION = {"cuda": "bf16", "mps": "fp32"}


def auto_precision(device: str) -> str:
    """What precision ``auto`` means for ``device`` on this machine."""
    if device == "cpu":
        return "bf16" if cpu_has_bf16() else "fp32"
    return AUTO_PRECISION[device]


def cpu_has_bf16() -> bool:
    """Whether bf16 autocast pays on this CPU: only with AMX tiles (amx_bf16). With
    AVX512-BF16 alone (no AMX) bf16 training ran at 0.48x of fp32 and a bf16 matmul at
    0.5x of sgemm on the 2-core Xeon (BENCHMARKS.md)."""
    return "amx_bf16" in _cpuinfo()


@cache
def cpu_name() -> str:
    model = platform.processor() or platform.machine()
    m = re.search(r"^model name\s*:\s*(.+)$", _cpuinfo(), re.M)
    if m:
        model = m.group(1).strip()
    if platform.system() == "Darwin":
        import subprocess

        try:
            model = subprocess.run(
                ["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True
            ).stdout.strip()
        except OSError:
            pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{model} ({cores} cores)"


def package_versions(packages=PACKAGES) -> dict:
    """Python's version and the installed ``packages``' versions, read from their
    metadata without importing them (the reporting stages never import torch). The
    training side adds what only the imported torch knows: repro.engine.train.run_versions."""
    out = {"python": platform.python_version()}
    for name in packages:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out
