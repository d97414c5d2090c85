"""Filan et al.'s MNIST multilayer perceptrons (*Clusterability in Neural Networks*, arXiv 2103.03386, §3; their
official code's ``train_nn.py``), in torch: 784-256-256-256-256-10, ReLU, Glorot-uniform weights and zero biases
(Keras's defaults), dropout after every hidden layer when on; Adam (lr 1e-3), batch 128, shuffled epochs; then
magnitude pruning as ``tensorflow_model_optimization`` 0.1.1 does it: a fresh Adam, a polynomial sparsity schedule
from 50 % to 90 % (power 3) over the pruning epochs, every weight matrix pruned on its own to its largest ``|w|``
every 10 steps, biases never pruned. A pruning mask's 1 means **kept**.

Deviations, all small: full batches only (Keras also trains the last partial batch of an epoch); pruned weights are
zeroed after every step rather than masked inside the forward pass (the same forward computation; only Adam's
moments of the pruned weights differ, and those weights stay zero).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...train import BaseTrainConfig, train_model


@dataclass
class MLPConfig:
    """Filan et al.'s settings (defaults) for one MNIST MLP."""
    hidden: tuple[int, ...] = (256, 256, 256, 256)
    epochs: int = 20
    prune_epochs: int = 20
    batch_size: int = 128
    lr: float = 1e-3
    dropout: float = 0.5             # rate, for the networks trained with dropout
    initial_sparsity: float = 0.5
    final_sparsity: float = 0.9
    prune_every: int = 10            # steps between pruning-mask updates
    power: int = 3
    target: float = 0.97             # test accuracy a trained network must reach to carry a claim (theirs: 0.98)
    train_examples: int = 0          # 0: all 60,000

    def __post_init__(self):
        self.hidden = tuple(self.hidden)
        if not 0 <= self.initial_sparsity <= self.final_sparsity < 1:
            raise ValueError(f"sparsities must satisfy 0 <= initial ({self.initial_sparsity}) <= final "
                             f"({self.final_sparsity}) < 1")
        if self.epochs < 0 or self.prune_epochs < 0 or self.batch_size < 1 or self.prune_every < 1:
            raise ValueError(f"bad MNIST MLP config {self}")


def mlp(hidden, dropout: float = 0.0, seed: int = 0) -> nn.Sequential:
    """784 -> hidden ... -> 10 with ReLU, Glorot-uniform weights and zero biases (a ``Dropout`` after every hidden
    layer when ``dropout`` > 0)."""
    gen = torch.Generator().manual_seed(seed)
    sizes, mods = [784, *hidden], []
    for a, b in zip(sizes, sizes[1:]):
        mods += [nn.Linear(a, b), nn.ReLU()] + ([nn.Dropout(dropout)] if dropout else [])
    mods.append(nn.Linear(sizes[-1], 10))
    for m in mods:
        if isinstance(m, nn.Linear):
            bound = (6 / (m.in_features + m.out_features)) ** 0.5
            with torch.no_grad():
                m.weight.uniform_(-bound, bound, generator=gen)
                m.bias.zero_()
    return nn.Sequential(*mods)


def weights(model: nn.Module) -> list[torch.Tensor]:
    """The weight matrices of every ``nn.Linear`` (``[out, in]``), first layer first."""
    return [m.weight.detach() for m in model.modules() if isinstance(m, nn.Linear)]


def sparsity_at(step: int, end: int, cfg: MLPConfig) -> float:
    """tfmot's ``PolynomialDecay``: ``final + (initial - final) * (1 - step / end) ** power``."""
    frac = min(step, end) / end if end else 1.0
    return cfg.final_sparsity + (cfg.initial_sparsity - cfg.final_sparsity) * (1 - frac) ** cfg.power


def magnitude_masks(model: nn.Module, sparsity: float) -> list[torch.Tensor]:
    """Per weight matrix, the ``round(size * (1 - sparsity))`` largest ``|w|`` kept (True = kept)."""
    out = []
    for w in weights(model):
        keep = int(round(w.numel() * (1 - sparsity)))
        mask = torch.zeros(w.numel(), dtype=torch.bool)
        mask[torch.topk(w.abs().flatten(), keep).indices] = True
        out.append(mask.view_as(w))
    return out


def batches(x: torch.Tensor, y: torch.Tensor, batch_size: int, seed: int, salt: int):
    """``step -> (x, y)``: shuffled epochs, each permutation a function of (seed, salt, epoch), so a run resumes
    exactly; full batches only."""
    per_epoch = len(x) // batch_size

    def data(step):
        epoch, i = divmod(step, per_epoch)
        perm = torch.randperm(len(x), generator=torch.Generator().manual_seed((seed * 1_000_003 + salt) * 10_007
                                                                               + epoch))
        idx = perm[i * batch_size:(i + 1) * batch_size]
        return x[idx], y[idx]
    return data, per_epoch


def _ce(m, x, y):
    return F.cross_entropy(m(x), y)


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, chunk: int = 5000) -> float:
    model.eval()
    right = sum((model(x[i:i + chunk]).argmax(1) == y[i:i + chunk]).sum().item() for i in range(0, len(x), chunk))
    return right / len(x)


def train(model: nn.Module, x, y, cfg: MLPConfig, seed: int, progress=True, desc="mlp", checkpoint=None) -> None:
    """``cfg.epochs`` epochs of Adam on (x, y), in place (no gradient clipping, as Keras)."""
    data, per_epoch = batches(x, y, cfg.batch_size, seed, 0)
    train_model(model, data, _ce, BaseTrainConfig(steps=cfg.epochs * per_epoch, lr=cfg.lr, batch_size=cfg.batch_size,
                                                  clip=1e9, eval_every=0),
                progress=progress, desc=desc, checkpoint=checkpoint)


def prune(model: nn.Module, x, y, cfg: MLPConfig, seed: int, progress=True, desc="prune") -> list[torch.Tensor]:
    """Magnitude pruning while training ``cfg.prune_epochs`` epochs with a fresh Adam, in place; returns the final
    masks (True = kept). The pruned weights are exactly zero afterwards."""
    data, per_epoch = batches(x, y, cfg.batch_size, seed, 1)
    end = cfg.prune_epochs * per_epoch
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    state = {"masks": magnitude_masks(model, cfg.initial_sparsity)}

    def loss(m, xb, yb, step=[0]):        # noqa: B006 - the step counter of this pruning run
        if step[0] % cfg.prune_every == 0:
            state["masks"] = magnitude_masks(m, sparsity_at(step[0], end, cfg))
        step[0] += 1
        with torch.no_grad():
            for lin, mask in zip(linears, state["masks"]):
                lin.weight.mul_(mask)
        return _ce(m, xb, yb)

    train_model(model, data, loss, BaseTrainConfig(steps=end, lr=cfg.lr, batch_size=cfg.batch_size, clip=1e9,
                                                   eval_every=0), progress=progress, desc=desc)
    with torch.no_grad():
        for lin, mask in zip(linears, state["masks"]):
            lin.weight.mul_(mask)
    return state["masks"]


def sparsity(model: nn.Module) -> list[float]:
    """Fraction of exact zeros in every weight matrix."""
    return [float((w == 0).float().mean()) for w in weights(model)]


def load_mnist(data_dir: str | None, n_train: int = 0) -> dict:
    """MNIST as float tensors in [0, 1], flattened (``train_x`` ``[N, 784]``), plus the dataset's name and checksum."""
    from ..data import mnist
    d = mnist.load(data_dir or None)
    n = n_train or len(d["train_x"])
    conv = lambda a: torch.from_numpy(np.ascontiguousarray(a.reshape(len(a), -1), dtype=np.float32) / 255)  # noqa
    return {"train_x": conv(d["train_x"][:n]), "train_y": torch.from_numpy(d["train_y"][:n]),
            "test_x": conv(d["test_x"]), "test_y": torch.from_numpy(d["test_y"]),
            "dataset": d["dataset"], "checksum": d["checksum"]}
