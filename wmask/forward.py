"""Running a frozen model under many substituted weight sets at once (re-exported by :mod:`wmask.masks`).

A model's inputs are given as a tensor, a tuple of tensors (positional inputs) or a dict (keyword inputs, e.g. a
Hugging Face batch ``{"input_ids": ..., "attention_mask": ...}``); every tensor carries a leading dimension, one
entry per weight set. Values of a dict that are not tensors (``output_hidden_states=True``) are passed unchanged.
While masks run, the model is in eval mode, its parameters ask for no gradient, attention's inference fast path is
off, and a ``config.use_cache`` (Hugging Face) is off; each is given back afterwards.
"""
from __future__ import annotations

import contextlib

import torch
from torch import nn
from torch.func import functional_call, vmap
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils._pytree import tree_map

from .recurrent import batchable


class VmapForwardError(RuntimeError):
    """The model raised while running its mask samples batched under :func:`torch.func.vmap`."""


def call_args(inputs) -> tuple[tuple, dict]:
    """``(args, kwargs)`` of a model call from a tensor, a tuple of tensors or a dict of keyword inputs."""
    if isinstance(inputs, dict):
        return (), dict(inputs)
    if isinstance(inputs, list):
        inputs = tuple(inputs)
    return (inputs if isinstance(inputs, tuple) else (inputs,)), {}


def input_tensors(inputs) -> list[torch.Tensor]:
    """Every tensor of ``inputs`` (a tensor, a tuple or a dict), positional first."""
    args, kwargs = call_args(inputs)
    return [t for t in (*args, *kwargs.values()) if isinstance(t, torch.Tensor)]


def map_inputs(fn, inputs):
    """``inputs`` with ``fn`` applied to each tensor, in the same form (a tensor stays a tensor)."""
    if isinstance(inputs, dict):
        return {k: fn(v) if isinstance(v, torch.Tensor) else v for k, v in inputs.items()}
    if isinstance(inputs, (tuple, list)):
        return tuple(fn(v) if isinstance(v, torch.Tensor) else v for v in inputs)
    return fn(inputs)


def split_samples(x: torch.Tensor, k: int, batch_dim: int) -> torch.Tensor:
    """``[M, ..., B, ...] -> [M*K, ..., B/K, ...]``: sample ``j`` of set ``i`` gets the ``j``-th contiguous slice."""
    d = batch_dim + 1
    b = x.shape[d]
    if b % k:
        raise ValueError(f"batch size {b} (input dim {d} of shape {tuple(x.shape)}) is not divisible by "
                         f"the number of mask samples K={k}")
    x = x.unflatten(d, (k, b // k)).movedim(d, 1)
    return x.flatten(0, 1)


def join_samples(y: torch.Tensor, m: int, batch_dim: int) -> torch.Tensor:
    """Inverse of :func:`split_samples`: ``[M*K, ..., B/K, ...] -> [M, ..., B, ...]``."""
    y = y.unflatten(0, (m, -1)).movedim(1, batch_dim + 1)
    return y.flatten(batch_dim + 1, batch_dim + 2)


@contextlib.contextmanager
def fixed_function(model: nn.Module):
    """Meanwhile: eval mode, no parameter asks for a gradient (only the substituted weights carry one), no
    attention fast path (no backward, ignores substituted weights), no Hugging Face key/value cache (generation
    state that vmap cannot return). Everything is given back as it was."""
    training = [m for m in model.modules() if m.training]
    grads = [p for p in model.parameters() if p.requires_grad]
    config = getattr(model, "config", None)
    cache = getattr(config, "use_cache", None)
    fastpath = torch.backends.mha.get_fastpath_enabled()
    model.eval()
    for p in grads:
        p.requires_grad_(False)
    if cache:
        config.use_cache = False
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
        if cache:
            config.use_cache = cache
        for p in grads:
            p.requires_grad_(True)
        for m in training:
            m.training = True


def forward_with(model: nn.Module, weights: dict[str, torch.Tensor], inputs, mode: str = "vmap",
                 same_draws: bool = False):
    """Run ``model`` once per leading index ``s`` of ``weights[name]`` (``[S, *shape]``) on ``inputs[s]``.

    ``inputs``: a tensor, a tuple of tensors or a dict of keyword inputs, each tensor ``[S, ...]``; the other
    parameters and buffers are the model's own. Returns the model's output stacked along a leading ``S``
    dimension. ``mode="vmap"`` runs all ``S`` in one batched pass (recurrent layers through
    :func:`wmask.recurrent.batchable`; random draws inside the model are shared by the ``S`` calls, as in one
    forward over a whole batch); ``"loop"`` calls the model ``S`` times (for models that cannot run under vmap);
    both compute the same function. The model runs as :func:`fixed_function` says. ``same_draws`` (``"loop"``):
    every call starts from the same random state, so random draws inside the model (a teacher-forcing coin) are
    shared by the ``S`` calls as under vmap, and torch's random state moves on as after one call.
    """
    args, kwargs = call_args(inputs)
    with fixed_function(model):
        return run_sets(model, weights, args, kwargs, mode, same_draws=same_draws)


def run_sets(model: nn.Module, weights: dict[str, torch.Tensor], args: tuple, kwargs: dict, mode: str,
             shared: bool = False, same_draws: bool = False):
    """The model under each of the ``S`` weight sets ``weights[name][s]``, outputs stacked ``[S, ...]``: on inputs
    ``args[i][s]`` / ``kwargs[k][s]``, or, with ``shared``, on the same inputs for every set (``in_dims=None``, no
    copy per set). Non-tensor keyword values are passed as given. The caller holds :func:`fixed_function`."""
    if mode not in ("vmap", "loop"):
        raise ValueError(f"unknown forward mode {mode!r}; expected 'vmap' or 'loop'")
    batched = {k: v for k, v in kwargs.items() if isinstance(v, torch.Tensor)}
    static = {k: v for k, v in kwargs.items() if k not in batched}
    if mode == "vmap":
        return _vmapped(model, weights, args, batched, static, None if shared else 0)
    alias = slots(model)
    per_w = {n: w.unbind(0) for n, w in weights.items()}  # unbind: one gradient stack, not S scatters
    s_count = next(iter(weights.values())).shape[0]
    pick = (lambda x, s: x) if shared else (lambda x, s: x[s])  # noqa: E731
    per_a = args if shared else [x.unbind(0) for x in args]
    per_k = batched if shared else {k: v.unbind(0) for k, v in batched.items()}
    rng = _rng_state() if same_draws else None
    outs = []
    for s in range(s_count):
        if rng is not None:
            _set_rng_state(rng)
        outs.append(substituted(model, {n: w[s] for n, w in per_w.items()}, tuple(pick(x, s) for x in per_a),
                                {**{k: pick(v, s) for k, v in per_k.items()}, **static}, alias))
    return tree_map(lambda *ys: torch.stack(ys), *outs) if len(outs) > 1 else tree_map(lambda y: y[None], outs[0])


def _rng_state():
    return torch.get_rng_state(), torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None


def _set_rng_state(state) -> None:
    torch.set_rng_state(state[0])
    if state[1] is not None:
        torch.cuda.set_rng_state_all(state[1])


def slots(model: nn.Module) -> dict[str, list[str]]:
    """Every name of every parameter of ``model`` -> the names under which it must be substituted: one per
    distinct (module, attribute) holding it. A weight tied across modules (an output layer sharing the embedding's
    weight) has one slot per module; a module registered under two names (one embedding as both ``src_emb`` and
    ``tgt_emb``) is one slot, which torch's ``functional_call`` would otherwise swap twice and leave substituted."""
    names: dict[int, list[str]] = {}
    seen = set()
    for prefix, module in model.named_modules(remove_duplicate=False):
        for attr, p in module._parameters.items():
            if p is None or (id(module), attr) in seen:
                continue
            seen.add((id(module), attr))
            names.setdefault(id(p), []).append(f"{prefix}.{attr}" if prefix else attr)
    out = {}
    for prefix, p in model.named_parameters(remove_duplicate=False):
        out[prefix] = names[id(p)]
    return out


def substituted(model: nn.Module, weights: dict, args: tuple, kwargs: dict, alias: dict | None = None):
    """``functional_call(model, weights, args, kwargs)`` with each weight substituted in every slot that holds it
    (:func:`slots`), so tied weights stay tied and the model gets its own parameters back."""
    alias = slots(model) if alias is None else alias
    full = {a: w for n, w in weights.items() for a in alias.get(n, (n,))}
    return functional_call(model, full, args, kwargs, tie_weights=False)


def _vmapped(model, weights, args, batched, static, in_dim):
    try:   # the fused attention kernels have no vmap batching rule; the math one batches
        twin = batchable(model)
        alias = slots(twin)
        with sdpa_kernel(SDPBackend.MATH):
            return vmap(lambda w, xs, kw: substituted(twin, w, xs, {**kw, **static}, alias),
                        in_dims=(0, in_dim, in_dim), randomness="same")(weights, args, batched)
    except Exception as err:  # noqa: BLE001 - any error: re-raised, chained, with the way out
        first = (str(err).splitlines() or [""])[0]
        raise VmapForwardError(
            f"{type(model).__name__} failed while running its mask samples batched under torch.func.vmap "
            f"({type(err).__name__}: {first}). If the model cannot run under vmap (a layer with no batching "
            "rule, Python control flow on tensor values such as a random teacher-forcing draw, in-place "
            "updates of buffers), run the samples one after another: MaskSet(..., mode='loop') or "
            "forward_with(..., mode='loop'); same function, slower") from err


def forward_mode(model: nn.Module) -> str:
    """The :func:`forward_with` mode for ``model``: ``"vmap"`` (recurrent layers run as batched drop-ins, see
    :mod:`wmask.recurrent`); kept for callers that choose a mode per model."""
    return "vmap"
