"""Models shared by the experiments. Plain ``nn.Module``s: the mask engine needs no special layers."""
from __future__ import annotations

import torch.nn.functional as F
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


class SimpleCNN(nn.Module):
    """The paper's CIFAR-10 CNN (the paper's §3.4): 3x3 convs of ``width``, 2, 4, 8 x ``width`` channels (32-64-128-256
    at
    ``width=32``), ReLU, max-pooling after the first three, dropout 0.25 / 0.5 when ``dropout``, global average
    pooling and a linear read-out ``head``."""

    def __init__(self, width: int = 32, n_classes: int = 10, dropout: bool = True):
        super().__init__()
        c = [3, width, 2 * width, 4 * width, 8 * width]
        drop = (lambda p: nn.Dropout(p)) if dropout else (lambda p: nn.Identity())
        self.features = nn.Sequential(
            nn.Conv2d(c[0], c[1], 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(c[1], c[2], 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(c[2], c[3], 3, padding=1), drop(0.25), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(c[3], c[4], 3, padding=1), nn.ReLU(), drop(0.5))
        self.head = nn.Linear(c[4], n_classes)

    def forward(self, x):
        return self.head(self.features(x).mean((2, 3)))


class BasicBlock(nn.Module):
    """Two 3x3 conv + batch-norm layers and an identity shortcut; when the shape changes, the shortcut subsamples
    and zero-pads the channels (He et al.'s option A, used for their CIFAR ResNets: no extra weights)."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.stride, self.extra = stride, c_out - c_in

    def forward(self, x):
        y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        if self.stride != 1 or self.extra:
            x = F.pad(x[..., ::self.stride, ::self.stride], (0, 0, 0, 0, self.extra // 2, self.extra - self.extra // 2))
        return F.relu(y + x)


class CifarResNet(nn.Module):
    """He et al.'s CIFAR ResNet of ``depth`` = 6n + 2 layers (ResNet-110: n = 18): a 3x3 conv of ``width``, three
    stages of n basic blocks with ``width``, 2 and 4 x ``width`` channels (the 2nd and 3rd start with stride 2),
    global average pooling and a linear read-out ``head``."""

    def __init__(self, depth: int = 110, n_classes: int = 10, width: int = 16):
        super().__init__()
        if depth < 8 or (depth - 2) % 6:
            raise ValueError(f"a CIFAR ResNet has depth 6n + 2 (20, 32, 44, 56, 110, ...), got {depth}")
        n = (depth - 2) // 6
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        blocks, c = [], width
        for stage, c_out in enumerate((width, 2 * width, 4 * width)):
            for i in range(n):
                blocks.append(BasicBlock(c, c_out, 2 if stage and i == 0 else 1))
                c = c_out
        self.features = nn.Sequential(*blocks)
        self.head = nn.Linear(c, n_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        return self.head(self.features(self.stem(x)).mean((2, 3)))
