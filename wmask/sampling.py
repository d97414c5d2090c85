"""Gumbel-sigmoid straight-through sampling of binary weight masks, fused with `weight * mask`.

The paper samples, per weight element and per mask sample, ``s = sigmoid((l + noise) / tau)`` with logistic noise
``noise = log(u) - log(1 - u)``, ``u ~ U(0, 1)``, uses ``m = 1[s > 0.5]`` in the forward pass and the gradient of ``s``
in the backward pass (straight-through, tau = 1). A mask value of 1 means the weight is **kept**.

Two identities make this cheap:

* forward: ``s > 0.5  <=>  l + log(u / (1 - u)) > 0  <=>  1 - u < sigmoid(l)``; with ``v = 1 - u`` (also uniform) the
  kept elements are exactly ``v < sigmoid(l)``: one uniform and one comparison per element, no logarithm;
* backward: ``s = sigmoid(l + log((1 - v) / v)) = (1 - v) / (1 - v + v * exp(-l))`` and ``ds/dl = s (1 - s)``.

The uniforms come from a counter-based hash of ``(seed, element index)``, so the backward pass regenerates them
instead of storing ``K x P`` floats, and every element can be computed independently (vectorised, in parallel, in
one pass). The same hash runs eagerly or compiled by ``torch.compile``; both give the same masks. The seed is first
mixed through the splitmix64 finaliser (every one of its 64 bits reaches the key), and the key enters the element
hash by XOR, not addition: with ``idx * golden + seed`` two seeds that differ by a multiple of the golden ratio gave
uniforms that were shifted copies of each other.
"""
from __future__ import annotations

import warnings

import torch

_M32 = 0xFFFFFFFF
# Multipliers of the "lowbias32" integer hash (C. Wellons). Constants >= 2**31 are applied as (c - 2**32): the product
# stays inside int64 and is the same modulo 2**32.
_GOLDEN = 0x9E3779B9 - (1 << 32)
_H1 = 0x7FEB352D
_H2 = 0x846CA68B - (1 << 32)


_M64 = (1 << 64) - 1


def mix_seed(seed) -> torch.Tensor:
    """The 32-bit hash key of ``seed`` (an int or an integer scalar tensor, any 64 bits): the splitmix64 finaliser
    of the seed, low half, as an int64 scalar tensor on the seed's device. Computed exactly with Python integers."""
    device = seed.device if isinstance(seed, torch.Tensor) else None
    z = (int(seed) + 0x9E3779B97F4A7C15) & _M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
    z ^= z >> 31
    return torch.tensor(z & _M32, dtype=torch.int64, device=device)


def uniform(key: torch.Tensor, shape: tuple[int, ...], device=None, offset: int = 0) -> torch.Tensor:
    """Uniforms in (0, 1) of ``shape``, a pure function of ``key`` (a 32-bit int64 scalar tensor, see
    :func:`mix_seed`) and the element's row-major index plus ``offset`` (so a slice of the mask sets draws exactly
    the uniforms it would draw among all of them)."""
    n = 1
    for d in shape:
        n *= d
    idx = (torch.arange(n, dtype=torch.int64, device=device) + offset).view(shape)
    x = ((idx * _GOLDEN) & _M32) ^ key
    x = x ^ (x >> 16)
    x = (x * _H1) & _M32
    x = x ^ (x >> 15)
    x = (x * _H2) & _M32
    x = x ^ (x >> 16)
    return ((x >> 9).to(torch.float32) + 0.5) * (1.0 / 8388608.0)  # 23 bits: strictly inside (0, 1) in float32


def _forward(logits: torch.Tensor, weight: torch.Tensor, key: torch.Tensor, k: int, offset: int = 0) -> torch.Tensor:
    """``weight * mask`` for ``k`` samples of each of the ``m`` mask sets: ``[m, *s], [*s] -> [m, k, *s]``."""
    v = uniform(key, (logits.shape[0], k, *weight.shape), logits.device, offset)
    keep = v < torch.sigmoid(logits.float()).unsqueeze(1)
    return torch.where(keep, weight, torch.zeros((), dtype=weight.dtype, device=weight.device))


def _backward(grad: torch.Tensor, weight: torch.Tensor, logits: torch.Tensor, key: torch.Tensor,
              offset: int = 0) -> torch.Tensor:
    """Gradient w.r.t. the logits: ``sum_k grad_k * weight * s_k (1 - s_k)``, ``[m, k, *s] -> [m, *s]``."""
    v = uniform(key, tuple(grad.shape), logits.device, offset)
    q = torch.exp(-logits.float()).unsqueeze(1)
    s = (1.0 - v) / (1.0 - v + v * q)
    return (grad.float() * weight.float() * (s * (1.0 - s))).sum(1).to(logits.dtype)


def _weight_backward(grad: torch.Tensor, logits: torch.Tensor, key: torch.Tensor, offset: int = 0) -> torch.Tensor:
    """Gradient w.r.t. the frozen weight, per set: ``sum_k grad_k * m_k``, ``[m, k, *s] -> [m, *s]`` (only needed to
    reproduce the authors' clipping, which includes the frozen weights' gradients in the norm)."""
    v = uniform(key, tuple(grad.shape), logits.device, offset)
    keep = v < torch.sigmoid(logits.float()).unsqueeze(1)
    return torch.where(keep, grad.float(), torch.zeros((), device=grad.device)).sum(1)


_KERNELS = {"eager": (_forward, _backward, _weight_backward)}


def kernels(impl: str):
    """The (forward, backward, weight backward) kernels for ``impl`` in ``{"eager", "compile"}``; compiled lazily,
    once per process."""
    if impl not in ("eager", "compile"):
        raise ValueError(f"unknown sampling implementation {impl!r}; expected 'eager', 'compile' or 'auto'")
    if impl not in _KERNELS:
        _KERNELS[impl] = tuple(torch.compile(f, dynamic=True) for f in (_forward, _backward, _weight_backward))
    return _KERNELS[impl]


def resolve_impl(impl: str, device: torch.device) -> str:
    """``auto`` means compiled when torch.compile works here (it needs a C++ compiler on CPU), else eager."""
    if impl != "auto":
        kernels(impl)
        return impl
    try:
        fwd = kernels("compile")[0]
        fwd(torch.zeros(2, 3, device=device), torch.ones(3, device=device), mix_seed(torch.tensor(1, device=device)), 2)
        return "compile"
    except Exception as err:  # noqa: BLE001 - any compiler failure means: fall back, and say so
        _KERNELS.pop("compile", None)
        warnings.warn(f"torch.compile is unavailable ({type(err).__name__}: {err}); using the eager mask sampler, "
                      "which gives the same masks more slowly", RuntimeWarning, stacklevel=2)
        return "eager"


def storage_order(shape: torch.Size) -> tuple[int, ...]:
    """The order in which a weight and its logits are laid out in memory: reversed for matrices (``F.linear`` and
    the LSTM/attention kernels use ``W.T``, so a matrix's gradient arrives transposed), as-is otherwise."""
    return (1, 0) if len(shape) == 2 else tuple(range(len(shape)))


def in_storage_order(t: torch.Tensor, order: tuple[int, ...], lead: int = 0) -> torch.Tensor:
    """A view of ``t`` with its last ``len(order)`` dims permuted by ``order`` (contiguous for our tensors)."""
    return t.permute(*range(lead), *(lead + d for d in order))


def from_storage_order(t: torch.Tensor, order: tuple[int, ...], lead: int = 0) -> torch.Tensor:
    inverse = sorted(range(len(order)), key=order.__getitem__)
    return in_storage_order(t, tuple(inverse), lead)


class SampleMasked(torch.autograd.Function):
    """``weight * m`` for ``k`` straight-through Gumbel-sigmoid masks per set of ``logits`` (1 = kept).

    ``logits``: ``[m, *shape]``; ``weight``: ``shape``; ``seed``: int64 scalar tensor; ``order``: the memory order
    of ``weight`` and ``logits`` (:func:`storage_order`). Returns ``[m * k, *shape]``, sample ``(i, j)`` at row
    ``i * k + j``. The uniforms are indexed in storage order. The gradient reaches ``logits``, and, when given, the
    zero tensor ``sink`` (``[m, *shape]``), whose gradient is the frozen weight's gradient per set
    (``sum_k grad_k * m_k``); the forward pass ignores ``sink``. ``first``: the index of ``logits``' first set among
    all sets sampled with ``seed`` (a slice of the sets draws the masks it draws among all of them).
    """

    @staticmethod
    def forward(ctx, logits, weight, seed, k, impl, order, sink=None, first=0):
        seed = mix_seed(seed).to(logits.device)
        offset = first * k * weight.numel()
        out = kernels(impl)[0](in_storage_order(logits, order, 1).contiguous(),
                               in_storage_order(weight, order).contiguous(), seed, k, offset)
        ctx.save_for_backward(logits, weight, seed)
        ctx.k, ctx.impl, ctx.order, ctx.offset = k, impl, order, offset
        return from_storage_order(out, order, 2).flatten(0, 1)

    @staticmethod
    def backward(ctx, grad):
        logits, weight, seed = ctx.saved_tensors
        _, bwd, wbwd = kernels(ctx.impl)
        grad = in_storage_order(grad.unflatten(0, (logits.shape[0], ctx.k)), ctx.order, 2).contiguous()
        stored_logits = in_storage_order(logits, ctx.order, 1).contiguous()
        g = bwd(grad, in_storage_order(weight, ctx.order).contiguous(), stored_logits, seed, ctx.offset)
        g_sink = None
        if ctx.needs_input_grad[6]:
            g_sink = from_storage_order(wbwd(grad, stored_logits, seed, ctx.offset), ctx.order, 1)
        return from_storage_order(g, ctx.order, 1), None, None, None, None, None, g_sink, None


def sample_masked(logits: torch.Tensor, weight: torch.Tensor, seed: torch.Tensor, k: int,
                  impl: str = "eager", order: tuple[int, ...] | None = None,
                  sink: torch.Tensor | None = None, first: int = 0) -> torch.Tensor:
    """Functional entry point of :class:`SampleMasked`; ``order`` defaults to :func:`storage_order`."""
    order = storage_order(weight.shape) if order is None else tuple(order)
    return SampleMasked.apply(logits, weight, seed, k, impl, order, sink, first)


def sampled_uniforms(logits: torch.Tensor, seed: torch.Tensor, k: int, order: tuple[int, ...] | None = None,
                     first: int = 0):
    """The uniforms ``v`` behind :func:`sample_masked` (kept iff ``v < sigmoid(logit)``), ``[m * k, *shape]``."""
    order = storage_order(logits.shape[1:]) if order is None else tuple(order)
    shape = in_storage_order(logits, order, 1).shape
    offset = first * k * logits[0].numel()
    v = uniform(mix_seed(seed).to(logits.device), (shape[0], k, *shape[1:]), logits.device, offset)
    return from_storage_order(v, order, 2).flatten(0, 1)


def sampled_keep(logits: torch.Tensor, seed: torch.Tensor, k: int, order: tuple[int, ...] | None = None):
    """The boolean masks (True = kept) that :func:`sample_masked` applies for this seed: ``[m * k, *shape]``."""
    v = sampled_uniforms(logits, seed, k, order)
    return v < torch.sigmoid(logits.float()).repeat_interleave(k, 0)
