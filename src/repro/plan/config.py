"""The user's configuration, read and validated: strict YAML (a key written twice is an
error), the schema's defaults, one-line messages for every bad value, and the semantic
checks the schema cannot express. What the config plans (the run grid, data identity,
job resources) lives in grid.py, dataset.py and resources.py.

The JSON schema in ``workflow/schemas/config.schema.yaml`` is the single source of
allowed values and defaults; Snakemake validates with it too.
"""

from __future__ import annotations

import copy
import json
import math
import os
import reprlib
from functools import cache
from pathlib import Path

import yaml

from ..errors import UserError
from . import paper
from . import schema as schema_mod
from . import variants as variants_mod
from .dataset import train_images

schema = schema_mod.load


# Values quoted in messages are cut short: a config built from YAML aliases can be a
# small file that expands to billions of items when printed.
_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxlist, _SHORT.maxdict = 2, 6, 6
_SHORT.maxstring = _SHORT.maxother = 60
# More nodes than any real config has; a walk stops here instead of expanding an alias bomb.
MAX_CONFIG_NODES = 10_000


def short(value) -> str:
    return _SHORT.repr(value)


def _key(path) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(top level)"


def _rule(error) -> str:
    """The innermost schema description on the way to the failing keyword."""
    node, rule = schema(), None
    for part in list(error.absolute_schema_path)[:-1]:
        node = node[part]
        if isinstance(node, dict):
            node = schema_mod.resolve(node)
            rule = node.get("description", rule)
    return rule or error.message


def _describe(error) -> str:
    key = _key(error.absolute_path)
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed))
        prefix = f"{key}." if error.absolute_path else ""
        return (
            f"config key {prefix}{extra[0]} is unknown (typo?); allowed keys: {', '.join(allowed)}"
        )
    rule = _rule(error)
    if error.validator == "uniqueItems":
        seen: list = []
        dup = next(v for v in error.instance if v in seen or seen.append(v))
        return f"config key {key} has the duplicate value {short(dup)}; allowed: {rule}"
    if error.validator == "minItems" and not error.instance:
        return f"config key {key} is an empty list; allowed: {rule}"
    return f"config key {key} = {short(error.instance)} is not allowed; allowed: {rule}"


def _coerce(node: dict, value):
    """Numbers and booleans typed on the command line (`--config learning_rates=[0.1]`)
    arrive as strings; turn them into numbers and booleans where the schema wants them."""
    node = schema_mod.resolve(node)
    types = node.get("type", [])
    types = [types] if isinstance(types, str) else types
    if isinstance(value, dict):
        props = node.get("properties", {})
        extra = node.get("additionalProperties")
        for k, v in value.items():
            sub = props.get(k, extra if isinstance(extra, dict) else None)
            if sub is not None:
                value[k] = _coerce(sub, v)
    elif isinstance(value, list) and isinstance(node.get("items"), dict):
        return [_coerce(node["items"], v) for v in value]
    elif isinstance(value, str) and ("number" in types or "integer" in types):
        parsed = yaml.safe_load(value)
        if isinstance(parsed, (int, float)) and not isinstance(parsed, bool):
            return parsed
    elif isinstance(value, str) and "boolean" in types and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return value


def _fill_defaults(node: dict, cfg: dict) -> None:
    for key, sub in node.get("properties", {}).items():
        sub = schema_mod.resolve(sub)
        if key not in cfg and "default" in sub:
            cfg[key] = copy.deepcopy(sub["default"])
        if sub.get("type") == "object" and isinstance(cfg.get(key), dict):
            _fill_defaults(sub, cfg[key])


def fill_defaults(cfg: dict) -> None:
    """Give ``cfg`` the schema's defaults in place, without validating it (for the
    repository's own config files on machines without jsonschema)."""
    _fill_defaults(schema(), cfg)


def validate(cfg) -> dict:
    """Return the config with defaults filled in, or raise UserError (one line). Whether
    its devices exist on this host is the engine's check (engine.devices.check_presence)."""
    if cfg is None or cfg == {}:
        raise UserError(
            "the config is empty; give a YAML mapping such as config/config.yaml "
            "(keys: data, model, heads, learning_rates, devices, seeds, train, ...)"
        )
    if not isinstance(cfg, dict):
        raise UserError(
            f"the config must be a YAML mapping of keys to values, got a {type(cfg).__name__}; "
            "start from config/config.yaml"
        )
    # imported here: the training side (and the GPU machine, which lacks jsonschema)
    # imports this module for run_config without validating
    import jsonschema

    _check_values(cfg)
    cfg = _coerce(schema(), copy.deepcopy(cfg))
    _check_values(cfg)  # again: --config strings coerced to numbers may be nan
    validator = _validator_class(jsonschema)(schema())
    errors = sorted(validator.iter_errors(cfg), key=lambda e: (len(e.absolute_path), e.path))
    if errors:
        raise UserError(_describe(errors[0]))
    _fill_defaults(schema(), cfg)
    _semantic_checks(cfg)
    return cfg


@cache
def _validator_class(jsonschema):
    """Draft 2020-12, except that an integer is an int: JSON Schema counts 1.0 as one,
    and `epochs: 1.0` or `seeds: [0.0]` would then fail inside a job."""

    def is_integer(checker, value) -> bool:
        return isinstance(value, int) and not isinstance(value, bool)

    base = jsonschema.Draft202012Validator
    checker = base.TYPE_CHECKER.redefine("integer", is_integer)
    return jsonschema.validators.extend(base, type_checker=checker)


def _check_values(cfg) -> None:
    """Every number finite (jsonschema's minimum/maximum let NaN through), and the whole
    config of a sane size (walked without expanding shared YAML aliases)."""
    stack, seen = [((), cfg)], 0
    while stack:
        path, value = stack.pop()
        seen += 1
        if seen > MAX_CONFIG_NODES:
            raise UserError(
                f"the config has more than {MAX_CONFIG_NODES} values (YAML aliases "
                "expanding?); write the keys of config/config.yaml out plainly, without aliases"
            )
        if isinstance(value, float) and not math.isfinite(value):
            raise UserError(
                f"config key {_key(path)} = {value} is not allowed; every number must be finite"
            )
        if isinstance(value, dict):
            stack += [((*path, str(k)), v) for k, v in value.items()]
        elif isinstance(value, list):
            stack += [((*path, i), v) for i, v in enumerate(value)]


def _semantic_checks(cfg: dict) -> None:
    m = cfg["model"]
    if m["pool_after"] and max(m["pool_after"]) > len(m["widths"]):
        raise UserError(
            f"config key model.pool_after = {m['pool_after']} names a block beyond the "
            f"{len(m['widths'])} blocks of model.widths; "
            f"allowed: block numbers 1-{len(m['widths'])}"
        )
    if 32 >> len(m["pool_after"]) < 1:
        raise UserError("config key model.pool_after pools a 32x32 image below 1x1; use at most 5")
    d = cfg["data"]
    for split, available in (("train", paper.TRAIN_PER_CLASS), ("test", paper.TEST_PER_CLASS)):
        n = d["subset"][f"{split}_per_class"]
        if n is not None and n > available:
            raise UserError(
                f"config key data.subset.{split}_per_class = {n} is larger than the data "
                f"(CIFAR-10 has {available} {split} images per class); use 1-{available} "
                "or null for all"
            )
    if d["source"] in ("archive", "auto") and d["archive"] and Path(d["archive"]).is_dir():
        raise UserError(
            f"config key data.archive = {d['archive']!r} is a directory; for an unpacked "
            "copy set data.source: folder and data.folder to it"
        )
    if d["source"] == "archive" and not (d["archive"] and Path(d["archive"]).exists()):
        raise UserError(
            f"config key data.archive = {d['archive']!r} does not exist; set it to a CIFAR-10 "
            "archive in ImageFolder layout, or data.source: torchvision for the official download"
        )
    if d["source"] in ("archive", "auto") and d["archive"] and Path(d["archive"]).exists():
        if not Path(d["archive"]).is_file():  # a FIFO or /dev/zero: hashing it never ends
            raise UserError(
                f"config key data.archive = {d['archive']!r} is not a regular file (a FIFO or "
                "device?); set it to a CIFAR-10 archive in ImageFolder layout"
            )
    if d["source"] == "folder" and not (d["folder"] and Path(d["folder"]).is_dir()):
        raise UserError(
            f"config key data.folder = {d['folder']!r} is not a directory; set it to a folder "
            "in ImageFolder layout (train/<class>/*.jpg, test/<class>/*.jpg)"
        )
    _check_jpeg_cost(d)
    _check_batch_size(cfg)
    _check_report_keys(cfg)
    _check_variants(cfg)


def _check_jpeg_cost(d: dict) -> None:
    """What the schema cannot say of data.jpeg_cost: a range runs from low to high, and
    the lossless download has no JPEG cost to declare."""
    cost = d.get("jpeg_cost")
    if not isinstance(cost, dict):
        return
    if cost["low"] > cost["high"]:
        raise UserError(
            f"config key data.jpeg_cost has low = {cost['low']} above high = {cost['high']};"
            " give the range as low <= high (points of test accuracy)"
        )
    if d["source"] == "torchvision":
        raise UserError(
            "config key data.jpeg_cost is set, but data.source torchvision reads the lossless"
            " images, which cost nothing; remove data.jpeg_cost or read a JPEG copy"
        )


def _check_variants(cfg: dict) -> None:
    """Each variant's merged config validated as a whole config (one line naming the
    variant); its overrides then replaced by their validated values (numbers typed on the
    command line arrive as strings), so that the plan merges them without jsonschema."""
    variants_mod.check_names(cfg["variants"])
    for i, v in enumerate(cfg["variants"]):
        if isinstance(v.get("train"), dict) and "pack" in v["train"]:
            # how many runs a job trains at once is the machine's schedule, shared by
            # every run of the study; a variant says what is computed (its overrides
            # must change a result), and a pack changes no run's settings or hash
            raise UserError(
                f"config key variants[{i}].train.pack of {v['name']!r} is not a variant "
                "setting (packing changes no run's settings); set train.pack at the top level"
            )
        try:
            checked = validate(variants_mod.merged(cfg, v))
        except UserError as e:
            raise UserError(f"variants[{i}] ({v['name']}): {e}") from None
        for section in variants_mod.SECTIONS:
            if section in v:
                v[section] = {k: checked[section][k] for k in v[section]}
        for axis in variants_mod.AXES:
            if axis in v:
                v[axis] = checked[axis]
    _check_queue(cfg)


def _check_queue(cfg: dict) -> None:
    """Each ``queue`` entry names the reference or a variant, and only rates it trains."""
    rates = {variants_mod.REFERENCE: cfg["learning_rates"]}
    for v in cfg["variants"]:
        rates[v["name"]] = v.get("learning_rates", cfg["learning_rates"])
    for i, entry in enumerate(cfg["queue"]):
        name = entry["variant"]
        if name not in rates:
            raise UserError(
                f"config key queue[{i}].variant = {name!r} names no variant of this config; "
                f"allowed: {', '.join(rates)}"
            )
        for lr in entry.get("learning_rates", []):
            if float(lr) not in [float(r) for r in rates[name]]:
                raise UserError(
                    f"config key queue[{i}].learning_rates has {lr}, which {name!r} does not "
                    f"train; allowed: some of {rates[name]}"
                )


def batch_size_problem(n_train: int, batch_size: int) -> str | None:
    """Why ``batch_size`` cannot train on ``n_train`` images, or None. BatchNorm1d in the
    classifier cannot normalise a batch of one image, so no batch, the last included,
    may hold exactly one; a short last batch is otherwise kept (the seed's step count)."""
    if batch_size < 2:
        return (
            f"train.batch_size = {batch_size} trains on batches of one image, which "
            "BatchNorm cannot train on; use a batch size of at least 2"
        )
    last = n_train % batch_size
    if last != 1:
        return None
    fits = [
        b
        for d in range(1, n_train)
        for b in (batch_size - d, batch_size + d)
        if 2 <= b <= n_train and n_train % b != 1
    ][:2]
    hint = f"e.g. {' or '.join(map(str, sorted(fits)))}" if fits else "more images"
    return (
        f"train.batch_size = {batch_size} leaves a batch of exactly one image "
        f"({n_train} training images = {n_train // batch_size} x {batch_size} + {last}), "
        f"which BatchNorm cannot train on; use a batch size of at least 2 that leaves a last "
        f"batch of 0 or at least 2 images, {hint}"
    )


def _check_batch_size(cfg: dict) -> None:
    n = train_images(cfg)
    problem = batch_size_problem(n or 0, cfg["train"]["batch_size"])
    if problem:
        raise UserError(f"config key {problem}")


def _check_report_keys(cfg: dict) -> None:
    """What only the tables and figures stages read, checked before the first job."""
    for key in cfg["paper"]["test_accuracy"]:
        try:
            rate = float(key)
        except ValueError:
            rate = math.nan
        if not (math.isfinite(rate) and rate > 0):
            raise UserError(
                f"config key paper.test_accuracy has the key {short(key)}, not a learning "
                "rate; allowed: learning rates (numbers > 0) mapped to accuracies in percent"
            )
    palette = cfg["figures"]["palette"]
    if palette != schema_mod.default("figures.palette"):
        import seaborn as sns  # only for a palette other than the default: slow to import

        try:
            sns.color_palette(palette)
        except (ValueError, TypeError):
            raise UserError(
                f"config key figures.palette = {short(palette)} is not a seaborn palette; "
                "use e.g. colorblind, deep, muted, viridis or tab10"
            ) from None


class _StrictLoader(yaml.SafeLoader):
    """Safe YAML that refuses a key written twice in one mapping (plain YAML keeps the
    last silently: a second `train:` replaced the first)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, (str, int, float, bool)) and key in seen:
                line = key_node.start_mark.line + 1
                raise UserError(
                    f"key {key!r} is written twice (again on line {line}); "
                    "keep one and merge the settings into it"
                )
            seen.add(key)
        return super().construct_mapping(node, deep)


_StrictLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _StrictLoader.construct_mapping
)
MAX_CONFIG_BYTES = 1 << 20


def read_yaml(path: str | Path):
    """A config file's content, or UserError naming the file (missing, too large, not
    YAML, a duplicated key)."""
    from ..files import read_regular

    path = Path(path)
    if not os.path.lexists(path):
        raise UserError(f"config file {path} does not exist; pass e.g. config/config.yaml")
    try:  # never a FIFO, a device or a folder, never more than a config could be
        data = read_regular(path, MAX_CONFIG_BYTES, "config file")
    except UserError as e:
        raise UserError(f"{e}: pass a YAML file such as config/config.yaml") from None
    try:
        return parse_yaml(data.decode())
    except UserError as e:
        raise UserError(f"config file {path}: {e}") from None
    except UnicodeDecodeError as e:
        raise UserError(f"config file {path} is not valid YAML: {e}") from None


def parse_yaml(text: str):
    """Config text as data, strictly (a key written twice is a UserError)."""
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader
    except yaml.YAMLError as e:
        raise UserError(f"not valid YAML: {str(e).splitlines()[0]}") from None


def check_files(paths) -> None:
    """The config files Snakemake merged (it reads them with plain YAML), read again
    strictly: a duplicated key fails here, before the first job."""
    for path in paths:
        if str(path).endswith((".yaml", ".yml")):
            read_yaml(path)


# the Snakefile's `configfile:`, relative to the project folder the workflow runs in
DEFAULT_CONFIG = Path("config/config.yaml")


def merge(base: dict, over: dict) -> dict:
    """``over`` merged into ``base`` key by key, as Snakemake merges --configfile files
    (snakemake.utils.update_config: mappings merged, anything else replaced)."""
    out = dict(base)
    for k, v in over.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_study(configfiles: list[Path]) -> dict:
    """config/config.yaml with each of ``configfiles`` merged over it (the Snakefile's
    `configfile:` and then the command line's, as Snakemake does), each read as strictly
    as the workflow reads it (read_yaml), validated: what `check`, `status` and
    `estimate` plan is what `snakemake --configfile ...` runs."""
    raw: dict = {}
    for path in [DEFAULT_CONFIG, *configfiles]:
        if not os.path.lexists(path):
            raise UserError(
                f"config file {path} does not exist; run from the project folder "
                "(or pass --directory) with the --configfile of the snakemake call"
            )
        layer = read_yaml(path) or {}
        if not isinstance(layer, dict):
            raise UserError(
                f"config file {path} is not a YAML mapping; start from {DEFAULT_CONFIG}"
            )
        raw = merge(raw, layer)
    return validate(raw)


def load(path: str | Path) -> dict:
    path = Path(path)
    raw = read_yaml(path)
    try:
        return validate(raw)
    except UserError as e:
        raise UserError(f"{path}: {e}") from None


def data_settings(values: dict) -> dict:
    """The `data:` section from data keys given one by one ({"subset.train_per_class":
    50, "source": None, ...}; None: not given), validated with the schema's defaults."""
    data: dict = {}
    for key, value in values.items():
        section, _, name = key.rpartition(".")
        if value is not None:
            (data.setdefault(section, {}) if section else data)[name] = value
    return validate({"data": data})["data"]


def write_resolved(cfg: dict, out: str | Path) -> None:
    """A validated config (defaults filled in), as the report stages read it (JSON)."""
    from ..files import write_atomic

    write_atomic(Path(out), json.dumps(cfg, indent=2, sort_keys=True) + "\n")


# ---- the run grid -----------------------------------------------------------------
