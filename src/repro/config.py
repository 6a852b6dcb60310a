"""Configuration: defaults, schema validation with one-line messages, semantic checks,
and the run grid (head x learning rate x device x seed) the workflow fans out over.

The JSON schema in ``workflow/schemas/config.schema.yaml`` is the single source of
allowed values and defaults; Snakemake validates with it too.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import reprlib
import shlex
from dataclasses import asdict, replace
from functools import cache
from pathlib import Path

import yaml

from . import devices as devices_mod
from . import paper
from . import schema as schema_mod
from .data import OFFLINE_JPEG_Q75_SHA256, folder_images, resolve_source, sha256_of
from .errors import UserError
from .settings import RunConfig

ROOT = Path(__file__).resolve().parents[2]
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


def validate(cfg, check_devices: bool = True) -> dict:
    """Return the config with defaults filled in, or raise UserError (one line)."""
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
    _semantic_checks(cfg, check_devices)
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


def _semantic_checks(cfg: dict, check_devices: bool) -> None:
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
    if d["source"] == "folder" and not (d["folder"] and Path(d["folder"]).is_dir()):
        raise UserError(
            f"config key data.folder = {d['folder']!r} is not a directory; set it to a folder "
            "in ImageFolder layout (train/<class>/*.jpg, test/<class>/*.jpg)"
        )
    _check_batch_size(cfg)
    _check_report_keys(cfg)
    if check_devices:
        check_device_presence(cfg)


def subset_images(cfg: dict) -> dict[str, int]:
    """Images per split (train, test) the config asks for: its subset, else all of
    CIFAR-10 (an archive or folder of the whole set is taken to hold exactly that)."""
    sub = cfg["data"]["subset"]
    full = {"train": paper.TRAIN_PER_CLASS, "test": paper.TEST_PER_CLASS}
    return {s: paper.N_CLASSES * (sub[f"{s}_per_class"] or full[s]) for s in full}


def train_images(cfg: dict) -> int | None:
    """The number of training images, where the config alone decides it (a subset, or
    the official data set); None for a whole archive or folder of unknown size."""
    if cfg["data"]["subset"]["train_per_class"] or resolve_source(cfg["data"]) == "torchvision":
        return subset_images(cfg)["train"]
    return None


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


def check_device_presence(cfg: dict) -> None:
    """Every named device (training and timing) exists on this host, and `auto` means
    here what the torch-free guess that planned the runs said (devices.likely_auto)."""
    if cfg.get("recorded"):
        return  # recorded runs are copied, not trained: a cuda run needs no GPU here
    lists = [("devices", cfg["devices"])]
    if cfg["timing"]["enabled"]:
        lists.append(("timing.devices", cfg["timing"]["devices"]))
    present = devices_mod.available()
    for key, names in lists:
        for dev in names:
            if dev != "auto" and dev not in present:
                raise UserError(
                    f"config key {key} requests {dev!r}, which this host does not have "
                    f"(present: {', '.join(present)}); remove it, use auto, "
                    "or submit to a cluster where it exists (--profile profiles/slurm)"
                )
    if any("auto" in names for _, names in lists):
        planned, actual = devices_mod.likely_auto(), devices_mod.resolve("auto")
        if planned != actual:
            raise UserError(
                f"devices: auto was planned as {planned} from the driver and torch's build, "
                f"but torch here finds {actual}; name the devices, e.g. --config "
                f"'devices=[{actual}]' 'timing={{devices: [{actual}]}}'"
            )


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
    path = Path(path)
    if not path.is_file():
        raise UserError(f"config file {path} does not exist; pass e.g. config/config.yaml")
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise UserError(
            f"config file {path} is over {MAX_CONFIG_BYTES >> 20} MiB; a config is a few "
            "lines, start from config/config.yaml"
        )
    try:
        return parse_yaml(path.read_text())
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


def load(path: str | Path, check_devices: bool = True) -> dict:
    path = Path(path)
    raw = read_yaml(path)
    try:
        return validate(raw, check_devices)
    except UserError as e:
        raise UserError(f"{path}: {e}") from None


def write_resolved(cfg: dict, out: str | Path) -> None:
    """A validated config (defaults filled in), as the report stages read it (JSON)."""
    from .files import write_atomic

    write_atomic(Path(out), json.dumps(cfg, indent=2, sort_keys=True) + "\n")


# ---- the run grid -----------------------------------------------------------------


def lr_tag(lr: float) -> str:
    """A learning rate as run folders and flags spell it: the shortest text that reads
    back as the same float, so distinct rates never share a folder (`:g` made
    0.01000001 and 0.01000002 both lr0.01) and a run trains at its configured rate."""
    text = repr(float(lr))
    return text[:-2] if text.endswith(".0") else text


def resolve_devices(names: list[str], auto: str | None = None) -> list[str]:
    """Device names with ``auto`` resolved: to ``auto`` when given (status takes it from
    the run folders), else to what this host gives, guessed without torch
    (devices.likely_auto; a local run's start checks the guess against torch)."""
    auto = auto or devices_mod.likely_auto()
    out = []
    for name in names:
        dev = auto if name == "auto" else name
        if dev not in out:
            out.append(dev)
    return out


def timing_devices(cfg: dict) -> list[str]:
    """The timing stage's devices: none when it is off; `auto` alone means every device
    this host has (the CPU and its accelerator)."""
    if not cfg["timing"]["enabled"]:
        return []
    names = cfg["timing"]["devices"]
    if names == ["auto"]:
        return resolve_devices(["cpu", "auto"])
    return resolve_devices(names)


def precision_for(cfg: dict, device: str) -> str:
    """The precision a run on ``device`` trains in, resolved on this machine."""
    p = cfg["train"]["precision"]
    return devices_mod.auto_precision(device) if p == "auto" else p


def data_tag(cfg: dict) -> str:
    sub = cfg["data"]["subset"]
    source = resolve_source(cfg["data"])
    parts = [source]
    if sub["train_per_class"] or sub["test_per_class"]:
        parts += [f"tr{sub['train_per_class'] or 'all'}", f"te{sub['test_per_class'] or 'all'}"]
    else:
        parts.append("full")
    return "-".join(parts)


@cache
def _archive_sha256(path: str, size: int, mtime_ns: int) -> str:
    return sha256_of(Path(path))


def data_identity(cfg: dict) -> str | None:
    """Which data set the runs train on, beyond its source and subset sizes (data_tag):
    the archive's sha256, or the names and sizes of a folder's images. None for the data the
    run folders have always meant: the official download and the offline copy (so the
    recorded runs and finished folders keep their hashes)."""
    d = cfg["data"]
    source = resolve_source(d)
    if source == "archive":
        digest = d["archive_sha256"]
        if not digest:
            st = Path(d["archive"]).stat()
            digest = _archive_sha256(str(Path(d["archive"]).resolve()), st.st_size, st.st_mtime_ns)
        return None if digest == OFFLINE_JPEG_Q75_SHA256 else digest
    if source == "folder":
        return _folder_identity(str(Path(d["folder"]).resolve()))
    return None


@cache
def _folder_identity(root: str) -> str:
    """Once per process: planning asks for it again for every job's description, and a
    full CIFAR-10 folder is 60,000 files."""
    images = folder_images(Path(root))
    listing = sorted(
        f"{name}:{(Path(root) / name).stat().st_size}"
        for classes in images.values()
        for names in classes.values()
        for name in names
    )
    return "folder:" + hashlib.sha256("\n".join(listing).encode()).hexdigest()


def run_config(
    cfg: dict, head: str, lr: float, device: str, seed: int, resolve: bool = True
) -> RunConfig:
    """One run's description. ``resolve=False`` keeps what depends on the machine that
    runs the job (precision auto) for the job to resolve: what the workflow hands it."""
    rc = RunConfig.from_config(cfg, head, lr, device, seed)
    return rc.on_this_machine() if resolve else rc


def settings_hash(cfg: dict, device: str) -> str:
    """Short hash of everything that changes a run's result apart from the values
    already in its path (head, lr, device, seed): the output folder carries it, so a
    different configuration never overwrites a finished run."""
    # as configured, not as resolved on the planning host: on SLURM the login node's CPU
    # must not decide a compute node's precision (the job resolves it, metrics.json says)
    rc = run_config(cfg, "softmax", 1.0, device, 0, resolve=False)
    key = {
        "train": {k: v for k, v in rc.__dict__.items() if k not in ("lr", "seed", "device")},
        "data": data_tag(cfg),
    }
    key["train"]["model"] = {k: v for k, v in rc.model.__dict__.items() if k != "head"}
    identity = data_identity(cfg)
    if identity is not None:  # absent for the offline copy: its folders keep their hash
        key["data_identity"] = identity
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:8]


def runs(cfg: dict, auto: str | None = None) -> list[dict]:
    """Every training job: dict(head, lr, device, seed, hash); ``auto`` as in
    resolve_devices."""
    devices = resolve_devices(cfg["devices"], auto)
    hashes = {d: settings_hash(cfg, d) for d in devices}  # per device: it reads the data
    return [
        dict(head=head, lr=lr_tag(lr), device=device, seed=seed, hash=hashes[device])
        for head in cfg["heads"]
        for lr in cfg["learning_rates"]
        for device in devices
        for seed in cfg["seeds"]
    ]


RUN_DIR = "results/runs/{head}/lr{lr}/{device}/seed{seed}/{hash}"


def recorded_expectations(cfg: dict) -> list[dict]:
    """Every run of the grid with the fingerprint and settings (asdict of RunConfig) its
    recorded copy must have; repro.recorded checks them without importing torch."""
    if "auto" in cfg["devices"]:
        raise UserError(
            f"config key devices = {cfg['devices']} uses auto, which would resolve on this "
            "host, not where the runs were recorded; with recorded runs name the devices, "
            "e.g. devices: [cuda] as in config/recorded.yaml"
        )
    out = []
    for r in runs(cfg):
        rc = run_config(cfg, r["head"], float(r["lr"]), r["device"], r["seed"])
        out.append({**r, "fingerprint": rc.fingerprint(), "settings": asdict(rc)})
    return out


# keys that change no result: left out of results/config.json's inputs, so that
# changing them reruns nothing
NO_RESULT_KEYS = ("estimate",)


def result_config(cfg: dict) -> dict:
    return {k: v for k, v in cfg.items() if k not in NO_RESULT_KEYS}


def check_devices(cfg: dict, local: bool) -> None:
    """Locally, every named device must be present. On a cluster the jobs run elsewhere,
    but `auto` would resolve on the submit host (usually without a GPU), so there the
    devices must be named."""
    if cfg.get("recorded"):
        return  # nothing trains: recorded runs are copied on the submit host
    if local:
        check_device_presence(cfg)
        return
    for key, names in (("devices", cfg["devices"]), ("timing.devices", cfg["timing"]["devices"])):
        if "auto" in names and (key == "devices" or cfg["timing"]["enabled"]):
            raise UserError(
                f"config key {key} = {names} uses auto, which would resolve on this submit "
                f"host; on a cluster name the devices, e.g. --config 'devices=[cuda]' "
                "'timing={devices: [cuda]}'"
            )


def run_description(cfg: dict, head: str, lr: str, device: str, seed: str, hash: str) -> str:
    """The whole description of one run of the grid as JSON, handed to the train job as
    it is (`python -m repro train --run`); the job resolves precision auto itself."""
    if hash != settings_hash(cfg, device):
        raise UserError(
            f"run folder hash {hash} does not match the current config "
            f"({settings_hash(cfg, device)}); request results/report.pdf instead of an old run"
        )
    rc = run_config(cfg, head, float(lr), device, int(seed), resolve=False)
    return json.dumps(asdict(rc), sort_keys=True)


def timing_description(cfg: dict, device: str) -> str:
    """The timing run of ``device``: the grid's first run, for timing.epochs epochs."""
    rc = run_config(
        cfg, cfg["heads"][0], cfg["learning_rates"][0], device, cfg["seeds"][0], resolve=False
    )
    return json.dumps(asdict(replace(rc, epochs=cfg["timing"]["epochs"])), sort_keys=True)


JOB_RESOURCE_KEYS = ("runtime", "mem_mb", "cpus_per_task", "gpu", "gpu_model")
# Minutes per epoch of the full training set (50,000 images), generous upper bounds:
# an H100 takes seconds, a slow datacenter GPU well under a minute, a CPU core minutes.
MINUTES_PER_FULL_EPOCH = {"cuda": 1.0, "mps": 3.0, "cpu": 20.0}


def job_resources(cfg: dict, kind: str, device: str) -> dict:
    """SLURM (and local) resources of one `train` or `timing` job."""
    epochs = cfg["timing"]["epochs"] if kind == "timing" else cfg["train"]["epochs"]
    per_class = cfg["data"]["subset"]["train_per_class"]
    fraction = min(1.0, (per_class or paper.TRAIN_PER_CLASS) / paper.TRAIN_PER_CLASS)
    runtime = 10 + math.ceil(epochs * fraction * MINUTES_PER_FULL_EPOCH[device])
    return {
        "runtime": runtime,
        # the padded uint8 training set, the normalised test set, model and optimizer
        "mem_mb": 8000 if device == "cuda" else 6000,
        "cpus_per_task": 4 if device == "cuda" else 8,
        "gpu": 1 if device == "cuda" else 0,
        "gpu_model": (cfg["slurm"]["gpu_model"] or "") if device == "cuda" else "",
    }


def partition_resource(cfg: dict) -> dict:
    """`slurm_partition` only when the config names one; otherwise the profile's default."""
    s = cfg["slurm"]
    if not (s["partition"] or s["gpu_partition"]):
        return {}

    def partition(wildcards) -> str:
        if wildcards.device == "cuda":
            return s["gpu_partition"] or s["partition"] or ""
        return s["partition"] or ""

    return {"slurm_partition": partition}


def prepare_flags(cfg: dict) -> str:
    d = cfg["data"]
    flags = [f"--source {d['source']} --download-root {shlex.quote(d['download_root'])}"]
    for key in ("archive", "archive_sha256", "folder"):
        if d[key]:
            flags.append(f"--{key.replace('_', '-')} {shlex.quote(str(d[key]))}")
    for key in ("train_per_class", "test_per_class"):
        if d["subset"][key]:
            flags.append(f"--{key.replace('_', '-')} {d['subset'][key]}")
    return " ".join(flags)
