"""The fused Gumbel-sigmoid sampler against the paper's formula, computed separately."""
import math

import pytest
import torch

from wmask.sampling import _GOLDEN, _M32, mix_seed, sample_masked, sampled_keep, sampled_uniforms, uniform

IMPLS = ["eager", "compile"]


def reference(logits, weight, v, k):
    """The paper's sampler: logistic noise, s = sigmoid(l + noise), hard threshold, straight-through."""
    u = 1.0 - v  # the sampler keeps iff v < sigmoid(l); the paper's noise is log(u) - log(1 - u) with u = 1 - v
    noise = torch.log(u) - torch.log(1.0 - u)
    s = torch.sigmoid(logits.repeat_interleave(k, 0) + noise)
    hard = (s > 0.5).float()
    return weight * (hard - s.detach() + s)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("shape", [(5, 7), (3, 2, 4, 4), (11,)])
def test_forward_and_gradient_equal_reference(impl, shape):
    m, k = 3, 4
    logits = (torch.randn(m, *shape) * 2).requires_grad_()
    weight = torch.randn(shape)
    seed = torch.tensor(123456789)
    out = sample_masked(logits, weight, seed, k, impl)
    grad_out = torch.randn_like(out)
    (out * grad_out).sum().backward()

    ref_logits = logits.detach().clone().requires_grad_()
    v = sampled_uniforms(logits.detach(), seed, k)
    ref = reference(ref_logits, weight, v, k)
    (ref * grad_out).sum().backward()
    assert torch.equal(out != 0, ref.detach() != 0)
    assert torch.allclose(out, ref.detach())
    assert torch.allclose(logits.grad, ref_logits.grad, rtol=1e-4, atol=1e-6)


def test_straight_through_gradient_is_sigmoid_gradient():
    """d(output)/d(logit) of one kept sample is weight * s * (1 - s) with s = sigmoid(l + noise)."""
    logits = torch.tensor([[0.3, -1.0, 2.0, 0.0]], requires_grad=True)
    weight = torch.tensor([1.5, -2.0, 0.5, 3.0])
    seed = torch.tensor(7)
    out = sample_masked(logits, weight, seed, 1, "eager")
    out.sum().backward()
    v = sampled_uniforms(logits.detach(), seed, 1)
    s = torch.sigmoid(logits.detach() + torch.log(1 - v) - torch.log(v))
    assert torch.allclose(logits.grad, weight * s * (1 - s), rtol=1e-5)


@pytest.mark.parametrize("impl", IMPLS)
def test_keep_rate_matches_sigmoid(impl):
    values = torch.tensor([-3.0, -1.0, 0.0, 0.5, 2.0, 4.0])
    n = 20000
    logits = values.repeat_interleave(n).view(1, -1)
    weight = torch.ones(logits.shape[1])
    kept = sample_masked(logits, weight, torch.tensor(99), 2, impl).detach() != 0
    rates = kept.view(2, len(values), n).float().mean((0, 2))
    p = torch.sigmoid(values)
    sd = (p * (1 - p) / (2 * n)).sqrt()
    assert ((rates - p).abs() < 5 * sd + 1e-9).all(), (rates, p)
    assert torch.equal(kept, sampled_keep(logits, torch.tensor(99), 2))


def test_eager_and_compiled_sample_the_same_masks():
    logits = torch.randn(2, 64, 33, requires_grad=True)
    weight = torch.randn(64, 33)
    seed = torch.tensor(2024)
    a = sample_masked(logits, weight, seed, 3, "eager")
    b = sample_masked(logits, weight, seed, 3, "compile")
    assert (a != b).float().mean() < 1e-3  # only rounding at sigmoid(l) == v can differ
    ga, = torch.autograd.grad(a.sum(), logits)
    gb, = torch.autograd.grad(b.sum(), logits)
    assert torch.allclose(ga, gb, rtol=1e-4, atol=1e-6)


def test_uniform_statistics_and_seed_dependence():
    u = uniform(mix_seed(5), (4, 250_000))
    assert 0 < u.min() and u.max() < 1
    assert abs(u.mean() - 0.5) < 0.002 and abs(u.var() - 1 / 12) < 0.002
    lag = torch.corrcoef(torch.stack([u.flatten()[:-1], u.flatten()[1:]]))[0, 1]
    assert abs(lag) < 0.005
    other = uniform(mix_seed(6), (4, 250_000))
    assert abs(torch.corrcoef(torch.stack([u.flatten(), other.flatten()]))[0, 1]) < 0.005
    assert torch.equal(u, uniform(mix_seed(5), (4, 250_000)))
    # Bernoulli(p) from one uniform: the fraction below p is p (tested at several p)
    for p in (0.01, 0.3, 0.88):
        assert abs((u < p).float().mean() - p) < 5 * math.sqrt(p * (1 - p) / u.numel())


def _corr(a, b):
    return torch.corrcoef(torch.stack([a, b]))[0, 1].item()


def _old_uniform(seed, n):
    """The sampler before the seed was mixed: ``idx * golden + seed`` (kept here to show the test can fail)."""
    x = (torch.arange(n, dtype=torch.int64) * _GOLDEN + seed) & _M32
    for shift, mult in ((16, 0x7FEB352D), (15, 0x846CA68B - (1 << 32))):
        x = ((x ^ (x >> shift)) * mult) & _M32
    x = x ^ (x >> 16)
    return ((x >> 9).to(torch.float32) + 0.5) / 8388608.0


def _max_shifted_corr(a, b, shifts):
    return max(abs(_corr(a[d:], b[:len(b) - d])) for d in shifts)


@pytest.mark.parametrize("pair", [(5, 6), (0, 1 << 32), (1 << 61, (1 << 61) + 1), (12345, 12345 + 7 * _GOLDEN)])
def test_uniforms_of_two_seeds_uncorrelated_at_same_and_shifted_indices(pair):
    """Seeds one apart, seeds equal in their low 32 bits (the old sampler kept only those), and seeds that differ by
    a multiple of the golden-ratio step (the old sampler gave shifted copies) all give uncorrelated streams."""
    n, shifts = 200_000, range(0, 16)
    a, b = (uniform(mix_seed(s), (n,)) for s in pair)
    assert _max_shifted_corr(a, b, shifts) < 0.012
    assert _max_shifted_corr(b, a, shifts) < 0.012
    assert (a == b).float().mean() < 1e-3


def test_the_old_sampler_fails_the_shift_test():
    """The reference the test above is built against: the unmixed, additive seed gives a copy shifted by 7."""
    n = 200_000
    a, b = _old_uniform(12345, n), _old_uniform(12345 + 7 * _GOLDEN, n)
    assert _max_shifted_corr(a, b, range(0, 16)) > 0.99
    assert torch.equal(_old_uniform(5, n), _old_uniform(5 + (1 << 32), n))  # only the low 32 bits counted


def test_mix_seed_is_splitmix64():
    """Known splitmix64 outputs (state 0 -> first output 0xE220A8397B1DCDAF), low 32 bits."""
    assert mix_seed(0).item() == 0x7B1DCDAF
    assert mix_seed(torch.tensor(0)).item() == 0x7B1DCDAF
