"""Stage 6: provenance of a study as one JSON file: git commit and dirty flag, the full
resolved config and its hash, library versions, the data set, hosts and devices, per-job
wall time, and the date (UTC; ``SOURCE_DATE_EPOCH`` pins it for reproducible builds).

Nothing here fails for lack of information: what cannot be found is "unknown".
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from ..files import read_json, write_atomic
from ..plan.code_identity import UNKNOWN, checked_commit, git_state
from ..plan.machine import package_versions
from ..plan.recorded import check_provenance
from ..text import joined


def config_sha256(cfg: dict) -> str:
    """Hash of the canonical JSON form (sorted keys, no whitespace) of the config."""
    text = json.dumps(cfg, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def gpu_names() -> str:
    """The report host's NVIDIA GPUs as nvidia-smi names them: asked without torch, which
    the reporting stages never import (the training devices are in each run's metrics)."""
    if shutil.which("nvidia-smi") is None:
        return "none"
    try:
        res = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError):
        return UNKNOWN
    names = [line.strip() for line in res.stdout.splitlines() if line.strip()]
    if res.returncode != 0:
        return UNKNOWN
    return ", ".join(names) or "none"


def this_host() -> dict:
    from ..plan.machine import cpu_name

    gpu = gpu_names()
    return {
        "hostname": platform.node() or UNKNOWN,
        "system": f"{platform.system()} {platform.release()}",
        "cpu": cpu_name(),
        "gpu": gpu,
    }


def utc_now() -> str:
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    now = datetime.fromtimestamp(int(epoch), UTC) if epoch else datetime.now(UTC)
    return now.replace(microsecond=0).isoformat().replace("+00:00", "Z")


def jobs(run_paths, timing_paths) -> tuple[list[dict], list[dict]]:
    train, timed = [], []
    for path in run_paths:
        m = read_json(path, "run metrics")
        train.append(
            {
                "head": m["head"],
                "lr": m["lr"],
                "seed": m["seed"],
                "device": m["device"],
                "device_name": m.get("device_name", UNKNOWN),
                "precision": m.get("precision", UNKNOWN),
                "epochs": m["epochs"],
                "train_seconds": m["train_seconds"],
                "wall_seconds": m.get("wall_seconds_this_process"),
                "torch": m.get("versions", {}).get("torch", UNKNOWN),
                # the code that trained it, as the training job saw it (absent before issue 22)
                "code": m.get("code") or {},
                "path": str(Path(path).parent),
            }
        )
    for path in timing_paths or ():
        t = read_json(path, "timing JSON")
        timed.append(
            {
                "device": t["device"],
                "device_name": t.get("device_name", UNKNOWN),
                "precision": t.get("precision", UNKNOWN),
                "epochs": t["epochs"],
                "seconds_total": t["seconds_total"],
                "path": str(path),
            }
        )
    return train, timed


def training_devices(jobs: list[dict]) -> dict[str, str]:
    """Device -> every machine of that kind the jobs ran on ("NVIDIA H100 80GB HBM3 and
    NVIDIA H200"), in the order first met: runs of one device kind may come from several
    GPU models, and naming only the first would hide the others."""
    devices = dict.fromkeys(j["device"] for j in jobs)
    return {d: joined(j["device_name"] for j in jobs if j["device"] == d) for d in devices}


def collect(config_path, run_paths, timing_paths, data_meta_path, repo, recorded=None) -> dict:
    """``recorded``: the recording's provenance (results/recorded/provenance.json) when the
    runs were copied from a recorded folder instead of trained."""
    cfg = read_json(config_path, "config JSON")
    meta = read_json(data_meta_path, "data cache metadata") if data_meta_path else {}
    train, timed = jobs(run_paths, timing_paths)
    devices = training_devices(train + timed)
    prov = {
        "date_utc": utc_now(),
        "git": git_state(repo),
        "config_path": str(config_path),
        "config_sha256": config_sha256(cfg),
        "config": cfg,
        "versions": package_versions(),
        "data": {
            "source": meta.get("source", UNKNOWN),
            "path": meta.get("path", UNKNOWN),
            "sha256": meta.get("sha256", UNKNOWN),
            "n_train": meta.get("n_train"),
            "n_test": meta.get("n_test"),
            "train_per_class": meta.get("train_per_class"),
            "test_per_class": meta.get("test_per_class"),
            "subset": meta.get("subset"),
        },
        "hosts": {"report_host": this_host(), "training_devices": devices},
        "jobs": train,
        "timing_jobs": timed,
        "total_train_seconds": sum(j["train_seconds"] for j in train),
    }
    if recorded:
        prov["recorded"] = check_provenance(
            read_json(recorded, "recorded provenance"), f"recorded provenance {recorded}"
        )
    check_code(prov, repo)
    prov["summary"] = summary_line(prov)
    return prov


def check_code(prov: dict, repo) -> None:
    """Each job's ``code_checked``: the commit of this repository whose run-shaping modules
    hash to the job's recorded code hash (its own commit, the one its caller named, or one
    a recording's session names), or None. A GPU machine's checkout may carry an older
    .git than its tree; the hash says which code the run had."""
    rec = prov.get("recorded") if isinstance(prov.get("recorded"), dict) else {}
    sessions = rec.get("sessions") if isinstance(rec.get("sessions"), list) else []
    also = [s.get("commit") for s in sessions if isinstance(s, dict)] + [rec.get("commit")]
    for j in prov["jobs"]:
        code = j["code"] if isinstance(j["code"], dict) else {}
        j["code_checked"] = checked_commit(Path(repo), code, tuple(also)) if code else None


def summary_line(prov: dict) -> str:
    git = prov["git"]
    commit = git["commit"]
    commit = commit[:12] if len(commit) == 40 else commit
    dirty = {True: "dirty tree", False: "clean tree"}.get(git["dirty"], "tree state unknown")
    return (
        f"commit {commit} ({dirty}) · config sha256 {prov['config_sha256'][:12]}"
        f" · {prov['date_utc']}"
    )


def build(config, runs, timing, data_meta, repo, recorded, out) -> None:
    """The provenance stage: ``collect`` written as JSON to ``out``."""
    prov = collect(config, runs, timing, data_meta, repo, recorded)
    write_atomic(Path(out), json.dumps(prov, indent=2) + "\n")
