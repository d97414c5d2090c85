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


class RepeatLSTM(nn.Module):
    """``nn.LSTM`` fed the same input vector for ``steps`` time steps; a linear read-out of the last step (the
    paper's arithmetic LSTM: 2 layers x 256, 3 steps for add/mul, 6 for double addition)."""

    def __init__(self, n_in: int, hidden: int, n_out: int, layers: int = 2, steps: int = 3):
        super().__init__()
        self.steps = steps
        self.lstm = nn.LSTM(n_in, hidden, layers, batch_first=True)
        self.out = nn.Linear(hidden, n_out)

    def forward(self, x):
        y, _ = self.lstm(x.unsqueeze(1).expand(-1, self.steps, -1))
        return self.out(y[:, -1])
