"""Binary weight masks over a frozen PyTorch model, many sets trained at once.

A mask value of 1 (``True``) means the weight is **kept**; 0 means it is removed (set to zero). A mask is a dict
from parameter name (as in ``model.named_parameters()``) to a bool tensor of that parameter's shape; ``M`` mask sets
are stacked along a new leading dimension.

The model's own code is never touched: masked weights are passed in through :func:`torch.func.functional_call`,
and :func:`torch.func.vmap` runs all ``M x K`` mask samples (``M`` sets, ``K`` samples each) in one batched pass
(a model's ``nn.LSTM``/``nn.GRU``/``nn.RNN`` layers, which vmap cannot batch, run as the drop-ins of
:mod:`wmask.recurrent` in a twin of the model that shares its parameters).
"""
from __future__ import annotations

import contextlib
import copy
import time
from typing import Iterable

import torch
from torch import nn
from torch.utils._pytree import tree_leaves, tree_map

from .forward import (VmapForwardError, forward_with, input_tensors,  # noqa: F401 (re-exported)
                      join_samples, map_inputs, split_samples)
from .maskfilter import MaskFilter, check_unparametrized, param_role  # noqa: F401 (re-exported)
from .maskio import check_names_shapes, load_masks, one_set, save_masks  # noqa: F401 (re-exported)
from .recurrent import has_recurrent
from .sampling import from_storage_order, in_storage_order, resolve_impl, sample_masked, storage_order

def as_stored(t: torch.Tensor, order: tuple[int, ...], lead: int = 0) -> torch.Tensor:
    """A copy of ``t`` with the same shape whose memory is laid out in ``order`` (see ``sampling.storage_order``)."""
    return from_storage_order(in_storage_order(t, order, lead).contiguous(), order, lead)


def set_dims(t: torch.Tensor) -> tuple[int, ...]:
    """The dims of a per-set tensor (leading dim = set) that one set's values span: reduce over them for one number
    a set, in place (``flatten(1)`` would copy the tensors stored transposed)."""
    return tuple(range(1, t.dim()))


def slice_sets(t: torch.Tensor, a: int, b: int) -> torch.Tensor:
    """Sets ``a..b-1`` of a leaf ``t`` (leading dim = set) for one pass of a step: a leaf of its own whose gradient
    is added into ``t.grad[a:b]``. (Through autograd's slice, every pass would write a zero gradient for all of
    ``t``'s sets and add it in: traffic that grows with the number of sets times the passes.)"""
    if not (t.requires_grad and t.is_leaf):
        return t[a:b]
    part = t.detach()[a:b].requires_grad_()

    def add_into(g):
        if t.grad is None:
            t.grad = torch.zeros_like(t)
        t.grad[a:b] += g

    part.register_hook(add_into)
    return part


class MaskSet:
    """``n_sets`` independent masks over the selected parameters of a frozen ``model``.

    Each set has one logit per masked weight element (``logits[name]``: ``[n_sets, *shape]``, initialised to
    ``init``); a weight is kept with probability ``sigmoid(logit)`` while training and kept iff ``logit > 0`` when
    evaluating. The model is never changed: the masks train, its weights stay as they are (its ``requires_grad``
    flags too; they are off only while a mask forward runs).

    Inputs, one batch per set (leading dimension ``n_sets``): a tensor, a tuple of tensors (positional inputs) or a
    dict of keyword inputs (a Hugging Face batch); see :mod:`wmask.forward`.

    ``mode``: ``"vmap"`` runs all mask samples in one batched pass (``nn.LSTM``/``nn.GRU``/``nn.RNN`` layers as the
    batched drop-ins of :mod:`wmask.recurrent`; the default); ``"loop"`` one after another (same function, usually
    slower); ``"auto"`` is ``"vmap"`` for a model without recurrent layers; for one with them, where torch's fused
    layers one sample at a time can beat the batched drop-ins, the first training forward times a forward and
    backward of both on its own inputs (twice each, interleaved; torch's random state untouched) and keeps the
    faster (:attr:`mode_seconds` holds the times). Chosen by ``"auto"``, the loop shares the model's own random
    draws among the samples as vmap does; the choice is saved with :meth:`state_dict`, so a resumed run keeps it.
    The two modes round differently, so two runs whose timings chose differently differ in the last bits: use
    ``"auto"`` where speed matters more than reproducing a run bit for bit. Any error the model raises under vmap (e.g.
    it packs sequences itself, or branches on
    a tensor's value) is re-raised (chained) as a :class:`VmapForwardError` that says to pass ``mode="loop"``.

    ``impl``: how the mask sampler runs (the same masks either way). ``"compile"``: its kernels built by
    ``torch.compile`` (fastest per step; building them costs seconds once per process, on CPU it needs a C++
    compiler, and a new dtype recompiles); ``"eager"``: plain torch ops, nothing to build (use it for short runs,
    tests, or where compiling fails); ``"auto"`` (default): ``"compile"`` where it works here, else ``"eager"``
    with a warning. The first training step also traces the model under vmap; :func:`~wmask.train.train_masks`'s
    progress bar leaves that warm-up step out of its rate and ETA.

    Both forwards run the model in **eval mode** (dropout off, normalisation layers use and keep their running
    statistics: masks inspect a fixed function), with a Hugging Face ``config.use_cache`` off, and give every
    module back its own ``training`` flag afterwards (:func:`wmask.forward.fixed_function`).
    Training runs on a copy of the masked weights in storage order; a forward notices when a masked parameter was
    changed or replaced since (``load_state_dict``, in-place edits) and refreshes the copy.
    """

    def __init__(self, model: nn.Module, n_sets: int = 1, filter: MaskFilter | None = None, init: float = 2.0,
                 impl: str = "auto", seed: int | None = None, mode: str = "vmap"):
        if n_sets < 1:
            raise ValueError(f"n_sets must be >= 1, got {n_sets}")
        check_unparametrized(model)
        self.model = model
        self.filter = filter or MaskFilter()
        self.names = self.filter.select(model)
        params = dict(model.named_parameters())
        self.weights = {n: params[n] for n in self.names}
        self.order = {n: storage_order(w.shape) for n, w in self.weights.items()}
        # weights (a frozen copy) and logits live in storage order, so the sampler runs over contiguous memory
        self._stored = {n: as_stored(w.detach(), self.order[n]) for n, w in self.weights.items()}
        self.logits = {n: as_stored(torch.full((n_sets, *w.shape), float(init), device=w.device), self.order[n], 1)
                       .requires_grad_() for n, w in self.weights.items()}
        self._seen = {n: self._key(w) for n, w in self.weights.items()}
        self._owners = {n: (model.get_submodule(n.rpartition(".")[0]), n.rpartition(".")[2]) for n in self.names}
        self.n_sets = n_sets
        if mode not in ("auto", "vmap", "loop"):
            raise ValueError(f"unknown forward mode {mode!r}; expected 'auto', 'vmap' or 'loop'")
        self.mode = "vmap" if mode == "auto" and not has_recurrent(model) else mode
        self.mode_seconds: dict[str, float] = {}
        self._auto = self.mode == "auto"
        self.measuring = False    # set by wmask.memory while it measures a forward: no timing probe then
        self.impl = resolve_impl(impl, next(iter(self.weights.values())).device)
        self.generator = torch.Generator().manual_seed(torch.initial_seed() if seed is None else seed)
        self.sinks: dict[str, torch.Tensor] | None = None
        self._tape: list[torch.Tensor] | None = None      # seeds of the step's calls when its sets run in passes
        self._call = 0

    def freeze(self, names: Iterable[str]) -> None:
        """Stop training the logits of ``names`` in every set (e.g. an output layer copied from a control mask);
        they keep their current values and still mask the weights."""
        for n in names:
            if n not in self.logits:
                raise ValueError(f"cannot freeze {n!r}: not a masked parameter; masked: {self.names}")
            self.logits[n].requires_grad_(False)

    def track_frozen_grads(self, on: bool = True) -> None:
        """Make training forwards also accumulate, per set, the gradient of every frozen parameter (masked or not)
        in ``self.sinks[name].grad`` (``[M, *shape]``). Nothing zeroes it: it grows over a training stage like the
        never-zeroed weight gradients in the authors' code, whose clipping norm includes them (``clip_mode="all"``).
        """
        if not on:
            self.sinks = None
            return
        self.sinks = {}
        for n, p in self.model.named_parameters():
            if p.is_floating_point():
                z = torch.zeros(self.n_sets, *p.shape, device=p.device)
                self.sinks[n] = (as_stored(z, self.order[n], 1) if n in self.order else z).requires_grad_()

    # -- the two forward modes -------------------------------------------------------------------------------
    def sample_forward(self, inputs, k: int = 1, batch_dim: int = 0, sets: tuple[int, int] | None = None):
        """Training forward: ``inputs`` ``[M, ..., B, ...]`` (tensor or tuple) -> outputs ``[M, ..., B, ...]``.

        Each set draws ``k`` masks; sample ``j`` is applied to the ``j``-th contiguous ``B/k`` slice of its set's
        batch (a sequence keeps one mask for all its steps). Differentiable w.r.t. :attr:`logits`. Runs the model
        in eval mode (see the class). ``sets=(a, b)``: only sets ``a..b-1`` (inputs ``[b - a, ...]``), with the masks
        they would draw among all sets (see :meth:`passes`).
        """
        a, b = sets or (0, self.n_sets)
        if not 0 <= a < b <= self.n_sets:
            raise ValueError(f"sets={sets} is not a range of the {self.n_sets} mask sets")
        inputs = self._check_inputs(inputs, b - a)
        self._sync_weights()
        seeds = self._seeds()
        part = (lambda t: t) if (a, b) == (0, self.n_sets) else (lambda t: slice_sets(t, a, b))  # noqa: E731
        sinks = {n: part(t) for n, t in (self.sinks or {}).items()}
        weights = {n: sample_masked(part(self.logits[n]), w, seeds[i], k, self.impl, self.order[n], sinks.get(n), a)
                   for i, (n, w) in enumerate(self._stored.items())}
        if sinks:  # unmasked parameters enter per sample too, so their gradients reach the sinks
            params = dict(self.model.named_parameters())
            weights.update({n: (params[n].detach() + s).repeat_interleave(k, 0)
                            for n, s in sinks.items() if n not in weights})
        xs = map_inputs(lambda x: split_samples(x, k, batch_dim), inputs)
        if self.mode == "auto" and not self.measuring:
            self.mode = self._fastest_mode(weights, xs)
        out = self._forward(weights, xs)
        return tree_map(lambda y: join_samples(y, b - a, batch_dim), out)

    def _fastest_mode(self, weights, inputs, rounds: int = 2) -> str:
        """``"vmap"`` or ``"loop"``, whichever runs a forward and backward on ``inputs`` faster (best of
        ``rounds``, interleaved); gradients go to detached copies of ``weights``, random state is restored."""
        probe = {n: w.detach().requires_grad_() for n, w in weights.items()}
        cuda = sorted({w.device.index or 0 for w in probe.values() if w.is_cuda})
        sync = (lambda: torch.cuda.synchronize()) if cuda else (lambda: None)   # noqa: E731
        times = {"vmap": [], "loop": []}
        # identity hooks: a memory measurement around this call (saved-tensor hooks) sees none of the probe's tensors
        with torch.random.fork_rng(devices=cuda), torch.autograd.graph.saved_tensors_hooks(lambda t: t, lambda t: t):
            for _ in range(rounds):
                for mode in times:
                    sync()
                    t0 = time.perf_counter()
                    out = forward_with(self.model, probe, inputs, mode, same_draws=True)
                    ys = [y for y in tree_leaves(out) if torch.is_tensor(y) and y.requires_grad]
                    if ys:
                        torch.autograd.grad(sum(y.float().sum() for y in ys), list(probe.values()), allow_unused=True)
                    sync()
                    times[mode].append(time.perf_counter() - t0)
        self.mode_seconds = {m: min(t) for m, t in times.items()}
        return min(self.mode_seconds, key=self.mode_seconds.get)

    @contextlib.contextmanager
    def passes(self):
        """One training step whose sets run in several passes (e.g. a few sets at a time, to bound memory): call
        :meth:`next_pass` before each pass; the ``n``-th :meth:`sample_forward` call of every pass reuses the seeds
        the first pass drew for its ``n``-th call, so each set gets the masks one pass over all sets would give."""
        self._tape, self._call = [], 0
        try:
            yield self
        finally:
            self._tape = None

    def next_pass(self) -> None:
        self._call = 0

    def _seeds(self) -> torch.Tensor:
        if self._tape is None:
            return torch.randint(0, 2**62, (len(self.names),), generator=self.generator)
        if self._call == len(self._tape):
            self._tape.append(torch.randint(0, 2**62, (len(self.names),), generator=self.generator))
        self._call += 1
        return self._tape[self._call - 1]

    @torch.no_grad()
    def eval_forward(self, inputs, masks: dict[str, torch.Tensor] | None = None):
        """Deterministic forward with ``masks`` (default: :meth:`binary`), ``[M, ...] -> [M, ...]``, in eval mode."""
        inputs = self._check_inputs(inputs)
        self._sync_weights()
        masks = self.binary() if masks is None else masks
        wrong = {n: tuple(m.shape) for n, m in masks.items()
                 if n in self.weights and tuple(m.shape) != (self.n_sets, *self.weights[n].shape)}
        if wrong:
            raise ValueError(f"eval_forward needs masks stacked [n_sets, *shape] (n_sets={self.n_sets}), one set per "
                             f"mask set, got {wrong}; binary() gives them, binary(i) gives set i alone")
        return self._forward(apply_masks(self.weights, masks), inputs)

    def _forward(self, weights, inputs):
        mode = "vmap" if self.mode == "auto" else self.mode   # (evaluation before the first training forward)
        return forward_with(self.model, weights, inputs, mode, same_draws=self._auto)

    @staticmethod
    def _key(p: torch.Tensor) -> tuple:
        """What changes when a parameter is replaced, written in place, or given new storage (no device sync)."""
        return id(p), p._version, p.data_ptr()

    def _sync_weights(self) -> None:
        """Refresh the frozen copy of any masked parameter changed or replaced since it was taken."""
        for n, (module, attr) in self._owners.items():
            p = module._parameters.get(attr)
            if p is None or tuple(p.shape) != tuple(self.weights[n].shape):
                raise ValueError(f"masked parameter {n!r} was removed or changed shape since the MaskSet was built "
                                 f"(was {tuple(self.weights[n].shape)}, now "
                                 f"{None if p is None else tuple(p.shape)}); build a new MaskSet")
            key = self._key(p)
            if key != self._seen[n]:
                self.weights[n] = p
                self._stored[n] = as_stored(p.detach(), self.order[n])
                self._seen[n] = self._key(p)

    def _check_inputs(self, inputs, n: int | None = None):
        n = self.n_sets if n is None else n
        tensors = input_tensors(inputs)
        if not tensors:
            raise ValueError(f"inputs hold no tensor: give a tensor, a tuple of tensors or a dict of keyword inputs, "
                             f"each with a leading dimension of n_sets={n}")
        for x in tensors:
            if x.shape[0] != n:
                what = f"n_sets={n}" if n == self.n_sets else f"{n} (the sets of this pass)"
                raise ValueError(f"inputs need a leading dimension of {what} (one batch per mask set), got shape "
                                 f"{tuple(x.shape)}")
        return inputs

    # -- reading the masks -----------------------------------------------------------------------------------
    def binary(self, i: int | None = None) -> dict[str, torch.Tensor]:
        """The deterministic masks ``logit > 0`` (True = kept): ``[M, *shape]``, or set ``i`` alone."""
        return {n: (l.detach() > 0) if i is None else (l.detach()[i] > 0) for n, l in self.logits.items()}

    def keep_fraction(self) -> torch.Tensor:
        """Fraction of masked weights kept by each set's deterministic mask, ``[M]``."""
        kept = sum((l.detach() > 0).sum(set_dims(l)) for l in self.logits.values())
        return kept / sum(w.numel() for w in self.weights.values())

    def save(self, path, i: int | None = None) -> None:
        """Write the deterministic masks (every set ``[M, *shape]``, or set ``i``) with this set's filter to a
        safetensors file (:func:`save_masks`; :func:`load_masks` reads them back)."""
        save_masks(path, self.binary(i), filter=self.filter)

    def state_dict(self) -> dict:
        state = {"logits": {n: l.detach().clone() for n, l in self.logits.items()},
                 "generator": self.generator.get_state()}
        if self._auto and self.mode != "auto":
            state["mode"] = self.mode
        if self.sinks is not None:
            state["frozen_grads"] = {n: s.grad.clone() for n, s in self.sinks.items() if s.grad is not None}
        return state

    def load_state_dict(self, state: dict) -> None:
        check_names_shapes(state["logits"], {n: l.shape for n, l in self.logits.items()}, "mask-set state")
        with torch.no_grad():
            for n, l in self.logits.items():
                l.copy_(state["logits"][n])
        self.generator.set_state(state["generator"])
        if self._auto and state.get("mode") in ("vmap", "loop"):
            self.mode = state["mode"]
        if "frozen_grads" in state:
            self.track_frozen_grads()
            for n, g in state["frozen_grads"].items():
                self.sinks[n].grad = g.to(self.sinks[n].device, copy=True)


# -- operations on binary masks (dicts of bool tensors) ----------------------------------------------------------
def apply_masks(weights: dict[str, torch.Tensor], masks: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``weight * mask`` per name; masks may carry leading set dimensions."""
    return {n: torch.where(masks[n], w, torch.zeros((), dtype=w.dtype, device=w.device)) for n, w in weights.items()}


def stacked_weights(model: nn.Module, variants: list[dict | None]) -> dict[str, torch.Tensor]:
    """The model's weights under each of several masks (``None`` = unmasked), stacked ``[S, *shape]`` for
    :func:`forward_with`; only the tensors the masks name (the others stay the model's own)."""
    given = [m for m in variants if m is not None]
    if not given:
        raise ValueError("stacked_weights needs at least one mask; run the model itself for the unmasked net")
    params = dict(model.named_parameters())
    variants = [m if m is None else one_set(m, {n: tuple(params[n].shape) for n in m if n in params}, None,
                                           f"variant {i}'s masks") for i, m in enumerate(variants)]
    given = [m for m in variants if m is not None]
    ones = {n: torch.ones_like(params[n], dtype=torch.bool) for n in given[0]}
    stacked = {n: torch.stack([(ones if m is None else m)[n].to(params[n].device) for m in variants]) for n in ones}
    return apply_masks({n: params[n] for n in ones}, stacked)


def invert(masks: dict[str, torch.Tensor], keep: Iterable[str] = (), like: dict | None = None) -> dict:
    """``NOT mask`` on every tensor; names in ``keep`` take ``like[name]`` instead (e.g. the full-task mask on the
    input/output layers, so that inverting a subtask mask does not delete the other subtasks' I/O weights)."""
    keep = set(keep)
    if keep and like is None:
        raise ValueError("invert(keep=...) needs like= (the masks to keep on those tensors)")
    unknown, unlike = sorted(keep - set(masks)), sorted(n for n in keep if like is not None and n not in like)
    if unknown or unlike:
        raise ValueError(f"invert(keep=...): names {unknown} are not in the masks and names {unlike} are not in "
                         f"like=; the masks name {list(masks)}")
    return {n: like[n].clone() if n in keep else ~m for n, m in masks.items()}


def mask_and(a: dict, b: dict) -> dict:
    return {n: a[n] & b[n] for n in a}


def mask_or(a: dict, b: dict) -> dict:
    return {n: a[n] | b[n] for n in a}


def counts(masks: dict[str, torch.Tensor]) -> dict[str, int]:
    """Number of kept weights per tensor (summed over any leading set dimensions)."""
    return {n: int(m.sum()) for n, m in masks.items()}


def full_masks(model: nn.Module, filter: MaskFilter | None = None, value: bool = True) -> dict[str, torch.Tensor]:
    """All-kept (or all-removed) masks over the parameters ``filter`` selects."""
    params = dict(model.named_parameters())
    return {n: torch.full_like(params[n], value, dtype=torch.bool) for n in (filter or MaskFilter()).select(model)}


def materialize(model: nn.Module, masks: dict[str, torch.Tensor], set: int | None = None) -> nn.Module:
    """A standalone copy of ``model`` whose removed weights are zero (``True`` = kept). ``masks``: one set, or sets
    stacked ``[M, *shape]`` with ``set=i`` choosing one (``M = 1``, as ``MaskSet.save`` writes one set, needs none)."""
    params = dict(model.named_parameters())
    masks = one_set(masks, {n: tuple(params[n].shape) for n in masks if n in params}, set)
    check_names_shapes(masks, {n: params[n].shape for n in masks if n in params}, "masks", extra_ok=False,
                       known={*params})
    wrong = [f"{n}: {m.dtype}" for n, m in masks.items() if m.dtype != torch.bool]
    if wrong:
        raise TypeError(f"materialize needs bool masks (True = kept), got {', '.join(wrong)}; a float mask would "
                        "scale the weights (use mask > 0 or mask.bool() for a 0/1 mask)")
    out = copy.deepcopy(model)
    out_params = dict(out.named_parameters())
    with torch.no_grad():
        for n, m in masks.items():
            out_params[n].mul_(m.to(out_params[n].dtype))
    return out
