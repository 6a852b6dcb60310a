"""One GPU per cuda job (repro.engine.gpu_slots), with real processes on GPUs simulated
by a count: each process of a host's jobs takes its own GPU, one more waits for a GPU
to be given back, and a killed holder gives its GPU back too."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from repro.engine import gpu_slots
from repro.errors import UserError

SRC = Path(__file__).resolve().parents[2] / "src"
# a job that takes one of n GPUs, says which, and holds it until its stdin is closed
HOLDER = """
import sys
from pathlib import Path
from repro.engine import gpu_slots
gpus = [str(i) for i in range(int(sys.argv[2]))]
slot = gpu_slots.claim(Path(sys.argv[1]), gpus, poll_s=0.05)
print(slot.index, slot.of, flush=True)
sys.stdin.read()
"""


def holder(lock_dir: Path, n: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    return subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(lock_dir), str(n)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def line(stream, timeout: float) -> str | None:
    """The next line of ``stream``, or None when none comes within ``timeout`` s."""
    ready, _, _ = select.select([stream], [], [], timeout)
    return stream.readline().strip() if ready else None


def slot_of(proc: subprocess.Popen, timeout: float = 20.0) -> tuple[int, int]:
    text = line(proc.stdout, timeout)
    assert text, f"no GPU taken within {timeout} s: {proc.stderr.read() if proc.poll() else ''}"
    index, of = text.split()
    return int(index), int(of)


@pytest.fixture
def procs():
    started: list[subprocess.Popen] = []
    yield started
    for p in started:
        if p.poll() is None:
            p.kill()
        p.wait()
        for stream in (p.stdin, p.stdout, p.stderr):
            stream.close()


def test_each_concurrent_job_takes_its_own_gpu(tmp_path, procs):
    procs += [holder(tmp_path, 3) for _ in range(3)]
    slots = [slot_of(p) for p in procs]
    assert sorted(slots) == [(0, 3), (1, 3), (2, 3)]


def test_one_job_more_than_gpus_waits_for_the_gpu_given_back(tmp_path, procs):
    procs += [holder(tmp_path, 2) for _ in range(2)]
    by_slot = {slot_of(p)[0]: p for p in procs}
    waiting = holder(tmp_path, 2)
    procs.append(waiting)
    said = line(waiting.stderr, 20.0)
    assert said and "all 2 GPUs of this host are taken" in said and "waiting" in said
    assert line(waiting.stdout, 0.5) is None  # still waiting: both are held
    by_slot[1].stdin.close()  # the job on GPU 1 ends
    assert by_slot[1].wait(10) == 0
    assert slot_of(waiting) == (1, 2)


def test_a_killed_job_gives_its_gpu_back(tmp_path, procs):
    procs += [holder(tmp_path, 2) for _ in range(2)]
    by_slot = {slot_of(p)[0]: p for p in procs}
    waiting = holder(tmp_path, 2)
    procs.append(waiting)
    assert line(waiting.stderr, 20.0)  # says it waits
    by_slot[0].send_signal(signal.SIGKILL)  # a crash: no code of the job runs any more
    by_slot[0].wait(10)
    assert slot_of(waiting) == (0, 2)


def test_cuda_visible_devices_names_the_lock_files():
    """Under SLURM two jobs on one node see their own GPU as index 0: the lock files are
    named by CUDA_VISIBLE_DEVICES' entries, so they never wait for each other."""
    assert gpu_slots.visible_gpus({"CUDA_VISIBLE_DEVICES": "3"}, 1) == ["3"]
    assert gpu_slots.visible_gpus({"CUDA_VISIBLE_DEVICES": "2, GPU-ab12"}, 2) == ["2", "GPU-ab12"]
    assert gpu_slots.visible_gpus({}, 2) == ["0", "1"]


def test_a_link_in_the_lock_folder_is_refused(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "slots").symlink_to(elsewhere)
    with pytest.raises(UserError, match="is a link or not a folder"):
        gpu_slots.claim(tmp_path / "slots", ["0"])
    assert not any(elsewhere.iterdir())


@pytest.mark.parametrize("kind", ["fifo", "hard link"])
def test_a_lock_file_that_is_no_plain_file_is_refused(tmp_path, kind):
    """The holder truncates its lock file and writes its pid: a FIFO planted there was an
    OSError's traceback, a hard link would have emptied the file it shares."""
    folder = gpu_slots._safe_folder(tmp_path / "slots")
    other = tmp_path / "notes.txt"
    other.write_text("keep me")
    if kind == "fifo":
        os.mkfifo(folder / "gpu-0.lock")
    else:
        os.link(other, folder / "gpu-0.lock")
    with pytest.raises(UserError, match="not a plain file of its own"):
        gpu_slots.claim(tmp_path / "slots", ["0"])
    assert other.read_text() == "keep me"


def test_a_simulated_count_must_be_a_number():
    assert gpu_slots.simulated_count({}) is None
    assert gpu_slots.simulated_count({gpu_slots.SIMULATED_ENV: "4"}) == 4
    with pytest.raises(UserError, match="integer >= 1"):
        gpu_slots.simulated_count({gpu_slots.SIMULATED_ENV: "0"})


def test_the_train_command_records_the_gpu_it_took(tiny_cache, tmp_path, procs):
    """`train-pack` as the workflow runs it, with GPU 0 of 2 held by another job: the
    pack takes GPU 1, and each run's metrics.json and progress file are written."""
    from conftest import tiny_config

    from repro.plan import grid

    cfg = tiny_config(learning_rates=[0.01, 0.005])
    runs = grid.runs(cfg)
    lock_dir = tmp_path / "slots"
    procs.append(holder(lock_dir, 2))
    assert slot_of(procs[0]) == (0, 2)
    descs = [
        grid.run_description(cfg, r["head"], r["lr"], r["device"], r["seed"], r["hash"])
        for r in runs
    ]
    outs = [str(tmp_path / f"run{i}") for i in range(2)]
    progress = [str(tmp_path / f"progress{i}.json") for i in range(2)]
    cmd = [sys.executable, "-m", "repro", "train-pack", "--runs", *descs, "--outs", *outs]
    cmd += ["--progress", *progress, "--cache", str(tiny_cache), "--gpu-slots", str(lock_dir)]
    env = {**os.environ, "PYTHONPATH": str(SRC), gpu_slots.SIMULATED_ENV: "2"}
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    for i, out in enumerate(outs):
        m = json.loads((Path(out) / "metrics.json").read_text())
        assert m["gpu"] == {"index": 1, "of": 2}
        assert m["layout"] == {"k": 2, "slot": i} and m["code"]["code_sha256"]
        assert json.loads(Path(progress[i]).read_text())["state"] == "done"
    assert len(res.stdout.splitlines()) == 2  # each run's result line
