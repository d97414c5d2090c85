"""Weights trained jointly with a mask (train_masks(train_weights=True), the paper's permuted MNIST §2.4) against
plain torch training, and frozen weights that must not move."""
import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import wmask


def _setup(seed=0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))
    g = torch.Generator().manual_seed(1)
    xs, ys = torch.randn(5, 1, 16, 6, generator=g), torch.randint(0, 3, (5, 1, 16), generator=g)
    return model, (lambda step: (xs[step], ys[step]))


def _loss(out, y):
    return torch.stack([F.cross_entropy(out[i], y[i]) for i in range(len(out))])


def test_with_every_weight_kept_joint_training_is_plain_adam_on_the_weights():
    model, data = _setup()
    reference = copy.deepcopy(model)
    masks = wmask.MaskSet(model, filter=wmask.MaskFilter(biases=True), init=30.0)   # keep probability 1 - 1e-13
    cfg = wmask.MaskTrainConfig(steps=5, lr=1e-2, alpha=0.0, k=4, batch_size=16, clip=1e9, clip_mode="all")
    wmask.train_masks(masks, data, _loss, cfg, train_weights=True, progress=False)
    opt = torch.optim.Adam(reference.parameters(), lr=1e-2)
    for step in range(5):
        x, y = data(step)
        opt.zero_grad()
        F.cross_entropy(reference(x[0]), y[0]).backward()
        opt.step()
    for (n, p), q in zip(model.named_parameters(), reference.parameters()):
        assert torch.allclose(p, q, atol=1e-5), n
    assert not torch.equal(model[0].weight, copy.deepcopy(_setup()[0])[0].weight)   # they did train


def test_frozen_weights_do_not_move_and_the_mask_still_learns():
    model, data = _setup()
    before = copy.deepcopy(model)
    frozen = {"0.weight": torch.rand(8, 6) < 0.5}
    masks = wmask.MaskSet(model, filter=wmask.MaskFilter(biases=True), init=0.2)
    cfg = wmask.MaskTrainConfig(steps=5, lr=1e-1, alpha=1.0, k=4, batch_size=16, clip_mode="all")
    hist = wmask.train_masks(masks, data, _loss, cfg, train_weights=True, frozen=frozen, progress=False)
    w, w0 = model[0].weight.detach(), before[0].weight.detach()
    assert torch.equal(w[frozen["0.weight"]], w0[frozen["0.weight"]])
    assert (w[~frozen["0.weight"]] != w0[~frozen["0.weight"]]).all()
    assert not torch.equal(model[2].weight, before[2].weight)
    assert hist.kept[-1][0] < 1.0                       # alpha pushed some logits below 0


def test_joint_training_errors_are_named():
    model, data = _setup()
    masks = wmask.MaskSet(model)
    cfg = wmask.MaskTrainConfig(steps=1, k=4, batch_size=16, clip_mode="all")
    with pytest.raises(ValueError, match=r"frozen\['nope'\]"):
        wmask.train_masks(masks, data, _loss, cfg, train_weights=True, frozen={"nope": torch.zeros(2, dtype=bool)})
    with pytest.raises(ValueError, match="clip_mode='all'"):
        wmask.train_masks(masks, data, _loss, wmask.MaskTrainConfig(steps=1, k=4, batch_size=16),
                          train_weights=True)
