"""One run's description as a training command receives it: the whole JSON description
(`--run`, what the workflow and the GPU command pass), or the run flags checked through
the config's schema (the same checks and messages as a config file)."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, fields, replace

from ..errors import UserError
from ..files import loads_bounded, read_json_bounded
from . import config, grid, paper, schema
from .config import short
from .settings import AXES, ModelSpec, RunConfig, config_keys

MAX_DESCRIPTION_BYTES = 1 << 20
# a description is two levels deep (the model's lists are the third)
MAX_DESCRIPTION_DEPTH = 4


def flag_name(path: str, key: str) -> str:
    """A run setting's flag: the field's name for a grid axis (--lr, --seed, --device,
    --head), else the config key's own name (--momentum, --cuda-deterministic)."""
    name = path.split(".")[-1] if key in AXES else key.split(".")[-1]
    return "--" + name.replace("_", "-")


def read_description(run: str) -> dict:
    """--run: JSON text (an object), or the path of a file holding it; bounded in size
    and nesting, and only a regular file is read (never a FIFO or a device)."""
    text = run.strip()
    try:
        if text.startswith(("{", "[")):  # JSON, never a file name (`[1]` is not a path)
            value = loads_bounded(text, "--run", MAX_DESCRIPTION_DEPTH)
        elif not os.path.lexists(run) and _json_scalar(text):
            # "abc", 17, null: JSON the user meant as a description, not a missing file
            value = json.loads(text)
        else:
            value = read_json_bounded(run, MAX_DESCRIPTION_BYTES, "--run", MAX_DESCRIPTION_DEPTH)
    except UserError as e:
        raise UserError(f"{e}; pass the workflow's description, or a file holding it") from None
    if not isinstance(value, dict):
        raise UserError(
            f"--run is a JSON {JSON_KINDS.get(type(value), 'value')}, not a run description "
            f"(an object); "
            f"{FIELDS_HINT}"
        )
    return value


def _json_scalar(text: str) -> bool:
    """Whether ``text`` (short) is a JSON string, number, boolean or null."""
    if len(text) > 1000:
        return False
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


JSON_KINDS = {list: "array", str: "string", int: "number", float: "number", bool: "boolean"}
JSON_KINDS[type(None)] = "null"


def from_json(run: str) -> RunConfig:
    """--run, checked with the config's rules (every field present, of its type, finite
    and allowed) before any work: a partial description is refused, never filled with
    defaults (150 epochs where the user meant 2)."""
    return RunConfig.from_dict(checked(read_description(run)))


def checked(d: dict) -> dict:
    """The description ``d`` with its numbers typed (1 -> 1.0 for a rate), or UserError
    naming the first missing, unknown or disallowed field. Without jsonschema: the GPU
    machine that runs `train --run` lacks it."""
    _same_fields(d, field_paths(RunConfig), "")
    model = d["model"]
    if not isinstance(model, dict):
        raise UserError(f"--run field model = {short(model)} is not an object; {FIELDS_HINT}")
    _same_fields(model, field_paths(ModelSpec), "model.")
    out = {**d, "model": dict(model)}
    for path, key in config_keys().items():
        node = schema.node(key)
        if key in AXES:  # the config lists them; a run has one value
            allowed = f"one value of the config's {key}: {node['description']}"
            node = {**schema.resolve(node["items"]), "description": allowed}
        section, _, name = path.rpartition(".")
        target = out[section] if section else out
        target[name] = _allowed(path, node, target[name])
    for name, fact in (("num_classes", paper.N_CLASSES), ("in_channels", 3)):
        if not schema.same(model[name], fact):
            raise UserError(f"--run field model.{name} = {short(model[name])}; allowed: {fact}")
    m = out["model"]
    if m["pool_after"] and max(m["pool_after"]) > len(m["widths"]):
        raise UserError(
            f"--run field model.pool_after = {m['pool_after']} names a block beyond the "
            f"{len(m['widths'])} blocks of model.widths"
        )
    return out


FIELDS_HINT = "pass the one the workflow writes (python -m repro train --help lists the fields)"


def field_paths(cls) -> set[str]:
    return {f.name for f in fields(cls)}


def _same_fields(d: dict, expected: set[str], prefix: str) -> None:
    missing, unknown = sorted(expected - set(d)), sorted(set(d) - expected)
    if missing:
        names = ", ".join(prefix + n for n in missing)
        raise UserError(f"--run is not a run description: it lacks {names}; {FIELDS_HINT}")
    if unknown:
        names = ", ".join(short(prefix + str(n)) for n in unknown)
        raise UserError(f"--run is not a run description: unknown field {names}; {FIELDS_HINT}")


def _allowed(path: str, node: dict, value):
    """``value`` typed as the schema node says, or UserError in the config's words."""
    if not schema.fits(node, value):
        raise UserError(
            f"--run field {path} = {short(value)} is not allowed; allowed: {node['description']}"
        )
    if node.get("type") == "number":
        return float(value)
    return value


def from_flags(given: dict, timing: bool, devices) -> RunConfig:
    """The run flags ({field path: (config key, value)}) as a one-run config, validated
    and its devices present; ``devices`` checks presence and resolves `auto` on this host
    (the engine's devices, which know what torch finds)."""
    raw: dict = {"timing": {"enabled": False}}
    for key, value in given.values():
        if key in AXES:
            raw[key] = [value]
        else:
            section, name = key.split(".")
            raw.setdefault(section, {})[name] = value
    cfg = config.validate(raw)
    devices.check_presence(cfg)
    device = devices.resolve(cfg["devices"][0])
    rc = grid.run_config(
        cfg, cfg["heads"][0], cfg["learning_rates"][0], device, cfg["seeds"][0], False
    )
    if timing and "train.epochs" not in {key for key, _ in given.values()}:
        rc = replace(rc, epochs=cfg["timing"]["epochs"])
    return rc


def run_description(run: str | None, given: dict, timing: bool, devices) -> RunConfig:
    """The description from --run or from the flags (never both), its device present."""
    if run is not None and given:
        flags = ", ".join(flag_name(path, key) for path, (key, _) in given.items())
        raise UserError(
            f"--run is the whole run description; {flags} would be ignored: "
            "give either --run or the run flags"
        )
    if run is None:
        return from_flags(given, timing, devices)
    rc = from_json(run)
    devices.resolve(rc.device)  # present on this machine, or one line saying so
    return rc


# the model's sizes: the device command trains stand-in models smaller than a config
# allows (its tests; a GPU session's first minute), so only their kind is checked
STANDIN_SIZES = ("widths", "kernel_sizes", "pool_after", "hidden")


def checked_any_size(desc) -> RunConfig:
    """A description checked as `train --run` checks it (every field present, of its type,
    finite and allowed), but for the model's sizes (positive integers): what the device
    command's queue, wide-check, measure-layouts and train-pack read. A NaN or negative
    epoch count would fit every plan and fail only in its job, after the measurement."""
    if not isinstance(desc, dict) or not isinstance(desc.get("model"), dict):
        raise UserError("no description (an object with a model object)")
    model = desc["model"]
    for key in STANDIN_SIZES:
        # the schema's own bounds (one source: no 1e9 channels), but fewer blocks than
        # its 6 (at least one: `widths: []` trained a model without convolutions)
        node = schema.node(f"model.{key}")
        if key == "widths":
            node = {**node, "minItems": 1}
        if not schema.fits(node, model.get(key)):
            raise UserError(f"model.{key} = {short(model.get(key))} is not {standin_sizes(key)}")
    if model["pool_after"] and max(model["pool_after"]) > len(model["widths"]):
        raise UserError(
            f"model.pool_after = {short(model['pool_after'])} names a block beyond the "
            f"{len(model['widths'])} blocks of model.widths"
        )
    default = json.loads(json.dumps(asdict(ModelSpec())))  # as JSON has it
    standin = {k: default[k] for k in STANDIN_SIZES}
    typed = checked({**desc, "model": {**model, **standin}})
    sizes = {k: model[k] for k in STANDIN_SIZES}
    return RunConfig.from_dict({**typed, "model": {**typed["model"], **sizes}})


def standin_sizes(key: str) -> str:
    """What a stand-in model's ``key`` may be, from the schema's bounds."""
    node = schema.node(f"model.{key}")
    items = schema.resolve(node.get("items", node))
    bounds = f"in {items['minimum']}-{items['maximum']}"
    if key == "hidden":
        return f"an integer {bounds}"
    odd = " odd" if "not" in items else ""
    least = {"widths": "1 to 6", "pool_after": "at most 5 distinct"}.get(key, "1 to 5 distinct")
    return f"a list of {least}{odd} integers {bounds}"
