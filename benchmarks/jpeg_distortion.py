"""How much distortion the JPEG variants of issue 21 carry, on this machine's CPU:

- q75's own cost on lossless natural images (scikit-image's sample photographs, scaled
  down with area averaging and cut into 32x32 tiles), and what re-encoding those q75
  tiles at q50 and q30 adds;
- what re-encoding a sample of the offline CIFAR-10 archive (already q75) at q50 and q30
  adds;
- from both, a bounded estimate of the MSE that q75 introduced on CIFAR-10 itself.

  PYTHONPATH=src python benchmarks/jpeg_distortion.py --archive ../shared/data/cifar10-jpeg.tar.gz \
      --per-class 100 --out results/jpeg_distortion.json

Needs scikit-image (a pinned dev dependency) for the photographs.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from repro.engine import data as data_mod  # noqa: E402
from repro.engine import jpeg  # noqa: E402

# scikit-image's lossless RGB photographs (PNG): astronaut, chelsea, coffee and the left
# view of stereo_motorcycle (its right view is the same scene); microscopy, grey-level and
# synthetic images are left out
PHOTOS = ("astronaut", "chelsea", "coffee", "motorcycle_left")
SCALES = (64, 96, 128)  # shorter side after downscaling, pixels
QUALITIES = (50, 30)


def photos() -> dict:
    from skimage import data as skdata  # dev dependency, only for this measurement

    loaders = {
        "astronaut": skdata.astronaut,
        "chelsea": skdata.chelsea,
        "coffee": skdata.coffee,
        "motorcycle_left": lambda: skdata.stereo_motorcycle()[0],
    }
    return {name: loaders[name]() for name in PHOTOS}


def archive_sample(archive: Path, per_class: int) -> np.ndarray:
    """The first ``per_class`` test and training images of every class, through the
    data stage's own reader (only the sample is decoded and cached, in a temp folder)."""
    with tempfile.TemporaryDirectory() as tmp:
        cfg = {"source": "archive", "archive": str(archive)}
        cfg["subset"] = {"train_per_class": per_class, "test_per_class": per_class}
        cache = Path(tmp) / "sample.npz"
        data_mod.prepare(cfg, cache)
        ds = data_mod.load(cache)
    return np.concatenate([ds.x_train, ds.x_test])


def cpu_name() -> str:
    """The CPU model, named next to the timing (Linux: /proc/cpuinfo)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main(archive: Path, per_class: int, out: Path | None) -> dict:
    t0 = time.perf_counter()
    pics = photos()
    tiles = {s: np.concatenate([jpeg.natural_tiles(p, s) for p in pics.values()]) for s in SCALES}
    tile_costs = {s: jpeg.encode_costs(t, QUALITIES) for s, t in tiles.items()}
    cifar = archive_sample(archive, per_class)
    archive_added = {
        q: jpeg.distortion(cifar, jpeg.reencode(cifar, q))["mse"] for q in (75, *QUALITIES)
    }
    bound = jpeg.q75_cost_range(tile_costs, {q: archive_added[q] for q in QUALITIES})
    result = {
        "photos": {k: list(v.shape) for k, v in pics.items()},
        "tiles": {s: len(t) for s, t in tiles.items()},
        "tile_costs": tile_costs,
        "archive_images": len(cifar),
        "archive_added": archive_added,
        "q75_cost_on_cifar": bound,
        "seconds": time.perf_counter() - t0,
        "cpu": cpu_name(),
    }
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2, default=float) + "\n")
    return result


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archive", type=Path, default=ROOT / "../shared/data/cifar10-jpeg.tar.gz")
    ap.add_argument("--per-class", type=int, default=100)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    print(json.dumps(main(args.archive, args.per_class, args.out), indent=2, default=float))
