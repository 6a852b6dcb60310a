"""The config's JSON schema (``workflow/schemas/config.schema.yaml``): the one source of
the user's settings, their defaults and what each allows. Read by validation
(repro.plan.config), by the run description's defaults (repro.plan.settings) and by the train
command's flags (repro.cli); no torch, no jsonschema (the GPU machine lacks it).
"""

from __future__ import annotations

import math
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


# ---- checking a value by hand (the GPU machine has no jsonschema) -----------------------

TYPES = {"integer": int, "number": (int, float), "string": str, "boolean": bool, "array": list}


def same(value, allowed) -> bool:
    """JSON equality that keeps booleans apart from numbers (False is not 0)."""
    return value == allowed and isinstance(value, bool) == isinstance(allowed, bool)


def fits(node: dict, value) -> bool:
    """Whether ``value`` is allowed by the schema ``node`` (references followed), for the
    keywords the run fields and the data keys use: type (one, or a list with "null"),
    enum, bounds, items, not multipleOf; not objects."""
    node = resolve(node)
    if "enum" in node and not any(same(value, e) for e in node["enum"]):
        return False
    kind = node.get("type")
    kinds = [kind] if isinstance(kind, str) else list(kind or [])
    if value is None:
        return not kinds or "null" in kinds
    if kinds and not any(k != "null" and isinstance(value, TYPES[k]) for k in kinds):
        return False
    if isinstance(value, bool):  # JSON true is no count
        return not kinds or "boolean" in kinds
    if isinstance(value, (int, float)):
        return _in_bounds(node, value)
    if isinstance(value, list):
        n, items = len(value), node.get("items", {})
        if not node.get("minItems", 0) <= n <= node.get("maxItems", n):
            return False
        if node.get("uniqueItems") and len(set(map(repr, value))) < n:
            return False
        return all(fits(items, v) for v in value)
    return True


def _in_bounds(node: dict, x) -> bool:
    if not math.isfinite(x):
        return False
    if node.get("type") == "integer" and not isinstance(x, int):
        return False
    low, high = node.get("minimum", -math.inf), node.get("maximum", math.inf)
    above = node.get("exclusiveMinimum", -math.inf)
    below = node.get("exclusiveMaximum", math.inf)
    excluded = node.get("not", {}).get("multipleOf")  # kernel sizes: odd only
    return low <= x <= high and above < x < below and not (excluded and x % excluded == 0)
