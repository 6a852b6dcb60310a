"""JPEG variants of the data: re-encode CIFAR-sized images at a lower quality,
deterministically, and measure the distortion between two sets of images; and natural
32x32 tiles cut from lossless photographs, on which the distortion that the archive's
own quality-75 encoding introduced can be measured (CIFAR-10's lossless originals are
not available here).

numpy and Pillow only (no torch): the data stage and the reporting stage both use it.
Distortions are on the 0-255 scale: MSE over every pixel and channel, PSNR in dB.
"""

from __future__ import annotations

import io
import math

import numpy as np
from PIL import Image

from ..errors import UserError
from ..plan.dataset import IMAGE_SHAPE

# The offline archive's encoding, read from its files (Pillow's JpegImagePlugin:
# get_sampling and quantization): the standard quality-75 tables and 4:2:0 chroma
# subsampling, which Pillow's encoder writes for quality=75, subsampling=2.
ARCHIVE_QUALITY = 75
SUBSAMPLING = 2  # 4:2:0
TILE = IMAGE_SHAPE[0]


def _check_images(images, what: str) -> np.ndarray:
    x = np.asarray(images)
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[1:] != IMAGE_SHAPE:
        raise UserError(
            f"{what}: expected uint8 images of shape (N, 32, 32, 3), got {x.dtype} {x.shape};"
            " pass the cache's x_train or x_test"
        )
    return x


def _check_quality(quality: int) -> int:
    if not isinstance(quality, int | np.integer) or not 1 <= quality <= 95:
        raise UserError(
            f"JPEG quality {quality!r} is not an integer in 1-95 (Pillow's range without"
            " degenerate tables); use e.g. 50 or 30"
        )
    return int(quality)


def encode(image: np.ndarray, quality: int) -> bytes:
    """One image as baseline JPEG bytes: fixed tables (the standard ones scaled to
    ``quality``), 4:2:0 as the archive, no optimised Huffman tables, no progressive
    scans, no metadata; libjpeg has no randomness, so the bytes depend on the pixels
    and the quality only."""
    buf = io.BytesIO()
    Image.fromarray(image, "RGB").save(
        buf,
        "JPEG",
        quality=_check_quality(quality),
        subsampling=SUBSAMPLING,
        optimize=False,
        progressive=False,
    )
    return buf.getvalue()


def decode(blob: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(blob)) as im:
        return np.asarray(im.convert("RGB"))


def reencode(images, quality: int) -> np.ndarray:
    """Every image encoded at ``quality`` and decoded again: a data variant of the cache."""
    x = _check_images(images, "reencode")
    _check_quality(quality)
    out = np.empty_like(x)
    for i, image in enumerate(x):
        out[i] = decode(encode(image, quality))
    return out


def distortion(reference, distorted) -> dict:
    """MSE and PSNR of ``distorted`` against ``reference`` over all images, pixels and
    channels (PSNR from the pooled MSE; infinite for identical images), and the mean of
    the per-image PSNRs over images that differ."""
    a = _check_images(reference, "distortion (reference)").astype(np.float64)
    b = _check_images(distorted, "distortion (distorted)").astype(np.float64)
    if a.shape != b.shape:
        raise UserError(f"distortion: {a.shape} against {b.shape}; compare the same images")
    per_image = ((a - b) ** 2).mean(axis=(1, 2, 3))
    mse = float(per_image.mean())
    differ = per_image[per_image > 0]
    return {
        "n": len(a),
        "mse": mse,
        "psnr": psnr(mse),
        "psnr_per_image_mean": float(np.mean([psnr(m) for m in differ]))
        if len(differ)
        else math.inf,
    }


def psnr(mse: float) -> float:
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def natural_tiles(photo, short_side: int) -> np.ndarray:
    """CIFAR-sized tiles of a lossless photograph (H, W, 3 uint8): the photograph scaled
    down with area averaging (Pillow's BOX filter: each output pixel the mean of the
    input pixels it covers, which also smooths away any trace of an earlier encoding) so
    that its shorter side is ``short_side`` pixels, then cut into non-overlapping 32x32
    tiles from the top left (a partial edge is dropped)."""
    p = np.asarray(photo)
    if p.dtype != np.uint8 or p.ndim != 3 or p.shape[2] != 3:
        raise UserError(f"natural_tiles: expected an RGB uint8 photo, got {p.dtype} {p.shape}")
    if not TILE <= short_side <= min(p.shape[:2]):
        raise UserError(
            f"natural_tiles: short_side {short_side} must be 32 to {min(p.shape[:2])} (the"
            " photo's shorter side): tiles are cut from a downscaled photo"
        )
    h, w = p.shape[:2]
    scale = short_side / min(h, w)
    size = (max(TILE, round(w * scale)), max(TILE, round(h * scale)))
    small = np.asarray(Image.fromarray(p, "RGB").resize(size, Image.Resampling.BOX))
    rows, cols = small.shape[0] // TILE, small.shape[1] // TILE
    tiles = [
        small[r * TILE : (r + 1) * TILE, c * TILE : (c + 1) * TILE]
        for r in range(rows)
        for c in range(cols)
    ]
    return np.stack(tiles)


def encode_costs(lossless, qualities=(50, 30)) -> dict:
    """What the archive's quality-75 encoding costs lossless images, and what a further
    re-encode of those q75 images at each of ``qualities`` adds (against the q75 images),
    totals (against the lossless ones) and, for comparison, a first encode at that
    quality. ``additivity``: total / (q75 cost + added), 1 when the two errors add."""
    x = _check_images(lossless, "encode_costs")
    q75 = reencode(x, ARCHIVE_QUALITY)
    out = {"q75": distortion(x, q75)["mse"], "per_quality": {}}
    for q in qualities:
        again = reencode(q75, q)
        added = distortion(q75, again)["mse"]
        total = distortion(x, again)["mse"]
        out["per_quality"][int(q)] = {
            "added": added,
            "total": total,
            "first_encode": distortion(x, reencode(x, q))["mse"],
            "additivity": total / (out["q75"] + added) if out["q75"] + added else math.nan,
        }
    return out


def q75_cost_range(tile_costs: dict, archive_added: dict) -> dict:
    """The MSE that q75 introduced on CIFAR-10, bounded from natural tiles: on tiles of
    each scale, the ratio of q75's own cost to what a re-encode at quality q adds; the
    archive's measured re-encode cost times each ratio estimates CIFAR's q75 cost. The
    range over scales and qualities is the bound (scales differ in detail per tile).

    ``tile_costs``: scale -> ``encode_costs`` of the tiles; ``archive_added``: quality ->
    MSE that re-encoding the archive's images at that quality adds."""
    estimates = {}
    for scale, costs in tile_costs.items():
        for q, added in archive_added.items():
            tile_added = costs["per_quality"][q]["added"]
            estimates[f"{scale}/q{q}"] = costs["q75"] / tile_added * added
    if not estimates:
        raise UserError("q75_cost_range: no tile measurements given")
    values = list(estimates.values())
    return {"low": min(values), "high": max(values), "estimates": estimates}
