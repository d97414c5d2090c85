"""Mask training end to end: planted modules are recovered, runs are reproducible and resumable."""
import pytest
import torch
import torch.nn.functional as F

import wmask
from wmask.masks import MaskSet
from wmask.models import FNN
from wmask.tasks import planted
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
