"""Every metric against brute-force Python-set arithmetic, on random, empty and full masks."""
import pytest
import torch

from wmask import metrics


def as_set(m: torch.Tensor) -> set:
    return {tuple(i) for i in m.nonzero().tolist()}


def ratio(a, b):
    return a / b if b else 0.0


def random_masks(shape, density, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=g) < density


CASES = [(0.5, 0.5), (0.1, 0.9), (0.0, 0.7), (1.0, 0.3), (0.0, 0.0), (1.0, 1.0)]


@pytest.mark.parametrize("da,db", CASES)
def test_pairwise_match_brute_force(da, db):
    a, b = random_masks((7, 9), da, 1), random_masks((7, 9), db, 2)
    sa, sb = as_set(a), as_set(b)
    assert metrics.iou(a, b) == pytest.approx(ratio(len(sa & sb), len(sa | sb)))
    assert metrics.iomin(a, b) == pytest.approx(ratio(len(sa & sb), min(len(sa), len(sb))))
    assert metrics.remaining_fraction(a) == pytest.approx(len(sa) / a.numel())
    assert metrics.shared_fraction([a, b], 0) == pytest.approx(ratio(len(sa & sb), len(sa)))


def test_dict_total_uses_summed_counts():
    a = {"x": random_masks((5, 5), 0.3, 3), "y": random_masks((4,), 0.8, 4)}
    b = {"x": random_masks((5, 5), 0.6, 5), "y": random_masks((4,), 0.2, 6)}
    out = metrics.iou(a, b)
    inter = sum(len(as_set(a[n]) & as_set(b[n])) for n in a)
    union = sum(len(as_set(a[n]) | as_set(b[n])) for n in a)
    assert out["total"] == pytest.approx(ratio(inter, union))
    assert out["x"] == pytest.approx(metrics.iou(a["x"], b["x"]))
    small = sum(min(len(as_set(a[n])), len(as_set(b[n]))) for n in a)
    assert metrics.iomin(a, b)["total"] == pytest.approx(ratio(inter, small))


def test_shared_fraction_three_masks():
    ms = [random_masks((6, 6), d, s) for d, s in [(0.4, 7), (0.5, 8), (0.3, 9)]]
    sets = [as_set(m) for m in ms]
    for i in range(3):
        others = set().union(*(s for j, s in enumerate(sets) if j != i))
        assert metrics.shared_fraction(ms, i) == pytest.approx(ratio(len(sets[i] & others), len(sets[i])))


def test_empty_masks_are_defined_and_zero():
    e = torch.zeros(3, 3, dtype=torch.bool)
    f = torch.ones(3, 3, dtype=torch.bool)
    assert metrics.iou(e, e) == 0.0 and metrics.iomin(e, f) == 0.0 and metrics.shared_fraction([e, f], 0) == 0.0
    assert metrics.iou(f, f) == 1.0 and metrics.iomin(f, f) == 1.0


def test_row_removed_percent_brute_force():
    base, other = random_masks((6, 10), 0.7, 10), random_masks((6, 10), 0.5, 11)
    base[2] = False  # an empty row gives 0
    got = metrics.row_removed_percent(base, other)
    for r in range(6):
        kept = {c for c in range(10) if base[r, c]}
        removed = {c for c in kept if not other[r, c]}
        assert got[r].item() == pytest.approx(100 * ratio(len(removed), len(kept)))


def test_confusion_relative_drop_and_worst_ratio():
    target = torch.tensor([0, 0, 1, 1, 1, 2])
    pred = torch.tensor([0, 1, 1, 1, 2, 2])
    conf = metrics.confusion(pred, target, 4)
    assert conf[0].tolist() == [0.5, 0.5, 0, 0] and conf[1, 1].item() == pytest.approx(2 / 3)
    assert conf[3].sum() == 0  # absent class: zero row, no NaN
    ref = metrics.confusion(target, target, 4)
    drop = metrics.relative_drop(ref, conf)
    assert drop[:3].tolist() == pytest.approx([50.0, 100 / 3, 0.0]) and drop[3] == 0
    drops = torch.tensor([[40.0, 2.0, 4.0], [1.0, 10.0, 0.5], [3.0, 3.0, 0.0]])
    assert metrics.worst_other_ratio(drops).tolist() == pytest.approx([10.0, 10.0, 0.0])


def test_bad_input_is_named():
    with pytest.raises(TypeError, match="bool"):
        metrics.iou(torch.zeros(3), torch.zeros(3))
    with pytest.raises(ValueError, match="shape"):
        metrics.iou(torch.zeros(3, dtype=torch.bool), torch.zeros(4, dtype=torch.bool))
    with pytest.raises(ValueError, match="labels outside"):
        metrics.confusion(torch.tensor([5]), torch.tensor([0]), 3)
