"""Writing outputs so that no reader, crash, power loss or full disk ever sees half a file;
reading inputs so that a missing or corrupt one is a one-line error."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import secrets
import stat
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from .errors import UserError


def write_atomic(
    path, data: bytes | str | Callable[[BinaryIO], None], root: Path | str | None = None
) -> None:
    """Write ``path`` so that no reader, crash or power loss sees half a file, and no
    planted link or special file carries the write elsewhere.

    The data goes into a new file under a random name in the destination's folder,
    created exclusively (O_EXCL) and without following a link (O_NOFOLLOW), is flushed to
    disk (without the fsync a power loss after the rename can leave an empty file under
    the final name) and renamed over ``path``. ``path`` must be absent or a regular file:
    a link, folder, device or FIFO there is refused in one line (the rename would replace
    the link itself, or /dev/null). ``root``: the folder the caller may write in (the
    project, or a folder the user named for output); ``path`` must lie under it with no
    link from ``root`` down. Without ``root``, ``path`` is one the user named (a CLI
    ``--out``). ``data`` may be a function that writes into the open file (the data
    cache's arrays, streamed rather than copied into bytes)."""
    path = Path(path)
    if root is not None:
        check_no_links(Path(root), path)
    check_destination(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp, fd = _exclusive_temp(path)
    try:
        with os.fdopen(fd, "wb") as f:
            if callable(data):
                data(f)
            else:
                f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        check_destination(path)  # again: a link may have been planted meanwhile
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except OSError as e:  # a failed write() names no file: name the one we meant
        raise OSError(e.errno, e.strerror, str(path)) from None
    finally:
        tmp.unlink(missing_ok=True)


def rename_over(src, dst) -> None:
    """Rename a file this process wrote (``src``) over ``dst``, which must be absent or a
    regular file (check_destination); the rename made durable."""
    dst = check_destination(dst)
    os.replace(src, dst)
    _fsync_dir(dst.parent)


def check_destination(path) -> Path:
    """``path`` if it is absent or a regular file (not a link): what a write may
    replace; one line otherwise."""
    path = Path(path)
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return path
    except OSError as e:
        raise UserError(f"cannot write {path} ({e.strerror}); choose another path") from None
    if stat.S_ISLNK(info.st_mode):
        what = "is a symbolic link"
    elif stat.S_ISDIR(info.st_mode):
        what = "is a folder"
    elif not stat.S_ISREG(info.st_mode):
        what = "is a device, FIFO or socket, not a regular file"
    else:
        return path
    raise UserError(f"{path} {what}; refused to write it: give the path of a new or regular file")


def _exclusive_temp(path: Path) -> tuple[Path, int]:
    """A new file beside ``path`` under a random name: created here, never an existing
    file or link (O_EXCL, O_NOFOLLOW), readable as a normal output is (0o644 & umask)."""
    flags = os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC
    for _ in range(100):
        tmp = path.with_name(f".{path.name[:200]}.{secrets.token_hex(6)}.tmp")
        try:
            return tmp, os.open(tmp, flags, 0o644)
        except FileExistsError:
            continue
        except OSError as e:
            raise OSError(e.errno, e.strerror, str(path)) from None
    raise OSError(errno.EEXIST, "no free temporary name", str(path))


def open_append(path, root: Path | str | None = None):
    """``path`` opened for appending (a log), never through a link nor into a FIFO or
    device; ``root`` as for write_atomic."""
    path = Path(path)
    if root is not None:
        check_no_links(Path(root), path)
    check_destination(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_CREAT | os.O_APPEND | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC
    return os.fdopen(os.open(path, flags | os.O_NONBLOCK, 0o644), "ab")


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


def open_regular(path, limit: int, what: str) -> BinaryIO:
    """``path`` open for reading, which must be a regular file of at most ``limit``
    bytes: never a FIFO (opened non-blocking, so opening one cannot hang), a device or
    /dev/zero; the caller reads at most ``limit`` bytes (read_regular) or hands the file
    to a reader of its format (the data cache to numpy)."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        raise UserError(f"{what} {path} cannot be read ({e.strerror}); refused") from None
    info = os.fstat(fd)  # before fdopen: it refuses a folder with a bare "Is a directory"
    problem = None
    if not stat.S_ISREG(info.st_mode):
        kind = "a folder" if stat.S_ISDIR(info.st_mode) else "a FIFO or device?"
        problem = f"{what} {path} is not a regular file ({kind}); refused"
    elif info.st_size > limit:
        problem = f"{what} {path} has {info.st_size} bytes, more than the {limit} allowed; refused"
    if problem:
        os.close(fd)
        raise UserError(problem)
    return os.fdopen(fd, "rb")


def read_regular(path, limit: int, what: str) -> bytes:
    """The bytes of ``path``, a regular file of at most ``limit`` bytes (open_regular);
    the size is checked before reading and the read is bounded."""
    with open_regular(path, limit, what) as f:
        data = f.read(limit + 1)  # bounded even if the file grew after the check
    if len(data) > limit:
        raise UserError(f"{what} {Path(path)} grew beyond {limit} bytes while read; refused")
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


# ---- hashing and walking what a user named, bounded ----------------------------------------

# no data archive of ours is larger (CIFAR-10 is 170 MB; the JPEG copy 130 MB)
MAX_HASH_BYTES = 4 * 2**30


def sha256_regular(path, what: str, limit: int = MAX_HASH_BYTES, chunk: int = 1 << 20) -> str:
    """sha256 of ``path``, a regular file (opened non-blocking: a FIFO or /dev/zero is
    refused at once, never read) of at most ``limit`` bytes, streamed."""
    h, total = hashlib.sha256(), 0
    with open_regular(path, limit, what) as f:
        while block := f.read(chunk):
            total += len(block)
            if total > limit:
                raise UserError(f"{what} {path} grew beyond {limit} bytes while read; refused")
            h.update(block)
    return h.hexdigest()


# folders no data set lives in: walking them reads the machine, not a data set
SYSTEM_ROOTS = {"/", "/proc", "/sys", "/dev", "/run", "/boot", "/etc", "/usr", "/bin"}
SYSTEM_ROOTS |= {"/sbin", "/lib", "/lib64", "/var", "/home", "/root", "/tmp"}
SYSTEM_TREES = ("/proc", "/sys", "/dev")


def walk_files(
    root, what: str, max_files: int = 200_000, max_depth: int = 8, max_bytes: int = 8 * 2**30
) -> list[tuple[str, int]]:
    """(relative name with '/', size) of every regular file under ``root`` (links to
    regular files included; links to folders never entered), sorted; one line when the
    folder is a system root, or holds more than ``max_files`` files, ``max_bytes`` bytes
    or folders deeper than ``max_depth``: a data folder of ours is none of these."""
    root = Path(root)
    real = os.path.realpath(root)
    if real in SYSTEM_ROOTS or any(real.startswith(t + "/") for t in SYSTEM_TREES):
        raise UserError(f"{what} {root} is a system folder ({real}), not a data folder; refused")
    out, total = [], 0
    for top, dirs, names in os.walk(root):
        rel_top = Path(top).relative_to(root)
        if len(rel_top.parts) >= max_depth:
            raise UserError(
                f"{what} {root} has folders more than {max_depth} levels deep ({top}); "
                "a data folder is split/class/image: refused"
            )
        dirs.sort()
        for name in names:
            try:
                info = os.stat(Path(top, name))
            except OSError:
                continue  # a dangling link: no image
            if not stat.S_ISREG(info.st_mode):
                continue
            total += info.st_size
            out.append(((rel_top / name).as_posix(), info.st_size))
            if len(out) > max_files or total > max_bytes:
                raise UserError(
                    f"{what} {root} holds more than {max_files} files or {max_bytes >> 30} GiB;"
                    " a data folder of CIFAR-10 holds 60,000 small images: refused"
                )
    return sorted(out)
