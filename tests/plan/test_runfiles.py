"""A recorded run folder is checked data: the committed H100 recording passes every
check, and a forged copy of it (an edited accuracy, a moved folder, a duplicated epoch,
a non-square confusion matrix, ...) is refused with one line naming the run, the files
and the values. The manifest names an edited file; a FIFO never hangs a reader."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from repro import files
from repro.errors import UserError
from repro.plan import config as config_mod
from repro.plan import grid, recorded, recording, runfiles

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "recorded" / "h100-2026-11-26"
RUN = "results/runs/softmax/lr0.01/cuda/seed0/c8c533c3"


def run_files(run: str = RUN) -> tuple[dict, dict[str, bytes]]:
    data = {n: (SHIPPED / run / n).read_bytes() for n in recorded.RUN_FILES}
    return json.loads(data["metrics.json"]), data


def check(metrics: dict, data: dict, run: str = RUN) -> None:
    runfiles.check_run(run, metrics, data)


def edit_csv(data: dict, name: str, change) -> None:
    lines = data[name].decode().splitlines()
    change(lines)
    data[name] = ("\n".join(lines) + "\n").encode()


@pytest.mark.parametrize(
    "run",
    sorted(
        str(p.parent.relative_to(SHIPPED))
        for p in SHIPPED.glob("results/runs/*/*/*/*/*/metrics.json")
    ),
)
def test_the_shipped_recording_passes_every_check(run):
    check(*run_files(run), run=run)


def test_a_forged_final_accuracy_names_both_files_and_values():
    m, data = run_files()
    m["final_test_acc"] = 0.8955
    with pytest.raises(UserError) as e:
        check(m, data)
    assert str(e.value).startswith(
        "recorded run softmax/lr0.01/cuda/seed0/c8c533c3: metrics.json final_test_acc says "
        "0.8955, but epochs.csv (last row) says 0.860700"
    )


def test_a_forged_accuracy_in_metrics_and_epochs_is_caught_by_the_predictions():
    """Consistent forgery of two files: the confusion counts still say 86.07 %."""
    m, data = run_files()
    m["final_test_acc"] = m["best_test_acc"] = 0.8955
    m["best_epoch"] = 150
    edit_csv(
        data, "epochs.csv", lambda ls: ls.__setitem__(-1, ls[-1][: -len("0.860700")] + "0.895500")
    )
    with pytest.raises(
        UserError,
        match=r"confusion_by_epoch.csv \(epoch 150 diagonal\) says "
        r"0.860700, but epochs.csv test_acc says 0.895500",
    ):
        check(m, data)


@pytest.mark.parametrize(
    "run, message",
    [
        (RUN.replace("lr0.01", "lr0.005"), "metrics.json lr says 0.01, but its folder says 0.005"),
        (RUN.replace("seed0", "seed1"), "metrics.json seed says 0, but its folder says 1"),
        (
            RUN.replace("softmax", "logits"),
            "metrics.json head says softmax, but its folder says logits",
        ),
        (RUN.replace("cuda", "cpu"), "metrics.json device says cuda, but its folder says cpu"),
    ],
)
def test_a_moved_run_folder_is_refused(run, message):
    with pytest.raises(UserError, match=message):
        check(*run_files(), run=run)


def test_a_forged_fingerprint_or_settings_are_refused():
    m, data = run_files()
    m["config"]["momentum"] = 0.5
    with pytest.raises(
        UserError, match="metrics.json fingerprint says 7462ffcd8ae033b1, but its config"
    ):
        check(m, data)
    m, data = run_files()
    m["config"]["lr"] = 0.02
    with pytest.raises(UserError, match="metrics.json lr says 0.01, but its config.lr says 0.02"):
        check(m, data)


def _replace_line(name: str, index: int, text):
    return lambda ls: ls.__setitem__(index, text(ls) if callable(text) else text)


CSV_CASES = [
    (
        "duplicated epoch",
        "epochs.csv",
        _replace_line("epochs.csv", 2, lambda ls: ls[1]),
        "epochs.csv has epochs out of order or repeated; expected epochs 1..150",
    ),
    ("missing epoch", "epochs.csv", lambda ls: ls.pop(5), "epochs.csv has 149 rows"),
    (
        "NaN loss",
        "epochs.csv",
        _replace_line("", 3, "3,nan,0.6,1.8,0.6"),
        "not finite in column train_loss",
    ),
    (
        "accuracy over 1",
        "epochs.csv",
        _replace_line("", 3, "3,1.8,1.5,1.8,0.6"),
        r"train_acc 1.5 \(allowed: in \[0, 1\]\)",
    ),
    (
        "negative loss",
        "epochs.csv",
        _replace_line("", 3, "3,-1.8,0.5,1.8,0.6"),
        r"train_loss -1.8 \(allowed: >= 0\)",
    ),
    (
        "text in a number column",
        "epochs.csv",
        _replace_line("", 3, "3,=cmd(),0.5,1.8,0.6"),
        "'=cmd\\(\\)' in column train_loss, not a number",
    ),
    (
        "wrong header",
        "epochs.csv",
        _replace_line("", 0, "epoch,loss,acc,test_loss,test_acc"),
        "has the header 'epoch,loss,acc",
    ),
    ("ragged row", "epochs.csv", _replace_line("", 3, "3,1.8"), "line 4 has 2 values, expected 5"),
    (
        "negative time",
        "epoch_times.csv",
        _replace_line("", 1, "1,-18.0,16.9,2958.1"),
        r"seconds -18.0 \(allowed: >= 0\)",
    ),
    (
        "a step missing",
        "steps.csv",
        lambda ls: ls.pop(7),
        "steps.csv has 58649 rows; expected 150 epochs x 391 steps",
    ),
    (
        "steps swapped",
        "steps.csv",
        lambda ls: ls.__setitem__(slice(1, 3), [ls[2], ls[1]]),
        "steps.csv has steps out of order",
    ),
    (
        "non-square confusion",
        "confusion.csv",
        lambda ls: ls.__setitem__(slice(None), [",".join(x.split(",")[:-1]) for x in ls]),
        "confusion.csv is not a 10x10 table",
    ),
    (
        "negative count",
        "confusion.csv",
        _replace_line("", 1, "airplane,-864,13,18,5,15,12,5,4,23,41"),
        r"confusion.csv has a count -864",
    ),
    (
        "counts not summing to the test set",
        "confusion.csv",
        _replace_line("", 1, "airplane,865,13,18,5,15,12,5,4,23,41"),
        r"confusion.csv \(sum\) says 10001, but metrics.json n_test says 10000",
    ),
    (
        "label out of range",
        "predictions.csv",
        _replace_line("", 1, lambda ls: "0,10," + ls[1].split(",", 2)[2]),
        r"predictions.csv has label 10 \(allowed: in \[0, 9\]\)",
    ),
    (
        "a test image missing",
        "predictions.csv",
        lambda ls: ls.pop(),
        "predictions.csv has 9999 rows or indices out of order",
    ),
    (
        "a prediction changed",
        "predictions.csv",
        _replace_line("", 1, lambda ls: "0,0,4," + ls[1].split(",", 3)[3]),
        r"metrics.json final_test_acc says 0.8607, but predictions.csv \(accuracy\) says 0.8606",
    ),
]


@pytest.mark.parametrize("what, name, change, message", CSV_CASES, ids=[c[0] for c in CSV_CASES])
def test_a_damaged_csv_is_one_line_naming_the_file(what, name, change, message):
    m, data = run_files()
    edit_csv(data, name, change)
    with pytest.raises(UserError, match=message) as e:
        check(m, data)
    assert "\n" not in str(e.value) and str(e.value).startswith("recorded run softmax/lr0.01/")


# ---- the manifest, on a copy of the shipped recording ----------------------------------


@pytest.fixture
def copy(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    shutil.copytree(SHIPPED, tmp_path / "recorded" / SHIPPED.name)
    return Path("recorded") / SHIPPED.name


def plan(folder: Path):
    cwd = Path.cwd()
    os.chdir(ROOT)  # the config's relative paths are the checkout's
    try:
        cfg = config_mod.load("config/recorded.yaml")
        cfg["recorded"] = str(cwd / folder)
        return recorded.plan(cfg, grid.recorded_expectations(cfg))
    finally:
        os.chdir(cwd)


def test_the_manifest_names_an_edited_file(copy):
    assert len(plan(copy).runs) == 4  # the reference's 3 and the fp32 variant's 1
    path = copy / RUN / "metrics.json"
    path.write_text(
        path.read_text().replace('"final_test_acc": 0.8607', '"final_test_acc": 0.8955')
    )
    with pytest.raises(
        UserError, match=rf"recorded file .*{RUN}/metrics.json was edited after recording"
    ):
        plan(copy)
    with pytest.raises(UserError, match="was edited after recording"):
        recorded.copy_run(copy, RUN, copy.parent / "out")
    # sealed again by whoever edited it: the schema's cross-checks still refuse it
    recording.add_manifest(copy)
    with pytest.raises(UserError, match="final_test_acc says 0.8955, but epochs.csv"):
        plan(copy)


def test_an_added_file_or_no_manifest_is_refused(copy):
    (copy / RUN / "extra.csv").write_text("x\n")
    with pytest.raises(UserError, match="extra.csv is not in the recording's manifest"):
        plan(copy)
    (copy / RUN / "extra.csv").unlink()
    prov = json.loads((copy / "provenance.json").read_text())
    del prov["manifest"]
    (copy / "provenance.json").write_text(json.dumps(prov))
    with pytest.raises(UserError, match=rf"add one: python -m repro record --manifest \S*{copy}$"):
        plan(copy)


def test_the_manifest_command_reseals_only_a_folder_without_links(copy, tmp_path):
    res = subprocess.run(
        [sys.executable, "-m", "repro", "record", "--manifest", str(copy)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
    )
    assert res.returncode == 0, res.stderr
    assert json.loads((copy / "provenance.json").read_text()) == json.loads(
        (SHIPPED / "provenance.json").read_text()
    )
    (copy / "logs" / "evil.log").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(UserError, match="evil.log is a symbolic link"):
        recording.add_manifest(copy)


# ---- reading only regular files, bounded -------------------------------------------------


def test_a_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "x.json"
    os.mkfifo(fifo)
    with pytest.raises(UserError, match="not a regular file"):
        files.read_json_bounded(fifo, 1000, "calibration cache")
    with pytest.raises(UserError, match="not a regular file"):
        files.read_regular("/dev/zero", 1000, "input")


def test_bounded_json_refuses_deep_nesting_and_size(tmp_path):
    path = tmp_path / "a.json"
    path.write_text("[" * 40 + "]" * 40)
    with pytest.raises(UserError, match="nested more than 32 levels deep"):
        files.read_json_bounded(path, 1000, "progress file")
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(UserError, match="nested too deeply"):
        files.read_json_bounded(path, 10**6, "progress file")
    with pytest.raises(UserError, match="more than the 1000 allowed"):
        files.read_json_bounded(path, 1000, "progress file")
    path.write_text('{"a": [1, {"b": 2}]}')
    assert files.read_json_bounded(path, 1000, "x") == {"a": [1, {"b": 2}]}


def test_a_fifo_in_the_calibration_cache_does_not_hang_planning(tmp_path):
    """Seen: a FIFO in resources/calibration/ hung `snakemake` before any job."""
    code = (
        "import sys; from pathlib import Path; from repro.plan import config, estimate\n"
        "cfg = config.load('config/config.yaml')\n"
        "path = Path(sys.argv[1]) / estimate.CACHE_DIR / "
        "f'{estimate.calibration_key(cfg, \"cpu\")}.json'\n"
        "path.parent.mkdir(parents=True); __import__('os').mkfifo(path)\n"
        "print(estimate.cached(cfg, 'cpu', Path(sys.argv[1])))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    res = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "None"
    assert (tmp_path / "resources" / "calibration").iterdir()


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: os.mkfifo(p), "is not a regular file"),
        (lambda p: p.write_text("[" * 100_000 + "]" * 100_000), "nested too deeply"),
        (lambda p: p.write_text('{"a": ' * 40 + "1" + "}" * 40), "nested more than 32 levels"),
        (lambda p: p.write_text('{"final_test_acc": 0.9'), "is not valid JSON"),
    ],
    ids=["fifo", "recursion", "deep", "truncated"],
)
def test_a_report_stage_reads_its_json_bounded(tmp_path, make, message):
    """The report stages read metrics.json and the timing JSONs through files.read_json:
    a FIFO, a nested or a broken file is one line from the tables command, not a hang
    or a traceback."""
    metrics = tmp_path / "run" / "metrics.json"
    metrics.parent.mkdir()
    make(metrics)
    (tmp_path / "config.json").write_text("{}")
    res = subprocess.run(
        [sys.executable, "-m", "repro", "tables", "--config", str(tmp_path / "config.json")]
        + ["--runs", str(metrics), "--out-dir", str(tmp_path / "tables")],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        timeout=60,
    )
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: run metrics ") and message in lines[0]
    assert not (tmp_path / "tables").exists()


def test_read_json_limits_the_size_before_reading(tmp_path, monkeypatch):
    path = tmp_path / "timing.json"
    path.write_text(json.dumps({"device": "cpu", "pad": "x" * 200}))
    monkeypatch.setattr(files, "MAX_JSON_BYTES", 100)
    with pytest.raises(UserError, match=r"timing JSON .* more than the 100 allowed"):
        files.read_json(path, "timing JSON")
    monkeypatch.setattr(files, "MAX_JSON_BYTES", 1000)
    assert files.read_json(path, "timing JSON")["device"] == "cpu"
