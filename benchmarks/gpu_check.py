"""Checks of the CUDA path that the grid does not make, for a GPU session with about two
minutes to spare (the grid comes first): deterministic mode gives byte-identical CSVs
on CUDA, and a run stopped by SIGTERM resumes from its checkpoint and completes. Runs
under the GPU machine's own python3 (torch, torchvision, numpy, pillow, pyyaml):

  PYTHONPATH=src python3 benchmarks/gpu_check.py --out $OUT/check [--device cuda]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from repro.engine import data as data_mod  # noqa: E402
from repro.engine.train import RunConfig, train_run  # noqa: E402

ARCHIVE = ROOT / "resources/device/cifar10-jpeg.tar.gz"


def deterministic_twice(cfg: RunConfig, cache: Path, out: Path) -> bool:
    for name in ("a", "b"):
        train_run(cfg, cache, out / f"det-{name}")
    same = [
        (out / "det-a" / f).read_bytes() == (out / "det-b" / f).read_bytes()
        for f in ("epochs.csv", "steps.csv", "confusion.csv", "predictions.csv")
    ]
    return all(same)


def stop_and_resume(cfg: RunConfig, cache: Path, out: Path) -> tuple[bool, str]:
    desc = out / "resume.json"
    desc.write_text(json.dumps(dataclasses.asdict(cfg)))
    ckpt, run = out / "resume.ckpt", out / "resume"
    args = [sys.executable, "-m", "repro", "train", "--run", str(desc)]
    args += ["--cache", str(cache), "--out", str(run), "--checkpoint", str(ckpt)]
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    with open(out / "resume.log", "w") as log:
        proc = subprocess.Popen(args, stderr=log, env=env)
        t0 = time.time()
        while not ckpt.exists() and proc.poll() is None and time.time() - t0 < 120:
            time.sleep(0.1)
        os.kill(proc.pid, signal.SIGTERM)
        first = proc.wait()
        second = subprocess.run(args, stderr=log, env=env).returncode
    text = (out / "resume.log").read_text()
    rows = len((run / "epochs.csv").read_text().splitlines()) - 1 if run.exists() else 0
    ok = first == 143 and second == 0 and "resumed from" in text and rows == cfg.epochs
    return ok, f"first exit {first}, second exit {second}, {rows} epochs"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--device", default="cuda")
    p.add_argument("--archive", type=Path, default=ARCHIVE)
    p.add_argument("--per-class", default="200,50", help="TRAIN,TEST images per class")
    args = p.parse_args()
    n_train, n_test = (int(v) for v in args.per_class.split(","))
    small = {"train_per_class": n_train, "test_per_class": n_test}
    args.out.mkdir(parents=True, exist_ok=True)
    cache = args.out / "small.npz"
    data_mod.prepare({"source": "archive", "archive": str(args.archive), "subset": small}, cache)
    precision = "bf16" if args.device == "cuda" else "fp32"
    base = RunConfig(lr=0.01, device=args.device, epochs=2, precision=precision)
    det = deterministic_twice(dataclasses.replace(base, deterministic=True), cache, args.out)
    resumed, how = stop_and_resume(dataclasses.replace(base, epochs=3), cache, args.out)
    print(f"deterministic mode, two runs byte-identical: {det}")
    print(f"SIGTERM after the first checkpoint, then resumed to the end: {resumed} ({how})")


if __name__ == "__main__":
    main()
