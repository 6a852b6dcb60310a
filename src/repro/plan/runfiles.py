"""The schema of a finished run folder's files, and the cross-checks between them.

A run folder that another machine made (a recording, ``recorded/<label>/``) is data to
check, not to trust: every CSV has its columns, types and ranges checked, and the files
are checked against each other and against the folder they sit in, because a forged
file is usually consistent with itself but not with its neighbours. ``check_run`` is
the one entry point; each problem is one ``UserError`` line naming the run, the file(s)
and the values.

Torch-free (numpy and csv only): the planning and copying jobs run it.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
from pathlib import PurePosixPath

import numpy as np

from ..errors import UserError
from .paper import N_CLASSES, N_TRAIN

EPOCH_COLUMNS = ("epoch", "train_loss", "train_acc", "test_loss", "test_acc")
STEP_COLUMNS = ("epoch", "step", "loss", "accuracy", "lr")
TIME_COLUMNS = ("epoch", "seconds", "train_seconds", "train_images_per_s")
PRED_COLUMNS = ("index", "label", "pred", *(f"p{c}" for c in range(N_CLASSES)))
CONFUSION_COLUMNS = ("epoch", *(f"t{t}p{p}" for t in range(N_CLASSES) for p in range(N_CLASSES)))
# the CSVs hold floats with 6 decimals (train.write_csv), metrics.json the unrounded value
CSV_ROUNDING = 5e-7 + 1e-9
FIX = "the run folder was edited or damaged: record the run again"
# metrics.json's times beside train_seconds, absent from older runs
OPTIONAL_SECONDS = ("wall_seconds_this_process", "seconds_per_epoch")


class Run:
    """One run folder's files (name -> bytes) and the name used in every message."""

    def __init__(self, name: str, files: dict[str, bytes]):
        self.name = name
        self.files = files
        self.cells: dict[str, np.ndarray] = {}  # each table parsed once

    def fail(self, file: str, problem: str) -> UserError:
        return UserError(f"recorded run {self.name}: {file} {problem}; {FIX}")

    def disagree(self, a: str, a_value, b: str, b_value) -> UserError:
        return UserError(
            f"recorded run {self.name}: {a} says {a_value}, but {b} says {b_value}; "
            f"the files disagree ({FIX})"
        )

    def table(self, file: str, columns: tuple[str, ...]) -> np.ndarray:
        """The cells of ``file`` under its header (which must be ``columns``), as str."""
        if file in self.cells:
            return self.cells[file]
        try:
            rows = list(csv.reader(io.StringIO(self.files[file].decode("utf-8"))))
        except (UnicodeDecodeError, csv.Error) as e:
            raise self.fail(file, f"is not UTF-8 CSV ({e})") from None
        if not rows or tuple(rows[0]) != columns:
            head = ",".join(rows[0])[:80] if rows else "nothing"
            raise self.fail(file, f"has the header {head!r}, expected {','.join(columns)[:80]!r}")
        for i, row in enumerate(rows[1:], start=2):
            if len(row) != len(columns):
                raise self.fail(file, f"line {i} has {len(row)} values, expected {len(columns)}")
        cells = np.array(rows[1:], dtype=str).reshape(len(rows) - 1, len(columns))
        self.cells[file] = cells
        return cells

    def column(self, file: str, cells: np.ndarray, columns, name: str, kind=float):
        """Column ``name`` as numbers of ``kind`` (int: written as integers), finite."""
        values = cells[:, columns.index(name)]
        try:
            out = values.astype(np.int64 if kind is int else np.float64)
        except (ValueError, OverflowError):
            bad = next(v for v in values if not _parses(v, kind))
            what = "an integer" if kind is int else "a number"
            raise self.fail(file, f"has {bad[:40]!r} in column {name}, not {what}") from None
        if not np.isfinite(out).all():
            raise self.fail(file, f"has a value that is not finite in column {name}")
        return out

    def in_range(self, file: str, name: str, values, low, high=math.inf) -> None:
        # NaN compares false both ways: it is out of every range (a NaN accuracy passed)
        bad = ~((values >= low) & (values <= high)) | ~np.isfinite(values)
        if bad.any():
            allowed = f">= {low}" if high == math.inf else f"in [{low}, {high}]"
            raise self.fail(file, f"has {name} {values[bad][0]} (allowed: {allowed})")


def _parses(text: str, kind) -> bool:
    try:
        kind(text)
        return True
    except (ValueError, OverflowError):
        return False


# ---- metrics.json against the folder it sits in ------------------------------------


def folder_keys(run_path: str) -> dict:
    """head, lr (text), device, seed (text) and hash from results/runs/... ."""
    parts = PurePosixPath(run_path).parts
    if len(parts) != 7 or parts[:2] != ("results", "runs"):
        raise UserError(f"recorded run {run_path!r} is not results/runs/<head>/lr<rate>/...")
    head, lr, device, seed, hash_ = parts[2:]
    return {
        "head": head,
        "lr": lr.removeprefix("lr"),
        "device": device,
        "seed": seed.removeprefix("seed"),
        "hash": hash_,
    }


def check_folder(run: Run, m: dict, run_path: str) -> None:
    """head, rate, device and seed of metrics.json, of its settings and of the folder."""
    keys = folder_keys(run_path)
    settings = m["config"]
    model = settings.get("model") if isinstance(settings.get("model"), dict) else {}
    pairs = [
        ("head", m["head"], keys["head"], model.get("head")),
        ("lr", m["lr"], _number(keys["lr"]), settings.get("lr")),
        ("device", m["device"], keys["device"], settings.get("device")),
        ("seed", m["seed"], _number(keys["seed"]), settings.get("seed")),
        ("epochs", m["epochs"], m["epochs"], settings.get("epochs")),
        # the arithmetic the run trained in: the report lists metrics.json's, the folder's
        # hash stands for its config's (a bf16 metrics.json in an fp32 folder was counted
        # as fp32 and listed as bf16)
        ("precision", m.get("precision"), m.get("precision"), settings.get("precision")),
    ]
    for key, value, from_folder, from_settings in pairs:
        if value != from_folder:
            raise run.disagree(f"metrics.json {key}", value, "its folder", from_folder)
        if value != from_settings:
            raise run.disagree(f"metrics.json {key}", value, f"its config.{key}", from_settings)
    _check_fingerprint(run, m)


def _number(text: str):
    try:
        return float(text) if "." in text or "e" in text else int(text)
    except ValueError:
        return text


def _check_fingerprint(run: Run, m: dict) -> None:
    from . import description  # here: the copying jobs need no schema (yaml)
    from .settings import RunConfig, with_later_readings

    try:
        # every field present, of its type and within the schema's bounds (sizes too), as
        # `train --run` reads a description; resolved where it trained (never auto); a run
        # recorded before the block's later readings existed trained with their defaults
        config = with_later_readings(m["config"])
        settings = description.checked(config)
        fingerprint = RunConfig.from_dict(config).fingerprint()
    except (UserError, TypeError, ValueError, KeyError, AttributeError) as e:
        why = f" ({str(e).removeprefix('--run ')})" if isinstance(e, UserError) else ""
        raise run.fail("metrics.json", f"has a config that is not a run description{why}") from None
    if settings["precision"] == "auto":
        raise run.fail("metrics.json", "has config.precision auto, not the one it trained in")
    if fingerprint != m["fingerprint"]:
        raise run.disagree("metrics.json fingerprint", m["fingerprint"], "its config", fingerprint)


def check_metric_ranges(run: Run, m: dict) -> None:
    """The numbers of metrics.json in their ranges, the step counts from the sizes."""
    for key in ("final_test_acc", "best_test_acc", "final_train_acc"):
        run.in_range("metrics.json", key, np.array([m[key]], dtype=float), 0, 1)
    for key in ("final_train_loss", "final_test_loss", "train_seconds", "lr"):
        if not math.isfinite(m[key]):
            raise run.fail("metrics.json", f"has {key} {m[key]} (allowed: finite)")
        run.in_range("metrics.json", key, np.array([m[key]], dtype=float), 0)
    for key in OPTIONAL_SECONDS:  # printed in the report where present
        if key in m and (type(m[key]) not in (int, float) or not math.isfinite(m[key])):
            raise run.fail("metrics.json", f"has {key} {_short(m[key])} (allowed: finite)")
        if key in m:
            run.in_range("metrics.json", key, np.array([m[key]], dtype=float), 0)
    for key in ("epochs", "n_train", "n_test", "parameters"):
        if not isinstance(m[key], int) or m[key] < 1:
            raise run.fail("metrics.json", f"has {key} {m[key]} (allowed: an integer >= 1)")
    settings = m["config"]
    for key, n, batch in (
        ("steps_per_epoch", m["n_train"], settings.get("batch_size")),
        ("test_steps_per_epoch", m["n_test"], settings.get("test_batch_size")),
    ):
        if not isinstance(batch, int) or isinstance(batch, bool) or batch < 1:
            raise run.fail("metrics.json", f"has a config without a batch size for {key}")
        if m[key] != math.ceil(n / batch):
            raise run.disagree(f"metrics.json {key}", m[key], "its sizes", math.ceil(n / batch))


# ---- the histories ---------------------------------------------------------------------


def check_epochs(run: Run, m: dict) -> np.ndarray:
    """epochs.csv: epochs 1..N once each in order; losses >= 0, accuracies in [0, 1];
    its last and best rows are metrics.json's final and best values."""
    f, cols = "epochs.csv", EPOCH_COLUMNS
    cells = run.table(f, cols)
    epoch = run.column(f, cells, cols, "epoch", int)
    _check_epoch_numbers(run, f, epoch, m["epochs"])
    values = {c: run.column(f, cells, cols, c) for c in cols[1:]}
    for c in ("train_loss", "test_loss"):
        run.in_range(f, c, values[c], 0)
    for c in ("train_acc", "test_acc"):
        run.in_range(f, c, values[c], 0, 1)
    last = {
        "final_test_acc": values["test_acc"][-1],
        "final_train_acc": values["train_acc"][-1],
        "final_train_loss": values["train_loss"][-1],
        "final_test_loss": values["test_loss"][-1],
        "best_test_acc": values["test_acc"].max(),
    }
    for key, value in last.items():
        if not abs(m[key] - value) <= CSV_ROUNDING:  # NaN is no match
            row = "best" if key.startswith("best") else "last"
            raise run.disagree(f"metrics.json {key}", m[key], f"{f} ({row} row)", f"{value:.6f}")
    best = int(np.argmax(values["test_acc"])) + 1
    if m["best_epoch"] != best:
        raise run.disagree("metrics.json best_epoch", m["best_epoch"], f"{f} (best row)", best)
    return values["test_acc"]


def _check_epoch_numbers(run: Run, f: str, epoch: np.ndarray, n: int) -> None:
    if len(epoch) != n or not np.array_equal(epoch, np.arange(1, n + 1)):
        got = f"{len(epoch)} rows" if len(epoch) != n else "epochs out of order or repeated"
        raise run.fail(f, f"has {got}; expected epochs 1..{n} once each, in order (metrics.json)")


def check_times(run: Run, m: dict) -> None:
    f, cols = "epoch_times.csv", TIME_COLUMNS
    cells = run.table(f, cols)
    _check_epoch_numbers(run, f, run.column(f, cells, cols, "epoch", int), m["epochs"])
    for c in cols[1:]:
        run.in_range(f, c, run.column(f, cells, cols, c), 0)


def check_steps(run: Run, m: dict) -> None:
    """steps.csv: steps_per_epoch rows per epoch, numbered 1..steps_per_epoch."""
    f, cols = "steps.csv", STEP_COLUMNS
    cells = run.table(f, cols)
    n, spe = m["epochs"], m["steps_per_epoch"]
    epoch = run.column(f, cells, cols, "epoch", int)
    step = run.column(f, cells, cols, "step", int)
    if len(epoch) != n * spe:
        raise run.fail(
            f, f"has {len(epoch)} rows; expected {n} epochs x {spe} steps (metrics.json)"
        )
    if not (
        np.array_equal(epoch, np.repeat(np.arange(1, n + 1), spe))
        and np.array_equal(step, np.tile(np.arange(1, spe + 1), n))
    ):
        raise run.fail(f, f"has steps out of order; expected steps 1..{spe} of each epoch 1..{n}")
    run.in_range(f, "loss", run.column(f, cells, cols, "loss"), 0)
    run.in_range(f, "accuracy", run.column(f, cells, cols, "accuracy"), 0, 1)
    run.in_range(f, "lr", run.column(f, cells, cols, "lr"), 0)


# ---- the test set: confusion matrices and predictions ----------------------------------


def check_confusion(run: Run, m: dict) -> np.ndarray:
    """confusion.csv: a 10x10 table of counts summing to the test-set size."""
    f = "confusion.csv"
    try:
        rows = list(csv.reader(io.StringIO(run.files[f].decode("utf-8"))))
    except (UnicodeDecodeError, csv.Error) as e:
        raise run.fail(f, f"is not UTF-8 CSV ({e})") from None
    shape = (len(rows) - 1, max((len(r) - 1 for r in rows), default=0))
    if shape != (N_CLASSES, N_CLASSES) or any(len(r) != N_CLASSES + 1 for r in rows):
        raise run.fail(
            f, f"is not a {N_CLASSES}x{N_CLASSES} table with a header row and a label column"
        )
    header = rows[0]
    if header[0] != "true" or [r[0] for r in rows[1:]] != header[1:]:
        raise run.fail(f, "does not label its rows as its header labels its columns")
    cols = tuple(header[1:])
    counts = np.stack(
        [run.column(f, np.array(rows[1:], dtype=str)[:, 1:], cols, c, int) for c in cols], axis=1
    )
    run.in_range(f, "a count", counts.ravel(), 0)
    if counts.sum() != m["n_test"]:
        raise run.disagree(f"{f} (sum)", int(counts.sum()), "metrics.json n_test", m["n_test"])
    return counts


def check_confusion_by_epoch(run: Run, m: dict, counts: np.ndarray, test_acc) -> None:
    """Every epoch's counts sum to the test-set size, their diagonal is that epoch's
    test accuracy and the last epoch's are confusion.csv."""
    f, cols = "confusion_by_epoch.csv", CONFUSION_COLUMNS
    cells = run.table(f, cols)
    _check_epoch_numbers(run, f, run.column(f, cells, cols, "epoch", int), m["epochs"])
    by_epoch = np.stack([run.column(f, cells, cols, c, int) for c in cols[1:]], axis=1)
    run.in_range(f, "a count", by_epoch.ravel(), 0)
    sums = by_epoch.sum(axis=1)
    if (sums != m["n_test"]).any():
        e = int(np.flatnonzero(sums != m["n_test"])[0])
        raise run.disagree(
            f"{f} (epoch {e + 1} sum)", int(sums[e]), "metrics.json n_test", m["n_test"]
        )
    cube = by_epoch.reshape(-1, N_CLASSES, N_CLASSES)
    acc = np.trace(cube, axis1=1, axis2=2) / m["n_test"]
    off = np.abs(acc - test_acc) > CSV_ROUNDING
    if off.any():
        e = int(np.flatnonzero(off)[0])
        raise run.disagree(
            f"{f} (epoch {e + 1} diagonal)",
            f"{acc[e]:.6f}",
            "epochs.csv test_acc",
            f"{test_acc[e]:.6f}",
        )
    if not np.array_equal(cube[-1], counts):
        raise run.disagree(f"{f} (last epoch)", "other counts", "confusion.csv", "its counts")


def check_predictions(run: Run, m: dict, counts: np.ndarray) -> None:
    """predictions.csv: one row per test image, labels and predictions in range,
    probabilities in [0, 1]; its (label, prediction) pairs are confusion.csv's counts,
    so its accuracy is the final test accuracy."""
    f, cols = "predictions.csv", PRED_COLUMNS
    cells = run.table(f, cols)
    index = run.column(f, cells, cols, "index", int)
    if len(index) != m["n_test"] or not np.array_equal(index, np.arange(m["n_test"])):
        raise run.fail(
            f,
            f"has {len(index)} rows or indices out of order; expected one row per test "
            f"image, indices 0..{m['n_test'] - 1} (metrics.json n_test)",
        )
    label = run.column(f, cells, cols, "label", int)
    pred = run.column(f, cells, cols, "pred", int)
    run.in_range(f, "label", label, 0, N_CLASSES - 1)
    run.in_range(f, "pred", pred, 0, N_CLASSES - 1)
    for c in cols[3:]:
        run.in_range(f, c, run.column(f, cells, cols, c), 0, 1)
    accuracy = float(np.mean(label == pred))
    if not abs(accuracy - m["final_test_acc"]) <= CSV_ROUNDING:
        raise run.disagree(
            "metrics.json final_test_acc", m["final_test_acc"], f"{f} (accuracy)", accuracy
        )
    pairs = np.zeros((N_CLASSES, N_CLASSES), dtype=np.int64)
    np.add.at(pairs, (label, pred), 1)
    if not np.array_equal(pairs, counts):
        raise run.disagree(
            f"{f} (label, pred counts)", "other counts", "confusion.csv", "its counts"
        )


def check_run(run_path: str, metrics: dict, files: dict[str, bytes]) -> dict[str, str]:
    """Check a run folder's files (name -> bytes) against the schema and each other;
    ``metrics``: its metrics.json, parsed and with the types of recorded.METRIC_KEYS.
    Returns the run's identity (``identity``)."""
    run = Run(run_path.removeprefix("results/runs/"), files)
    check_folder(run, metrics, run_path)
    check_metric_ranges(run, metrics)
    test_acc = check_epochs(run, metrics)
    check_times(run, metrics)
    check_steps(run, metrics)
    counts = check_confusion(run, metrics)
    check_confusion_by_epoch(run, metrics, counts, test_acc)
    check_predictions(run, metrics, counts)
    return identity(files, run)


# ---- a run is one run ------------------------------------------------------------------

# the files that make a run this run, with their columns; the first ``n`` only number rows
IDENTITY_FILES = {
    "epochs.csv": (EPOCH_COLUMNS, 1),
    "steps.csv": (STEP_COLUMNS, 2),
    "predictions.csv": (PRED_COLUMNS, 1),
}


def identity(files: dict[str, bytes], run: Run | None = None) -> dict[str, str]:
    """Per history and prediction file present in ``files`` (name -> bytes): a digest of
    its values, numbers rounded to the 6 decimals the CSVs hold, without the columns that
    number the rows. A copy of a run under another seed, rate or folder has the same
    digests however its numbers are spelt; two trainings of distinct seeds never do (a
    loss at 6 decimals, 10,000 images' probabilities). A file that does not parse has none
    (its own checks refuse it). ``run``: the Run that parsed them already."""
    run = run or Run("", files)
    out = {}
    for name, (columns, n) in IDENTITY_FILES.items():
        if name not in files:
            continue
        try:
            values = run.table(name, columns)[:, n:].astype(np.float64)
        except (UserError, ValueError, OverflowError):
            continue
        if values.size:
            digest = hashlib.sha256(np.round(values, 6).tobytes() + str(values.shape).encode())
            out[name] = digest.hexdigest()
    return out


def check_distinct(runs, what: str = "recorded runs") -> None:
    """``runs``: (name, identity) pairs. Two runs whose history and prediction files hold
    the same values, every file both have, are one run counted twice: UserError naming
    both. Every file, not any one: two short runs of one seed at different rates can
    share an epochs.csv (one step, the loss taken before the update, the test numbers
    equal at 6 decimals), while their steps.csv still differ by the rate."""
    seen: list[tuple[str, dict]] = []
    for name, ident in runs:
        for first, other in seen:
            shared = sorted(ident.keys() & other.keys())
            if shared and all(ident[f] == other[f] for f in shared):
                raise UserError(
                    f"{what} {first} and {name} are the same run: their {', '.join(shared)} "
                    "hold the same values (a copy under another seed, rate or folder); a run "
                    "counts once: remove the copy, or record the run again"
                )
        seen.append((name, ident))


# ---- timing ---------------------------------------------------------------------------

# a timing JSON's numbers (timing_run): the report prints and divides by them
TIMING_SECONDS = ("seconds_total", "seconds_per_epoch", "seconds_first_epoch")
TIMING_SECONDS += ("seconds_per_epoch_after_first",)
TIMING_RATES = ("train_images_per_s", "train_images_per_s_after_first")


def timing_problem(t: dict) -> str | None:
    """What is wrong with the numbers of a timing JSON (as the timing job writes it), or
    None: epochs and images counts >= 1, seconds and rates finite and > 0 (the optional
    ones where present). A negative or NaN time reached the PDF as "-25.0" or "nan min"."""
    if not isinstance(t, dict):
        return "is not a JSON object"
    # at most CIFAR-10's training images, and the schema's epochs (no 1e30 that scales
    # every time to nothing)
    for key, most in (("epochs", 100_000), ("n_train", N_TRAIN)):
        if type(t.get(key)) is not int or not 1 <= t[key] <= most:
            return f"has {key} {_short(t.get(key))} (allowed: an integer in 1-{most})"
    for key in TIMING_SECONDS + TIMING_RATES:
        if key not in t and key not in ("seconds_total", "seconds_per_epoch"):
            continue
        value = t.get(key)
        if type(value) not in (int, float) or not (math.isfinite(value) and value > 0):
            return f"has {key} {_short(value)} (allowed: a finite number > 0)"
    for key in ("device", "device_name"):
        if not isinstance(t.get(key), str):
            return f"has {key} {_short(t.get(key))} (allowed: a string)"
    return None


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
