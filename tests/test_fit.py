"""wmask.fit: one call from loaders to masks (1 = kept), on a tiny MLP with planted structure."""
import matplotlib
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import wmask
from wmask.fit import Cycle, per_set_loss

matplotlib.use("Agg")


def planted():
    """``logit_1 - logit_0 = 2 * sum(x)`` through ReLU pairs: hidden ``i`` is ``relu(x_i)``, ``i + 8`` is
    ``relu(-x_i)``. Subtask ``a`` feeds inputs 0-3 (the others zero), ``b`` inputs 4-7: each needs only its own
    inputs' weights."""
    model = nn.Sequential(nn.Linear(8, 16, bias=False), nn.ReLU(), nn.Linear(16, 2, bias=False))
    with torch.no_grad():
        eye = torch.eye(8)
        model[0].weight.copy_(torch.cat([eye, -eye]))
        model[2].weight.copy_(torch.stack([-torch.cat([torch.ones(8), -torch.ones(8)]),
                                           torch.cat([torch.ones(8), -torch.ones(8)])]))
    return model


def subtask(lo: int, n: int = 256, seed: int = 0):
    g = torch.Generator().manual_seed(seed + lo)
    x = torch.zeros(n, 8)
    x[:, lo:lo + 4] = torch.randn(n, 4, generator=g)
    return TensorDataset(x, (x.sum(1) > 0).long())


def test_fit_from_dataloaders_keeps_each_subtasks_own_input_weights():
    torch.manual_seed(0)
    model = planted()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    loaders = {"a": DataLoader(subtask(0), batch_size=32, shuffle=True),
               "b": DataLoader(subtask(4), batch_size=32, shuffle=True)}
    result = wmask.fit(model, loaders, loss=F.cross_entropy, steps=200, lr=0.05, alpha=1e-3, impl="eager",
                       seed=0, progress=False)
    assert result.names == ["a", "b"] and result.masks.n_sets == 2
    masks, history = result                                   # unpacks as (masks, history)
    assert len(history.step) >= 20 and history.names == ["a", "b"]
    for name, own, other in (("a", range(0, 4), range(4, 8)), ("b", range(4, 8), range(0, 4))):
        first = result.mask(name)["0.weight"]                 # [16, 8], True = kept
        assert all(first[i, i] and first[i + 8, i] for i in own), name
        assert not any(first[i, i] or first[i + 8, i] for i in other), name
        assert not first[~torch.cat([torch.eye(8), torch.eye(8)]).bool()].any()   # the planted zeros go
        out = result.mask(name)["2.weight"]                   # the output weights of the other inputs' units
        assert out[:, [*own, *(i + 8 for i in own)]].all() and not out[:, [*other, *(i + 8 for i in other)]].any()
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())   # the model is left as it was
    assert set(result.kept()) == {"a", "b"} and result.kept() == pytest.approx({"a": 24 / 160, "b": 24 / 160})


def test_an_empty_iterable_is_a_named_error():
    model = planted()
    with pytest.raises(ValueError, match=r"data\['b'\] gives no batch"):
        wmask.fit(model, {"a": DataLoader(subtask(0), batch_size=8), "b": []}, loss=F.cross_entropy, steps=2,
                  impl="eager", progress=False)
    with pytest.raises(TypeError, match="dict"):
        wmask.fit(model, [DataLoader(subtask(0), batch_size=8)], loss=F.cross_entropy, steps=2, progress=False)


@pytest.mark.filterwarnings("ignore:mask training removed no weight")
def test_a_finite_generator_is_replayed_and_a_loaders_short_last_batch_skipped():
    data = subtask(0, n=40)
    given = []

    def three_batches():
        for i in range(3):
            given.append(i)
            yield data[i * 8:(i + 1) * 8]
    stream = Cycle("g", three_batches())
    xs = [next(stream)[0] for _ in range(7)]
    assert given == [0, 1, 2]                                 # the generator ran once; its batches replay
    assert all(torch.equal(xs[i], xs[i % 3]) for i in range(7))
    seen = []

    def loss(out, y):
        seen.append(out.shape)
        return F.cross_entropy(out, y)
    # a loader of 40 with batch_size 16 gives 16, 16, 8: the short one is skipped, every step sees 16
    result = wmask.fit(planted(), {"gen": (data[i * 16:(i + 1) * 16] for i in range(2)),
                                   "loader": DataLoader(subtask(4, n=40), batch_size=16)},
                       loss=loss, steps=5, k=2, impl="eager", progress=False)
    assert len(result.history.step) == 5 and set(seen) == {torch.Size([16, 2])}
    with pytest.raises(ValueError, match=r"data\['b'\].* same batch_size"):
        wmask.fit(planted(), {"a": DataLoader(subtask(0), batch_size=16), "b": DataLoader(subtask(4), batch_size=8)},
                  loss=F.cross_entropy, steps=2, impl="eager", progress=False)


def test_per_set_loss_is_the_loss_of_each_sets_batch_batched_or_not():
    torch.manual_seed(0)
    out, y = torch.randn(3, 10, 5), torch.randint(0, 5, (3, 10))
    y[1, :4] = -100                                           # ignored targets: each set's own mean
    expected = torch.stack([F.cross_entropy(out[i], y[i]) for i in range(3)])
    torch.testing.assert_close(per_set_loss(F.cross_entropy)(out, y), expected)
    calls = []

    def unbatchable(o, t):                                    # .item(): cannot run under vmap
        calls.append(1)
        return F.cross_entropy(o, t) * (1.0 if o.sum().item() < 1e9 else 0.0)
    torch.testing.assert_close(per_set_loss(unbatchable)(out, y), expected)
    assert len(calls) >= 3                                    # it fell back to one call per set
    with pytest.raises(ValueError, match="one number per batch"):
        per_set_loss(lambda o, t: F.cross_entropy(o, t, reduction="none"))(out, y)


@pytest.mark.filterwarnings("ignore:mask training removed no weight")
def test_history_plots_every_subtasks_curves_and_dict_batches_carry_their_targets():
    model = planted()
    a = [{"input": x, "labels": y} for x, y in DataLoader(subtask(0), batch_size=8)]

    class Keyword(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = model

        def forward(self, input):
            return self.net(input)
    result = wmask.fit(Keyword(), {"a": a, "b": a[::-1]}, loss=F.cross_entropy, steps=6, k=2, log_every=1,
                       alpha={"a": 0.0, "b": 1.0}, impl="eager", progress=False)
    loss_ax, kept_ax = result.history.plot()
    assert [line.get_label() for line in kept_ax.get_lines()] == ["a", "b"]
    assert len(loss_ax.get_lines()[0].get_xdata()) == 6
    with pytest.raises(KeyError, match="subtasks are"):
        result.mask("c")


@pytest.mark.filterwarnings("ignore:mask training removed no weight")
def test_the_api_pages_save_load_materialize_lines(tmp_path):
    model = planted()
    loaders = {"a": DataLoader(subtask(0), batch_size=8), "b": DataLoader(subtask(4), batch_size=8)}
    fit = wmask.fit(model, loaders, loss=F.cross_entropy, steps=8, k=2, lr=0.5, init=0.5, impl="eager",
                    progress=False)
    assert set(fit.history.settled()) == {"a", "b"}
    fit.save(tmp_path / "b.safetensors", "b")
    fit.save(tmp_path / "all.safetensors")
    x = torch.randn(5, 8)
    with wmask.applied(model, fit.mask("b")):
        expected = model(x)
    assert fit.masks.keep_fraction()[1] < 1                          # something was removed: the check can fail
    for mask in (wmask.load_masks(tmp_path / "b.safetensors", model),
                 wmask.load_masks(tmp_path / "all.safetensors", model, set=1)):
        torch.testing.assert_close(wmask.materialize(model, mask)(x), expected, rtol=0, atol=0)
    torch.testing.assert_close(wmask.materialize(model, wmask.load_masks(tmp_path / "all.safetensors", model),
                                                 set=1)(x), expected, rtol=0, atol=0)


def test_the_warm_up_step_is_left_out_of_the_progress_bars_clock():
    import io

    from tqdm import tqdm

    from wmask.train import advance
    bar = tqdm(total=10, file=io.StringIO(), mininterval=0)
    bar.start_t -= 100                                        # as if the first step had compiled for 100 s
    advance(bar, warm_up=True)
    assert bar.n == 1 and bar.format_dict["elapsed"] < 5
    advance(bar, warm_up=False)
    assert bar.n == 2 and bar.format_dict["elapsed"] < 5
    bar.close()


def test_stop_when_settled_ends_the_run_once_every_subtask_has_settled():
    torch.manual_seed(0)
    loaders = {"a": DataLoader(subtask(0), batch_size=32, shuffle=True),
               "b": DataLoader(subtask(4), batch_size=32, shuffle=True)}
    fit = wmask.fit(planted(), loaders, loss=F.cross_entropy, steps=400, lr=0.05, alpha=1e-3, impl="eager",
                    seed=0, stop_when_settled=True, progress=False)
    assert 200 <= fit.history.step[-1] < 399                  # checked from half the steps on, stopped there
    assert all(r["converged"] for r in fit.history.settled().values())
    with pytest.raises(ValueError, match="one per subtask"):
        wmask.fit(planted(), loaders, loss=F.cross_entropy, steps=2, alpha={"a": 1.0}, progress=False)
