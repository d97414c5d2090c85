"""Running a frozen model under many substituted weight sets at once (re-exported by :mod:`wmask.masks`).

A model's inputs are given as a tensor, a tuple of tensors (positional inputs) or a dict (keyword inputs, e.g. a
Hugging Face batch ``{"input_ids": ..., "attention_mask": ...}``); every tensor carries a leading dimension, one
entry per weight set. Values of a dict that are not tensors (``output_hidden_states=True``) are passed unchanged.
While masks run, the model is in eval mode, its parameters ask for no gradient, attention's inference fast path is
off, and a ``config.use_cache`` (Hugging Face) is off; each is given back afterwards.
"""
from __future__ import annotations

import contextlib
import sys

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
    state that vmap cannot return; off in every ``config`` of the module tree). Everything is given back as it
    was."""
    training = [m for m in model.modules() if m.training]
    grads = [p for p in model.parameters() if p.requires_grad]
    configs = {id(c): (c, c.use_cache) for m in model.modules()
               if getattr(c := getattr(m, "config", None), "use_cache", None)}
    fastpath = torch.backends.mha.get_fastpath_enabled()
    model.eval()
    for p in grads:
        p.requires_grad_(False)
    for c, _ in configs.values():   # every config: T5's decoder keeps a copy of its own
        c.use_cache = False
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
        for c, cache in configs.values():
            c.use_cache = cache
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
    kwargs = drop_full_attention_masks(model, kwargs)
    check_sets(model, weights, args, kwargs, shared)
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


ATTENTION_MASKS = ("attention_mask", "decoder_attention_mask")


def drop_full_attention_masks(model: nn.Module, kwargs: dict) -> dict:
    """A Hugging Face model's (one with a ``config``) ``attention_mask`` / ``decoder_attention_mask`` of all ones
    (a tokenizer's batch without padding) is left out: the model then builds the same all-attending mask itself."""
    if getattr(model, "config", None) is None:
        return kwargs
    full = [k for k in ATTENTION_MASKS if isinstance(kwargs.get(k), torch.Tensor) and bool(kwargs[k].all())]
    return {k: v for k, v in kwargs.items() if k not in full}


def check_sets(model: nn.Module, weights: dict, args: tuple, kwargs: dict, shared: bool) -> None:
    """A ``ValueError`` naming the mistake when the weights are not stacked ``[S, *shape]`` with one ``S`` (a single
    set given where stacked sets are expected, or stacked sets where one is), or the inputs' leading dimension is
    not ``S`` (the wrong number of sets)."""
    params = dict(model.named_parameters())
    leads = {}
    for n, w in weights.items():
        shape = tuple(params[n].shape) if n in params else tuple(w.shape[1:])
        lead = tuple(w.shape[:w.dim() - len(shape)]) if tuple(w.shape[w.dim() - len(shape):]) == shape else None
        if lead is None or len(lead) != 1:
            what = ("one set, not stacked" if lead == () else f"leading dimensions {lead}" if lead else
                    f"shape {tuple(w.shape)}")
            raise ValueError(f"weights/masks for {n!r} must be stacked sets [S, *{shape}], got {what}; stack one "
                             f"set per run (a MaskSet's binary() gives [n_sets, *shape]; binary(i) gives one set)")
        leads[n] = lead[0]
    if len(set(leads.values())) > 1:
        raise ValueError(f"weights/masks hold different numbers of sets: {leads}")
    s = next(iter(leads.values()), None)
    if shared or s is None:
        return
    for where, x in [*((f"positional input {i}", x) for i, x in enumerate(args)), *kwargs.items()]:
        if isinstance(x, torch.Tensor) and (x.dim() == 0 or x.shape[0] != s):
            raise ValueError(f"{where} has shape {tuple(x.shape)}, but there are {s} weight/mask sets: inputs need a "
                             f"leading dimension of {s}, one batch per set")


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
        with sdpa_kernel(SDPBackend.MATH), batched_padding_masks():
            return vmap(lambda w, xs, kw: substituted(twin, w, xs, {**kw, **static}, alias),
                        in_dims=(0, in_dim, in_dim), randomness="same")(weights, args, batched)
    except Exception as err:  # noqa: BLE001 - any error: the model's own mistake, or vmap's, with the way out
        alone = _fails_alone(model, weights, args, batched, static, in_dim)
        if alone is not None:   # the same call fails without vmap: loop mode would not help
            if hasattr(alone, "add_note"):
                alone.add_note(f"({type(model).__name__} raised this on one weight set alone, without vmap: the "
                               "inputs, masks or model are wrong for each other, not vmap; mode='loop' fails too)")
            raise alone from None
        first = (str(err).splitlines() or [""])[0]
        padded = [k for k in ATTENTION_MASKS if k in batched]
        hint = (f" A padded {' / '.join(padded)} (not all ones) is what such models branch on: pass mode='loop', "
                "or batches without padding." if padded else "")
        raise VmapForwardError(
            f"{type(model).__name__} failed while running its mask samples batched under torch.func.vmap "
            f"({type(err).__name__}: {first}); on one set alone, without vmap, it runs. If the model cannot run "
            "under vmap (a layer with no batching rule, Python control flow on tensor values such as a random "
            "teacher-forcing draw, in-place updates of buffers), run the samples one after another: "
            f"MaskSet(..., mode='loop') or forward_with(..., mode='loop'); same function, slower.{hint}") from err


def _fails_alone(model, weights, args, batched, static, in_dim) -> Exception | None:
    """The exception the model raises on the first weight set (and its inputs) without vmap, or None."""
    pick = (lambda x: x) if in_dim is None else (lambda x: x[0])  # noqa: E731
    try:
        with torch.no_grad():
            substituted(model, {n: w[0] for n, w in weights.items()}, tuple(pick(x) for x in args),
                        {**{k: pick(v) for k, v in batched.items()}, **static})
    except Exception as err:  # noqa: BLE001 - whatever the model raises is the answer
        return err
    return None


@contextlib.contextmanager
def batched_padding_masks():
    """Meanwhile, Hugging Face's mask builders (``transformers.masking_utils``) treat a tensor batched by vmap as
    traced: they then build the attention mask from a padded ``attention_mask`` (as under ``torch.compile``)
    instead of first testing whether it is all ones, a branch on values that vmap cannot batch. Nothing happens
    where transformers is not imported or has no such hook."""
    mu = sys.modules.get("transformers.masking_utils")
    tracing = getattr(mu, "is_tracing", None)
    if tracing is None:
        yield
        return

    def is_tracing(tensor=None, *a, **kw):
        return tracing(tensor, *a, **kw) or (isinstance(tensor, torch.Tensor)
                                             and torch._C._functorch.is_batchedtensor(tensor))
    mu.is_tracing = is_tracing
    try:
        yield
    finally:
        mu.is_tracing = tracing
