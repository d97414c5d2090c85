"""One batched evaluation: a frozen model under many masks at once, on shared inputs.

``call = variants_forward(model, [None, mask_a, mask_b])`` returns a function of the model's inputs (positional
and keyword) whose output is stacked along a new leading dimension, one entry per variant (``None`` = the unmasked
model; a mask is a dict of bool tensors, True = kept). With ``vmap`` the inputs are shared (``in_dims=None``), as
in the torch.func ensembling tutorial: no copy of the batch per variant. Every experiment's test-set evaluation
goes through here.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn
from torch.utils._pytree import tree_map

from .forward import fixed_function, run_sets
from .masks import stacked_weights


def variants_forward(model: nn.Module, variants: list[dict | None], mode: str | None = None) -> Callable:
    """``call(*inputs, **kw_inputs) -> outputs [S, ...]`` for the ``S`` variants (no gradients; the model runs as
    :func:`wmask.forward.fixed_function` says: eval mode, no cache)."""
    if not variants:
        raise ValueError("variants_forward needs at least one variant (None = the unmasked model)")
    mode = mode or "vmap"
    if mode not in ("vmap", "loop"):
        raise ValueError(f"unknown forward mode {mode!r}; expected 'vmap' or 'loop'")
    masked = any(v is not None for v in variants)
    weights = stacked_weights(model, variants) if masked else None

    @torch.no_grad()
    def call(*inputs, **kw):
        with fixed_function(model):
            if weights is None:
                out = model(*inputs, **kw)
                return tree_map(lambda y: y.unsqueeze(0).expand(len(variants), *y.shape)
                                if isinstance(y, torch.Tensor) else y, out)
            return run_sets(model, weights, inputs, kw, mode, shared=True)
    return call
