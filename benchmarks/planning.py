"""Planning and reporting speed: `snakemake -n` of the paper config and the recorded report
from finished runs, against what Snakemake itself costs on this host, in one process.

* floor: `snakemake -n` of a one-rule Snakefile: Python, Snakemake and its plugins
  starting (on a host where SLURM is installed but its controller is down, the SLURM
  executor plugin's `scontrol show config` call at import waits ~9 s: see --stub-scontrol);
* dry run: `snakemake -n -q --configfile config/config.yaml` (the paper grid: 3 runs);
  target under 3 s on an idle 2-core machine;
* recorded report: tables, figures, provenance and the PDF from the committed GPU runs
  (`--configfile config/recorded.yaml`, nothing trains) in a copy of the project; target
  under 20 s.

Each is run --repeat times; the best and the median wall times are printed, with the
ratio to the floor and whether torch was imported (it must not be: planning and
reporting are torch-free). Not a test: run it by hand on a quiet machine and record the
output in BENCHMARKS.md.

  python benchmarks/planning.py
  python benchmarks/planning.py --stub-scontrol   # what a host without the SLURM wait sees
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from repro.plan.machine import cpu_name  # noqa: E402

# any import of torch in a Snakemake process of the project fails with this message
POISON = "raise ImportError('torch imported while planning or reporting')\n"


def timed(cmd: list[str], cwd: Path, env: dict) -> float:
    t0 = time.perf_counter()
    res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{res.stdout[-2000:]}\n{res.stderr[-2000:]}")
    return wall


def best_and_median(fn, repeat: int) -> tuple[float, float]:
    walls = [fn() for _ in range(repeat)]
    return min(walls), statistics.median(walls)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--stub-scontrol", action="store_true", help="an `exit 1` scontrol first")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="planning-"))
    env = dict(os.environ)
    (work / "poison" / "torch").mkdir(parents=True)
    (work / "poison" / "torch" / "__init__.py").write_text(POISON)
    env["PYTHONPATH"] = os.pathsep.join([str(work / "poison"), str(ROOT / "src")])
    if args.stub_scontrol:
        (work / "bin").mkdir()
        (work / "bin" / "scontrol").write_text("#!/bin/sh\nexit 1\n")
        (work / "bin" / "scontrol").chmod(0o755)
        env["PATH"] = f"{work / 'bin'}{os.pathsep}{env['PATH']}"
    snakemake = [sys.executable, "-m", "snakemake", "--cores", "2"]

    floor_dir = work / "floor"
    floor_dir.mkdir()
    (floor_dir / "Snakefile").write_text(
        'rule all:\n    output:\n        "x"\n    shell:\n        "touch {output}"\n'
    )
    floor = best_and_median(lambda: timed([*snakemake, "-n", "-q"], floor_dir, env), args.repeat)

    dry = best_and_median(
        lambda: timed([*snakemake, "-n", "-q", "--configfile", "config/config.yaml"], ROOT, env),
        args.repeat,
    )

    copy = work / "project"
    top = {".git", ".venv", "results", "logs", "resources", ".snakemake"}
    # only the project's own top-level folders: recorded/<label>/results/ is the input
    shutil.copytree(ROOT, copy, ignore=lambda d, names: top & set(names) if d == str(ROOT) else [])
    (work / "shared").symlink_to((ROOT / ".." / "shared").resolve())

    def report() -> float:
        shutil.rmtree(copy / "results", ignore_errors=True)
        return timed([*snakemake, "--configfile", "config/recorded.yaml"], copy, env)

    built = best_and_median(report, args.repeat)
    shutil.rmtree(work)

    print(f"host: {cpu_name()}; load average {os.getloadavg()[0]:.2f} at the end")
    print(f"scontrol stubbed: {args.stub_scontrol}; torch importable: no (poisoned)")
    print(f"{'':38s} {'best':>7s} {'median':>7s} {'/ floor':>8s} target")
    for name, (b, m), target in (
        ("floor: snakemake -n, one-rule Snakefile", floor, ""),
        ("snakemake -n, paper config", dry, "< 3 s"),
        ("recorded report from clean results/", built, "< 20 s"),
    ):
        print(f"{name:38s} {b:6.2f}s {m:6.2f}s {b / floor[0]:7.2f}x {target}")


if __name__ == "__main__":
    main()
