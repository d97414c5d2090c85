"""``python -m wmask sweep``: every (experiment, seed) of a preset as a task on Ray, results merged as ``run`` would.

Each task is ``wmask run EXPERIMENT --seeds N`` in a Ray worker: it writes ``seed<N>.json`` and its checkpoints in
the same results folder as a sequential run, so a task that dies and is retried resumes from its last checkpoint,
and a seed that already finished is reused. When every task has ended, the driver merges each experiment's
finished seeds into ``summary.json`` and the CSV tables through :func:`wmask.experiments.runner.run` (all reused),
exactly as a
sequential run of those seeds writes them. By default a local Ray instance is started and stopped; ``address``
joins a running cluster (``ray start --head`` on one machine, ``ray start --address=...`` on the others, or a
cluster that a scheduler such as Slurm launched); the results folder must then be on storage every node shares.

Ray is an optional extra: ``pip install 'wmask[sweep]'``.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

from . import runner

def parse_experiments(text: str) -> list[tuple[str, str | None]]:
    """``"addmul,scan-transformer"`` -> ``[("addmul", None), ("scan", "transformer")]`` (results labels work)."""
    out = []
    for item in [t.strip() for t in text.split(",") if t.strip()]:
        experiment, _, model = item.partition("-")
        if experiment not in runner.EXPERIMENTS:
            raise ValueError(f"unknown experiment {item!r} in the sweep; known: {', '.join(sorted(runner.EXPERIMENTS))}"
                             " (a model as scan-transformer)")
        out.append((experiment, model or None))
    if not out:
        raise ValueError(f"no experiment named in {text!r}")
    return out


def run_seed(experiment: str, model: str | None, preset: str, seed: int, results: str, overrides: dict,
             device: str, threads: int, stale: str) -> dict:
    """One task: run (or reuse) one seed; returns where and how it ran."""
    t0 = time.time()
    summary = runner.run(experiment, preset, [seed], results, device, threads, progress=False, model=model,
                         overrides=overrides, stale=stale)
    run = summary["runs"][0]
    return {"status": "finished" if summary["computed"] else "reused", "host": run.get("host", ""),
            "device": run["device"], "wall_time_s": time.time() - t0}


def sweep(experiments: list[tuple[str, str | None]], preset: str, seeds: list[int], results="results",
          overrides: dict | None = None, address: str | None = None, num_cpus: int | None = None,
          cpus_per_task: int = 1, gpus_per_task: float = 0, retries: int = 2, device: str = "auto",
          stale: str = "error", progress: bool = True) -> list[dict]:
    """Run every (experiment, seed) as a Ray task; returns a row per task (experiment, seed, status: finished,
    reused or failed, host, device, wall time, error). ``retries``: how often a task whose worker died or that
    raised is run again (it resumes from its checkpoints); ``num_cpus``: the local instance's CPUs (default all)."""
    try:
        import ray
    except ImportError:
        raise ValueError("the sweep needs Ray: pip install 'wmask[sweep]' (or pip install ray)") from None
    overrides = dict(overrides or {})
    results = str(Path(results).resolve())
    for experiment, model in experiments:   # every config error before anything starts
        runner.resolve(experiment, preset, seeds[0], model, overrides)
    started = not ray.is_initialized()
    if started:
        if not address:   # Ray runs its workers at nice 15: beside other work on a laptop they would barely run
            os.environ.setdefault("RAY_worker_niceness", "0")
        ray.init(address=address, num_cpus=None if address else num_cpus, include_dashboard=False,
                 log_to_driver=False, configure_logging=False)
    task = ray.remote(run_seed).options(num_cpus=cpus_per_task, num_gpus=gpus_per_task, max_retries=retries,
                                        retry_exceptions=True)
    threads = max(1, int(cpus_per_task))
    pending = {task.remote(e, m, preset, s, results, overrides, device, threads, stale): (e, m, s)
               for e, m in experiments for s in seeds}
    rows = []
    try:
        from tqdm.auto import tqdm
        with tqdm(total=len(pending), desc="sweep", unit="task", disable=not progress) as bar:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                e, m, s = pending.pop(done[0])
                row = {"experiment": runner.label(e, m), "seed": s}
                try:
                    rows.append({**row, **ray.get(done[0]), "error": ""})
                except Exception as err:   # the task failed every attempt
                    rows.append({**row, "status": "failed", "host": "", "device": "", "wall_time_s": 0.0,
                                 "error": str(err).strip().splitlines()[-1][:200] if str(err).strip() else repr(err)})
                bar.update()
    except KeyboardInterrupt:
        for ref in pending:
            ray.cancel(ref, force=True)
        raise
    finally:
        if started:
            ray.shutdown()
    for experiment, model in experiments:   # the summary and tables, as a sequential run of the finished seeds
        ok = sorted(r["seed"] for r in rows if r["experiment"] == runner.label(experiment, model)
                    and r["status"] != "failed")
        if ok:
            runner.run(experiment, preset, ok, results, device, 1, progress=False, model=model,
                       overrides=overrides, stale=stale)
    order = {runner.label(e, m): i for i, (e, m) in enumerate(experiments)}
    return sorted(rows, key=lambda r: (order[r["experiment"]], r["seed"]))


def table(rows: list[dict]) -> str:
    """The sweep's final table, a line per task."""
    lines = [f"{'experiment':18s} {'seed':>4s}  {'status':8s} {'host':16s} {'device':28s} {'time':>7s}  error"]
    for r in rows:
        lines.append(f"{r['experiment']:18s} {r['seed']:4d}  {r['status']:8s} {r['host'][:16]:16s} "
                     f"{r['device'][:28]:28s} {r['wall_time_s']:6.0f}s  {r['error']}")
    return "\n".join(lines)
