"""CIFAR-10 as the plan sees it: its classes and normalisation, where a config's images
come from (source), which files a folder or archive holds, and the data's identity in
run hashes. Torch-free: the engine's data stage reads the images."""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from functools import cache
from pathlib import Path

from ..errors import UserError
from ..files import sha256_regular, walk_files
from . import paper

CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)


SPLITS = ("train", "test")


IMAGE_SHAPE = (32, 32, 3)


# Per-channel mean and standard deviation of the CIFAR-10 training images (0-1 scale).
MEAN = (0.4914, 0.4822, 0.4465)


STD = (0.2470, 0.2435, 0.2616)


# sha256 of the offline copy of CIFAR-10 (../shared/data/cifar10-jpeg.tar.gz): its images
# are a JPEG quality-75 re-encoding of the original release, which the report declares
OFFLINE_JPEG_Q75_SHA256 = "5489b54e63be1049940fccf3e3cb313fa101e99c3baec54ce543c39269a02a33"


# <root/>split/class/file.jpg; the split matched in any case to name a wrong one
_MEMBER = re.compile(r"^(?:(.+)/)?(train|test)/([^/]+)/([^/]+\.(?:jpe?g|png))$", re.I)


def sha256_of(path: Path) -> str:
    """The data archive's sha256, read as a bounded stream of a regular file (a FIFO or
    /dev/zero named as data.archive is one line at once, never a hang)."""
    return sha256_regular(path, "data archive")


def _layout(files, where: str) -> tuple[dict, dict]:
    """Sort the file names of an archive or folder into split -> class -> names.

    Returns (names, original) where ``original`` maps each kept (normalised) name to the
    name to read. macOS metadata (``._*``, ``__MACOSX/``) is skipped; a name that leaves
    the layout (absolute, ``..``), a split folder in the wrong case or a second tree
    (train/ and backup/train/) is a UserError naming the member."""
    names: dict = {s: defaultdict(list) for s in SPLITS}
    original, roots = {}, {}
    for raw in files:
        parts = raw.split("/")
        if raw.startswith("/") or ".." in parts:
            raise UserError(
                f"{where}: member {raw} leaves the ImageFolder layout (absolute or ..); "
                "use an archive with plain relative names such as train/cat/0000.jpg"
            )
        parts = [p for p in parts if p not in ("", ".")]
        if not parts or parts[-1].startswith("._") or "__MACOSX" in parts:
            continue  # macOS resource forks, not images
        name = "/".join(parts)
        m = _MEMBER.match(name)
        if not m:
            continue
        root, split, cls, _ = m.groups()
        if split not in SPLITS:
            raise UserError(
                f"{where}: member {name} is under {split}/, the layout's folders are "
                f"lower-case {split.lower()}/; rename the folder"
            )
        roots.setdefault(root or "", name)
        if len(roots) > 1:
            first, second = list(roots.values())[:2]
            raise UserError(
                f"{where}: images in two trees ({first} and {second}), e.g. a copy in a "
                "backup folder; keep one tree of train/ and test/"
            )
        names[split][cls].append(name)
        original[name] = raw
    return names, original


def folder_images(root: Path) -> dict:
    """A folder's images as the cache reads them: split -> class -> names (no macOS
    metadata, no .DS_Store or other file outside the layout)."""
    return _layout(folder_listing(root), str(root))[0]


def folder_listing(root: Path) -> dict[str, int]:
    """Every regular file under a data folder by name, with its size; bounded (files,
    depth, bytes) and never a system root such as /."""
    return dict(walk_files(root, "data folder"))


def resolve_source(data_cfg: dict) -> str:
    source = data_cfg.get("source", "auto")
    if source == "auto":
        archive = data_cfg.get("archive")
        return "archive" if archive and Path(archive).exists() else "torchvision"
    return source


def subset_images(cfg: dict) -> dict[str, int]:
    """Images per split (train, test) the config asks for: its subset, else all of
    CIFAR-10 (an archive or folder of the whole set is taken to hold exactly that)."""
    sub = cfg["data"]["subset"]
    full = {"train": paper.TRAIN_PER_CLASS, "test": paper.TEST_PER_CLASS}
    return {s: paper.N_CLASSES * (sub[f"{s}_per_class"] or full[s]) for s in full}


def train_images(cfg: dict) -> int | None:
    """The number of training images, where the config alone decides it (a subset, or
    the official data set); None for a whole archive or folder of unknown size."""
    if cfg["data"]["subset"]["train_per_class"] or resolve_source(cfg["data"]) == "torchvision":
        return subset_images(cfg)["train"]
    return None


def data_tag(cfg: dict) -> str:
    sub = cfg["data"]["subset"]
    source = resolve_source(cfg["data"])
    parts = [source]
    if sub["train_per_class"] or sub["test_per_class"]:
        parts += [f"tr{sub['train_per_class'] or 'all'}", f"te{sub['test_per_class'] or 'all'}"]
    else:
        parts.append("full")
    if d_quality := cfg["data"].get("jpeg_quality"):
        parts.append(f"q{d_quality}")  # a re-encoded copy: its own cache, its own hash
    return "-".join(parts)


def cache_path(cfg: dict) -> str:
    """The data stage's cache of a config's images (one per data variant)."""
    return f"resources/data/cifar10-{data_tag(cfg)}.npz"


@cache
def _archive_sha256(path: str, size: int, mtime_ns: int) -> str:
    return sha256_of(Path(path))


def data_identity(cfg: dict) -> str | None:
    """Which data set the runs train on, beyond its source and subset sizes (data_tag):
    the archive's sha256, or the names and sizes of a folder's images. None for the data the
    run folders have always meant: the official download and the offline copy (so the
    recorded runs and finished folders keep their hashes)."""
    d = cfg["data"]
    source = resolve_source(d)
    if source == "archive":
        digest = d["archive_sha256"]
        if not digest:
            st = Path(d["archive"]).stat()
            digest = _archive_sha256(str(Path(d["archive"]).resolve()), st.st_size, st.st_mtime_ns)
        return None if digest == OFFLINE_JPEG_Q75_SHA256 else digest
    if source == "folder":
        return _folder_identity(str(Path(d["folder"]).resolve()))
    return None


@cache
def _folder_identity(root: str) -> str:
    """Once per process: planning asks for it again for every job's description, and a
    full CIFAR-10 folder is 60,000 files."""
    sizes = folder_listing(Path(root))
    images = _layout(sizes, root)[0]
    listing = sorted(
        f"{name}:{sizes[name]}"
        for classes in images.values()
        for names in classes.values()
        for name in names
    )
    return "folder:" + hashlib.sha256("\n".join(listing).encode()).hexdigest()
