"""Recorded runs: a recorded folder made from really trained tiny CPU runs, checked
against the config before any job, copied instead of trained, and named on page 1 of
the PDF. Bad recorded folders (other settings, missing runs, paths leaving the folder,
oversized files) stop with one line."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest
import yaml
from pypdf import PdfReader

from repro.engine import devices as engine_devices
from repro.errors import UserError
from repro.plan import config as config_mod
from repro.plan import grid, recorded, recording

ROOT = Path(__file__).resolve().parents[2]
LABEL = "cpu-test-2026-11-26"
GPU = "Recorder Test Device 7"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def base_config(tiny_runs) -> dict:
    """The tiny runs' config; its timing JSON was measured over train.epochs epochs."""
    cfg = json.loads(json.dumps(tiny_runs["config"]))
    timing = json.loads(tiny_runs["timing"][0].read_text())
    cfg["timing"]["epochs"] = timing["epochs"]
    return cfg


def make_recorded(tiny_runs, dest: Path) -> Path:
    """A recorded folder in the GPU script's format from the tiny runs (no weights)."""
    src = tiny_runs["root"] / "results"
    for metrics in tiny_runs["runs"]:
        run = metrics.parent
        out = dest / run.relative_to(tiny_runs["root"])
        out.mkdir(parents=True)
        for name in recorded.RUN_FILES:
            shutil.copy2(run / name, out / name)
    timing = dest / "results" / "timing" / "cpu"
    timing.mkdir(parents=True)
    shutil.copy2(src / "timing" / "cpu" / "timing.json", timing / "timing.json")
    runs = []
    for metrics in tiny_runs["runs"]:
        m = json.loads(metrics.read_text())
        runs.append(
            {
                "lr": grid.lr_tag(m["lr"]),
                "epochs_done": m["epochs"],
                "epochs": m["epochs"],
                "complete": True,
                "wall_seconds": m["train_seconds"],
                "fingerprint": m["fingerprint"],
                "folder": str(metrics.parent.relative_to(tiny_runs["root"])),
            }
        )
    prov = {
        "label": LABEL,
        "commit": COMMIT,
        "date": "2026-11-26T09:30:00Z",
        "gpu": GPU,
        "driver": "none",
        "torch": m["versions"]["torch"],
        "cuda": "none",
        "cudnn": "none",
        "python": m["versions"].get("python", "unknown"),
        "command": "pytest tests/plan/test_recorded.py",
        "host": "test-host",
        "data_sha256": json.loads(tiny_runs["data_meta"].read_text())["sha256"],
        "runs": runs,
        "calibration": {},
        "config": base_config(tiny_runs),
    }
    (dest / "provenance.json").write_text(json.dumps(prov, indent=2))
    return seal(dest)


def seal(folder: Path) -> Path:
    """Write the manifest as `record` does, over the files as they are now (a crafted
    file sealed like this reaches the schema's checks)."""
    prov = json.loads((folder / "provenance.json").read_text())
    (folder / "provenance.json").write_text(json.dumps(recording.sealed(folder, prov), indent=2))
    return folder


@pytest.fixture
def folder(tiny_runs, tmp_path) -> Path:
    return make_recorded(tiny_runs, tmp_path / "recorded" / LABEL)


def plan(cfg: dict):
    return recorded.plan(cfg, grid.recorded_expectations(cfg))


def with_recorded(tiny_runs, folder, **changes) -> dict:
    cfg = base_config(tiny_runs)
    cfg["recorded"] = str(folder)
    for key, value in changes.items():
        section, _, sub = key.partition("__")
        if sub:
            cfg[section][sub] = value
        else:
            cfg[section] = value
    return config_mod.validate(cfg)


def first_run(folder: Path) -> Path:
    return next((folder / "results" / "runs").rglob("metrics.json")).parent


# ---- the checks before any job -------------------------------------------------------


def test_plan_finds_every_run_and_the_timing(tiny_runs, folder):
    p = plan(with_recorded(tiny_runs, folder))
    assert len(p.runs) == 6 and p.timing_devices == ["cpu"]
    expected = {
        (r["head"], r["lr"], r["device"], r["seed"], r["hash"])
        for r in grid.runs(tiny_runs["config"])
    }
    assert {tuple(r.values()) for r in p.runs} == expected


def test_changed_setting_names_the_key_and_both_values(tiny_runs, folder):
    cfg = with_recorded(tiny_runs, folder, train__epochs=3)
    with pytest.raises(UserError) as e:
        plan(cfg)
    msg = str(e.value)
    assert "recorded run softmax/lr0.01/cpu/seed0" in msg
    assert "train.epochs: recorded 2, this config 3" in msg
    assert msg.endswith("use config/recorded.yaml unchanged, or set recorded: null to train")


def test_changed_precision_is_refused(tiny_runs, folder):
    used = grid.precision_for(tiny_runs["config"], "cpu")
    other = "fp32" if used == "bf16" else "bf16"
    with pytest.raises(UserError, match=f"train.precision: recorded {used}, this config {other}"):
        plan(with_recorded(tiny_runs, folder, train__precision=other))


def test_changed_subset_is_refused(tiny_runs, folder):
    cfg = with_recorded(
        tiny_runs, folder, data__subset={"train_per_class": 20, "test_per_class": 10}
    )
    with pytest.raises(UserError, match=r"used 300 train images, this config 200"):
        plan(cfg)


def test_missing_run_and_incomplete_run_are_named(tiny_runs, folder):
    cfg = with_recorded(tiny_runs, folder, learning_rates=[0.01, 0.005, 0.001, 0.02])
    with pytest.raises(UserError, match=r"recorded run softmax/lr0.02/cpu/seed0 in .* is missing"):
        plan(cfg)
    prov = json.loads((folder / "provenance.json").read_text())
    gone = first_run(folder)
    prov["runs"].append(
        {
            "lr": "x",
            "epochs_done": 1,
            "epochs": 2,
            "complete": False,
            "folder": str(gone.relative_to(folder)),
        }
    )
    (folder / "provenance.json").write_text(json.dumps(prov))
    shutil.rmtree(gone.parent)
    seal(folder)
    with pytest.raises(UserError, match="the recording session stopped it after 1 of 2 epochs"):
        plan(with_recorded(tiny_runs, folder))


def test_data_sha256_must_match(tiny_runs, folder):
    cfg = with_recorded(tiny_runs, folder, data__archive_sha256="0" * 64)
    with pytest.raises(UserError, match="trained on data with sha256 [0-9a-f]{64}, this config"):
        plan(cfg)


def test_symlink_leaving_the_folder_is_refused(tiny_runs, folder, tmp_path):
    outside = tmp_path / "elsewhere.csv"
    outside.write_text("epoch\n")
    target = first_run(folder) / "steps.csv"
    target.unlink()
    target.symlink_to(outside)
    with pytest.raises(UserError, match="points outside the recorded folder"):
        plan(with_recorded(tiny_runs, folder))


def test_dotdot_and_absolute_paths_are_refused(folder, tmp_path):
    for bad in ("../provenance.json", "results/../../x.json", "/etc/passwd"):
        with pytest.raises(UserError, match="leaves the recorded folder"):
            recorded.read_json(folder, bad)
    with pytest.raises(UserError, match="leaves the recorded folder"):
        recorded.copy_run(folder, "results/runs/../../../outside", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_odd_run_folder_name_is_refused(tiny_runs, folder):
    (first_run(folder).parent / "x;rm -rf ~").mkdir()
    with pytest.raises(UserError, match="which is not a run folder"):
        plan(with_recorded(tiny_runs, folder))


def test_malformed_metrics_are_refused(tiny_runs, folder):
    path = first_run(folder) / "metrics.json"
    m = json.loads(path.read_text())
    path.write_text(json.dumps({**m, "n_train": "300"}))
    seal(folder)
    with pytest.raises(UserError, match="wrong type for n_train"):
        plan(with_recorded(tiny_runs, folder))
    path.write_text("[" * 100_000 + "]" * 100_000)
    seal(folder)
    with pytest.raises(UserError, match="nested too deeply"):
        plan(with_recorded(tiny_runs, folder))


def test_oversized_file_is_refused(tiny_runs, folder):
    big = first_run(folder) / "predictions.csv"
    with open(big, "r+b") as f:  # sparse: no 64 MiB written to disk
        f.truncate(recorded.MAX_BYTES + 1)
    with pytest.raises(UserError, match="more than the 64 MiB allowed"):
        plan(with_recorded(tiny_runs, folder))


def test_auto_devices_are_refused_with_recorded_runs(tiny_runs, folder):
    cfg = with_recorded(tiny_runs, folder, devices=["auto"])
    with pytest.raises(UserError, match="devices = \\['auto'\\] uses auto"):
        plan(cfg)


def test_recorded_cuda_runs_need_no_gpu_here(tiny_runs, folder):
    """A run recorded on cuda plans on a host without cuda (the device checks are off)."""
    cfg = with_recorded(tiny_runs, folder, devices=["cuda"], timing__devices=["cuda"])
    prov = json.loads((folder / "provenance.json").read_text())
    for metrics in sorted((folder / "results" / "runs").rglob("metrics.json")):
        m = json.loads(metrics.read_text())
        rc = grid.run_config(cfg, m["head"], m["lr"], "cuda", m["seed"])
        m.update(
            device="cuda", fingerprint=rc.fingerprint(), config=asdict(rc), precision=rc.precision
        )
        parts = list(metrics.relative_to(folder).parts)
        parts[parts.index("cpu")] = "cuda"
        # the recording's provenance lists the runs it made (as on cuda)
        entry = next(
            r for r in prov["runs"] if r["folder"] == str(metrics.parent.relative_to(folder))
        )
        entry.update(folder="/".join(parts[:-1]), fingerprint=m["fingerprint"])
        dest = folder.joinpath(*parts)
        dest.parent.mkdir(parents=True, exist_ok=True)
        for f in metrics.parent.iterdir():
            shutil.copy2(f, dest.parent / f.name)
        dest.write_text(json.dumps(m))
    timing = folder / "results" / "timing"
    t = json.loads((timing / "cpu" / "timing.json").read_text())
    t["device"] = "cuda"
    (timing / "cuda").mkdir()
    (timing / "cuda" / "timing.json").write_text(json.dumps(t))
    (folder / "provenance.json").write_text(json.dumps(prov))
    seal(folder)
    engine_devices.check_presence(cfg)  # would raise without a GPU in training mode
    p = plan(cfg)
    assert {r["device"] for r in p.runs} == {"cuda"} and p.timing_devices == ["cuda"]


def test_copy_run_is_byte_identical_and_has_no_weights(folder, tmp_path):
    run = first_run(folder)
    rel = str(run.relative_to(folder))
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "repro",
            "recorded",
            "run",
            "--folder",
            str(folder),
            "--run",
            rel,
            "--out",
            str(tmp_path / "run"),
        ],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == sorted(recorded.RUN_FILES)
    for name in recorded.RUN_FILES:
        assert (tmp_path / "run" / name).read_bytes() == (run / name).read_bytes()


# ---- the whole workflow ----------------------------------------------------------------


def snakemake(cwd: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "--cores", "2", *args]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env)


def job_stats(text: str) -> dict[str, int]:
    block = text.split("Job stats:")[1].split("total")[0]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", block, re.M)}


def error_lines(res: subprocess.CompletedProcess) -> list[str]:
    return [x for x in (res.stdout + res.stderr).splitlines() if x.startswith("error:")]


@pytest.fixture(scope="module")
def project(tiny_runs, tmp_path_factory, copy_project) -> Path:
    """A copy of the project with a recorded folder and a config that points at it."""
    repo = copy_project(tmp_path_factory.mktemp("rec") / "repo", "recorded")
    make_recorded(tiny_runs, repo / "recorded" / LABEL)
    cfg = {**base_config(tiny_runs), "recorded": f"recorded/{LABEL}"}
    (repo / "config" / "test-recorded.yaml").write_text(yaml.safe_dump(cfg))
    return repo


CONFIG = ["--configfile", "config/test-recorded.yaml"]


@pytest.mark.integration
def test_mismatch_stops_with_one_line_before_any_job(project):
    res = snakemake(project, *CONFIG, "--config", "train={epochs: 3}")
    assert res.returncode != 0
    assert error_lines(res) == [
        f"error: recorded run softmax/lr0.01/cpu/seed0 in recorded/{LABEL}: the config differs"
        " from the recorded run's settings (train.epochs: recorded 2, this config 3);"
        " use config/recorded.yaml unchanged, or set recorded: null to train"
    ]
    assert "Job stats" not in res.stdout + res.stderr
    res = snakemake(project, *CONFIG, "--config", "learning_rates=[0.01, 0.02]")
    assert res.returncode != 0 and len(error_lines(res)) == 1
    assert "softmax/lr0.02/cpu/seed0" in error_lines(res)[0] and "is missing" in res.stderr
    assert not (project / "results").exists() and not (project / "logs").exists()


@pytest.mark.integration
def test_report_from_recorded_runs_trains_nothing(project, tiny_runs, tmp_path):
    # reporting is torch-free: every job here runs with a torch that cannot be imported
    (tmp_path / "torch").mkdir()
    poison = "raise ImportError('reporting imported torch')\n"
    (tmp_path / "torch" / "__init__.py").write_text(poison)
    res = snakemake(
        project, *CONFIG, env={**os.environ, "PYTHONPATH": f"{tmp_path}:{ROOT / 'src'}"}
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    jobs = job_stats(res.stdout + res.stderr)
    assert jobs["recorded_run"] == 6 and jobs["recorded_timing"] == 1
    assert "train" not in jobs and "timing" not in jobs and "prepare_data" not in jobs
    assert not (project / "logs" / "train").exists() and not (project / "resources").exists()
    assert not list((project / "results" / "runs").rglob("model.pt"))
    for metrics in tiny_runs["runs"]:
        rel = metrics.relative_to(tiny_runs["root"])
        assert (project / rel).read_bytes() == metrics.read_bytes()

    page1 = " ".join(PdfReader(project / "results" / "report.pdf").pages[0].extract_text().split())
    assert "Recorded runs, not retrained." in page1
    assert f"recorded on {GPU} (lr " in page1
    assert f"at commit {COMMIT[:12]} on 2026-11-26T09:30:00Z" in page1
    # the folder is a code span that may break anywhere at a line end
    assert f"recorded/{LABEL}" in page1.replace(" ", "") and "not retrained" in page1
    prov = json.loads((project / "results" / "provenance.json").read_text())
    assert prov["recorded"]["label"] == LABEL and prov["recorded"]["commit"] == COMMIT
    assert prov["data"]["sha256"] == json.loads(tiny_runs["data_meta"].read_text())["sha256"]
    assert prov["data"]["train_per_class"] == [30] * 10

    rerun = snakemake(project, *CONFIG, "-n")
    assert "Nothing to be done" in rerun.stdout + rerun.stderr


def test_check_cli_checks_the_recorded_folder(tiny_runs, folder, tmp_path, capsys):
    from repro.cli import main

    path = tmp_path / "rec.yaml"
    path.write_text(yaml.safe_dump(with_recorded(tiny_runs, folder)))
    assert main(["check", str(path)]) == 0
    assert f"ok (6 recorded runs in {folder})" in capsys.readouterr().out
    path.write_text(yaml.safe_dump(with_recorded(tiny_runs, folder, train__epochs=5)))
    assert main(["check", str(path)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "train.epochs: recorded 2, this config 5" in err[0]


def test_the_shipped_recording_is_whole_and_matches_its_config(monkeypatch, capsys):
    """What a clean clone holds: config/recorded.yaml passes its checks against the
    committed folder, and its grid takes every run the recording finished (a run folder
    left out of git, or a finished rate left out of the grid, fails here)."""
    from repro.cli import main

    monkeypatch.chdir(ROOT)
    cfg = yaml.safe_load((ROOT / "config/recorded.yaml").read_text())
    prov = json.loads((ROOT / cfg["recorded"] / "provenance.json").read_text())
    finished = [r for r in prov["runs"] if r.get("complete")]
    assert {r["lr"] for r in finished} == {grid.lr_tag(lr) for lr in cfg["learning_rates"]}
    assert main(["check", "config/recorded.yaml"]) == 0
    # every finished run is one of the config's: the reference's and its variants'
    assert f"ok ({len(finished)} recorded runs in" in capsys.readouterr().out
