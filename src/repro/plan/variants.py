"""Variants of a study's setup: the config's top-level setup is the reference,
named ``paper``; each entry of ``variants:`` is a name, a one-line reason and a few
overrides (learning rates, seeds, and keys of ``train:``, ``model:``, ``data:``) merged
over it. The workflow fans every variant out like the setup itself (variant x learning
rate x seed, each run in its own folder: the settings hash separates them).

A variant's config is the whole config with its overrides merged in and no variants of
its own, validated like any config: a bad override is one line naming the variant.
"""

from __future__ import annotations

import copy

from ..errors import UserError

REFERENCE = "paper"
REFERENCE_REASON = "the seed's setup as this config reads it: the reference of every effect"
SECTIONS = ("train", "model", "data")
AXES = ("learning_rates", "seeds")


def merged(cfg: dict, variant: dict) -> dict:
    """The config of one variant: ``cfg`` (its ``variants`` and ``queue`` dropped) with
    the variant's sections merged key by key and its learning rates and seeds in place of
    the setup's. ``data.subset`` merges one level deeper (a variant may change one size)."""
    # the study's own keys (its variants, its queue's order) are no part of one variant
    out = {k: copy.deepcopy(v) for k, v in cfg.items() if k not in ("variants", "queue")}
    out["variants"] = []
    for axis in AXES:
        if axis in variant:
            out[axis] = list(variant[axis])
    for section in SECTIONS:
        overrides = variant.get(section) or {}
        base = out.setdefault(section, {})
        for key, value in overrides.items():
            if isinstance(value, dict) and isinstance(base.get(key), dict):
                base[key] = {**base[key], **value}
            else:
                base[key] = copy.deepcopy(value)
    return out


def check_names(variants: list) -> None:
    """Names distinct and not the reference's; reasons on one line; ``against`` names the
    reference or an earlier variant (so the comparisons form no circle)."""
    seen = set()
    for i, v in enumerate(variants):
        name = v["name"]
        if name == REFERENCE:
            raise UserError(
                f"config key variants[{i}].name = {name!r} is the reference's name (the "
                "top-level setup); give the variant another name"
            )
        if name in seen:
            raise UserError(
                f"config key variants[{i}].name = {name!r} is used twice; give each variant "
                "its own name"
            )
        if "\n" in v["reason"] or not v["reason"].strip():
            raise UserError(
                f"config key variants[{i}].reason of {name!r} is not one line of text; say "
                "in one line why the variant is tried"
            )
        against = v.get("against", REFERENCE)
        if against != REFERENCE and against not in seen:
            raise UserError(
                f"config key variants[{i}].against = {against!r} names no earlier variant; "
                f"name {REFERENCE} or a variant listed above {name!r}"
            )
        seen.add(name)


def against(cfg: dict, name: str) -> str:
    """The variant whose runs ``name``'s effect is measured against (the reference by
    default; a variant that adds one cause to another names that one)."""
    for v in cfg.get("variants") or []:
        if v["name"] == name:
            return v.get("against", REFERENCE)
    return REFERENCE


def entries(cfg: dict) -> list[dict]:
    """The reference then every variant, in the config's order (the study's priority):
    dicts with name, reason and config (merged, not yet validated)."""
    out = [{"name": REFERENCE, "reason": REFERENCE_REASON, "config": merged(cfg, {})}]
    for v in cfg.get("variants") or []:
        out.append({"name": v["name"], "reason": v["reason"], "config": merged(cfg, v)})
    return out
