"""Sequence-to-sequence models for SCAN (the paper's SCAN experiment, Fig. 4) and the pieces around them: vocabularies,
padded batches, the
loss and exact-match accuracy.

Both models have one signature, ``model(src [B, S], tgt [B, T]) -> logits [B, T, V]``, so the mask engine runs them
through ``functional_call`` like any other model. ``src`` holds input-word indices padded with 0; ``tgt`` holds the
output-token indices (actions, then EOS) padded with -1. ``model.teacher_forcing`` is the probability, drawn once
per call (per batch), that the decoder reads the true previous tokens; otherwise it reads its own greedy predictions
for ``T`` steps. Greedy decoding is the same call with teacher forcing 0 (:func:`free_running`): the prediction is
``logits.argmax(-1)`` and ``tgt`` only gives the number of steps.
"""
from __future__ import annotations

import contextlib
import math
import warnings
from collections import Counter

import torch
import torch.nn.functional as F
from torch import nn

from ..recurrent import run_padded

PAD, IGNORE, EOS = "<pad>", -1, "<eos>"


class Vocab:
    """Words sorted by frequency (ties by name), most frequent first; ``specials`` go first (``<pad>`` = 0) or, for
    ``tail``, last (EOS). Unknown words are an error that names them."""

    def __init__(self, sequences, specials=(), tail=()):
        counts = Counter(w for s in sequences for w in s)
        self.words = [*specials, *sorted(counts, key=lambda w: (-counts[w], w)), *tail]
        self.index = {w: i for i, w in enumerate(self.words)}

    def __len__(self):
        return len(self.words)

    def encode(self, words) -> list[int]:
        missing = sorted({w for w in words if w not in self.index})
        if missing:
            raise ValueError(f"words {missing} are not in the vocabulary {self.words}")
        return [self.index[w] for w in words]


def pad(seqs: list[list[int]], value: int) -> torch.Tensor:
    out = torch.full((len(seqs), max(map(len, seqs))), value, dtype=torch.long)
    for i, s in enumerate(seqs):
        out[i, :len(s)] = torch.tensor(s, dtype=torch.long)
    return out


class Encoded:
    """A list of (command, actions) pairs as padded tensors: ``src`` (pad 0), ``tgt`` (actions + EOS, pad -1) and
    their lengths (on the CPU, to trim batches without a device sync)."""

    def __init__(self, pairs, in_vocab: Vocab, out_vocab: Vocab):
        self.src = pad([in_vocab.encode(c) for c, _ in pairs], 0)
        self.tgt = pad([out_vocab.encode([*a, EOS]) for _, a in pairs], IGNORE)
        self.src_len = (self.src != 0).sum(1)
        self.tgt_len = (self.tgt != IGNORE).sum(1)

    def __len__(self):
        return len(self.src)

    def batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows ``idx`` (any shape, e.g. ``[M, B]``), trimmed to their longest source and target."""
        return (self.src[idx][..., :int(self.src_len[idx].max())], self.tgt[idx][..., :int(self.tgt_len[idx].max())])


def gather(encoded: list, idx: list[torch.Tensor]):
    """Rows ``idx[i]`` of ``encoded[i]``, stacked and padded (or trimmed) to the longest source and target."""
    s_len = max(int(e.src_len[i].max()) for e, i in zip(encoded, idx))
    t_len = max(int(e.tgt_len[i].max()) for e, i in zip(encoded, idx))
    fit = lambda t, n, value: F.pad(t[:, :n], (0, n - min(n, t.shape[1])), value=value)  # noqa: E731
    return (torch.stack([fit(e.src[i], s_len, 0) for e, i in zip(encoded, idx)]),
            torch.stack([fit(e.tgt[i], t_len, IGNORE) for e, i in zip(encoded, idx)]))


def subset(pairs: list, n: int, seed: int) -> list:
    """``n`` of ``pairs`` drawn with ``seed``, in their original order (all of them when ``n`` is 0 or too large)."""
    if not n or n >= len(pairs):
        return pairs
    keep = torch.randperm(len(pairs), generator=torch.Generator().manual_seed(seed))[:n].sort().values
    return [pairs[i] for i in keep]


def seq_loss(logits: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
    """Cross-entropy summed over each sequence's tokens, averaged over sequences (the book's method page): ``[..., B,
    T, V]`` and
    ``[..., B, T]`` -> ``[...]``."""
    ce = F.cross_entropy(logits.flatten(0, -2), tgt.flatten(), ignore_index=IGNORE, reduction="none")
    return ce.view(tgt.shape).sum(-1).mean(-1)


def exact_match(logits: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
    """``[..., B]`` bools: every token up to and including EOS is right (so the length is right too)."""
    return ((logits.argmax(-1) == tgt) | (tgt == IGNORE)).all(-1)


def exact_match_rate(call, enc: Encoded, n: int, device, chunk: int) -> torch.Tensor:
    """Exact-match rate ``[n]`` over ``enc`` of ``call(src, tgt) -> logits [n, B, T, V]`` (``n`` models or masks at
    once), in chunks of lines sorted by target length, so each chunk decodes only as many steps as its longest."""
    right = torch.zeros(n, device=device)
    for idx in torch.argsort(enc.tgt_len, stable=True).split(chunk):
        src, tgt = (t.to(device) for t in enc.batch(idx))
        right += exact_match(call(src, tgt), tgt).float().sum(-1)
    return right / len(enc)


@contextlib.contextmanager
def free_running(model: nn.Module):
    """Greedy decoding: teacher forcing off for the duration (and restored after)."""
    before = model.teacher_forcing
    model.teacher_forcing = 0.0
    try:
        yield model
    finally:
        model.teacher_forcing = before


def _teacher_forced(p: float) -> bool:
    """One draw per call (per batch); a CPU draw, so it never waits for the GPU."""
    return p >= 1.0 or (p > 0.0 and bool(torch.rand(()) < p))


def _shifted(tgt: torch.Tensor, start: int) -> torch.Tensor:
    """Decoder inputs for teacher forcing: the start token, then the targets (padding read as token 0)."""
    return torch.cat([torch.full_like(tgt[:, :1], start), tgt[:, :-1].clamp(min=0)], 1)


class Seq2SeqLSTM(nn.Module):
    """Lake & Baroni's encoder-decoder without attention (the paper's SCAN experiment, Fig. 4): separate
    ``layers``-layer encoder and decoder
    LSTMs of ``hidden`` units, embeddings of ``emb``, the final encoder state initialises the decoder, a linear
    read-out ``hidden -> n_out``. Dropout ``dropout`` on the embeddings and between LSTM layers."""

    def __init__(self, n_in: int, n_out: int, hidden: int = 200, layers: int = 2, emb: int = 16,
                 dropout: float = 0.5, teacher_forcing: float = 0.5):
        super().__init__()
        self.n_out, self.teacher_forcing = n_out, teacher_forcing
        self.src_emb = nn.Embedding(n_in, emb, padding_idx=0)
        self.tgt_emb = nn.Embedding(n_out + 1, emb)          # + the start token
        self.encoder = nn.LSTM(emb, hidden, layers, batch_first=True, dropout=dropout)
        self.decoder = nn.LSTM(emb, hidden, layers, batch_first=True, dropout=dropout)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(hidden, n_out)

    def forward(self, src: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
        # each source sequence's state after its own last token (packed for nn.LSTM, `lengths` for the batched
        # drop-in that mask training runs, see wmask.recurrent)
        _, state = run_padded(self.encoder, self.drop(self.src_emb(src)), (src != 0).sum(1))
        if _teacher_forced(self.teacher_forcing):
            y, _ = self.decoder(self.drop(self.tgt_emb(_shifted(tgt, self.n_out))), state)
            return self.out(y)
        token, outs = torch.full_like(tgt[:, :1], self.n_out), []
        for _ in range(tgt.shape[1]):
            y, state = self.decoder(self.drop(self.tgt_emb(token)), state)
            outs.append(self.out(y))
            token = outs[-1].argmax(-1)
        return torch.cat(outs, 1)


def sinusoids(length: int, d: int) -> torch.Tensor:
    pos = torch.arange(length).unsqueeze(1)
    freq = torch.exp(torch.arange(0, d, 2) * (-math.log(10_000.0) / d))
    pe = torch.zeros(length, d)
    pe[:, 0::2], pe[:, 1::2] = torch.sin(pos * freq), torch.cos(pos * freq[:d // 2])
    return pe


class Seq2SeqTransformer(nn.Module):
    """The 3+3-layer post-LN Transformer of the paper's SCAN experiment (``d`` 100, 4 heads, feed-forward 200, dropout
    0.1) with
    sinusoidal positions added to the embeddings; always teacher-forced in training (``teacher_forcing`` 1),
    greedy when decoding.

    ``tied=True`` (the Mathematics-dataset experiment of the paper): one vocabulary for questions and answers
    (``n_in == n_out``), one embedding for the encoder, the decoder and the output layer (whose weight is then the
    embedding's, so masks leave it whole), initialised N(0, 1/d) and scaled by √d on the way in (Vaswani et al.);
    index 0 (``<pad>``) doubles as the decoder's start token. ``norm_first``: layer norm before each block
    (pre-LN, trains faster at a higher learning rate) instead of after it."""

    def __init__(self, n_in: int, n_out: int, d: int = 100, heads: int = 4, enc_layers: int = 3,
                 dec_layers: int = 3, ff: int = 200, dropout: float = 0.1, teacher_forcing: float = 1.0,
                 max_len: int = 128, tied: bool = False, norm_first: bool = False):
        super().__init__()
        self.n_out, self.teacher_forcing = n_out, teacher_forcing
        if tied:
            if n_in != n_out:
                raise ValueError(f"tied embeddings need one vocabulary: n_in {n_in} != n_out {n_out}")
            self.src_emb = self.tgt_emb = nn.Embedding(n_out, d)
            nn.init.normal_(self.src_emb.weight, std=d ** -0.5)
            self.start, self.scale = 0, math.sqrt(d)
        else:
            self.src_emb = nn.Embedding(n_in, d, padding_idx=0)
            self.tgt_emb = nn.Embedding(n_out + 1, d)
            self.start, self.scale = n_out, 1.0
        self.register_buffer("pos", sinusoids(max_len, d), persistent=False)
        with warnings.catch_warnings():   # pre-LN has no nested-tensor path, which is off here anyway
            warnings.filterwarnings("ignore", "enable_nested_tensor is True")
            self.transformer = nn.Transformer(d, heads, enc_layers, dec_layers, ff, dropout, batch_first=True,
                                              norm_first=norm_first)
        self.transformer.encoder.enable_nested_tensor = self.transformer.encoder.use_nested_tensor = False
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(d, n_out)
        if tied:
            self.out.weight = self.src_emb.weight
        if max_len < 1:
            raise ValueError(f"max_len must be >= 1, got {max_len}")

    def _embed(self, emb: nn.Embedding, x: torch.Tensor) -> torch.Tensor:
        # untied: no sqrt(d) scaling, with N(0, 1) embeddings it would drown the positions (measured: 0.2 % vs 26 %
        # iid accuracy after 600 steps at d 64); tied: N(0, 1/d) embeddings times sqrt(d)
        if x.shape[-1] > self.pos.shape[0]:
            raise ValueError(f"a sequence of {x.shape[-1]} tokens is longer than max_len {self.pos.shape[0]}")
        return self.drop(emb(x) * self.scale + self.pos[:x.shape[1]])

    def _decode(self, inp, memory, src_pad):
        causal = torch.triu(torch.full((inp.shape[1],) * 2, float("-inf"), device=inp.device), 1)
        y = self.transformer.decoder(self._embed(self.tgt_emb, inp), memory, tgt_mask=causal,
                                     memory_key_padding_mask=src_pad)
        return self.out(y)

    def forward(self, src: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
        src_pad = src == 0
        memory = self.transformer.encoder(self._embed(self.src_emb, src), src_key_padding_mask=src_pad)
        if _teacher_forced(self.teacher_forcing):
            return self._decode(_shifted(tgt, self.start), memory, src_pad)
        inp, outs = torch.full_like(tgt[:, :1], self.start), []
        for _ in range(tgt.shape[1]):
            outs.append(self._decode(inp, memory, src_pad)[:, -1:])
            inp = torch.cat([inp, outs[-1].argmax(-1)], 1)
        return torch.cat(outs, 1)


MODELS = {"lstm": Seq2SeqLSTM, "transformer": Seq2SeqTransformer}


def build(model: str, n_in: int, n_out: int, **overrides) -> nn.Module:
    if model not in MODELS:
        raise ValueError(f"unknown seq2seq model {model!r}; expected one of {sorted(MODELS)}")
    return MODELS[model](n_in, n_out, **overrides)
