"""`record`: a device tarball becomes recorded/<label>/; hostile tarballs are refused
with one line, and nothing outside the known layout is written."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest

from repro.errors import UserError
from repro.plan import recorded, recording
from repro.plan.recording import record

RUN = "results/runs/softmax/lr0.01/cuda/seed0/c8c533c3"


@pytest.fixture(autouse=True)
def in_project(tmp_path, monkeypatch):
    """`record` writes inside the project it runs in: here, the test's folder."""
    monkeypatch.chdir(tmp_path)


def _tar(path: Path, members: dict[str, bytes], links: dict[str, str] | None = None) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tar.addfile(info)
    return path


def _device_files(complete: bool = True) -> dict[str, bytes]:
    summary = {
        "runs": [
            {"lr": "0.01", "complete": complete, "epochs_done": 150, "folder": RUN},
        ],
        "calibration": {"graphs-bf16": {"img_s": 30000.0}},
    }
    env = {"commit": "old", "gpu": "NVIDIA H100", "argv": ["m", "device-run", "--out", "/o"]}
    plan = {"variant": "graphs-bf16", "config": {"data": {"archive": "/gpu/path.tar.gz"}}}
    return {
        "summary.json": json.dumps(summary).encode(),
        "environment.json": json.dumps(env).encode(),
        "plan.json": json.dumps(plan).encode(),
        f"{RUN}/epochs.csv": b"epoch,train_loss\n1,2.0\n",
        f"{RUN}/metrics.json": b"{}",
        "logs/train-lr0.01.log": b"epoch 1/150\n",
    }


def test_a_device_tarball_becomes_a_recorded_folder(tmp_path):
    # a re-encoded variant's cache JSON (its added distortion) comes back; its data not
    jpeg = b'{"jpeg": {"quality": 50}}'
    extra = {"checkpoints/x.pt": b"pickle", "data/cifar10-1.json": jpeg, "data/cifar10-1.npz": b"x"}
    tb = _tar(tmp_path / "d.tar.gz", {**_device_files(), **extra})
    folder = record(tb, tmp_path / "recorded", "h100-test", commit="abc123")
    assert (folder / RUN / "epochs.csv").read_bytes() == b"epoch,train_loss\n1,2.0\n"
    assert not (folder / "checkpoints").exists(), "members outside the layout are skipped"
    assert (folder / "data" / "cifar10-1.json").read_bytes() == jpeg
    assert not (folder / "data" / "cifar10-1.npz").exists()
    prov = json.loads((folder / "provenance.json").read_text())
    assert prov["commit"] == "abc123" and prov["commit_reported_by_device"] == "old"
    assert prov["gpu"] == "NVIDIA H100" and prov["folder"] == "recorded/h100-test"
    assert prov["config"]["data"]["archive"] == recording.DEFAULT_ARCHIVE
    with pytest.raises(UserError, match="exists"):
        record(tb, tmp_path / "recorded", "h100-test")


def test_a_stopped_runs_files_are_not_recorded(tmp_path):
    tb = _tar(tmp_path / "d.tar.gz", _device_files(complete=False))
    folder = record(tb, tmp_path / "recorded", "x")
    assert not (folder / RUN).exists()


@pytest.mark.parametrize(
    "name",
    ["../escape/summary.json", "/abs/summary.json", "results/runs/../../../x/epochs.csv"],
)
def test_members_outside_the_layout_are_never_written(tmp_path, name):
    tb = _tar(tmp_path / "d.tar.gz", {**_device_files(), name: b"evil"})
    record(tb, tmp_path / "rec", "x")
    written = {p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file()}
    assert not any("escape" in str(p) or p.name == "x" for p in written)
    assert not Path("/abs/summary.json").exists()


def test_a_link_with_a_known_name_is_refused(tmp_path):
    files = _device_files()
    del files[f"{RUN}/epochs.csv"]
    tb = _tar(tmp_path / "d.tar.gz", files, links={f"{RUN}/epochs.csv": "/etc/passwd"})
    with pytest.raises(UserError, match="not a regular file"):
        record(tb, tmp_path / "rec", "x")


def test_an_oversized_member_is_refused_before_reading(tmp_path, monkeypatch):
    monkeypatch.setattr(recording, "MAX_BYTES", 10)
    tb = _tar(tmp_path / "d.tar.gz", _device_files())
    with pytest.raises(UserError, match="more than"):
        record(tb, tmp_path / "rec", "x")


def test_a_broken_or_incomplete_tarball_is_one_line(tmp_path):
    broken = tmp_path / "b.tar.gz"
    broken.write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(UserError, match="cannot read"):
        record(broken, tmp_path / "rec", "x")
    files = _device_files()
    del files["summary.json"]
    with pytest.raises(UserError, match="no summary.json"):
        record(_tar(tmp_path / "d.tar.gz", files), tmp_path / "rec", "y")
    with pytest.raises(UserError, match="label"):
        record(_tar(tmp_path / "e.tar.gz", _device_files()), tmp_path / "rec", "../up")


def _session(lrs_done: list[str], lrs_stopped: list[str], config: dict) -> dict[str, bytes]:
    runs = [
        {"lr": lr, "complete": lr in lrs_done, "folder": RUN.replace("lr0.01", f"lr{lr}")}
        for lr in lrs_done + lrs_stopped
    ]
    files = _device_files()
    files["summary.json"] = json.dumps({"runs": runs}).encode()
    files["plan.json"] = json.dumps({"variant": "graphs-bf16", "config": config}).encode()
    del files[f"{RUN}/epochs.csv"], files[f"{RUN}/metrics.json"]
    for lr in lrs_done:
        files[f"{RUN.replace('lr0.01', f'lr{lr}')}/epochs.csv"] = f"lr {lr}\n".encode()
    return files


def test_a_later_session_finishes_the_runs_of_a_recording(tmp_path):
    cfg = {"train": {"precision": "bf16"}}
    first = _tar(tmp_path / "1.tar.gz", _session(["0.01"], ["0.005"], cfg))
    second = _tar(tmp_path / "2.tar.gz", _session(["0.005"], [], cfg))
    folder = record(first, tmp_path / "rec", "h100", commit="c1")
    record(second, tmp_path / "rec", "h100", commit="c2", add=True)
    prov = json.loads((folder / "provenance.json").read_text())
    assert [(r["lr"], r["complete"]) for r in prov["runs"]] == [("0.01", True), ("0.005", True)]
    assert [s["commit"] for s in prov["sessions"]] == ["c1", "c2"]
    assert prov["runs"][1]["session"] == 2
    run = RUN.replace("lr0.01", "lr0.005")
    assert (folder / run / "epochs.csv").read_text() == "lr 0.005\n"
    assert (folder / "sessions/2/summary.json").exists(), "the session's own files kept apart"
    # the same run twice, or other settings, add nothing
    with pytest.raises(UserError, match="already holds"):
        record(second, tmp_path / "rec", "h100", add=True)
    other = _tar(tmp_path / "3.tar.gz", _session(["0.001"], [], {"train": {"precision": "fp32"}}))
    with pytest.raises(UserError, match="other settings"):
        record(other, tmp_path / "rec", "h100", add=True)
    rehashed = _session(["0.001"], [], cfg)
    rehashed = {k.replace("c8c533c3", "0123abcd"): v for k, v in rehashed.items()}
    rehashed["summary.json"] = rehashed["summary.json"].replace(b"c8c533c3", b"0123abcd")
    with pytest.raises(UserError, match="run hash"):
        record(_tar(tmp_path / "4.tar.gz", rehashed), tmp_path / "rec", "h100", add=True)
    assert not (folder / RUN.replace("lr0.01", "lr0.001")).exists()


def test_a_session_of_other_settings_joins_beside_under_its_own_hash(tmp_path):
    """A variant trained in a later session (fp32 beside the recording's bf16) joins the
    recording in its own folder when that folder carries its own config's settings hash;
    the earlier runs stay as they were and the provenance lists both sessions."""
    from repro.plan.recorded import recording_hashes

    first = _session(["0.01"], [], {"devices": ["cuda"], "train": {"precision": "bf16"}})
    folder = record(_tar(tmp_path / "1.tar.gz", first), tmp_path / "rec", "h100", commit="c1")
    before = (folder / RUN / "epochs.csv").read_bytes()
    fp32 = {"devices": ["cuda"], "train": {"precision": "fp32"}}
    (own,) = recording_hashes({"config": fp32})
    assert own != "c8c533c3"
    files = {
        k.replace("c8c533c3", own): v.replace(b"c8c533c3", own.encode())
        for k, v in _session(["0.01"], [], fp32).items()
    }
    record(_tar(tmp_path / "2.tar.gz", files), tmp_path / "rec", "h100", commit="c2", add=True)
    assert (folder / RUN.replace("c8c533c3", own) / "epochs.csv").read_text() == "lr 0.01\n"
    assert (folder / RUN / "epochs.csv").read_bytes() == before
    prov = json.loads((folder / "provenance.json").read_text())
    assert [s["commit"] for s in prov["sessions"]] == ["c1", "c2"]
    assert {Path(r["folder"]).name for r in prov["runs"]} == {"c8c533c3", own}


def test_a_newer_schemas_mode_key_does_not_split_a_recording(tmp_path):
    """Seen: the first session's config had no ``recorded`` key, the second's had it as
    null (the schema gained it in between); likewise ``estimate``, which shapes no run.
    The runs are the same settings."""
    first = _tar(tmp_path / "1.tar.gz", _session(["0.01"], ["0.005"], {"train": {"lr": 1}}))
    later = {"train": {"lr": 1}, "recorded": None, "estimate": {"calibrate": True}}
    second = _tar(tmp_path / "2.tar.gz", _session(["0.005"], [], later))
    folder = record(first, tmp_path / "rec", "h100")
    record(second, tmp_path / "rec", "h100", add=True)
    assert (folder / RUN.replace("lr0.01", "lr0.005") / "epochs.csv").exists()


def test_record_keeps_each_runs_code_and_refuses_to_relabel_it(tmp_path):
    code = {"commit": "0dedc33" + "0" * 33, "dirty": True, "code_sha256": "ab" * 32}
    files = {**_device_files(), f"{RUN}/metrics.json": json.dumps({"code": code}).encode()}
    tb = _tar(tmp_path / "d.tar.gz", files)
    folder = record(tb, tmp_path / "recorded", "kept")
    prov = json.loads((folder / "provenance.json").read_text())
    assert prov["runs"][0]["code"] == code, "copied as the training job took it, dirty flag too"
    with pytest.raises(UserError, match="would relabel the lr 0.01 run, trained at 0dedc33"):
        record(tb, tmp_path / "recorded", "relabelled", commit="0af01d2")
    # a run whose caller named the commit (its GPU machine's .git was older) may be
    # recorded under that name, and under no third one
    named = {**code, "named_commit": "0af01d2" + "1" * 33}
    files[f"{RUN}/metrics.json"] = json.dumps({"code": named}).encode()
    tb = _tar(tmp_path / "n.tar.gz", files)
    folder = record(tb, tmp_path / "recorded", "named", commit="0af01d2")
    assert json.loads((folder / "provenance.json").read_text())["runs"][0]["code"] == named
    with pytest.raises(UserError, match="would relabel the lr 0.01 run"):
        record(tb, tmp_path / "recorded", "third", commit="fffffff")


def test_record_writes_a_manifest_of_every_file(tmp_path):
    folder = record(_tar(tmp_path / "d.tar.gz", _device_files()), tmp_path / "rec", "x")
    prov = json.loads((folder / "provenance.json").read_text())
    manifest = prov["manifest"]
    written = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    assert sorted(manifest) == written
    # the provenance itself: by the digest of its content without the manifest
    own = manifest.pop("provenance.json")
    assert own == {"sha256": recorded.provenance_digest(prov)}
    for rel, entry in manifest.items():
        data = (folder / rel).read_bytes()
        assert entry == {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def test_a_symlinked_destination_is_refused(tmp_path):
    elsewhere = tmp_path.parent / f"{tmp_path.name}-elsewhere"
    elsewhere.mkdir()
    (tmp_path / "rec").symlink_to(elsewhere)
    tb = _tar(tmp_path / "d.tar.gz", _device_files())
    with pytest.raises(UserError, match="rec is a symbolic link; refused to write through it"):
        record(tb, tmp_path / "rec", "x")
    with pytest.raises(UserError, match="is outside the project"):
        record(tb, elsewhere, "x")
    assert list(elsewhere.iterdir()) == []


def test_add_refuses_a_recording_holding_a_link_or_an_edit(tmp_path):
    """Seen: `record --add` followed a link that a recorded folder already held and
    wrote outside the project."""
    cfg = {"train": {"precision": "bf16"}}
    folder = record(_tar(tmp_path / "1.tar.gz", _session(["0.01"], ["0.005"], cfg)), "rec", "h")
    second = _tar(tmp_path / "2.tar.gz", _session(["0.005"], [], cfg))
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    outside.mkdir()
    (folder / "results/runs/softmax/lr0.005").symlink_to(outside)
    with pytest.raises(UserError, match="lr0.005 is a symbolic link"):
        record(second, "rec", "h", add=True)
    assert list(outside.iterdir()) == []
    (folder / "results/runs/softmax/lr0.005").unlink()
    (folder / RUN / "epochs.csv").write_text("epoch\n")
    with pytest.raises(UserError, match="epochs.csv was edited after recording"):
        record(second, "rec", "h", add=True)


def test_a_duplicated_member_or_too_many_members_are_refused(tmp_path, monkeypatch):
    tb = tmp_path / "dup.tar.gz"
    with tarfile.open(tb, "w:gz") as tar:
        for data in (b"{}", b'{"runs": []}'):
            info = tarfile.TarInfo("summary.json")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    with pytest.raises(UserError, match="holds summary.json twice"):
        record(tb, tmp_path / "rec", "x")
    monkeypatch.setattr(recording, "MAX_MEMBERS", 3)
    with pytest.raises(UserError, match="more than 3 members"):
        record(_tar(tmp_path / "d.tar.gz", _device_files()), tmp_path / "rec", "y")
    monkeypatch.setattr(recording, "MAX_MEMBERS", 100)
    monkeypatch.setattr(recording, "MAX_TOTAL_BYTES", 30)
    with pytest.raises(UserError, match="add up to more than"):
        record(_tar(tmp_path / "d.tar.gz", _device_files()), tmp_path / "rec", "z")
    assert not (tmp_path / "rec").exists()


@pytest.mark.parametrize(
    "name, value, message",
    [
        ("summary.json", {"runs": "abc"}, "summary.json's runs are not a list of runs"),
        ("summary.json", {"runs": [1]}, "summary.json's runs are not a list of runs"),
        ("summary.json", {"runs": [{"complete": True}]}, "summary.json's runs are not a list"),
        ("summary.json", {"runs": [], "calibration_raw": 5}, "calibration_raw is not an object"),
        ("plan.json", {"config": [1]}, "plan.json's config is not a config"),
        ("plan.json", {"config": {"data": "x"}}, "plan.json's config is not a config"),
        # a forged distortion the report would fit the lossless accuracy from
        (
            "data/cifar10-1.json",
            {"jpeg": {"quality": 50, "added_mse_train": -60.0, "added_mse_test": 88.0}},
            "added_mse_train -60.0",
        ),  # fmt: skip
        (
            "data/cifar10-1.json",
            {"jpeg": {"quality": 50, "added_mse_train": 1e300, "added_mse_test": 88.0}},
            "is not an MSE in 0-65025",
        ),  # fmt: skip
        (
            "data/cifar10-1.json",
            {"jpeg": {"quality": True, "added_mse_train": 1, "added_mse_test": 1}},
            "quality True",
        ),  # fmt: skip
        ("data/cifar10-1.json", {"jpeg": "q50"}, "jpeg entry is not an object"),
    ],
)
def test_a_forged_summary_plan_or_distortion_is_one_line(tmp_path, name, value, message):
    """The parts of the tarball's JSON that record reads or the report computes with are
    of the kinds a device run writes (a forged one was an AttributeError's traceback) and
    the distortion figures are MSEs; nothing is written."""
    files = {**_device_files(), name: json.dumps(value).encode()}
    with pytest.raises(UserError, match=message):
        record(_tar(tmp_path / "d.tar.gz", files), tmp_path / "recorded", "x")
    assert not (tmp_path / "recorded").exists()
