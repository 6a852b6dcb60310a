"""Recorded runs: build the report from training runs committed to the repository
(``recorded/<label>/``, written by the GPU session) instead of training them again.

A recorded folder is untrusted input: only its CSV and JSON files are read (never
weights or pickles), every path must stay inside the folder after following links,
and no file may be larger than ``MAX_BYTES``. Before any job runs, ``plan`` checks
that the folder holds every run the config plans, with the same settings
(``RunConfig.fingerprint``) and the same data; each problem is one ``UserError``
line naming the run, what differs and the fix. Nothing is ever reused silently.

This module must stay free of torch: it runs on machines that build the report only.
The expected fingerprints come from ``repro.grid.recorded_expectations``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import re
import stat
from dataclasses import dataclass
from functools import cache
from pathlib import Path, PurePosixPath

from ..errors import UserError
from ..files import loads_bounded, read_regular, write_atomic
from . import schema
from .runfiles import check_distinct, check_run, timing_problem
from .variants import REFERENCE

MAX_BYTES = 64 * 2**20
# what a train job writes into each of its runs' folders (the workflow's output name ->
# file), metrics.json last, as train writes it
TRAINED_FILES = {
    "epochs": "epochs.csv",
    "steps": "steps.csv",
    "times": "epoch_times.csv",
    "confusion": "confusion.csv",
    "confusion_by_epoch": "confusion_by_epoch.csv",
    "predictions": "predictions.csv",
    "weights": "model.pt",
    "metrics": "metrics.json",
}
# what a run folder holds once recorded; the weights (model.pt) are not recorded
RUN_FILES = tuple(f for f in TRAINED_FILES.values() if f != "model.pt")
# metrics.json keys the tables, figures and provenance stages read
METRIC_KEYS = (
    "head",
    "lr",
    "device",
    "seed",
    "epochs",
    "n_train",
    "n_test",
    "steps_per_epoch",
    "test_steps_per_epoch",
    "parameters",
    "final_test_acc",
    "best_test_acc",
    "best_epoch",
    "final_train_acc",
    "final_train_loss",
    "final_test_loss",
    "train_seconds",
    "fingerprint",
    "config",
)
METRIC_TYPES = {"head": str, "device": str, "fingerprint": str, "config": dict}
TIMING_KEYS = ("device", "device_name", "epochs", "n_train", "seconds_total")
TIMING_KEYS += ("seconds_per_epoch", "train_images_per_s")
DEVICES = ("cpu", "cuda", "mps")
HASH = re.compile(r"[0-9a-f]{8}")
FIX = "use config/recorded.yaml unchanged, or set recorded: null to train"
# the MSE a JPEG re-encode adds to 8-bit images (0-255 scale) lies in 0..255**2
MAX_MSE = 255.0**2


def jpeg_problem(meta) -> str | None:
    """What is wrong with the ``jpeg`` entry of a data cache's JSON (the distortion a
    re-encoded variant's cache added, which the report extrapolates from), or None; a
    cache JSON without one (the source's images) has nothing wrong."""
    jpeg = meta.get("jpeg") if isinstance(meta, dict) else None
    if jpeg is None:
        return None
    if not isinstance(jpeg, dict):
        return "its jpeg entry is not an object"
    quality = jpeg.get("quality")
    # the qualities the config allows a data variant (never null here: it was re-encoded)
    if quality is None or not schema.fits(schema.node("data.jpeg_quality"), quality):
        return f"its jpeg quality {quality!r} is not an integer in 1-95"
    for key in ("added_mse_train", "added_mse_test"):
        mse = jpeg.get(key)
        # absent: no number is made (the report says so); NaN fails the bounds too
        if mse is not None and not (type(mse) in (int, float) and 0 <= mse <= MAX_MSE):
            return f"its jpeg {key} {mse!r} is not an MSE in 0-{MAX_MSE:.0f}"
    return None


# ---- reading an untrusted folder -----------------------------------------------


def safe_file(folder: Path, rel: str) -> Path:
    """``folder/rel`` as a regular file inside ``folder`` (links followed), at most
    MAX_BYTES; otherwise UserError."""
    root = Path(folder).resolve()
    parts = PurePosixPath(rel).parts
    if not parts or PurePosixPath(rel).is_absolute() or ".." in parts:
        raise UserError(f"recorded path {rel!r} leaves the recorded folder {folder}; refused")
    path = Path(folder, *parts)
    if not os.path.lexists(path):
        raise UserError(
            f"recorded file {path} does not exist; the recorded folder is incomplete: "
            "record it again, or set recorded: null to train"
        )
    try:
        real = path.resolve()
        info = real.stat()
    except (OSError, RuntimeError) as e:  # a dangling link or a link loop
        raise UserError(f"recorded file {path} cannot be read ({e}); refused") from None
    if not real.is_relative_to(root):
        raise UserError(
            f"recorded file {path} points outside the recorded folder {folder} (to {real}); "
            "refused: commit the file itself into the recorded folder"
        )
    if not stat.S_ISREG(info.st_mode):
        raise UserError(f"recorded file {path} is not a regular file; refused")
    if info.st_size > MAX_BYTES:
        raise UserError(
            f"recorded file {path} has {info.st_size} bytes, more than the "
            f"{MAX_BYTES // 2**20} MiB allowed for a recorded CSV or JSON file; refused"
        )
    return real


def read_bytes(folder: Path, rel: str) -> bytes:
    # opened non-blocking and checked again: a file swapped for a FIFO after the check
    return read_regular(safe_file(folder, rel), MAX_BYTES, "recorded file")


def read_text(folder: Path, rel: str) -> str:
    try:
        return read_bytes(folder, rel).decode("utf-8")
    except UnicodeDecodeError:
        raise UserError(f"recorded file {Path(folder, rel)} is not UTF-8 text; refused") from None


def read_json(folder: Path, rel: str) -> dict:
    value = loads_bounded(read_text(folder, rel), f"recorded file {Path(folder, rel)}")
    if not isinstance(value, dict):
        raise UserError(f"recorded file {Path(folder, rel)} is not a JSON object")
    return value


def csv_rows(folder: Path, rel: str) -> list[list[str]]:
    try:
        rows = list(csv.reader(io.StringIO(read_text(folder, rel))))
    except csv.Error as e:
        raise UserError(f"recorded file {Path(folder, rel)} is not valid CSV ({e})") from None
    if not rows:
        raise UserError(f"recorded file {Path(folder, rel)} is empty")
    return rows


def safe_dirs(folder: Path, rel: str) -> list[str]:
    """Names of the sub-folders of ``folder/rel`` (which must stay inside ``folder``)."""
    root = Path(folder).resolve()
    path = Path(folder, rel)
    if not path.is_dir():
        return []
    if not path.resolve().is_relative_to(root):
        raise UserError(f"recorded folder {path} points outside {folder}; refused")
    return sorted(p.name for p in path.iterdir() if p.is_dir())


# ---- the manifest: each file as `record` wrote it ------------------------------------


PROVENANCE_SCHEMA = Path(__file__).resolve().parents[3] / "workflow/schemas/provenance.schema.yaml"


def check_provenance(prov, where) -> dict:
    """``prov`` if it has the shape workflow/schemas/provenance.schema.yaml gives a
    recording's provenance.json (runs a list of objects, sessions a list, a session
    number an integer >= 1, every number finite); otherwise one line naming ``where``,
    the key and its value."""
    from .config import _key, short

    if not isinstance(prov, dict):
        raise UserError(f"{where} is not a JSON object; record the runs again")
    bad = _non_finite(prov)
    if bad is not None:
        raise UserError(f"{where}: key {_key(bad)} is not a finite number; refused")
    errors = sorted(
        _provenance_validator().iter_errors(prov),
        key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path))),
    )
    if errors:
        e = errors[0]
        rule = e.validator_value
        if e.validator == "type":
            rule = " or ".join(rule) if isinstance(rule, list) else rule
        else:
            rule = f"{e.validator} {short(rule)}"
        raise UserError(
            f"{where}: key {_key(e.absolute_path)} = {short(e.instance)} is not allowed "
            f"(allowed: {rule}); refused: record the runs again, or restore the file"
        )
    return prov


@cache
def _provenance_validator():
    import jsonschema
    import yaml

    from .config import _validator_class

    return _validator_class(jsonschema)(yaml.safe_load(PROVENANCE_SCHEMA.read_text()))


def _non_finite(value):
    """The path to the first NaN or infinite number in ``value``, or None."""
    stack = [((), value)]
    while stack:
        path, v = stack.pop()
        if isinstance(v, float) and not math.isfinite(v):
            return path
        if isinstance(v, dict):
            stack += [((*path, str(k)), x) for k, x in v.items()]
        elif isinstance(v, list):
            stack += [((*path, i), x) for i, x in enumerate(v)]
    return None


def provenance_digest(prov: dict) -> str:
    """sha256 of the provenance but its manifest, in canonical JSON: the manifest lists
    it under provenance.json, so an edit of the provenance itself is found too."""
    rest = {k: v for k, v in prov.items() if k != "manifest"}
    text = json.dumps(rest, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def read_provenance(folder: Path) -> dict:
    """The recording's provenance.json, checked: its shape, and its own digest where its
    manifest lists one."""
    where = str(Path(folder, "provenance.json"))
    return check_provenance(read_json(folder, "provenance.json"), where)


def manifest_of(folder: Path, prov: dict) -> dict:
    manifest = prov.get("manifest")
    if not isinstance(manifest, dict) or not manifest:
        raise UserError(
            f"recorded folder {folder} has no manifest (size and sha256 of each file) in its "
            "provenance.json; if you trust its files, add one: "
            f"python -m repro record --manifest {folder}"
        )
    return manifest


def verified_bytes(folder: Path, manifest: dict, rel: str) -> bytes:
    """``folder/rel`` if it is as the manifest lists it; otherwise one line naming it."""
    path = Path(folder, rel)
    data = read_bytes(folder, rel)  # refuses a path leaving the folder first
    entry = manifest.get(rel)
    if entry is None:
        raise UserError(
            f"recorded file {path} is not in the recording's manifest (added after "
            "recording?); remove it, or record the runs again"
        )
    digest = hashlib.sha256(data).hexdigest()
    if not isinstance(entry, dict) or [entry.get("size"), entry.get("sha256")] != [
        len(data),
        digest,
    ]:
        listed = entry if not isinstance(entry, dict) else entry.get("sha256")
        raise UserError(
            f"recorded file {path} was edited after recording: {len(data)} bytes with "
            f"sha256 {digest[:16]}, the manifest in provenance.json lists {str(listed)[:16]}; "
            f"restore it (git checkout -- {path}) or record the runs again"
        )
    return data


def folder_files(folder: Path) -> list[str]:
    """Every file under ``folder`` (links included, not followed) but provenance.json,
    as manifest keys (relative, with '/')."""
    out = []
    for top, dirs, names in os.walk(folder):
        rel = Path(top).relative_to(folder)
        names += [d for d in dirs if Path(top, d).is_symlink()]  # listed, never entered
        out += [(rel / n).as_posix() for n in names]
    return sorted(r for r in out if r != "provenance.json")


def check_manifest(folder: Path, prov: dict) -> None:
    """Every file of the folder listed in the manifest, and as listed; the provenance
    itself as its digest in the manifest says."""
    manifest = manifest_of(folder, prov)
    own = manifest.get("provenance.json")
    if own is None:
        raise UserError(
            f"recorded folder {folder}: its manifest lists no digest of provenance.json "
            "(recorded before provenance was checked); if you trust the folder, add one: "
            f"python -m repro record --manifest {folder}"
        )
    if not isinstance(own, dict) or own.get("sha256") != provenance_digest(prov):
        raise UserError(
            f"recorded file {Path(folder, 'provenance.json')} was edited after recording "
            "(its digest in the manifest differs); restore it "
            f"(git checkout -- {folder}/provenance.json) or record the runs again"
        )
    for rel in sorted(set(folder_files(folder)) | (set(manifest) - {"provenance.json"})):
        verified_bytes(folder, manifest, rel)


# ---- checking the folder against the config (before any job) ----------------------


@dataclass
class Plan:
    """What the workflow copies: the runs (with the hash of their recorded folder) and
    the devices with a recorded timing."""

    folder: str
    runs: list[dict]
    timing_devices: list[str]


def run_name(r: dict) -> str:
    return f"{r['head']}/lr{r['lr']}/{r['device']}/seed{r['seed']}"


def _flat(settings: dict) -> dict:
    """A run description's fields by path (``momentum``, ``model.head``)."""
    out = {k: v for k, v in settings.items() if k != "model"}
    out.update({f"model.{k}": v for k, v in (settings.get("model") or {}).items()})
    return out


def _norm(value):
    return list(value) if isinstance(value, tuple) else value


def differences(recorded: dict, expected: dict) -> list[str]:
    """Settings that differ, as 'key: recorded X, this config Y'."""
    from .settings import config_keys  # here: the copying jobs need no schema (yaml)

    rec, exp = _flat(recorded), _flat(expected)
    keys = config_keys()  # named as the config names them: lr -> learning_rates
    out = []
    for k in sorted(set(rec) | set(exp)):
        a, b = _norm(rec.get(k, "missing")), _norm(exp.get(k, "missing"))
        if a != b:
            out.append(f"{keys.get(k, k)}: recorded {a}, this config {b}")
    return out


def _metrics(folder: Path, rel: str) -> dict:
    m = read_json(folder, rel)
    missing = [k for k in METRIC_KEYS if k not in m]
    if missing:
        raise UserError(
            f"recorded file {Path(folder, rel)} lacks {', '.join(missing)}; "
            "it was not written by `python -m repro train`"
        )
    # the later stages compute with these; a string or null there must stop here
    wrong = [k for k in METRIC_KEYS if not isinstance(m[k], METRIC_TYPES.get(k, (int, float)))]
    wrong += [k for k in METRIC_KEYS if isinstance(m[k], bool)]
    if wrong:
        raise UserError(
            f"recorded file {Path(folder, rel)} has a value of the wrong type for "
            f"{', '.join(sorted(set(wrong)))}; it was not written by `python -m repro train`"
        )
    return m


def _incomplete_note(prov: dict, r: dict) -> str:
    prefix = f"results/runs/{run_name(r)}/"
    for entry in prov.get("runs") or []:
        if not isinstance(entry, dict) or entry.get("complete") is not False:
            continue
        if str(entry.get("folder", "")).startswith(prefix):
            done, planned = entry.get("epochs_done", "?"), entry.get("epochs", "?")
            return f" (the recording session stopped it after {done} of {planned} epochs)"
    return ""


def find_run(folder: Path, prov: dict, r: dict, images: dict, recording: set) -> tuple:
    """The hash folder of the recorded run matching ``r`` (an expectation) and its
    identity (runfiles.identity), or UserError saying why none does. ``recording``: the
    settings hashes of the recording's own config, which the reference's runs may carry
    where this host names the same data otherwise."""
    base = f"results/runs/{run_name(r)}"
    where = f"recorded run {run_name(r)} in {folder}"
    hashes = safe_dirs(folder, base)
    for h in hashes:
        # the name becomes part of paths in shell commands: only what settings_hash makes
        if not HASH.fullmatch(h):
            raise UserError(
                f"recorded folder {folder} has {base}/{h}, which is not a run folder (named "
                "by 8 hex digits); refused: remove it from the recorded folder"
            )
    # the folder named by this config's own hash first: its data tag may differ on a
    # host without the archive, so the others are candidates too
    hashes.sort(key=lambda h: h != r["hash"])
    if not hashes:
        raise UserError(
            f"{where} is missing{_incomplete_note(prov, r)}: no {base}/; "
            f"the config plans a run the recording did not make; {FIX}"
        )
    problems = []
    for h in hashes:
        rel = f"{base}/{h}"
        m = _metrics(folder, f"{rel}/metrics.json")
        if m["fingerprint"] != r["fingerprint"]:
            diff = differences(m["config"], r["settings"])
            problems.append(
                "the config differs from the recorded run's settings ("
                + (
                    "; ".join(diff)
                    if diff
                    else f"fingerprint: recorded {m['fingerprint']}, this config {r['fingerprint']}"
                )
                + ")"
            )
            continue
        wrong = [
            f"{m[f'n_{s}']} {s} images, this config {images[s]} (data.subset.{s}_per_class)"
            for s in ("train", "test")
            if m[f"n_{s}"] != images[s]
        ]
        if wrong:
            problems.append("the recorded run used " + "; ".join(wrong))
            continue
        # the hash of this run's own settings: another variant's hash (a bf16 run in the
        # fp32 cause's folder) would count it as that variant
        ok = {r["hash"]} | (recording if r.get("variant", REFERENCE) == REFERENCE else set())
        if h not in ok:  # same settings, other data or a moved folder
            problems.append(
                f"its folder {h} is not named by the settings hash of this config or of the "
                f"recording ({' or '.join(sorted(ok))}); the run folder was moved"
            )
            continue
        listed = _listed_fingerprint(prov, rel)
        if listed != m["fingerprint"]:
            problems.append(
                f"the recording's provenance.json lists {rel} with fingerprint {listed}, its "
                f"metrics.json says {m['fingerprint']} (a run the recording did not make)"
            )
            continue
        files = {name: read_bytes(folder, f"{rel}/{name}") for name in RUN_FILES}
        rows = csv_rows(folder, f"{rel}/epochs.csv")
        if len(rows) - 1 != r["settings"]["epochs"]:
            problems.append(
                f"its epochs.csv has {len(rows) - 1} epochs of {r['settings']['epochs']}"
                " (an incomplete run)"
            )
            continue
        return h, check_run(rel, m, files)
    raise UserError(f"{where}: {problems[0]}; {FIX}")


def _listed_fingerprint(prov: dict, rel: str):
    """The fingerprint the recording's provenance.json gives the complete run ``rel``
    (what the sessions trained), or None where it lists none."""
    runs = prov.get("runs")
    for entry in runs if isinstance(runs, list) else []:
        if isinstance(entry, dict) and entry.get("folder") == rel and entry.get("complete"):
            return entry.get("fingerprint")
    return None


def check_data(folder: Path, prov: dict, cfg: dict) -> None:
    expected = cfg["data"]["archive_sha256"]
    recorded = prov.get("data_sha256")
    if expected and recorded != expected:
        raise UserError(
            f"recorded runs in {folder} were trained on data with sha256 {recorded}, "
            f"this config expects data.archive_sha256 {expected}; use the data the runs "
            "were recorded with, or train (recorded: null)"
        )


def plan_timing(folder: Path, cfg: dict) -> list[str]:
    t = cfg["timing"]
    if not t["enabled"]:
        return []
    named = [d for d in t["devices"] if d != "auto"]
    wanted = named if named else list(DEVICES)
    out = []
    for dev in wanted:
        rel = f"results/timing/{dev}/timing.json"
        if not os.path.lexists(Path(folder, rel)):
            if named:
                raise UserError(
                    f"config key timing.devices names {dev!r}, but {folder} has no recorded "
                    f"timing for it ({rel}); use timing.devices: [auto] (the recorded ones) "
                    "or timing.enabled: false"
                )
            continue
        timing = read_json(folder, rel)
        missing = [k for k in TIMING_KEYS if k not in timing]
        if missing:
            raise UserError(f"recorded file {Path(folder, rel)} lacks {', '.join(missing)}")
        problem = timing_problem(timing)
        if problem:
            raise UserError(f"recorded file {Path(folder, rel)} {problem}; {FIX}")
        wrong = []
        if timing["device"] != dev:
            wrong.append(f"device: recorded {timing['device']}, folder {dev}")
        if timing["epochs"] != t["epochs"]:
            wrong.append(f"timing.epochs: recorded {timing['epochs']}, this config {t['epochs']}")
        precision = cfg["train"]["precision"]
        if precision != "auto" and timing.get("precision", precision) != precision:
            wrong.append(
                f"train.precision: recorded {timing.get('precision')}, this config {precision}"
            )
        if wrong:
            raise UserError(
                f"recorded timing {dev} in {folder}: the config differs from the recorded "
                f"timing ({'; '.join(wrong)}); {FIX}"
            )
        out.append(dev)
    return out


def plan(cfg: dict, expected: list[dict]) -> Plan:
    """Check ``cfg["recorded"]`` against the runs the config plans (``expected``: dicts
    with head, lr, device, seed, hash, fingerprint, settings) and return what to copy."""
    from .dataset import subset_images  # here: the copying jobs need no numpy or PIL

    folder = Path(cfg["recorded"])
    if not folder.is_dir():
        raise UserError(
            f"config key recorded = {str(folder)!r} is not a folder; set it to a recorded "
            "folder such as recorded/<label> (with provenance.json), or null to train"
        )
    prov = read_provenance(folder)
    check_manifest(folder, prov)
    check_data(folder, prov, cfg)
    images = subset_images(cfg)
    own = recording_hashes(prov)
    runs, identities = [], []
    for r in expected:
        if recorded_yet(folder, r):
            h, ident = find_run(folder, prov, r, images, own)
            runs.append({**_grid_keys(r), "hash": h})
            identities.append((f"{run_name(r)}/{h}", ident))
    # a copy of a run under another seed (its seed and fingerprint rewritten, its
    # histories not) passes every check of its own: it is the same run counted twice
    check_distinct(identities, f"recorded runs in {folder}:")
    return Plan(str(folder), runs, plan_timing(folder, cfg))


def recorded_yet(folder: Path, r: dict) -> bool:
    """Whether the recording holds the run ``r`` plans: the reference's runs must all be
    there (checked by find_run); a variant's run may be not yet run, and then its folder,
    named by its own settings hash, is absent (the report says "not yet run")."""
    if r.get("variant", REFERENCE) == REFERENCE:
        return True
    return r["hash"] in safe_dirs(folder, f"results/runs/{run_name(r)}")


def recording_hashes(prov: dict) -> set[str]:
    """The settings hash of the recording's own config (its runs' folder names), where
    this host can compute it; empty where not (its data, as configured there, absent)."""
    from .config import validate  # here: the copying jobs need no schema
    from .grid import settings_hash  # here: the copying jobs need no schema

    try:
        cfg = validate(json.loads(json.dumps(prov.get("config"))))
        return {settings_hash(cfg, d) for d in cfg["devices"] if d != "auto"}
    except (UserError, TypeError, ValueError, KeyError, OSError):
        return set()


def _grid_keys(r: dict) -> dict:
    return {k: r[k] for k in ("head", "lr", "device", "seed")}


# ---- copying (the workflow's jobs) ---------------------------------------------------


def copy_run(folder: Path, run: str, out: Path) -> None:
    """Copy the recorded files of ``run`` (``results/runs/...``) into ``out``."""
    rel = PurePosixPath(run)
    if rel.parts[:2] != ("results", "runs"):
        raise UserError(f"recorded run {run!r} is not under results/runs/; refused")
    manifest = manifest_of(folder, read_provenance(folder))
    # what reaches results/runs/ is what plan checked: as recorded, and checked again here
    data = {name: verified_bytes(folder, manifest, f"{run}/{name}") for name in RUN_FILES}
    check_run(run, _metrics(folder, f"{run}/metrics.json"), data)
    # byte for byte; metrics.json last, as train writes it
    for name in RUN_FILES:
        write_atomic(out / name, data[name], root=out)


def copy_timing(folder: Path, device: str, out: Path) -> None:
    if device not in DEVICES:
        raise UserError(f"recorded timing device {device!r} is not one of {', '.join(DEVICES)}")
    rel = f"results/timing/{device}/timing.json"
    verified_bytes(folder, manifest_of(folder, read_provenance(folder)), rel)
    timing = read_json(folder, rel)
    problem = timing_problem(timing)
    if problem:
        raise UserError(f"recorded file {Path(folder, rel)} {problem}; {FIX}")
    write_atomic(out, json.dumps(timing, indent=2) + "\n")


def data_meta(prov: dict, metrics: list[dict]) -> dict:
    """The data description the provenance stage reads from a data cache's JSON, rebuilt
    from the recorded provenance (no data cache exists where runs are only copied)."""
    rec_cfg = prov.get("config") if isinstance(prov.get("config"), dict) else {}
    data = rec_cfg.get("data") if isinstance(rec_cfg.get("data"), dict) else {}
    subset = data.get("subset") if isinstance(data.get("subset"), dict) else {}
    m = metrics[0] if metrics else {}
    source = data.get("source", "unknown")
    if source == "auto":  # auto took the archive there exactly when it hashed one
        source = "archive" if prov.get("data_sha256") else "torchvision"
    meta = {
        "source": f"{source} (on the recording host)",
        "path": str(data.get("archive") or data.get("folder") or "unknown"),
        "sha256": prov.get("data_sha256") or "unknown",
        "subset": {s: subset.get(f"{s}_per_class") for s in ("train", "test")},
    }
    for split in ("train", "test"):
        n = m.get(f"n_{split}")
        meta[f"n_{split}"] = n
        # CIFAR-10 is balanced and a subset takes the first n images of every class
        meta[f"{split}_per_class"] = [n // 10] * 10 if isinstance(n, int) and n % 10 == 0 else None
    return meta


def write_meta(folder: Path, runs: list[str], out_dir: Path) -> None:
    """results/recorded/provenance.json (the recording's provenance, and where it was
    read from) and results/recorded/data.json (for the provenance stage)."""
    prov = read_provenance(folder)
    metrics = [_metrics(folder, f"{run}/metrics.json") for run in runs]
    recorded = {**prov, "folder": str(folder)}
    write_atomic(out_dir / "provenance.json", json.dumps(recorded, indent=2) + "\n", root=out_dir)
    meta = json.dumps(data_meta(prov, metrics), indent=2) + "\n"
    write_atomic(out_dir / "data.json", meta, root=out_dir)
