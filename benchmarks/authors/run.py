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
   stderr to ``run.log`` there; a seed with a ``done.json`` is not rerun (resumable per seed);
3. reads their TensorBoard event file and exported mask logits back (with ``--python``, which has tensorboard and
   torch), and writes ``<results>/<experiment>/cpu/{summary.json,accuracy.csv,layers.csv[,sharing.csv]}`` with our
   column names and mask names.

This script itself needs only the standard library; the extraction step re-runs this file under ``--python``.
Mistakes print one line ``authors-run: error: ...`` and exit with code 2 (bad arguments) or 1 (a failed run, naming
its log file).
"""
from __future__ import annotations

import argparse
import csv
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

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
PATCH_DIR = HERE / "patches"
AUTHORS_REPO = "https://github.com/RobertCsordas/modules"

# Why each patch is needed (also in README.md). None changes what is computed.
PATCH_REASONS = {
    "01-tasks-optional-torchvision.patch":
        "tasks/__init__.py imports every task eagerly; only the CIFAR-10 ResNet task needs torchvision (not "
        "installed): its import is wrapped in try/except ImportError, so that one task is unavailable",
    "02-sampler-base-init.patch":
        "framework/loader/sampler.py: three samplers pass data_source to torch.utils.data.Sampler.__init__, which "
        "current torch rejects (TypeError); the base constructor is called with no argument (it stored nothing)",
    "03-no-tensorboard-server.patch":
        "framework/helpers/training_helper.py: with -log tb the helper launches a TensorBoard server subprocess and "
        "asserts its binary exists; the launch is commented out, the SummaryWriter event files are still written",
}


class UserError(Exception):
    """A one-line error for the user (exit code 2)."""


class RunError(Exception):
    """A failed run (exit code 1)."""


# --------------------------------------------------------------------------------------------------------------
# Experiments: our cpu configuration expressed in their flags
# --------------------------------------------------------------------------------------------------------------

def _addmul_flags(seed: int) -> list[str]:
    # ours: results/addmul/cpu, network "fnn": 42-400-400-200-20, base 8,000 steps (Adam 1e-3, batch 128, clip 1),
    # masks 7,000 steps, alpha 1e-4, mask lr 3e-2, K = 4, biases unmasked, clip over all parameters
    return ["-name", f"addmul_ff_400_s{seed}", "-reset", "1", "-task", "addmul_ff", "-layer_sizes", "400,400,200",
            "-n_digits", "2", "-batch_size", "128", "-lr", "1e-3", "-stop_after", "8000", "-step_per_mask", "7000",
            "-mask_loss_weight", "1e-4", "-mask_lr", "3e-2", "-bias_no_mask", "1", "-test_interval", "1000",
            "-gpu", "none", "-log", "tb", "-seed", str(seed)]


def _double_addition_flags(seed: int) -> list[str]:
    # ours: results/double_addition/cpu, network "fnn": 80-400-400-200-40, base 5,000 steps, masks 7,000 steps at
    # mask lr 3e-2, alpha 4e-4 (otherwise as add/mul)
    return ["-name", f"tuple_ff_400_s{seed}", "-reset", "1", "-task", "tuple_ff", "-layer_sizes", "400,400,200",
            "-n_digits", "2", "-batch_size", "128", "-lr", "1e-3", "-stop_after", "5000", "-step_per_mask", "7000",
            "-mask_loss_weight", "4e-4", "-mask_lr", "3e-2", "-bias_no_mask", "1", "-test_interval", "1000",
            "-gpu", "none", "-log", "tb", "-seed", str(seed)]


def _scan_flags(seed: int) -> list[str]:
    # ours: the former SCAN cpu preset (SCAN has no cpu preset now: below target on two cores), results in git history
    # before this version and its settings in results/authors/scan/cpu/summary.json: LSTM encoder-decoder, 2 layers x 128, embedding 16, dropout 0.5,
    # teacher forcing 0.5, base 3,500 steps (Adam 1e-3, batch 128, clip 5), masks 900 steps, alpha 3e-5, mask lr 3e-2,
    # K = 4, biases unmasked, clip over all parameters. -test_interval 3500 gives the base validation at its last step
    # (and one more periodic validation inside the turn-left stage); -test_batch_size only batches evaluation.
    return ["-name", f"scan_lstm_128_s{seed}", "-reset", "1", "-task", "scan", "-n_layers", "2", "-state_size", "128",
            "-encoder_decoder.embedding_size", "16", "-dropout", "0.5", "-batch_size", "128", "-lr", "1e-3",
            "-grad_clip", "5", "-stop_after", "3500", "-step_per_mask", "900", "-mask_loss_weight", "3e-5",
            "-mask_lr", "3e-2", "-bias_no_mask", "1", "-test_interval", "3500", "-test_batch_size", "1024",
            "-gpu", "none", "-log", "tb", "-seed", str(seed)]


def _prepare_scan(seed_dir: Path, data_dir: Path):
    """Their Scan dataset downloads the 8 split files from GitHub into ./cache/scan unless they are there: copy
    ours (the same canonical files) so nothing is fetched."""
    src = data_dir / "scan"
    files = sorted(src.glob("*_split/tasks_*_*.txt"))
    if len(files) < 8:
        raise UserError(f"--data-dir {data_dir}: expected the SCAN split files under {src}/*_split/")
    dst = seed_dir / "cache" / "scan"
    dst.mkdir(parents=True, exist_ok=True)
    for f in files:
        if not (dst / f.name).exists():
            (dst / f.name).write_bytes(f.read_bytes())


EXPERIMENTS = {
    "addmul": {"flags": _addmul_flags, "network": "fnn", "base_steps": 8000, "mask_steps": 7000},
    "double_addition": {"flags": _double_addition_flags, "network": "fnn", "base_steps": 5000, "mask_steps": 7000},
    "scan": {"flags": _scan_flags, "network": "lstm", "base_steps": 3500, "mask_steps": 900, "prepare": _prepare_scan},
}

# --smoke: the same code paths in about a minute (never written to the results folder unless asked)
SMOKE_OVERRIDES = {"-stop_after": "200", "-step_per_mask": "100", "-test_interval": "100"}
SMOKE_OVERRIDES_SCAN = {"-stop_after": "100", "-step_per_mask": "50", "-test_interval": "100"}


def build_flags(experiment: str, seed: int, smoke: bool) -> list[str]:
    flags = EXPERIMENTS[experiment]["flags"](seed)
    if smoke:
        over = SMOKE_OVERRIDES_SCAN if experiment == "scan" else SMOKE_OVERRIDES
        for i in range(0, len(flags), 2):
            if flags[i] in over:
                flags[i + 1] = over[flags[i]]
        flags[1] = flags[1] + "_smoke"
    return flags


def flag(flags: list[str], name: str) -> str:
    return flags[flags.index(name) + 1]


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
# Running one seed
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
    flags = build_flags(experiment, seed, args.smoke)
    seed_dir = Path(args.work_dir) / (experiment + ("-smoke" if args.smoke else "")) / f"seed{seed}"
    done = seed_dir / "done.json"
    save_dir = seed_dir / "save" / flag(flags, "-name")
    argv = [args.python, str(Path(args.modules_dir) / "main.py")] + flags
    if done.exists():
        info = json.loads(done.read_text())
        if info.get("rc") == 0 and info.get("argv", [None])[2:] == argv[2:] and save_dir.is_dir():
            print(f"authors-run: {experiment} seed {seed}: finished before ({done}), not rerun", flush=True)
            info["reused"] = True
            return info
        print(f"authors-run: {experiment} seed {seed}: {done} is from another command or failed; rerunning",
              flush=True)
    seed_dir.mkdir(parents=True, exist_ok=True)
    running = seed_dir / "running.json"
    if running.exists():
        pid = json.loads(running.read_text()).get("pid")
        if pid and _alive(pid):
            raise UserError(f"{experiment} seed {seed} is running already (pid {pid}, {running}); wait for it")
    if "prepare" in EXPERIMENTS[experiment]:
        EXPERIMENTS[experiment]["prepare"](seed_dir, Path(args.data_dir))
    log = seed_dir / "run.log"
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads),
               PYTHONUNBUFFERED="1")
    print(f"authors-run: {experiment} seed {seed}: running (log {log})", flush=True)
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
            "finished": _dt.datetime.now().isoformat(timespec="seconds")}
    if rc != 0:
        raise RunError(f"{experiment} seed {seed} failed (exit {rc}); see {log}")
    done.write_text(json.dumps(info, indent=1))
    print(f"authors-run: {experiment} seed {seed}: done in {info['wall_s']:.0f} s", flush=True)
    return info


# --------------------------------------------------------------------------------------------------------------
# Extraction (runs under --python: tensorboard, torch and numpy are there)
# --------------------------------------------------------------------------------------------------------------

def extract(save_dir: str) -> dict:
    """Every scalar of the run's event file (tag -> [[step, value], ...]) and, per exported mask stage and tensor,
    the kept count (logit > 0), the size and the pairwise intersections needed for IoU / IoMin / sharing."""
    import glob

    import numpy as np
    import torch
    from tensorboard.backend.event_processing import event_accumulator as ea

    files = sorted(glob.glob(os.path.join(save_dir, "tensorboard", "events.out.tfevents.*")))
    if not files:
        raise SystemExit(f"no TensorBoard event file under {save_dir}/tensorboard")
    scalars: dict[str, list] = {}
    for f in files:
        acc = ea.EventAccumulator(f, size_guidance={ea.SCALARS: 0, ea.IMAGES: 1, ea.HISTOGRAMS: 1,
                                                    ea.TENSORS: 1, ea.COMPRESSED_HISTOGRAMS: 1})
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            scalars.setdefault(tag, []).extend([[e.step, e.value] for e in acc.Scalars(tag)])
    for v in scalars.values():
        v.sort(key=lambda e: e[0])

    mask_root = os.path.join(save_dir, "export", "stage_final_masks")
    stages = {}
    if os.path.isdir(mask_root):
        for d in sorted(os.listdir(mask_root)):
            stage = int(d.split("_")[1])
            stages[stage] = {}
            for f in sorted(os.listdir(os.path.join(mask_root, d))):
                # their export_tensor: torch.save(logits.numpy()); a numpy array needs weights_only=False
                logits = torch.load(os.path.join(mask_root, d, f), weights_only=False)
                stages[stage][f[:-4]] = np.asarray(logits) > 0     # as their paper/plot_*_iou.py: logit > 0
    masks = {}
    idx = sorted(stages)
    names = sorted(stages[idx[0]]) if idx else []
    for name in names:
        ms = {s: stages[s][name] for s in idx}
        entry = {"size": int(next(iter(ms.values())).size),
                 "kept": {str(s): int(m.sum()) for s, m in ms.items()}, "and": {}, "or": {}}
        for i in idx:
            for j in idx:
                if i < j:
                    entry["and"][f"{i},{j}"] = int((ms[i] & ms[j]).sum())
                    entry["or"][f"{i},{j}"] = int((ms[i] | ms[j]).sum())
        if "output_projection_weight" in name and next(iter(ms.values())).ndim == 2:
            # per output row (token): kept in each stage, and removed relative to stage 0 (m_0 & ~m_s)
            entry["rows_kept"] = {str(s): m.sum(1).astype(int).tolist() for s, m in ms.items()}
            entry["rows_removed_vs_0"] = {str(s): (ms[idx[0]] & ~m).sum(1).astype(int).tolist()
                                          for s, m in ms.items() if s != idx[0]}
        masks[name] = entry
    vocab = None
    cache = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(save_dir))), "cache", "scan", "scan.pth")
    if os.path.isfile(cache):     # their SCAN vocabularies (id -> word); the decoder's extra last row is EOS
        v = torch.load(cache, weights_only=False)
        vocab = {"out": {int(k): w for k, w in v["out_voc"]["inv_words"].items()}}
    return {"event_files": files, "scalars": scalars, "masks": masks, "vocab": vocab}


def run_extract(args, save_dir: Path, out: Path) -> dict:
    r = subprocess.run([args.python, str(Path(__file__).resolve()), "--_extract", str(save_dir), "--_out", str(out)],
                       capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
    if r.returncode != 0:
        tail = (r.stderr.strip().splitlines() or ["?"])[-1]
        raise RunError(f"reading the logs of {save_dir} failed: {tail}")
    return json.loads(out.read_text())


# --------------------------------------------------------------------------------------------------------------
# Conversion to our tidy tables
# --------------------------------------------------------------------------------------------------------------

def _last(scalars: dict, tag: str, at: int | None = None):
    ev = scalars.get(tag)
    if not ev:
        raise RunError(f"tag {tag!r} not in the event file")
    if at is not None:
        ev = [e for e in ev if e[0] == at]
        if not ev:
            raise RunError(f"tag {tag!r} has no value at step {at}")
    return ev[-1]


def their_layer_name(name: str) -> str:
    """Their FeedforwardModel's ``layers_<j>_weight`` -> our nn.Sequential name ``<2j>.weight``."""
    parts = name.split("_")
    if parts[0] == "layers" and parts[1].isdecimal() and parts[2:] == ["weight"]:
        return f"{2 * int(parts[1])}.weight"
    return name


def convert(experiment: str, seed: int, flags: list[str], data: dict, network: str) -> dict:
    sc = data["scalars"]
    base_step = int(flag(flags, "-stop_after"))
    rows, sources = [], []

    def add(mask, on, tag, at=None):
        step, value = _last(sc, tag, at)
        rows.append({"seed": seed, "network": network, "mask": mask, "evaluated on": on, "accuracy": value})
        sources.append({"mask": mask, "evaluated on": on, "tag": tag, "step": step})

    if experiment == "addmul":
        ops = {"+": "add", "×": "mul"}
        stage_names = {"control": "verify", "+": "add", "×": "mul"}
        for on, t in ops.items():
            add("full", on, f"validation/{t}/accuracy", at=base_step)
        for mask, st in stage_names.items():
            for on, t in ops.items():      # the last periodic validation of the stage (deterministic mask)
                add(mask, on, f"analyzer/{st}/validation/{t}/accuracy")
        for mask, st in stage_names.items():
            for on, t in ops.items():      # inverted mask, after the stage
                add(f"¬{mask}", on, f"inverse_mask_test/{st}/{t}/accuracy")
        stage_label = {0: "control", 1: "+", 2: "×"}
        pair = (1, 2)
    elif experiment == "double_addition":
        pairs = {"pair 1": 0, "pair 2": 1}
        stage_label = {0: "control", 1: "pair 1", 2: "pair 2"}
        for on, t in pairs.items():
            add("full", on, f"validation/iid/accuracy/tuple/{t}", at=base_step)
        for s, mask in stage_label.items():
            for on, t in pairs.items():    # at the end of the stage, both pairs evaluated
                add(mask, on, f"final_accuracy/{s}/iid/accuracy/tuple/{t}")
        for s, mask in stage_label.items():
            for on, t in pairs.items():
                add(f"¬{mask}", on, f"inverse_mask_test/split_{s}/iid/accuracy/tuple/{t}")
        pair = (1, 2)
    elif experiment == "scan":
        return convert_scan(seed, flags, data, network)
    else:
        raise UserError(f"no converter for {experiment}")

    # per-tensor IoU / IoMin of the two subtask masks (stages 1 and 2), kept counts of every stage
    layers = []
    key = f"{pair[0]},{pair[1]}"
    tot = {"and": 0, "or": 0, "size": 0, "kept": {str(s): 0 for s in stage_label}}
    for name, m in sorted(data["masks"].items(), key=lambda kv: their_layer_name(kv[0])):
        inter, union = m["and"][key], m["or"][key]
        n_min = min(m["kept"][str(pair[0])], m["kept"][str(pair[1])])
        row = {"seed": seed, "network": network, "IoMin": inter / n_min if n_min else float("nan"),
               "IoU": inter / union if union else float("nan")}
        row.update({f"kept {stage_label[s]}": m["kept"][str(s)] for s in stage_label})
        row.update({"layer": their_layer_name(name), "size": m["size"]})
        layers.append(row)
        tot["and"] += inter
        tot["or"] += union
        tot["size"] += m["size"]
        for s in stage_label:
            tot["kept"][str(s)] += m["kept"][str(s)]
    n_min = min(tot["kept"][str(pair[0])], tot["kept"][str(pair[1])])
    total = {"seed": seed, "network": network, "IoMin": tot["and"] / n_min if n_min else float("nan"),
             "IoU": tot["and"] / tot["or"] if tot["or"] else float("nan")}
    total.update({f"kept {stage_label[s]}": tot["kept"][str(s)] for s in stage_label})
    total.update({"layer": "total", "size": tot["size"]})
    layers.append(total)

    sharing = []
    if experiment == "addmul":
        k1, k2 = tot["kept"]["1"], tot["kept"]["2"]
        sharing.append({"seed": seed, "network": network, "clip_mode": "all", "weights": tot["size"],
                        "shared + in ×": tot["and"] / k1 if k1 else float("nan"),
                        "shared × in +": tot["and"] / k2 if k2 else float("nan"),
                        "IoU": total["IoU"], "IoMin": total["IoMin"]})
    their_sharing = {k: v[-1][1] for k, v in sc.items() if k.startswith("mask_stat/all/")}
    return {"accuracy": rows, "sources": sources, "layers": layers, "sharing": sharing,
            "their_logged_mask_stat": their_sharing}


SCAN_TESTS = {"iid": "simple", "jump": "addprim_jump", "length": "length", "turn_left": "addprim_turn_left"}
SCAN_STAGES = ["simple", "jump", "length", "turn_left"]     # their mask stages 0..3


def convert_scan(seed: int, flags: list[str], data: dict, model: str) -> dict:
    """Their SCAN LSTM -> our results/scan/cpu tables: accuracy (seed, model, variant, test, accuracy) and removed
    (seed, model, mask, token, removed %: per output token, 100 |m_simple & ~m_split| / |m_simple| of that row)."""
    sc = data["scalars"]
    base_step = int(flag(flags, "-stop_after"))
    rows, sources = [], []

    def add(variant, test, tag, at=None):
        step, value = _last(sc, tag, at)
        rows.append({"seed": seed, "model": model, "variant": variant, "test": SCAN_TESTS[test], "accuracy": value})
        sources.append({"variant": variant, "test": SCAN_TESTS[test], "tag": tag, "step": step})

    for t in SCAN_TESTS:
        add("full", t, f"validation/{t}/accuracy/total", at=base_step)
    for st in SCAN_STAGES:        # at the end of each stage (analysis_results), deterministic mask, no dropout
        for t in SCAN_TESTS:
            add(f"mask {SCAN_TESTS.get(st, st)}", t, f"analysis_results/{st}/{t}/accuracy/total")
    removed = []
    out = [m for n, m in data["masks"].items() if n.startswith("decoder_output_projection_weight")]
    if out and data.get("vocab"):
        m = out[0]
        inv = {int(k): w for k, w in data["vocab"]["out"].items()}    # JSON keys are strings
        tokens = [inv.get(i, "<eos>" if i == len(inv) else f"#{i}") for i in range(len(m["rows_kept"]["0"]))]
        for s, rem in sorted(m["rows_removed_vs_0"].items()):
            name = SCAN_TESTS.get(SCAN_STAGES[int(s)], SCAN_STAGES[int(s)])
            for tok, r, k in zip(tokens, rem, m["rows_kept"]["0"]):
                removed.append({"seed": seed, "model": model, "mask": name, "token": tok,
                                "removed %": 100.0 * r / k if k else float("nan")})
    kept = [{"seed": seed, "model": model, "tensor": n, "size": m["size"],
             **{f"kept mask {SCAN_TESTS.get(SCAN_STAGES[int(s)], SCAN_STAGES[int(s)])}": k for s, k in sorted(m["kept"].items())}}
            for n, m in sorted(data["masks"].items())]
    return {"accuracy": rows, "sources": sources, "layers": kept, "sharing": [], "removed": removed,
            "their_logged_mask_stat": {k: v[-1][1] for k, v in sc.items() if k.startswith("mask_stat/all/")}}


ACC_COLS = ["seed", "network", "mask", "evaluated on", "accuracy"]
SCAN_ACC_COLS = ["seed", "model", "variant", "test", "accuracy"]
REMOVED_COLS = ["seed", "model", "mask", "token", "removed %"]
SHARING_COLS = ["seed", "network", "clip_mode", "weights", "shared + in ×", "shared × in +", "IoU", "IoMin"]


def write_csv(path: Path, rows: list[dict], cols: list[str] | None = None):
    if not rows:
        return
    cols = cols or sorted(rows[0].keys())
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        for r in rows:
            w.writerow(r)
    os.replace(tmp, path)


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
    p.add_argument("--data-dir", default="/work/shared/data", help="holds scan/ (SCAN split files; default %(default)s)")
    p.add_argument("--smoke", action="store_true", help="200 base + 100 mask steps; results to <exp>/smoke/")
    p.add_argument("--_extract", help=argparse.SUPPRESS)
    p.add_argument("--_out", help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args._extract:
        Path(args._out).write_text(json.dumps(extract(args._extract)))
        return 0
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
        runs = {}
        old = out_dir / "summary.json"
        if old.exists():   # keep finished seeds of earlier invocations in the tables
            for r in json.loads(old.read_text()).get("runs", []):
                runs[r["seed"]] = r
        for seed in seeds:
            info = run_seed(args, args.experiment, seed)
            flags = build_flags(args.experiment, seed, args.smoke)
            save_dir = Path(info["cwd"]) / "save" / flag(flags, "-name")
            data = run_extract(args, save_dir, Path(info["cwd"]) / "extracted.json")
            conv = convert(args.experiment, seed, flags, data, exp["network"])
            runs[seed] = {"seed": seed, "command": info.get("command") or shlex.join(info["argv"]),
                          "argv": info["argv"], "cwd": info["cwd"], "wall_time_s": info["wall_s"],
                          "finished": info.get("finished"), "log": str(Path(info["cwd"]) / "run.log"),
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
        scan = args.experiment == "scan"
        write_csv(out_dir / "accuracy.csv", [r for x in ordered for r in x["accuracy"]],
                  SCAN_ACC_COLS if scan else ACC_COLS)
        lrows = [r for x in ordered for r in x["layers"]]
        if lrows:   # our order: seed, network, then the other columns sorted (as results/<exp>/cpu/layers.csv)
            first = ["seed", "model", "tensor", "size"] if scan else ["seed", "network"]
            write_csv(out_dir / ("kept.csv" if scan else "layers.csv"), lrows,
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


MAPPING_NOTES = {
    "addmul": {
        "full": "validation/{add,mul}/accuracy at the last base step (no masks)",
        "control, +, ×": "analyzer/{verify,add,mul}/validation/{add,mul}/accuracy, the last periodic validation of "
                         "the stage (every 1,000 steps; deterministic mask logit >= 0)",
        "¬control, ¬+, ¬×": "inverse_mask_test/{verify,add,mul}/{add,mul}/accuracy (NOT(logit > 0), biases kept)",
        "test sets": "their 10k-example valid set (RandomState(0x12345678 + 2)) restricted to + or ×",
        "layers": "export/stage_final_masks/stage_{0,1,2}/layers_<j>_weight.pth -> our <2j>.weight; IoU/IoMin of "
                  "stage 1 (+) vs stage 2 (×) on logit > 0 as their paper/plot_addmul_iou.py; 'total' pools counts",
        "sharing": "from the exported masks with our definition (sum |m+ & m×| / sum |m+|); their own logged "
                   "mask_stat/all/shared_i divides by the union instead (kept in their_logged_mask_stat)",
    },
    "scan": {
        "full": "validation/{iid,jump,length,turn_left}/accuracy/total at the last base step (their greedy decoder "
                "applies embedding dropout 0.5 here: F.dropout without training=, see README)",
        "mask <split>": "analysis_results/{simple,jump,length,turn_left}/<test>/accuracy/total at the end of each "
                        "stage (dropout set to 0 for mask training and evaluation)",
        "tests": "their whole test files (iid = simple test 4,182, jump 7,706, length 3,920, turn_left 1,208 lines); "
                 "ours: the first 1,000 lines of each",
        "removed": "decoder_output_projection_weight rows, 100 |m_simple & ~m_split| / |m_simple| (Fig. 4b)",
    },
    "double_addition": {
        "full": "validation/iid/accuracy/tuple/{0,1} at the last base step",
        "control, pair 1, pair 2": "final_accuracy/{0,1,2}/iid/accuracy/tuple/{0,1} (end of each stage, both pairs)",
        "¬control, ¬pair 1, ¬pair 2": "inverse_mask_test/split_{0,1,2}/iid/accuracy/tuple/{0,1} (plain inversion, "
                                      "-inv_mask_exclude_io none; our '(I/O kept)' rows have no counterpart)",
        "layers": "IoU/IoMin of stage 1 (pair 1) vs stage 2 (pair 2) on logit > 0 as their paper/plot_tuple_iou.py",
    },
}

if __name__ == "__main__":
    sys.exit(main())
