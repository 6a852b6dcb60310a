# Validation and the run grid. The logic lives in the `repro` package (src/repro/plan/);
# this file only turns it into paths, flags and resources for the rules.
import functools
import json
import os
import sys
from pathlib import Path

from snakemake.utils import validate

sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from repro.plan import config as repro_config
from repro.plan import dataset as repro_dataset
from repro.plan import grid as repro_grid
from repro.plan import resources as repro_resources
from repro.plan import estimate as repro_estimate
from repro.plan import progress as repro_progress
from repro.plan import recorded as repro_recorded
from repro.errors import UserError
from repro.text import for_terminal

# every planning step below raises UserError for what the user can fix: one line, then
# stop (never Snakemake's traceback through this file and the repro modules)
try:
    # Snakemake read the config files with plain YAML; read them strictly (duplicate keys)
    repro_config.check_files(workflow.configfiles)
    # device presence is checked in onstart, where Snakemake knows the executor
    config.update(repro_config.validate(config))
    validate(config, "../schemas/config.schema.yaml")

    RUN = repro_grid.RUN_DIR
    RUNS = repro_grid.runs(config)
    # the reference's cache (the report's data facts) and every data variant's own
    CACHE = repro_dataset.cache_path(config)
    DATA_META = CACHE.replace(".npz", ".json")
    CACHES = repro_grid.data_caches(config)
    TIMING_DEVICES = repro_grid.timing_devices(config)
    # recorded runs: checked against this config now, before any job; then copied, not
    # trained
    RECORDED = None
    RUN_FILES = repro_recorded.RUN_FILES
    if config["recorded"]:
        RECORDED = repro_recorded.plan(config, repro_grid.recorded_expectations(config))
        RUNS = RECORDED.runs
        TIMING_DEVICES = RECORDED.timing_devices
        DATA_META = "results/recorded/data.json"
    # the runs that train together on cuda (config key train.pack): one job each
    # (packs.smk)
    PACKS = [] if RECORDED else repro_grid.packs(config)
    PARTITION = repro_resources.partition_resource(config)
except UserError as e:
    sys.exit(f"error: {for_terminal(e)}")


TRAINED_FILES = repro_recorded.TRAINED_FILES


def run_outputs(name):
    return [f"{RUN.format(**r)}/{name}" for r in RUNS]


def timing_outputs():
    return expand("results/timing/{device}/timing.json", device=TIMING_DEVICES)


def one_line(plan):
    """An input function whose UserError (an old run's folder requested, say) ends the
    workflow with its one line, not Snakemake's stack lines through this file."""

    @functools.wraps(plan)  # Snakemake passes what the signature names (output, ...)
    def planned(*args, **kw):
        try:
            return plan(*args, **kw)
        except UserError as e:
            print(f"error: {for_terminal(e)}", file=sys.stderr, flush=True)
            os._exit(1)  # Snakemake wraps any exception, SystemExit too, with its stack

    return planned


@one_line
def run_description(wildcards):
    return repro_grid.run_description(config, **wildcards)


@one_line
def run_cache(wildcards):
    return repro_grid.run_cache(config, wildcards.device, wildcards.hash)


@one_line
def train_flags(wildcards, output):
    # from the outputs: Snakemake leaves params derived from them out of its params
    # trigger, so how the runs were packed never reruns a finished run
    return repro_grid.train_job_flags(config, output)


def cache_config(wildcards):
    path = f"resources/data/cifar10-{wildcards.tag}.npz"
    if path not in CACHES:
        raise ValueError(f"no variant of the config uses the data cache {path}")
    return CACHES[path]


def job_resource(kind, key):
    return lambda wildcards: repro_resources.job_resources(
        config, kind, wildcards.device
    )[key]


onstart:
    try:
        if not workflow.local_exec:
            repro_grid.check_cluster_devices(config)
        elif not RECORDED:
            # torch, to check the devices this host really has: only when jobs will run
            from repro.engine.devices import check_presence

            check_presence(config)
    except UserError as e:
        sys.exit(f"error: {for_terminal(e)}")
    # what this run will do and how long it takes; never stops it
    if not RECORDED:
        repro_estimate.announce(
            config, RUNS, TIMING_DEVICES, Path("."), local=workflow.local_exec
        )
