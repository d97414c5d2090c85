"""The batched recurrent drop-ins against torch's own nn.LSTM / nn.GRU / nn.RNN with the same weights."""
import pytest
import torch
from torch import nn
from torch.func import functional_call, vmap
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from wmask.recurrent import Recurrent, batchable, run_padded

LAYERS = {"LSTM": lambda **kw: nn.LSTM(**kw), "GRU": lambda **kw: nn.GRU(**kw),
          "RNN_TANH": lambda **kw: nn.RNN(**kw), "RNN_RELU": lambda **kw: nn.RNN(nonlinearity="relu", **kw)}
TOL = dict(rtol=1e-5, atol=1e-5)


def _pair(mode, **kw):
    torch.manual_seed(0)
    ref = LAYERS[mode](input_size=5, hidden_size=6, **kw).double()
    return ref, Recurrent.from_torch(ref)


def _grads(out, params, x):
    loss = sum((o * torch.linspace(-1, 1, o.numel(), dtype=o.dtype).view_as(o)).sum() for o in out)
    return torch.autograd.grad(loss, [x, *params])


def _flat(y):
    return [y] if torch.is_tensor(y) else [t for part in y for t in _flat(part)]


@pytest.mark.parametrize("mode", list(LAYERS))
@pytest.mark.parametrize("layers,bidirectional,batch_first", [(1, False, False), (2, False, True), (2, True, False),
                                                               (3, True, True)])
def test_outputs_and_gradients_equal_torch(mode, layers, bidirectional, batch_first):
    ref, ours = _pair(mode, num_layers=layers, bidirectional=bidirectional, batch_first=batch_first)
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in ref.named_parameters()]
    x = torch.randn(4, 7, 5, dtype=torch.float64, requires_grad=True)
    d = 2 if bidirectional else 1
    h0 = torch.randn(layers * d, 4 if batch_first else 7, 6, dtype=torch.float64)
    hx = (h0, torch.randn_like(h0)) if mode == "LSTM" else h0
    for state in (None, hx):
        a, b = _flat(ref(x, state)), _flat(ours(x, state))
        for u, v in zip(a, b):
            torch.testing.assert_close(v, u, **TOL)
        for u, v in zip(_grads(a, list(ref.parameters()), x), _grads(b, list(ours.parameters()), x)):
            torch.testing.assert_close(v, u, **TOL)


@pytest.mark.parametrize("mode", list(LAYERS))
@pytest.mark.parametrize("bidirectional", [False, True])
def test_packed_and_lengths_equal_torch_packed(mode, bidirectional):
    ref, ours = _pair(mode, num_layers=2, bidirectional=bidirectional, batch_first=True)
    x = torch.randn(5, 9, 5, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([9, 3, 6, 1, 4])
    packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    y_ref, s_ref = ref(packed)
    y_ours, s_ours = ours(packed)
    torch.testing.assert_close(y_ours.data, y_ref.data, **TOL)
    for u, v in zip(_flat(s_ref), _flat(s_ours)):
        torch.testing.assert_close(v, u, **TOL)
    # the lengths keyword (what runs under vmap) and run_padded agree with the packed path, pads zero
    padded_ref = pad_packed_sequence(y_ref, batch_first=True, total_length=9)[0]
    for y, s in (ours(x, lengths=lengths), run_padded(ours, x, lengths), run_padded(ref, x, lengths)):
        torch.testing.assert_close(y, padded_ref, **TOL)
        for u, v in zip(_flat(s_ref), _flat(s)):
            torch.testing.assert_close(v, u, **TOL)
    a = _flat((padded_ref, s_ref))
    b = _flat(ours(x, lengths=lengths))
    for u, v in zip(_grads(a, list(ref.parameters()), x), _grads(b, list(ours.parameters()), x)):
        torch.testing.assert_close(v, u, **TOL)


@pytest.mark.parametrize("mode", ["LSTM", "GRU"])
def test_unbatched_input(mode):
    ref, ours = _pair(mode, num_layers=2)
    x = torch.randn(7, 5, dtype=torch.float64)
    for u, v in zip(_flat(ref(x)), _flat(ours(x))):
        torch.testing.assert_close(v, u, **TOL)


def test_runs_under_vmap_with_one_weight_set_per_sample():
    """vmap over 3 weight sets (and 3 inputs) equals torch's LSTM called once per set."""
    ref, _ = _pair("LSTM", num_layers=2, batch_first=True)
    twin = batchable(nn.Sequential(ref))
    params = {n: torch.randn(3, *p.shape, dtype=p.dtype) * 0.3 for n, p in ref.named_parameters()}
    x = torch.randn(3, 4, 6, 5, dtype=torch.float64)
    lengths = torch.tensor([[6, 2, 4, 1]] * 3)
    got = vmap(lambda w, xi, n: functional_call(twin[0], w, (xi,), {"lengths": n})[0],
               randomness="different")(params, x, lengths)
    for s in range(3):
        w = {n: v[s] for n, v in params.items()}
        packed = pack_padded_sequence(x[s], lengths[s], batch_first=True, enforce_sorted=False)
        want = pad_packed_sequence(functional_call(ref, w, (packed,))[0], batch_first=True, total_length=6)[0]
        torch.testing.assert_close(got[s], want, **TOL)


def test_batchable_shares_parameters_and_leaves_the_model_alone():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn, self.out, self.norm = nn.GRU(3, 4, batch_first=True), nn.Linear(4, 2), nn.BatchNorm1d(4)

        def forward(self, x):
            return self.out(self.rnn(x)[0][:, -1])

    net = Net()
    twin = batchable(net)
    assert isinstance(net.rnn, nn.GRU) and isinstance(twin.rnn, Recurrent) and twin.out is not net.out
    assert all(p is q for p, q in zip(net.parameters(), twin.parameters()))
    assert dict(net.named_buffers()).keys() == dict(twin.named_buffers()).keys()
    assert all(a is b for a, b in zip(net.buffers(), twin.buffers()))
    x = torch.randn(2, 5, 3)
    torch.testing.assert_close(twin(x), net(x), **TOL)
    assert batchable(nn.Linear(2, 2)).__class__ is nn.Linear


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="unknown recurrent mode 'LSTMX'"):
        Recurrent("LSTMX", 2, 3)
    with pytest.raises(ValueError, match="proj_size=2 has no batched drop-in"):
        Recurrent.from_torch(nn.LSTM(3, 4, proj_size=2))


@pytest.mark.parametrize("bidirectional", [False, True])
def test_lstm_gradients_under_vmap_equal_torch_per_weight_set(bidirectional):
    """The LSTM's own backward (all steps' recurrent-weight gradient in one matmul), run under vmap with one weight
    set per sample and sequences of different lengths: gradients of weights, inputs and initial state equal torch's
    nn.LSTM called once per weight set on packed sequences, and equal autograd's step-by-step backward."""
    import wmask.recurrent as rec
    ref, _ = _pair("LSTM", num_layers=2, batch_first=True, bidirectional=bidirectional)
    twin = batchable(nn.Sequential(ref))[0]
    d = 2 if bidirectional else 1
    g = torch.Generator().manual_seed(4)
    params = {n: (torch.randn(3, *p.shape, dtype=p.dtype, generator=g) * 0.4).requires_grad_()
              for n, p in ref.named_parameters()}
    x = torch.randn(3, 4, 6, 5, dtype=torch.float64, generator=g, requires_grad=True)
    h0 = torch.randn(3, 2 * d, 4, 6, dtype=torch.float64, generator=g, requires_grad=True)
    c0 = torch.randn(3, 2 * d, 4, 6, dtype=torch.float64, generator=g, requires_grad=True)
    lengths = torch.tensor([[6, 2, 4, 1], [3, 6, 6, 5], [1, 1, 2, 6]])
    weigh = torch.linspace(-1, 1, 4 * 6 * 6 * d, dtype=torch.float64).view(4, 6, 6 * d)
    leaves = [x, h0, c0, *params.values()]

    def loss(out):
        y, (h, c) = out
        return (y * weigh).sum() + (h * h).sum() + (c * 0.5).sum()

    def ours():
        outs = vmap(lambda w, xi, h, c, n: functional_call(twin, w, (xi, (h, c)), {"lengths": n}))(
            params, x, h0, c0, lengths)
        return torch.autograd.grad(sum(loss((outs[0][s], (outs[1][0][s], outs[1][1][s]))) for s in range(3)), leaves)

    want = []
    for s in range(3):
        packed = pack_padded_sequence(x[s], lengths[s], batch_first=True, enforce_sorted=False)
        y, state = functional_call(ref, {n: v[s] for n, v in params.items()}, (packed, (h0[s], c0[s])))
        want.append(loss((pad_packed_sequence(y, batch_first=True, total_length=6)[0], state)))
    want = torch.autograd.grad(sum(want), leaves)
    fast = ours()
    rec.ONE_MATMUL_GRADIENT = False
    try:
        stepwise = ours()
    finally:
        rec.ONE_MATMUL_GRADIENT = True
    for a, b, c in zip(fast, want, stepwise):
        torch.testing.assert_close(a, b, **TOL)
        torch.testing.assert_close(a, c, rtol=1e-10, atol=1e-12)
