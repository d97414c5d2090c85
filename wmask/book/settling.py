"""How far a mask was from settling: read from its logged kept-fraction curve (a chapter's projections, not rules
of the method; the settling rule itself is :func:`wmask.evidence.convergence`)."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas


def kept_fall(curves, start: float, end: float) -> "pandas.Series":
    """Per mask of a tidy curves table (as :func:`settling`), how many points its kept fraction fell between the
    logged steps nearest ``start`` and ``end`` (fractions of the last logged step): how fast a mask still sheds
    weights, e.g. over the last tenth (0.9, 1.0) against the tenth before half way (0.4, 0.5)."""
    import pandas as pd
    curves = pd.DataFrame(curves)
    keys = [c for c in curves.columns if c not in ("step", "loss", "kept")]

    def fall(c):
        at = lambda f: c.kept.iloc[(c.step - f * c.step.max()).abs().argmin()]  # noqa: E731
        return 100 * (at(start) - at(end))
    return curves.groupby(keys, sort=False)[["step", "kept"]].apply(fall)


def steps_to_settle(curves, fit_from: float = 0.5, window: float = 0.2, kept_tol: float = 0.02) -> "pandas.DataFrame":
    """Per mask of a tidy curves table (as :func:`settling`), the step by which its kept fraction would meet the
    settling rule (moving less than ``kept_tol`` over the last ``window`` of the steps) if it went on falling as it
    did from ``fit_from`` of the way on: a power law ``kept = a * step ** b`` fitted there (least squares on logs),
    which meets the rule once ``a * T ** b * ((1 - window) ** b - 1) < kept_tol``. A projection, not a measurement:
    how far a run was from settling. Columns: the mask's keys, ``exponent`` (b) and ``steps`` (NaN where the kept
    fraction is not falling)."""
    import numpy as np
    import pandas as pd
    curves = pd.DataFrame(curves)
    keys = [c for c in curves.columns if c not in ("step", "loss", "kept")]
    rows = []
    for key, c in curves.groupby(keys, sort=False):
        c = c[(c.step >= fit_from * c.step.max()) & (c.step > 0) & (c.kept > 0)]
        b, log_a = np.polyfit(np.log(c.step), np.log(c.kept), 1) if len(c) >= 2 else (math.nan, math.nan)
        steps = (math.exp((math.log(kept_tol / ((1 - window) ** b - 1)) - log_a) / b) if b < -1e-6 else math.nan)
        rows.append({**dict(zip(keys, key if isinstance(key, tuple) else (key,))), "exponent": b, "steps": steps})
    return pd.DataFrame(rows, columns=keys + ["exponent", "steps"])


def kept_words(curves) -> str:
    """How much a run's masks keep after its steps, and whether they settled, in words for a chapter."""
    from ..evidence import settling
    masks = settling(curves)
    return (f"after {curves.step.max() + 1:,} steps its {len(masks)} masks keep {masks.kept.min():.2f}–"
            f"{masks.kept.max():.2f} of the weights, {int(masks.converged.sum())} of {len(masks)} settled (their "
            f"kept fraction moved {100 * masks.kept_change.min():.1f}–{100 * masks.kept_change.max():.1f} points "
            "over the last 20 % of steps)")


def drift_words(curves) -> str:
    """Where no mask of a run settled: how fast they still shed weights, late against half way, and after how many
    steps they would settle going on as over the second half (:func:`steps_to_settle`), in words for a chapter."""
    from ..evidence import settling
    masks = settling(curves)
    if not len(masks) or masks.converged.any():
        return f"{int((~masks.converged).sum())} of {len(masks)} masks had not settled."
    late, mid, ahead = kept_fall(curves, 0.9, 1.0), kept_fall(curves, 0.4, 0.5), steps_to_settle(curves)
    return (f"Here every mask was still shedding weights when its stage ended: over the last tenth of its steps its "
            f"kept fraction fell {late.min():.1f}–{late.max():.1f} points, over the tenth before half way "
            f"{mid.min():.1f}–{mid.max():.1f}: slower, not stopped (the regulariser pushes every logit down for as "
            f"long as a mask trains). Falling on as over the second half of the stage (kept ∝ steps^b, b "
            f"{ahead.exponent.min():.2f} to {ahead.exponent.max():.2f}), they would meet the 2-point rule after about "
            f"{ahead.steps.min():,.0f}–{ahead.steps.max():,.0f} steps (`wmask.book.settling.steps_to_settle`; a "
            "projection, not a run).")


def reach_words(tables: dict, cfg: dict, network: str) -> str:
    """A committed run's scale in words: the base network's accuracy against its target, how many masks settled
    and how much they keep (``tables``: the experiment's tidy tables, with ``base`` and ``curves``)."""
    from ..evidence import settling
    masks = settling(tables["curves"])
    return (f"{network} reaches held-out accuracy {tables['base'].accuracy.mean():.3f} after "
            f"{cfg['base']['steps']:,} steps (target {cfg['target']}); {int(masks.converged.sum())} of its "
            f"{len(masks)} masks settled (the last stopped after {tables['curves'].step.max():,} steps), keeping "
            f"{masks.kept.min():.3f}–{masks.kept.max():.3f} of the weights")


def unsettled_words(curves, why: str) -> str:
    """How many masks of a run settled, how much they keep, and for those still moving the steps they would need
    (:func:`steps_to_settle`), ``why`` closing the sentence."""
    from ..evidence import settling
    masks = settling(curves)
    moving = masks[~masks.converged]
    words = (f"{int(masks.converged.sum())} of its {len(masks)} masks settled, keeping {masks.kept.min():.3f}–"
             f"{masks.kept.max():.3f} of the weights")
    if moving.empty:
        return words
    ahead = steps_to_settle(curves).loc[moving.index]
    return (f"{words}; falling on as over the second half of their stage, the masks still moving "
            f"({', '.join(moving['mask'])}) would meet the 2-point rule after about {ahead.steps.min():,.0f}–"
            f"{ahead.steps.max():,.0f} steps (`wmask.book.settling.steps_to_settle`), {why}")
