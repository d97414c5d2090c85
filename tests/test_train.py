"""Mask training end to end: planted modules are recovered, runs are reproducible and resumable."""
from dataclasses import asdict

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

import wmask
from wmask.masks import MaskSet, split_samples
from wmask.experiments.models import FNN
from wmask.sampling import sampled_uniforms
from wmask.experiments.tasks import planted
from wmask.train import MaskTrainConfig, clip_per_set, train_masks


def test_planted_modules_are_recovered():
    r = planted.run(planted.PlantedConfig(seed=0), progress=False)
    assert min(r["base_accuracy"].values()) > 0.9
    for block in ("iou_a_block_a", "iou_b_block_b"):
        hidden = [v for n, v in r[block].items() if n not in ("0.weight", "4.weight", "total")]
        assert hidden and min(hidden) >= 0.9, r[block]
    assert r["iou_a_b"]["2.weight"] <= 0.1 and r["iou_a_b"]["total"] <= 0.1
    assert min(r["masked_accuracy"].values()) > 0.85


def toy_problem(m=2):
    model = FNN(6, [16], 3).eval()
    g = torch.Generator().manual_seed(3)
    teacher = torch.randn(6, 3, generator=g)

    def data(step):
        gen = torch.Generator().manual_seed(step)
        x = torch.randn(m, 8, 6, generator=gen)
        return x, (x @ teacher).argmax(-1)

    def loss_fn(out, y):
        return F.cross_entropy(out.flatten(0, 1), y.flatten(), reduction="none").view(m, -1).mean(1)

    return model, data, loss_fn


def train_toy(steps, checkpoint=None, fail_at=None, seed=5):
    torch.manual_seed(0)
    model, data, loss_fn = toy_problem()

    def maybe_failing(step):
        if step == fail_at:
            raise KeyboardInterrupt
        return data(step)

    masks = MaskSet(model, n_sets=2, impl="eager", seed=seed)
    cfg = MaskTrainConfig(steps=steps, lr=0.05, alpha=1e-2, k=2, batch_size=8, checkpoint_every=4, log_every=1)
    hist = train_masks(masks, maybe_failing, loss_fn, cfg, checkpoint=checkpoint, progress=False)
    return masks, hist


def test_same_seed_gives_identical_masks():
    a, _ = train_toy(12)
    b, _ = train_toy(12)
    c, _ = train_toy(12, seed=6)
    assert all(torch.equal(a.logits[n], b.logits[n]) for n in a.names)
    assert not all(torch.equal(a.logits[n], c.logits[n]) for n in a.names)


def test_interrupted_run_resumes_to_the_same_result(tmp_path):
    ck = tmp_path / "ck.pt"
    full, hist_full = train_toy(12)
    with pytest.raises(KeyboardInterrupt):
        train_toy(12, checkpoint=ck, fail_at=9)
    assert ck.exists()
    resumed, hist = train_toy(12, checkpoint=ck)
    assert all(torch.equal(full.logits[n], resumed.logits[n]) for n in full.names)
    assert hist.step == hist_full.step and not ck.exists()
    with pytest.raises(KeyboardInterrupt):
        train_toy(12, checkpoint=ck, fail_at=9)
    model, data, loss_fn = toy_problem()
    with pytest.raises(ValueError, match="different configuration"):
        train_masks(MaskSet(model, n_sets=2, impl="eager"), data, loss_fn,
                    MaskTrainConfig(steps=13, k=2, batch_size=8, checkpoint_every=4), checkpoint=ck, progress=False)


def test_regulariser_removes_unused_weights():
    """Weights the loss cannot see (a dead input) drift to removed; the loss must return one value per set."""
    model, data, loss_fn = toy_problem()
    with torch.no_grad():
        model[0].weight[:, 5] = 0.0  # input 5 unused: zero weight, zero task gradient
    masks = MaskSet(model, n_sets=2, impl="eager")
    train_masks(masks, data, loss_fn, MaskTrainConfig(steps=300, lr=0.02, alpha=1e-3, k=2, batch_size=8),
                progress=False)
    assert not masks.binary()["0.weight"][:, :, 5].any()
    with pytest.raises(ValueError, match="one loss per mask set"):
        train_masks(masks, data, lambda o, y: loss_fn(o, y).sum(), MaskTrainConfig(steps=1, k=2, batch_size=8),
                    progress=False)


def test_clip_per_set_equals_clip_grad_norm_on_each_set():
    grads = [torch.randn(3, 4, 5) * 3, torch.randn(3, 7) * 0.01]
    expected = []
    for i in range(3):
        ps = [torch.nn.Parameter(torch.zeros_like(g[i])) for g in grads]
        for p, g in zip(ps, grads):
            p.grad = g[i].clone()
        torch.nn.utils.clip_grad_norm_(ps, 1.0)
        expected.append([p.grad for p in ps])
    clip_per_set(grads, 1.0)
    for i in range(3):
        for j in range(2):
            assert torch.allclose(grads[j][i], expected[i][j], atol=1e-7)


def test_base_trainer_learns():
    model, data, _ = toy_problem(m=1)
    evals = wmask.train_model(model, lambda s: tuple(t[0] for t in data(s)),
                              lambda m, x, y: F.cross_entropy(m(x), y),
                              wmask.BaseTrainConfig(steps=300, eval_every=100),
                              eval_fn=lambda m: {"loss": F.cross_entropy(m(data(10_000)[0][0]),
                                                                         data(10_000)[1][0]).item()},
                              progress=False)
    assert [e["step"] for e in evals] == [100, 200, 300] and evals[-1]["loss"] < evals[0]["loss"]


def test_base_training_stops_at_the_first_evaluation_that_meets_the_condition():
    model, data, _ = toy_problem(m=1)
    seen = []
    evals = wmask.train_model(model, lambda s: (seen.append(s), tuple(t[0] for t in data(s)))[1],
                              lambda m, x, y: F.cross_entropy(m(x), y), wmask.BaseTrainConfig(steps=500, eval_every=100),
                              eval_fn=lambda m: {"n": len(seen)}, stop_when=lambda e: e["n"] >= 200, progress=False)
    assert [e["step"] for e in evals] == [100, 200] and len(seen) == 200


def test_arithmetic_base_training_stops_at_target(tmp_path):
    from wmask.experiments.store import Store
    from wmask.experiments.tasks.addmul import AddMul, _fnn
    from wmask.experiments.tasks.arithmetic import train_base
    net = _fnn([32, 32], 3000, 10, until_settled=True)
    net.target = {"+": 0.0, "×": 0.0}                       # met at the first check
    _, info = train_base(AddMul(), net, 0, Store(tmp_path), "t", "cpu", progress=False)
    assert info["steps"] == 1000 and set(info["accuracy"]) == {"+", "×"}


def authors_clipping_reference(model, data, loss_fn, steps, lr, alpha, k, b, clip, seed, m=2):
    """The authors' loop, one mask at a time: frozen weights keep ``requires_grad`` and their gradients are never
    zeroed; ``clip_grad_norm_`` runs over the logits and every model parameter. Same uniforms as the MaskSet."""
    ref = MaskSet(model, n_sets=m, impl="eager", seed=seed)   # only for its names, order and seed stream
    finals = []
    for i in range(m):
        net = type(model)(6, [16], 3)
        net.load_state_dict(model.state_dict())
        params = dict(net.named_parameters())
        logits = {n: torch.full_like(params[n], 2.0, requires_grad=True) for n in ref.names}
        opt = torch.optim.Adam(list(logits.values()), lr=lr)
        gen = torch.Generator().manual_seed(seed)
        for step in range(steps):
            seeds = torch.randint(0, 2**62, (len(ref.names),), generator=gen)
            x, y = data(step)
            xs = split_samples(x, k, 0)[i * k:(i + 1) * k]
            outs = []
            for s in range(k):
                p = dict(params)
                for j, n in enumerate(ref.names):
                    full = torch.stack([logits[n].detach()] * m)
                    v = sampled_uniforms(full, seeds[j], k, ref.order[n])[i * k + s]
                    soft = torch.sigmoid(logits[n] + torch.log(1 - v) - torch.log(v))
                    p[n] = params[n] * ((soft > 0.5).float() - soft.detach() + soft)
                outs.append(functional_call(net, p, (xs[s],)))
            out = torch.cat(outs)[None].expand(m, -1, -1)
            loss = loss_fn(out, y)[i] + alpha * sum(l.sum() for l in logits.values()) / b
            opt.zero_grad()                      # zeroes the logits only: the weights' grads accumulate
            loss.backward()
            torch.nn.utils.clip_grad_norm_(list(logits.values()) + list(net.parameters()), clip)
            opt.step()
        finals.append(logits)
    return finals


def test_authors_clipping_mode_matches_a_reference_loop():
    model, data, loss_fn = toy_problem()
    for p in model.parameters():
        p.data.mul_(3.0)                          # large weights: large weight gradients, so clipping acts
    kw = dict(steps=6, lr=0.05, alpha=1e-2, k=2, b=8, clip=0.05, seed=7)
    expected = authors_clipping_reference(model, data, loss_fn, **kw)
    masks = MaskSet(model, n_sets=2, impl="eager", seed=kw["seed"])
    cfg = MaskTrainConfig(steps=kw["steps"], lr=kw["lr"], alpha=kw["alpha"], k=kw["k"], batch_size=kw["b"],
                          clip=kw["clip"], clip_mode="all")
    train_masks(masks, data, loss_fn, cfg, progress=False)
    plain = MaskSet(model, n_sets=2, impl="eager", seed=kw["seed"])
    train_masks(plain, data, loss_fn, MaskTrainConfig(**{**asdict(cfg), "clip_mode": "masks"}), progress=False)
    for i in range(2):
        for n in masks.names:
            assert torch.allclose(masks.logits[n][i], expected[i][n], atol=1e-5), n
    assert any(not torch.allclose(plain.logits[n], masks.logits[n], atol=1e-4) for n in masks.names)


def test_per_set_alpha():
    model, data, loss_fn = toy_problem()
    with pytest.raises(ValueError, match="alphas must be 2 finite values"):
        train_masks(MaskSet(model, n_sets=2, impl="eager"), data, loss_fn,
                    MaskTrainConfig(steps=1, k=2, batch_size=8), progress=False, alphas=(0.1, 0.2, 0.3))
    masks = MaskSet(model, n_sets=2, impl="eager", seed=1)
    train_masks(masks, data, loss_fn, MaskTrainConfig(steps=200, lr=0.05, k=2, batch_size=8), progress=False,
                alphas=(0.0, 0.5))
    kept = masks.keep_fraction()
    assert kept[1] < kept[0] - 0.2, kept


@pytest.mark.parametrize("clip_mode", ["masks", "all"])
def test_sets_run_in_passes_train_the_same_masks(clip_mode):
    """A step's sets in passes of 2 (gradients accumulated before the one update) give what one pass over all five
    gives: same seeds per set, same uniforms (offset by the set), same gradients, clipping and history; with a
    forward that calls the model twice a step (double addition's FNN), the n-th call of every pass reuses the seeds
    of the first pass's n-th call."""
    torch.manual_seed(0)
    model, data, loss_fn = toy_problem(m=5)
    w = torch.linspace(0.5, 1.5, 5)

    def weighted(out, y):                       # a loss that closes over per-set tensors, like the tasks' losses
        return loss_fn(out, y) * w

    def twice(call, x):
        return 0.5 * (call(x) + call(x.flip(-1)))

    cfg = MaskTrainConfig(steps=6, batch_size=8, k=2, lr=0.05, clip_mode=clip_mode, log_every=1)
    runs = []
    for per_pass in (5, 2, 1):
        masks = MaskSet(model, n_sets=5, seed=11, impl="eager")
        hist = train_masks(masks, data, weighted, cfg, progress=False, forward=twice, sets_per_pass=per_pass,
                           alphas=[1e-4, 1e-3, 1e-2, 1e-4, 0.0])
        runs.append(({n: l.detach().clone() for n, l in masks.logits.items()}, hist))
    for logits, hist in runs[1:]:
        for n, l in logits.items():
            torch.testing.assert_close(l, runs[0][0][n], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(torch.tensor(hist.loss), torch.tensor(runs[0][1].loss), rtol=1e-5, atol=1e-6)
    assert not torch.equal(runs[0][0]["0.weight"][0], runs[0][0]["0.weight"][2])   # the sets did differ


def test_passes_share_the_models_random_draws():
    """A model that draws from torch's random state in its forward (a teacher-forcing coin) draws, in every pass,
    what one pass over all sets draws: passes do not change the masks."""
    model, data, loss_fn = toy_problem(m=4)

    class Coin(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = model

        def forward(self, x):
            return self.net(x) * (1.0 if bool(torch.rand(()) < 0.5) else -1.0)

    runs = []
    for per_pass in (4, 1):
        torch.manual_seed(0)
        masks = MaskSet(Coin().eval(), n_sets=4, seed=3, impl="eager")
        train_masks(masks, data, loss_fn, MaskTrainConfig(steps=8, batch_size=8, k=2, lr=0.05), progress=False,
                    sets_per_pass=per_pass)
        runs.append({n: l.detach().clone() for n, l in masks.logits.items()})
    for n in runs[0]:
        torch.testing.assert_close(runs[1][n], runs[0][n], rtol=1e-5, atol=1e-6)


def test_memory_budget_sets_passes():
    from wmask import memory
    assert memory.passes(10, 4) == [(0, 3), (3, 7), (7, 10)] and memory.passes(3, 8) == [(0, 3)]
    assert memory.parse_bytes("4G") == 4 * 2**30 and memory.parse_bytes("512MiB") == 512 * 2**20
    with pytest.raises(ValueError, match="WMASK_MASK_MEMORY must be a size like '4G'"):
        memory.parse_bytes("lots")
    masks = MaskSet(FNN(6, [16], 3), n_sets=10, impl="eager")
    per_set = memory.BYTES_PER_SAMPLED_WEIGHT * 4 * (6 * 16 + 16 * 3)
    assert memory.sets_per_pass(masks, 4, 3 * per_set) == 3
    assert memory.sets_per_pass(masks, 4, 1) == 1 and memory.sets_per_pass(masks, 4, 100 * per_set) == 10
    with pytest.raises(ValueError, match="sets_per_pass must be >= 1"):
        train_masks(masks, lambda s: None, None, MaskTrainConfig(steps=1), progress=False, sets_per_pass=0)


def test_saved_bytes_counts_what_autograd_keeps():
    """Brute force: exp saves its result; a product saves the factor the other's gradient needs (both when both
    need one; a storage once); tensors that live anyway (``exclude``) are not counted."""
    from wmask import memory
    x, y = torch.randn(64, 32, requires_grad=True), torch.randn(64, 32, requires_grad=True)
    z = torch.randn(64, 32)
    one = 64 * 32 * 4
    assert memory.saved_bytes(lambda: x.exp().sum(), exclude=[x]) == one           # exp's result
    assert memory.saved_bytes(lambda: x.exp().exp().sum(), exclude=[x]) == 2 * one
    assert memory.saved_bytes(lambda: (x * z).sum()) == one                        # z only, for x's gradient
    assert memory.saved_bytes(lambda: (x * y).sum()) == 2 * one
    assert memory.saved_bytes(lambda: (x * y).sum(), exclude=[x, y]) == 0
    assert memory.saved_bytes(lambda: (x * x).sum()) == one                        # one storage, once


def test_default_passes_count_the_activations_and_change_no_draw(monkeypatch):
    """A model with few weights and large activations: counted by its weights alone all four sets fit the budget,
    counted with one set's measured activations only one does, so a step runs in four passes; the probe that
    measured them draws nothing (a model drawing a coin each forward trains the masks a one-pass run trains)."""
    from wmask import memory
    monkeypatch.setenv("WMASK_MASK_MEMORY", "2M")
    m, b = 4, 512

    class Coin(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(4, 256), nn.ReLU(), nn.Linear(256, 2))

        def forward(self, x):
            return self.net(x) * (1.0 if bool(torch.rand(()) < 0.5) else -1.0)

    def data(step):
        x = torch.randn(m, b, 4, generator=torch.Generator().manual_seed(step))
        return x, (x[..., 0] > 0).long()

    def loss_fn(out, y):
        return F.cross_entropy(out.flatten(0, 1), y.flatten(), reduction="none").view(m, -1).mean(1)

    chosen = []
    spy = memory.sets_per_pass
    monkeypatch.setattr(memory, "sets_per_pass", lambda *a, **kw: chosen.append((spy(*a, **kw), kw)) or chosen[-1][0])
    torch.manual_seed(0)
    model = Coin().eval()
    cfg = MaskTrainConfig(steps=3, batch_size=b, k=2, lr=0.05)
    runs = []
    for per_pass in (None, m):
        torch.manual_seed(1)
        masks = MaskSet(model, n_sets=m, seed=3, impl="eager")
        train_masks(masks, data, loss_fn, cfg, progress=False, sets_per_pass=per_pass)
        runs.append({n: l.detach().clone() for n, l in masks.logits.items()})
    (per_pass, kw), = chosen
    assert spy(masks, 2, 2 * 2**20) == m            # the weights alone: every set fits
    assert per_pass == 1 and kw["saved_per_set"] >= b // 2 * 256 * 4   # a sample's hidden layer at least
    for n in runs[0]:
        torch.testing.assert_close(runs[0][n], runs[1][n], rtol=1e-5, atol=1e-6)
