"""Packs (config key train.pack): which runs train together on cuda, planned without
torch; packing changes no run's identity, folder or recorded config."""

from __future__ import annotations

import json
import shlex

import pytest

from repro.errors import UserError
from repro.plan import config as config_mod
from repro.plan import grid, resources
from repro.plan.progress import CHECKPOINT, PROGRESS
from repro.plan.settings import RunConfig


def study(pack: int, devices=("cuda",), **extra) -> dict:
    raw = {
        "devices": list(devices),
        "learning_rates": [0.01, 0.005, 0.001],
        "seeds": [0, 1],
        "train": {"pack": pack},
        **extra,
    }
    return config_mod.validate(raw)


def where(pack: list[dict]) -> list[tuple]:
    return [(r["variant"], r["lr"], r["seed"]) for r in pack]


def test_runs_of_one_setting_are_cut_into_packs_in_priority_order():
    packs = grid.packs(study(4))
    # the six runs seed by seed (every rate's first seed first): 4, then the remaining 2
    assert [where(p) for p in packs] == [
        [("paper", "0.01", 0), ("paper", "0.005", 0), ("paper", "0.001", 0), ("paper", "0.01", 1)],
        [("paper", "0.005", 1), ("paper", "0.001", 1)],
    ]
    assert [len(p) for p in grid.packs(study(2))] == [2, 2, 2]
    assert [len(p) for p in grid.packs(study(6))] == [6]
    assert [len(p) for p in grid.packs(study(10))] == [6]  # a pack never exceeds its setting


def test_a_remainder_of_one_run_trains_alone_and_pack_1_packs_nothing():
    packs = grid.packs(study(5))
    assert [len(p) for p in packs] == [5]
    packed = {(r["lr"], r["seed"]) for p in packs for r in p}
    alone = [r for r in grid.runs(study(5)) if (r["lr"], r["seed"]) not in packed]
    assert [(r["lr"], r["seed"]) for r in alone] == [("0.001", 1)]  # the last in priority
    assert grid.packs(study(1)) == []


def test_cpu_and_mps_runs_are_never_packed():
    assert grid.packs(study(4, devices=("cpu",))) == []
    assert grid.packs(study(4, devices=("mps",))) == []
    mixed = grid.packs(study(4, devices=("cpu", "cuda")))
    assert {r["device"] for p in mixed for r in p} == {"cuda"}
    assert sum(len(p) for p in mixed) == 6


def test_packs_never_mix_variants_or_heads_and_follow_the_variants_order():
    variants = [{"name": "nowd", "reason": "no weight decay", "train": {"weight_decay": 0.0}}]
    cfg = study(4, heads=["softmax", "logits"], variants=variants)
    packs = grid.packs(cfg)
    for p in packs:
        assert len({(r["variant"], r["hash"], r["head"], r["device"]) for r in p}) == 1
        # only lr and seed differ: the descriptions agree on everything else
        descs = [
            json.loads(
                grid.run_description(cfg, r["head"], r["lr"], r["device"], r["seed"], r["hash"])
            )
            for r in p
        ]
        assert len({json.dumps({**d, "lr": 0, "seed": 0}, sort_keys=True) for d in descs}) == 1
    assert [(p[0]["variant"], p[0]["head"], len(p)) for p in packs] == [
        ("paper", "softmax", 4),
        ("paper", "logits", 4),
        ("paper", "softmax", 2),
        ("paper", "logits", 2),
        ("nowd", "softmax", 4),
        ("nowd", "logits", 4),
        ("nowd", "softmax", 2),
        ("nowd", "logits", 2),
    ]
    names = [grid.pack_name(p) for p in packs]
    assert len(set(names)) == len(names) and all(n.isidentifier() for n in names)


def test_pack_changes_no_runs_hash_fingerprint_folder_or_recorded_config():
    one, four = study(1), study(4)
    assert grid.runs(one) == grid.runs(four)
    for device in ("cuda", "cpu"):
        assert grid.settings_hash(one, device) == grid.settings_hash(four, device)
    for r in grid.runs(four):
        a = grid.run_config(one, r["head"], float(r["lr"]), r["device"], r["seed"])
        b = grid.run_config(four, r["head"], float(r["lr"]), r["device"], r["seed"])
        assert a.fingerprint() == b.fingerprint()
    # results/config.json (what reruns the report, what a recording keeps) leaves it out
    assert grid.result_config(one) == grid.result_config(four)
    assert "pack" not in grid.result_config(four)["train"]
    assert "epochs" in grid.result_config(four)["train"]


@pytest.mark.parametrize(
    "raw,fragments",
    [
        ({"train": {"pack": 0}}, ["train.pack = 0", "integer >= 1"]),
        ({"train": {"pack": 2.0}}, ["train.pack = 2.0", "integer >= 1"]),
        (
            {"variants": [{"name": "big", "reason": "r", "train": {"pack": 8, "epochs": 3}}]},
            ["variants[0].train.pack of 'big'", "set train.pack at the top level"],
        ),
    ],
)
def test_a_bad_pack_gets_one_line_naming_the_key_and_the_fix(raw, fragments):
    with pytest.raises(UserError) as e:
        config_mod.validate(raw)
    assert "\n" not in str(e.value)
    for fragment in fragments:
        assert fragment in str(e.value)


def test_a_number_typed_on_the_command_line_is_a_pack_size():
    assert config_mod.validate({"train": {"pack": "3"}})["train"]["pack"] == 3


def test_a_jobs_flags_follow_from_its_outputs():
    """What the workflow hands a train job (one run or a pack), read back from the run
    folders of its outputs: every run's description, folder, checkpoint and progress file."""
    cfg = study(4)
    pack = grid.packs(cfg)[0]
    outputs = [
        f"{grid.RUN_DIR.format(**r)}/{name}"
        for r in pack
        for name in ("epochs.csv", "metrics.json")
    ]
    args = shlex.split(grid.train_job_flags(cfg, outputs))
    at = {flag: args.index(flag) for flag in ("--runs", "--outs", "--checkpoints", "--progress")}
    assert list(at.values()) == [0, 5, 10, 15] and len(args) == 20
    runs = [RunConfig.from_dict(json.loads(a)) for a in args[1:5]]
    assert [(rc.lr, rc.seed) for rc in runs] == [(float(r["lr"]), r["seed"]) for r in pack]
    assert args[6:10] == [grid.RUN_DIR.format(**r) for r in pack]
    assert args[11:15] == [CHECKPOINT.format(**r) for r in pack]
    assert args[16:20] == [PROGRESS.format(**r) for r in pack]
    with pytest.raises(UserError, match="is not a run folder"):
        grid.train_job_flags(cfg, ["results/elsewhere/metrics.json"])


def test_a_pack_job_asks_for_its_runs_time_on_its_device_partition():
    cfg = study(4, slurm={"partition": "cpu", "gpu_partition": "gpu"})
    one = resources.job_resources(cfg, "train", "cuda")
    four = resources.job_resources(cfg, "train", "cuda", runs=4)
    assert four["runtime"] - 10 == 4 * (one["runtime"] - 10)
    assert {k: v for k, v in four.items() if k != "runtime"} == {
        k: v for k, v in one.items() if k != "runtime"
    }
    assert resources.partition_resource(cfg, "cuda") == {"slurm_partition": "gpu"}
    assert resources.partition_resource(cfg, "cpu") == {"slurm_partition": "cpu"}


def test_the_estimate_names_the_packs_and_does_not_guess_their_speed(tmp_path):
    """6 cuda runs with train.pack 4: two packs (4 + 2), said in the estimate, which still
    counts the runs one after the other (no wide-layout speed measured on a GPU yet);
    with pack 1 there is no such line."""
    from repro.plan import estimate

    cfg = config_mod.validate(
        {"devices": ["cuda"], "seeds": [0, 1], "train": {"pack": 4}, "timing": {"enabled": False}}
    )
    text = "\n".join(estimate.lines(cfg, grid.runs(cfg), [], tmp_path, False, False))
    assert "cuda: 6 runs in 2 packs of up to 4 (train.pack)" in text
    assert "not measured yet" in text
    cfg["train"]["pack"] = 1
    assert "packs" not in "\n".join(estimate.lines(cfg, grid.runs(cfg), [], tmp_path, False, False))
