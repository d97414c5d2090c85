"""Experiment configurations: the paper's settings as dataclass defaults, presets as named overrides of them, and
``key=value`` overrides from the command line, resolved and type-checked by OmegaConf structured configs.

An experiment's config class (e.g. :class:`wmask.experiments.tasks.addmul.AddMulConfig`) holds the paper's settings as its
defaults. A preset (``smoke``, ``cpu``, ``paper``) is a dict of dotted keys to values applied on top; a value that is
a dict or a list replaces the whole sub-tree (a preset can name its own networks; keys a dict leaves out take their
class defaults). Command-line overrides use the
same dotted keys, e.g. ``networks.fnn.mask.steps=500``; they must name a key that exists after the preset is
applied, and their values are read as YAML (``3e-4``, ``[400, 400, 200]``, ``true``).

``python -m wmask show EXPERIMENT --preset P [key=value ...]`` prints the resolved config.
"""
from __future__ import annotations

import dataclasses
import difflib
import json
from typing import Any, Iterable

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ..utils import diff  # noqa: F401 (re-exported: the engine uses it without OmegaConf)

_MISSING = object()


def parse_overrides(items: Iterable[str]) -> dict[str, Any]:
    """``["a.b=3", "c=[1, 2]"]`` -> ``{"a.b": 3, "c": [1, 2]}`` (values read as YAML); a malformed item is an error
    that names it."""
    out = {}
    for item in items:
        key, sep, _ = item.partition("=")
        if not sep or not key.strip() or any(c.isspace() for c in key.strip()):
            raise ValueError(f"cannot read override {item!r}: expected key=value, e.g. networks.fnn.mask.steps=500")
        try:
            parsed = OmegaConf.from_dotlist([item])
        except OmegaConfBaseException as err:
            raise ValueError(f"cannot read override {item!r}: {_first_line(err)}") from None
        value = OmegaConf.select(parsed, key.strip())
        out[key.strip()] = OmegaConf.to_container(value) if OmegaConf.is_config(value) else value
    return out


def _first_line(err: Exception) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__


def leaf_keys(node, prefix: str = "") -> list[str]:
    """Every dotted key of the leaves of a resolved config node (lists count as leaves)."""
    if isinstance(node, DictConfig):
        keys = []
        for k in node.keys():
            keys += leaf_keys(node._get_node(k), f"{prefix}{k}.")
        return keys
    return [prefix[:-1]]


def _unknown_key(cfg: DictConfig, key: str, what: str) -> ValueError:
    """An error naming ``key`` and the valid keys at the deepest level of ``key`` that exists."""
    parts, node, where = key.split("."), cfg, []
    for p in parts:
        nxt = node._get_node(p) if isinstance(node, DictConfig) and p in node else None
        if nxt is None:
            break
        node, where = nxt, where + [p]
    here = ".".join(where)
    choices = [k for k in node.keys()] if isinstance(node, DictConfig) else []
    close = difflib.get_close_matches(parts[len(where)] if len(where) < len(parts) else "", choices, n=3)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    return ValueError(f"unknown key {key!r} for {what}{hint}; valid keys"
                      f"{' under ' + repr(here) if here else ''}: {', '.join(map(str, choices)) or '(none: a leaf)'}"
                      f" — 'python -m wmask show' lists them all")


def resolve(schema: type, layers: Iterable[tuple[str, dict[str, Any]]], what: str = "the config"):
    """Build ``schema`` (a dataclass whose defaults are the paper's settings), then apply each ``(name, overrides)``
    layer in order (the preset first, then the user's). Returns the dataclass instance (its ``__post_init__``
    checks run). Unknown keys and values of the wrong type are ``ValueError`` naming the key, the layer and the
    valid keys."""
    cfg = OmegaConf.structured(schema)
    OmegaConf.set_struct(cfg, True)
    for layer, overrides in layers:
        for key, value in overrides.items():
            if OmegaConf.select(cfg, key, default=_MISSING) is _MISSING:
                raise _unknown_key(cfg, key, f"{what} ({layer})")
            try:
                OmegaConf.update(cfg, key, _typed(OmegaConf.select(cfg, key), value), merge=False)
            except OmegaConfBaseException as err:
                raise ValueError(f"{layer}: cannot set {key}={value!r} in {what}: {_first_line(err)}") from None
    try:
        return OmegaConf.to_object(cfg)
    except OmegaConfBaseException as err:
        cause = err.__cause__ or err
        raise ValueError(f"{what}: {_first_line(cause)}") from None


def _typed(node, value):
    """A plain dict given for a typed sub-config (a dataclass, or a dict of dataclasses such as ``networks``)
    becomes that type, the keys it leaves out taking their class defaults."""
    if not isinstance(value, dict) or not isinstance(node, DictConfig):
        return value
    kind = OmegaConf.get_type(node)
    if dataclasses.is_dataclass(kind):
        return OmegaConf.merge(OmegaConf.structured(kind), value)
    element = node._metadata.element_type
    if dataclasses.is_dataclass(element):
        return {k: v if dataclasses.is_dataclass(v) else OmegaConf.merge(OmegaConf.structured(element), v or {})
                for k, v in value.items()}
    return value


def to_dict(cfg) -> dict:
    """A resolved config as plain JSON-able data (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(cfg), default=str))


def to_yaml(cfg) -> str:
    return OmegaConf.to_yaml(OmegaConf.create(to_dict(cfg)))
