"""JPEG data variants on real images: the archive's own q75 images (the tiny cache) and
lossless photographs shipped by scikit-image cut into 32x32 tiles."""

import hashlib
import math
import subprocess
import sys

import numpy as np
import pytest

from repro.engine import data as data_mod
from repro.engine import jpeg


@pytest.fixture(scope="module")
def cifar(tiny_cache) -> np.ndarray:
    """400 images of the offline archive (already q75)."""
    ds = data_mod.load(tiny_cache)
    return np.concatenate([ds.x_train, ds.x_test])


@pytest.fixture(scope="module")
def tiles() -> np.ndarray:
    skdata = pytest.importorskip("skimage.data")  # a pinned dev dependency
    return np.concatenate(
        [jpeg.natural_tiles(skdata.chelsea(), 96), jpeg.natural_tiles(skdata.coffee(), 96)]
    )


def test_reencoding_is_deterministic_to_the_byte(cifar):
    blobs = [jpeg.encode(cifar[0], 50) for _ in range(2)]
    assert blobs[0] == blobs[1] and blobs[0][:2] == b"\xff\xd8"  # a JPEG, twice the same
    assert np.array_equal(jpeg.reencode(cifar[:50], 30), jpeg.reencode(cifar[:50], 30))
    # and in a fresh interpreter: no state of this process is involved
    code = (
        "import sys, hashlib, numpy as np; from repro.engine import jpeg;"
        "x = np.frombuffer(sys.stdin.buffer.read(), np.uint8).reshape(32, 32, 3);"
        "print(hashlib.sha256(jpeg.encode(x, 50)).hexdigest())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], input=cifar[0].tobytes(), capture_output=True, check=True
    )
    assert out.stdout.decode().strip() == hashlib.sha256(blobs[0]).hexdigest()


def test_distortion_of_identical_images_is_zero(cifar):
    d = jpeg.distortion(cifar, cifar.copy())
    assert d["mse"] == 0 and math.isinf(d["psnr"]) and d["n"] == len(cifar)


def test_distortion_is_the_mean_squared_pixel_error():
    a = np.zeros((2, 32, 32, 3), np.uint8)
    b = a.copy()
    b[0] = 4  # image 0 off by 4 everywhere: per-image MSE 16 and 0, pooled 8
    d = jpeg.distortion(a, b)
    assert d["mse"] == 8.0 and d["psnr"] == pytest.approx(10 * math.log10(255**2 / 8))
    assert d["psnr_per_image_mean"] == pytest.approx(10 * math.log10(255**2 / 16))


def test_lower_quality_adds_more_distortion_to_the_archives_images(cifar):
    added = {q: jpeg.distortion(cifar, jpeg.reencode(cifar, q))["mse"] for q in (75, 50, 30)}
    # re-encoding at the archive's own quality changes almost nothing; lower ones do
    assert added[75] < 0.05 * added[50] and added[50] < added[30]


def test_q75_costs_lossless_tiles_more_than_nothing_and_less_than_q30(tiles):
    costs = jpeg.encode_costs(tiles, (50, 30))
    first = {q: costs["per_quality"][q]["first_encode"] for q in (50, 30)}
    assert 0 < costs["q75"] < first[50] < first[30]
    # a re-encode of q75 images at q adds less than q75 + a first encode at q would
    for q in (50, 30):
        assert costs["per_quality"][q]["added"] < costs["per_quality"][q]["total"]


def test_q75_cost_range_scales_the_archives_reencode_cost_by_the_tiles_ratio():
    tile_costs = {64: {"q75": 80.0, "per_quality": {50: {"added": 100.0}}}}
    r = jpeg.q75_cost_range(tile_costs, {50: 90.0})
    assert (r["low"], r["high"]) == (72.0, 72.0)


def test_natural_tiles_are_cut_from_the_downscaled_photo():
    photo = np.arange(200 * 300 * 3, dtype=np.uint32).reshape(200, 300, 3).astype(np.uint8)
    t = jpeg.natural_tiles(photo, 64)  # 64 x 96 after scaling: 2 x 3 tiles
    assert t.shape == (6, 32, 32, 3) and t.dtype == np.uint8


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: jpeg.reencode(np.zeros((2, 32, 32), np.uint8), 50), "shape"),
        (lambda: jpeg.reencode(np.zeros((2, 32, 32, 3), np.float32), 50), "uint8"),
        (lambda: jpeg.encode(np.zeros((32, 32, 3), np.uint8), 100), "1-95"),
        (lambda: jpeg.natural_tiles(np.zeros((40, 40, 3), np.uint8), 64), "short_side"),
    ],
)
def test_bad_input_is_refused_in_one_line(call, message):
    with pytest.raises(jpeg.UserError, match=message):
        call()


def test_the_statistics_and_jpeg_modules_do_not_import_torch():
    code = "import sys, repro.report.effects, repro.engine.jpeg; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True, text=True)
    assert out.stdout.strip() == "False"
