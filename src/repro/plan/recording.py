"""`record`: turn the tarball a GPU machine sent back (``scripts/device_run.sh``) into a
recorded folder, ``recorded/<label>/``, that the workflow builds the report from
without training (``repro.plan.recorded``), with its provenance.

The tarball is untrusted input: only members of the known layout are taken (run CSVs
and JSON, the timing JSON, the calibration, plan, environment and summary, the logs
and the histories of stopped runs), each a regular file of bounded size, written under
the new folder by names built here, never by the member's own path. Nothing is executed
or unpickled; no torch.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tarfile
from pathlib import Path

from ..errors import UserError
from ..files import check_no_links, open_regular, read_regular, write_atomic
from .config import short
from .grid import RUN_DIR_PATTERN, result_config
from .recorded import (
    MAX_BYTES,
    RUN_FILES,
    check_manifest,
    check_provenance,
    folder_files,
    jpeg_problem,
    provenance_digest,
    read_bytes,
    read_provenance,
    recording_hashes,
)
from .runfiles import check_distinct, identity

_RUN = re.compile(
    r"results/runs/(softmax|logits)/lr([0-9.e+-]+)/(cpu|cuda|mps)/seed(\d+)/([0-9a-f]{8})/"
    r"(" + "|".join(re.escape(f) for f in RUN_FILES) + r")"
)
_OTHER = re.compile(
    r"results/timing/(cpu|cuda|mps)/timing\.json"
    r"|(calibration|plan|environment|summary|layouts|queue|wide_check)\.json"
    r"|data/cifar10(-[0-9]{1,3})?\.json|logs/[A-Za-z0-9_.-]+\.log"
    r"|partial/lr[0-9.e+-]+/epochs\.csv"
)
# a device tarball holds a few hundred members and tens of MiB; far more is no tarball of
# ours (tarfile keeps every header it has read in memory, so the count is bounded too)
MAX_MEMBERS = 10_000
MAX_TOTAL_BYTES = 1024 * 2**20
MAX_TARBALL_BYTES = 4 * 2**30  # compressed; the weights of a grid are a few hundred MB
# a folder name, with room to spare below the file system's 255 bytes
MAX_LABEL = 100
# the config's data archive, as a user's checkout has it (the GPU machine's path is not)
DEFAULT_ARCHIVE = "../shared/data/cifar10-jpeg.tar.gz"


def _members(tarball: Path) -> dict[str, bytes]:
    """The known members of ``tarball`` by name (bounded reads; anything else skipped)."""
    out: dict[str, bytes] = {}
    total = 0
    try:
        # never a FIFO or device (opening one would hang), never larger than a device run's
        with (
            open_regular(tarball, MAX_TARBALL_BYTES, "tarball") as f,
            tarfile.open(fileobj=f) as tar,
        ):
            for count, m in enumerate(tar, start=1):
                if count > MAX_MEMBERS:
                    raise UserError(
                        f"{tarball} has more than {MAX_MEMBERS} members; no device run "
                        "writes that many: refused (fetch the device's files again)"
                    )
                name = m.name.removeprefix("./")
                if not (_RUN.fullmatch(name) or _OTHER.fullmatch(name)):
                    continue
                if name in out:
                    raise UserError(f"{tarball} holds {name} twice; refused (which one is real?)")
                total += m.size
                if total > MAX_TOTAL_BYTES:
                    raise UserError(
                        f"{tarball}: its members add up to more than "
                        f"{MAX_TOTAL_BYTES // 2**20} MiB; refused"
                    )
                if not m.isreg():
                    raise UserError(f"{tarball}: member {name} is not a regular file; refused")
                if m.size > MAX_BYTES:
                    raise UserError(
                        f"{tarball}: member {name} has {m.size} bytes, more than "
                        f"{MAX_BYTES // 2**20} MiB; refused"
                    )
                data = tar.extractfile(m).read(MAX_BYTES + 1)
                if len(data) > MAX_BYTES:
                    raise UserError(f"{tarball}: member {name} is larger than declared")
                out[name] = data
    except (tarfile.TarError, EOFError, OSError) as e:
        raise UserError(f"cannot read {tarball}: {e}; fetch the device's files again") from None
    for needed in ("summary.json", "environment.json", "plan.json"):
        if needed not in out:
            raise UserError(
                f"{tarball} has no {needed}: the device run did not finish its summary; "
                "look at its device-run.log"
            )
    return out


def _json(members: dict[str, bytes], name: str) -> dict:
    try:
        value = json.loads(members[name])
    except (ValueError, RecursionError):
        raise UserError(f"member {name} of the device tarball is not valid JSON") from None
    if not isinstance(value, dict):
        raise UserError(f"member {name} of the device tarball is not a JSON object")
    return value


def record(
    tarball: Path, dest: Path, label: str, commit: str | None = None, add: bool = False
) -> Path:
    """Write ``dest/label`` from ``tarball``; return the folder. ``commit`` overrides the
    commit the device reported (its copy of the checkout may carry an older .git).
    ``add``: the folder exists, and the tarball finishes runs of the same settings that
    an earlier session left undone (``device_run --plan ... --lrs ...``), or trains runs
    of a study's queue (``device-run --queue``: each run of its own settings, in its own
    folder); its complete runs join the folder and the provenance lists both sessions."""
    if not (len(label) <= MAX_LABEL and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", label)):
        raise UserError(
            f"label {short(label)} is not allowed; use 1-{MAX_LABEL} letters, digits, '.', "
            "'_', '-' (e.g. h100-2026-11-26)"
        )
    folder = Path(dest) / label
    check_no_links(Path.cwd(), folder)
    if os.path.lexists(folder) and not add:
        raise UserError(f"{folder} exists; choose another label, or --add to finish its runs")
    if add and not (folder / "provenance.json").is_file():
        raise UserError(f"{folder} has no provenance.json to add to; record without --add")
    if add:
        refuse_links(folder)
        earlier = read_provenance(folder)
        check_manifest(folder, earlier)  # an edited recording is not extended
    members = _members(Path(tarball))
    summary = _json(members, "summary.json")
    env = _json(members, "environment.json")
    plan = _json(members, "plan.json")
    _check_shape(tarball, members, summary, plan)
    config = plan.get("config", {})
    if config.get("data", {}).get("archive"):
        config["data"]["archive"] = DEFAULT_ARCHIVE
    prov = check_provenance(
        _provenance(members, summary, env, plan, config, label, dest, commit), str(tarball)
    )
    complete = {r["folder"] for r in summary.get("runs", []) if r.get("complete")}
    _keep_run_code(prov, members, commit)
    if add:
        clash = sorted(c for c in complete if os.path.lexists(folder / c))
        if complete and len(clash) == len(complete):
            raise UserError(
                f"{folder} already holds all {len(complete)} complete runs of {tarball} "
                f"(e.g. {clash[0]}): this tarball was added before; nothing was added"
            )
        # first: the same tarball added twice, or a run copied under another seed, is a
        # run counted twice, whatever its settings say
        check_distinct(
            [*_recorded_identities(folder), *_new_identities(tarball, members, complete)],
            "runs",
        )
        hashes = {Path(r.get("folder", "")).name for r in earlier.get("runs", [])}
        hashes |= {Path(c).name for c in complete}
        # a queue's runs carry their own settings (run hash and fingerprint), not the
        # recording's: they join it beside its runs, never over them
        same = _settings(earlier.get("config")) == _settings(config) and len(hashes) == 1
        # a session of other settings (a variant of the study, e.g. fp32 beside bf16)
        # joins beside the recording's runs when its runs carry its own config's hash
        beside = bool(complete) and all(_own_hash(config, c) for c in complete)
        if not (same or beside or plan.get("queue") is True):
            raise UserError(
                f"{tarball} was trained with other settings than {folder} "
                "(provenance config or run hash differs), and its run folders do not carry "
                "its own config's settings hash; record it under its own label"
            )
        if clash:
            raise UserError(f"{folder} already holds {clash[0]}; nothing was added")
        prov = _merged(earlier, prov)
        prefix = f"sessions/{len(prov['sessions'])}/"  # this session's own files
    else:
        prefix = ""
    for name, data in members.items():
        m = _RUN.fullmatch(name)
        if m and name.rsplit("/", 1)[0] not in complete:
            continue  # a run that did not finish has no outputs to record
        _write(folder, name if m else prefix + name, data)
    _write_provenance(folder, prov)
    return folder


def _write_provenance(folder: Path, prov: dict) -> None:
    _write(folder, "provenance.json", json.dumps(sealed(folder, prov), indent=2) + "\n")


def sealed(folder: Path, prov: dict) -> dict:
    """``prov`` with the manifest of the folder's files and its own digest (what
    repro.plan.recorded.check_manifest verifies)."""
    prov["manifest"] = manifest(folder)
    prov["manifest"]["provenance.json"] = {"sha256": provenance_digest(prov)}
    return prov


def _recorded_identities(folder: Path) -> list[tuple[str, dict]]:
    """(name, runfiles.identity) of every run folder a recording holds."""
    runs: dict[str, list[str]] = {}
    for rel in folder_files(folder):
        m = _RUN.fullmatch(rel)
        if m:
            runs.setdefault(rel.rsplit("/", 1)[0], []).append(m[6])
    return [
        (f"{folder}/{run}", identity({n: read_bytes(folder, f"{run}/{n}") for n in names}))
        for run, names in sorted(runs.items())
    ]


def _new_identities(tarball, members: dict, complete: set) -> list[tuple[str, dict]]:
    """(name, runfiles.identity) of the tarball's complete runs."""
    return [
        (f"{run} of {tarball}", identity({n: members.get(f"{run}/{n}", b"") for n in RUN_FILES}))
        for run in sorted(complete)
    ]


def _check_shape(tarball, members: dict, summary: dict, plan: dict) -> None:
    """The parts of the summary and plan that record reads, of the kinds a device run
    writes, and each data cache's distortion figures in range (the report fits the
    lossless accuracy from them): a forged one is one line, not a traceback or a verdict."""
    runs = summary.get("runs", [])
    if not isinstance(runs, list) or not all(
        isinstance(r, dict) and isinstance(r.get("folder"), str) for r in runs
    ):
        raise UserError(
            f"{tarball}: summary.json's runs are not a list of runs (objects with a folder);"
            " refused: fetch the device's files again"
        )
    for key in ("calibration", "calibration_raw"):
        if not isinstance(summary.get(key, {}), dict):
            raise UserError(f"{tarball}: summary.json's {key} is not an object; refused")
    config = plan.get("config", {})
    if not isinstance(config, dict) or not isinstance(config.get("data", {}), dict):
        raise UserError(f"{tarball}: plan.json's config is not a config (an object); refused")
    for name in sorted(members):
        if name.startswith("data/"):
            problem = jpeg_problem(_json(members, name))
            if problem:
                raise UserError(f"{tarball}: member {name}: {problem}; refused")


def _own_hash(config: dict, run: str) -> bool:
    """Whether the folder ``run`` (results/runs/<head>/lr<lr>/<device>/seed<n>/<hash>)
    carries the settings hash of ``config`` on its device (the device's config may say
    auto: the folder names the device it resolved to)."""
    m = RUN_DIR_PATTERN.fullmatch(run)
    return bool(m) and m["hash"] in recording_hashes(
        {"config": {**config, "devices": [m["device"]]}}
    )


def _write(folder: Path, rel: str, data: bytes | str) -> None:
    """Write ``folder/rel`` (and its temporary name) through no link, inside the project."""
    write_atomic(folder / rel, data, root=Path.cwd())


def refuse_links(folder: Path) -> None:
    """A recording holds files and folders only: a link in it is refused before writing."""
    for top, dirs, names in os.walk(folder):
        for name in dirs + names:
            path = Path(top, name)
            if path.is_symlink():
                raise UserError(
                    f"{path} is a symbolic link; a recorded folder holds plain files only: "
                    "remove the link (and check what it pointed to)"
                )


def manifest(folder: Path) -> dict[str, dict]:
    """Size and sha256 of every file under ``folder`` but provenance.json, by relative
    path; the workflow checks them before using the folder (repro.recorded)."""
    refuse_links(folder)
    out = {}
    for top, _, names in os.walk(folder):
        for name in names:
            rel = (Path(top, name).relative_to(folder)).as_posix()
            if rel == "provenance.json":
                continue
            data = read_regular(Path(top, name), MAX_BYTES, "recorded file")
            out[rel] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    return dict(sorted(out.items()))


def add_manifest(folder: Path) -> Path:
    """Write the manifest of a recording made before `record` wrote one (its files as
    they are now: run it only on a recording you trust, such as a clean checkout's)."""
    folder = Path(folder)
    check_no_links(Path.cwd(), folder)
    _write_provenance(folder, read_provenance(folder))
    return folder


def _keep_run_code(prov: dict, members: dict, commit: str | None) -> None:
    """Each run's code as its training job recorded it (metrics.json "code": commit, dirty
    flag, code hash), copied into the provenance's runs unchanged. A ``commit`` that names
    another commit than the one a run trained at is refused: a run is never relabelled."""
    for run in prov.get("runs", []):
        name = f"{run.get('folder')}/metrics.json"
        metrics = _json(members, name) if name in members else {}
        code = metrics.get("code") if isinstance(metrics.get("code"), dict) else None
        if not code:
            continue
        trained = str(code.get("commit", ""))
        # the commit the device command's caller named is the run's too (its .git may be
        # older than its tree; the report checks the code hash against both)
        known = [str(c) for c in (trained, code.get("named_commit")) if c]
        if (
            commit
            and known
            and not any(c.startswith(commit) or commit.startswith(c) for c in known)
        ):
            raise UserError(
                f"refused: --commit {commit} would relabel the lr {run.get('lr')} run, trained"
                f" at {trained[:12]}; record without --commit (a dirty tree is recorded as such)"
            )
        run["code"] = code


def _settings(config) -> dict:
    """A recording's config without the keys that shape no run: ``recorded`` (the
    workflow's mode) and grid.NO_RESULT_KEYS; a newer schema adds them with defaults."""
    return {k: v for k, v in result_config(config or {}).items() if k != "recorded"}


SESSION_KEYS = ("commit", "commit_reported_by_device", "date", "gpu", "driver", "torch")
SESSION_KEYS += ("torchvision", "cuda", "cudnn", "python", "host", "command", "plan")


def _merged(earlier: dict, new: dict) -> dict:
    """The earlier provenance, its runs updated by the new session's complete ones, and
    each session's machine and command listed under ``sessions``."""
    out = dict(earlier)
    sessions = out.get("sessions") or [{k: earlier.get(k) for k in SESSION_KEYS}]
    out["sessions"] = [*sessions, {k: new.get(k) for k in SESSION_KEYS}]
    n = len(out["sessions"])
    done = {r.get("folder"): {**r, "session": n} for r in new["runs"] if r.get("complete")}
    runs = [done.pop(r.get("folder"), r) for r in earlier.get("runs", [])]
    out["runs"] = runs + list(done.values())
    return out


def _provenance(members, summary, env, plan, config, label, dest, commit) -> dict:
    data = config.get("data", {})
    meta = _json(members, "data/cifar10.json") if "data/cifar10.json" in members else {}
    return {
        "label": label,
        "folder": f"{Path(dest).name}/{label}",
        "commit": commit or env.get("commit"),
        "commit_reported_by_device": env.get("commit"),
        "date": env.get("date"),
        "gpu": env.get("gpu"),
        "driver": env.get("driver"),
        "nvidia_smi": env.get("nvidia_smi"),
        "torch": env.get("torch"),
        "torchvision": env.get("torchvision"),
        "cuda": env.get("cuda"),
        "cudnn": env.get("cudnn"),
        "python": env.get("python"),
        "host": f"{env.get('host')} ({env.get('cpu')})",
        "command": "bash scripts/device_run.sh $OUT " + " ".join(_user_flags(env.get("argv"))),
        "data_sha256": meta.get("sha256") or data.get("archive_sha256"),
        "data_source": meta.get("source", "archive"),
        "plan": {k: v for k, v in plan.items() if k not in ("config", "alternatives")},
        "runs": summary.get("runs", []),
        "grid_wall_seconds": summary.get("grid_wall_seconds"),
        "aggregate_epochs_per_s": summary.get("aggregate_epochs_per_s"),
        "calibration": summary.get("calibration", {}),
        "ceiling": summary.get("calibration_raw", {}).get("ceiling"),
        "flop_per_training_image": summary.get("flop_per_training_image"),
        "config": config,
    }


def _user_flags(argv) -> list[str]:
    """The flags the caller gave (the script adds --out, --work and --commit itself)."""
    if not isinstance(argv, list):
        return []
    out, skip = [], False
    for a in argv[2:]:
        if skip:
            skip = False
        elif a in ("--out", "--work", "--commit"):
            skip = True
        else:
            out.append(str(a))
    return out
