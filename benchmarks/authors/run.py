#!/usr/bin/env python3
"""Run the authors' released code (RobertCsordas/modules) at our ``cpu`` configurations and turn its logs into our
tidy tables.

    python benchmarks/authors/run.py addmul --modules-dir /work/authors-modules --python /work/authors-venv/bin/python \
        --seeds 0,1
    python benchmarks/authors/run.py double_addition --modules-dir ... --python ... --seeds 0,1

What it does, per experiment:
1. checks ``--modules-dir`` (a checkout of their repository, never vendored here) and applies the patches in
   ``benchmarks/authors/patches/`` (skipping those already applied; see README.md for why each is needed);
2. runs ``main.py`` once per seed, on CPU (``-gpu none -log tb``), with ``OMP_NUM_THREADS`` = ``--threads``, in
   ``<work-dir>/<experiment>/seed<N>/`` (their code writes ``save/<name>/`` under its working directory), stdout and
   stderr to ``run.log`` there; a seed with a ``done.json`` is not rerun (resumable per seed). CIFAR-10 runs in two
   phases (the base network, then the mask stages on it), each with its own ``run-<phase>.log`` and
   ``done-<phase>.json``;
3. reads their TensorBoard event file and exported mask logits back (with ``--python``, which has tensorboard and
   torch), and writes ``<results>/<experiment>/cpu/{summary.json,accuracy.csv,layers.csv[,sharing.csv]}`` (CIFAR-10:
   ``base.csv``, ``drops.csv``, ``worst.csv``, ``kept.csv``) with our
   column names and mask names.

This script itself needs only the standard library (``experiments.py``: the flags and tag mapping; ``convert.py``:
our tables); the extraction step runs ``extract.py`` under ``--python``.
Mistakes print one line ``authors-run: error: ...`` and exit with code 2 (bad arguments) or 1 (a failed run, naming
its log file).
"""
from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

from convert import ACC_COLS, REMOVED_COLS, SCAN_ACC_COLS, SHARING_COLS, TABLE_COLS, convert, write_csv
from experiments import (AUTHORS_REPO, EXPERIMENTS, HERE, MAPPING_NOTES, PATCH_DIR, PATCH_REASONS, REPO, RunError,
                         UserError, build_flags, flag)


# --------------------------------------------------------------------------------------------------------------
# Patches
# --------------------------------------------------------------------------------------------------------------

def _patch_ok(modules_dir: Path, patch: Path, reverse: bool) -> bool:
    cmd = ["patch", "-p1", "--dry-run", "-s", "-f"] + (["-R"] if reverse else []) + ["-i", str(patch)]
    return subprocess.run(cmd, cwd=modules_dir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0


def apply_patches(modules_dir: Path) -> list[dict]:
    out = []
    for patch in sorted(PATCH_DIR.glob("*.patch")):
        if _patch_ok(modules_dir, patch, reverse=True):
            state = "already applied"
        elif _patch_ok(modules_dir, patch, reverse=False):
            subprocess.run(["patch", "-p1", "-s", "-f", "-i", str(patch)], cwd=modules_dir, check=True)
            state = "applied"
        else:
            raise UserError(f"patch {patch.name} neither applies to nor is applied in {modules_dir} "
                            f"(is it a checkout of {AUTHORS_REPO} at the expected commit?)")
        out.append({"file": f"benchmarks/authors/patches/{patch.name}",
                    "sha256": hashlib.sha256(patch.read_bytes()).hexdigest(),
                    "reason": PATCH_REASONS.get(patch.name, ""), "state": state})
    return out


def modules_commit(modules_dir: Path, given: str | None) -> str:
    if given:
        return given
    r = subprocess.run(["git", "-C", str(modules_dir), "rev-parse", "HEAD"], capture_output=True, text=True)
    if r.returncode == 0:
        return r.stdout.strip()
    return "unknown (not a git checkout; pass --commit)"


# --------------------------------------------------------------------------------------------------------------
# Running one seed, reading it back
# --------------------------------------------------------------------------------------------------------------

def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def run_seed(args, experiment: str, seed: int) -> dict:
    """Run one seed: one invocation of their ``main.py``, or, for an experiment with ``phases`` (CIFAR-10: the base
    network, then the mask stages on it through their own ``-restore_pretrained``), one per phase, each with its own
    ``done[-<phase>].json`` so a finished phase is not rerun. Returns the last phase's record (``save_dir``: the
    folder to read back) with the wall times of all phases summed."""
    flags = build_flags(experiment, seed, args.smoke)
    seed_dir = Path(args.work_dir) / (experiment + ("-smoke" if args.smoke else "")) / f"seed{seed}"
    seed_dir.mkdir(parents=True, exist_ok=True)
    running = seed_dir / "running.json"
    if running.exists():
        pid = json.loads(running.read_text()).get("pid")
        if pid and _alive(pid):
            raise UserError(f"{experiment} seed {seed} is running already (pid {pid}, {running}); wait for it")
    if "prepare" in EXPERIMENTS[experiment]:
        EXPERIMENTS[experiment]["prepare"](seed_dir, Path(args.data_dir))
    phases = EXPERIMENTS[experiment].get("phases", lambda f, d: [("", f, None)])(flags, seed_dir)
    infos = [_run_phase(args, experiment, seed, seed_dir, *phase) for phase in phases]
    info = dict(infos[-1])
    if len(infos) > 1:
        info["phases"] = infos
        info["wall_s"] = sum(i["wall_s"] for i in infos)
        info["command"] = " && ".join(i["command"] for i in infos)
    return info


def _run_phase(args, experiment: str, seed: int, seed_dir: Path, phase: str, flags: list[str], before) -> dict:
    name = f"{experiment} seed {seed}" + (f" ({phase})" if phase else "")
    done = seed_dir / (f"done-{phase}.json" if phase else "done.json")
    save_dir = seed_dir / "save" / flag(flags, "-name")
    argv = [args.python, str(Path(args.modules_dir) / "main.py")] + flags
    if done.exists():
        info = json.loads(done.read_text())
        if info.get("rc") == 0 and info.get("argv", [None])[2:] == argv[2:] and save_dir.is_dir():
            print(f"authors-run: {name}: finished before ({done}), not rerun", flush=True)
            return {**info, "reused": True, "save_dir": str(save_dir)}
        print(f"authors-run: {name}: {done} is from another command or failed; rerunning", flush=True)
    if before is not None:
        before(seed_dir)
    log = seed_dir / (f"run-{phase}.log" if phase else "run.log")
    running = seed_dir / "running.json"
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads),
               PYTHONUNBUFFERED="1")
    print(f"authors-run: {name}: running (log {log})", flush=True)
    start = time.time()
    with open(log, "w") as f:
        proc = subprocess.Popen(argv, cwd=seed_dir, env=env, stdout=f, stderr=subprocess.STDOUT)
        running.write_text(json.dumps({"pid": proc.pid, "runner_pid": os.getpid(), "start": start}))
        try:
            rc = proc.wait()
        finally:
            running.unlink(missing_ok=True)
    end = time.time()
    info = {"rc": rc, "start": start, "end": end, "wall_s": end - start, "argv": argv, "cwd": str(seed_dir),
            "env": {"OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)},
            "command": f"cd {shlex.quote(str(seed_dir))} && OMP_NUM_THREADS={args.threads} "
                       f"MKL_NUM_THREADS={args.threads} " + shlex.join(argv),
            "finished": _dt.datetime.now().isoformat(timespec="seconds"), "log": str(log)}
    if rc != 0:
        raise RunError(f"{name} failed (exit {rc}); see {log}")
    done.write_text(json.dumps(info, indent=1))
    print(f"authors-run: {name}: done in {info['wall_s']:.0f} s", flush=True)
    return {**info, "save_dir": str(save_dir)}


def earlier_runs(summary: Path, experiment: str, smoke: bool) -> dict[int, dict]:
    """The finished seeds of earlier invocations (``summary``, if there) that ran with today's flags, by seed; a
    seed run with other flags is dropped, with a message, so the tables never mix settings."""
    runs = {}
    for r in (json.loads(summary.read_text()).get("runs", []) if summary.exists() else []):
        want = build_flags(experiment, r["seed"], smoke)
        if r.get("argv", [])[2:2 + len(want)] == want:
            runs[r["seed"]] = r
        else:
            print(f"authors-run: {summary}: seed {r['seed']} was run with other flags; left out", flush=True)
    return runs


def run_extract(args, save_dir: Path, out: Path) -> dict:
    r = subprocess.run([args.python, str(HERE / "extract.py"), str(save_dir), str(out)],
                       capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
    if r.returncode != 0:
        tail = (r.stderr.strip().splitlines() or ["?"])[-1]
        raise RunError(f"reading the logs of {save_dir} failed: {tail}")
    return json.loads(out.read_text())


def torch_info(python: str, threads: int) -> dict:
    code = "import torch,json;print(json.dumps({'torch':torch.__version__,'threads':torch.get_num_threads()}))"
    r = subprocess.run([python, "-c", code], capture_output=True, text=True,
                       env=dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads)))
    if r.returncode != 0:
        raise UserError(f"--python {python} cannot import torch: "
                        f"{(r.stderr.strip().splitlines() or ['?'])[-1]}")
    info = json.loads(r.stdout)
    r = subprocess.run([python, "-c", "import sys;print(sys.version.split()[0])"], capture_output=True, text=True)
    info["python"] = r.stdout.strip()
    return info


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="authors-run", description=__doc__.split("\n\n")[0])
    p.add_argument("experiment", nargs="?", choices=sorted(EXPERIMENTS))
    p.add_argument("--modules-dir", help="a checkout of RobertCsordas/modules (patched in place)")
    p.add_argument("--python", help="python of a venv with their requirements (torch, tensorboard, ...)")
    p.add_argument("--seeds", default="0,1", help="comma-separated seeds (default 0,1)")
    p.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS for their code (default 1)")
    p.add_argument("--work-dir", default="/work/authors-runs", help="where their runs write (outside the repo)")
    p.add_argument("--results", default=str(REPO / "results" / "authors"), help="our tidy tables go here")
    p.add_argument("--commit", help="their commit, if --modules-dir is not a git checkout")
    p.add_argument("--data-dir", default="/work/shared/data", help="holds scan/ (SCAN split files) and cifar10/ (any "
                   "layout our loader reads); default %(default)s")
    p.add_argument("--smoke", action="store_true", help="200 base + 100 mask steps; results to <exp>/smoke/")
    args = p.parse_args(argv)

    try:
        if not args.experiment:
            raise UserError("name an experiment: " + ", ".join(sorted(EXPERIMENTS)))
        if not args.modules_dir:
            raise UserError("--modules-dir is required (a checkout of RobertCsordas/modules)")
        md = Path(args.modules_dir)
        if not (md / "main.py").is_file() or not (md / "tasks").is_dir():
            raise UserError(f"--modules-dir {md}: not a checkout of RobertCsordas/modules (no main.py / tasks/)")
        if not args.python:
            raise UserError("--python is required (the venv with their requirements)")
        if not (Path(args.python).is_file() and os.access(args.python, os.X_OK)):
            raise UserError(f"--python {args.python}: no such executable")
        try:
            seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
        except ValueError:
            raise UserError(f"--seeds {args.seeds!r}: give comma-separated integers") from None
        if not seeds:
            raise UserError("--seeds: no seed given")
        tinfo = torch_info(args.python, args.threads)
        patches = apply_patches(md)
        commit = modules_commit(md, args.commit)

        out_dir = Path(args.results) / args.experiment / ("smoke" if args.smoke else "cpu")
        out_dir.mkdir(parents=True, exist_ok=True)
        exp = EXPERIMENTS[args.experiment]
        runs = earlier_runs(out_dir / "summary.json", args.experiment, args.smoke)
        for seed in seeds:
            info = run_seed(args, args.experiment, seed)
            flags = build_flags(args.experiment, seed, args.smoke)
            save_dir = Path(info["save_dir"])
            data = run_extract(args, save_dir, Path(info["cwd"]) / "extracted.json")
            conv = convert(args.experiment, seed, flags, data, exp["network"])
            runs[seed] = {"seed": seed, "command": info.get("command") or shlex.join(info["argv"]),
                          "argv": info["argv"], "cwd": info["cwd"], "wall_time_s": info["wall_s"],
                          "finished": info.get("finished"),
                          "log": info.get("log") or str(Path(info["cwd"]) / "run.log"),
                          **({"phases": [{k: p[k] for k in ("command", "wall_s", "finished", "log") if k in p}
                                         for p in info["phases"]]} if info.get("phases") else {}),
                          "env": info.get("env"), **({"note": info["note"]} if info.get("note") else {}),
                          "event_files": data["event_files"], **conv}
        ordered = [runs[s] for s in sorted(runs)]
        summary = {
            "experiment": args.experiment, "preset": "smoke" if args.smoke else "cpu",
            "source": "the authors' released code, run here; numbers read back from its TensorBoard event files and "
                      "exported mask logits by benchmarks/authors/run.py",
            "provenance": {
                "authors_repo": AUTHORS_REPO, "authors_commit": commit, "patches": patches,
                "torch": tinfo["torch"], "python": tinfo["python"], "torch_threads": tinfo["threads"],
                "env": {"OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)},
                "device": f"cpu ({platform.machine()}, {os.cpu_count()} cores on the machine)",
                "our_commit": subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True,
                                             text=True).stdout.strip(),
                "seeds": sorted(runs), "wall_time_s": {str(r["seed"]): r["wall_time_s"] for r in ordered},
                "mapping": MAPPING_NOTES[args.experiment],
            },
            "runs": ordered,
        }
        tmp = out_dir / "summary.json.tmp"
        tmp.write_text(json.dumps(summary, indent=1, ensure_ascii=False))
        os.replace(tmp, out_dir / "summary.json")
        scan, cifar = args.experiment == "scan", args.experiment == "cifar10"
        write_csv(out_dir / "accuracy.csv", [r for x in ordered for r in x["accuracy"]],
                  SCAN_ACC_COLS if scan else ACC_COLS)
        for name, cols in TABLE_COLS.items():      # CIFAR-10: base.csv, drops.csv, worst.csv as ours
            write_csv(out_dir / f"{name}.csv", [r for x in ordered for r in x.get("tables", {}).get(name, [])], cols)
        lrows = [r for x in ordered for r in x["layers"]]
        if lrows:   # our order: seed, network, then the other columns sorted (as results/<exp>/cpu/layers.csv)
            first = (["seed", "model", "tensor", "size"] if scan else ["seed", "tensor", "size"] if cifar
                     else ["seed", "network"])
            write_csv(out_dir / ("kept.csv" if scan or cifar else "layers.csv"), lrows,
                      first + sorted(k for k in lrows[0] if k not in first))
        write_csv(out_dir / "removed.csv", [r for x in ordered for r in x.get("removed", [])], REMOVED_COLS)
        write_csv(out_dir / "sharing.csv", [r for x in ordered for r in x["sharing"]], SHARING_COLS)
        print(f"authors-run: wrote {out_dir}/summary.json and CSVs for seeds {sorted(runs)}")
        return 0
    except UserError as e:
        print(f"authors-run: error: {e}", file=sys.stderr)
        return 2
    except RunError as e:
        print(f"authors-run: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
