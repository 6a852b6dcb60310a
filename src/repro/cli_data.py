"""`prepare`: build the uint8 CIFAR-10 cache from the archive, a folder or the download."""

from __future__ import annotations

from pathlib import Path

from . import config as config_mod
from .data import prepare


def add_arguments_prepare(p) -> None:
    p.add_argument("--source", default="auto", help="auto, archive, folder or torchvision")
    p.add_argument("--archive", default="../shared/data/cifar10-jpeg.tar.gz")
    p.add_argument("--archive-sha256", default=None, help="expected sha256 of the archive")
    p.add_argument("--folder", default=None, help="ImageFolder-layout folder (source folder)")
    p.add_argument("--download-root", default="resources/cifar10-download")
    p.add_argument("--train-per-class", type=int, default=None, help="fixed subset size")
    p.add_argument("--test-per-class", type=int, default=None, help="fixed subset size")
    p.add_argument("--out", required=True, type=Path, help="cache file (.npz)")


def main_prepare(args) -> int:
    data_cfg = {
        "source": args.source,
        "archive": args.archive,
        "archive_sha256": args.archive_sha256,
        "folder": args.folder,
        "download_root": args.download_root,
        "subset": {
            "train_per_class": args.train_per_class,
            "test_per_class": args.test_per_class,
        },
    }
    data_cfg = config_mod.validate({"data": data_cfg}, check_devices=False)["data"]
    meta = prepare(data_cfg, args.out)
    print(f"{args.out}: {meta['n_train']} train / {meta['n_test']} test images ({meta['source']})")
    return 0
