"""One call: which weights does each subtask need? ``wmask.fit(model, {"add": loader_a, "mul": loader_b}, loss=...)``.

Each subtask gives an iterable of batches (a ``DataLoader``, a list, a generator); one mask set per subtask trains
on its own batches, every set in one batched pass (:class:`~wmask.masks.MaskSet` and :func:`~wmask.train.train_masks`
underneath; a mask value of 1 means the weight is **kept**). Returns the masks with their training curves.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Callable, Iterable

import torch
from torch import nn
from torch.utils._pytree import tree_flatten, tree_map, tree_unflatten

from .forward import input_tensors
from .history import History
from .maskfilter import MaskFilter
from .masks import MaskSet
from .train import MaskTrainConfig, train_masks


@dataclass
class Fit:
    """What :func:`fit` returns: ``masks`` (the trained :class:`~wmask.masks.MaskSet`, one set per subtask, in the
    order of ``names``) and ``history`` (the logged loss and kept fraction per set; ``history.plot()`` draws them).
    Unpacks as ``masks, history = wmask.fit(...)``."""
    masks: MaskSet
    history: History
    names: list[str]

    def __iter__(self):
        return iter((self.masks, self.history))

    def index(self, name: str) -> int:
        if name not in self.names:
            raise KeyError(f"no subtask {name!r}; the subtasks are {self.names}")
        return self.names.index(name)

    def mask(self, name: str) -> dict[str, torch.Tensor]:
        """Subtask ``name``'s deterministic mask: ``{parameter name: bool tensor}``, True = kept."""
        return self.masks.binary(self.index(name))

    def kept(self) -> dict[str, float]:
        """Per subtask, the fraction of the masked weights its mask keeps."""
        return dict(zip(self.names, self.masks.keep_fraction().tolist()))

    def save(self, path, name: str | None = None) -> None:
        """Write one subtask's mask (or every set, stacked ``[M, *shape]`` in the order of ``names``) to a
        safetensors file; :func:`wmask.load_masks` reads it back, :func:`wmask.materialize` applies it."""
        self.masks.save(path, None if name is None else self.index(name))


class Cycle:
    """Batches of one subtask, forever: an iterable that can be iterated again (a ``DataLoader``, a list) starts
    over when it ends (a ``DataLoader`` reshuffles); a one-shot iterator (a generator) is replayed from the batches
    it gave. An iterable that gives no batch is a ``ValueError`` naming the subtask."""

    def __init__(self, name: str, source: Iterable):
        try:
            self.it = iter(source)
        except TypeError:
            raise TypeError(f"data[{name!r}] is not iterable ({type(source).__name__}); give a DataLoader, a list "
                            "of batches or a generator") from None
        self.name, self.source = name, source
        self.one_shot = self.it is source
        self.seen: list = [] if self.one_shot else None
        self.epoch = 0                    # batches given since the iterable (re)started

    def __next__(self):
        try:
            item = next(self.it)
        except StopIteration:
            if self.epoch == 0:
                used = ", or a generator already used up" if self.one_shot else ""
                raise ValueError(f"data[{self.name!r}] gives no batch (it is empty{used})") from None
            self.it = iter(self.seen) if self.one_shot else iter(self.source)
            self.one_shot, self.epoch = False, 0
            return next(self)
        if self.seen is not None:
            self.seen.append(item)
        self.epoch += 1
        return item


def split_batch(name: str, item, target_key: str):
    """``(inputs, targets)`` of one batch: a pair ``(inputs, targets)`` (a ``TensorDataset``'s ``[x, y]``), or a
    dict of keyword inputs (a tokenizer's batch) whose ``target_key`` entry, if any, is the targets."""
    if isinstance(item, Mapping):
        inputs = dict(item)
        return inputs, inputs.pop(target_key, None)
    if isinstance(item, (tuple, list)) and len(item) == 2:
        return item[0], item[1]
    what = f"a {type(item).__name__} of length {len(item)}" if isinstance(item, (tuple, list)) else type(item).__name__
    raise ValueError(f"data[{name!r}] gave {what}; each batch must be a pair (inputs, targets) or a dict of keyword "
                     f"inputs (targets under {target_key!r})")


def batch_size(x, batch_dim: int) -> int:
    tensors = input_tensors(x)
    if not tensors or tensors[0].dim() <= batch_dim:
        raise ValueError(f"a batch's inputs need a tensor with a batch dimension (batch_dim={batch_dim})")
    return tensors[0].shape[batch_dim]


def stack_sets(names: list[str], batches: list) -> tuple:
    """One batch per set -> the same structure with every tensor stacked along a new leading (set) dimension."""
    flat = [tree_flatten(b) for b in batches]
    leaves0, spec0 = flat[0]
    for n, (leaves, spec) in zip(names, flat):
        if spec != spec0:
            raise ValueError(f"subtask {n!r}'s batches are not structured like {names[0]!r}'s ({spec} vs {spec0}); "
                             "every subtask must give the same kind of batch")
    out = []
    for j, first in enumerate(leaves0):
        column = [leaves[j] for leaves, _ in flat]
        if not isinstance(first, torch.Tensor):
            out.append(first)
            continue
        shapes = {n: tuple(t.shape) for n, t in zip(names, column)}
        if len(set(shapes.values())) > 1:
            raise ValueError(f"the subtasks' batches differ in shape ({shapes}); masks of all subtasks train in one "
                             "batched pass, so every batch needs one shape (the same batch_size; pad sequences to "
                             "one length)")
        out.append(torch.stack(column))
    return tree_unflatten(out, spec0)


def per_set_loss(loss: Callable) -> Callable:
    """``loss(output, target) -> scalar`` (an ordinary loss, e.g. ``F.cross_entropy``) -> the per-set losses
    ``[M]``: set ``i``'s is ``loss(outputs[i], targets[i])`` (its batch's mean), computed for every set at once
    under :func:`torch.func.vmap`, or set by set where the loss cannot run under vmap."""
    batched = [True]

    def each(out, y):
        tensors = [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]
        if not tensors:
            raise TypeError(f"the model returned a {type(out).__name__}, which holds no tensor torch's pytree can "
                            "see; pass forward= to turn the output into a tensor, a tuple or a dict of them")
        m = tensors[0].shape[0]
        if batched[0]:
            try:
                return _scalars(torch.func.vmap(loss)(out, y), m)
            except (RuntimeError, ValueError, TypeError, NotImplementedError):
                batched[0] = False
        pick = lambda i: tree_map(lambda t: t[i] if isinstance(t, torch.Tensor) else t, (out, y))  # noqa: E731
        return _scalars(torch.stack([torch.as_tensor(loss(*pick(i))) for i in range(m)]), m)
    return each


def _scalars(task: torch.Tensor, m: int) -> torch.Tensor:
    if tuple(task.shape) != (m,):
        raise ValueError(f"loss must return one number per batch (a mean, e.g. F.cross_entropy's default "
                         f"reduction), got shape {tuple(task.shape[1:])} per subtask")
    return task


def fit(model: nn.Module, data: Mapping[str, Iterable], loss: Callable, steps: int = 2000,
        alpha: float | Mapping[str, float] = 1e-4, lr: float = 1e-2, k: int = 4, init: float = 2.0,
        filter: MaskFilter | None = None, stop_when_settled: bool = False, log_every: int | None = None,
        clip: float = 1.0, mode: str = "auto", impl: str = "auto", seed: int | None = None,
        target_key: str = "labels", batch_dim: int = 0, progress: bool = True, forward: Callable | None = None,
        eval_fn: Callable | None = None, eval_every: int = 0, sets_per_pass: int | None = None) -> Fit:
    """Train one mask per subtask on a frozen ``model`` (left as it is, its ``training`` flags too) and return the
    masks with their curves.

    ``data``: ``{subtask name: iterable of batches}``: a ``DataLoader``, a list or a generator, cycled (a generator
    is replayed); a batch is ``(inputs, targets)`` or a dict of keyword inputs (a tokenizer's batch; its
    ``target_key`` entry is the targets). Inputs are a tensor, a tuple or a dict, as the model takes them. Every
    subtask's batches need one batch size ``B`` (the first batch's; a shorter batch, a ``DataLoader``'s last one,
    is skipped) and one shape. ``loss(output, target)``: an ordinary loss with a mean over the batch, e.g.
    ``F.cross_entropy`` (``output``: what the model returns for one subtask's batch).

    Each mask is trained by the paper's objective ``loss + alpha * sum(logits) / B`` (Adam at ``lr``, ``k`` mask
    samples per step, each on its own ``B / k`` slice; ``alpha``: one value or one per subtask). A mask value of 1
    means the weight is **kept**; ``init`` is the logits' start. ``stop_when_settled``: stop once every subtask's
    curve has settled (:mod:`wmask.evidence`, checked after half the ``steps``); ``log_every`` defaults to
    ``steps // 100``. ``filter``: which parameters get a mask (:class:`~wmask.masks.MaskFilter`); ``mode``,
    ``impl``, ``seed``: as :class:`~wmask.masks.MaskSet`; ``forward``, ``eval_fn``, ``sets_per_pass``: as
    :func:`~wmask.train.train_masks`. The progress bar shows each subtask's kept fraction and loss.

    Returns a :class:`Fit`: ``.masks`` (a ``MaskSet``, set ``i`` = ``names[i]``), ``.history`` (``.plot()``),
    ``.mask(name)``, ``.kept()``, ``.save(path, name)``.
    """
    if not isinstance(data, Mapping) or not data:
        raise TypeError(f"data must be a dict {{subtask name: iterable of batches}} with at least one subtask, got "
                        f"{type(data).__name__}")
    names = [str(n) for n in data]
    streams = [Cycle(n, d) for n, d in zip(names, data.values())]
    first = [split_batch(n, next(s), target_key) for n, s in zip(names, streams)]
    size = batch_size(first[0][0], batch_dim)
    if size % k:
        raise ValueError(f"batch size {size} is not divisible by k={k} (mask samples per step, each on its own "
                         f"B/k slice); pick k among {[d for d in range(1, size + 1) if size % d == 0][:8]}")
    if isinstance(alpha, Mapping) and set(map(str, alpha)) != set(names):
        raise ValueError(f"alpha: give one value, or one per subtask {names}; got one for {list(alpha)}")
    alphas = ([float(a) for n, a in sorted(((str(n), a) for n, a in alpha.items()), key=lambda t: names.index(t[0]))]
              if isinstance(alpha, Mapping) else [float(alpha)] * len(names))
    log_every = log_every or max(1, steps // 100)
    cfg = MaskTrainConfig(steps=steps, lr=lr, alpha=alphas[0], k=k, batch_size=size, clip=clip, batch_dim=batch_dim,
                          log_every=log_every, eval_every=eval_every, stop_on_plateau=stop_when_settled)
    pending = [first]

    def take(name, stream):
        for skip in (True, False):    # one shorter batch in a row is skipped: a loader's last (as drop_last=True)
            x, y = split_batch(name, next(stream), target_key)
            b = batch_size(x, batch_dim)
            if b == size:
                return x, y
            if b > size or not skip:
                raise ValueError(f"data[{name!r}] gives batches of size {b}, data[{names[0]!r}]'s first has "
                                 f"{size}; give every subtask's loader the same batch_size")

    def batches():
        while True:
            got = pending.pop() if pending else [take(n, s) for n, s in zip(names, streams)]
            for n, (x, _) in zip(names, got):
                if batch_size(x, batch_dim) != size:
                    raise ValueError(f"data[{n!r}]'s first batch has size {batch_size(x, batch_dim)}, "
                                     f"data[{names[0]!r}]'s {size}; give every subtask the same batch_size")
            yield stack_sets(names, [x for x, _ in got]), stack_sets(names, [y for _, y in got])

    masks = MaskSet(model, n_sets=len(names), filter=filter, init=init, impl=impl, seed=seed, mode=mode)
    training = [m for m in model.modules() if m.training]
    try:
        history = train_masks(masks, batches(), per_set_loss(loss), cfg, eval_fn=eval_fn, progress=progress,
                              desc="masks", forward=forward, alphas=alphas, sets_per_pass=sets_per_pass, names=names)
    finally:   # train_masks leaves the model in eval mode; the user's model goes back as it came
        for m in training:
            m.training = True
    return Fit(masks, history, names)
