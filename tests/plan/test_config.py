"""Bad input is rejected up front, in one line naming the key, the value and the fix:
by the config loader, by the package's CLI (exit status 2) and by Snakemake (before
any job). ``docs/bad-inputs.md`` is generated from CASES below and checked here:

    python tests/plan/test_config.py > docs/bad-inputs.md
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest

from repro.engine import devices as engine_devices
from repro.errors import UserError
from repro.plan import config as config_mod
from repro.plan import grid
from repro.plan import machine as devices
from repro.plan.settings import RunConfig

ROOT = Path(__file__).resolve().parents[2]
ABSENT = next(d for d in ("cuda", "mps") if d not in engine_devices.available())

# (what is wrong, config as YAML text, fragments the message must contain)
CASES = [
    ("negative learning rate", "learning_rates: [-0.01]", ["learning_rates[0] = -0.01", "> 0"]),
    ("non-numeric learning rate", "learning_rates: [fast]", ["learning_rates[0] = 'fast'"]),
    ("empty learning-rate list", "learning_rates: []", ["learning_rates is an empty list"]),
    ("duplicate learning rates", "learning_rates: [0.01, 0.01]", ["duplicate value 0.01"]),
    ("epochs < 1", "train: {epochs: 0}", ["train.epochs = 0", "integer in 1-100000"]),
    ("batch size < 1", "train: {batch_size: 0}", ["train.batch_size = 0", "integer in 1-65536"]),
    ("unknown device name", "devices: [tpu]", ["devices[0] = 'tpu'", "auto, cpu, cuda, mps"]),
    ("requested device absent", f"devices: [{ABSENT}]", [f"'{ABSENT}'", "does not have"]),
    ("timing device absent", f"timing: {{devices: [{ABSENT}]}}", ["timing.devices", ABSENT]),
    ("unknown model head", "heads: [sigmoid]", ["heads[0] = 'sigmoid'", "softmax", "logits"]),
    ("even kernel size", "model: {kernel_sizes: [1, 2]}", ["model.kernel_sizes[1] = 2", "odd"]),
    ("kernel size < 1", "model: {kernel_sizes: [0]}", ["model.kernel_sizes[0] = 0", "odd"]),
    ("widths of wrong length", "model: {widths: [64, 64]}", ["model.widths", "exactly 6"]),
    ("dropout of 1", "model: {dropout: 1.0}", ["model.dropout = 1.0", "[0, 1)"]),
    ("negative dropout", "model: {dropout: -0.1}", ["model.dropout = -0.1", "[0, 1)"]),
    ("unknown gate", "model: {gate: attention}", ["model.gate = 'attention'", "linear", "mlp"]),
    ("gate hidden size < 1", "model: {gate_hidden: 0}", ["model.gate_hidden = 0", ">= 1"]),
    (
        "unknown BatchNorm placement",
        "model: {branch_norm: before_sum}",
        ["model.branch_norm = 'before_sum'", "after_sum", "per_branch"],
    ),
    ("unknown precision", "train: {precision: fp16}", ["train.precision = 'fp16'", "bf16"]),
    ("pack < 1", "train: {pack: 0}", ["train.pack = 0", "integer >= 1"]),
    (
        "pack set by a variant",
        "variants: [{name: big, reason: larger packs, train: {pack: 8}}]",
        ["variants[0].train.pack of 'big'", "train.pack at the top level"],
    ),
    (
        "subset larger than the data",
        "data: {subset: {train_per_class: 6000}}",
        ["data.subset.train_per_class = 6000", "1-5000", "CIFAR-10 has 5000"],
    ),
    # sizes have sane upper bounds, the same wherever a run description is read
    ("absurd epochs", "train: {epochs: 1000000000000000000000000000000}", ["1-100000"]),
    ("absurd width", "model: {widths: [64, 64, 128, 128, 256, 1000000000]}", ["1-65536"]),
    ("absurd hidden size", "model: {hidden: 1000000000}", ["model.hidden", "1-65536"]),
    ("absurd kernel size", "model: {kernel_sizes: [1, 3, 999]}", ["kernel_sizes[2]", "1-31"]),
    ("absurd batch size", "train: {test_batch_size: 10000000}", ["1-65536"]),
    ("absurd test subset", "data: {subset: {test_per_class: 1000000000000}}", ["1-1000"]),
    (
        "archive path does not exist",
        "data: {source: archive, archive: /no/such/cifar.tar.gz}",
        ["data.archive = '/no/such/cifar.tar.gz' does not exist", "torchvision"],
    ),
    # what the images may cost (the report's verdicts): a range of points, each end sourced
    (
        "JPEG cost range low above high",
        "data: {jpeg_cost: {low: 3, high: 1, low_source: a, high_source: b}}",
        ["data.jpeg_cost has low = 3 above high = 1", "low <= high"],
    ),
    (
        "negative JPEG cost",
        "data: {jpeg_cost: {low: -1, high: 3, low_source: a, high_source: b}}",
        ["data.jpeg_cost.low = -1", "0-100"],
    ),
    (
        "non-finite JPEG cost",
        "data: {jpeg_cost: {low: 1, high: .inf, low_source: a, high_source: b}}",
        ["data.jpeg_cost.high = inf", "finite"],
    ),
    (
        "JPEG cost over 100 points",
        "data: {jpeg_cost: {low: 1, high: 150, low_source: a, high_source: b}}",
        ["data.jpeg_cost.high = 150", "0-100"],
    ),
    (
        "JPEG cost without its sources",
        "data: {jpeg_cost: {low: 1, high: 3}}",
        ["data.jpeg_cost = {", "low_source, high_source"],
    ),
    (
        "JPEG cost source of two lines",
        'data: {jpeg_cost: {low: 1, high: 3, low_source: "a\\nb", high_source: b}}',
        ["data.jpeg_cost.low_source = 'a\\nb'", "one line"],
    ),
    (
        "JPEG cost for the lossless download",
        "data: {source: torchvision, jpeg_cost: {low: 1, high: 3, low_source: a, high_source: b}}",
        ["data.jpeg_cost is set", "lossless"],
    ),
    (
        "queue names no variant",
        "queue: [{variant: wider}]",
        ["queue[0].variant = 'wider' names no variant", "allowed: paper"],
    ),
    (
        "queue rate the variant lacks",
        "learning_rates: [0.01, 0.005]\nqueue: [{variant: paper, learning_rates: [0.001]}]",
        ["queue[0].learning_rates has 0.001", "some of [0.01, 0.005]"],
    ),
    ("unknown key (typo)", "learning_rate: [0.01]", ["learning_rate is unknown", "learning_rates"]),
    ("unknown nested key", "train: {epoch: 3}", ["train.epoch is unknown", "epochs"]),
    ("empty config file", "", ["config is empty"]),
    ("config not a mapping", "- 0.01\n- 0.001", ["must be a YAML mapping", "list"]),
    # numbers: finite everywhere (jsonschema's bounds let NaN through)
    ("NaN learning rate", "learning_rates: [.nan]", ["learning_rates[0] = nan", "finite"]),
    ("infinite weight decay", "train: {weight_decay: .inf}", ["train.weight_decay = inf"]),
    ("NaN confidence", "report: {confidence: .nan}", ["report.confidence = nan", "finite"]),
    ("NaN paper accuracy", "paper: {test_accuracy: {0.01: .nan}}", ["test_accuracy.0.01 = nan"]),
    # integers are ints (JSON Schema counts 1.0 as one), and in range
    ("epochs of 1.0", "train: {epochs: 1.0}", ["train.epochs = 1.0", "integer"]),
    ("batch size of 16.0", "train: {batch_size: 16.0}", ["train.batch_size = 16.0", "integer"]),
    ("seed of 0.0", "seeds: [0.0]", ["seeds[0] = 0.0", "integers"]),
    ("seed of 2**64", "seeds: [18446744073709551616]", ["seeds[0] = 18446744073709551616"]),
    ("boolean epochs", "train: {epochs: true}", ["train.epochs = True", "integer"]),
    # BatchNorm cannot train on a batch of one image
    ("batch size of 1", "train: {batch_size: 1}", ["train.batch_size = 1", "one image"]),
    (
        "last batch of one image",
        "data: {subset: {train_per_class: 5}}\ntrain: {batch_size: 7}",
        ["train.batch_size = 7", "50 training images = 7 x 7 + 1", "e.g. 6 or 8"],
    ),
    # what only the report stages read is checked before the first job
    (
        "paper accuracy keyed by a non-rate",
        "paper: {test_accuracy: {fast: 90}}",
        ["paper.test_accuracy has the key 'fast'", "learning rates"],
    ),
    ("unknown palette", "figures: {palette: nosuch}", ["figures.palette = 'nosuch'"]),
    # files and structure
    (
        "archive path is a directory",
        "data: {source: archive, archive: /tmp}",
        ["data.archive = '/tmp' is a directory", "data.source: folder"],
    ),
    ("key written twice", "train: {epochs: 1}\ntrain: {epochs: 150}", ["'train' is written twice"]),
    (
        "YAML alias bomb",
        "seeds: &a [0, 0, 0, 0, 0, 0, 0, 0, 0, 0]\nheads: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a,"
        " *a]\nlearning_rates: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
        "devices: [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]",
        ["more than 10000 values", "without aliases"],
    ),
]


def message(text: str) -> str:
    """The one line a config gets: from validation, else from the local start's check
    that its devices exist (engine.devices.check_presence)."""
    with pytest.raises(UserError) as e:
        engine_devices.check_presence(config_mod.validate(config_mod.parse_yaml(text)))
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
    h = grid.settings_hash(base, "cpu")
    # the precision auto does not resolve to on this CPU
    other = "fp32" if grid.precision_for(base, "cpu") == "bf16" else "bf16"
    for change in (
        {"train": {"epochs": 3}},
        {"model": {"hidden": 64}},
        {"data": {"subset": {"train_per_class": 10}}},
        {"train": {"precision": other}},
        {"train": {"momentum": 0.5}},
    ):
        assert grid.settings_hash(config_mod.validate(change), "cpu") != h, change
    for same in (
        {"figures": {"dpi": 300}},
        {"report": {"title": "x"}},
        {"learning_rates": [0.1]},
        {"estimate": {"calibrate": False}},
    ):
        assert grid.settings_hash(config_mod.validate(same), "cpu") == h, same


def test_alias_bomb_message_stays_short():
    # a mapping of aliases under an allowed key fails the schema: the message quotes
    # the value, cut short, instead of expanding it
    text = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{b}: &{b} [{', '.join(['*' + a] * 9)}]\n"
        for a, b in zip("abcdefgh", "bcdefghi", strict=True)
    )
    parsed = config_mod.parse_yaml(text)
    assert len(text) < 400
    assert "without aliases" in message_of({"report": {"title": parsed["i"]}})
    # under the size bound (7380 values) the schema rejects it, quoting it cut short
    msg = message_of({"report": {"title": parsed["d"]}})
    assert msg.startswith("config key report.title = [[[") and len(msg) < 400


def message_of(cfg) -> str:
    with pytest.raises(UserError) as e:
        config_mod.validate(cfg)
    return str(e.value)


def test_numbers_from_the_command_line_are_checked_too():
    # `--config` values reach validate as strings, or as floats Python parsed
    assert "learning_rates[0] = nan" in message_of({"learning_rates": [".nan"]})
    assert "report.confidence = inf" in message_of({"report": {"confidence": float("inf")}})
    assert "train.epochs = 1.0" in message_of({"train": {"epochs": "1.0"}})


def test_learning_rates_keep_full_precision_in_folders_and_flags():
    cfg = config_mod.validate({"devices": ["cpu"], "learning_rates": [0.01000001, 0.01000002]})
    tags = [r["lr"] for r in grid.runs(cfg)]
    assert tags == ["0.01000001", "0.01000002"]
    cfg = config_mod.validate({"devices": ["cpu"], "learning_rates": [0.0123456789, 0.01, 1]})
    runs = grid.runs(cfg)
    assert [r["lr"] for r in runs] == ["0.0123456789", "0.01", "1"]
    run = json.loads(grid.run_description(cfg, **{**runs[0], "seed": "0"}))
    assert run["lr"] == 0.0123456789


def test_the_job_not_the_planning_host_resolves_precision_auto(monkeypatch):
    """Seen on SLURM: the login node's CPU decided bf16 for CPU jobs on compute nodes.
    The run folder and the job's description keep `auto`; the job resolves it."""
    from repro.plan import machine as devices
    from repro.plan.settings import RunConfig

    cfg = config_mod.validate({"devices": ["cpu"], "train": {"precision": "auto"}})
    seen = {}
    for amx in (True, False):
        monkeypatch.setattr(devices, "cpu_has_bf16", lambda amx=amx: amx)
        run = grid.runs(cfg)[0]
        seen[amx] = (run["hash"], grid.run_description(cfg, **run))
    assert seen[True] == seen[False], "planning on another CPU changes nothing"
    description = json.loads(seen[True][1])
    assert description["precision"] == "auto"
    job = RunConfig.from_dict(description)
    monkeypatch.setattr(devices, "cpu_has_bf16", lambda: True)
    assert job.on_this_machine().precision == "bf16"
    monkeypatch.setattr(devices, "cpu_has_bf16", lambda: False)
    assert job.on_this_machine().precision == "fp32"
    # a named precision is the folder's own: it changes the hash and is never re-resolved
    named = config_mod.validate({"devices": ["cpu"], "train": {"precision": "bf16"}})
    assert grid.runs(named)[0]["hash"] != seen[True][0]
    assert (
        RunConfig.from_dict(json.loads(grid.run_description(named, **grid.runs(named)[0])))
        .on_this_machine()
        .precision
        == "bf16"
    )


def test_duplicate_key_in_a_config_file_names_the_file(tmp_path):
    nested = tmp_path / "nested.yaml"
    nested.write_text("train:\n  epochs: 1\n  epochs: 150\n")
    with pytest.raises(UserError, match=rf"^config file {nested}: key 'epochs' is written twice"):
        config_mod.load(nested)
    with pytest.raises(UserError, match="written twice"):
        config_mod.check_files([str(nested)])


def test_batch_size_is_checked_where_the_config_decides_the_image_count():
    assert config_mod.batch_size_problem(300, 7) is None
    assert "e.g. 298 or 300" in config_mod.batch_size_problem(300, 299)
    # a whole archive of unknown size: checked when training starts (tests/engine/test_train.py)
    config_mod.validate({"train": {"batch_size": 7}, "devices": ["cpu"]})


def test_run_folder_names_the_data_set(tmp_path):
    """Two archives with the same subset sizes train different runs; the offline copy
    keeps the folder hash its runs always had (the recorded runs are c8c533c3)."""
    offline = config_mod.validate({"devices": ["cpu"], "data": {"source": "archive"}})
    other = tmp_path / "other.tar.gz"
    other.write_bytes(b"another archive")
    moved = config_mod.validate({"devices": ["cpu"], "data": {"archive": str(other)}})
    hashes = {grid.settings_hash(c, "cpu") for c in (offline, moved)}
    assert len(hashes) == 2
    for name, size in (("a", 1), ("b", 2)):
        (tmp_path / name / "train" / "cat").mkdir(parents=True)
        (tmp_path / name / "train" / "cat" / "x.jpg").write_bytes(b"x" * size)
        folder = {"source": "folder", "folder": str(tmp_path / name)}
        hashes.add(grid.settings_hash(config_mod.validate({"data": folder}), "cpu"))
    assert len(hashes) == 4
    # what the cache does not read does not move the runs: Finder's files, notes
    (tmp_path / "b" / ".DS_Store").write_bytes(b"finder")
    (tmp_path / "b" / "train" / "cat" / "._x.jpg").write_bytes(b"fork")
    (tmp_path / "b" / "README.txt").write_text("notes")
    assert grid.settings_hash(config_mod.validate({"data": folder}), "cpu") in hashes
    recorded = config_mod.load(ROOT / "config" / "recorded.yaml")
    # the recording's own runs (the reference); its variants are the why study's causes
    assert {r["hash"] for r in grid.runs(recorded) if r["variant"] == "paper"} == {"c8c533c3"}


def run_json(**changes) -> str:
    """A whole, valid run description (as the workflow writes it) with ``changes`` made;
    model fields by their own names, a ``model`` dict replacing the model."""
    d = asdict(RunConfig(lr=0.01, device="cpu"))
    for key, value in changes.items():
        (d["model"] if key in d["model"] else d)[key] = value
    return json.dumps(d)


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
    (["--run", "{not json"], "--run is not valid JSON"),
    (["--run", "/nonexistent/run.json"], "--run /nonexistent/run.json cannot be read"),
    (["--run", "/dev/zero"], "--run /dev/zero is not a regular file"),
    # an error line quotes what it was given: escape sequences shown, never obeyed
    (["--run", "/no/\x1b[2J\x07\nrun"], "--run /no/\\x1b[2J\\x07\\nrun cannot be read"),
    # a JSON array is JSON, never looked up as a file
    (["--run", "[0.01, 0]"], "--run is a JSON array, not a run description"),
    # JSON scalars too, where no file has that name (it would be read as a file)
    (["--run", '"abc"'], "--run is a JSON string, not a run description"),
    (["--run", "null"], "--run is a JSON null, not a run description"),
    (["--run", "17"], "--run is a JSON number, not a run description"),
    (["--run", "[" * 5000 + "]" * 5000], "--run is nested"),
    (["--run", "/dev/null"], "--run /dev/null is not a regular file"),
    # a description planned for a device this machine lacks (a job on the wrong node)
    (["--run", json.dumps(asdict(RunConfig(lr=0.01, device=ABSENT)))], "is not present"),
    (["--run", "{}", "--seed", "0"], "--seed would be ignored"),
    # a partial description is refused, never filled with the defaults (150 epochs)
    (["--run", '{"lr": 0.01}'], "--run is not a run description: it lacks batch_size"),
    (["--run", '{"lr": 0.01, "model": {}, "speed": 9}'], "--run is not a run description"),
    (["--run", run_json(speed=9)], "unknown field 'speed'"),
    (["--run", run_json(model={"head": "softmax"})], "it lacks model.branch_norm, model.dropout"),
    (["--run", run_json(lr=float("nan"))], "--run field lr = nan is not allowed"),
    (["--run", run_json(lr="0.01")], "--run field lr = '0.01' is not allowed"),
    (["--run", run_json(epochs=0)], "--run field epochs = 0 is not allowed"),
    (["--run", run_json(epochs=True)], "--run field epochs = True is not allowed"),
    (["--run", run_json(epochs=2.5)], "--run field epochs = 2.5 is not allowed"),
    (["--run", run_json(momentum=float("inf"))], "--run field momentum = inf"),
    (["--run", run_json(precision="fp16")], "--run field precision = 'fp16' is not allowed"),
    (["--run", run_json(device="tpu")], "--run field device = 'tpu' is not allowed"),
    (["--run", run_json(compile=0)], "--run field compile = 0 is not allowed"),
    (["--run", run_json(head="sigmoid")], "--run field model.head = 'sigmoid'"),
    (["--run", run_json(kernel_sizes=[1, 2])], "--run field model.kernel_sizes = [1, 2]"),
    (["--run", run_json(num_classes=11)], "--run field model.num_classes = 11"),
    (["--run", run_json(pool_after=[2, 4, 9])], "model.pool_after = [2, 4, 9]"),
]


@pytest.mark.parametrize("args,fragment", CLI_CASES, ids=[" ".join(c[0]) for c in CLI_CASES])
def test_cli_rejects_bad_flags_with_status_2(args, fragment, tmp_path, capsys):
    """The train command's one-line refusals, run in this process through the CLI's own
    entry point (a child process per case cost about 2.6 s of start-up each)."""
    from repro.cli import main

    argv = ["train", "--cache", str(tmp_path / "none.npz"), "--out", str(tmp_path / "out")]
    try:
        code = main([*argv, *args])
    except SystemExit as e:  # argparse's own refusals
        code = e.code
    err = capsys.readouterr().err
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], err
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
        "allowed: an integer in 1-100000"
    )


def render_table() -> str:
    rows = [
        "# Bad input and the message it gets",
        "",
        "Generated by `python tests/plan/test_config.py > docs/bad-inputs.md`; every row is a",
        "test in tests/plan/test_config.py (the data rows in tests/engine/test_data.py).",
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
        "Data (tests/engine/test_data.py), all raised before anything is written:",
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
        "| member leaving the layout (`../train/cat/0000.jpg`, absolute) | the member |",
        "| split folder in the wrong case (`Train/`) | the member and the lower-case name |",
        "| a second tree (`train/` and `backup/train/`), archive or folder | both members |",
        "| member or file over 1 MiB (never read) | the member and its size |",
        "| image larger than 32x32 (size read from the header, not decoded) | the member |",
        "| decompression bomb, any other decoder error | the member and the error |",
        "| archive path is a directory | the path; use data.source: folder |",
        "| macOS `._*` and `__MACOSX/` files | (skipped: not images) |",
        "",
        "Data cache (tests/engine/test_data.py), when a stage loads it, before any training:",
        "",
        "| what is wrong | message names |",
        "|---|---|",
        "| empty or unreadable .npz | the cache file |",
        "| images not uint8 32x32x3 (float, wrong size) | the file, the split, dtype and shape |",
        "| labels not integers, out of 0..9, or fewer than images | the file and the split |",
        "| an empty split | the file and the split |",
        "| .json sidecar not JSON or not an object | the sidecar file |",
        "",
        "Training (tests/engine/test_train.py), before the first epoch:",
        "",
        "| what is wrong | what happens |",
        "|---|---|",
        "| checkpoint empty, truncated, garbage or crafted (code in a pickle) |"
        " named in the log, moved aside to `<file>.unreadable`, the run starts over;"
        " no code runs (weights_only) |",
        "| checkpoint that loads but does not restore | the same (`damaged`) |",
        "| checkpoint of another configuration or other data | not resumed (logged) |",
        "| a second trainer of the same run | one line naming the holder's pid and lock |",
        "| the workflow that started a trainer is killed | the trainer stops after its epoch,"
        " checkpoint kept |",
        "| a batch of exactly one image in the data at hand | the batch size, the image count,"
        " sizes that work |",
        "| `train --out` is an existing file, `timing --out` a folder | the path |",
        "| `train --run` not JSON, nested too deeply, not an object (a JSON array, or a bare"
        " JSON string, number or null where no file has that name, is JSON, never a file"
        " name), a file that cannot be read, is not a regular file or is over 1 MiB"
        " (not read), or with run flags too (tests/plan/test_config.py) | the flag and the"
        " reason; the flags that would be ignored |",
        "| `train --run` with a field missing (a partial description is refused, never filled"
        " with defaults) or unknown, a number not finite, of the wrong type (true, 2.5 epochs,"
        " a rate as text) or out of range, a precision, head, device or compile mode not"
        " allowed, model facts changed (tests/plan/test_config.py) | the field, its value and"
        " what the config allows |",
        "| the run's device is absent where the job runs (tests/plan/test_config.py) |"
        " the device and the present ones |",
        "| a power loss during a write | files are fsync'd before the atomic rename |",
        "",
        "Workflow (tests/workflow/test_workflow.py): every path in a rule's shell command is"
        " quoted (a project path with a space or `$(...)` is one argument, never run); the resolved"
        " config reaches its job in a script file, never as one argument; config files are read"
        " again strictly (a key written twice fails before any job). `devices: [auto]` is"
        " planned without torch; if torch then finds another device, a local run stops"
        " before any job naming both and the fix (name the devices). Run folders carry the"
        " data's identity (archive sha256 or the folder's image names and sizes; the"
        " offline copy keeps its"
        " hash, so recorded runs stay valid); learning rates keep full precision in folder"
        " names and flags. `timing.enabled: false` builds the report without measurements"
        " (tests/report/test_tables.py).",
        "",
        "Recorded runs (config key `recorded`, tests/plan/test_recorded.py), before any job:",
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
        "Recorded run files (repro.runfiles, tests/test_runfiles.py), checked before any job"
        " and again when a job copies the run; each is one line naming the run, the file(s)"
        " and the values:",
        "",
        "| what is wrong | message names |",
        "|---|---|",
        "| metrics.json's final or best accuracy, loss or best epoch differs from epochs.csv |"
        " both files, both values |",
        "| accuracy forged in both metrics.json and epochs.csv | confusion_by_epoch.csv's"
        " diagonal and epochs.csv, both values |",
        "| a prediction changed (accuracy of predictions.csv, its label/pred counts) |"
        " predictions.csv and metrics.json or confusion.csv |",
        "| run folder moved (another rate, seed, head or device) | metrics.json and its folder,"
        " both values |",
        "| metrics.json's settings or fingerprint edited | the key, both values |",
        "| run folder not named by the settings hash (of this config or of the recording) |"
        " the hash, both candidates |",
        "| epoch duplicated, missing or out of order (epochs, times, confusion by epoch) |"
        " the file, epochs 1..N |",
        "| steps.csv rows not steps_per_epoch per epoch, or out of order | the file, the counts |",
        "| accuracy outside [0, 1], negative or non-finite loss or time, text in a number |"
        " the file, the column, the value |",
        "| wrong header or a ragged line | the file, the header or line |",
        "| confusion.csv not 10x10, a negative count, counts not summing to n_test |"
        " the file, the sum and n_test |",
        "| predictions.csv label or prediction outside 0..9, a row missing | the file, the value |",
        "| a run copied under another seed, rate or folder (its seed and fingerprint rewritten,"
        " its histories or predictions not; also `record --add` and the study;"
        " tests/plan/test_run_identity.py) | both run folders and the file with the same values |",
        "| metrics.json's precision not its config's (a bf16 metrics.json in an fp32 folder) |"
        " both values |",
        "| a run folder named by another variant's settings hash, or not listed with its"
        " fingerprint in the recording's provenance.json | the hash or folder, both values |",
        "| a NaN accuracy; a negative, NaN or infinite time or rate (metrics.json, the timing"
        " JSON; also where the report reads a timing JSON) | the file, the key, the value |",
        "| a run's config with sizes beyond the schema's bounds (epochs, widths, ...) |"
        " the field and what is allowed |",
        "",
        "Recording manifest (tests/test_runfiles.py, tests/test_recording.py):",
        "",
        "| what is wrong | message names |",
        "|---|---|",
        "| a recorded file edited after recording | the file, both sha256; restore or record"
        " again |",
        "| a file added after recording | the file |",
        "| no manifest in provenance.json | the fix: `python -m repro record --manifest"
        " <folder>` |",
        "| a link in a recording (manifest, `record --add`) | the link |",
        "| `record` destination through a link, or outside the project | the path |",
        "| a device tarball's summary.json runs or calibration, or plan.json's config, not"
        " of the kinds a device run writes (`record`) | the tarball and the key |",
        "| a data cache JSON (`data/cifar10-N.json`) of a device tarball or a recording with"
        " a JPEG quality outside 1-95 or an added MSE outside 0-65025 (`record`, the report;"
        " tests/report/test_why.py) | the member or file and the value |",
        "",
        "Device command (`device-run --queue`, and its children `wide-check --run`,"
        " `measure-layouts --run`, `train-pack --runs`; tests/engine/test_device_queue.py,"
        " tests/engine/test_wide.py), before any data is prepared:",
        "",
        "| what is wrong | message names |",
        "|---|---|",
        "| a queued run's variant not a variant name (a path such as `../x`, control"
        " characters) | the run's number and the name, escaped |",
        "| a queued run's description, or a child's `--run`/`--runs`, with a field missing or"
        " unknown, of the wrong type, not finite or out of range (the schema's bounds: no"
        " 1e30 epochs; a stand-in model may have fewer blocks, at least one:"
        " `widths: []` is refused) | the run's number, the field and what is allowed |",
        "| a queued run's folder not the one its description trains into (the settings hash"
        " of another setting, such as a bf16 run in the fp32 folder) | the run's number,"
        " both hashes |",
        "| `train`/`train-pack` given a checkpoint or progress path in a run folder (its own,"
        " or another run's: deleted when done, before) or one path for two runs |"
        " the flag and the path, before any work |",
        "| a queued run's data section not an object, with a key the config's data section"
        " lacks, a jpeg_quality outside 1-95 or a subset size outside the data | the run's number,"
        " the key and its value |",
        "",
        "Reading files a user or another machine made (repro.files.read_regular,"
        " read_json_bounded; tests/test_runfiles.py):",
        "",
        "| what is wrong | message names |",
        "|---|---|",
        "| a FIFO, a device or /dev/zero (opened non-blocking: never hangs) | the path |",
        "| a file over the reader's limit (checked before reading) | the path and size |",
        "| JSON nested deeper than 32 levels, or deep enough for a RecursionError | the path |",
        "| the same for every JSON a report stage reads (metrics.json, timing JSONs, the"
        " resolved config, provenance; repro.files.read_json, 64 MiB) | the file |",
        "",
        "Hostile files, paths and options (one safe-file layer, repro.files;"
        " tests/test_hostile_inputs.py):",
        "",
        "| what is wrong | what happens |",
        "|---|---|",
        "| a link, folder, FIFO or device at an output path (`queue --out`, every writer) |"
        " one line naming the path, nothing written; the temporary file is new (exclusive,"
        " never through a link) under a random name: a link planted at `F.tmp` is not"
        " followed |",
        "| a link inside an output folder (a run folder's files, a recording) | one line"
        " naming the link |",
        "| `data.archive` a FIFO or /dev/zero (`check`, `queue`, `snakemake -n`) | one line"
        " at once (the archive's sha256 is streamed from a regular file, bounded) |",
        "| `data.folder: /` or another system folder; a data folder over 8 levels deep,"
        " 200,000 files or 8 GiB | one line at once |",
        '| a config file that is /dev/zero or a FIFO | not a regular file (not "does not exist") |',
        "| a problem found while Snakemake plans (a variant identical to the reference, an"
        " old run's folder requested as a target) | its one line, no stack lines |",
        "| `repro queue ... \\| head -1` (the reader stops) | a quiet exit |",
        "| a numeric option not finite or out of range (`status --interval nan`,"
        " `--threads 0`, `device-run --budget-s inf`) | one line naming the option and"
        " its range |",
        "| `record --label` over 100 characters | one line |",
        "| a calibration cache with a key missing, text for a number, a step time of"
        " Infinity or 1e-12, a negative start-up time | one line naming the file and key"
        " (delete it: the estimate measures again) |",
        "| a progress file past its end (epoch 500 of 1), with an epoch time of 1e308 or a"
        " process number beyond any system's | not read; an ETA is never negative |",
        "| the same tarball added twice (`record --add`) | one line: added before |",
        "| a recording's provenance.json with a malformed field (runs of integers,"
        " sessions a string, a session not an integer, NaN; the schema"
        " workflow/schemas/provenance.schema.yaml) | one line naming the key, in"
        " `record --add`, the workflow and the report |",
        "| a recording's provenance.json edited after recording | its digest in the"
        " manifest differs: one line |",
        "| `queue --recorded` or a config file that cannot be read (a link loop) | one"
        ' line naming it as a read, not "cannot write" |',
        "| generated hostile files for every reader: config, variants, queue, run"
        " description, recorded run files, provenance, tarball members, calibration"
        " cache, progress file (Hypothesis) | a clean result or one line; never a"
        " traceback, a hang or a write outside the project |",
        "",
        "`python -m repro check FILE` merges FILE over config/config.yaml as `snakemake"
        " --configfile FILE` does (tests/plan/test_config.py): a bad value or a missing"
        " config/config.yaml fails check as it fails the workflow.",
        "",
        "Strings from files, escaped for where they are shown (repro.text):",
        "",
        "| what is in the data | what happens |",
        "|---|---|",
        "| escape sequences, control or bidi characters in a run's log or progress file, a"
        " device name, a recorded value quoted in an error (tests/plan/test_status.py) |"
        " shown as Python escapes (`\\x1b`) in status, estimate, the train outcome line and"
        " every `error:` line |",
        "| rich markup (`[red]`, `[link=...]`) in a log line (tests/plan/test_status.py) |"
        " shown as written, not interpreted |",
        "| a text cell starting with `=`, `+`, `-`, `@` (a device name from a timing JSON)"
        " (tests/report/test_tables.py) | written with a leading `'`; numbers and"
        " number-like text such as -0.5 kept |",
        "| `$...$` in a device name, a paper key of the config or a class name of"
        " confusion.csv (tests/report/test_figures.py) | drawn as written, never as math"
        " text (an unknown TeX command crashed the figures stage) |",
        "| HTML or `{{ ... }}` in a device name (tests/report/test_report.py) | escaped in"
        " the report's HTML (autoescape on), never evaluated |",
        "",
        "Report and recorded stages (tests/workflow/test_workflow.py): a failing stage's"
        " one-line error (or a traceback's last line) is printed in Snakemake's output,"
        " not only in its log.",
        "",
        "A lock left by a killed Snakemake (tests/plan/test_snakemake_lock.py):"
        " `scripts/run.sh` stops with one line naming `.snakemake/locks` and the fix"
        " (`snakemake --unlock`, then `--rerun-incomplete`) when no Snakemake runs in the"
        " project on this host.",
        "",
    ]
    return "\n".join(rows)


def test_docs_table_is_current():
    doc = ROOT / "docs" / "bad-inputs.md"
    assert doc.read_text() == render_table(), "regenerate: python tests/plan/test_config.py"


if __name__ == "__main__":
    print(render_table(), end="")


@pytest.mark.parametrize(
    "version_py, driver, visible, expected",
    [
        ("cuda: Optional[str] = '12.8'\nhip: Optional[str] = None\n", True, None, "cuda"),
        ("cuda: Optional[str] = '12.8'\n", True, "", "cpu"),  # CUDA_VISIBLE_DEVICES=""
        ("cuda: Optional[str] = '12.8'\n", True, "-1", "cpu"),
        ("cuda: Optional[str] = '12.8'\n", False, None, "cpu"),  # no NVIDIA driver
        ("cuda: Optional[str] = None\n", True, None, "cpu"),  # CPU-only torch on a GPU host
    ],
)
def test_auto_device_is_guessed_without_importing_torch(
    monkeypatch, tmp_path, version_py, driver, visible, expected
):
    """Planning resolves `auto` from torch's build (version.py read as text) and the
    driver; the guess must say cpu wherever torch could not use the GPU."""
    import importlib.machinery
    import platform

    (tmp_path / "torch").mkdir()
    (tmp_path / "torch" / "version.py").write_text(version_py)
    spec = importlib.machinery.ModuleSpec("torch", None, is_package=True)
    spec.submodule_search_locations = [str(tmp_path / "torch")]
    monkeypatch.setattr(devices.importlib.util, "find_spec", lambda name: spec)
    monkeypatch.setattr(devices, "_nvidia_gpu", lambda: driver)
    monkeypatch.setattr(platform, "system", lambda: "Linux")
    if visible is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    devices._torch_build.cache_clear()
    try:
        assert devices.likely_auto() == expected
    finally:
        devices._torch_build.cache_clear()


def test_a_wrong_auto_guess_stops_a_local_run_before_any_job(monkeypatch):
    """The torch-free guess planned cuda folders, torch finds no GPU: one line, and the
    fix (name the devices), from the start-up check that imports torch."""
    cfg = config_mod.validate({"devices": ["auto"]})
    assert grid.runs(cfg)[0]["device"] == devices.likely_auto()
    monkeypatch.setattr(devices, "likely_auto", lambda: "cuda")
    monkeypatch.setattr(engine_devices, "available", lambda: ["cpu"])
    with pytest.raises(UserError, match=r"auto was planned as cuda .* torch here finds cpu"):
        engine_devices.check_presence(cfg)
    monkeypatch.setattr(devices, "likely_auto", lambda: "cpu")
    engine_devices.check_presence(cfg)  # a right guess passes


def test_an_oversized_run_description_file_is_refused_unread(tmp_path, capsys):
    from repro.cli import main

    big = tmp_path / "run.json"
    big.write_bytes(b" " * ((1 << 20) + 1))
    args = ["train", "--cache", "c.npz", "--out", str(tmp_path / "out"), "--run", str(big)]
    assert main(args) == 2
    assert "has 1048577 bytes, more than the 1048576 allowed" in capsys.readouterr().err


def test_the_workflows_descriptions_pass_the_run_checks(tmp_path):
    """What the workflow and device-run pass is accepted unchanged (file or text), and
    a rate written as an integer is read as the number it is."""
    from repro.plan.description import from_json

    cfg = config_mod.load(ROOT / "config" / "smoke.yaml")
    for run in grid.runs(cfg):
        text = grid.run_description(cfg, run["head"], run["lr"], "cpu", run["seed"], run["hash"])
        assert from_json(text) == RunConfig.from_dict(json.loads(text))
    (tmp_path / "run.json").write_text(text)
    assert from_json(str(tmp_path / "run.json")) == from_json(text)
    assert from_json(run_json(lr=1)).lr == 1.0 and isinstance(from_json(run_json(lr=1)).lr, float)


def test_check_merges_the_project_config_as_snakemake_does(tmp_path):
    """`check other.yaml` sees config/config.yaml under it, as `snakemake --configfile
    other.yaml` does: a bad value there, or a key other.yaml leaves unset, counts."""
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text("train: {epochs: 0}\nseeds: [0, 1, 2]\n")
    (tmp_path / "other.yaml").write_text("learning_rates: [0.01]\n")

    def check(*args):
        return subprocess.run(
            [sys.executable, "-m", "repro", "check", "--no-device-check", *args],
            capture_output=True,
            text=True,
            cwd=tmp_path,
        )

    res = check("other.yaml")
    assert res.returncode == 2
    assert res.stderr.strip() == (
        "error: other.yaml: config key train.epochs = 0 is not allowed; allowed: an integer in "
        "1-100000"
    )
    (tmp_path / "config" / "config.yaml").write_text("train: {epochs: 3}\nseeds: [0, 1, 2]\n")
    res = check("other.yaml")
    assert res.returncode == 0 and res.stdout.strip() == "other.yaml: ok (3 training runs)"
    (tmp_path / "config" / "config.yaml").unlink()
    res = check("other.yaml")
    assert res.returncode == 2 and "config/config.yaml does not exist" in res.stderr
