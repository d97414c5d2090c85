"""Regenerate the committed results (``make results PRESET=cpu [EXP=addmul,scan] [SEEDS=0-2]``).

Runs each experiment at the preset into ``results/`` with this code (stale artefacts recomputed, current ones
reused), one after another with progress bars, then prints what ran, what was reused and what failed. The seeds
default to those already committed for that experiment and preset (else 0, 1, 2), so a regeneration replaces a
committed summary seed for seed. Run it from a clean tree, so every result names the commit that made it.
"""
from __future__ import annotations

import subprocess
import time
import traceback
from pathlib import Path

from . import runner
from .status import table

DEFAULT_SEEDS = [0, 1, 2]


def labels(preset: str, names: list[str] | None = None) -> list[str]:
    """The results labels (``addmul``, ``scan``, ``scan-transformer``) to regenerate at ``preset``: ``names``
    (experiments or labels) or every one that has the preset, in the runner's order (chapters that reuse another's
    networks come after it)."""
    every = [runner.label(e, m) for e, exp in runner.EXPERIMENTS.items() for m in (exp.models or [None])]
    if names is None:
        return [lb for lb in every if not runner.experiment_of(lb).absent(preset, runner.model_of(lb))]
    unknown = [n for n in names if n not in every]
    if unknown:
        raise ValueError(f"unknown experiment {unknown[0]!r}; known: {', '.join(every)}")
    return names


def committed_seeds(results: Path, label: str, preset: str) -> list[int] | None:
    import json
    path = Path(results) / label / preset / "summary.json"
    return json.loads(path.read_text())["seeds"] if path.is_file() else None


def dirty_files(root: Path) -> list[str]:
    """Uncommitted changes to the package (results would name a ``+dirty`` commit); empty outside a git checkout."""
    try:
        out = subprocess.run(["git", "status", "--porcelain", "--", "wmask"], cwd=root, capture_output=True,
                             text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return []
    return [line[3:] for line in out.stdout.splitlines()] if out.returncode == 0 else []


def regenerate(preset: str, names: list[str] | None, seeds: list[int] | None, results: str | Path = "results",
               threads: int | None = None, progress: bool = True, print_=print) -> list[dict]:
    """Run every chosen experiment at ``preset``; returns one row per experiment (seeds computed, reused, failed)."""
    rows = []
    for lb in labels(preset, names):
        exp_name, model = lb.split("-", 1)[0], runner.model_of(lb)
        want = seeds or committed_seeds(Path(results), lb, preset) or DEFAULT_SEEDS
        print_(f"== {lb} at {preset}, seeds {','.join(map(str, want))}")
        t0 = time.time()
        try:
            s = runner.run(exp_name, preset, want, results, threads=threads, progress=progress, model=model,
                           stale="recompute")
        except (ValueError, RuntimeError, OSError) as err:
            print_(traceback.format_exc(limit=-3) if not isinstance(err, ValueError) else f"failed: {err}")
            rows.append({"experiment": lb, "seeds": ",".join(map(str, want)), "computed": "", "reused": "",
                         "status": f"failed: {str(err).splitlines()[0][:120]}",
                         "minutes": f"{(time.time() - t0) / 60:.1f}"})
            continue
        computed = s["computed"]
        rows.append({"experiment": lb, "seeds": ",".join(map(str, want)),
                     "computed": ",".join(map(str, computed)),
                     "reused": ",".join(str(x) for x in want if x not in computed), "status": "ok",
                     "minutes": f"{(time.time() - t0) / 60:.1f}"})
    print_(table(rows))
    return rows
