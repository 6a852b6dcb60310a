# Validation and the run grid. The logic lives in the `repro` package (src/repro/config.py);
# this file only turns it into paths, flags and resources for the rules.
import json
import sys
from pathlib import Path

from snakemake.utils import validate

sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from repro import config as repro_config
from repro import estimate as repro_estimate
from repro import progress as repro_progress
from repro import recorded as repro_recorded
from repro.errors import UserError

try:
    # Snakemake read the config files with plain YAML; read them strictly (duplicate keys)
    repro_config.check_files(workflow.configfiles)
    # device presence is checked in onstart, where Snakemake knows the executor
    _checked = repro_config.validate(config, check_devices=False)
except UserError as e:
    sys.exit(f"error: {e}")
config.update(_checked)
validate(config, "../schemas/config.schema.yaml")

RUN = repro_config.RUN_DIR
RUNS = repro_config.runs(config)
CACHE = f"resources/data/cifar10-{repro_config.data_tag(config)}.npz"
DATA_META = CACHE.replace(".npz", ".json")
TIMING_DEVICES = repro_config.timing_devices(config)
# recorded runs: checked against this config now, before any job; then copied, not trained
RECORDED = None
RUN_FILES = repro_recorded.RUN_FILES
if config["recorded"]:
    try:
        RECORDED = repro_recorded.plan(
            config, repro_config.recorded_expectations(config)
        )
    except UserError as e:
        sys.exit(f"error: {e}")
    RUNS = RECORDED.runs
    TIMING_DEVICES = RECORDED.timing_devices
    DATA_META = "results/recorded/data.json"


def run_outputs(name):
    return [f"{RUN.format(**r)}/{name}" for r in RUNS]


def timing_outputs():
    return expand("results/timing/{device}/timing.json", device=TIMING_DEVICES)


def run_description(wildcards):
    return repro_config.run_description(config, **wildcards)


def job_resource(kind, key):
    return lambda wildcards: repro_config.job_resources(config, kind, wildcards.device)[
        key
    ]


PARTITION = repro_config.partition_resource(config)


onstart:
    try:
        repro_config.check_devices(config, local=workflow.local_exec)
    except UserError as e:
        sys.exit(f"error: {e}")
    # what this run will do and how long it takes; never stops it
    if not RECORDED:
        repro_estimate.announce(
            config, RUNS, TIMING_DEVICES, Path("."), local=workflow.local_exec
        )
