"""Data preparation: stratified subsets, class order, metadata, and broken inputs."""

from __future__ import annotations

import io
import json
import re
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from repro.engine.data import load, prepare
from repro.errors import UserError
from repro.plan.dataset import CLASSES, sha256_of


def archive_cfg(path, train=3, test=2, **extra):
    return {
        "source": "archive",
        "archive": str(path),
        "subset": {"train_per_class": train, "test_per_class": test},
        **extra,
    }


@pytest.fixture(scope="module")
def mini_archive(archive, tmp_path_factory) -> Path:
    """A small real archive: the first 4 train and 2 test images of every class."""
    out = tmp_path_factory.mktemp("mini") / "mini.tar.gz"
    keep = {}
    with tarfile.open(archive) as src:
        for m in src:
            parts = m.name.split("/")
            if m.isfile() and len(parts) == 3:
                split, cls, _ = parts
                limit = 4 if split == "train" else 2
                if len(keep.setdefault((split, cls), [])) < limit:
                    keep[(split, cls)].append((m, src.extractfile(m).read()))
    with tarfile.open(out, "w:gz") as dst:
        for members in keep.values():
            for m, blob in members:
                dst.addfile(m, io.BytesIO(blob))
    return out


def rewrite(src: Path, dst: Path, drop=None, replace=None) -> Path:
    """Copy an archive, dropping members whose name matches `drop` and replacing the
    bytes of members named in `replace`."""
    with tarfile.open(src) as a, tarfile.open(dst, "w:gz") as b:
        for m in a:
            if drop and drop(m.name):
                continue
            blob = a.extractfile(m).read() if m.isfile() else None
            if replace and m.name in replace:
                blob = replace[m.name]
                m.size = len(blob)
            b.addfile(m, io.BytesIO(blob) if blob is not None else None)
    return dst


def test_stratified_subset_in_cifar_order(archive, tmp_path):
    meta = prepare(archive_cfg(archive, train=7, test=3), tmp_path / "c.npz")
    ds = load(tmp_path / "c.npz")
    assert ds.x_train.shape == (70, 32, 32, 3) and ds.x_train.dtype == np.uint8
    assert ds.x_test.shape == (30, 32, 32, 3)
    assert np.bincount(ds.y_train).tolist() == [7] * 10
    assert np.bincount(ds.y_test).tolist() == [3] * 10
    # labels follow CIFAR-10's order and the subset is the first files by name
    assert ds.y_train[:7].tolist() == [0] * 7 and ds.y_train[-1] == CLASSES.index("truck")
    with tarfile.open(archive) as tar:
        first_cat = tar.extractfile("train/cat/0000.jpg").read()
    expected = np.asarray(Image.open(io.BytesIO(first_cat)).convert("RGB"))
    assert np.array_equal(ds.x_train[ds.y_train == CLASSES.index("cat")][0], expected)
    assert meta["sha256"] == sha256_of(archive)
    assert json.loads((tmp_path / "c.json").read_text())["train_per_class"] == [7] * 10


def test_subset_is_fixed(archive, tmp_path):
    prepare(archive_cfg(archive), tmp_path / "a.npz")
    prepare(archive_cfg(archive), tmp_path / "b.npz")
    a, b = load(tmp_path / "a.npz"), load(tmp_path / "b.npz")
    assert np.array_equal(a.x_train, b.x_train) and np.array_equal(a.y_test, b.y_test)


def test_folder_source_matches_archive(mini_archive, tmp_path):
    with tarfile.open(mini_archive) as tar:
        tar.extractall(tmp_path / "folder", filter="data")
    prepare(archive_cfg(mini_archive), tmp_path / "a.npz")
    prepare(
        {
            "source": "folder",
            "folder": str(tmp_path / "folder"),
            "subset": {"train_per_class": 3, "test_per_class": 2},
        },
        tmp_path / "f.npz",
    )
    assert np.array_equal(load(tmp_path / "a.npz").x_train, load(tmp_path / "f.npz").x_train)


def expect_error(cfg, out: Path, *fragments):
    with pytest.raises(UserError) as e:
        prepare(cfg, out)
    msg = str(e.value)
    assert "\n" not in msg
    for f in fragments:
        assert f in msg, msg
    assert not out.exists() and not out.with_suffix(".json").exists()
    assert not list(out.parent.glob("*.tmp*")), "half-written files left behind"
    return msg


def test_truncated_archive(mini_archive, tmp_path):
    bad = tmp_path / "trunc.tar.gz"
    bad.write_bytes(mini_archive.read_bytes()[: mini_archive.stat().st_size // 2])
    expect_error(archive_cfg(bad), tmp_path / "out" / "c.npz", str(bad), "truncated or corrupt")


def test_missing_class_folder(mini_archive, tmp_path):
    bad = rewrite(mini_archive, tmp_path / "nocat.tar.gz", drop=lambda n: "train/cat/" in n)
    expect_error(archive_cfg(bad), tmp_path / "out" / "c.npz", "train/cat/")


def test_corrupt_image_is_named(mini_archive, tmp_path):
    bad = rewrite(
        mini_archive,
        tmp_path / "corrupt.tar.gz",
        replace={"train/dog/0001.jpg": b"not a jpeg at all"},
    )
    expect_error(archive_cfg(bad), tmp_path / "out" / "c.npz", "train/dog/0001.jpg", "corrupt")


def test_wrong_image_size_is_named(mini_archive, tmp_path):
    buf = io.BytesIO()
    Image.new("RGB", (64, 48)).save(buf, format="JPEG")
    bad = rewrite(
        mini_archive, tmp_path / "big.tar.gz", replace={"test/ship/0000.jpg": buf.getvalue()}
    )
    expect_error(archive_cfg(bad), tmp_path / "out" / "c.npz", "test/ship/0000.jpg", "32x32")


def test_unbalanced_counts(mini_archive, tmp_path):
    bad = rewrite(mini_archive, tmp_path / "unb.tar.gz", drop=lambda n: n == "train/frog/0003.jpg")
    cfg = archive_cfg(bad)
    cfg["subset"] = {"train_per_class": None, "test_per_class": None}
    expect_error(cfg, tmp_path / "out" / "c.npz", "unbalanced", "frog")


def test_subset_larger_than_data(mini_archive, tmp_path):
    expect_error(
        archive_cfg(mini_archive, train=5),
        tmp_path / "out" / "c.npz",
        "train_per_class=5",
        "larger than the data",
    )


def test_sha256_mismatch(mini_archive, tmp_path):
    expect_error(
        archive_cfg(mini_archive, archive_sha256="0" * 64),
        tmp_path / "out" / "c.npz",
        "sha256",
        "expected " + "0" * 64,
    )


def test_failed_prepare_keeps_earlier_cache(mini_archive, tmp_path):
    out = tmp_path / "c.npz"
    prepare(archive_cfg(mini_archive), out)
    before = out.read_bytes()
    bad = tmp_path / "trunc.tar.gz"
    bad.write_bytes(mini_archive.read_bytes()[:500])
    with pytest.raises(UserError):
        prepare(archive_cfg(bad), out)
    assert out.read_bytes() == before


def test_no_source_available(tmp_path, monkeypatch):
    from torchvision.datasets import CIFAR10

    # an address that refuses connections: the same failure as a machine without internet
    monkeypatch.setattr(CIFAR10, "url", "http://127.0.0.1:9/cifar-10-python.tar.gz")
    cfg = {
        "source": "torchvision",
        "download_root": str(tmp_path / "dl"),
        "subset": {"train_per_class": 1, "test_per_class": 1},
    }
    msg = expect_error(cfg, tmp_path / "out" / "c.npz", "download", "data.archive")
    assert "source: archive" in msg


# ---- hostile archives, folders and caches (issue 12): a small synthetic layout of one
# train and one test image per class, built in memory


@pytest.fixture(scope="module")
def jpeg() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (32, 32), (200, 10, 10)).save(buf, format="JPEG")
    return buf.getvalue()


def layout(jpeg: bytes, root: str = "") -> dict:
    return {f"{root}{s}/{c}/0000.jpg": jpeg for s in ("train", "test") for c in CLASSES}


def pack(path: Path, members: dict) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, blob in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return path


def png_header(width: int, height: int) -> bytes:
    """The start of a PNG that claims a size: enough for Pillow to open it."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"")
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


ONE = {"train": 1, "test": 1}


@pytest.mark.parametrize(
    "what,extra,fragments",
    [
        ("member leaving the layout", {"../train/cat/0001.jpg": b"x"}, ["../train/cat/0001.jpg"]),
        ("absolute member", {"/train/cat/0001.jpg": b"x"}, ["/train/cat/0001.jpg", "absolute"]),
        ("split in upper case", {"Train/cat/0001.jpg": b"x"}, ["Train/cat/0001.jpg", "train/"]),
        ("duplicated tree", {"backup/train/cat/0000.jpg": b"x"}, ["two trees", "backup/train"]),
        ("oversized member", {"train/cat/0000.jpg": bytes(2 << 20)}, ["train/cat/0000.jpg"]),
        (
            "decompression bomb",
            {"train/cat/0000.jpg": png_header(20000, 20000)},
            ["train/cat/0000.jpg", "DecompressionBomb"],
        ),
        (
            "large image, refused undecoded",
            {"train/cat/0000.jpg": png_header(9000, 9000)},
            ["train/cat/0000.jpg", "9000x9000"],
        ),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_hostile_archive_member_is_named(jpeg, tmp_path, what, extra, fragments):
    bad = pack(tmp_path / "bad.tar.gz", {**layout(jpeg), **extra})
    expect_error(archive_cfg(bad, **ONE), tmp_path / "out" / "c.npz", *fragments)


def test_macos_metadata_is_skipped(jpeg, tmp_path):
    junk = {"train/cat/._0000.jpg": b"\x00\x05\x16\x07", "__MACOSX/train/cat/._0000.jpg": b"x"}
    ok = pack(tmp_path / "mac.tar.gz", {**layout(jpeg, "./"), **junk})
    meta = prepare(archive_cfg(ok, **ONE), tmp_path / "c.npz")
    assert meta["train_per_class"] == [1] * 10


def test_folder_layout_gets_the_same_checks(jpeg, tmp_path):
    for name, blob in {**layout(jpeg), "old/train/cat/0000.jpg": jpeg}.items():
        (tmp_path / "f" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "f" / name).write_bytes(blob)
    cfg = {"source": "folder", "folder": str(tmp_path / "f"), "subset": dict(ONE)}
    expect_error(cfg, tmp_path / "out" / "c.npz", "two trees", "old/train/cat/0000.jpg")


def test_archive_path_that_is_a_directory(tmp_path):
    expect_error(archive_cfg(tmp_path), tmp_path / "out" / "c.npz", "is a directory", "folder")


def write_cache(path: Path, **override) -> Path:
    arrays = {
        "x_train": np.zeros((4, 32, 32, 3), np.uint8),
        "y_train": np.array([0, 1, 2, 9]),
        "x_test": np.zeros((2, 32, 32, 3), np.uint8),
        "y_test": np.array([3, 4]),
    }
    np.savez(path, **{**arrays, **override})
    return path


@pytest.mark.parametrize(
    "override,fragment",
    [
        ({"y_train": np.array([0, 1, 2, 10])}, "labels 0..10"),
        ({"x_train": np.zeros((4, 32, 32, 3), np.float32)}, "float32"),
        ({"x_test": np.zeros((2, 28, 28, 3), np.uint8)}, "(28, 28, 3)"),
        ({"x_test": np.zeros((0, 32, 32, 3), np.uint8), "y_test": np.zeros(0, int)}, "empty"),
        ({"y_train": np.array([0, 1])}, "4 images but 2 labels"),
        ({"y_test": np.array([0.0, 1.0])}, "not integers"),
    ],
    ids=[
        "labels out of range",
        "float images",
        "wrong size",
        "empty split",
        "short labels",
        "float labels",
    ],
)
def test_corrupt_cache_is_named(tmp_path, override, fragment):
    cache = write_cache(tmp_path / "c.npz", **override)
    with pytest.raises(
        UserError, match=rf"^data cache {cache}: .*{re.escape(fragment)}.*prepare_data"
    ):
        load(cache)


def test_empty_cache_and_corrupt_sidecar_are_named(tmp_path):
    empty = tmp_path / "empty.npz"
    empty.write_bytes(b"")
    with pytest.raises(UserError, match=rf"^data cache {empty} is unreadable"):
        load(empty)
    cache = write_cache(tmp_path / "c.npz")
    cache.with_suffix(".json").write_text('{"n_train": 4')
    with pytest.raises(
        UserError, match=rf"^data cache sidecar {cache.with_suffix('.json')} is not"
    ):
        load(cache)
    assert load(write_cache(tmp_path / "good.npz")).y_train.tolist() == [0, 1, 2, 9]
