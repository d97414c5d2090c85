"""Run an experiment at a preset (plus overrides) for several seeds; write its summary with provenance.

Layout under ``<results>/<label>/<folder>/`` (the label is the experiment's name; for a model other than the
experiment's default, plus ``-<model>``, e.g. ``scan`` for the LSTM and ``scan-transformer``; the folder is the
preset's name, plus ``+<hash>`` of the overrides when there are any, so runs with different overrides never share
a folder):

- ``seed<N>.json``: one seed's result, its configuration and provenance (commit, code fingerprint), written
  atomically; reused when its configuration and code match (see :mod:`wmask.experiments.store`); a run of some of a
  preset's
  networks (``--networks``, e.g. the paper's smallest FNN on a CPU) writes ``seed<N>@<net>+<net>.json`` instead, and
  the summary merges every seed's networks from all such files made by the same code (with ``--stale reuse``, also
  those made by other versions, each network then named with the commit that made it); a selection whose networks
  a finished file of the seed already holds at the same settings (a larger selection, or a full run) is not run
  again: that file stands for it;
- ``seed<N>/``: that seed's reusable stages (base networks, masks, checkpoints), so an interrupted run resumes;
- ``summary.json``: every finished seed in the folder made by this code (with ``--stale reuse``, by any) plus
  provenance (preset, overrides, seeds, commit, torch, device, wall time); finished results of other code that it
  leaves out are named in its ``left_out``, with how to merge them; written under a lock, so concurrent runs of
  different seeds lose nothing;
- ``<table>.csv``: tidy tables over those seeds, when the experiment defines them.
"""
from __future__ import annotations

import contextlib
import csv
import fcntl
import hashlib
import io
import json
import platform
import subprocess
import time
from pathlib import Path
from typing import Callable

from . import config as _config
from .. import interrupts
from .experiment import Experiment
from .fingerprint import computing_files, fingerprint
from .store import Store, read_json, wall_clock
from .tasks import (addmul, cifar10, clusterability, dm_math, double_addition, own_model, permuted_mnist, planted,
                    scan)
from ..utils import atomic_write_text, dumps, get_device, provenance, set_threads

EXPERIMENTS: dict[str, Experiment] = {m.EXPERIMENT.name: m.EXPERIMENT
                                      for m in (planted, addmul, double_addition, cifar10, scan, clusterability,
                                                permuted_mnist, dm_math, own_model)}
GENERATED = "generated on the fly (no files)"



def made_by(dev, **extra) -> dict:
    """:func:`wmask.utils.provenance`, whose commit says ``+dirty`` only for uncommitted changes outside ``results/``:
    a regeneration rewrites the summaries it has finished, which changes no code."""
    made = provenance(dev, **extra)
    if made["commit"].endswith("+dirty") and not changed_outside_results(Path(__file__).resolve().parents[2]):
        made["commit"] = made["commit"].removesuffix("+dirty")
    return made


def changed_outside_results(root: Path) -> bool:
    """Whether the git checkout at ``root`` has uncommitted changes to tracked files outside ``results/`` (True
    when git cannot tell)."""
    try:
        out = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)results"],
                             cwd=root, capture_output=True, text=True)
    except OSError:     # no git, or no such folder
        return True
    return out.returncode != 0 or bool(out.stdout.strip())

def code_of(exp: Experiment) -> dict[str, str]:
    """The source files that compute ``exp``'s numbers (:mod:`wmask.experiments.fingerprint`): its store key's code
    part."""
    return computing_files(exp.run.__module__)


MAX_SEEDS = 10_000     # seeds one command may ask for (each is a run; more is a typo, and would not fit in memory)


def parse_seeds(text: str) -> list[int]:
    """``"0,1,2"`` or ``"0-4"`` -> list of ints (non-negative, no repeats, at most :data:`MAX_SEEDS`); anything else
    names the bad part."""
    seeds = []
    for part in str(text).split(","):
        part = part.strip()
        try:
            if "-" in part[1:]:
                lo, hi = (int(x) for x in part.split("-", 1))
                if hi < lo:
                    raise ValueError(f"seed range {part!r} is empty (write it low-high, e.g. '1-3')")
                if hi - lo + 1 + len(seeds) > MAX_SEEDS:
                    raise ValueError(f"seed range {part!r} asks for {hi - lo + 1:,} seeds; at most {MAX_SEEDS:,} a "
                                     "command (each seed is a whole run)")
                seeds += list(range(lo, hi + 1))
            else:
                seeds.append(int(part))
        except ValueError as err:
            if "seed range" in str(err):
                raise
            raise ValueError(f"seeds must be integers like '0,1,2' or '0-4'; cannot read {part!r}") from None
    if any(s < 0 for s in seeds):
        raise ValueError(f"seeds must be >= 0, got {[s for s in seeds if s < 0]}")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seed {next(s for s in seeds if seeds.count(s) > 1)} is given twice in {text!r}")
    return seeds


def parse_networks(text: str | None) -> list[str] | None:
    """``"fnn_small,fnn_medium"`` -> a list of names (``None`` stays ``None``: every network)."""
    if text is None:
        return None
    names = [n.strip() for n in str(text).split(",") if n.strip()]
    if not names:
        raise ValueError(f"--networks needs network names like 'fnn_small,fnn_medium', got {text!r}")
    return names


def check(experiment: str, preset: str, model: str | None = None) -> tuple[Experiment, str | None]:
    """The experiment and its model (``None`` for experiments without a choice); named errors otherwise."""
    if experiment not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {experiment!r}; known: {', '.join(sorted(EXPERIMENTS))}")
    exp = EXPERIMENTS[experiment]
    model = exp.model_or_default(model)
    exp.require_preset(preset, model, label(experiment, model))
    return exp, model


def label(experiment: str, model: str | None = None) -> str:
    """The results folder (and summary ``experiment``) of a run: ``addmul``, ``scan`` (the default model, the
    LSTM), ``scan-transformer``."""
    models = EXPERIMENTS[experiment].models
    return experiment if model is None or model == models[0] else f"{experiment}-{model}"


def experiment_of(label_: str) -> Experiment:
    """The experiment behind a results label (``scan-transformer`` -> scan)."""
    return EXPERIMENTS[label_.split("-", 1)[0]]


def model_of(label_: str) -> str | None:
    """The model behind a results label (``scan-transformer`` -> transformer; ``scan``, ``addmul`` -> None, the
    experiment's default)."""
    return label_.split("-", 1)[1] if "-" in label_ else None


def folder_name(preset: str, overrides: dict) -> str:
    """``preset``, or ``preset+<8 hex digits of the overrides>`` when there are any."""
    if not overrides:
        return preset
    return f"{preset}+{hashlib.md5(dumps(overrides).encode()).hexdigest()[:8]}"


def resolve(experiment: str, preset: str, seed: int = 0, model: str | None = None, overrides: dict | None = None):
    exp, model = check(experiment, preset, model)
    return exp.config(preset, seed, model, overrides)


@contextlib.contextmanager
def locked(path: Path, what: str, wait: bool):
    """Hold an exclusive lock on ``path`` (created if needed); without ``wait``, another holder is a named error."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            raise ValueError(f"{what} is being run by another process (lock {path}); wait for it to finish") from None
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def run(experiment: str, preset: str, seeds: list[int], results: str | Path = "results", device: str = "auto",
        threads: int | None = None, progress: bool = True, model: str | None = None, overrides: dict | None = None,
        stale: str = "error", networks: list[str] | None = None) -> dict:
    """Run (or reuse) every seed; returns the summary of ``seeds`` (``summary.json`` holds every finished seed of
    the folder), with ``computed``: the seeds computed by this call (the others were reused). ``overrides``: dotted
    keys (see :mod:`wmask.experiments.config`); ``stale``: see :mod:`wmask.experiments.store`; ``networks``: run only
    these of the preset's networks (the summary then says which were run). Ctrl-C stops it wherever it comes
    (:mod:`wmask.interrupts`)."""
    with interrupts.honoured():
        return _run(experiment, preset, seeds, results, device, threads, progress, model, overrides, stale, networks)


def _run(experiment, preset, seeds, results, device, threads, progress, model, overrides, stale, networks) -> dict:
    if not seeds:
        raise ValueError("no seeds to run")
    exp, model = check(experiment, preset, model)
    overrides = dict(overrides or {})
    cfgs = {seed: exp.config(preset, seed, model, overrides, networks) for seed in seeds}  # every error first
    picked = "" if networks is None else "@" + "+".join(cfgs[seeds[0]].networks)
    name = label(experiment, model)
    dev = get_device(device)
    set_threads(threads)
    out_dir = Path(results) / name / folder_name(preset, overrides)
    runs, computed, start = [], [], time.time()

    def key_of(seed, cfg_obj, selected: bool) -> dict:
        key = {"experiment": name, "preset": preset, "overrides": overrides, "seed": seed,
               "config": _config.to_dict(cfg_obj)}
        return {**key, "selected": list(cfg_obj.networks)} if selected else key

    for seed in seeds:
        key = key_of(seed, cfgs[seed], bool(picked))
        ledger = out_dir / f".seed{seed}{picked}.time.json"   # the wall time of earlier, killed attempts

        def compute(seed=seed, cfg_obj=cfgs[seed], key=key, ledger=ledger):
            computed.append(seed)
            store = Store(out_dir / f"seed{seed}", stale, code_of(exp))
            with wall_clock(ledger, key) as clock:
                result = exp.run(cfg_obj, store, dev, progress)
            interrupts.check()      # a Ctrl-C lost in a finaliser: no result is written as if it never came
            seconds, periods = clock()
            made = made_by(dev)
            return {"experiment": name, "preset": preset, "overrides": overrides, "seed": seed,
                    **({"selected": list(cfg_obj.networks)} if picked else {}),
                    "config": _config.to_dict(cfg_obj), "wall_time_s": seconds, "work_periods": periods,
                    "stage_seconds": store.seconds,
                    "device": made["device"], "host": platform.node(), "commit": made["commit"],
                    "dataset": GENERATED, **json.loads(dumps(result))}

        path = out_dir / f"seed{seed}{picked}.json"
        with locked(out_dir / f".seed{seed}{picked}.lock", f"seed {seed} of {name} in {out_dir}", wait=False):
            held = None if not picked or path.exists() else covering_run(
                out_dir, seed, cfgs[seed].networks, Store(out_dir, stale, code_of(exp)),
                lambda nets, seed=seed: key_of(seed, exp.config(preset, seed, model, overrides, nets),
                                               nets is not None))
            runs.append(held or Store(out_dir, stale, code_of(exp)).json(path, key, compute))
            ledger.unlink(missing_ok=True)
    with locked(out_dir / ".summary.lock", f"the summary of {out_dir}", wait=True):
        left_out: list[str] = []
        everything = finished_runs(out_dir, runs, Store(out_dir, stale, code_of(exp)), left_out=left_out)
        merged = [merge_runs(exp, preset, model, overrides, rs) for rs in everything]
        summary = write_summary(exp, out_dir, name, preset, overrides, merged, dev, time.time() - start, left_out)
    return {**summary, "seeds": seeds, "runs": runs, "computed": computed}


def covering_run(out_dir: Path, seed: int, networks, store: Store, key_of: Callable) -> dict | None:
    """A finished result of ``seed`` in ``out_dir`` that already holds every one of ``networks`` at the settings
    asked for (a larger selection, or a full run: its stored key is what ``key_of(its selection)`` gives now, so
    each network's config is the same), made by this code or, with ``stale="reuse"``, by any. Reused instead of
    running those networks again; None when there is none."""
    for path in [out_dir / f"seed{seed}.json", *sorted(out_dir.glob(f"seed{seed}@*.json"))]:
        if not path.is_file():
            continue
        other = read_json(path)
        meta, chosen = other.get("store", {}), other.get("selected")
        if chosen is not None and not set(networks) <= set(chosen):
            continue
        try:
            wanted = key_of(chosen)
        except ValueError:      # a selection of networks the preset no longer has
            continue
        if store.holds(meta, wanted):
            return other
    return None


def finished_runs(out_dir: Path, runs: list[dict], store: Store, left_out: list | None = None) -> list[list[dict]]:
    """Per seed (sorted), this run's result for it plus every other finished result of that seed in ``out_dir``
    made by the same code as ``store``'s (other network selections), or by any code when it reuses stale work.
    ``left_out``: a list that receives the names of the finished result files made by other code and so not merged."""
    by_file = {(r["seed"], tuple(r.get("selected", ()))): r for r in runs}
    for path in sorted(out_dir.glob("seed*.json")):
        other = read_json(path)
        key = (other.get("seed"), tuple(other.get("selected", ())))
        if key in by_file:
            continue
        if store.stale == "reuse" or store.same_code(other.get("store", {})):
            by_file[key] = other
        elif left_out is not None:
            left_out.append(path.name)
    seeds = sorted({s for s, _ in by_file})
    return [[r for (s, _), r in sorted(by_file.items(), key=lambda kv: kv[0][1]) if s == seed] for seed in seeds]


LEFT_OUT = ("made by another version of wmask, so not merged into this summary and its tables; rerun with "
            "--stale reuse to merge them (each then named with the commit that made it)")


def merge_runs(exp: Experiment, preset: str, model: str | None, overrides: dict, runs: list[dict]) -> dict:
    """One seed's results from several network selections as one run: each network's result from the first run
    that has it (a full run, without a selection, stands alone), any other result (e.g. the α sweep) from the first
    run where it is not empty, the preset's config restricted to those networks, the summed wall time and work
    periods (processes that computed them, see :func:`wmask.experiments.store.wall_clock`), and
    ``made_by``: each network's commit (selections may come from different versions, see :func:`finished_runs`)."""
    full = [r for r in runs if "selected" not in r]
    if full or len(runs) == 1:
        return (full or runs)[0]
    cfg = exp.config(preset, runs[0]["seed"], model, overrides, {n for r in runs for n in r["selected"]})
    names = list(cfg.networks)     # the preset's order
    merged = {**runs[0], "selected": names, "wall_time_s": sum(r.get("wall_time_s", 0.0) for r in runs),
              "work_periods": sum(r.get("work_periods", 1) for r in runs), "config": _config.to_dict(cfg)}
    if all("stage_seconds" in r for r in runs):
        merged["stage_seconds"] = {k: sum(r["stage_seconds"].get(k, 0.0) for r in runs)
                                   for k in sorted({k for r in runs for k in r["stage_seconds"]})}
    else:
        merged.pop("stage_seconds", None)
    source = {n: next(r for r in runs if n in r["networks"]) for n in names}
    merged["networks"] = {n: r["networks"][n] for n, r in source.items()}
    merged["made_by"] = {n: r["commit"] for n, r in source.items()}
    for key, value in runs[0].items():
        if key != "networks" and value in ([], {}, None):
            merged[key] = next((r[key] for r in runs if r.get(key) not in ([], {}, None)), value)
    return merged


def write_summary(exp: Experiment, out_dir: Path, name: str, preset: str, overrides: dict, runs: list[dict], dev,
                  wall: float, left_out: list[str] = ()) -> dict:
    """``summary.json`` and the tables of ``runs``; ``left_out``: finished result files not merged (made by other
    code), named in the summary's ``left_out`` with how to merge them."""
    seeds = [r["seed"] for r in runs]
    selected = sorted({n for r in runs for n in r.get("selected", ())}) if all("selected" in r for r in runs) else []
    summary = {"experiment": name, "preset": preset, "overrides": overrides, "seeds": seeds,
               **({"selected": selected} if selected else {}),
               **({"left_out": {"files": list(left_out), "why": LEFT_OUT}} if left_out else {}),
               "provenance": made_by(dev, wall_time_s=wall, preset=preset, overrides=overrides, seeds=seeds,
                                        code=fingerprint(code_of(exp)), made_by=sorted({c for r in runs for c in (
                                            r.get("made_by") or {"": r.get("commit", "")}).values()}),
                                        dataset=sorted({r.get("dataset", GENERATED) for r in runs}),
                                        dataset_checksum=sorted({r.get("dataset_checksum", "") for r in runs})),
               "runs": runs}
    atomic_write_text(out_dir / "summary.json", dumps(summary))
    for table, rows in (exp.tables(runs) if exp.tables else {}).items():
        atomic_write_text(out_dir / f"{table}.csv", to_csv(rows))
    return summary


def to_csv(rows: list[dict]) -> str:
    """Rows (dicts) as CSV text; the columns are the union of the keys, in first-seen order."""
    columns = list(dict.fromkeys(k for row in rows for k in row))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()
