"""Weights trained jointly with a mask (train_jointly, the paper's permuted MNIST §2.4) against
plain torch training, and frozen weights that must not move."""
import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import wmask


def _setup(seed=0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))
    g = torch.Generator().manual_seed(1)
    xs, ys = torch.randn(5, 1, 16, 6, generator=g), torch.randint(0, 3, (5, 1, 16), generator=g)
    return model, (lambda step: (xs[step], ys[step]))


def _loss(out, y):
    return torch.stack([F.cross_entropy(out[i], y[i]) for i in range(len(out))])


def test_with_every_weight_kept_joint_training_is_plain_adam_on_the_weights():
    model, data = _setup()
    reference = copy.deepcopy(model)
    masks = wmask.MaskSet(model, filter=wmask.MaskFilter(biases=True), init=30.0)   # keep probability 1 - 1e-13
    cfg = wmask.MaskTrainConfig(steps=5, lr=1e-2, alpha=0.0, k=4, batch_size=16, clip=1e9, clip_mode="all")
    wmask.train_jointly(masks, data, _loss, cfg, progress=False)
    opt = torch.optim.Adam(reference.parameters(), lr=1e-2)
    for step in range(5):
        x, y = data(step)
        opt.zero_grad()
        F.cross_entropy(reference(x[0]), y[0]).backward()
        opt.step()
    for (n, p), q in zip(model.named_parameters(), reference.parameters()):
        assert torch.allclose(p, q, atol=1e-5), n
    assert not torch.equal(model[0].weight, copy.deepcopy(_setup()[0])[0].weight)   # they did train


def test_frozen_weights_do_not_move_and_the_mask_still_learns():
    model, data = _setup()
    before = copy.deepcopy(model)
    frozen = {"0.weight": torch.rand(8, 6) < 0.5}
    masks = wmask.MaskSet(model, filter=wmask.MaskFilter(biases=True), init=0.2)
    cfg = wmask.MaskTrainConfig(steps=5, lr=1e-1, alpha=1.0, k=4, batch_size=16, clip_mode="all")
    hist = wmask.train_jointly(masks, data, _loss, cfg, frozen=frozen, progress=False)
    w, w0 = model[0].weight.detach(), before[0].weight.detach()
    assert torch.equal(w[frozen["0.weight"]], w0[frozen["0.weight"]])
    assert (w[~frozen["0.weight"]] != w0[~frozen["0.weight"]]).all()
    assert not torch.equal(model[2].weight, before[2].weight)
    assert hist.kept[-1][0] < 1.0                       # alpha pushed some logits below 0


def test_joint_training_errors_are_named():
    model, data = _setup()
    masks = wmask.MaskSet(model)
    cfg = wmask.MaskTrainConfig(steps=1, k=4, batch_size=16, clip_mode="all")
    with pytest.raises(ValueError, match=r"frozen\['nope'\]"):
        wmask.train_jointly(masks, data, _loss, cfg, frozen={"nope": torch.zeros(2, dtype=bool)})
    with pytest.raises(ValueError, match="clip_mode='all'"):
        wmask.train_jointly(masks, data, _loss, wmask.MaskTrainConfig(steps=1, k=4, batch_size=16))


def test_reuse_by_width_is_the_mean_share_of_later_tasks_and_the_claims_verdict():
    """The chapter's width row, against a loop over hand-made rows: tasks 1 on, layers 2 on, the first init only;
    one task below the target makes it count 2/3 and leaves the reuse checks untestable (the first-layer check of T1,
    whose tasks 0 and 1 are at target, is made)."""
    import random

    from wmask.book.report import reuse_by_width
    rng = random.Random(0)
    reuse = [{"task": t, "layer": la, "reused": (rng.random() if t else float("nan")), "kept": 1, "size": 2}
             for t in range(3) for la in (1, 2, 3)]
    tasks = [{"task": t, "accuracy": a, "accuracy after all tasks": 0.1, "kept": 0.1, "reason": "", "settled": True,
              "steps": 10} for t, a in enumerate((0.97, 0.96, 0.5))]
    variant = lambda init, rows: {"new_init": init, "reuse": rows, "tasks": tasks, "curves": []}  # noqa: E731
    other = [{**r, "reused": 1.0} for r in reuse]      # a second init, not in the row
    run = {"seed": 0, "config": {"hidden": [8, 8, 4], "new_inits": [2.0, -1.0], "target": 0.95},
           "variants": [variant(2.0, reuse), variant(-1.0, other)],
           "control": [{"task": 1, "what": "first layer only", "accuracy": 0.96}]}
    row = reuse_by_width({"seeds": [0], "runs": [run], "overrides": {"hidden": [8, 8, 4], "steps": 9}})
    for layer in (2, 3):
        expect = sum(r["reused"] for r in reuse if r["task"] > 0 and r["layer"] == layer) / 2
        assert row[f"layer {layer} reused"] == pytest.approx(expect, abs=1e-3)
    assert "layer 1 reused" not in row and row["hidden"] == "8-8-4" and row["new init"] == 2.0
    assert row["overrides"] == "hidden=[8, 8, 4], steps=9"
    assert row["tasks at target, settled"] == "2/3" and row["verdict"].startswith("untestable: base network below target")
    assert row["little reuse"] == "untestable: base network below target: init 2 T2 0.500 < 0.95"  # that check alone
