"""Bad input is rejected up front, in one line naming the key, the value and the fix:
by the config loader, by the package's CLI (exit status 2) and by Snakemake (before
any job). ``docs/bad-inputs.md`` is generated from CASES below and checked here:

    python tests/test_config.py > docs/bad-inputs.md
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from repro import config as config_mod
from repro import devices
from repro.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
ABSENT = next(d for d in ("cuda", "mps") if d not in devices.available())

# (what is wrong, config as YAML text, fragments the message must contain)
CASES = [
    ("negative learning rate", "learning_rates: [-0.01]", ["learning_rates[0] = -0.01", "> 0"]),
    ("non-numeric learning rate", "learning_rates: [fast]", ["learning_rates[0] = 'fast'"]),
    ("empty learning-rate list", "learning_rates: []", ["learning_rates is an empty list"]),
    ("duplicate learning rates", "learning_rates: [0.01, 0.01]", ["duplicate value 0.01"]),
    ("epochs < 1", "train: {epochs: 0}", ["train.epochs = 0", "integer >= 1"]),
    ("batch size < 1", "train: {batch_size: 0}", ["train.batch_size = 0", "integer >= 1"]),
    ("unknown device name", "devices: [tpu]", ["devices[0] = 'tpu'", "auto, cpu, cuda, mps"]),
    ("requested device absent", f"devices: [{ABSENT}]", [f"'{ABSENT}'", "does not have"]),
    ("timing device absent", f"timing: {{devices: [{ABSENT}]}}", ["timing.devices", ABSENT]),
    ("unknown model head", "heads: [sigmoid]", ["heads[0] = 'sigmoid'", "softmax", "logits"]),
    ("even kernel size", "model: {kernel_sizes: [1, 2]}", ["model.kernel_sizes[1] = 2", "odd"]),
    ("kernel size < 1", "model: {kernel_sizes: [0]}", ["model.kernel_sizes[0] = 0", "odd"]),
    ("widths of wrong length", "model: {widths: [64, 64]}", ["model.widths", "exactly 6"]),
    ("dropout of 1", "model: {dropout: 1.0}", ["model.dropout = 1.0", "[0, 1)"]),
    ("negative dropout", "model: {dropout: -0.1}", ["model.dropout = -0.1", "[0, 1)"]),
    ("unknown precision", "train: {precision: fp16}", ["train.precision = 'fp16'", "bf16"]),
    (
        "subset larger than the data",
        "data: {subset: {train_per_class: 6000}}",
        ["data.subset.train_per_class = 6000", "larger than the data"],
    ),
    (
        "archive path does not exist",
        "data: {source: archive, archive: /no/such/cifar.tar.gz}",
        ["data.archive = '/no/such/cifar.tar.gz' does not exist", "torchvision"],
    ),
    ("unknown key (typo)", "learning_rate: [0.01]", ["learning_rate is unknown", "learning_rates"]),
    ("unknown nested key", "train: {epoch: 3}", ["train.epoch is unknown", "epochs"]),
    ("empty config file", "", ["config is empty"]),
    ("config not a mapping", "- 0.01\n- 0.001", ["must be a YAML mapping", "list"]),
]


def message(text: str) -> str:
    with pytest.raises(UserError) as e:
        config_mod.validate(yaml.safe_load(text))
    return str(e.value)


@pytest.mark.parametrize("what,text,fragments", CASES, ids=[c[0] for c in CASES])
def test_bad_config_gets_one_clear_line(what, text, fragments):
    msg = message(text)
    assert "\n" not in msg
    for f in fragments:
        assert f in msg, msg


def test_defaults_are_the_paper_setup():
    cfg = config_mod.validate({"seeds": [0]})
    assert cfg["learning_rates"] == [0.01, 0.005, 0.001]
    assert cfg["train"]["epochs"] == 150 and cfg["train"]["batch_size"] == 128
    assert cfg["model"]["widths"] == [64, 64, 128, 128, 256, 256]
    file_cfg = config_mod.load(ROOT / "config" / "config.yaml")
    assert {k: file_cfg[k] for k in ("train", "model", "learning_rates")} == {
        k: cfg[k] for k in ("train", "model", "learning_rates")
    }


def test_run_folder_changes_with_any_result_affecting_setting():
    base = config_mod.validate({"devices": ["cpu"]})
    h = config_mod.settings_hash(base, "cpu")
    # the precision auto does not resolve to on this CPU
    other = "fp32" if config_mod.precision_for(base, "cpu") == "bf16" else "bf16"
    for change in (
        {"train": {"epochs": 3}},
        {"model": {"hidden": 64}},
        {"data": {"subset": {"train_per_class": 10}}},
        {"train": {"precision": other}},
        {"train": {"momentum": 0.5}},
    ):
        assert config_mod.settings_hash(config_mod.validate(change), "cpu") != h, change
    for same in (
        {"figures": {"dpi": 300}},
        {"report": {"title": "x"}},
        {"learning_rates": [0.1]},
        {"estimate": {"calibrate": False}},
    ):
        assert config_mod.settings_hash(config_mod.validate(same), "cpu") == h, same


CLI_CASES = [
    (["--lr", "-1"], "learning_rates[0] = -1.0"),
    (["--epochs", "0"], "train.epochs = 0"),
    (["--device", "tpu"], "devices[0] = 'tpu'"),
    (["--device", ABSENT], "does not have"),
    (["--head", "sigmoid"], "heads[0] = 'sigmoid'"),
    (["--kernel-sizes", "1,2"], "model.kernel_sizes[1] = 2"),
    (["--widths", "8,8"], "exactly 6"),
    (["--dropout", "1"], "model.dropout = 1.0"),
    (["--batch-size", "0"], "train.batch_size = 0"),
]


@pytest.mark.parametrize("args,fragment", CLI_CASES, ids=[" ".join(c[0]) for c in CLI_CASES])
def test_cli_rejects_bad_flags_with_status_2(args, fragment, tmp_path):
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "repro",
            "train",
            "--cache",
            str(tmp_path / "none.npz"),
            "--out",
            str(tmp_path / "out"),
            *args,
        ],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], res.stderr
    assert not (tmp_path / "out").exists()


def test_cli_usage_error_is_status_2(tmp_path):
    res = subprocess.run(
        [sys.executable, "-m", "repro", "train", "--cache", "x", "--out", "y", "--bogus"],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 2 and "unrecognized arguments" in res.stderr


def test_cli_check_names_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: {epochs: -5}\n")
    res = subprocess.run(
        [sys.executable, "-m", "repro", "check", str(bad)], capture_output=True, text=True
    )
    assert res.returncode == 2
    assert (
        res.stderr.strip() == f"error: {bad}: config key train.epochs = -5 is not allowed; "
        "allowed: an integer >= 1"
    )


def render_table() -> str:
    rows = [
        "# Bad input and the message it gets",
        "",
        "Generated by `python tests/test_config.py > docs/bad-inputs.md`; every row is a",
        "test in tests/test_config.py (the data rows in tests/test_data.py).",
        "",
        "| what is wrong | config | message |",
        "|---|---|---|",
    ]
    for what, text, _ in CASES:
        shown = text.replace("\n", "; ").replace("|", "\\|") or "(empty file)"
        # the same table on every host: name the absent device and the present ones generically
        msg = message(text).replace("|", "\\|").replace(f"'{ABSENT}'", "'<absent device>'")
        msg = re.sub(r"\(present: [^)]*\)", "(present: <this host's devices>)", msg)
        shown = shown.replace(f"[{ABSENT}]", "[<absent device>]")
        rows.append(f"| {what} | `{shown}` | {msg} |")
    rows += [
        "",
        "Data (tests/test_data.py), all raised before anything is written:",
        "",
        "| what is wrong | message names |",
        "|---|---|",
        '| truncated or corrupt archive | the archive path, "truncated or corrupt?" |',
        "| missing class folder | the folder, e.g. `train/cat/` |",
        "| corrupt image | the member, e.g. `train/dog/0001.jpg` |",
        "| image not 32x32 | the member and its size |",
        "| unbalanced class counts | the class and counts |",
        "| subset larger than the archive | the key and the available count |",
        "| archive sha256 differs from data.archive_sha256 | both digests |",
        "| official download impossible | both options: archive and download |",
        "",
        "Recorded runs (config key `recorded`, tests/test_recorded.py), before any job:",
        "",
        "| what is wrong | message names |",
        "|---|---|",
        "| `recorded` is not a folder | the key and its value |",
        "| a planned run is not recorded | the run; if recorded incomplete, the epochs reached |",
        "| a setting differs from the recorded run's | the run, the config key, both values |",
        "| the data subset differs | the run and both image counts |",
        "| data sha256 differs from data.archive_sha256 | both digests |",
        "| `devices: [auto]` | the key: name the devices the runs were recorded on |",
        "| timing device or timing.epochs not as recorded | the device, the key, both values |",
        "| a path or link leading outside the folder | the path (refused) |",
        "| a file over 64 MiB, not a regular file, not UTF-8, or bad JSON/CSV | the file |",
        "",
    ]
    return "\n".join(rows)


def test_docs_table_is_current():
    doc = ROOT / "docs" / "bad-inputs.md"
    assert doc.read_text() == render_table(), "regenerate: python tests/test_config.py"


if __name__ == "__main__":
    print(render_table(), end="")
