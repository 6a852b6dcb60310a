"""Data preparation: stratified subsets, class order, metadata, and broken inputs."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from repro.data import CLASSES, load, prepare, sha256_of
from repro.errors import UserError


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
