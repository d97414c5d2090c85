"""Our mask-training protocol or the authors' released code's, one difference at a time.

The method is the same in both codes (the book's method page); how a run is organised differs. Ours trains every
mask set of a network in one batched pass, each set on a data stream of its own, for ``steps`` updates. The
authors' code (RobertCsordas/modules, ``tasks/task.py``: ``post_train``) trains them as *stages*, one after another:

- ``sequential``: one set after another, each its own stage (ours: all sets in one batched pass);
- ``shared_stream``: every stage reads the same batches (their stage loader's sampler seed is always 1234; ours:
  a stream per set);
- ``carry_grads``: their optimiser zeroes only the active mask's gradients, so the frozen weights' gradients, which
  the clipping norm covers (``clip_mode="all"``), keep accumulating from one stage into the next (ours: each set's
  accumulation starts at zero). Needs ``sequential``;
- ``extra_step``: a stage runs ``steps + 1`` updates (their loop ends when more than ``steps`` were made).

``Protocol(name="authors")`` turns every switch on, ``name="ours"`` (the default) every switch off; a switch given
explicitly overrides the name, so ``{name: authors, extra_step: false}`` is the authors' protocol but for one
difference, and ``{sequential: true}`` ours with one. ``benchmarks/authors/protocol.py`` trains the arithmetic
experiments' masks under a protocol (:func:`in_stages` for the sequential ones); what each difference does to a number
is in the book's reproduction page and ``results/authors/README.md``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Callable, Optional

import torch

from ..history import History
from ..masks import MaskSet
from ..utils import atomic_torch_save, read_torch, rng_state, set_rng_state

NAMES = ("ours", "authors")


@dataclass
class Protocol:
    """How mask training is organised (module docstring); ``None`` = as ``name`` says."""
    name: str = "ours"                      # "ours" (every switch off) or "authors" (every switch on)
    sequential: Optional[bool] = None       # sets trained one after another, as stages
    shared_stream: Optional[bool] = None    # every set/stage reads the same batches
    carry_grads: Optional[bool] = None      # frozen weights' gradients accumulate across stages (clip_mode "all")
    extra_step: Optional[bool] = None       # steps + 1 updates a stage

    def __post_init__(self):
        if self.name not in NAMES:
            raise ValueError(f"unknown protocol name {self.name!r}; expected one of {NAMES}")
        if self.on("carry_grads") and not self.on("sequential"):
            raise ValueError("protocol: carry_grads needs sequential (gradients carry from one stage to the next)")

    def on(self, switch: str) -> bool:
        """Whether difference ``switch`` is on."""
        value = getattr(self, switch)
        return self.name == "authors" if value is None else bool(value)

    def switches(self) -> dict[str, bool]:
        return {f.name: self.on(f.name) for f in fields(self) if f.name != "name"}

    def label(self) -> str:
        """``ours``, ``authors``, ``ours + sequential`` or ``authors − extra_step``."""
        base = self.switches() if self.name == "ours" else {k: not v for k, v in self.switches().items()}
        changed = [k for k, v in base.items() if v]
        return self.name + "".join(f" {'+' if self.name == 'ours' else '−'} {k}" for k in changed)


def stage_steps(cfg, protocol: Protocol):
    """The mask config a stage trains with: ``steps + 1`` under ``extra_step``."""
    return replace(cfg, steps=cfg.steps + 1) if protocol.on("extra_step") else cfg


class CarriedGrads(MaskSet):
    """A :class:`MaskSet` whose accumulated frozen-weight gradients (``clip_mode="all"``, see
    :meth:`MaskSet.track_frozen_grads`) start from ``carry`` (``{name: tensor}``; empty: zeros) and are left in it
    when training ends, so the next stage's set starts where this one's accumulation stopped, as in the authors'
    code. A resumed stage takes its own from its checkpoint."""

    def __init__(self, *args, carry: dict, **kwargs):
        super().__init__(*args, **kwargs)
        self.carry = carry

    def track_frozen_grads(self, on: bool = True) -> None:
        if not on and self.sinks is not None:      # training ends: keep what accumulated
            self.carry.clear()
            self.carry.update({n: s.grad.detach().clone() for n, s in self.sinks.items() if s.grad is not None})
        super().track_frozen_grads(on)
        if on:
            for n, g in self.carry.items():
                self.sinks[n].grad = g.to(self.sinks[n].device, copy=True)


def in_stages(model: torch.nn.Module, n_sets: int, seed: int, protocol: Protocol,
              train_stage: Callable[[int, MaskSet], History], done: Callable[[int], Path],
              init: float = 2.0) -> tuple[MaskSet, History]:
    """Train ``n_sets`` mask sets as stages, one after another: ``train_stage(i, masks)`` trains ``masks``, a
    one-set :class:`MaskSet` for set ``i`` (a :class:`CarriedGrads` under ``carry_grads``), and returns its history.
    A finished stage is saved at ``done(i)`` (its logits, the carried gradients, its history, torch's random state),
    so an interrupted run resumes from its last finished stage exactly (the stage itself resumes from its own
    checkpoint). Returns one :class:`MaskSet` holding all sets (set ``i`` = stage ``i``) and their merged history;
    the stage files are then removed."""
    stages, carry = [], ({} if protocol.on("carry_grads") else None)
    for i in range(n_sets):
        path = done(i)
        if path.exists():
            state = read_torch(path)
            set_rng_state(state["rng"])
        else:
            stage_seed = seed * 1_000_003 + i
            masks = (MaskSet(model, n_sets=1, seed=stage_seed, init=init) if carry is None else
                     CarriedGrads(model, n_sets=1, seed=stage_seed, init=init, carry=carry))
            hist = train_stage(i, masks)
            state = {"logits": {n: l.detach().clone() for n, l in masks.logits.items()}, "history": asdict(hist),
                     "carry": None if carry is None else dict(carry), "rng": rng_state()}
            atomic_torch_save(state, path)
        if carry is not None:
            carry.clear()
            carry.update(state["carry"])
        stages.append(state)
    whole = MaskSet(model, n_sets=n_sets, seed=seed, init=init)
    with torch.no_grad():
        for i, state in enumerate(stages):
            for n, l in whole.logits.items():
                l[i].copy_(state["logits"][n][0])
    hists = [s["history"] for s in stages]
    if any(h["step"] != hists[0]["step"] for h in hists):
        raise ValueError("the stages logged at different steps; the authors' stages run a fixed number of steps: "
                         "set mask.stop_on_plateau=false with protocol.sequential")
    points = range(len(hists[0]["step"]))
    merged = History(step=list(hists[0]["step"]), loss=[[h["loss"][j][0] for h in hists] for j in points],
                     kept=[[h["kept"][j][0] for h in hists] for j in points])
    for i in range(n_sets):
        done(i).unlink(missing_ok=True)
    return whole, merged
