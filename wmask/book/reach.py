"""How far a budget gets a network: the held-out curves of a preset's run and of its runs with overrides, and what
reaching a target would cost if their trend held.

A chapter whose claim is *untestable* because the network stays below its target (the Mathematics chapter at
``cpu``) shows, with these, what was tried within the preset's means and what the target would take: each committed
run (``results/<experiment>/<preset>`` and ``<preset>+<hash>``, :func:`wmask.book.report.committed_variants`) gives
its held-out accuracy against base steps and its seconds a base step; a straight line through the later half of the
evaluations of the target's accuracy against log10(steps) projects the steps, hence the hours, to the target. The
projection is an extrapolation, labelled as one; a curve that does not rise projects nothing.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from .report import committed_variants, repo_root


def run_label(config: dict) -> str:
    """A run named by what it trained, from its own config (a preset's defaults change; a run's config does not):
    ``sort: d 64, 2+2 layers, 5,000 steps``."""
    net, modules = config.get("net", {}), ", ".join(m.split("__")[-1] for m in config.get("networks", {}))
    size = f"d {net['d']}, {net['enc_layers']}+{net['dec_layers']} layers, " if {"d", "enc_layers", "dec_layers"} <= \
        set(net) else ""
    return f"{modules}: {size}{config['base']['steps']:,} steps"


def runs(experiment: str, preset: str, evals_table: str = "base_evals", root=None) -> pd.DataFrame:
    """One row per evaluation of every committed run of ``experiment`` at ``preset`` (the preset's and those with
    overrides): ``run`` (:func:`run_label`), ``folder``, ``seed``, ``network``, ``step``,
    ``test``, ``accuracy``, ``s_per_step`` (the seed's base-stage seconds over its base steps, evaluations
    included), ``commit`` and ``status`` (current, or stale with why: :func:`wmask.experiments.status.word`)."""
    from ..experiments.runner import EXPERIMENTS, folder_name
    from ..experiments.status import word
    exp, rows = EXPERIMENTS[experiment], []
    for s in committed_variants(experiment, preset, root):
        ev = pd.DataFrame(exp.tables(s["runs"]).get(evals_table, []))
        if ev.empty:
            continue
        folder, commit, status = folder_name(preset, s["overrides"]), s["provenance"]["commit"][:7], word(s)
        for r in s["runs"]:
            base_s = r.get("stage_seconds", {}).get("base")
            run, sps = run_label(r["config"]), base_s / r["config"]["base"]["steps"] if base_s else math.nan
            for _, e in ev[ev.seed == r["seed"]].iterrows():
                rows.append({"run": run, "folder": folder, "seed": r["seed"], "network": e.network,
                             "step": int(e.step), "test": e.test, "accuracy": float(e.accuracy), "commit": commit,
                             "status": status, "s_per_step": sps})
    return pd.DataFrame(rows, columns=["run", "folder", "seed", "network", "step", "test", "accuracy", "s_per_step",
                                       "commit", "status"])


def steps_to(steps, accuracy, target: float, last: int | None = None) -> float:
    """Base steps at which a least-squares line through the last ``last`` points (default: the later half, at least
    3) of ``accuracy`` against log10(``steps``) reaches ``target``: an extrapolation. NaN when fewer than 3 points, or
    the line does not rise."""
    last = last or max(3, len(steps) // 2)
    x, y = np.log10(np.asarray(steps, float)[-last:]), np.asarray(accuracy, float)[-last:]
    if len(x) < 3:
        return math.nan
    slope, intercept = np.polyfit(x, y, 1)
    if slope <= 1e-9:                # flat within rounding: no trend
        return math.nan
    return float(10 ** ((target - intercept) / slope))


def projection(evals: pd.DataFrame, target: float, test: str = "hard") -> pd.DataFrame:
    """Per run and network (mean over seeds): its last step, the accuracy there on ``test``, its best on ``test``,
    its seconds a step, its wall time so far, and the steps and hours to ``target``: the first evaluation that met
    it (``reached``), else what the log-linear trend of its ``test`` curve projects (NaN: no rising trend)."""
    rows = []
    for (run, folder, network), g in evals[evals.test == test].groupby(["run", "folder", "network"], sort=False):
        c = g.groupby("step").accuracy.mean().sort_index()
        sps = g.s_per_step.mean()
        hit = c[c >= target]
        n = float(hit.index[0]) if len(hit) else steps_to(c.index, c.values, target)
        rows.append({"run": run, "folder": folder, "network": network, "steps": int(c.index[-1]),
                     test: float(c.iloc[-1]),
                     f"best {test}": float(c.max()), "s a step": sps, "base minutes": c.index[-1] * sps / 60,
                     "reached": bool(len(hit)), "projected steps to target": n, "projected hours": n * sps / 3600})
    return pd.DataFrame(rows)


def bench(path: str | Path) -> dict | None:
    """A ``benchmarks/mask_step.py --json`` record committed under ``results/`` (``path`` relative to the repository
    root), or None when absent."""
    p = Path(path) if Path(path).is_absolute() else repo_root() / path
    return json.loads(p.read_text()) if p.is_file() else None


def formatted(table: pd.DataFrame) -> pd.DataFrame:
    """:func:`projection`'s table for the page: accuracies to 3 places, minutes and seconds rounded, projected steps
    and hours to 2 significant digits (``no rising trend`` for NaN, ``> 10^9 steps`` past a billion)."""
    out = table.copy()

    def steps(n):
        return "no rising trend" if not np.isfinite(n) else "> 10^9" if n > 1e9 else f"{float(f'{n:.2g}'):,.0f}"
    for col in [c for c in out if c.startswith("projected steps")]:
        reached = table.get("reached" + col[len("projected steps to target"):], pd.Series(False, index=table.index))
        out[col] = [f"reached at {n:,.0f}" if r else steps(n) for n, r in zip(table[col], reached)]
    out = out.drop(columns=[c for c in out if c.startswith("reached")])
    out["projected hours"] = [("–" if not np.isfinite(h) or n > 1e9 else f"{float(f'{h:.2g}'):,g}")
                              for h, n in zip(table["projected hours"], table["projected steps to target"])]
    for col in [c for c in out if c in ("hard", "best hard", "easy")]:
        out[col] = out[col].round(3)
    out["s a step"], out["base minutes"] = out["s a step"].round(3), out["base minutes"].round(0)
    return out


def trend_words(row) -> str:
    """What the trend of one :func:`projection` row says, in words."""
    n = row["projected steps to target"]
    if not np.isfinite(n):
        return "its hard curve does not rise, so it projects nothing"
    if n > 1e9:
        return "the trend of its hard curve would need more than a billion steps to reach the target"
    return (f"if the trend of its hard curve held, the target would take about {n:,.0f} steps, "
            f"{row['projected hours']:,.0f} h on one core")


def two_sets(record: dict, model: str) -> float:
    """Seconds a step of two mask sets in a ``mask_step.py --json`` record: the projection's own stage time."""
    for p in record["projections"]:
        if p["model"] == model:
            return next(t for _, sets, t in p["stages"] if sets == 2)
    raise KeyError(f"no projection of {model!r} in the record")
