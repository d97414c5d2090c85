"""One update of every mask set: the forward/backward passes, the regulariser, a finite check, per-set clipping and
Adam (:class:`MaskStep`), and joint weight training on top of it (:class:`JointStep`). :func:`wmask.train_masks`
and :func:`wmask.train_jointly` loop over these. A mask value 1 means the weight is kept."""
from __future__ import annotations

import math
from dataclasses import asdict
from typing import Callable, Sequence

import torch
from torch.utils._pytree import tree_map

from . import memory
from .forward import input_tensors, map_inputs
from .masks import MaskSet, set_dims, slice_sets
from .nonfinite import non_finite
from .utils import rng_state, set_rng_state


def _check_batch(inputs, cfg, step: int, n_sets: int) -> None:
    """Inputs ``[M, ..., B, ...]``, checked before any pass slices them: M must be ``n_sets`` (one batch per mask
    set), and B (dim ``cfg.batch_dim + 1``) ``cfg.batch_size``, which the regulariser ``alpha * sum(logits) /
    batch_size`` divides by."""
    d = cfg.batch_dim + 1
    items = inputs.items() if isinstance(inputs, dict) else enumerate(
        inputs if isinstance(inputs, (tuple, list)) else (inputs,))
    for j, x in ((j, x) for j, x in items if isinstance(x, torch.Tensor)):
        if x.dim() == 0 or x.shape[0] != n_sets:
            raise ValueError(f"step {step}: input {j!r} has shape {tuple(x.shape)}, but its leading dimension must "
                             f"be the {n_sets} mask sets (one batch per set, stacked: [{n_sets}, ...])")
        if x.dim() > d and x.shape[d] != cfg.batch_size:
            raise ValueError(f"step {step}: input {j} has batch size {x.shape[d]} (dim {d} of shape "
                             f"{tuple(x.shape)}, batch_dim={cfg.batch_dim}) but the config says "
                             f"batch_size={cfg.batch_size}; the regulariser alpha * sum(logits) / batch_size divides "
                             "by it, so a mismatch would silently change alpha")


def _one_pass(masks, a, b, inputs, targets, forward, loss_fn, logits, alpha, cfg) -> torch.Tensor:
    """Forward and backward of sets ``a..b-1``: the model sees their inputs only, ``forward`` and ``loss_fn`` see
    every set's slot (the others' outputs are zeros, and their losses are dropped). Returns their task losses."""
    whole = _all_sets(masks, a, b)
    task = loss_fn(_pass_output(masks, a, b, inputs, forward, cfg), targets)
    if task.dim() == 0 and masks.n_sets == 1:     # one set: a scalar loss is that set's loss
        task = task.reshape(1)
    if task.shape != (masks.n_sets,):
        raise ValueError(f"loss_fn must return one loss per mask set, shape ({masks.n_sets},), got {tuple(task.shape)}")
    part = (lambda t: t) if whole else (lambda t: t[a:b])  # noqa: E731
    sets = (lambda t: t) if whole else (lambda t: slice_sets(t, a, b))  # noqa: E731
    reg = (sum(sets(l).sum(set_dims(l)) for l in logits) * part(alpha)).sum()
    (part(task).sum() + reg).backward()
    return part(task).detach()


def _all_sets(masks, a, b) -> bool:
    return (a, b) == (0, masks.n_sets)


def _pass_output(masks, a, b, inputs, forward, cfg):
    """The outputs of sets ``a..b-1`` in every set's slot (zeros in the others'), through ``forward``."""
    masks.next_pass()

    def call(x):
        out = masks.sample_forward(map_inputs(lambda t: t[a:b], x), k=cfg.k, batch_dim=cfg.batch_dim, sets=(a, b))
        if _all_sets(masks, a, b):
            return out
        pad = lambda y: torch.cat([y.new_zeros(a, *y.shape[1:]), y, y.new_zeros(masks.n_sets - b, *y.shape[1:])])
        return tree_map(pad, out)
    return call(inputs) if forward is None else forward(call, inputs)


def set_norms(grads: list[torch.Tensor]) -> torch.Tensor:
    """Each set's gradient norm over all tensors (leading dim = set), ``[M]``."""
    # reduced in place: flatten would copy the many gradients stored transposed (a tenth of an LSTM's mask step)
    norms = [torch.linalg.vector_norm(g, dim=set_dims(g)) for g in grads]
    return torch.stack(norms).square().sum(0).sqrt()


def clip_per_set(grads: list[torch.Tensor], max_norm: float, norms: torch.Tensor | None = None) -> torch.Tensor:
    """Scale each set's gradients (leading dim) so that its norm over all tensors is at most ``max_norm``, like
    ``clip_grad_norm_`` applied to every set alone. Returns the norms before clipping, ``[M]`` (``norms``: already
    computed by :func:`set_norms`)."""
    norms = set_norms(grads) if norms is None else norms
    scale = (max_norm / (norms + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(scale.view(-1, *([1] * (g.dim() - 1))))
    return norms




class MaskStep:
    """One update of every set of ``masks`` (see :func:`wmask.train_masks` for ``loss_fn``, ``alphas``,
    ``forward`` and ``sets_per_pass``): Adam over the stacked mask logits, plus ``weights`` when they train too."""

    def __init__(self, masks: MaskSet, loss_fn: Callable, cfg, alphas: Sequence[float] | None = None,
                 forward: Callable | None = None, sets_per_pass: int | None = None, weights: Sequence = ()):
        self.masks, self.loss_fn, self.cfg, self.forward = masks, loss_fn, cfg, forward
        self.logits = list(masks.logits.values())
        self.opt = torch.optim.Adam(self.logits + list(weights), lr=cfg.lr)
        self.alphas = [cfg.alpha] * masks.n_sets if alphas is None else [float(a) for a in alphas]
        if len(self.alphas) != masks.n_sets or not all(math.isfinite(a) and a >= 0 for a in self.alphas):
            raise ValueError(f"alphas must be {masks.n_sets} finite values >= 0 (one per mask set), got {self.alphas}")
        self.alpha = torch.tensor(self.alphas, device=self.logits[0].device) / cfg.batch_size
        self.per_pass = None if sets_per_pass is None else int(sets_per_pass)
        if self.per_pass is not None and self.per_pass < 1:
            raise ValueError(f"sets_per_pass must be >= 1, got {sets_per_pass}")
        self.bounds = [(0, masks.n_sets)] if self.per_pass is None else memory.passes(masks.n_sets, self.per_pass)

    @property
    def config(self) -> dict:
        """What a checkpoint must have been written with to be resumed."""
        return {**asdict(self.cfg), "alphas": self.alphas}

    def __call__(self, step: int, inputs, targets) -> torch.Tensor:
        """Update every set on its own batch (``inputs``/``targets``: ``[M, ...]``); returns the task losses ``[M]``."""
        masks, cfg = self.masks, self.cfg
        _check_batch(inputs, cfg, step, masks.n_sets)
        if self.per_pass is None and masks.n_sets > 1:   # the budget, with one set's activations measured on a batch
            self.per_pass = memory.measured_sets_per_pass(
                masks, lambda: _pass_output(masks, 0, 1, inputs, self.forward, cfg), cfg.k, live=input_tensors(inputs))
            self.bounds = memory.passes(masks.n_sets, self.per_pass)
        self.opt.zero_grad(set_to_none=False)
        self.before_passes()
        with masks.passes():
            rng, parts = (rng_state() if len(self.bounds) > 1 else None), []
            for i, (a, b) in enumerate(self.bounds):
                if i:   # the model's own random draws (a teacher-forcing coin) as in one pass: the first pass's
                    set_rng_state(rng)
                parts.append(_one_pass(masks, a, b, inputs, targets, self.forward, self.loss_fn, self.logits,
                                       self.alpha, cfg))
            task = torch.cat(parts)
        self.after_passes()
        grads = [l.grad for l in self.logits if l.grad is not None]
        grads += [s.grad for s in (masks.sinks or {}).values() if s.grad is not None]
        norms = set_norms(grads)    # finite iff every gradient is: one host sync per step checks it with the loss
        if not bool(torch.isfinite(task).all() & torch.isfinite(norms).all()):
            raise non_finite(step, inputs, targets, task.detach(), norms, masks)
        clip_per_set(grads, cfg.clip, norms)
        self.before_update()
        self.opt.step()
        return task

    def before_passes(self) -> None:
        """Hook: runs after the gradients are zeroed."""

    def after_passes(self) -> None:
        """Hook: runs once every pass's gradients are in, before the norms."""

    def before_update(self) -> None:
        """Hook: runs after clipping, before Adam's step."""

    def state_dict(self) -> dict:
        return {"masks": self.masks.state_dict(), "opt": self.opt.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.masks.load_state_dict(state["masks"])
        self.opt.load_state_dict(state["opt"])


class JointStep(MaskStep):
    """A :class:`MaskStep` in which the model's weights train too (the paper's permuted MNIST, §2.4): one Adam over
    the logits and the weights, whose gradient is the straight-through gradient through the masked weights summed
    over sets, one clipping norm over both (as the authors' code). ``frozen``: ``{parameter name: bool tensor}``,
    True where a weight must not change; it gets no gradient and none enters the norm."""

    def __init__(self, masks: MaskSet, loss_fn: Callable, cfg, frozen: dict[str, torch.Tensor] | None = None,
                 **kwargs):
        self.params, self.frozen = dict(masks.model.named_parameters()), dict(frozen or {})
        for n, f in self.frozen.items():
            if n not in self.params or tuple(f.shape) != tuple(self.params[n].shape):
                raise ValueError(f"frozen[{n!r}]: no parameter of that name and shape ({tuple(f.shape)})")
        if masks.n_sets != 1 or cfg.clip_mode != "all":
            raise ValueError("joint training needs one mask set and clip_mode='all' (one norm over weights and masks)")
        super().__init__(masks, loss_fn, cfg, weights=[p for p in self.params.values() if p.is_floating_point()],
                         **kwargs)

    @property
    def config(self) -> dict:
        return {**super().config, "train_weights": True}

    def before_passes(self) -> None:
        for sink in self.masks.sinks.values():     # this step's weight gradients only
            sink.grad = None

    def after_passes(self) -> None:
        for n, f in self.frozen.items():
            if self.masks.sinks[n].grad is not None:
                self.masks.sinks[n].grad.masked_fill_(f.to(self.masks.sinks[n].grad.device), 0)

    def before_update(self) -> None:
        for n, sink in self.masks.sinks.items():
            self.params[n].grad = sink.grad.sum(0).contiguous() if sink.grad is not None else None

    def state_dict(self) -> dict:
        return {**super().state_dict(), "weights": self.masks.model.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.masks.model.load_state_dict(state["weights"])
        super().load_state_dict(state)
