#!/usr/bin/env python3
"""Our code under the authors' protocol, one difference at a time: which difference explains a gap between the two.

    PYTHONPATH=. python benchmarks/authors/protocol.py double_addition --seeds 0,1 --protocol authors
    PYTHONPATH=. python benchmarks/authors/protocol.py double_addition --seeds 0,1 --protocol authors carry_grads=false
    PYTHONPATH=. python benchmarks/authors/protocol.py addmul --seeds 0,1 --protocol ours sequential=true

Runs the arithmetic experiment's FNN at the fixed budget the authors' code was run at (``FIXED``, as
``results/authors/README.md``), with its masks trained under :class:`wmask.experiments.protocol.Protocol` (the
switches: ``sequential``, ``shared_stream``, ``carry_grads``, ``extra_step``), and writes our tables
(``accuracy.csv``, ``layers.csv``, ``curves.csv``, ``base.csv``) and ``summary.json`` (the protocol, the config, the
commit, wall times) to ``results/authors/<experiment>/cpu/protocol/<label>/``, e.g. ``authors-carry_grads``. Every
protocol of a seed trains on the same base network (stored once in ``--work``). ``--protocol ours`` with no switch is
the experiment as ``python -m wmask run`` trains it: the same numbers.
"""
from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(REPO))
from wmask.experiments import config as _config  # noqa: E402
from wmask.experiments.protocol import Protocol, in_stages, stage_steps  # noqa: E402
from wmask.experiments.runner import code_of, made_by, parse_seeds, to_csv  # noqa: E402
from wmask.experiments.store import Store  # noqa: E402
from wmask.experiments.tasks import addmul, arithmetic, double_addition  # noqa: E402
from wmask.masks import MaskSet  # noqa: E402
from wmask.train import train_masks  # noqa: E402
from wmask.utils import atomic_write_text, dumps, get_device, set_threads  # noqa: E402

# The fixed budgets of results/authors/README.md: where every cpu mask of ours had settled, run by both codes.
_FNN = {"model": "fnn", "hidden": [400, 400, 200], "base": {"lr": 0.001, "eval_every": 0}, "stop_at_target": False,
        "mask": {"lr": 0.03, "log_every": 100, "clip_mode": "all", "stop_on_plateau": False}}
FIXED = {
    "addmul": {"networks": {"fnn": {**_FNN, "base": {**_FNN["base"], "steps": 8000},
                                    "mask": {**_FNN["mask"], "steps": 7500}, "target": {"+": 0.99, "×": 0.95}}},
               "size_study": ["fnn"], "sweep_alphas": [], "sweep_network": "fnn"},
    "double_addition": {"networks": {"fnn": {**_FNN, "base": {**_FNN["base"], "steps": 5000},
                                             "mask": {**_FNN["mask"], "steps": 7000, "alpha": 0.0004},
                                             "target": {"pair 1": 0.95, "pair 2": 0.95}, "n_test": 4096}}},
}
MODULES = {"addmul": addmul, "double_addition": double_addition}
OURS = arithmetic.train_mask_sets    # replaced below by the protocol's, which run_network then calls


def overrides(experiment: str, smoke: bool = False) -> dict:
    """The config overrides of the cpu preset a run uses: :data:`FIXED`, or with ``smoke`` a toy version of it
    (a 64-64 FNN, 200 base and 60 mask steps: seconds)."""
    fixed = FIXED[experiment]
    if not smoke:
        return fixed
    net = fixed["networks"]["fnn"]
    return {**fixed, "networks": {"fnn": {**net, "hidden": [64, 64], "n_test": 512,
                                          "base": {**net["base"], "steps": 200},
                                          "mask": {**net["mask"], "steps": 60, "log_every": 20}}}}


def train_mask_sets(task, model, sets, cfg, seed, store, tag, device, progress=True, alphas=None, *,
                    protocol: Protocol):
    """:func:`wmask.experiments.tasks.arithmetic.train_mask_sets` under ``protocol``; the same masks when every
    switch is off (then it is that function)."""
    if not any(protocol.switches().values()):
        return OURS(task, model, sets, cfg, seed, store, tag, device, progress, alphas)
    if protocol.on("carry_grads") and cfg.mask.clip_mode != "all":
        raise ValueError("carry_grads: the frozen gradients enter the clipping norm only with mask.clip_mode=all")
    mask_cfg = stage_steps(cfg.mask, protocol)
    salt = (lambda i: 1) if protocol.on("shared_stream") else (lambda i: 1 + i)   # noqa: E731

    def batch(i, step):
        return task.sample(mask_cfg.batch_size, arithmetic.stream(seed, step, salt(i)), sets[i])

    def loss_of(ws):
        w = torch.stack(ws).to(device)
        return lambda out, y: arithmetic.task_loss(out, y, w)

    name = f"{tag}.masks.{protocol.label().replace(' ', '')}"
    if protocol.on("sequential"):
        def stage(i, masks):
            def data(step):
                x, y = batch(i, step)
                return x.unsqueeze(0).to(device), y.unsqueeze(0).to(device)
            return train_masks(masks, data, loss_of([task.digit_weights(sets[i])]), mask_cfg,
                               checkpoint=store.checkpoint(f"{name}.{i}"), progress=progress,
                               desc=f"{tag} stage {i} ({sets[i] or 'control'})", forward=task.logits)

        def train():
            return in_stages(model, len(sets), seed, protocol, stage, lambda i: store.checkpoint(f"{name}.{i}.done"))
    else:
        def train():
            masks = MaskSet(model, n_sets=len(sets), seed=seed)

            def data(step):
                xy = [batch(i, step) for i in range(len(sets))]
                return torch.stack([x for x, _ in xy]).to(device), torch.stack([y for _, y in xy]).to(device)
            return masks, train_masks(masks, data, loss_of([task.digit_weights(s) for s in sets]), mask_cfg,
                                      checkpoint=store.checkpoint(name), progress=progress,
                                      desc=f"{tag} masks ({protocol.label()})", forward=task.logits)
    key = {"sets": [str(s) for s in sets], "mask": asdict(cfg.mask), "seed": seed, "protocol": protocol.switches()}
    return store.masks(name, key, model, train)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("experiment", choices=sorted(FIXED))
    p.add_argument("switches", nargs="*", help="e.g. carry_grads=false sequential=true")
    p.add_argument("--protocol", default="authors", choices=["ours", "authors"])
    p.add_argument("--seeds", default="0,1")
    p.add_argument("--work", default=str(REPO / "_build" / "protocol"), help="stored networks and masks")
    p.add_argument("--results", default=str(REPO / "results" / "authors"))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--smoke", action="store_true", help="200 base and 60 mask steps, written under --work")
    args = p.parse_intermixed_args(argv)
    try:
        over = _config.parse_overrides(args.switches)
        protocol = Protocol(name=args.protocol, **over)
    except (TypeError, ValueError) as err:
        p.error(f"protocol switches {args.switches}: {err} (switches: sequential, shared_stream, carry_grads, "
                "extra_step)")
    exp = MODULES[args.experiment].EXPERIMENT
    set_threads(args.threads)
    dev = get_device("cpu")
    label = protocol.label().replace(" + ", "+").replace(" − ", "-")
    fixed = overrides(args.experiment, args.smoke)
    out = Path(args.work if args.smoke else args.results) / args.experiment / "cpu" / "protocol" / label
    out.mkdir(parents=True, exist_ok=True)
    arithmetic.train_mask_sets = functools.partial(train_mask_sets, protocol=protocol)   # what run_network calls
    runs = []
    for seed in parse_seeds(args.seeds):
        cfg = exp.config("cpu", seed, None, fixed)
        store = Store(Path(args.work) / args.experiment / ("smoke" if args.smoke else "") / f"seed{seed}", "error",
                      code_of(exp))
        t0 = time.time()
        result = exp.run(cfg, store, dev, not args.quiet)
        runs.append({"seed": seed, "config": _config.to_dict(cfg), "wall_time_s": time.time() - t0,
                     "stage_seconds": store.seconds, **json.loads(dumps(result))})
        print(f"seed {seed}: {time.time() - t0:.0f} s")
    summary = {"experiment": args.experiment, "protocol": {"name": protocol.name, "label": protocol.label(),
                                                           **protocol.switches()},
               "overrides": fixed, "seeds": [r["seed"] for r in runs],
               "command": " ".join(["benchmarks/authors/protocol.py", *(argv or sys.argv[1:])]),
               "provenance": made_by(dev, wall_time_s=sum(r["wall_time_s"] for r in runs)), "runs": runs}
    atomic_write_text(out / "summary.json", dumps(summary))
    for table, rows in exp.tables(runs).items():
        atomic_write_text(out / f"{table}.csv", to_csv(rows))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
