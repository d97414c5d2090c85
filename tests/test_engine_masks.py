"""MaskSet and mask-file behaviour."""
import pytest
import torch
from torch import nn

import wmask
from wmask.masks import MaskFilter


class RecurrentNet(nn.Module):
    def __init__(self, kind=nn.LSTM):
        super().__init__()
        self.rnn = kind(4, 8, batch_first=True)
        self.out = nn.Linear(8, 3)

    def forward(self, x):
        return self.out(self.rnn(x)[0][:, -1])


# -- 1. load_masks returns the model's parameter order --------------------------------------------------------------
def test_load_masks_returns_the_models_parameter_order(tmp_path):
    model = RecurrentNet()
    order = MaskFilter().select(model)
    assert order == ["rnn.weight_ih_l0", "rnn.weight_hh_l0", "out.weight"]
    wmask.save_masks(tmp_path / "m.safetensors", wmask.full_masks(model))
    back = wmask.load_masks(tmp_path / "m.safetensors", model)
    assert list(back) == order                       # first = input layer, last = output layer
    stacked = {n: torch.stack([m, ~m]) for n, m in wmask.full_masks(model).items()}
    wmask.save_masks(tmp_path / "s.safetensors", stacked)
    assert list(wmask.load_masks(tmp_path / "s.safetensors", model)) == order
    assert wmask.masks.load_masks is wmask.load_masks and wmask.masks.save_masks is wmask.save_masks
