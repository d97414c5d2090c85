"""Run an experiment at a preset for several seeds; write its summary with provenance into a results folder.

Layout under ``<results>/<label>/<preset>/`` (the label is the experiment's name; for a model other than the
experiment's default, plus ``-<model>``, e.g. ``scan`` for the LSTM and ``scan-transformer``):

- ``seed<N>.json``: one seed's result and configuration, written atomically; reused when its configuration matches,
  an error when it does not;
- ``seed<N>/``: that seed's intermediate files (base networks, masks, checkpoints), so an interrupted run resumes;
- ``summary.json``: all seeds plus provenance (preset, seeds, commit, torch, device, wall time);
- ``<table>.csv``: tidy tables over all seeds, when the experiment defines them.
"""
from __future__ import annotations

import csv
import io
import json
import time
from dataclasses import asdict
from pathlib import Path

from .tasks import addmul, cifar10, double_addition, planted, scan
from .utils import atomic_write_text, dumps, get_device, provenance, set_threads

# experiment name -> module with PRESETS, config(preset, seed) -> dataclass, run_preset(preset, seed, progress,
# work, device) -> JSON-able dict, and optionally tables(runs) -> {name: rows}. A module with MODELS (the first is
# the default) takes model= in config and run_preset, and keeps one results folder per model.
EXPERIMENTS = {"planted": planted, "addmul": addmul, "double_addition": double_addition, "cifar10": cifar10,
               "scan": scan}


GENERATED = "generated on the fly (no files)"


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


def check(experiment: str, preset: str, model: str | None = None):
    """The experiment's module and its model (``None`` for experiments without a choice); named errors otherwise."""
    if experiment not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {experiment!r}; known: {', '.join(sorted(EXPERIMENTS))}")
    module = EXPERIMENTS[experiment]
    models = getattr(module, "MODELS", None)
    if models is None and model is not None:
        raise ValueError(f"{experiment} has no choice of model (got --model {model})")
    if models is not None:
        model = model or models[0]
        if model not in models:
            raise ValueError(f"unknown model {model!r} for {experiment}; known: {', '.join(models)}")
    presets = module.PRESETS[model] if model else module.PRESETS
    if preset not in presets:
        raise ValueError(f"unknown preset {preset!r} for {experiment}; known: {', '.join(presets)}")
    return module, model


def label(experiment: str, model: str | None = None) -> str:
    """The results folder (and summary ``experiment``) of a run: ``addmul``, ``scan`` (the default model, the
    LSTM), ``scan-transformer``."""
    models = getattr(EXPERIMENTS[experiment], "MODELS", None)
    return experiment if model is None or model == models[0] else f"{experiment}-{model}"


def module_of(label_: str):
    """The module behind a results label (``scan-transformer`` -> the scan module)."""
    return EXPERIMENTS[label_.split("-", 1)[0]]


def run(experiment: str, preset: str, seeds: list[int], results: str | Path = "results", device: str = "auto",
        threads: int | None = None, progress: bool = True, model: str | None = None) -> dict:
    module, model = check(experiment, preset, model)
    by_model = {} if model is None else {"model": model}
    experiment = label(experiment, model)
    dev = get_device(device)
    set_threads(threads)
    out_dir = Path(results) / experiment / preset
    runs, start = [], time.time()
    for seed in seeds:
        path = out_dir / f"seed{seed}.json"
        cfg = module.config(preset, seed, **by_model)
        expected, default = (json.loads(dumps(asdict(c))) for c in (cfg, type(cfg)()))
        if path.exists():
            done = json.loads(path.read_text())
            if (done.get("preset"), done.get("seed")) != (preset, seed) or \
                    not same_config(done.get("config"), expected, default):
                raise ValueError(f"{path} was written by a different configuration (preset {done.get('preset')!r}, "
                                 f"seed {done.get('seed')!r}, config {done.get('config')}) than {preset!r} seed "
                                 f"{seed} now has ({expected}); move it away first")
            runs.append(done)
            continue
        t0 = time.time()
        (out_dir / f"seed{seed}").mkdir(parents=True, exist_ok=True)
        result = module.run_preset(preset, seed, progress=progress, work=out_dir / f"seed{seed}", device=dev,
                                   **by_model)
        done = {"experiment": experiment, "preset": preset, "seed": seed, "wall_time_s": time.time() - t0,
                "device": provenance(dev)["device"], **json.loads(dumps(result))}
        done.setdefault("dataset", GENERATED)
        atomic_write_text(path, dumps(done))
        runs.append(done)
    summary = {"experiment": experiment, "preset": preset, "seeds": seeds,
               "provenance": provenance(dev, wall_time_s=time.time() - start, preset=preset, seeds=seeds,
                                        dataset=sorted({r.get("dataset", GENERATED) for r in runs}),
                                        dataset_checksum=sorted({r.get("dataset_checksum", "") for r in runs})),
               "runs": runs}
    atomic_write_text(out_dir / "summary.json", dumps(summary))
    for name, rows in (module.tables(runs) if hasattr(module, "tables") else {}).items():
        atomic_write_text(out_dir / f"{name}.csv", to_csv(rows))
    return summary


def same_config(stored, expected, default) -> bool:
    """``stored == expected``, except that a key ``stored`` lacks (a field added after it was written) matches when
    ``expected`` holds that field's default value, i.e. the behaviour the older code had."""
    if not (isinstance(stored, dict) and isinstance(expected, dict)):
        return stored == expected
    default = default if isinstance(default, dict) else {}
    return set(stored) <= set(expected) and all(
        same_config(stored[k], v, default.get(k)) if k in stored else (k in default and default[k] == v)
        for k, v in expected.items())


def to_csv(rows: list[dict]) -> str:
    """Rows (dicts) as CSV text; the columns are the union of the keys, in first-seen order."""
    columns = list(dict.fromkeys(k for row in rows for k in row))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()
