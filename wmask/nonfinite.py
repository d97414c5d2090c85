"""Where training went non-finite: the named error that says at which step, in which set and in what."""
from __future__ import annotations

import torch

from .forward import input_tensors


class NonFiniteError(FloatingPointError):
    """Training met a NaN or infinite value; the message names the step, the mask set and what it was."""


def bad_rows(x, n: int) -> set[int]:
    """Indices ``i < n`` of the leading dim where some floating-point tensor of ``x`` is not finite."""
    bad = set()
    for t in input_tensors(x):
        if t.is_floating_point() and t.dim() and t.shape[0] == n:
            bad |= set(torch.nonzero(~torch.isfinite(t).reshape(n, -1).all(1)).flatten().tolist())
    return bad


def non_finite(step, inputs, targets, task, norms, masks) -> NonFiniteError:
    """Which sets went non-finite at ``step``, and where first: the batch, the loss, the logits or a gradient."""
    m = masks.n_sets
    bad_in, bad_y = bad_rows(inputs, m), bad_rows(targets, m)
    frozen = {n: s.grad for n, s in (masks.sinks or {}).items() if s.grad is not None}

    def first(i):
        if i in bad_in or i in bad_y:
            return f"values in {'the input batch' if i in bad_in else 'the targets'}"
        if not torch.isfinite(task[i]):
            return f"loss ({task[i].item()})"
        for what, tensors in (("logits", {n: l.detach() for n, l in masks.logits.items()}),
                              ("gradient of the logits", {n: l.grad for n, l in masks.logits.items()}),
                              ("accumulated gradient (clip_mode='all') of the frozen weights", frozen)):
            bad = [n for n, t in tensors.items() if t is not None and not torch.isfinite(t[i]).all()]
            if bad:
                return f"{what} of tensors {bad}"
        return "gradient norm (it overflowed; every gradient is finite)" if not torch.isfinite(norms[i]) else None

    found = [f"set {i}: non-finite {what}" for i in range(m) if (what := first(i)) is not None]
    return NonFiniteError(f"mask training stopped at step {step}: {'; '.join(found)} (the logits were not updated)")


def non_finite_base(step, inputs, targets, loss, params) -> NonFiniteError:
    what = [f"the {k} contains non-finite values" for k, x in (("input batch", inputs), ("targets", targets))
            if any(t.is_floating_point() and not torch.isfinite(t).all() for t in input_tensors(x))]
    if not torch.isfinite(loss):
        what.append(f"the loss is {loss.item()}")
    else:
        bad = [n for n, p in params if p.grad is not None and not torch.isfinite(p.grad).all()]
        what.append(f"the gradients of {bad} are non-finite" if bad else "the gradient norm overflowed")
    return NonFiniteError(f"base training stopped at step {step}: {'; '.join(what)} (the weights were not updated)")
