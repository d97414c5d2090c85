"""Command line: ``python -m wmask {info,run} ...``; ``python -m wmask run -h`` for the options."""
from __future__ import annotations

import argparse
import os
import sys

import torch


def main(argv: list[str] | None = None) -> int:
    from . import runner
    ap = argparse.ArgumentParser(prog="wmask", description="Differentiable weight masks: run the experiments.")
    sub = ap.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="versions, device and mask sampler in use")
    r = sub.add_parser("run", help="run an experiment at a preset and write results with provenance")
    r.add_argument("experiment", help=f"one of: {', '.join(sorted(runner.EXPERIMENTS))}")
    r.add_argument("--preset", default="cpu", help="smoke (seconds), cpu (minutes on a laptop), paper (GPU)")
    r.add_argument("--model", default=None, help="for experiments with a choice of model (scan: lstm, transformer)")
    r.add_argument("--seeds", default="0", help="e.g. 0,1,2 or 0-9 (default 0)")
    r.add_argument("--results", default="results", help="results folder (default: results)")
    r.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:N")
    r.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: WMASK_THREADS or cores)")
    r.add_argument("--data-dir", default=None, help="dataset directory (default: $WMASK_DATA)")
    r.add_argument("--quiet", action="store_true", help="no progress bars")
    d = sub.add_parser("data", help="datasets: generate SCAN from its grammar")
    d.add_argument("dataset", choices=["scan"])
    d.add_argument("--generate", metavar="OUT_DIR", required=True,
                   help="write the generated dataset in the canonical layout and file names")
    d.add_argument("--seed", type=int, default=0, help="seed of the (non-canonical) simple split")
    a = ap.parse_args(argv)
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
            from .data import scan
            files = scan.write_generated(a.generate, a.seed)
            print(f"wrote {len(files)} files to {a.generate} (simple_split is a seeded split, not the canonical one)")
            return 0
        summary = runner.run(a.experiment, a.preset, runner.parse_seeds(a.seeds), a.results, a.device, a.threads,
                             progress=not a.quiet, model=a.model)
        print(f"wrote {a.results}/{summary['experiment']}/{a.preset}/summary.json "
              f"({len(summary['runs'])} seeds, {summary['provenance']['wall_time_s']:.0f} s)")
        return 0
    except ValueError as err:
        print(f"wmask: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
