"""``MaskSet(mode="auto")`` on a model with recurrent layers: timed once, the faster of vmap and loop kept, the same
function and random state either way, the choice kept across a resume."""
import torch

from wmask import memory
from wmask.experiments import seq2seq
from wmask.masks import MaskSet
from wmask.experiments.models import FNN


def lstm(tf=0.5):
    torch.manual_seed(0)
    return seq2seq.Seq2SeqLSTM(6, 5, hidden=8, layers=2, emb=4, teacher_forcing=tf).eval()


def batch():
    g = torch.Generator().manual_seed(2)
    src = torch.randint(1, 6, (2, 4, 5), generator=g)
    src[:, :, 3:] *= torch.randint(0, 2, (2, 4, 1), generator=g)
    return src, torch.randint(0, 5, (2, 4, 3), generator=g)


def run(ms, seed=7):
    """Output, logit gradients and the global random state after one training forward from a fixed state."""
    g = torch.Generator().manual_seed(1)
    for t in ms.logits.values():
        t.data.normal_(generator=g)
    torch.manual_seed(seed)
    out = ms.sample_forward(batch(), k=2)
    return out, torch.autograd.grad(out.square().sum(), list(ms.logits.values())), torch.get_rng_state()


def test_models_without_recurrent_layers_run_vmap():
    assert MaskSet(FNN(3, [4], 2), mode="auto").mode == "vmap"


def test_auto_times_both_modes_once_and_equals_the_mode_it_keeps():
    net = lstm()
    auto = MaskSet(net, n_sets=2, impl="eager", seed=3, mode="auto")
    assert auto.mode == "auto"
    out, grads, rng = run(auto)
    assert auto.mode in ("vmap", "loop") and set(auto.mode_seconds) == {"vmap", "loop"}
    assert all(t > 0 for t in auto.mode_seconds.values())
    want, want_grads, want_rng = run(MaskSet(net, n_sets=2, impl="eager", seed=3, mode="vmap"))
    torch.testing.assert_close(out, want, rtol=1e-5, atol=1e-6)
    for u, v in zip(grads, want_grads):
        torch.testing.assert_close(u, v, rtol=1e-5, atol=1e-5)
    assert torch.equal(rng, want_rng)          # the timing probe drew nothing from torch's random state


def test_the_loop_auto_keeps_shares_the_models_random_draws_as_vmap_does():
    """Teacher forcing 0.5 draws one coin a call: chosen by auto, the loop gives every sample the draw vmap gives
    all of them, for several random states, and leaves torch's random state where vmap leaves it."""
    net = lstm(tf=0.5)
    for seed in range(4):
        auto = MaskSet(net, n_sets=2, impl="eager", seed=3, mode="auto")
        auto.mode = "loop"                      # as if the timing had found the loop faster
        out, grads, rng = run(auto, seed)
        want, want_grads, want_rng = run(MaskSet(net, n_sets=2, impl="eager", seed=3, mode="vmap"), seed)
        torch.testing.assert_close(out, want, rtol=1e-5, atol=1e-6)
        for u, v in zip(grads, want_grads):
            torch.testing.assert_close(u, v, rtol=1e-5, atol=1e-5)
        assert torch.equal(rng, want_rng)


def test_the_choice_is_saved_and_restored_with_the_state():
    net = lstm()
    auto = MaskSet(net, n_sets=2, impl="eager", seed=3, mode="auto")
    run(auto)
    state = auto.state_dict()
    assert state["mode"] == auto.mode
    resumed = MaskSet(net, n_sets=2, impl="eager", seed=3, mode="auto")
    resumed.load_state_dict(state)
    assert resumed.mode == auto.mode and resumed.mode_seconds == {}
    assert "mode" not in MaskSet(net, n_sets=2, impl="eager", seed=3, mode="loop").state_dict()


def test_a_memory_measurement_neither_triggers_nor_sees_the_timing():
    """wmask.memory measures one set's forward before training: no timing then; and a timing inside any other
    saved-tensor measurement adds none of its own tensors to it."""
    net = lstm(tf=1.0)
    src, tgt = batch()
    ms = MaskSet(net, n_sets=2, impl="eager", seed=3, mode="auto")
    memory.measured_sets_per_pass(ms, lambda: ms.sample_forward((src[:1], tgt[:1]), k=2, sets=(0, 1)), 2)
    assert ms.mode == "auto" and ms.mode_seconds == {}
    auto = MaskSet(net, n_sets=2, impl="eager", seed=3, mode="auto")
    first = memory.saved_bytes(lambda: auto.sample_forward((src[:1], tgt[:1]), k=2, sets=(0, 1)),
                               exclude=list(auto.logits.values()))
    assert set(auto.mode_seconds) == {"vmap", "loop"}          # the timing ran inside the measurement
    plain = MaskSet(net, n_sets=2, impl="eager", seed=3, mode=auto.mode)
    assert first == memory.saved_bytes(lambda: plain.sample_forward((src[:1], tgt[:1]), k=2, sets=(0, 1)),
                                       exclude=list(plain.logits.values()))
