"""Masks on disk: safetensors files of bool tensors keyed by parameter name (re-exported by :mod:`wmask.masks`)."""
from __future__ import annotations

import errno
import hashlib
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


def one_set(masks: dict, shapes: dict, set: int | None = None, what: str = "masks") -> dict:
    """One set of ``masks`` (checked against the parameter ``shapes`` of the names it holds): masks of the
    parameters' own shapes as they are, or set ``set`` of masks stacked ``[M, *shape]`` (what
    :meth:`MaskSet.save <wmask.masks.MaskSet.save>`, :meth:`MaskSet.binary <wmask.masks.MaskSet.binary>` and
    :func:`load_masks` give; ``M = 1`` needs no ``set``). Anything else is a ``ValueError`` that says which."""
    lead = common_lead(masks, shapes)
    if len(lead) > 1:
        raise ValueError(f"{what} carry {len(lead)} leading dimensions {lead} before the parameters' shapes; expected "
                         "one set [*shape] or stacked sets [M, *shape]")
    if not lead:
        if set not in (None, 0):
            raise ValueError(f"{what} hold one set (not stacked [M, *shape]), so set={set} does not apply")
        return masks
    m = lead[0]
    if set is None:
        if m == 1:
            return {n: t[0] for n, t in masks.items()}
        raise ValueError(f"{what} hold {m} sets stacked [M, *shape] (M={m}), where one set was expected; pick "
                         f"one with set=i (0 <= i < {m}), or {{name: mask[i] for name, mask in masks.items()}}")
    if not -m <= set < m:
        raise ValueError(f"set={set} is out of range: {what} hold {m} stacked sets")
    return {n: t[set] for n, t in masks.items()}


CHECKSUM = "wmask.sha256"     # metadata key: the sha256 of a mask file's tensors and other metadata


def content_sha256(tensors: dict, metadata: dict | None) -> str:
    """The sha256 of mask tensors (names, dtypes, shapes, bytes) and of the other metadata of a mask file."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        h.update(f"{name}\0{t.dtype}\0{tuple(t.shape)}\0".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.dtype == torch.bool else t.numpy().tobytes())
    for key in sorted(k for k in (metadata or {}) if k != CHECKSUM):
        h.update(f"{key}\0{metadata[key]}\0".encode())
    return h.hexdigest()


def save_masks(path: str | os.PathLike, masks: dict[str, torch.Tensor], metadata: dict[str, str] | None = None,
               filter=None):
    """Write bool masks (True = kept) keyed by parameter name to a safetensors file, atomically, with the sha256 of
    its contents, which :func:`load_masks` checks. ``filter``: the :class:`~wmask.masks.MaskFilter` the masks were
    made with, stored in the file so that :func:`load_masks` needs no ``filter=`` to check them against a model."""
    from safetensors import SafetensorError
    from safetensors.torch import save_file

    from .utils import atomic_path
    metadata = dict(metadata or {})
    if filter is not None:
        metadata["wmask.filter"] = filter.to_json()
    tensors = {n: m.detach().to(torch.bool).contiguous().cpu() for n, m in masks.items()}
    metadata[CHECKSUM] = content_sha256(tensors, metadata)
    with atomic_path(path) as tmp:
        try:
            save_file(tensors, tmp, metadata=metadata)
        except SafetensorError as err:   # a full disk, among others
            raise OSError(errno.EIO, f"cannot write masks ({_first(err)}; is the disk full?)",
                          os.fspath(path)) from None


def _first(err: Exception) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__


def _read(path: str | os.PathLike) -> tuple[dict, dict]:
    """The tensors and metadata of a mask file, checked against the checksum :func:`save_masks` stored (a file
    without one is read as it is); a damaged or foreign file is a ValueError naming it."""
    from safetensors import safe_open
    try:
        with safe_open(os.fspath(path), "pt") as f:
            metadata = dict(f.metadata() or {})
            tensors = {n: f.get_tensor(n) for n in f.keys()}
    except FileNotFoundError:
        raise
    except Exception as err:   # noqa: BLE001 - safetensors raises its own and OS errors for a damaged header
        raise ValueError(f"cannot read masks from {path} ({type(err).__name__}: {_first(err)}); it may be truncated "
                         "or damaged") from None
    want = metadata.get(CHECKSUM)
    if want is not None and content_sha256(tensors, metadata) != want:
        raise ValueError(f"masks in {path} are damaged: their contents do not match the sha256 stored with them")
    return tensors, metadata


def load_masks(path: str | os.PathLike, model: nn.Module | None = None, filter=None, set: int | None = None):
    """Read masks written by :func:`save_masks` (checked against their checksum: a damaged file is a ValueError
    naming it); with ``model``, refuse a file whose names or shapes differ from the parameters ``filter`` (a
    :class:`~wmask.masks.MaskFilter`; default: the one stored in the file, else the default filter) selects (a
    leading set dimension is allowed), and return them in the model's parameter order (the order of
    ``filter.select(model)``, so the first and last names are the input and output layers), not the file's
    alphabetical one. Masks come back as stored (one set ``[*shape]``, or stacked ``[M, *shape]``: ``MaskSet.save``
    stacks even one set); ``set=i``: set ``i`` alone. :func:`~wmask.masks.materialize` and :func:`~wmask.applied`
    take either."""
    from .maskfilter import MaskFilter
    masks, metadata = _read(path)
    if model is not None:
        params = dict(model.named_parameters())
        text = metadata.get("wmask.filter")
        filter = filter or (None if text is None else MaskFilter.from_json(text)) or MaskFilter()
        shapes = {n: tuple(params[n].shape) for n in filter.select(model)}
        lead = common_lead(masks, shapes)   # masks may carry leading set dimensions: [*lead, *shape]
        check_names_shapes(masks, {n: (*lead, *s) for n, s in shapes.items()}, f"masks in {path}")
        masks = {n: masks[n] for n in shapes}
        if set is not None:
            masks = one_set(masks, shapes, set, f"masks in {path}")
    elif set is not None:
        masks = {n: t[set] for n, t in masks.items()}
    return masks
