"""A run is one run: a recorded run copied under another seed (its seed and fingerprint
rewritten, its histories not) is refused naming both folders, by the recorded runs'
checks, by `record --add` and by the study; the settings a run folder stands for agree
between its folder, metrics.json and its config (precision included); a NaN accuracy or
a negative or NaN time is refused where it is read. On copies of the committed H100
recording, forged as a forger would, the manifest sealed again."""

from __future__ import annotations

import io
import json
import math
import shutil
import tarfile
from pathlib import Path

import pytest
from test_runfiles import ROOT, SHIPPED, check, copy, plan, run_files  # noqa: F401

from repro.errors import UserError
from repro.plan import recorded, recording, runfiles
from repro.plan.settings import RunConfig

FP32 = "results/runs/softmax/lr0.01/cuda/seed0/630e8d25"
COPY = FP32.replace("seed0", "seed1")  # the fp32 cause plans seeds 0, 1 and 2


def forge_copy(folder: Path, src: str = FP32, dest: str = COPY, listed: bool = True) -> None:
    """``src`` copied to ``dest`` under another seed: metrics.json's seed, config seed and
    fingerprint rewritten (the folder's hash is the same: it leaves the seed out), the
    provenance's runs list it (``listed``), the manifest sealed again."""
    shutil.copytree(folder / src, folder / dest)
    seed = int(dest.split("/seed")[1].split("/")[0])
    m = json.loads((folder / dest / "metrics.json").read_text())
    m["seed"] = m["config"]["seed"] = seed
    m["fingerprint"] = RunConfig.from_dict(m["config"]).fingerprint()
    (folder / dest / "metrics.json").write_text(json.dumps(m))
    prov = json.loads((folder / "provenance.json").read_text())
    entry = next(r for r in prov["runs"] if r["folder"] == src)
    if listed:
        prov["runs"].append({**entry, "folder": dest, "fingerprint": m["fingerprint"]})
    (folder / "provenance.json").write_text(json.dumps(prov))
    recording.add_manifest(folder)


def test_a_run_copied_under_another_seed_is_refused_naming_both(copy):  # noqa: F811
    """Accepted before as a second fp32 run (the cause's interval went from +-0.96 to
    +-5.4 points on page 1)."""
    forge_copy(copy)
    with pytest.raises(UserError) as e:
        plan(copy)
    assert "softmax/lr0.01/cuda/seed0/630e8d25 and softmax/lr0.01/cuda/seed1/630e8d25 are " in (
        str(e.value)
    )
    assert "same run: their epochs.csv, predictions.csv, steps.csv hold" in str(e.value)


def test_a_copy_the_provenance_does_not_list_is_no_run_of_the_recording(copy):  # noqa: F811
    forge_copy(copy, listed=False)
    with pytest.raises(UserError, match=f"provenance.json lists {COPY} with fingerprint None"):
        plan(copy)


def test_respelt_numbers_are_the_same_run():
    """The identity compares values, not text: 0.860700 written 0.8607 is the same run;
    the other runs of the recording are all distinct."""
    _, data = run_files()
    same = dict(data)
    runfiles_text = data["epochs.csv"].decode().replace("0.860700", "0.8607")
    same["epochs.csv"] = runfiles_text.encode()
    assert same["epochs.csv"] != data["epochs.csv"]
    assert runfiles.identity(same)["epochs.csv"] == runfiles.identity(data)["epochs.csv"]
    shipped = sorted(p.parent for p in SHIPPED.glob("results/runs/*/*/*/*/*/metrics.json"))
    idents = [(str(p), runfiles.identity({n: (p / n).read_bytes() for n in recorded.RUN_FILES}))
              for p in shipped]  # fmt: skip
    assert all(len(i) == 3 for _, i in idents)
    runfiles.check_distinct(idents)  # four distinct trainings


def test_metrics_in_another_precision_than_its_folder_is_refused():
    """A bf16 metrics.json in the fp32 run folder passed, listed as bf16 and counted as
    fp32."""
    m, data = run_files(FP32)
    m["precision"] = "bf16"
    data["metrics.json"] = json.dumps(m).encode()
    with pytest.raises(
        UserError, match="metrics.json precision says bf16, but its config.precision says fp32"
    ):
        check(m, data, FP32)
    del m["precision"]
    with pytest.raises(UserError, match="metrics.json precision says None"):
        check(m, data, FP32)


def test_a_nan_accuracy_is_refused(copy):  # noqa: F811
    """NaN compares false with every bound: a NaN final accuracy passed the checks (the
    manifest rewritten) and crashed the tables stage."""
    m, data = run_files()
    for key in ("final_test_acc", "best_test_acc", "final_train_acc"):
        with pytest.raises(UserError, match=f"has {key} nan"):
            check({**m, key: math.nan}, data)
    path = copy / "results/runs/softmax/lr0.01/cuda/seed0/c8c533c3/metrics.json"
    path.write_text(path.read_text().replace('"final_test_acc": 0.8607', '"final_test_acc": NaN'))
    recording.add_manifest(copy)
    with pytest.raises(UserError, match="final_test_acc nan"):
        plan(copy)


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("seconds_per_epoch", -25.0, "seconds_per_epoch -25.0"),
        ("seconds_total", math.nan, "seconds_total nan"),
        ("seconds_per_epoch_after_first", math.inf, "seconds_per_epoch_after_first inf"),
        ("train_images_per_s", "fast", "train_images_per_s 'fast'"),
        ("n_train", 0, "n_train 0"),
        ("n_train", 10**30, "n_train 1000000000000000000000000000000"),
    ],
)
def test_a_forged_timing_is_refused_where_it_is_read(copy, tmp_path, key, value, message):  # noqa: F811
    """A negative time reached the PDF as "-25.0", NaN as "nan min"."""
    path = copy / "results/timing/cuda/timing.json"
    t = json.loads(path.read_text())
    path.write_text(json.dumps({**t, key: value}))
    recording.add_manifest(copy)
    with pytest.raises(UserError, match=f"timing.json has {message} \\(allowed"):
        plan(copy)
    with pytest.raises(UserError, match=message):
        recorded.copy_timing(copy, "cuda", tmp_path / "timing.json")
    assert not (tmp_path / "timing.json").exists()
    from repro.report.study import _timing

    with pytest.raises(UserError, match=f"timing JSON .* has {message}"):
        _timing(path)


def _tarball(path: Path, runs: dict[str, Path]) -> Path:
    """A device tarball holding the files of ``runs`` (folder -> recorded run folder)."""
    summary = {"runs": [{"lr": "0.01", "complete": True, "folder": f} for f in runs]}
    members = {
        "summary.json": json.dumps(summary).encode(),
        "environment.json": b'{"commit": "c"}',
        "plan.json": json.dumps({"queue": True, "config": {}}).encode(),
    }
    for folder, src in runs.items():
        members |= {f"{folder}/{n}": (src / n).read_bytes() for n in recorded.RUN_FILES}
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_record_add_refuses_a_run_it_holds_under_another_seed(tmp_path, monkeypatch):
    """The same tarball added twice, or its run under another seed: one line naming the
    run the recording holds (the settings were named as the cause before)."""
    monkeypatch.chdir(tmp_path)
    first = _tarball(tmp_path / "1.tar.gz", {FP32: SHIPPED / FP32})
    folder = recording.record(first, Path("rec"), "h")
    with pytest.raises(UserError, match="this tarball was added before; nothing was added"):
        recording.record(first, Path("rec"), "h", add=True)
    copied = _tarball(tmp_path / "2.tar.gz", {COPY: SHIPPED / FP32})
    with pytest.raises(UserError, match=f"rec/h/{FP32} and .* are the same run"):
        recording.record(copied, Path("rec"), "h", add=True)
    assert not (folder / COPY).exists()


def test_the_study_refuses_two_folders_of_one_run(tiny_runs, tmp_path):
    """Two run folders with one run's predictions (a copy under another seed) are not
    two runs of the study."""
    from repro.report.study import load_study

    runs = [Path(p) for p in tiny_runs["runs"]]
    copy_dir = tmp_path / "results/runs/softmax/lr0.01/cpu/seed7/abcdef12"
    shutil.copytree(runs[0].parent, copy_dir)
    m = json.loads((copy_dir / "metrics.json").read_text())
    (copy_dir / "metrics.json").write_text(json.dumps({**m, "seed": 7}))
    with pytest.raises(UserError, match=f"{runs[0].parent} and {copy_dir} are the same run"):
        load_study(tiny_runs["config_path"], [*runs, copy_dir / "metrics.json"])


def test_runs_sharing_one_history_file_but_not_the_others_are_two_runs():
    """Two one-step runs of one seed at two rates share their epochs.csv (the loss is
    taken before the update) but not their steps.csv (the rate): two runs. A copy, with
    every file the same, is one."""
    from repro.plan.runfiles import check_distinct

    short_a = {"epochs.csv": "e", "steps.csv": "lr 0.01", "predictions.csv": "p"}
    short_b = {"epochs.csv": "e", "steps.csv": "lr 0.001", "predictions.csv": "p"}
    check_distinct([("a", short_a), ("b", short_b)])
    with pytest.raises(UserError, match="a and copy are the same run"):
        check_distinct([("a", short_a), ("b", short_b), ("copy", dict(short_a))])
