"""The config's JSON schema (``workflow/schemas/config.schema.yaml``): the one source of
the user's settings, their defaults and what each allows. Read by validation
(repro.plan.config), by the run description's defaults (repro.plan.settings) and by the train
command's flags (repro.cli); no torch, no jsonschema (the GPU machine lacks it).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import yaml

from . import paper

PATH = Path(__file__).resolve().parents[3] / "workflow" / "schemas" / "config.schema.yaml"


@cache
def load() -> dict:
    s = yaml.safe_load(PATH.read_text())
    # the paper's reported values are facts of the paper (paper.py), not written again
    # in the schema: they only become the defaults a user may override
    stated = s["properties"]["paper"]["properties"]
    stated["test_accuracy"]["default"] = dict(paper.TEST_ACCURACY)
    stated["epochs"]["default"] = paper.EPOCHS
    stated["timing_minutes_5_epochs"]["default"] = dict(paper.TIMING_MINUTES_5_EPOCHS)
    return s


def resolve(node: dict) -> dict:
    """``node`` with its ``$ref`` (``#/$defs/device``) followed; its own keys next to the
    reference (a description, a default) are kept over the shared definition's."""
    if "$ref" not in node:
        return node
    target = load()
    for part in node["$ref"].lstrip("#/").split("/"):
        target = target[part]
    return {**target, **{k: v for k, v in node.items() if k != "$ref"}}


def node(key: str) -> dict:
    """The schema of a dotted config key such as ``train.epochs`` (references followed)."""
    out = load()
    for part in key.split("."):
        out = resolve(out["properties"][part])
    return out


def default(key: str):
    return node(key)["default"]
