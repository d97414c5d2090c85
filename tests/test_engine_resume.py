"""Resuming from a mid-stage checkpoint gives bit-identical results, also when the model draws from torch's global
RNG (dropout in base training, teacher forcing in a seq2seq LSTM's mask training)."""
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import wmask
from wmask.experiments import seq2seq
from wmask.masks import MaskSet
from wmask.train import BaseTrainConfig, MaskTrainConfig, train_masks, train_model
from wmask.utils import read_torch


class Interrupted(Exception):
    pass


def fail_once_at(data, step_to_fail):
    """``data`` that raises at ``step_to_fail`` the first time it is asked for it."""
    failed = []

    def fn(step):
        if step == step_to_fail and not failed:
            failed.append(step)
            raise Interrupted(step)
        return data(step)
    return fn


def dropout_net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Dropout(0.5), nn.Linear(32, 3))


def base_data(step):
    g = torch.Generator().manual_seed(step)
    x = torch.randn(16, 6, generator=g)
    return x, x[:, :3].argmax(-1)


def test_base_training_resumes_bit_for_bit_with_dropout(tmp_path):
    cfg = BaseTrainConfig(steps=12, lr=1e-2, eval_every=0, checkpoint_every=3)
    loss = lambda m, x, y: F.cross_entropy(m(x), y)  # noqa: E731
    full = dropout_net()
    train_model(full, base_data, loss, cfg, progress=False)

    ck = tmp_path / "base.ckpt"
    data = fail_once_at(base_data, 8)
    with pytest.raises(Interrupted):
        train_model(dropout_net(), data, loss, cfg, progress=False, checkpoint=ck)
    assert ck.exists()
    resumed = dropout_net()     # reseeds: the global RNG is not where the checkpoint left it
    train_model(resumed, data, loss, cfg, progress=False, checkpoint=ck)
    assert not ck.exists()
    for (n, a), b in zip(full.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), n


def lstm_masks():
    torch.manual_seed(0)
    net = seq2seq.Seq2SeqLSTM(6, 5, hidden=8, layers=2, emb=4, dropout=0.5, teacher_forcing=0.5).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)   # the LSTM runs its samples in a loop, and says so
        return MaskSet(net, n_sets=2, impl="eager", seed=1)


def seq_data(step):
    g = torch.Generator().manual_seed(step)
    return (torch.randint(1, 6, (2, 4, 5), generator=g), torch.randint(0, 5, (2, 4, 3), generator=g)), \
        torch.randint(0, 5, (2, 4, 3), generator=g)


def test_seq2seq_mask_training_resumes_bit_for_bit_with_teacher_forcing(tmp_path):
    cfg = MaskTrainConfig(steps=10, lr=0.05, alpha=1e-2, k=2, batch_size=4, checkpoint_every=2, log_every=1)
    full = lstm_masks()
    hist_full = train_masks(full, seq_data, seq2seq.seq_loss, cfg, progress=False)

    ck = tmp_path / "masks.ckpt"
    data = fail_once_at(seq_data, 7)
    with pytest.raises(Interrupted):
        train_masks(lstm_masks(), data, seq2seq.seq_loss, cfg, progress=False, checkpoint=ck)
    assert ck.exists()
    resumed = lstm_masks()
    hist = train_masks(resumed, data, seq2seq.seq_loss, cfg, progress=False, checkpoint=ck)
    assert not ck.exists()
    for n in full.names:
        assert torch.equal(full.logits[n], resumed.logits[n]), n
    assert hist.loss == hist_full.loss


def test_resume_restores_the_global_rng_state_saved_with_the_checkpoint(tmp_path):
    """The checkpoint holds torch's RNG state (CPU; CUDA too when it is in use)."""
    cfg = BaseTrainConfig(steps=6, eval_every=0, checkpoint_every=2)
    with pytest.raises(Interrupted):
        train_model(dropout_net(), fail_once_at(base_data, 3), lambda m, x, y: F.cross_entropy(m(x), y), cfg,
                    progress=False, checkpoint=tmp_path / "ck")
    state = read_torch(tmp_path / "ck")     # the checkpoint, checked against its sha256
    assert isinstance(state["rng"]["cpu"], torch.Tensor)
    assert ("cuda" in state["rng"]) == (torch.cuda.is_available() and torch.cuda.is_initialized())
    assert wmask.train_model is train_model


@pytest.mark.parametrize("every", [4, 3])
def test_base_loss_curve_is_whole_after_a_resume(tmp_path, monkeypatch, every):
    """``loss_curve``: the mean loss of every window of steps (here 2; the last window shorter), labelled with its
    last step; an interrupted and resumed run gives the uninterrupted run's curve (kept in the checkpoint), also
    when the checkpoint falls inside a window (every 3 steps: the resume at step 9 is mid-window 8-9)."""
    import wmask.train
    monkeypatch.setattr(wmask.train, "LOSS_WINDOW", 2)
    cfg = BaseTrainConfig(steps=11, lr=1e-2, eval_every=0, checkpoint_every=every)
    seen = []

    def loss(m, x, y):
        value = F.cross_entropy(m(x), y)
        seen.append(value.item())
        return value
    full = []
    train_model(dropout_net(), base_data, loss, cfg, progress=False, loss_curve=full)
    assert [s for s, _ in full] == [1, 3, 5, 7, 9, 10]
    expect = [sum(seen[i:i + 2]) / len(seen[i:i + 2]) for i in range(0, 11, 2)]
    assert [v for _, v in full] == pytest.approx(expect, rel=1e-6)
    ck, data, resumed = tmp_path / "base.ckpt", fail_once_at(base_data, 9), []
    with pytest.raises(Interrupted):
        train_model(dropout_net(), data, loss, cfg, progress=False, checkpoint=ck, loss_curve=resumed)
    resumed = []    # a new process: the curve comes back from the checkpoint (step 8)
    train_model(dropout_net(), data, loss, cfg, progress=False, checkpoint=ck, loss_curve=resumed)
    assert resumed == full
