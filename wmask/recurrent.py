"""LSTM, GRU and RNN layers written in torch ops, so that many mask samples run in one batched pass.

``nn.LSTM``, ``nn.GRU`` and ``nn.RNN`` call fused kernels that :func:`torch.func.vmap` cannot batch, so a model
holding one would run each of its ``M x K`` mask samples in a forward of its own. The layers here compute the same
function (the equations of torch's documentation, the same parameter names and shapes, the same inputs and
outputs, packed sequences included) with matmuls and element-wise ops that vmap batches. They are slower than
torch's kernels for plain training, so the package keeps torch's layers in its models and swaps them only where
masks are trained: :func:`batchable` returns a twin of a model that shares its parameters and buffers, with every
recurrent layer replaced (:class:`wmask.masks.MaskSet` does this by itself).

Variable-length batches: under vmap no ``PackedSequence`` can be built, so the layers also take ``lengths``
(``[B]``): sequence ``b`` updates its state for its first ``lengths[b]`` steps only and its output is zero beyond
them, as torch's packed path gives. :func:`run_padded` runs either kind of layer on a padded batch that way.
"""
from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

GATES = {"LSTM": 4, "GRU": 3, "RNN_TANH": 1, "RNN_RELU": 1}
#: the LSTM's backward forms the recurrent weight's gradient of all time steps in one matmul (:class:`_LSTMScan`);
#: ``False`` lets autograd form one per time step (the same numbers up to rounding, slower)
ONE_MATMUL_GRADIENT = True


def _lstm_cell(x_w, h, c, w_hh, b_hh):
    g = x_w + F.linear(h, w_hh, b_hh)
    i, f, n, o = g.chunk(4, -1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(n)
    return torch.sigmoid(o) * torch.tanh(c), c


def _gru_cell(x_w, h, w_hh, b_hh):
    r_i, z_i, n_i = x_w.chunk(3, -1)
    r_h, z_h, n_h = F.linear(h, w_hh, b_hh).chunk(3, -1)
    r, z = torch.sigmoid(r_i + r_h), torch.sigmoid(z_i + z_h)
    return torch.lerp(torch.tanh(n_i + r * n_h), h, z)       # (1 - z) * n + z * h


class Recurrent(nn.Module):
    """A drop-in for ``nn.LSTM`` (``mode="LSTM"``), ``nn.GRU`` (``"GRU"``) or ``nn.RNN`` (``"RNN_TANH"``,
    ``"RNN_RELU"``): same constructor arguments (no ``proj_size``), parameters, initialisation and call, plus the
    ``lengths`` keyword. Build one from a torch layer, sharing its parameters, with :meth:`from_torch`."""

    def __init__(self, mode: str, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False):
        super().__init__()
        self._setup(mode, input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional)
        g, k = GATES[mode] * hidden_size, 1 / math.sqrt(hidden_size)
        for layer in range(num_layers):
            for suffix in ("", "_reverse")[:self.directions]:
                n_in = input_size if layer == 0 else hidden_size * self.directions
                shapes = {"weight_ih": (g, n_in), "weight_hh": (g, hidden_size)}
                if bias:
                    shapes |= {"bias_ih": (g,), "bias_hh": (g,)}
                for name, shape in shapes.items():   # torch's init: U(-1/sqrt(hidden), 1/sqrt(hidden))
                    self.register_parameter(f"{name}_l{layer}{suffix}",
                                            nn.Parameter(torch.empty(shape).uniform_(-k, k)))

    def _setup(self, mode, input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional):
        if mode not in GATES:
            raise ValueError(f"unknown recurrent mode {mode!r}; expected one of {', '.join(GATES)}")
        self.mode, self.input_size, self.hidden_size, self.num_layers = mode, input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout = bias, batch_first, float(dropout)
        self.bidirectional, self.directions = bidirectional, 2 if bidirectional else 1

    @classmethod
    def from_torch(cls, rnn: nn.RNNBase) -> "Recurrent":
        """The drop-in for ``rnn`` holding the very same parameter objects (a change to one is a change to both);
        allocates nothing and draws no random numbers, so it can be made at every forward."""
        if getattr(rnn, "proj_size", 0):
            raise ValueError(f"{type(rnn).__name__} with proj_size={rnn.proj_size} has no batched drop-in")
        twin = cls.__new__(cls)
        nn.Module.__init__(twin)
        twin._setup(rnn.mode, rnn.input_size, rnn.hidden_size, rnn.num_layers, rnn.bias, rnn.batch_first,
                    rnn.dropout, rnn.bidirectional)
        for name, p in rnn.named_parameters(recurse=False):
            twin.register_parameter(name, p)
        twin.train(rnn.training)
        return twin

    def extra_repr(self) -> str:
        return (f"{self.mode}, {self.input_size}, {self.hidden_size}, num_layers={self.num_layers}, "
                f"batch_first={self.batch_first}, bidirectional={self.bidirectional}")

    def forward(self, input, hx=None, lengths: torch.Tensor | None = None):
        """As torch's layer: ``input`` ``[T, B, F]`` (``[B, T, F]`` when ``batch_first``), ``[T, F]`` unbatched,
        or a ``PackedSequence``; ``hx`` the initial state (a pair ``(h0, c0)`` for the LSTM), zeros when absent.
        Returns ``(output, h_n)`` (``(output, (h_n, c_n))`` for the LSTM). ``lengths``: see the module."""
        if isinstance(input, PackedSequence):
            padded, lens = pad_packed_sequence(input, batch_first=self.batch_first)
            out, state = self.forward(padded, hx, lens.to(padded.device))
            return pack_padded_sequence(out, lens, self.batch_first, enforce_sorted=False), state
        unbatched = input.dim() == 2
        x = input.unsqueeze(1) if unbatched else (input.transpose(0, 1) if self.batch_first else input)
        lstm = self.mode == "LSTM"
        h0 = hx[0] if lstm and hx is not None else hx
        if h0 is None:
            h0 = x.new_zeros(self.num_layers * self.directions, x.shape[1], self.hidden_size)
        elif unbatched:
            h0 = h0.unsqueeze(1)
        c0 = (hx[1].unsqueeze(1) if unbatched else hx[1]) if lstm and hx is not None else torch.zeros_like(h0)
        valid = None if lengths is None else (torch.arange(x.shape[0], device=x.device)[:, None] < lengths[None])
        h_n, c_n = [], []
        for layer in range(self.num_layers):
            outs = []
            for d, suffix in enumerate(("", "_reverse")[:self.directions]):
                i = layer * self.directions + d
                y, h, c = self._direction(x, h0[i], c0[i], valid, f"_l{layer}{suffix}", reverse=d == 1)
                outs.append(y)
                h_n.append(h)
                c_n.append(c)
            x = torch.cat(outs, -1) if self.directions == 2 else outs[0]
            if layer < self.num_layers - 1 and self.dropout and self.training:
                x = F.dropout(x, self.dropout, True)
        out, h_n, c_n = x, torch.stack(h_n), torch.stack(c_n)
        if unbatched:
            out, h_n, c_n = out.squeeze(1), h_n.squeeze(1), c_n.squeeze(1)
        elif self.batch_first:
            out = out.transpose(0, 1)
        return out, ((h_n, c_n) if lstm else h_n)

    def _direction(self, x, h, c, valid, suffix: str, reverse: bool):
        """One layer, one direction over ``x`` ``[T, B, F]``: outputs ``[T, B, H]``, last ``h`` and ``c``."""
        p = lambda name: getattr(self, name + suffix, None)   # noqa: E731
        w_hh, b_hh = p("weight_hh"), p("bias_hh")
        if reverse:   # each sequence read back to front from its own last step; pads stay where they are
            x = _reverse(x, valid)
        # the input projections of all steps in one matmul
        x_w = F.linear(x, p("weight_ih"), p("bias_ih"))
        if self.mode == "LSTM" and ONE_MATMUL_GRADIENT:
            y, h, c = _LSTMScan.apply(x_w, h, c, w_hh, b_hh, valid)[:3]
            return (_reverse(y, valid) if reverse else y), h, c
        # unbind (not x_w[t]), so the backward stacks the steps' gradients once instead of adding T zero-filled
        # full-size tensors
        x_w = x_w.unbind(0)
        outs = []
        for t in range(x.shape[0]):
            if self.mode == "LSTM":
                h_t, c_t = _lstm_cell(x_w[t], h, c, w_hh, b_hh)
            elif self.mode == "GRU":
                h_t, c_t = _gru_cell(x_w[t], h, w_hh, b_hh), c
            else:
                act = torch.tanh if self.mode == "RNN_TANH" else torch.relu
                h_t, c_t = act(x_w[t] + F.linear(h, w_hh, b_hh)), c
            if valid is not None:
                v = valid[t, :, None]
                h_t, c_t = torch.where(v, h_t, h), torch.where(v, c_t, c)
                outs.append(torch.where(v, h_t, torch.zeros_like(h_t)))
            else:
                outs.append(h_t)
            h, c = h_t, c_t
        y = torch.stack(outs)
        return (_reverse(y, valid) if reverse else y), h, c


_sigmoid_bw = torch.ops.aten.sigmoid_backward   # (grad, sigmoid(x)) -> grad * s * (1 - s), one fused op
_tanh_bw = torch.ops.aten.tanh_backward         # (grad, tanh(x)) -> grad * (1 - t * t)


class _LSTMScan(torch.autograd.Function):
    """An LSTM layer's recurrence over ``x_w`` ``[T, B, 4H]`` (the input projections of all steps) from ``h``, ``c``
    ``[B, H]``: outputs ``[T, B, H]`` and the last ``h``, ``c`` (``valid`` ``[T, B]``: see :class:`Recurrent`).

    The backward runs the recurrence back in time for the gates' gradients ``dG`` ``[T, B, 4H]`` and then forms
    the recurrent weight's gradient of all steps in one matmul, ``dG^T H``, where autograd would form one small
    matmul a step and add them up. Under vmap (one weight set per mask sample) it is one batched matmul."""
    generate_vmap_rule = True

    @staticmethod
    def forward(x_w, h, c, w_hh, b_hh, valid):
        ys, hs, cs, sig, tn, tcs = [], [], [], [], [], []
        n_h = h.shape[-1]
        for t in range(x_w.shape[0]):
            g = x_w[t] + F.linear(h, w_hh, b_hh)
            s = torch.sigmoid(g)                      # the input, forget and output gates (the third quarter unused)
            n = torch.tanh(g[..., 2 * n_h:3 * n_h])
            c_t = s[..., n_h:2 * n_h] * c + s[..., :n_h] * n
            tc = torch.tanh(c_t)
            h_t = s[..., 3 * n_h:] * tc
            hs.append(h)
            cs.append(c)
            sig.append(s)
            tn.append(n)
            tcs.append(tc)
            if valid is not None:
                v = valid[t, :, None]
                ys.append(torch.where(v, h_t, torch.zeros_like(h_t)))
                h, c = torch.where(v, h_t, h), torch.where(v, c_t, c)
            else:
                ys.append(h_t)
                h, c = h_t, c_t
        return (torch.stack(ys), h, c, torch.stack(hs), torch.stack(cs), torch.stack(sig), torch.stack(tn),
                torch.stack(tcs))

    @staticmethod
    def setup_context(ctx, inputs, output):
        _, _, _, w_hh, b_hh, valid = inputs
        ctx.mark_non_differentiable(*output[3:])
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(w_hh, *output[3:])
        ctx.valid, ctx.has_bias = valid, b_hh is not None

    @staticmethod
    def backward(ctx, dy, dh, dc, *_):
        w_hh, h_prev, c_prev, sig, tn, tcs = ctx.saved_tensors
        valid = ctx.valid
        dh = torch.zeros_like(h_prev[0]) if dh is None else dh
        dc = torch.zeros_like(c_prev[0]) if dc is None else dc
        n_h = dh.shape[-1]
        dgs = [None] * h_prev.shape[0]
        for t in reversed(range(h_prev.shape[0])):
            s, n, tc = sig[t], tn[t], tcs[t]
            i, f, o = s[..., :n_h], s[..., n_h:2 * n_h], s[..., 3 * n_h:]
            dh_t = dh if dy is None else dh + dy[t]
            if valid is not None:   # a step past a sequence's end passes its state's gradient through unchanged
                v = valid[t, :, None]
                zero = torch.zeros_like(dh)
                dh_t, dc_t = torch.where(v, dh_t, zero), torch.where(v, dc, zero)
                dh_skip, dc_skip = torch.where(v, zero, dh), torch.where(v, zero, dc)
            else:
                dc_t = dc
            dc_t = dc_t + _tanh_bw(dh_t * o, tc)
            dg = torch.cat((_sigmoid_bw(dc_t * n, i), _sigmoid_bw(dc_t * c_prev[t], f), _tanh_bw(dc_t * i, n),
                            _sigmoid_bw(dh_t * tc, o)), -1)
            dgs[t] = dg
            dh, dc = dg @ w_hh, dc_t * f
            if valid is not None:
                dh, dc = dh + dh_skip, dc + dc_skip
        d_g = torch.stack(dgs)
        flat = d_g.flatten(0, -2)
        # formed as (H^T dG)^T, laid out as autograd lays out a linear layer's weight gradient (transposed): the
        # mask sampler's backward reads it contiguously (see wmask.sampling.storage_order)
        d_w = (h_prev.flatten(0, -2).mT @ flat).mT
        return d_g, dh, dc, d_w, flat.sum(0) if ctx.has_bias else None, None


def _reverse(x: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
    """``x`` ``[T, B, ...]`` with each sequence's valid steps in reverse order (all ``T`` without ``valid``)."""
    if valid is None:
        return x.flip(0)
    t = torch.arange(x.shape[0], device=x.device)[:, None]
    n = valid.sum(0)[None]
    idx = torch.where(t < n, n - 1 - t, t)
    return torch.gather(x, 0, idx.view(*idx.shape, *[1] * (x.dim() - 2)).expand_as(x))


def has_recurrent(model: nn.Module) -> list[str]:
    """The names of the torch recurrent layer types in ``model`` (``nn.LSTM``, ``nn.GRU``, ``nn.RNN``)."""
    return sorted({type(m).__name__ for m in model.modules() if isinstance(m, nn.RNNBase)})


def batchable(model: nn.Module) -> nn.Module:
    """A twin of ``model`` whose ``nn.LSTM``/``nn.GRU``/``nn.RNN`` layers are :class:`Recurrent` drop-ins: same
    parameter names, the same parameter and buffer objects (nothing is copied), the same function. ``model`` itself
    is untouched; without recurrent layers it is returned as it is. Other attributes are copied shallowly when the
    twin is made."""
    if not has_recurrent(model):
        return model

    def twin(m: nn.Module) -> nn.Module:
        if isinstance(m, nn.RNNBase):
            return Recurrent.from_torch(m)
        new = copy.copy(m)
        new._modules = {name: None if c is None else twin(c) for name, c in m._modules.items()}
        return new
    return twin(model)


def run_padded(rnn: nn.Module, x: torch.Tensor, lengths: torch.Tensor, hx=None):
    """``rnn`` over a padded batch ``x`` whose sequence ``b`` has ``lengths[b]`` steps: through a packed sequence
    for torch's layers, through ``lengths`` for :class:`Recurrent` (which runs under vmap). Returns ``rnn``'s
    ``(output, state)``, output padded with zeros."""
    if isinstance(rnn, Recurrent):
        return rnn(x, hx, lengths=lengths)
    packed = pack_padded_sequence(x, lengths.cpu(), batch_first=rnn.batch_first, enforce_sorted=False)
    out, state = rnn(packed, hx)
    padded = pad_packed_sequence(out, batch_first=rnn.batch_first, total_length=x.shape[1 if rnn.batch_first else 0])
    return padded[0], state
