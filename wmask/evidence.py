"""When a result can carry a claim: base networks at their target, masks that have settled.

A claim about what a mask keeps means nothing on a network that never learned its task, or on a mask still moving
when training stopped. These pure functions turn what a run records (base accuracies, each mask's logged loss and
kept fraction) into a yes/no with the reason, so a check on such a network or mask reads **untestable (reason)**
rather than "does not hold". The rules (the book's method page says why):

- **target**: the base network's held-out accuracy on every subtask is at least the experiment's target for it;
- **converged mask**: over the last ``window`` (20 %) of the logged steps, the kept fraction moved by less than
  ``kept_tol`` (2 points) and the task loss stayed within its noise: a straight line fitted to the window's logged
  losses falls by no more than twice the spread of the losses around that line (their standard deviation). The
  logged losses are single batches under sampled masks, so that spread is the noise a reader sees in the curve.

Why 2 points: the regulariser pushes every logit down by a constant amount, so a mask keeps shedding weights it
can spare for as long as it trains; its kept fraction slows down but never stops. Measured on the add/mul
400-400-200 FNN (seed 0), the paper's own budget (20k steps at mask lr 1e-2, as far in logit travel as 6.7k steps
at 3e-2) leaves the control, + and × masks moving 1.4-1.8 points over their last 20 %, and even 4k steps at lr
1e-1 (kept 0.14 vs 0.19) still 1.0-1.1. A 1-point rule would call the paper's masks unconverged; 2 points asks for
masks at least as settled as the paper's.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    import pandas


def below_target(accuracy: dict[str, float], target: dict[str, float]) -> list[str]:
    """The subtasks whose accuracy misses its target, as ``"× 0.312 < 0.95"`` strings (empty: all met).
    A subtask without a target is not checked."""
    return [f"{s} {accuracy[s]:.3f} < {t:g}" for s, t in target.items() if s in accuracy and accuracy[s] < t]


def convergence(step: Sequence[int], loss: Sequence[float], kept: Sequence[float], window: float = 0.2,
                kept_tol: float = 0.02) -> dict:
    """Whether one mask's training curve has settled; ``loss``/``kept`` are its logged values at ``step``.

    Returns ``{"converged", "kept_change", "loss_drop", "loss_noise", "reason"}`` (``loss_drop``: the fitted line's
    fall over the window; ``loss_noise``: twice the losses' standard deviation around it); ``reason`` is "" when
    converged.
    Fewer than 4 logged points in the window cannot show a plateau, and a mask that never removed a weight has not
    started: neither is converged."""
    if not (len(step) == len(loss) == len(kept)):
        raise ValueError(f"step, loss and kept must have one value per logged step, got {len(step)}, {len(loss)}, "
                         f"{len(kept)}")
    if not step:
        return {"converged": False, "kept_change": math.nan, "loss_drop": math.nan, "loss_noise": math.nan,
                "reason": "no training curve recorded"}
    last = step[-1]
    start = last - window * (last - step[0])
    idx = [i for i, s in enumerate(step) if s >= start]
    if len(idx) < 4:
        return {"converged": False, "kept_change": math.nan, "loss_drop": math.nan, "loss_noise": math.nan,
                "reason": f"only {len(idx)} logged point{'s' * (len(idx) != 1)} in the last {window:.0%} of "
                          "steps (log more often)"}
    k = [kept[i] for i in idx]
    xs, ls = [step[i] for i in idx], [loss[i] for i in idx]
    mx, my = sum(xs) / len(xs), sum(ls) / len(ls)
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ls)) / sxx if sxx else 0.0
    resid = [y - my - slope * (x - mx) for x, y in zip(xs, ls)]
    noise = 2 * math.sqrt(sum(r * r for r in resid) / (len(ls) - 2))
    drop = -slope * (xs[-1] - xs[0])            # how far the fitted line falls over the window
    kept_change = max(k) - min(k)
    reasons = []
    if min(kept) >= 1.0:                        # a flat curve at 1 is a mask that never started, not one that settled
        reasons.append("removed no weight (kept fraction 1.000 throughout)")
    elif not kept_change < kept_tol:
        reasons.append(f"kept fraction moved {100 * kept_change:.1f} points in the last {window:.0%} of steps")
    if drop > noise:
        reasons.append(f"loss still falling ({drop:.3g} > noise {noise:.3g})")
    return {"converged": not reasons, "kept_change": kept_change, "loss_drop": drop, "loss_noise": noise,
            "reason": "; ".join(reasons)}


def history_convergence(history: dict, names: Sequence[str], **kw) -> dict[str, dict]:
    """:func:`convergence` for every set of a stage's history (``{"step", "loss": [[per set]], "kept": [[...]]}``),
    keyed by the sets' ``names``."""
    return {name: convergence(history["step"], [row[i] for row in history["loss"]],
                              [row[i] for row in history["kept"]], **kw) for i, name in enumerate(names)}


def settling(curves) -> "pandas.DataFrame":
    """:func:`convergence` for every mask of a tidy curves table (columns ``step``, ``loss``, ``kept`` and the keys
    naming a mask, e.g. ``seed, network, mask``): one row per mask with its keys, ``kept`` (the last logged value),
    ``kept_change``, ``converged`` and ``reason``; masks in the order they first appear."""
    import pandas as pd
    curves = pd.DataFrame(curves)
    keys = [c for c in curves.columns if c not in ("step", "loss", "kept")]
    rows = []
    for key, c in curves.groupby(keys, sort=False):
        r = convergence(c.step.tolist(), c.loss.tolist(), c.kept.tolist())
        rows.append({**dict(zip(keys, key if isinstance(key, tuple) else (key,))), "kept": c.kept.iloc[-1],
                     "kept_change": r["kept_change"], "converged": r["converged"], "reason": r["reason"]})
    return pd.DataFrame(rows, columns=keys + ["kept", "kept_change", "converged", "reason"])


def untestable_reason(below: list[str], unconverged: dict[str, str]) -> str:
    """The reason a check cannot be made ("" when it can): base network below target first, then masks."""
    if below:
        return "base network below target: " + ", ".join(below)
    if unconverged:
        return "mask not converged: " + "; ".join(f"{n} ({r})" for n, r in unconverged.items())
    return ""
