"""Mask and base training stop with a named error on non-finite values, and refuse a batch of the wrong size."""
import pytest
import torch
import torch.nn.functional as F

import wmask
from wmask.masks import MaskSet
from wmask.experiments.models import FNN
from wmask.train import MaskTrainConfig, train_masks


def problem(m=2, b=8):
    torch.manual_seed(0)
    model = FNN(6, [16], 3).eval()

    def data(step):
        g = torch.Generator().manual_seed(step)
        x = torch.randn(m, b, 6, generator=g)
        return x, x[..., :3].argmax(-1)

    def loss_fn(out, y):
        return F.cross_entropy(out.flatten(0, 1), y.flatten(), reduction="none").view(m, -1).mean(1)

    return model, data, loss_fn


CFG = MaskTrainConfig(steps=6, lr=0.05, alpha=1e-2, k=2, batch_size=8, log_every=1)


def nan_at(data, step, where):
    def fn(s):
        x, y = data(s)
        if s == step:
            x = x.clone()
            x[where] = float("nan")
        return x, y
    return fn


def assert_untouched(masks, before):
    assert all(torch.equal(masks.logits[n], before[n]) for n in masks.names)   # no update from the bad step


def test_nan_in_an_input_batch_is_named():
    model, data, loss_fn = problem()
    masks = MaskSet(model, n_sets=2, impl="eager", seed=1)
    with pytest.raises(FloatingPointError, match=r"step 3.*set 1.*input batch") as info:
        train_masks(masks, nan_at(data, 3, (1, 2, 0)), loss_fn, CFG, progress=False)
    assert "set 0" not in str(info.value)
    assert all(torch.isfinite(l).all() for l in masks.logits.values())
    assert (masks.keep_fraction() > 0.5).all()


def test_nan_in_one_dimensional_targets_is_named():
    model, data, loss_fn = problem()
    masks = MaskSet(model, n_sets=2, impl="eager", seed=1)
    scale = lambda s: torch.tensor([1.0, float("nan") if s == 1 else 1.0])  # noqa: E731 - a per-set target
    with pytest.raises(FloatingPointError, match=r"step 1: set 1: non-finite values in the targets"):
        train_masks(masks, lambda s: (data(s)[0], (data(s)[1], scale(s))), lambda o, y: loss_fn(o, y[0]) * y[1],
                    CFG, progress=False)


def test_nan_loss_is_named():
    model, data, loss_fn = problem()
    masks = MaskSet(model, n_sets=2, impl="eager", seed=1)

    def bad_loss(out, y):
        loss = loss_fn(out, y)
        return loss * torch.tensor([float("inf"), 1.0]) if bad_loss.calls == 2 else loss

    def counting(out, y):
        bad_loss.calls += 1
        return bad_loss(out, y)
    bad_loss.calls = -1
    with pytest.raises(FloatingPointError, match=r"step 2.*set 0: non-finite loss \(inf\)"):
        train_masks(masks, data, counting, CFG, progress=False)


class NanGrad(torch.autograd.Function):
    """Identity forward; the gradient of set 1 becomes NaN."""
    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, g):
        g = g.clone()
        g[1] = float("nan")
        return g


@pytest.mark.parametrize("clip_mode", ["masks", "all"])
def test_nan_gradient_is_named_with_its_tensor(clip_mode):
    model, data, loss_fn = problem()
    masks = MaskSet(model, n_sets=2, impl="eager", seed=1)
    cfg = MaskTrainConfig(**{**CFG.__dict__, "clip_mode": clip_mode})
    state = {}

    def forward(call, x):
        state.update({n: l.detach().clone() for n, l in masks.logits.items()})
        return NanGrad.apply(call(x))
    named = r"step 0.*set 1: non-finite gradient of the logits of tensors \['0\.weight', '2\.weight'\]"
    with pytest.raises(FloatingPointError, match=named) as info:
        train_masks(masks, data, loss_fn, cfg, progress=False, forward=forward)
    assert "set 0" not in str(info.value)
    assert_untouched(masks, state)


def test_nan_logits_are_named():
    model, data, loss_fn = problem()
    masks = MaskSet(model, n_sets=2, impl="eager", seed=1)
    with torch.no_grad():
        masks.logits["0.weight"][0, 3, 2] = float("nan")
    with pytest.raises(FloatingPointError, match=r"step 0.*set 0.*logits.*'0\.weight'"):
        train_masks(masks, data, loss_fn, CFG, progress=False)


def test_base_training_names_the_step_of_a_nan_batch():
    model, data, _ = problem(m=1)
    bad = nan_at(data, 4, (0, 0, 1))
    with pytest.raises(FloatingPointError, match=r"step 4.*input batch"):
        wmask.train_model(model, lambda s: tuple(t[0] for t in bad(s)), lambda m, x, y: F.cross_entropy(m(x), y),
                          wmask.BaseTrainConfig(steps=10, eval_every=0), progress=False)


# -- 5. the regulariser's batch size is the one given ----------------------------------------------------------------
def test_batch_size_must_match_the_config():
    model, data, loss_fn = problem(b=16)
    masks = MaskSet(model, n_sets=2, impl="eager", seed=1)
    with pytest.raises(ValueError, match=r"batch size 16.*batch_size=8"):
        train_masks(masks, data, loss_fn, CFG, progress=False)
    with pytest.raises(ValueError, match=r"batch size 8.*batch_size=16"):
        train_masks(masks, problem(b=8)[1], loss_fn, MaskTrainConfig(**{**CFG.__dict__, "batch_size": 16}),
                    progress=False)


def test_batch_dim_selects_the_checked_dimension():
    """Sequence-first inputs ``[M, T, B, F]`` with ``batch_dim=1``: B is checked, T is free."""
    torch.manual_seed(0)
    model = FNN(6, [8], 3).eval()
    masks = MaskSet(model, n_sets=2, impl="eager", seed=1)
    data = lambda s: (torch.randn(2, 4, 8, 6), torch.randint(0, 3, (2, 4, 8)))  # noqa: E731
    loss = lambda out, y: F.cross_entropy(out.flatten(0, 2), y.flatten(), reduction="none").view(2, -1).mean(1)  # noqa
    cfg = MaskTrainConfig(**{**CFG.__dict__, "batch_dim": 1, "steps": 2})
    train_masks(masks, data, loss, cfg, progress=False)
    with pytest.raises(ValueError, match="batch size 4"):
        train_masks(masks, data, loss, MaskTrainConfig(**{**cfg.__dict__, "batch_dim": 0}), progress=False)
