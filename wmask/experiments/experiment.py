"""The contract between the runner and an experiment, written down once and checked when an experiment is defined.

An experiment module defines ``EXPERIMENT = Experiment(...)``:

- ``schema``: a dataclass whose defaults are the paper's settings (for experiments with a choice of model, those
  of the first model), with a ``seed`` field (and a ``model`` field when ``models`` is given);
- ``presets``: ``{preset: overrides}`` (dotted keys, see :mod:`wmask.experiments.config`), or ``{model: {preset:
overrides}}``;
  a preset given as a string instead is one the experiment deliberately lacks, and the string says why (e.g. no
  ``cpu`` preset where a 2-core budget cannot train its networks to target); asking for it is an error that says so;
- ``run(cfg, store, device, progress) -> dict``: the experiment for one seed; its result must be JSON-able, and every
  reusable artefact goes through ``store`` (:class:`wmask.experiments.store.Store`), so a rerun reuses finished work;
- ``tables(runs) -> {name: rows}`` (optional): tidy rows over all seeds, written as CSV next to the summary.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from . import config as _config


@dataclass(frozen=True)
class Experiment:
    name: str
    schema: type
    presets: dict
    run: Callable[..., dict]
    tables: Callable[[list[dict]], dict[str, list[dict]]] | None = None
    models: tuple[str, ...] = ()
    describe: Callable[[dict], str] | None = None     # a resolved config (as a dict) in one line of words

    def __post_init__(self):
        if not dataclasses.is_dataclass(self.schema):
            raise TypeError(f"experiment {self.name}: schema must be a dataclass, got {self.schema!r}")
        fields = {f.name for f in dataclasses.fields(self.schema)}
        if "seed" not in fields:
            raise TypeError(f"experiment {self.name}: its config {self.schema.__name__} needs a 'seed' field")
        if self.models:
            if "model" not in fields:
                raise TypeError(f"experiment {self.name}: models {self.models} need a 'model' config field")
            missing = [m for m in self.models if m not in self.presets]
            if missing:
                raise TypeError(f"experiment {self.name}: no presets for models {missing}")
        for model in self.models or (None,):
            for preset, overrides in self.preset_table(model).items():
                if not isinstance(overrides, (dict, str)):
                    raise TypeError(f"experiment {self.name}: preset {preset!r} must be a dict of overrides (or "
                                    "a string saying why the experiment has no such preset)")
        if not callable(self.run) or (self.tables is not None and not callable(self.tables)):
            raise TypeError(f"experiment {self.name}: run (and tables, when given) must be callables")

    def model_or_default(self, model: str | None) -> str | None:
        """The model to run (``None`` for an experiment without a choice); an unknown one is a named error."""
        if not self.models:
            if model is not None:
                raise ValueError(f"{self.name} has no choice of model (got --model {model})")
            return None
        model = model or self.models[0]
        if model not in self.models:
            raise ValueError(f"unknown model {model!r} for {self.name}; known: {', '.join(self.models)}")
        return model

    def preset_table(self, model: str | None = None) -> dict[str, dict]:
        return self.presets[model] if self.models else self.presets

    def config(self, preset: str, seed: int = 0, model: str | None = None,
               overrides: dict[str, Any] | None = None, networks: Iterable[str] | None = None):
        """The resolved config: the paper's defaults, then the preset, then ``overrides`` (dotted keys), then, when
        ``networks`` names some, only those networks (:meth:`select_networks`)."""
        model = self.model_or_default(model)
        table = self.preset_table(model)
        self.require_preset(preset, model)
        overrides = dict(overrides or {})
        for fixed in ("seed", "model"):
            if fixed in overrides:
                raise ValueError(f"{fixed!r} is not an override: use --{fixed}{'s' if fixed == 'seed' else ''}")
        layers: list[tuple[str, dict]] = [(f"preset {preset}", table[preset])]
        if model is not None:
            layers.insert(0, ("model", {"model": model}))
        layers += [("override", overrides), ("seed", {"seed": seed})]
        cfg = _config.resolve(self.schema, layers, f"{self.name}" + (f" ({model})" if model else ""))
        return self.select_networks(cfg, networks, preset)

    def select_networks(self, cfg, names: Iterable[str] | None, preset: str = ""):
        """``cfg`` with only the networks ``names`` (all when ``None``), in the config's order: how a machine runs
        the part of a preset it can finish (e.g. the paper's smallest FNN on a CPU). A size study keeps the selected
        sizes; a sweep whose network is not selected is dropped. Unknown names are a named error."""
        if names is None:
            return cfg
        names = list(names)
        known = list(getattr(cfg, "networks", None) or [])
        if not known:
            raise ValueError(f"{self.name} has no networks to select from (--networks {','.join(names)})")
        if not names or (unknown := [n for n in names if n not in known]):
            raise ValueError(f"unknown network {(unknown or [''])[0]!r} for {self.name}"
                             f"{f' at {preset}' if preset else ''}; known: {', '.join(known)}")
        changes: dict[str, Any] = {"networks": {n: c for n, c in cfg.networks.items() if n in names}}
        if hasattr(cfg, "size_study"):
            changes["size_study"] = tuple(n for n in cfg.size_study if n in names)
        if getattr(cfg, "sweep_network", None) and cfg.sweep_network not in names:
            changes.update(sweep_network="", sweep_alphas=())
        return dataclasses.replace(cfg, **changes)

    def preset_names(self, model: str | None = None) -> Iterable[str]:
        """The presets that can be run (not those the experiment deliberately lacks)."""
        return [p for p, o in self.preset_table(self.model_or_default(model)).items() if isinstance(o, dict)]

    def require_preset(self, preset: str, model: str | None = None, name: str | None = None) -> None:
        """A named error unless ``preset`` can be run (for ``model``): unknown, or deliberately absent with its
        reason; ``name`` is how the error names the experiment (default ``name (model)``)."""
        if preset not in self.preset_table(self.model_or_default(model)):
            raise ValueError(f"unknown preset {preset!r} for {self.name}; known: {', '.join(self.preset_names(model))}")
        if why := self.absent(preset, model):
            name = name or f"{self.name}{f' ({model})' if model else ''}"
            raise ValueError(f"{name} has no {preset!r} preset: {why}")

    def absent(self, preset: str, model: str | None = None) -> str:
        """Why the experiment has no ``preset`` (for ``model``), "" when it has one or the name is unknown."""
        reason = self.preset_table(self.model_or_default(model)).get(preset)
        return reason if isinstance(reason, str) else ""


def at_most(mask: dict) -> str:
    """For a ``describe`` line: a mask stage's steps are a maximum when it stops once settled."""
    return " (at most; stopped when settled)" if mask.get("stop_on_plateau") else ""
