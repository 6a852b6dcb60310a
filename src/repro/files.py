"""Writing outputs so that no reader, crash, power loss or full disk ever sees half a file;
reading inputs so that a missing or corrupt one is a one-line error."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from .errors import UserError


def write_atomic(path: Path, data: bytes | str | Callable[[BinaryIO], None]) -> None:
    """Write to a temporary name in the same folder, flush it to disk, then rename over
    ``path``: without the fsync a power loss after the rename can leave an empty or
    truncated file under the final name. ``data`` may be a function that writes into
    the open file (the data cache's arrays, streamed rather than copied into bytes)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            if callable(data):
                data(f)
            else:
                f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except OSError as e:  # a failed write() names no file: name the one we meant
        raise OSError(e.errno, e.strerror, str(path)) from None
    finally:
        tmp.unlink(missing_ok=True)


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (where the platform allows opening a folder)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def require(path, what: str, fix: str = "run the stage that writes it first") -> Path:
    """``path`` if it exists, else the one-line error every stage gives for a missing input."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{what} {path} does not exist; {fix}")
    return path


def read_json(path, what: str, fix: str = "run the stage that writes it first"):
    """A stage's JSON input, with one-line errors for a missing or corrupt file."""
    path = require(path, what, fix)
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise UserError(f"{what} {path} is not valid JSON ({e}); delete it and rerun") from None
