"""Sharing metrics on binary masks (the book's method page). Pure functions; a mask value True means the weight is
**kept**.

Set-overlap metrics take either one bool tensor (-> a float) or a dict ``name -> bool tensor`` (-> a dict with one
value per name plus ``"total"``, computed from the counts summed over all tensors, not as a mean of ratios).

Empty denominators: every ratio whose denominator counts no weight is **0.0** (an empty mask shares nothing, covers
nothing, and has no removed weights). So ``iou(empty, empty) == 0``, ``iomin(empty, x) == 0``; nothing returns NaN
or raises ZeroDivisionError.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch

TOTAL = "total"


def _ratio(num: int, den: int) -> float:
    return num / den if den else 0.0


def _check(a: torch.Tensor, b: torch.Tensor | None = None) -> None:
    if a.dtype != torch.bool or (b is not None and b.dtype != torch.bool):
        raise TypeError(f"masks must be bool tensors, got {a.dtype}" + ("" if b is None else f" and {b.dtype}"))
    if b is not None and a.shape != b.shape:
        raise ValueError(f"masks differ in shape: {tuple(a.shape)} vs {tuple(b.shape)}")


def _pairwise(count: Callable[[torch.Tensor, torch.Tensor], tuple[int, int]], a, b):
    """Apply ``count(a, b) -> (numerator, denominator)`` per tensor, or per name plus a total over a dict."""
    if isinstance(a, torch.Tensor):
        _check(a, b)
        return _ratio(*count(a, b))
    if set(a) != set(b):
        raise ValueError(f"mask dicts name different tensors: {sorted(set(a) ^ set(b))}")
    out, num, den = {}, 0, 0
    for n in a:
        _check(a[n], b[n])
        x, y = count(a[n], b[n])
        out[n], num, den = _ratio(x, y), num + x, den + y
    out[TOTAL] = _ratio(num, den)
    return out


def _n(t: torch.Tensor) -> int:
    return int(t.sum())


def iou(a, b):
    """Intersection over union ``|a & b| / |a | b|``."""
    return _pairwise(lambda x, y: (_n(x & y), _n(x | y)), a, b)


def iomin(a, b):
    """Intersection over the smaller mask ``|a & b| / min(|a|, |b|)``: 1 when one mask lies inside the other."""
    return _pairwise(lambda x, y: (_n(x & y), min(_n(x), _n(y))), a, b)


def shared_fraction(masks: Sequence, i: int):
    """Fraction of mask ``i``'s kept weights that some other mask also keeps: ``|m_i & OR_{j!=i} m_j| / |m_i|``.
    With two masks this is the paper's "% of + weights shared with x" (as a fraction)."""
    if not 0 <= i < len(masks) or len(masks) < 2:
        raise ValueError(f"shared_fraction needs >= 2 masks and 0 <= i < {len(masks)}, got i={i}")
    others = list(masks[:i]) + list(masks[i + 1:])
    if isinstance(masks[i], torch.Tensor):
        union = torch.stack(others).any(0)
    else:
        union = {n: torch.stack([o[n] for o in others]).any(0) for n in masks[i]}
    return _pairwise(lambda x, u: (_n(x & u), _n(x)), masks[i], union)


def remaining_fraction(mask):
    """Fraction of the weights the mask keeps, ``|m| / numel``."""
    return _pairwise(lambda x, _: (_n(x), x.numel()), mask, mask)


def row_removed_percent(base: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
    """Per row r of a ``[rows, cols]`` weight: ``100 * |base_r & ~other_r| / |base_r|`` (the paper's Fig. 4b: the
    % of a token's output weights that ``other`` removes relative to ``base``). Rows empty in ``base`` give 0."""
    _check(base, other)
    if base.dim() != 2:
        raise ValueError(f"row_removed_percent needs 2-D masks [rows, cols], got shape {tuple(base.shape)}")
    removed = (base & ~other).sum(1).double()
    kept = base.sum(1).double()
    return torch.where(kept > 0, 100.0 * removed / kept.clamp(min=1), torch.zeros_like(kept))


def confusion(pred: torch.Tensor, target: torch.Tensor, n_classes: int, normalize: bool = True) -> torch.Tensor:
    """Confusion matrix ``[true, predicted]``; with ``normalize`` each row sums to 1 (rows of absent classes: 0)."""
    if pred.shape != target.shape:
        raise ValueError(f"pred and target differ in shape: {tuple(pred.shape)} vs {tuple(target.shape)}")
    for name, t in (("pred", pred), ("target", target)):
        if t.numel() and (t.min() < 0 or t.max() >= n_classes):
            raise ValueError(f"{name} has labels outside 0..{n_classes - 1}")
    idx = target.reshape(-1).long() * n_classes + pred.reshape(-1).long()
    conf = torch.bincount(idx, minlength=n_classes * n_classes).view(n_classes, n_classes).double()
    if normalize:
        conf = conf / conf.sum(1, keepdim=True).clamp(min=1)
    return conf


def relative_drop(ref: torch.Tensor, conf: torch.Tensor) -> torch.Tensor:
    """Per class c: ``-(conf - ref)[c, c] / ref[c, c] * 100``, the % of class c's reference accuracy lost
    (the paper's CIFAR-10 analysis, Fig. 5); 0 where the reference accuracy is 0."""
    if ref.shape != conf.shape or ref.dim() != 2 or ref.shape[0] != ref.shape[1]:
        raise ValueError(f"need two square confusion matrices of one shape, got {tuple(ref.shape)}, "
                         f"{tuple(conf.shape)}")
    r, c = ref.diagonal(), conf.diagonal()
    return torch.where(r > 0, -(c - r) / r.clamp(min=1e-300) * 100.0, torch.zeros_like(r))


def worst_other_ratio(drops: torch.Tensor) -> torch.Tensor:
    """``drops[c, j]``: relative drop of class j under the mask trained without class c. Returns, per c, the largest
    drop on any other class as % of the drop on c (the book's method page); 0 where the drop on c is not positive."""
    if drops.dim() != 2 or drops.shape[0] != drops.shape[1]:
        raise ValueError(f"drops must be square [classes, classes], got {tuple(drops.shape)}")
    n = drops.shape[0]
    own = drops.diagonal()
    others = drops.masked_fill(torch.eye(n, dtype=torch.bool, device=drops.device), float("-inf")).amax(1)
    return torch.where(own > 0, others / own.clamp(min=1e-300) * 100.0, torch.zeros_like(own))
