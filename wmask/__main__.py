"""Command line: ``python -m wmask {info,show,run,sweep,data} ...``; ``python -m wmask run -h`` for the options.

Errors in what you ask for (an unknown key, a bad value, a file that cannot be read or written) print one line,
``wmask: error: ...``, and exit with code 2. Ctrl-C keeps every finished stage and checkpoint; rerunning the same
command resumes from them.
"""
from __future__ import annotations

import argparse
import os
import sys

import torch


def _experiment_args(p: argparse.ArgumentParser, experiments) -> None:
    p.add_argument("experiment", help=f"one of: {', '.join(sorted(experiments))}")
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="config overrides in dotted keys, e.g. networks.fnn.mask.steps=500 ('show' lists the keys); "
                        "they may come anywhere after the command")
    p.add_argument("--preset", default="cpu", help="smoke (seconds), cpu (minutes on a laptop), paper (GPU)")
    p.add_argument("--model", default=None, help="for experiments with a choice of model (scan: lstm, transformer; "
                   "cifar10: cnn, resnet)")


def parser() -> argparse.ArgumentParser:
    from .experiments import runner
    ap = argparse.ArgumentParser(prog="wmask", description="Differentiable weight masks: run the experiments.")
    sub = ap.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="versions, device and mask sampler in use")
    s = sub.add_parser("show", help="print an experiment's resolved config (paper defaults + preset + overrides)")
    _experiment_args(s, runner.EXPERIMENTS)
    r = sub.add_parser("run", help="run an experiment at a preset and write results with provenance")
    _experiment_args(r, runner.EXPERIMENTS)
    r.add_argument("--seeds", default="0", help="e.g. 0,1,2 or 0-9 (default 0)")
    r.add_argument("--results", default="results", help="results folder (default: results)")
    r.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:N")
    r.add_argument("--threads", default=None, help="torch CPU threads (default: WMASK_THREADS or cores)")
    r.add_argument("--data-dir", default=None, help="dataset directory (default: $WMASK_DATA)")
    r.add_argument("--stale", default="error", choices=["error", "reuse", "recompute"],
                   help="stored work made by another version of wmask: refuse it (default), reuse it (the summary "
                        "then also merges selections made by other versions, naming each one's commit), or redo it")
    r.add_argument("--networks", default=None, metavar="NET[,NET...]",
                   help="run only these of the preset's networks ('show' lists them), e.g. --preset paper --networks "
                        "fnn_small on a CPU; the summary merges every selection of a seed and names what was run")
    r.add_argument("--quiet", action="store_true", help="no progress bars")
    w = sub.add_parser("sweep", help="every experiment x seed of a preset as a task on Ray (a local instance, or "
                       "--address of a cluster); results merged as 'run' writes them")
    w.add_argument("experiments", metavar="EXPERIMENT[,EXPERIMENT...]",
                   help=f"of: {', '.join(sorted(runner.EXPERIMENTS))}; a model as scan-transformer")
    w.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, as for 'run'")
    w.add_argument("--preset", default="cpu", help="smoke, cpu, paper")
    w.add_argument("--seeds", default="0", help="e.g. 0-9 (default 0)")
    w.add_argument("--results", default="results", help="results folder, on storage every node shares")
    w.add_argument("--address", default=None, help="a running Ray cluster (e.g. auto, or host:6379); default: start "
                   "a local instance and stop it at the end")
    w.add_argument("--num-cpus", type=int, default=None, help="CPUs of the local instance (default: all)")
    w.add_argument("--cpus-per-task", type=int, default=1, help="CPUs (and torch threads) per task (default 1)")
    w.add_argument("--gpus-per-task", type=float, default=0, help="GPUs per task, e.g. 1 or 0.5 (default 0)")
    w.add_argument("--retries", type=int, default=2, help="attempts after a task dies or fails; each resumes from "
                   "its checkpoints (default 2)")
    w.add_argument("--device", default="auto", help="as for 'run' (a task sees only the GPUs Ray gives it)")
    w.add_argument("--stale", default="error", choices=["error", "reuse", "recompute"], help="as for 'run'")
    w.add_argument("--quiet", action="store_true", help="no progress bar")
    st = sub.add_parser("status", help="every committed result: what ran, and whether it is still what this code "
                        "computes (current) or stale (with the files changed since)")
    st.add_argument("--results", default="results", help="results folder (default: results)")
    g = sub.add_parser("results", help="regenerate results at a preset (every experiment, or --experiments), "
                       "from a clean tree; prints what ran, was reused or failed")
    g.add_argument("--preset", default="cpu", help="smoke, cpu, paper (default cpu)")
    g.add_argument("--experiments", default=None, metavar="EXP[,EXP...]",
                   help=f"of: {', '.join(sorted(runner.EXPERIMENTS))}, or a model's label as scan-transformer "
                        "(default: every experiment that has the preset)")
    g.add_argument("--seeds", default=None, help="e.g. 0-2 (default: the seeds committed, else 0,1,2)")
    g.add_argument("--results", default="results", help="results folder (default: results)")
    g.add_argument("--threads", default=None, help="torch CPU threads (default: WMASK_THREADS or cores)")
    g.add_argument("--allow-dirty", action="store_true", help="run even with uncommitted changes to wmask/ "
                   "(the results then name a +dirty commit)")
    g.add_argument("--quiet", action="store_true", help="no progress bars")
    d = sub.add_parser("data", help="datasets: generate SCAN from its grammar; write CIFAR-10 as pickled batches")
    d.add_argument("dataset", choices=["scan", "cifar10"])
    d.add_argument("--generate", metavar="OUT_DIR",
                   help="scan: write the generated dataset in the canonical layout and file names")
    d.add_argument("--seed", type=int, default=0, help="scan: seed of the (non-canonical) simple split")
    d.add_argument("--write-batches", metavar="OUT_DIR", help="cifar10: write the copy found in --data-dir / "
                   "$WMASK_DATA as cifar-10-batches-py pickles (for tools that read only that layout)")
    d.add_argument("--data-dir", default=None, help="cifar10: dataset directory (default: $WMASK_DATA)")
    return ap


def _data(a) -> int:
    need = {"scan": "--generate", "cifar10": "--write-batches"}[a.dataset]
    if not getattr(a, need[2:].replace("-", "_")):
        raise ValueError(f"data {a.dataset} needs {need} OUT_DIR")
    if a.dataset == "scan":
        from .experiments.data import scan
        files = scan.write_generated(a.generate, a.seed)
        print(f"wrote {len(files)} files to {a.generate} (simple_split is a seeded split, not the canonical one)")
        return 0
    from .experiments.data import cifar10
    arrays = cifar10.load()      # --data-dir is $WMASK_DATA by now: its cifar10/ or itself
    files = cifar10.write_batches(a.write_batches, arrays)
    md5 = "" if arrays["checksum"] in arrays["dataset"] else f" (md5 {arrays['checksum']})"
    print(f"wrote {len(files)} files to {a.write_batches} from {arrays['dataset']}{md5}")
    return 0


def _status(a) -> int:
    from .experiments import status
    found = status.summaries(a.results)
    if not found:
        raise ValueError(f"no results under {a.results}/ (expected <experiment>/<preset>/summary.json)")
    rows = [status.row(p) for p in found]
    print(status.table(rows))
    stale = sum(r["status"] != "current" for r in rows)
    print(f"\n{len(rows) - stale} current, {stale} stale" + (": regenerate with make results PRESET=<preset> "
                                                            "EXP=<experiment>" if stale else ""))
    theirs = status.authors_rows(a.results)
    if theirs:
        print(f"\nthe authors' code, run beside ours ({a.results}/authors/):\n" + status.table(theirs))
    return 0


def _results(a) -> int:
    from pathlib import Path

    from .experiments import regenerate, runner
    from .utils import parse_threads
    dirty = regenerate.dirty_files(Path.cwd())
    if dirty and not a.allow_dirty:
        raise ValueError(f"uncommitted changes in {', '.join(dirty[:4])}: commit them first so every result names "
                         "the commit that made it (or pass --allow-dirty)")
    names = None if a.experiments is None else [n.strip() for n in a.experiments.split(",") if n.strip()]
    seeds = None if a.seeds is None else runner.parse_seeds(a.seeds)
    rows = regenerate.regenerate(a.preset, names, seeds, a.results, parse_threads(a.threads), not a.quiet)
    return 1 if any(r["status"] != "ok" for r in rows) else 0


FLAGS = {"--quiet", "-h", "--help"}     # the options that take no value


def overrides_in(argv: list[str]) -> list[int]:
    """Where the ``key=value`` overrides stand in ``argv``: anywhere after the command (argparse would only take
    them before the options), but never as an option's value (``--results out/R-x=1`` is a folder)."""
    found = []
    for i, x in enumerate(argv[1:], 1):
        prev = argv[i - 1]
        value_of_option = i > 1 and prev.startswith("-") and "=" not in prev and prev not in FLAGS
        if "=" in x and not x.startswith("-") and not value_of_option:
            found.append(i)
    return found


def main(argv: list[str] | None = None) -> int:
    from .experiments import config, runner
    argv = list(sys.argv[1:] if argv is None else argv)
    pairs = overrides_in(argv)
    a = parser().parse_args([x for i, x in enumerate(argv) if i not in pairs])
    pairs = [argv[i] for i in pairs]
    if pairs and a.command not in ("show", "run", "sweep"):
        print(f"wmask: error: {a.command} takes no key=value overrides (got {pairs[0]})", file=sys.stderr)
        return 2
    a.overrides = getattr(a, "overrides", []) + pairs
    if getattr(a, "data_dir", None):
        os.environ["WMASK_DATA"] = a.data_dir
    try:
        if a.command == "info":
            from .sampling import resolve_impl
            from .utils import device_name, get_device
            dev = get_device("auto")
            print(f"torch {torch.__version__}; device {device_name(dev)}; sampler {resolve_impl('auto', dev)}")
            return 0
        if a.command == "data":
            return _data(a)
        if a.command == "status":
            return _status(a)
        if a.command == "results":
            return _results(a)
        overrides = config.parse_overrides(a.overrides)
        if a.command == "show":
            print(config.to_yaml(runner.resolve(a.experiment, a.preset, 0, a.model, overrides)), end="")
            return 0
        if a.command == "sweep":
            from .experiments import sweep
            rows = sweep.sweep(sweep.parse_experiments(a.experiments), a.preset, runner.parse_seeds(a.seeds),
                               a.results, overrides, a.address, a.num_cpus, a.cpus_per_task, a.gpus_per_task,
                               a.retries, a.device, a.stale, progress=not a.quiet)
            print(sweep.table(rows))
            failed = sum(r["status"] == "failed" for r in rows)
            print(f"{len(rows) - failed}/{len(rows)} tasks finished or reused; summaries under {a.results}/"
                  + (f"; {failed} failed: rerun the same command to resume them" if failed else ""))
            return 1 if failed else 0
        from .utils import parse_threads
        summary = runner.run(a.experiment, a.preset, runner.parse_seeds(a.seeds), a.results, a.device,
                             parse_threads(a.threads), progress=not a.quiet, model=a.model, overrides=overrides,
                             stale=a.stale, networks=runner.parse_networks(a.networks))
        folder = runner.folder_name(a.preset, overrides)
        computed = summary["computed"]
        reused = [r["seed"] for r in summary["runs"] if r["seed"] not in computed]
        print(f"wrote {a.results}/{summary['experiment']}/{folder}/summary.json (seeds computed: "
              f"{','.join(map(str, computed)) or 'none'}; reused: {','.join(map(str, reused)) or 'none'}; "
              f"{summary['provenance']['wall_time_s']:.0f} s)")
        if "left_out" in summary:
            print(f"wmask: note: left out of the summary: {', '.join(summary['left_out']['files'])}, "
                  f"{summary['left_out']['why']}", file=sys.stderr)
        return 0
    except ValueError as err:
        print(f"wmask: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        where = f" {err.filename}" if err.filename else ""
        print(f"wmask: error: cannot read or write{where}: {err.strerror or err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        where = "the results folder"
        if a.command == "sweep":
            where = f"{a.results}/<experiment>/{runner.folder_name(a.preset, overrides)}"
        if a.command == "run":
            where = f"{a.results}/{runner.label(a.experiment, a.model)}/{runner.folder_name(a.preset, overrides)}"
        print(f"\nwmask: interrupted; finished stages and checkpoints are kept in {where}/seed<N>/: rerun the same "
              "command to resume from them", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
