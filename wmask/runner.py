"""Run an experiment at a preset for several seeds; write its summary with provenance into a results folder.

Layout: ``<results>/<experiment>/<preset>/seed<N>.json`` (one per seed, written atomically, reused when its
configuration matches) and ``summary.json`` (all seeds plus provenance: preset, seeds, commit, torch, device,
wall time).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from .tasks import planted
from .utils import atomic_write_text, dumps, get_device, provenance, set_threads

# experiment name -> module with PRESETS and run_preset(preset, seed, progress) -> JSON-able dict
EXPERIMENTS = {"planted": planted}


def parse_seeds(text: str) -> list[int]:
    """``"0,1,2"`` or ``"0-4"`` -> list of ints; anything else is an error that names the bad part."""
    seeds = []
    for part in str(text).split(","):
        part = part.strip()
        try:
            if "-" in part[1:]:
                lo, hi = part.split("-", 1)
                seeds += list(range(int(lo), int(hi) + 1))
            else:
                seeds.append(int(part))
        except ValueError:
            raise ValueError(f"seeds must be integers like '0,1,2' or '0-4'; cannot read {part!r}") from None
    return seeds


def check(experiment: str, preset: str):
    if experiment not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {experiment!r}; known: {', '.join(sorted(EXPERIMENTS))}")
    presets = EXPERIMENTS[experiment].PRESETS
    if preset not in presets:
        raise ValueError(f"unknown preset {preset!r} for {experiment}; known: {', '.join(presets)}")
    return EXPERIMENTS[experiment]


def run(experiment: str, preset: str, seeds: list[int], results: str | Path = "results", device: str = "auto",
        threads: int | None = None, progress: bool = True) -> dict:
    module = check(experiment, preset)
    dev = get_device(device)
    set_threads(threads)
    out_dir = Path(results) / experiment / preset
    runs, start = [], time.time()
    for seed in seeds:
        path = out_dir / f"seed{seed}.json"
        if path.exists():
            done = json.loads(path.read_text())
            if done.get("preset") != preset or done.get("seed") != seed:
                raise ValueError(f"{path} was written by a different configuration "
                                 f"(preset {done.get('preset')!r}, seed {done.get('seed')!r}); move it away first")
            runs.append(done)
            continue
        t0 = time.time()
        result = module.run_preset(preset, seed, progress=progress)
        done = {"experiment": experiment, "preset": preset, "seed": seed, "wall_time_s": time.time() - t0, **result}
        atomic_write_text(path, dumps(done))
        runs.append(done)
    summary = {"experiment": experiment, "preset": preset, "seeds": seeds,
               "provenance": provenance(dev, wall_time_s=time.time() - start), "runs": runs}
    atomic_write_text(out_dir / "summary.json", dumps(summary))
    return summary
