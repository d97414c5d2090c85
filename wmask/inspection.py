"""Looking at masks: a per-layer table, a plot of what each layer keeps, and a mask applied to the real model.

A mask value of 1 (``True``) means the weight is **kept**. Each function takes a :class:`~wmask.masks.MaskSet`
(its deterministic masks, every set) or masks as a dict of bool tensors (one set, or ``M`` sets stacked along a
leading dimension when ``model`` is given to tell the shapes).
"""
from __future__ import annotations

import contextlib

import torch
from torch import nn

from .maskio import check_names_shapes, common_lead, one_set
from .masks import MaskSet


def _sets(masks, model: nn.Module | None) -> list[dict[str, torch.Tensor]]:
    """One dict of bool masks per set."""
    if isinstance(masks, MaskSet):
        return [masks.binary(i) for i in range(masks.n_sets)]
    if not masks:
        raise ValueError("no masks given (an empty dict)")
    if model is None:
        return [masks]
    params = dict(model.named_parameters())
    shapes = {n: tuple(params[n].shape) for n in masks if n in params}
    lead = common_lead(masks, shapes)
    check_names_shapes(masks, {n: (*lead, *s) for n, s in shapes.items()}, "masks", extra_ok=True, known={*params})
    if not lead:
        return [masks]
    flat = {n: m.reshape(-1, *shapes[n]) for n, m in masks.items()}
    return [{n: m[i] for n, m in flat.items()} for i in range(next(iter(flat.values())).shape[0])]


def summary(masks, model: nn.Module | None = None):
    """Per set and masked tensor: its shape, how many weights the mask keeps, of how many, and the fraction
    (a pandas DataFrame with columns ``set, tensor, shape, kept, total, kept_fraction``; the tensors in the model's
    order, each set ending with a ``(all)`` row over its tensors)."""
    import pandas as pd
    rows = []
    for i, one in enumerate(_sets(masks, model)):
        for name, m in one.items():
            rows.append({"set": i, "tensor": name, "shape": tuple(m.shape), "kept": int(m.sum()),
                         "total": m.numel()})
        kept, total = sum(r["kept"] for r in rows if r["set"] == i), sum(r["total"] for r in rows if r["set"] == i)
        rows.append({"set": i, "tensor": "(all)", "shape": (), "kept": kept, "total": total})
    table = pd.DataFrame(rows)
    table["kept_fraction"] = table["kept"] / table["total"]
    return table


def plot_kept(masks, model: nn.Module | None = None, labels: list[str] | None = None, ax=None):
    """Bar chart of the fraction of each tensor's weights that each set keeps; returns the matplotlib axes."""
    import matplotlib.pyplot as plt
    table = summary(masks, model)
    table = table[table["tensor"] != "(all)"]
    names = list(dict.fromkeys(table["tensor"]))
    sets = sorted(set(table["set"]))
    labels = labels or [f"set {i}" for i in sets]
    if len(labels) != len(sets):
        raise ValueError(f"labels: {len(labels)} given for {len(sets)} mask sets")
    if ax is None:
        _, ax = plt.subplots(figsize=(max(4, 0.6 * len(names) * len(sets) + 2), 3))
    width = 0.8 / len(sets)
    for j, (i, label) in enumerate(zip(sets, labels)):
        fractions = table[table["set"] == i].set_index("tensor").loc[names, "kept_fraction"]
        ax.bar([x + j * width for x in range(len(names))], fractions, width, label=label)
    ax.set_xticks([x + width * (len(sets) - 1) / 2 for x in range(len(names))], names, rotation=45, ha="right")
    ax.set_ylabel("fraction kept")
    ax.set_ylim(0, 1)
    if len(sets) > 1:
        ax.legend()
    return ax


@contextlib.contextmanager
def applied(model: nn.Module, mask: dict[str, torch.Tensor], set: int | None = None):
    """Meanwhile, ``model``'s removed weights (mask ``False``) are zero in the model itself; afterwards every
    weight is restored exactly. ``mask``: one set of bool masks (True = kept) keyed by the model's parameter names,
    or sets stacked ``[M, *shape]`` with ``set=i`` choosing one (``M = 1`` needs none).

    ``with applied(model, masks.binary(0)): model(x)`` runs the real model, hooks and all, under the mask; use
    :func:`~wmask.masks.materialize` for a standalone masked copy."""
    params = dict(model.named_parameters())
    mask = one_set(mask, {n: tuple(params[n].shape) for n in mask if n in params}, set, "mask")
    check_names_shapes(mask, {n: params[n].shape for n in mask if n in params}, "mask", extra_ok=True,
                       known={*params})
    wrong = [f"{n}: {m.dtype}" for n, m in mask.items() if m.dtype != torch.bool]
    if wrong:
        raise TypeError(f"applied needs bool masks (True = kept), got {', '.join(wrong)}")
    saved = {n: params[n].detach().clone() for n in mask}
    with torch.no_grad():
        for n, m in mask.items():
            params[n].mul_(m.to(params[n].device, params[n].dtype))
    try:
        yield model
    finally:
        with torch.no_grad():
            for n, w in saved.items():
                params[n].copy_(w)
