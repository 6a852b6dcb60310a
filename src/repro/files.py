"""Writing outputs so that no reader, crash, power loss or full disk ever sees half a file;
reading inputs so that a missing or corrupt one is a one-line error."""

from __future__ import annotations

import json
import os
import stat
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


# no JSON file a stage reads is larger (the recorded runs' limit, repro.plan.recorded)
MAX_JSON_BYTES = 64 * 2**20


def read_json(path, what: str, fix: str = "run the stage that writes it first"):
    """A stage's JSON input (metrics.json, a timing JSON, the resolved config), with
    one-line errors for a missing, oversized, non-regular, corrupt or too deeply nested
    file: a report may be built from runs someone else made."""
    path = require(path, what, fix)
    try:
        return read_json_bounded(path, MAX_JSON_BYTES, what)
    except UserError as e:
        raise UserError(f"{e}; delete it and rerun, or {fix}") from None


# ---- reading a file that a user or another machine made ---------------------------------

# JSON deeper than this is no file of ours (the deepest we write is 4 levels)
MAX_JSON_DEPTH = 32


def read_regular(path, limit: int, what: str) -> bytes:
    """The bytes of ``path``, which must be a regular file of at most ``limit`` bytes:
    never a FIFO (opened non-blocking, so opening one cannot hang), a device or
    /dev/zero; the size is checked before reading and the read is bounded."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as e:
        raise UserError(f"{what} {path} cannot be read ({e.strerror}); refused") from None
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UserError(f"{what} {path} is not a regular file (a FIFO or device?); refused")
        if info.st_size > limit:
            raise UserError(
                f"{what} {path} has {info.st_size} bytes, more than the {limit} allowed; refused"
            )
        data = f.read(limit + 1)  # bounded even if the file grew after the check
    if len(data) > limit:
        raise UserError(f"{what} {path} grew beyond {limit} bytes while read; refused")
    return data


def loads_bounded(data: bytes | str, what: str, max_depth: int = MAX_JSON_DEPTH):
    """JSON text as a value, nested at most ``max_depth`` deep; one line otherwise."""
    try:
        value = json.loads(data)
    except RecursionError:
        raise UserError(f"{what} is nested too deeply to be ours; refused") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{what} is not valid JSON ({e})") from None
    if _depth(value) > max_depth:
        raise UserError(f"{what} is nested more than {max_depth} levels deep; refused")
    return value


def _depth(value) -> int:
    """Nesting depth of a parsed JSON value, without recursion."""
    deepest, todo = 0, [(value, 1)]
    while todo:
        item, depth = todo.pop()
        deepest = max(deepest, depth)
        if isinstance(item, dict):
            todo.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            todo.extend((v, depth + 1) for v in item)
    return deepest


def read_json_bounded(path, limit: int, what: str, max_depth: int = MAX_JSON_DEPTH):
    """A JSON file a user or another machine made: a regular file of at most ``limit``
    bytes, nested at most ``max_depth`` deep."""
    return loads_bounded(read_regular(path, limit, what), f"{what} {path}", max_depth)


# ---- writing under a folder without following links --------------------------------------


def check_no_links(root: Path, path: Path) -> None:
    """Refuse ``path`` unless it lies under ``root`` and no existing component from
    ``root`` down to ``path`` itself is a symbolic link (a link planted in a folder
    would carry the write elsewhere)."""
    root = Path(os.path.abspath(root))
    full = Path(os.path.abspath(path))
    if not full.is_relative_to(root):
        raise UserError(f"{path} is outside the project {root}; write under the project only")
    current = root
    for part in full.relative_to(root).parts:
        current = current / part
        if current.is_symlink():
            raise UserError(
                f"{current} is a symbolic link; refused to write through it "
                "(remove the link, or choose another destination)"
            )
