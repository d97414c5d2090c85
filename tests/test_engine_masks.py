"""MaskSet and mask-file behaviour: file order, the forward mode chosen up front, the frozen copy of the weights kept
in step with the model, eval mode while masks run, and refusals of malformed masks and configurations."""
import math
import warnings

import pytest
import torch
from torch import nn

import wmask
from wmask.experiments import seq2seq
from wmask.masks import MaskFilter, MaskSet
from wmask.experiments.models import FNN
from wmask.train import MaskTrainConfig


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


# -- 4. refusals ------------------------------------------------------------------------------------------------------
def test_materialize_refuses_non_boolean_masks():
    model = FNN(4, [8], 2)
    masks = {n: m.float() * 0.5 for n, m in wmask.full_masks(model).items()}
    with pytest.raises(TypeError, match=r"0\.weight.*torch\.float32"):
        wmask.materialize(model, masks)


def test_invert_names_unknown_keep_names():
    a = {"w": torch.tensor([True, False])}
    with pytest.raises(ValueError, match="'nope'"):
        wmask.invert(a, keep=["nope"], like=a)
    with pytest.raises(ValueError, match="'w'"):
        wmask.invert(a, keep=["w"], like={})


@pytest.mark.parametrize("alpha", [math.nan, math.inf, -1.0])
def test_alpha_must_be_finite(alpha):
    with pytest.raises(ValueError, match="alpha must be finite and >= 0"):
        MaskTrainConfig(alpha=alpha)
    with pytest.raises(ValueError, match="alpha must be one number"):
        MaskTrainConfig(alpha=(1e-4, 1e-3))


def test_per_set_alphas_are_checked():
    from wmask import MaskSet, train_masks
    net = torch.nn.Linear(3, 2)
    ms = MaskSet(net, 2, seed=0)
    data = lambda step: (torch.zeros(2, 8, 3), torch.zeros(2, 8, 2))  # noqa: E731
    loss = lambda out, y: (out - y).pow(2).mean((1, 2))                # noqa: E731
    cfg = MaskTrainConfig(steps=1, batch_size=8)
    for bad in ([1e-4, math.nan], [1e-4], [1e-4, -1.0]):
        with pytest.raises(ValueError, match="alphas must be 2 finite values >= 0"):
            train_masks(ms, data, loss, cfg, progress=False, alphas=bad)


def test_k_must_be_positive():
    with pytest.raises(ValueError, match="k must be >= 1"):
        MaskTrainConfig(k=0)


# -- 6. recurrent layers run batched, through drop-ins equal to torch's ------------------------------------------------
@pytest.mark.parametrize("kind", [nn.LSTM, nn.GRU, nn.RNN])
def test_recurrent_layers_run_batched_and_equal_the_loop(kind):
    """The same masks (same seeds) through vmap over the batched drop-ins and through torch's layer one sample at a
    time: outputs and logit gradients equal."""
    torch.manual_seed(0)
    model = RecurrentNet(kind)
    x = torch.randn(2, 4, 5, 4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")                 # no warning: nothing falls back
        batched = MaskSet(model, n_sets=2, impl="eager", seed=3, mode="vmap")
    looped = MaskSet(model, n_sets=2, impl="eager", seed=3, mode="loop")
    assert batched.mode == "vmap"
    for ms in (batched, looped):
        for t in ms.logits.values():
            t.data.normal_(generator=torch.Generator().manual_seed(1))
    a, b = batched.sample_forward(x, k=2), looped.sample_forward(x, k=2)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    ga = torch.autograd.grad(a.square().sum(), list(batched.logits.values()))
    gb = torch.autograd.grad(b.square().sum(), list(looped.logits.values()))
    for u, v in zip(ga, gb):
        torch.testing.assert_close(u, v, rtol=1e-5, atol=1e-6)
    assert isinstance(model.rnn, kind)                # the user's model keeps torch's layer


def test_seq2seq_lstm_masks_run_batched_and_equal_the_loop():
    """The SCAN LSTM (packed encoder input; greedy decoding when not teacher-forced) under vmap equals the loop."""
    for tf in (0.0, 1.0):
        torch.manual_seed(0)
        net = seq2seq.Seq2SeqLSTM(6, 5, hidden=8, layers=2, emb=4, teacher_forcing=tf).eval()
        src = torch.randint(1, 6, (2, 4, 5))
        src[:, :, 3:] *= torch.randint(0, 2, (2, 4, 1))          # some sequences end early (padding 0)
        tgt = torch.randint(0, 5, (2, 4, 3))
        outs = []
        for mode in ("vmap", "loop"):
            ms = MaskSet(net, n_sets=2, impl="eager", seed=3, mode=mode)
            for t in ms.logits.values():
                t.data.normal_(generator=torch.Generator().manual_seed(1))
            out = ms.sample_forward((src, tgt), k=2)
            outs.append((out, torch.autograd.grad(out.square().sum(), list(ms.logits.values()))))
        torch.testing.assert_close(outs[0][0], outs[1][0], rtol=1e-5, atol=1e-6)
        for u, v in zip(outs[0][1], outs[1][1]):
            torch.testing.assert_close(u, v, rtol=1e-5, atol=1e-5)


def test_vmap_errors_are_raised_with_a_hint_instead_of_falling_back():
    """A model that branches on a tensor's value cannot run under vmap: a named error, no silent fallback."""
    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.l = nn.Linear(3, 2)

        def forward(self, x):
            y = self.l(x)
            return y if y.sum() > 0 else -y

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        masks = MaskSet(Branchy(), n_sets=2, impl="eager")
        assert masks.mode == "vmap"
        with pytest.raises(RuntimeError, match="mode='loop'") as info:
            masks.sample_forward(torch.randn(2, 4, 3), k=2)
    assert info.value.__cause__ is not None and masks.mode == "vmap"
    looped = MaskSet(Branchy(), n_sets=2, impl="eager", mode="loop")
    assert looped.sample_forward(torch.randn(2, 4, 3), k=2).shape == (2, 4, 2)


def test_random_draws_inside_the_model_are_shared_by_the_samples_of_a_step():
    """Teacher forcing 0.5 draws one coin per call: under vmap every mask sample of a step sees the same draw, as
    in one forward over the whole batch."""
    torch.manual_seed(0)
    net = seq2seq.Seq2SeqTransformer(6, 5, d=16, heads=2, enc_layers=1, dec_layers=1, ff=16,
                                     teacher_forcing=0.5).eval()
    src, tgt = torch.randint(1, 6, (2, 4, 3)), torch.randint(0, 5, (2, 4, 3))
    for state in range(4):
        torch.manual_seed(state)
        out = MaskSet(net, n_sets=2, impl="eager", seed=3).sample_forward((src, tgt), k=2)
        torch.manual_seed(state)
        forced = bool(torch.rand(()) < 0.5)
        net.teacher_forcing = 1.0 if forced else 0.0     # the draw, made for all four samples at once
        want = MaskSet(net, n_sets=2, impl="eager", seed=3).sample_forward((src, tgt), k=2)
        net.teacher_forcing = 0.5
        torch.testing.assert_close(out, want)


def test_a_model_error_that_loop_mode_would_raise_too_is_the_models_own():
    class Picky(nn.Module):
        def __init__(self):
            super().__init__()
            self.l = nn.Linear(3, 2)

        def forward(self, x):
            raise ValueError("picky model")

    masks = MaskSet(Picky(), impl="eager")
    with pytest.raises(ValueError, match="picky model") as info:
        masks.eval_forward(torch.randn(1, 2, 3))
    assert not isinstance(info.value, wmask.VmapForwardError)
    assert "mode='loop' fails too" in " ".join(info.value.__notes__)


# -- 7. the training copy of the weights follows the model ------------------------------------------------------------
@pytest.mark.parametrize("how", ["load_state_dict", "assign", "in_place"])
def test_training_forward_uses_weights_loaded_after_the_mask_set_was_built(how):
    torch.manual_seed(0)
    model, trained = FNN(6, [16], 3).eval(), FNN(6, [16], 3).eval()
    masks = MaskSet(model, n_sets=1, impl="eager", init=100.0)   # sigmoid(100) == 1: every weight kept
    x = torch.randn(1, 8, 6)
    if how == "load_state_dict":
        model.load_state_dict(trained.state_dict())
    elif how == "assign":
        model.load_state_dict(trained.state_dict(), assign=True)
    else:
        with torch.no_grad():
            model[0].weight.mul_(2.0)
        trained.load_state_dict(model.state_dict())
    expected = trained(x[0])
    torch.testing.assert_close(masks.sample_forward(x, k=1)[0], expected)
    torch.testing.assert_close(masks.eval_forward(x)[0], expected)
    assert all(p.requires_grad for p in model.parameters())    # the user's flags are left as they were
    with pytest.raises(ValueError, match="shape"):
        model[0].weight = nn.Parameter(torch.zeros(16, 7))
        masks.sample_forward(x, k=1)


# -- 8. mask forwards run the model in eval mode ---------------------------------------------------------------------
class DropNorm(nn.Module):
    def __init__(self):
        super().__init__()
        self.l = nn.Linear(6, 32)
        self.bn = nn.BatchNorm1d(32)
        self.drop = nn.Dropout(0.5)
        self.out = nn.Linear(32, 3)

    def forward(self, x):
        return self.out(self.drop(self.bn(self.l(x))))


@pytest.mark.parametrize("mode", ["vmap", "loop"])
def test_mask_forwards_run_in_eval_mode_and_restore_the_mode(mode):
    torch.manual_seed(0)
    model = DropNorm()                       # a fresh module is in train mode
    model.drop.eval()                        # a user's mixed modes come back as they were
    model.drop.train()
    model.out.eval()
    before = {n: m.training for n, m in model.named_modules()}
    stats = model.bn.running_mean.clone()
    masks = MaskSet(model, n_sets=2, impl="eager", init=100.0, mode=mode)
    x = torch.randn(8, 6).expand(2, 8, 6)
    out = masks.eval_forward(x)
    assert torch.equal(out[0], out[1])       # identical sets, identical outputs: no dropout
    sampled = masks.sample_forward(x, k=2)
    assert torch.equal(sampled[0], sampled[1])
    assert torch.equal(model.bn.running_mean, stats)
    assert {n: m.training for n, m in model.named_modules()} == before
    model.eval()
    torch.testing.assert_close(out[0], model(x[0]))
