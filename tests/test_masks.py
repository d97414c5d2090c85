"""Mask sets over unported models: selection, batched vs separate forwards, mask operations and files."""
import warnings

import pytest
import torch
from torch import nn
from torch.func import functional_call

import wmask
from wmask.masks import MaskFilter, MaskSet, apply_masks, split_samples
from wmask.experiments.models import FNN
from wmask.sampling import sampled_uniforms


class Mixed(nn.Module):
    """One of every layer kind the filter must classify."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(10, 8)
        self.lstm = nn.LSTM(8, 8, batch_first=True)
        self.norm = nn.LayerNorm(8)
        self.conv = nn.Conv1d(8, 8, 3, padding=1)
        self.attn = nn.MultiheadAttention(8, 2, batch_first=True)
        self.out = nn.Linear(8, 3)

    def forward(self, x):
        h, _ = self.lstm(self.emb(x))
        h = self.norm(h)
        h = self.conv(h.transpose(1, 2)).transpose(1, 2)
        h, _ = self.attn(h, h, h)
        return self.out(h.mean(1))


class Conv(nn.Module):
    def __init__(self):
        super().__init__()
        self.c = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.l = nn.Linear(4, 3)

    def forward(self, x):
        return self.l(torch.relu(self.bn(self.c(x))).mean((2, 3)))


def test_default_filter_follows_the_paper():
    names = MaskFilter().select(Mixed())
    assert names == ["lstm.weight_ih_l0", "lstm.weight_hh_l0", "conv.weight", "attn.in_proj_weight",
                     "attn.out_proj.weight", "out.weight"]
    with_b = MaskFilter(biases=True, norms=True).select(Mixed())
    assert "lstm.bias_ih_l0" in with_b and "out.bias" in with_b and "norm.weight" in with_b
    assert not any(n.startswith("emb") for n in with_b)
    picked = MaskFilter(include=("emb.weight",), exclude=("lstm.*",)).select(Mixed())
    assert "emb.weight" in picked and not any(n.startswith("lstm") for n in picked)
    with pytest.raises(ValueError, match="'nope.weight' matches no parameter"):
        MaskFilter(exclude=("nope.weight",)).select(Mixed())


def per_sample_reference(model, masks, x, k, names):
    """Each sample's masks applied in its own plain forward pass, with the paper's straight-through formula."""
    logits = {n: masks.logits[n].detach().clone().requires_grad_() for n in names}
    outs = []
    seeds = torch.randint(0, 2**62, (len(names),), generator=masks.generator)
    xs = split_samples(x, k, 0)
    for s in range(masks.n_sets * k):
        i = s // k
        params = {}
        for j, n in enumerate(names):
            v = sampled_uniforms(masks.logits[n].detach(), seeds[j], k, masks.order[n])[s]
            soft = torch.sigmoid(logits[n][i] + torch.log(1 - v) - torch.log(v))
            params[n] = masks.weights[n] * ((soft > 0.5).float() - soft.detach() + soft)
        outs.append(functional_call(model, params, (xs[s],)))
    return torch.stack(outs), logits


@pytest.mark.parametrize("make,shape", [(lambda: FNN(6, [16, 12], 4), (8, 6)), (Conv, (8, 3, 5, 5)),
                                        (Mixed, None)])
def test_batched_equals_separate_forwards(make, shape):
    model = make().eval()
    m, k = 3, 2
    x = torch.randint(0, 10, (m, 8, 5)) if shape is None else torch.randn(m, *shape)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the LSTM runs its samples in a loop, and says so
        masks = MaskSet(model, n_sets=m, impl="eager", filter=MaskFilter(biases=True), seed=1)
    with torch.no_grad():  # scramble the logits so masks differ per set and element
        for l in masks.logits.values():
            l.copy_(torch.randn_like(l) * 2)
    state = masks.generator.get_state()
    out = masks.sample_forward(x, k=k)
    grad_out = torch.randn_like(out)
    (out * grad_out).sum().backward()
    masks.generator.set_state(state)
    ref, ref_logits = per_sample_reference(model, masks, x, k, masks.names)
    ref = ref.view(m, k, *ref.shape[1:]).flatten(1, 2)
    assert torch.allclose(out, ref, atol=1e-5, rtol=1e-4)
    (ref * grad_out).sum().backward()
    for n in masks.names:
        assert torch.allclose(masks.logits[n].grad, ref_logits[n].grad, atol=1e-5, rtol=1e-3), n


def test_all_ones_mask_reproduces_the_model_and_zero_mask_zeroes_a_layer():
    model = FNN(6, [16, 12], 4).eval()
    x = torch.randn(5, 6)
    masks = MaskSet(model, n_sets=1, impl="eager")
    ones = wmask.full_masks(model)
    out = masks.eval_forward(x[None], {n: m[None] for n, m in ones.items()})[0]
    assert torch.allclose(out, model(x), rtol=1e-6, atol=1e-7)  # same function; BLAS batching may differ in the last bit
    assert torch.equal(wmask.materialize(model, ones)(x), model(x))
    zero = dict(ones, **{"2.weight": torch.zeros(12, 16, dtype=torch.bool)})
    h = torch.relu(model[0](x))
    expected = model[4](torch.relu(model[2].bias.expand(5, 12)))  # layer 2 with zero weights: bias only
    assert torch.allclose(masks.eval_forward(x[None], {n: m[None] for n, m in zero.items()})[0], expected, atol=1e-6)
    assert torch.allclose(wmask.materialize(model, zero)(x), expected, atol=1e-6)
    assert h.shape == (5, 16)


def test_eval_forward_uses_logit_threshold_and_materialize_agrees():
    model = FNN(4, [8], 2).eval()
    masks = MaskSet(model, n_sets=2, impl="eager")
    with torch.no_grad():
        for l in masks.logits.values():
            l.copy_(torch.randn_like(l))
    x = torch.randn(2, 3, 4)
    out = masks.eval_forward(x)
    for i in range(2):
        keep = masks.binary(i)
        assert all(torch.equal(keep[n], masks.logits[n][i] > 0) for n in keep)
        assert torch.allclose(out[i], wmask.materialize(model, keep)(x[i]), atol=1e-6)


def test_mask_operations():
    a = {"w": torch.tensor([True, False, True]), "v": torch.tensor([[True, True]])}
    b = {"w": torch.tensor([True, True, False]), "v": torch.tensor([[False, True]])}
    assert wmask.invert(a)["w"].tolist() == [False, True, False]
    assert wmask.mask_and(a, b)["w"].tolist() == [True, False, False]
    assert wmask.mask_or(a, b)["v"].tolist() == [[True, True]]
    assert wmask.counts(a) == {"w": 2, "v": 2}
    kept = wmask.invert(a, keep=["v"], like=b)
    assert kept["v"].tolist() == [[False, True]] and kept["w"].tolist() == [False, True, False]
    w = {"w": torch.tensor([1.0, 2.0, 3.0])}
    assert apply_masks(w, {"w": a["w"]})["w"].tolist() == [1.0, 0.0, 3.0]


def test_save_load_round_trip_and_refusals(tmp_path):
    model = FNN(4, [8], 2)
    masks = wmask.full_masks(model)
    masks["0.weight"][0, 0] = False
    path = tmp_path / "m.safetensors"
    wmask.save_masks(path, masks, {"task": "demo"})
    back = wmask.load_masks(path, model)
    assert all(torch.equal(back[n], masks[n]) for n in masks) and back["0.weight"].dtype == torch.bool
    with pytest.raises(ValueError, match="missing names"):
        wmask.load_masks(path, FNN(4, [8, 8], 2))
    with pytest.raises(ValueError, match="wrong shapes"):
        wmask.load_masks(path, FNN(4, [9], 2))
    wmask.save_masks(path, {**masks, "extra.weight": torch.ones(2, dtype=torch.bool)})
    with pytest.raises(ValueError, match="unknown names"):
        wmask.load_masks(path, model)
    with pytest.raises(ValueError, match="unknown names"):
        wmask.materialize(model, {"nope.weight": torch.ones(2, dtype=torch.bool)})


def test_bad_inputs_are_named():
    model = FNN(4, [8], 2)
    masks = MaskSet(model, n_sets=2, impl="eager")
    with pytest.raises(ValueError, match="not divisible by the number of mask samples K=4"):
        masks.sample_forward(torch.randn(2, 6, 4), k=4)
    with pytest.raises(ValueError, match="leading dimension of n_sets=2"):
        masks.sample_forward(torch.randn(3, 8, 4), k=4)
    with pytest.raises(ValueError, match="alpha must be finite and >= 0"):
        wmask.MaskTrainConfig(alpha=-1)
    with pytest.raises(ValueError, match="divisible by k"):
        wmask.MaskTrainConfig(batch_size=10, k=4)
    with pytest.raises(ValueError, match="unknown device 'gpu7'"):
        wmask.get_device("gpu7")
    with pytest.raises(ValueError, match="unknown sampling implementation"):
        MaskSet(model, impl="fast")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            wmask.get_device("cuda")


def test_load_masks_accepts_a_leading_set_dimension(tmp_path):
    model = FNN(4, [8], 2)
    stacked = {n: torch.stack([m, ~m]) for n, m in wmask.full_masks(model).items()}
    wmask.save_masks(tmp_path / "sets.safetensors", stacked)
    back = wmask.load_masks(tmp_path / "sets.safetensors", model)
    assert back["0.weight"].shape == (2, 8, 4) and not back["0.weight"][1].any()


def test_slice_sets_adds_its_gradient_into_the_leaf_rows_only():
    from wmask.masks import slice_sets
    t = torch.randn(5, 3, 4, requires_grad=True)
    ref = t.detach().clone().requires_grad_()
    w = torch.randn(2, 3, 4)
    for a, b in ((1, 3), (1, 3), (4, 5)):       # two passes over the same rows accumulate, as autograd's would
        (slice_sets(t, a, b) * w[: b - a]).sum().backward()
        (ref[a:b] * w[: b - a]).sum().backward()
    assert torch.equal(t.grad, ref.grad)
    assert torch.equal(t.grad[0], torch.zeros(3, 4)) and torch.equal(t.grad[3], torch.zeros(3, 4))
    y = t * 2                                   # not a leaf: an ordinary slice, the graph intact
    assert slice_sets(y, 0, 2).grad_fn is not None


# -- masks round-trip whatever the number of sets ---------------------------------------------------------------
def test_one_set_saved_loaded_and_materialized_as_the_readme_shows(tmp_path):
    from wmask import load_masks, materialize
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))
    x = torch.randn(5, 6)
    for n_sets in (1, 3):
        masks = MaskSet(model, n_sets=n_sets)
        with torch.no_grad():
            for l in masks.logits.values():
                l.copy_(torch.randn_like(l))
        path = tmp_path / f"m{n_sets}.safetensors"
        masks.save(path)                                             # stacked [M, *shape], even for one set
        loaded = load_masks(path, model)
        assert all(m.shape == (n_sets, *dict(model.named_parameters())[n].shape) for n, m in loaded.items())
        last = n_sets - 1
        with torch.no_grad():
            ref = materialize(model, masks.binary(last))(x)         # one set, unstacked
        if n_sets == 1:
            torch.testing.assert_close(materialize(model, loaded)(x), ref, rtol=0, atol=0)   # the README's line
            with wmask.applied(model, loaded):
                torch.testing.assert_close(model(x), ref, rtol=0, atol=0)
        else:
            with pytest.raises(ValueError, match="hold 3 sets stacked .* set=i"):
                materialize(model, loaded)
            with pytest.raises(ValueError, match="set=i"):
                wmask.variants_forward(model, [None, loaded])
        torch.testing.assert_close(materialize(model, loaded, set=last)(x), ref, rtol=0, atol=0)
        with wmask.applied(model, loaded, set=last):
            torch.testing.assert_close(model(x), ref, rtol=0, atol=0)
        one = load_masks(path, model, set=last)
        assert all(torch.equal(one[n], masks.binary(last)[n]) for n in masks.names)
        torch.testing.assert_close(wmask.variants_forward(model, [one])(x)[0], ref)
    with pytest.raises(ValueError, match="out of range"):
        materialize(model, loaded, set=3)
    with pytest.raises(ValueError, match="one set"):
        materialize(model, masks.binary(0), set=1)


def test_the_filter_selects_by_module_type_and_the_types_travel_with_saved_masks(tmp_path):
    from wmask import load_masks
    model = nn.Sequential(nn.Conv1d(2, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8, 3), nn.Linear(3, 2))
    assert MaskFilter().select(model) == ["0.weight", "3.weight", "4.weight"]
    linear = MaskFilter(types=(nn.Linear,))
    assert linear.select(model) == ["3.weight", "4.weight"]
    assert MaskFilter(types=(nn.Linear,), biases=True, exclude=("4.*",)).select(model) == ["3.weight", "3.bias"]
    assert MaskFilter(types=nn.Conv1d, include=("4.bias",)).select(model) == ["0.weight", "4.bias"]
    with pytest.raises(ValueError, match="no parameter in a module of these types"):
        MaskFilter(types=(nn.LSTM,)).select(model)
    with pytest.raises(TypeError, match="nn.Module classes"):
        MaskFilter(types=("Linear",))
    masks = MaskSet(model, filter=linear)
    masks.save(tmp_path / "m.safetensors")
    assert list(load_masks(tmp_path / "m.safetensors", model)) == ["3.weight", "4.weight"]   # no filter= needed
    assert MaskFilter.from_json(linear.to_json()) == linear
