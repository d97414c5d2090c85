"""Models shared by the experiments. Plain ``nn.Module``s: the mask engine needs no special layers."""
from __future__ import annotations

from torch import nn


class FNN(nn.Sequential):
    """A ReLU multilayer perceptron ``n_in -> hidden[0] -> ... -> n_out`` with PyTorch's default init
    (the paper's arithmetic FNN is ``FNN(42, [2000] * 4, 20)``)."""

    def __init__(self, n_in: int, hidden: list[int], n_out: int):
        sizes = [n_in, *hidden]
        layers: list[nn.Module] = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        layers.append(nn.Linear(sizes[-1], n_out))
        super().__init__(*layers)
