"""Experiment configurations: the paper's settings as dataclass defaults, presets as named overrides of them, and
``key=value`` overrides from the command line, resolved and type-checked by OmegaConf structured configs.

An experiment's config class (e.g. :class:`wmask.experiments.tasks.addmul.AddMulConfig`) holds the paper's settings as
its
defaults. A preset (``smoke``, ``cpu``, ``paper``) is a dict of dotted keys to values applied on top; a list
replaces the whole value, a dict merges into the values it overrides (keys it leaves out keep their values, e.g. the
preset's), and a dict for a map of configs (``networks``) keeps the entries it names, each merged into the entry of
that name (a new name starts from the class defaults). Command-line overrides use the
same dotted keys, e.g. ``networks.fnn.mask.steps=500``; they must name a key that exists after the preset is
applied, and their values are read as YAML (``3e-4``, ``[400, 400, 200]``, ``true``).

``python -m wmask show EXPERIMENT --preset P [key=value ...]`` prints the resolved config.
"""
from __future__ import annotations

import dataclasses
import difflib
import json
import math
from typing import Any, Iterable

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ..utils import diff  # noqa: F401 (re-exported: the engine uses it without OmegaConf)

_MISSING = object()


def each_network(names: Iterable[str], overrides: dict[str, Any]) -> dict[str, Any]:
    """The same dotted overrides for several entries of ``networks``: ``each_network(["a", "b"], {"mask.lr": 3e-2})``
    is ``{"networks.a.mask.lr": 3e-2, "networks.b.mask.lr": 3e-2}``."""
    return {f"networks.{n}.{k}": v for n in names for k, v in overrides.items()}


def parse_overrides(items: Iterable[str]) -> dict[str, Any]:
    """``["a.b=3", "c=[1, 2]"]`` -> ``{"a.b": 3, "c": [1, 2]}`` (values read as YAML); a malformed item is an error
    that names it."""
    out = {}
    for item in items:
        key, sep, text = item.partition("=")
        key, text = key.strip(), text.strip()     # spaces around "=" are allowed
        if not sep or not key or any(c.isspace() for c in key):
            raise ValueError(f"cannot read override {item!r}: expected key=value, e.g. networks.fnn.mask.steps=500")
        try:
            parsed = OmegaConf.from_dotlist([f"{key}={text}"])
        except OmegaConfBaseException as err:
            raise ValueError(f"cannot read override {item!r}: {_first_line(err)}") from None
        except yaml.YAMLError as err:      # e.g. an unclosed list: x=[1,2
            problem = getattr(err, "problem", None) or _first_line(err)
            raise ValueError(f"cannot read override {item!r}: its value {text!r} is not valid YAML ({problem}); "
                             "quote lists and dicts whole, e.g. 'hidden=[400, 400]'") from None
        value = OmegaConf.select(parsed, key)
        out[key] = OmegaConf.to_container(value) if OmegaConf.is_config(value) else value
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
    check_values(cfg, what)
    try:
        return OmegaConf.to_object(cfg)
    except OmegaConfBaseException as err:
        cause = err.__cause__ or err
        raise ValueError(f"{what}: {_first_line(cause)}") from None


# integer settings that are sizes or counts (a layer's width, a batch, a number of heads...): at least 1; those
# named *steps or *epochs: at least 0
SIZES = {"hidden", "layers", "heads", "d", "ff", "width", "depth", "n_embd", "n_head", "n_layer", "n_in", "n_out",
         "enc_layers", "dec_layers", "batch_size", "k", "lstm_steps", "max_len", "log_every", "checkpoint_every"}


def check_values(cfg: DictConfig, what: str = "the config") -> None:
    """Refuse, naming the key, a number no experiment can run with: NaN or infinity anywhere, a learning rate that
    is not positive, a size (:data:`SIZES`) below 1, a number of steps or epochs below 0; and an empty ``networks``.
    Called when a config is resolved, so such a value stops a run before anything trains."""
    nets = OmegaConf.select(cfg, "networks", default=None)
    if isinstance(nets, DictConfig) and not nets.keys():
        raise ValueError(f"{what}: networks={{}} names no network, and a run needs one; to run some of a preset's "
                         "networks, pass --networks NET[,NET...]")
    for key in leaf_keys(cfg):
        value = OmegaConf.select(cfg, key)
        value = OmegaConf.to_container(value) if OmegaConf.is_config(value) else value
        name = key.rsplit(".", 1)[-1]
        for v in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                continue
            why = ("must be a finite number" if not math.isfinite(v) else
                   "must be > 0 (a learning rate)" if (name == "lr" or name.endswith("_lr")) and not v > 0 else
                   "must be >= 1 (a size or count)" if name in SIZES and v < 1 else
                   "must be >= 0 (a number of steps)" if name.endswith(("steps", "epochs")) and v < 0 else "")
            if why:
                raise ValueError(f"{what}: {key}={value!r} {why}")


def _typed(node, value):
    """A plain dict given for a typed sub-config (a dataclass, or a dict of dataclasses such as ``networks``) merges
    into the values it overrides: the keys it leaves out keep the values they had (the preset's, when a preset set
    them). For a dict of dataclasses, the entries named are the ones kept, each merged into the entry of the same
    name (a new name starts from the class defaults)."""
    if not isinstance(value, dict) or not isinstance(node, DictConfig):
        return value
    kind = OmegaConf.get_type(node)
    if dataclasses.is_dataclass(kind):
        return OmegaConf.merge(node, value)
    element = node._metadata.element_type
    if dataclasses.is_dataclass(element):
        return {k: v if dataclasses.is_dataclass(v) else
                OmegaConf.merge(node[k] if k in node else OmegaConf.structured(element), v or {})
                for k, v in value.items()}
    return value


def to_dict(cfg) -> dict:
    """A resolved config as plain JSON-able data (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(cfg), default=str))


def to_yaml(cfg) -> str:
    return OmegaConf.to_yaml(OmegaConf.create(to_dict(cfg)))
