"""Masks on disk: safetensors files of bool tensors keyed by parameter name (re-exported by :mod:`wmask.masks`)."""
from __future__ import annotations

import os

import torch
from torch import nn


def check_names_shapes(tensors: dict, shapes: dict, what: str, extra_ok: bool = False, known: set | None = None):
    """Raise ValueError naming every missing, unknown or mis-shaped entry of ``tensors`` against ``shapes``."""
    known = set(shapes) if known is None else known
    unknown = sorted(set(tensors) - known)
    missing = sorted(set(shapes) - set(tensors)) if not extra_ok else []
    wrong = sorted(f"{n}: {tuple(tensors[n].shape)} != {tuple(shapes[n])}" for n in set(tensors) & set(shapes)
                   if tuple(tensors[n].shape) != tuple(shapes[n]))
    if unknown or missing or wrong:
        raise ValueError(f"{what} do not match the model: unknown names {unknown}, missing names {missing}, "
                         f"wrong shapes {wrong}")


def common_lead(masks: dict, shapes: dict) -> tuple[int, ...]:
    """The leading (set) dimensions that every tensor of ``masks`` carries before its parameter's shape,
    ``[*lead, *shape]``; ``()`` when there are none or they differ (the shape check then names the tensors)."""
    leads = {tuple(m.shape[:m.dim() - len(shapes[n])]) for n, m in masks.items()
             if n in shapes and m.dim() >= len(shapes[n])}
    return leads.pop() if len(leads) == 1 else ()


def save_masks(path: str | os.PathLike, masks: dict[str, torch.Tensor], metadata: dict[str, str] | None = None,
               filter=None):
    """Write bool masks (True = kept) keyed by parameter name to a safetensors file, atomically. ``filter``: the
    :class:`~wmask.masks.MaskFilter` the masks were made with, stored in the file so that :func:`load_masks` needs
    no ``filter=`` to check them against a model."""
    from safetensors.torch import save_file

    from .utils import atomic_path
    metadata = dict(metadata or {})
    if filter is not None:
        metadata["wmask.filter"] = filter.to_json()
    with atomic_path(path) as tmp:
        save_file({n: m.detach().to(torch.bool).contiguous().cpu() for n, m in masks.items()}, tmp,
                  metadata=metadata or None)


def saved_filter(path: str | os.PathLike):
    """The :class:`~wmask.masks.MaskFilter` stored by :func:`save_masks` in ``path``, or ``None``."""
    from safetensors import safe_open

    from .maskfilter import MaskFilter
    with safe_open(os.fspath(path), "pt") as f:
        text = (f.metadata() or {}).get("wmask.filter")
    return None if text is None else MaskFilter.from_json(text)


def load_masks(path: str | os.PathLike, model: nn.Module | None = None, filter=None):
    """Read masks written by :func:`save_masks`; with ``model``, refuse a file whose names or shapes differ from
    the parameters ``filter`` (a :class:`~wmask.masks.MaskFilter`; default: the one stored in the file, else the
    default filter) selects (a leading set dimension is allowed),
    and return them in the model's parameter order (the order of ``filter.select(model)``, so the first and last
    names are the input and output layers), not the file's alphabetical one."""
    from safetensors.torch import load_file

    from .maskfilter import MaskFilter
    masks = load_file(os.fspath(path))
    if model is not None:
        params = dict(model.named_parameters())
        filter = filter or saved_filter(path) or MaskFilter()
        shapes = {n: tuple(params[n].shape) for n in filter.select(model)}
        lead = common_lead(masks, shapes)   # masks may carry leading set dimensions: [*lead, *shape]
        check_names_shapes(masks, {n: (*lead, *s) for n, s in shapes.items()}, f"masks in {path}")
        masks = {n: masks[n] for n in shapes}
    return masks
