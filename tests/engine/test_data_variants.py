"""A data variant (data.jpeg_quality): the data stage re-encodes every image of the
cache at that quality, deterministically, and records the distortion it added."""

from __future__ import annotations

import json

import numpy as np

from repro.engine.data import load, prepare
from repro.engine.jpeg import distortion
from repro.plan import config as config_mod


def test_reencoded_cache_is_deterministic_and_records_its_distortion(archive, tmp_path):
    subset = {"train_per_class": 10, "test_per_class": 5}
    data = config_mod.validate({"data": {"archive": str(archive), "subset": subset}})["data"]
    prepare(data, tmp_path / "base.npz")
    for name in ("a", "b"):
        prepare({**data, "jpeg_quality": 30}, tmp_path / f"{name}.npz")
    base, a, b = (load(tmp_path / f"{n}.npz") for n in ("base", "a", "b"))
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    assert np.array_equal(a.y_train, base.y_train) and np.array_equal(a.y_test, base.y_test)
    meta = json.loads((tmp_path / "a.json").read_text())["jpeg"]
    assert meta["quality"] == 30
    for split in ("train", "test"):
        measured = distortion(getattr(base, f"x_{split}"), getattr(a, f"x_{split}"))["mse"]
        assert meta[f"added_mse_{split}"] == measured > 10  # q30 of q75 images: about 116
