"""Hostile inputs (issue 31): every write goes through one safe-file layer, every read
of a file we did not write in this run is bounded, every entry point ends in one line.

First the examples a hostile pass found, each a test that failed before its fix; then
property tests (Hypothesis, derandomized: the same examples on every run) that feed
generated hostile files to every reader and accept only a clean result or one
``UserError`` line: never another exception, a hang (each example under an alarm) or a
write outside the test's folder.
"""

from __future__ import annotations

import copy
import io
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml
from conftest import ARCHIVE, ROOT
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from repro import cli, files
from repro.errors import UserError
from repro.plan import config as config_mod
from repro.plan import estimate, grid, recorded, recording, status
from repro.plan import progress as progress_mod
from repro.plan.description import checked_any_size, read_description
from repro.plan.runfiles import check_run
from repro.text import for_terminal

RECORDING = ROOT / "recorded" / "h100-2026-11-26"
RUN = "results/runs/softmax/lr0.01/cuda/seed0/c8c533c3"
# a config that plans without reading any data (the official download is never hashed)
PLAIN = {"data": {"source": "torchvision"}, "devices": ["cpu"], "timing": {"enabled": False}}
FEW = settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@contextmanager
def within(seconds: int = 5):
    """Fail instead of hanging: a read that blocks (a FIFO, /dev/zero) ends the test."""

    def expired(*_):
        raise TimeoutError(f"no answer within {seconds} s: a hang")

    old = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def one_line(call, *args, **kw):
    """``call``'s result, or None where it refused with one UserError line; any other
    exception or a hang fails the test."""
    with within():
        try:
            return call(*args, **kw)
        except UserError as e:
            assert "\n" not in for_terminal(e), f"more than one line: {e!r}"
            return None


def cli_lines(capsys, *argv) -> tuple[int, list[str]]:
    """The CLI in this process: exit status and stderr lines (argparse's exits too)."""
    with within():
        try:
            code = cli.main(list(argv))
        except SystemExit as e:
            code = e.code
    return code, capsys.readouterr().err.strip().splitlines()


# ---- unsafe writes ---------------------------------------------------------------------


def test_a_link_planted_at_the_temporary_name_is_never_written_through(tmp_path):
    """`repro queue --out F` wrote through a link at F.tmp into a file outside the
    project and left F as that link."""
    outside = tmp_path / "outside.txt"
    outside.write_text("keep")
    out = tmp_path / "project" / "queue.json"
    out.parent.mkdir()
    (out.parent / "queue.json.tmp").symlink_to(outside)
    files.write_atomic(out, "{}\n")
    assert outside.read_text() == "keep"
    assert out.is_file() and not out.is_symlink() and out.read_text() == "{}\n"


@pytest.mark.parametrize("kind", ["link", "fifo", "folder"])
def test_a_destination_that_is_no_regular_file_is_refused(tmp_path, capsys, kind):
    """`repro queue --out /dev/null` as root replaced the device with a regular file; a
    link at F was replaced by the rename; a folder was a traceback."""
    outside = tmp_path / "outside.txt"
    outside.write_text("keep")
    out = tmp_path / "queue.json"
    {"link": lambda: out.symlink_to(outside), "fifo": lambda: os.mkfifo(out)}.get(
        kind, lambda: out.mkdir()
    )()
    with pytest.raises(UserError, match=r"queue.json (is a symbolic link|is a device|is a fo)"):
        files.write_atomic(out, "x")
    assert outside.read_text() == "keep" and os.path.lexists(out)
    assert (out.is_symlink(), out.is_fifo(), out.is_dir()) == (
        kind == "link",
        kind == "fifo",
        kind == "folder",
    )
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_a_link_inside_the_allowed_root_is_refused(tmp_path):
    """Derived paths (a run folder's files) are written under the folder the user named,
    never through a link below it."""
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "sub").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(UserError, match="is a symbolic link"):
        files.write_atomic(tmp_path / "out" / "sub" / "metrics.json", "{}", root=tmp_path / "out")
    assert list((tmp_path / "elsewhere").iterdir()) == []


def test_queue_out_a_folder_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    study = tmp_path / "study.yaml"
    study.write_text(yaml.safe_dump(PLAIN))
    code, err = cli_lines(capsys, "queue", "--configfile", str(study), "--out", str(tmp_path))
    assert code == 2 and len(err) == 1 and err[0].startswith(f"error: {tmp_path} is a folder")


def test_a_broken_pipe_ends_quietly(tmp_path):
    """`repro queue ... | head -1`: a traceback once the reader had gone."""
    study = tmp_path / "study.yaml"
    study.write_text(yaml.safe_dump({**PLAIN, "seeds": list(range(400))}))
    cmd = [sys.executable, "-m", "repro", "queue", "--configfile", str(study)]
    proc = subprocess.Popen(
        cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    proc.stdout.readline()
    proc.stdout.close()  # as head does after its line
    err = proc.stderr.read()
    assert proc.wait(timeout=60) == 1 and err == ""


# ---- hangs --------------------------------------------------------------------------------


def _special(tmp_path: Path, kind: str) -> Path:
    if kind == "fifo":
        os.mkfifo(tmp_path / "cifar.tar.gz")
        return tmp_path / "cifar.tar.gz"
    return Path("/dev/zero")


@pytest.mark.parametrize("kind", ["fifo", "zero"])
def test_an_archive_that_is_a_fifo_or_dev_zero_is_one_line(tmp_path, capsys, monkeypatch, kind):
    """data.archive naming /dev/zero or a FIFO hung `check` and `queue` (the sha256 was
    read without a bound)."""
    monkeypatch.chdir(ROOT)
    archive = _special(tmp_path, kind)
    cfg = tmp_path / "c.yaml"
    data = {"source": "archive", "archive": str(archive), "archive_sha256": None}
    cfg.write_text(yaml.safe_dump({**PLAIN, "data": data}))
    for argv in (["check", str(cfg)], ["queue", "--configfile", str(cfg)]):
        code, err = cli_lines(capsys, *argv)
        assert code == 2 and len(err) == 1, err
        assert f"data.archive = '{archive}' is not a regular file" in err[0]
    # and where a plan hashes it (data_identity): the hash refuses it at once
    with within(), pytest.raises(UserError, match=f"data archive {archive} is not a regular"):
        files.sha256_regular(archive, "data archive")


def test_data_folder_root_is_refused_at_once(tmp_path, capsys, monkeypatch):
    """data.folder: / walked the whole file system."""
    monkeypatch.chdir(ROOT)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({**PLAIN, "data": {"source": "folder", "folder": "/"}}))
    t0 = time.perf_counter()
    code, err = cli_lines(capsys, "check", str(cfg))
    assert code == 2 and err == [
        "error: data folder / is a system folder (/), not a data folder; refused"
    ]
    assert time.perf_counter() - t0 < 5


def test_a_data_folder_too_deep_or_too_large_is_refused(tmp_path):
    deep = tmp_path / "d"
    (deep / "a" / "b" / "c").mkdir(parents=True)
    (deep / "a" / "b" / "c" / "x.png").write_bytes(b"x")
    with pytest.raises(UserError, match="more than 2 levels deep"):
        files.walk_files(deep, "data folder", max_depth=2)
    with pytest.raises(UserError, match="holds more than 0 files"):
        files.walk_files(deep, "data folder", max_files=0)
    assert files.walk_files(deep, "data folder") == [("a/b/c/x.png", 1)]


OLD_RUN = "results/runs/softmax/lr0.01/cpu/seed0/deadbeef/metrics.json"


@pytest.mark.integration
@pytest.mark.parametrize(
    "config, targets, message",
    [
        (
            {"data": {"source": "archive", "archive": "/dev/zero", "archive_sha256": None}},
            [],
            "error: config key data.archive = '/dev/zero' is not a regular file",
        ),
        (
            {"variants": [{"name": "same", "reason": "r", "train": {"epochs": 150}}]},
            [],
            "error: variant 'same' has the same settings as 'paper'",
        ),
        ({}, [OLD_RUN], "error: run folder hash deadbeef matches no variant"),
    ],
    ids=["dev-zero-archive", "variant-identical-to-reference", "old-run-requested"],
)
def test_snakemake_planning_errors_are_one_line(tmp_path, config, targets, message):
    """A UserError raised while Snakemake plans (at the top of common.smk, or in an input
    function) reached the user with stack lines from common.smk and grid.py (and
    /dev/zero as the archive hung `snakemake -n`)."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({**PLAIN, **config}))
    cmd = [sys.executable, "-m", "snakemake", "-n", "--cores", "1", "--configfile", str(cfg)]
    cmd += ["--directory", str(tmp_path), "--snakefile", str(ROOT / "Snakefile"), *targets]
    shutil.copytree(ROOT / "config", tmp_path / "config")
    res = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    out = (res.stdout + res.stderr).strip().splitlines()
    assert res.returncode != 0
    assert out[-1].startswith(message), out[-8:]
    assert not any("Traceback" in line or ".smk" in line for line in out), out


# ---- misleading lines -----------------------------------------------------------------


@pytest.mark.parametrize("path", ["/dev/zero", "/tmp"])
def test_a_config_that_is_a_device_is_not_called_missing(capsys, monkeypatch, path):
    monkeypatch.chdir(ROOT)
    code, err = cli_lines(capsys, "check", path)
    assert code == 2 and len(err) == 1
    assert err[0].startswith("error: ") and f"config file {path} is not a regular file" in err[0]


def test_a_path_that_cannot_be_read_is_named_as_a_read(tmp_path, capsys, monkeypatch):
    """A read that failed was reported as "cannot write /proc/1/cwd"."""
    monkeypatch.chdir(ROOT)
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    for argv, start in (
        (["queue", "--recorded", str(loop)], f"error: --recorded {loop} cannot be read"),
        (["check", str(loop)], f"error: {loop}: config file {loop} cannot be read"),
    ):
        code, err = cli_lines(capsys, *argv)
        assert code == 2 and len(err) == 1 and err[0].startswith(start), err
        assert "cannot write" not in err[0]


@pytest.mark.parametrize(
    "argv",
    [
        ["status", "--watch", "--interval", "nan"],
        ["status", "--watch", "--interval", "inf"],
        ["status", "--interval", "-1"],
        ["train", "--cache", "c", "--out", "o", "--threads", "0"],
        ["device-run", "--out", "o", "--work", "w", "--budget-s", "inf"],
        ["device-run", "--out", "o", "--work", "w", "--subset", "1"],
    ],
    ids=lambda a: " ".join(a[-2:]),
)
def test_every_numeric_option_is_finite_and_in_range(capsys, argv):
    code, err = cli_lines(capsys, *argv)
    assert code == 2 and len(err) == 1 and err[0].startswith("error: python -m repro"), err
    assert "not allowed" in err[0] or "is not" in err[0]


def test_a_300_character_label_is_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match=r"^label 'aaa.*' is not allowed; use 1-100"):
        recording.record(tmp_path / "none.tar.gz", tmp_path / "recorded", "a" * 300)


@pytest.fixture
def study(tmp_path, monkeypatch):
    (tmp_path / "config").mkdir()
    shutil.copy(ROOT / "config" / "config.yaml", tmp_path / "config" / "config.yaml")
    (tmp_path / "s.yaml").write_text(yaml.safe_dump({**PLAIN, "train": {"epochs": 1}}))
    monkeypatch.chdir(tmp_path)
    cfg = status.load_config([Path("s.yaml")])
    return cfg, status.planned_runs(cfg, Path("."))


CALIBRATION = {"step_s": 0.02, "steps": 10, "batch": 32, "device": "cpu", "threads": 2}
CALIBRATION |= {"device_name": "AMD EPYC", "startup_s": 3.0, "measured": "2026-12-06 10:00"}


@pytest.mark.parametrize(
    "change, key",
    [
        ({"step_s": math.inf}, "step_s"),
        ({"step_s": 1e-12}, "step_s"),
        ({"startup_s": -1e9}, "startup_s"),
        ({"step_s": "fast"}, "step_s"),
        ({"threads": None}, "threads"),
    ],
)
def test_a_calibration_cache_out_of_range_is_one_line(study, change, key):
    """Infinity, 1e-12 or -1e9 gave estimates of 'about inf h', 'about 1 s' or 'about
    -999999998 s'; a missing key or text where a number belongs was a traceback."""
    cfg, runs = study
    path = Path(estimate.CACHE_DIR) / f"{estimate.calibration_key(cfg, 'cpu')}.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(CALIBRATION))
    line = estimate.device_line(cfg, "cpu", 10, 1, Path("."), True, False)
    assert "0.02 s per step" in line and "about 1 s" not in line
    rec = {k: v for k, v in {**CALIBRATION, **change}.items() if v is not None}
    path.write_text(json.dumps(rec))
    with pytest.raises(UserError, match=rf"calibration cache {path}: {key} = .* is not a"):
        estimate.device_line(cfg, "cpu", 10, 1, Path("."), True, False)


def test_a_progress_file_past_its_end_gives_no_negative_eta(study):
    """A progress file saying epoch 500 of 1 gave an ETA of -1:35:03."""
    cfg, runs = study
    path = Path(progress_mod.PROGRESS.format(**runs[0]))
    progress_mod.ProgressFile(path, epochs=1).update(epoch=500, seconds_per_epoch=12.0)
    row = status.run_status(Path("."), runs[0], 1, time.time())
    assert row.eta_s in (None, 0.0) or row.eta_s >= 0
    assert row.epoch <= 1
    assert status.total([row]).eta_s in (None, 0.0)
    # a time no epoch takes: no progress file, not an overflow while formatting the ETA
    progress_mod.ProgressFile(path, epochs=1).update(epoch=0, seconds_per_epoch=1e308)
    row = status.run_status(Path("."), runs[0], 1, time.time())
    assert row.seconds_per_epoch is None and status.cells(row)
    # a process number beyond any system's (found by the property test below)
    progress_mod.ProgressFile(path, epochs=1).update(epoch=0, seconds_per_epoch=12.0, pid=2**31)
    assert status.run_status(Path("."), runs[0], 1, time.time()).seconds_per_epoch is None


def test_the_same_tarball_added_twice_says_so(tmp_path, monkeypatch):
    """Adding a tarball a second time named the settings as the cause."""
    monkeypatch.chdir(tmp_path)
    tb = _device_tarball(tmp_path / "d.tar.gz")
    folder = recording.record(tb, tmp_path / "recorded", "x")
    with pytest.raises(UserError, match="already holds all 1 complete runs of .* added before"):
        recording.record(tb, tmp_path / "recorded", "x", add=True)
    assert folder.is_dir()


# ---- provenance.json is checked data -----------------------------------------------------


def _recording_copy(tmp_path: Path) -> Path:
    copy_ = tmp_path / "recorded" / "r"
    shutil.copytree(RECORDING, copy_)
    return copy_


def _forge(folder: Path, change) -> None:
    """Edit provenance.json as a forger would: sealed again, digest and all."""
    prov = json.loads((folder / "provenance.json").read_text())
    change(prov)
    (folder / "provenance.json").write_text(json.dumps(recording.sealed(folder, prov)))


@pytest.mark.parametrize(
    "change, key",
    [
        (lambda p: p.update(runs=[1, 2]), "runs[0] = 1"),
        (lambda p: p.update(sessions="one"), "sessions = 'one'"),
        (lambda p: p["runs"][0].update(session=1.5), "runs[0].session = 1.5"),
        (lambda p: p["runs"][0].update(wall_seconds=float("nan")), "runs[0].wall_seconds"),
    ],
    ids=["runs-of-integers", "sessions-a-string", "session-not-integer", "nan"],
)
def test_malformed_provenance_is_one_line_everywhere(tmp_path, monkeypatch, change, key):
    """Malformed provenance fields crashed the report and `record --add`."""
    folder = _recording_copy(tmp_path)
    _forge(folder, change)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match=re.escape(f"provenance.json: key {key}")):
        recording.record(tmp_path / "none.tar.gz", Path("recorded"), "r", add=True)
    with pytest.raises(UserError, match=re.escape(f"provenance.json: key {key}")):
        recorded.read_provenance(folder)
    # the report stages read the recording's provenance as copied into results/
    prov = json.loads((folder / "provenance.json").read_text())
    copied = tmp_path / "copied.json"
    copied.write_text(json.dumps(prov))
    from repro.report import provenance

    with pytest.raises(UserError, match=re.escape(f"recorded provenance {copied}: key {key}")):
        provenance.collect(copied, [], [], None, tmp_path, recorded=copied)


def test_an_edited_provenance_is_found_by_its_digest(tmp_path):
    folder = _recording_copy(tmp_path)
    text = (folder / "provenance.json").read_text()
    (folder / "provenance.json").write_text(text.replace("NVIDIA H100 80GB HBM3", "NVIDIA B200"))
    with pytest.raises(UserError, match="provenance.json was edited after recording"):
        recorded.check_manifest(folder, recorded.read_provenance(folder))


# ---- property tests: generated hostile files for every reader ------------------------------

LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from([0, 1, -1, 1e-12, 1e30, 2**64, "", "0.01", "\x1b[2J", "../x", "a" * 300])
    | st.text(max_size=12)
)
VALUES = st.recursive(
    LEAVES,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)


def _paths(value, prefix=()):
    """Every path to a value inside nested dicts and lists."""
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, (*prefix, i))


def _mutated(draw, value, edits: int = 2):
    """``value`` with up to ``edits`` places replaced by hostile values or removed."""
    value = copy.deepcopy(value)
    for _ in range(draw(st.integers(1, edits))):
        paths = [p for p in _paths(value) if p]
        if not paths:
            return draw(VALUES)
        path = draw(st.sampled_from(paths))
        parent = value
        for part in path[:-1]:
            parent = parent[part]
        if draw(st.booleans()) and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(VALUES)
    return value


@st.composite
def mutations(draw, base):
    return _mutated(draw, base)


CONFIG_KEYS = [
    ("learning_rates",),
    ("seeds",),
    ("heads",),
    ("devices",),
    ("train", "epochs"),
    ("train", "batch_size"),
    ("train", "precision"),
    ("model", "widths"),
    ("model", "kernel_sizes"),
    ("model", "dropout"),
    ("data", "subset", "train_per_class"),
    ("report", "confidence"),
    ("paper", "test_accuracy"),
    ("variants",),
    ("variants", 0, "train"),
    ("variants", 0, "name"),
    ("variants", 0, "learning_rates"),
]


@st.composite
def configs(draw):
    cfg = copy.deepcopy({**PLAIN, "variants": [{"name": "v", "reason": "r", "seeds": [1]}]})
    for path in draw(st.lists(st.sampled_from(CONFIG_KEYS), min_size=1, max_size=3)):
        node = cfg
        for part in path[:-1]:
            if isinstance(part, int):
                node = node[part] if isinstance(node, list) and node else {}
            else:
                node = node.setdefault(part, {}) if isinstance(node, dict) else {}
        if isinstance(node, dict):
            node[path[-1]] = draw(VALUES)
    return cfg


@settings(FEW, max_examples=15)
@given(cfg=configs(), raw=st.booleans(), junk=st.text(max_size=30))
def test_any_config_or_variant_is_planned_or_refused_in_one_line(tmp_path_factory, cfg, raw, junk):
    folder = tmp_path_factory.mktemp("cfg")
    path = folder / "c.yaml"
    try:
        text = junk if raw else yaml.safe_dump(cfg)
    except yaml.YAMLError:
        text = junk
    path.write_text(text)
    here = os.getcwd()
    os.chdir(ROOT)
    try:
        loaded = one_line(config_mod.load_study, [path])
        if loaded is not None:
            one_line(grid.runs, loaded)
    finally:
        os.chdir(here)


@pytest.fixture(scope="module")
def queued(tmp_path_factory) -> dict:
    from repro.plan import queue as queue_mod

    folder = tmp_path_factory.mktemp("q")
    # the queue trains from the offline archive, as a queue that travels with it does:
    # the device side hashes each entry's description on the archive it carries
    cfg = {**PLAIN, "data": {"source": "archive"}, "learning_rates": [0.01]}
    (folder / "s.yaml").write_text(yaml.safe_dump(cfg))
    here = os.getcwd()
    os.chdir(ROOT)
    try:
        q = queue_mod.queue([folder / "s.yaml"], folder, None)
    finally:
        os.chdir(here)
    from repro.engine.device_queue import read_queue

    (folder / "queue.json").write_text(json.dumps(q))
    assert len(read_queue(folder / "queue.json", "cpu", q["runs"][0]["data"], ARCHIVE)) == 1
    return q


@FEW
@given(data=st.data())
def test_any_queue_is_read_or_refused_in_one_line(tmp_path_factory, queued, data):
    from repro.engine.device_queue import read_queue

    q = data.draw(mutations(queued))
    path = tmp_path_factory.mktemp("q") / "queue.json"
    path.write_text(json.dumps(q))
    one_line(read_queue, path, "cpu", queued["runs"][0]["data"], ARCHIVE)


@FEW
@given(data=st.data(), as_file=st.booleans())
def test_any_run_description_is_read_or_refused_in_one_line(
    tmp_path_factory, queued, data, as_file
):
    desc = data.draw(mutations(queued["runs"][0]["description"]))
    text = json.dumps(desc)
    if as_file:
        path = tmp_path_factory.mktemp("d") / "run.json"
        path.write_text(text)
        text = str(path)

    def read():
        return checked_any_size(read_description(text))

    one_line(read)


RUN_FILES = {name: (RECORDING / RUN / name).read_bytes() for name in recorded.RUN_FILES}


@st.composite
def run_files(draw):
    """One recorded run with a metrics.json value or one CSV cell made hostile."""
    out = dict(RUN_FILES)
    name = draw(st.sampled_from(sorted(out)))
    if name == "metrics.json":
        out[name] = json.dumps(_mutated(draw, json.loads(out[name]), 1)).encode()
        return out
    lines = out[name].decode().splitlines()
    row = draw(st.integers(0, min(len(lines) - 1, 5)))
    cells = lines[row].split(",")
    col = draw(st.integers(0, len(cells) - 1))
    cells[col] = draw(
        st.sampled_from(["nan", "inf", "-1", "1e308", "", "x", "0.5", '"', "\x00", "9" * 40])
    )
    lines[row] = ",".join(cells)
    out[name] = ("\n".join(lines) + "\n").encode()
    return out


@settings(FEW, max_examples=6)  # a full recorded run takes 0.6 s to check
@given(found=run_files())
def test_any_recorded_run_file_is_checked_or_refused_in_one_line(tmp_path_factory, found):
    folder = tmp_path_factory.mktemp("rec")
    (folder / RUN).mkdir(parents=True)
    for name, data in found.items():
        (folder / RUN / name).write_bytes(data)

    def check():
        check_run(RUN, recorded._metrics(folder, f"{RUN}/metrics.json"), found)

    one_line(check)


PROVENANCE = json.loads((RECORDING / "provenance.json").read_text())


@FEW
@given(data=st.data())
def test_any_provenance_is_refused_or_safe_for_every_reader(data):
    """What check_provenance lets through, the report's and record's readers handle."""
    from repro.report import pdf

    prov = data.draw(mutations(PROVENANCE))
    if one_line(recorded.check_provenance, prov, "provenance.json") is None:
        return
    with within():
        pdf.recorded({"recorded": prov})
        recording._merged(prov, {**prov, "runs": prov.get("runs") or []})
        recorded.data_meta(prov, [])


MEMBER_NAMES = [
    "summary.json",
    "plan.json",
    "environment.json",
    f"{RUN}/metrics.json",
    f"{RUN}/epochs.csv",
    "logs/a.log",
    "data/cifar10.json",
    "../escape.json",
    "/abs/summary.json",
    "results/timing/cpu/timing.json",
]


def _device_files() -> dict[str, bytes]:
    summary = {"runs": [{"lr": "0.01", "complete": True, "epochs_done": 1, "folder": RUN}]}
    return {
        "summary.json": json.dumps(summary).encode(),
        "environment.json": b'{"commit": "abc", "gpu": "NVIDIA H100"}',
        "plan.json": b'{"variant": "graphs-bf16", "config": {}}',
        f"{RUN}/metrics.json": b"{}",
    }


def _device_tarball(path: Path, extra=(), base=None) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in (base or _device_files()).items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, kind, data in extra:
            info = tarfile.TarInfo(name)
            info.type = kind
            if kind == tarfile.REGTYPE:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                info.linkname = data.decode(errors="replace")
                tar.addfile(info)
    return path


MEMBERS = st.lists(
    st.tuples(
        st.sampled_from(MEMBER_NAMES),
        st.sampled_from([tarfile.REGTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.FIFOTYPE]),
        st.sampled_from([b"{}", b"[1]", b"x", b'{"runs": 3}', b"/etc/passwd", b"../../outside"]),
    ),
    max_size=3,
)


@FEW
@given(extra=MEMBERS, data=st.data())
def test_any_device_tarball_is_recorded_or_refused_without_writing_outside(
    tmp_path_factory, extra, data
):
    base = _device_files()
    name = data.draw(st.sampled_from(["summary.json", "plan.json", "environment.json"]))
    base[name] = json.dumps(data.draw(mutations(json.loads(base[name])))).encode()
    top = tmp_path_factory.mktemp("tb")
    outside, project = top / "outside", top / "project"
    outside.mkdir()
    project.mkdir()
    tb = _device_tarball(top / "d.tar.gz", extra, base)
    here = os.getcwd()
    os.chdir(project)
    try:
        one_line(recording.record, tb, Path("recorded"), "x")
    finally:
        os.chdir(here)
    assert list(outside.iterdir()) == []
    assert sorted(p.name for p in top.iterdir()) == ["d.tar.gz", "outside", "project"]
    for p in project.rglob("*"):
        assert not p.is_symlink() and (p.is_dir() or p.is_file()), p


@FEW
@given(data=st.data())
def test_any_calibration_cache_gives_a_sane_estimate_or_one_line(study, data):
    cfg, runs = study
    rec = data.draw(mutations(CALIBRATION))
    path = Path(estimate.CACHE_DIR) / f"{estimate.calibration_key(cfg, 'cpu')}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rec))
    line = one_line(estimate.device_line, cfg, "cpu", 10, 1, Path("."), True, False)
    if line is not None:
        assert "inf" not in line and "nan" not in line and "about -" not in line, line


@FEW
@given(data=st.data())
def test_any_progress_file_gives_a_status_without_negative_times(study, data):
    cfg, runs = study
    rec = progress_mod.ProgressFile(None, 1).record | {"epoch": 1, "seconds_per_epoch": 3.0}
    path = Path(progress_mod.PROGRESS.format(**runs[0]))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data.draw(mutations(rec))))
    row = one_line(status.run_status, Path("."), runs[0], 1, time.time())
    assert row is not None, "a progress file is never an error: it is read or ignored"
    assert 0 <= row.epoch <= 1 and (row.eta_s is None or row.eta_s >= 0)
    total = status.total([row])
    assert total.eta_s is None or total.eta_s >= 0
    status.cells(row)  # formatted for the table without a crash
