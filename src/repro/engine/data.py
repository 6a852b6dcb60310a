"""Stage 1: prepare CIFAR-10 once into a compact uint8 cache.

Sources (``data.source``):

* ``archive``: a .tar/.tar.gz in ImageFolder layout (``train/<class>/*.jpg``,
  ``test/<class>/*.jpg``), such as the offline copy in ``../shared/data``;
* ``folder``: the same layout unpacked on disk;
* ``torchvision``: the official download (``torchvision.datasets.CIFAR10``);
* ``auto``: the archive when its path exists, else the official download.

The cache is one uncompressed ``.npz`` (NHWC uint8 images, int64 labels, train and
test) plus a JSON sidecar with counts, source and the archive's sha256. It is written
to a temporary name and renamed, so a failed preparation leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import UserError
from ..files import open_regular, read_json_bounded, read_regular, write_atomic
from ..plan.dataset import (
    CLASSES,
    IMAGE_SHAPE,
    SPLITS,
    _layout,
    folder_images,
    resolve_source,
    sha256_of,
)
from .jpeg import distortion, reencode

# A CIFAR-10 image file is a few KB; anything far larger is not one (and is not read).
MAX_IMAGE_BYTES = 1 << 20


@dataclass
class Dataset:
    x_train: np.ndarray  # (N, 32, 32, 3) uint8
    y_train: np.ndarray  # (N,) int64
    x_test: np.ndarray
    y_test: np.ndarray
    meta: dict


def _decode(blob: bytes, name: str) -> np.ndarray:
    try:
        with Image.open(io.BytesIO(blob)) as im:
            # the size is in the header: a wrong one (a decompression bomb included) is
            # refused before any pixel is decoded
            if im.size != IMAGE_SHAPE[:2]:
                raise UserError(
                    f"image {name} is {im.size[0]}x{im.size[1]}, CIFAR-10 images are 32x32; "
                    "point data.archive/data.folder at CIFAR-10"
                )
            im.load()
            arr = np.asarray(im.convert("RGB"))
    except UserError:
        raise
    except UnidentifiedImageError:
        raise UserError(
            f"corrupt image {name}: not an image Pillow can read; replace the file or the "
            "archive with a good copy"
        ) from None
    except Exception as e:  # noqa: BLE001 - Pillow's decoders raise many types
        raise UserError(
            f"corrupt image {name}: {type(e).__name__}: {e}; replace the file or the archive "
            "with a good copy"
        ) from None
    return arr


def _too_large(name: str, size: int) -> UserError:
    return UserError(
        f"{name} is {size} bytes, no CIFAR-10 image is over {MAX_IMAGE_BYTES >> 20} MiB; "
        "point data.archive/data.folder at CIFAR-10"
    )


def _select(names: dict, per_class: dict[str, int | None], where: str) -> dict:
    """Check the layout and keep the first n files (sorted by name) of every class."""
    chosen = {}
    for split in SPLITS:
        counts = {c: len(names[split].get(c, [])) for c in CLASSES}
        missing = [c for c, n in counts.items() if n == 0]
        if missing:
            raise UserError(
                f"{where}: no images in {split}/{missing[0]}/ (expected ImageFolder layout "
                f"{split}/<class>/*.jpg for all 10 CIFAR-10 classes)"
            )
        extra = sorted(set(names[split]) - set(CLASSES))
        if extra:
            raise UserError(
                f"{where}: unknown class folder {split}/{extra[0]}/; "
                f"the classes must be {', '.join(CLASSES)}"
            )
        n = per_class[split]
        if n is None and len(set(counts.values())) > 1:
            lo = min(counts, key=counts.get)
            raise UserError(
                f"{where}: {split} classes are unbalanced ({lo}: {counts[lo]} images, "
                f"others up to {max(counts.values())}); the archive is incomplete, "
                "use a complete copy"
            )
        if n is not None and n > min(counts.values()):
            raise UserError(
                f"data.subset.{split}_per_class={n} is larger than the data "
                f"({min(counts.values())} {split} images per class in {where}); "
                "lower it or set it to null for all images"
            )
        chosen[split] = {c: sorted(names[split][c])[:n] for c in CLASSES}
    return chosen


def _assemble(chosen: dict, read) -> dict:
    arrays = {}
    for split in SPLITS:
        xs, ys = [], []
        for label, c in enumerate(CLASSES):
            for name in chosen[split][c]:
                xs.append(_decode(read(name), name))
                ys.append(label)
        arrays[split] = (np.stack(xs), np.asarray(ys, dtype=np.int64))
    return arrays


def _from_archive(path: Path, per_class: dict) -> dict:
    try:
        with tarfile.open(path) as tar:
            members = {m.name: m for m in tar.getmembers() if m.isfile()}
            names, original = _layout(members, str(path))
            chosen = _select(names, per_class, str(path))

            def read(name: str) -> bytes:
                member = members[original[name]]
                if member.size > MAX_IMAGE_BYTES:
                    raise _too_large(f"member {name} of {path}", member.size)
                return tar.extractfile(member).read()

            return _assemble(chosen, read)
    except (tarfile.TarError, EOFError, OSError, zlib.error) as e:
        raise UserError(
            f"cannot read archive {path}: {e} (truncated or corrupt?); "
            "copy it again or point data.archive at a good copy"
        ) from None


def _from_folder(root: Path, per_class: dict) -> dict:
    names = folder_images(root)
    chosen = _select(names, per_class, str(root))

    def read(name: str) -> bytes:
        path = root / name
        size = path.stat().st_size
        if size > MAX_IMAGE_BYTES:
            raise _too_large(str(path), size)
        return read_regular(path, MAX_IMAGE_BYTES, "image")

    return _assemble(chosen, read)


def _from_torchvision(root: Path, per_class: dict) -> dict:
    from torchvision.datasets import CIFAR10

    arrays = {}
    for split in SPLITS:
        try:
            ds = CIFAR10(str(root), train=split == "train", download=True)
        except Exception as e:  # network errors come in many types
            raise UserError(
                f"official CIFAR-10 download into {root} failed ({type(e).__name__}: {e}); "
                "without internet set data.source: archive and data.archive to a copy in "
                "ImageFolder layout (e.g. ../shared/data/cifar10-jpeg.tar.gz)"
            ) from None
        x, y = ds.data, np.asarray(ds.targets, dtype=np.int64)
        n = per_class[split]
        if n is not None:
            keep = np.concatenate([np.flatnonzero(y == c)[:n] for c in range(len(CLASSES))])
            x, y = x[keep], y[keep]
        else:
            order = np.argsort(y, kind="stable")
            x, y = x[order], y[order]
        arrays[split] = (np.ascontiguousarray(x), y)
    return arrays


def _reencoded(arrays: dict, quality: int) -> tuple[dict, dict]:
    """A data variant: every image of both splits JPEG-encoded at ``quality`` and decoded
    (deterministic: fixed tables, no randomness), with the distortion it added to the
    source's images (MSE and PSNR on the 0-255 scale), which the report fits against."""
    out, added = {}, {"quality": quality, "reencoded_from": "the source's images"}
    for split, (x, y) in arrays.items():
        again = reencode(x, quality)
        d = distortion(x, again)
        added[f"added_mse_{split}"] = d["mse"]
        added[f"added_psnr_{split}"] = d["psnr"]
        out[split] = (again, y)
    return out, added


def prepare(data_cfg: dict, out: Path) -> dict:
    """Build the cache at ``out`` (``.npz``) and ``out.with_suffix('.json')``; return meta."""
    source = resolve_source(data_cfg)
    subset = data_cfg.get("subset") or {}
    per_class = {s: subset.get(f"{s}_per_class") for s in SPLITS}
    meta: dict = {"source": source, "classes": list(CLASSES), "subset": per_class}
    if source == "archive":
        path = Path(data_cfg["archive"])
        if path.is_dir():
            raise UserError(
                f"data.archive {path} is a directory; for an unpacked copy set "
                "data.source: folder and data.folder to it"
            )
        if not path.exists():
            raise UserError(
                f"data.archive {path} does not exist; set data.archive to a CIFAR-10 archive "
                "in ImageFolder layout, or data.source: torchvision for the official download"
            )
        digest = sha256_of(path)
        expected = data_cfg.get("archive_sha256")
        if expected and digest != expected:
            raise UserError(
                f"archive {path} has sha256 {digest}, expected {expected} "
                "(data.archive_sha256); copy it again, or set data.archive_sha256: null "
                "to accept a different archive"
            )
        meta.update(path=str(path.resolve()), sha256=digest)
        arrays = _from_archive(path, per_class)
    elif source == "folder":
        path = Path(data_cfg["folder"])
        if not path.is_dir():
            raise UserError(f"data.folder {path} is not a directory; fix data.folder")
        meta.update(path=str(path.resolve()))
        arrays = _from_folder(path, per_class)
    elif source == "torchvision":
        root = Path(data_cfg.get("download_root", "resources/cifar10-download"))
        meta.update(path=str(root.resolve()))
        arrays = _from_torchvision(root, per_class)
    else:
        raise UserError(
            f"data.source={source!r} is unknown; use auto, archive, folder or torchvision"
        )
    if data_cfg.get("jpeg_quality"):
        arrays, meta["jpeg"] = _reencoded(arrays, int(data_cfg["jpeg_quality"]))
    for split in SPLITS:
        x, y = arrays[split]
        meta[f"n_{split}"] = int(len(y))
        meta[f"{split}_per_class"] = np.bincount(y, minlength=len(CLASSES)).tolist()
    arrays_by_name = {
        "x_train": arrays["train"][0],
        "y_train": arrays["train"][1],
        "x_test": arrays["test"][0],
        "y_test": arrays["test"][1],
    }
    # the cache before its description: a .json beside it means the cache is whole
    write_atomic(out, lambda f: np.savez(f, **arrays_by_name))
    write_atomic(out.with_suffix(".json"), json.dumps(meta, indent=2) + "\n")
    return meta


# the full CIFAR-10 cache is 180 MB; its sidecar a few hundred bytes
MAX_CACHE_BYTES = 2 * 2**30
MAX_META_BYTES = 2**20


def load(cache: Path) -> Dataset:
    cache = Path(cache)
    if not cache.exists():
        raise UserError(f"data cache {cache} does not exist; run `python -m repro prepare` first")
    redo = "delete it and its .json and run the prepare_data step again"
    try:
        with (
            open_regular(cache, MAX_CACHE_BYTES, "data cache") as f,
            np.load(f, allow_pickle=False) as z,
        ):
            arrays = {k: z[k] for k in ("x_train", "y_train", "x_test", "y_test")}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error) as e:
        raise UserError(
            f"data cache {cache} is unreadable ({type(e).__name__}: {e}); {redo}"
        ) from None
    for split in SPLITS:
        problem = _array_problem(arrays[f"x_{split}"], arrays[f"y_{split}"])
        if problem:
            raise UserError(f"data cache {cache}: the {split} split {problem}; {redo}")
    meta_path = cache.with_suffix(".json")
    meta = {}
    if meta_path.exists():
        try:
            meta = read_json_bounded(meta_path, MAX_META_BYTES, "data cache sidecar")
        except UserError as e:
            raise UserError(f"{e}; {redo}") from None
        if not isinstance(meta, dict):
            raise UserError(f"data cache sidecar {meta_path} is not a JSON object; {redo}")
    return Dataset(**arrays, meta=meta)


def content_hash(ds: Dataset) -> str:
    """sha256 of the cache's arrays: the identity of the data a run trains on (a
    checkpoint resumes only onto the same data)."""
    h = hashlib.sha256()
    for a in (ds.x_train, ds.y_train, ds.x_test, ds.y_test):
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype}{a.shape}".encode())
        h.update(memoryview(a).cast("B"))
    return h.hexdigest()


def _array_problem(x: np.ndarray, y: np.ndarray) -> str | None:
    """What is wrong with one split's images and labels as the cache holds them, or None
    (float images would train silently on a different scale)."""
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[1:] != IMAGE_SHAPE:
        return f"has images of {x.dtype} {x.shape[1:]}, not uint8 {IMAGE_SHAPE}"
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        return f"has labels of {y.dtype} with shape {y.shape}, not integers"
    if len(y) != len(x):
        return f"has {len(x)} images but {len(y)} labels"
    if len(y) == 0:
        return "is empty"
    if y.min() < 0 or y.max() >= len(CLASSES):
        return f"has labels {y.min()}..{y.max()}, outside 0..{len(CLASSES) - 1}"
    return None
