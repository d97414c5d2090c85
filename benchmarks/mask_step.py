"""Mask-training step vs plain training step, and M mask sets batched vs one after another, for every model the
book trains.

Prints medians of several repetitions, measured in one run on one machine, as ratios. Each case runs in its own
process so that its peak memory can be read. Usage: ``python benchmarks/mask_step.py [--model NAME|all]
[--device auto|cpu|cuda] [--reps 5] [--threads N] [--cases plain,masked,...] [--json PATH]`` (``make bench`` runs
every model but the paper's Mathematics Transformer, ``math_paper``, whose ten-set cases take long on a CPU;
``--model math_paper --cases plain,masked,masked4`` measures what its projection needs). ``--json`` writes the step
times and the projections with where and when they were measured.

Cases: ``plain`` (Adam, clip 1, one batch); ``masked`` (one mask set, K = 4 samples); ``masked4`` (M = 4 sets, as
the SCAN chapter trains); ``stepwise4`` (the same through the recurrent drop-ins
with autograd's per-time-step weight gradients instead of the LSTM's one-matmul backward, recurrent models only);
``loop4`` (the same, samples one after another: how recurrent models ran before their batched drop-ins, recurrent
models only); ``batched`` (M = 10 sets, in the passes ``train_masks`` makes under its
default memory budget, :mod:`wmask.memory`, counting weights and one set's measured activations) and ``one_pass``
(M = 10 sets in one pass, whatever the memory) against ``sequential`` (10 single-set steps).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

import wmask
import wmask.memory
import wmask.recurrent
from wmask.experiments.models import FNN, RepeatLSTM, SimpleCNN
from wmask.experiments.seq2seq import Seq2SeqLSTM, Seq2SeqTransformer

K, M = 4, 10


@dataclass
class Bench:
    """A model as the book trains it: its constructor, a batch of ``b`` inputs and targets, what it is."""
    build: Callable[[], torch.nn.Module]
    data: Callable[[int, torch.Generator], tuple[tuple[torch.Tensor, ...], torch.Tensor]]
    b: int
    what: str


def _digits(n_in, n_digits):
    return lambda b, g: ((torch.randn(b, n_in, generator=g),), torch.randint(0, 10, (b, n_digits), generator=g))


def _scan(b, g, src_len=9, tgt_len=24):
    src = torch.randint(1, 14, (b, src_len), generator=g)
    ends = torch.randint(4, src_len + 1, (b, 1), generator=g)           # commands of 4..9 words, padded with 0
    src = torch.where(torch.arange(src_len) < ends, src, torch.zeros_like(src))
    tgt = torch.randint(0, 8, (b, tgt_len), generator=g)
    return (src, tgt), tgt


def _math(b, g, q_len=40, a_len=4, vocab=48):
    src = torch.randint(1, vocab, (b, q_len), generator=g)
    tgt = torch.randint(1, vocab, (b, a_len), generator=g)
    return (src, tgt), tgt


BENCHES = {
    "fnn_big": Bench(lambda: FNN(42, [2000] * 4, 20), _digits(42, 2), 128, "add/mul FNN 42-2000x4-20 (paper)"),
    "fnn_medium": Bench(lambda: FNN(42, [800] * 4, 20), _digits(42, 2), 128,
                        "add/mul FNN 42-800x4-20 (paper's medium)"),
    "fnn_small": Bench(lambda: FNN(42, [400, 400, 200], 20), _digits(42, 2), 128,
                       "add/mul FNN 42-400-400-200-20 (paper's small, cpu)"),
    "lstm_arith": Bench(lambda: RepeatLSTM(42, 256, 20, layers=2, steps=3), _digits(42, 2), 128,
                        "add/mul LSTM 2x256, 3 steps (paper)"),
    "scan_lstm": Bench(lambda: Seq2SeqLSTM(14, 8), _scan, 256,
                       "SCAN LSTM 2x200 (paper), commands 4-9, actions 24, teacher forcing 0.5"),
    "scan_transformer": Bench(lambda: Seq2SeqTransformer(14, 8), _scan, 256,
                              "SCAN Transformer 3+3 layers, d 100 (paper), commands 4-9, actions 24"),
    "math_transformer": Bench(lambda: Seq2SeqTransformer(48, 48, d=64, heads=4, enc_layers=2, dec_layers=2, ff=128,
                                                         dropout=0.0, tied=True, norm_first=True), _math, 64,
                              "Mathematics Transformer 2+2 layers, d 64, tied (cpu), questions 40, answers 4"),
    "math_paper": Bench(lambda: Seq2SeqTransformer(48, 48, d=512, heads=8, enc_layers=6, dec_layers=6, ff=2048,
                                                   dropout=0.1, tied=True, max_len=192), _math, 128,
                        "Mathematics Transformer 6+6 layers, d 512, tied (paper), questions 40, answers 4"),
    "cifar_cnn": Bench(lambda: SimpleCNN(32), lambda b, g: ((torch.randn(b, 3, 32, 32, generator=g),),
                                                            torch.randint(0, 10, (b,), generator=g)), 128,
                       "CIFAR-10 simple CNN, width 32 (paper)"),
    "mnist_mlp": Bench(lambda: FNN(784, [256] * 4, 10), lambda b, g: ((torch.randn(b, 784, generator=g),),
                                                                      torch.randint(0, 10, (b,), generator=g)), 128,
                       "MNIST MLP 784-256x4-10 (clusterability, permuted MNIST)"),
}
HEAVY = ("math_paper",)      # left out of --model all
CASES = ("plain", "masked", "masked4", "vmap4", "stepwise4", "loop4", "batched", "one_pass", "sequential")
RECURRENT_ONLY = ("vmap4", "stepwise4", "loop4")


def _logits(out, y):
    """Model outputs as ``[..., 10-way or vocab logits]`` aligned with ``y`` (the arithmetic nets emit digit pairs)."""
    return out.unflatten(-1, (y.shape[-1], -1)) if out.dim() == y.dim() else out


def _per_set(out, y):
    out = _logits(out, y)
    return F.cross_entropy(out.flatten(0, -2), y.flatten(), reduction="none").view(y.shape[0], -1).mean(1)


def case(name: str, model: str, device: torch.device, reps: int, bench: Bench | None = None,
         impl: str = "auto") -> dict:
    """One case of one model: median step time and peak memory. ``bench`` replaces ``BENCHES[model]`` (the GPU
    check's dry run passes tiny models); ``impl``: the mask sampler (:class:`wmask.MaskSet`)."""
    torch.manual_seed(0)
    gen, bench = torch.Generator().manual_seed(0), bench or BENCHES[model]
    net = bench.build().to(device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def stacked(n):
        parts = [bench.data(bench.b, gen) for _ in range(n)]
        xs = tuple(torch.stack([p[0][i] for p in parts]).to(device) for i in range(len(parts[0][0])))
        return xs, torch.stack([p[1] for p in parts]).to(device)

    if name == "plain":
        net.train()
        opt = torch.optim.Adam(net.parameters(), 1e-3)
        (xs, y) = bench.data(bench.b, gen)
        xs, y = tuple(x.to(device) for x in xs), y.to(device)

        def step():
            out = _logits(net(*xs), y)
            loss = F.cross_entropy(out.flatten(0, -2), y.flatten())
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            opt.step()
    else:
        n_sets = {"batched": M, "one_pass": M, "masked4": 4, "vmap4": 4, "stepwise4": 4, "loop4": 4}.get(name, 1)
        wmask.recurrent.ONE_MATMUL_GRADIENT = name != "stepwise4"
        copies = M if name == "sequential" else 1
        mode = {"loop4": "loop", "vmap4": "vmap", "stepwise4": "vmap"}.get(name, "auto")
        sets = [wmask.MaskSet(net, n_sets=n_sets, mode=mode, impl=impl) for _ in range(copies)]
        opts = [torch.optim.Adam(list(s.logits.values()), 1e-2) for s in sets]
        data = [stacked(n_sets) for _ in sets]

        per_pass = n_sets
        if name == "batched":   # as train_masks: the budget counts the weights and one set's measured activations
            s, (xs, y) = sets[0], data[0]
            per_pass = wmask.memory.measured_sets_per_pass(
                s, lambda: s.sample_forward(tuple(x[:1] for x in xs), k=K, sets=(0, 1)), K, live=xs)
        bounds = wmask.memory.passes(n_sets, per_pass)

        def step():
            for s, opt, (xs, y) in zip(sets, opts, data):  # "sequential": M single-set steps
                opt.zero_grad(set_to_none=False)
                with s.passes():
                    for a, b in bounds:                     # as train_masks: gradients accumulate over passes
                        s.next_pass()
                        out = s.sample_forward(tuple(x[a:b] for x in xs), k=K, sets=(a, b))
                        reg = sum(wmask.masks.slice_sets(l, a, b).sum() for l in s.logits.values()) * (1e-4 / bench.b)
                        (_per_set(out, y[a:b]).sum() + reg).backward()
                wmask.train.clip_per_set([l.grad for l in s.logits.values()], 1.0)
                opt.step()
    for _ in range(2):
        step()
    sync()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - t0)
    peak = (torch.cuda.max_memory_allocated() if device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    out = {"case": name, "median_s": statistics.median(times), "times_s": times, "peak_bytes": peak}
    return {**out, "passes": len(bounds), "mode": sets[0].mode} if name != "plain" else out


def recurrent(model: str) -> bool:
    return bool(wmask.recurrent.has_recurrent(BENCHES[model].build()))


def run_model(model: str, a, threads: int) -> dict:
    results = {}
    for name in CASES:
        if name not in a.cases or (name in RECURRENT_ONLY and not recurrent(model)):
            continue
        cmd = [sys.executable, __file__, "--case", name, "--model", model, "--device", a.device,
               "--reps", str(a.reps), "--threads", str(threads)]
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode:
            sys.exit(f"{model}: case {name} failed:\n{out.stderr}")
        results[name] = json.loads(out.stdout.strip().splitlines()[-1])
    return results


def paper_stages(model: str) -> list[tuple[str, list[tuple[int, int]]]]:
    """What ``model`` costs in the ``paper`` preset, read from the experiments' configs: rows of (what runs,
    [(steps, sets)]), ``sets`` 0 for a plain training step and M for a mask step of M sets in one batch."""
    from wmask.experiments.runner import EXPERIMENTS
    addmul = EXPERIMENTS["addmul"].config("paper")

    def arith(name):
        n = addmul.networks[name]
        return (f"add/mul {name}: base, 3 masks", [(n.base.steps, 0), (n.mask.steps, 3)])
    if model in ("fnn_small", "fnn_medium", "fnn_big"):
        rows = [arith(model)]
        if model == "fnn_big":   # the clipping variant reuses the base net; the α sweep trains 10 sets on it
            rows += [("add/mul fnn_big_masks_clip: 3 masks", [(addmul.networks[model].mask.steps, 3)]),
                     (f"add/mul α sweep: {2 * len(addmul.sweep_alphas)} masks",
                      [(addmul.networks[model].mask.steps, 2 * len(addmul.sweep_alphas))])]
        return rows
    if model == "lstm_arith":
        return [arith("lstm")]
    if model in ("scan_lstm", "scan_transformer"):
        from wmask.experiments.tasks.scan import SPLITS
        c = EXPERIMENTS["scan"].config("paper", model=model.split("_")[1])
        return [(f"SCAN {c.model}: base, {len(SPLITS) - 1} from-scratch nets, {len(SPLITS)} masks",
                 [(c.base.steps + (len(SPLITS) - 1) * c.scratch_steps, 0), (c.mask.steps, len(SPLITS))])]
    if model == "math_paper":   # one network a module; its two masks in one pass, at the module's own mask batch
        c = EXPERIMENTS["dm_math"].config("paper")
        b = BENCHES[model].b     # a step's time taken as linear in the batch: steps scaled by batch / b
        return [(f"Mathematics {m}: base, 2 masks",
                 [(c.base.steps * c.base.batch_size // b, 0), (mc.steps * mc.batch_size // b, 2)])
                for m, mc in ((m, c.mask_for(m)) for m in c.networks)]
    if model == "cifar_cnn":
        c = EXPERIMENTS["cifar10"].config("paper")
        return [("CIFAR-10: base, 2 control masks, 10 class-removal masks",
                 [(c.base.steps, 0), (c.mask.steps, 2), (c.mask.steps, 10)])]
    return []


def step_seconds(results: dict, sets: int) -> float:
    """Seconds a step of ``sets`` mask sets (0: a plain step), linear between the measured M = 1, 4 and 10 (with
    only M = 1 measured, ``sets`` times its step: batching sets never cost more than that, ``make bench`` found)."""
    if sets == 0:
        return results["plain"]["median_s"]
    known = sorted((m, results[c]["median_s"]) for m, c in ((1, "masked"), (4, "masked4"), (M, "batched"))
                   if c in results)
    if len(known) == 1:
        return sets * known[0][1]
    (m0, t0), (m1, t1) = next(((a, b) for a, b in zip(known, known[1:]) if sets <= b[0]), known[-2:])
    return t0 + (sets - m0) * (t1 - t0) / (m1 - m0)


def projections(model: str, results: dict) -> list[dict]:
    """The paper preset on this machine, one seed, from these step times: ``{model, what, hours, stages}``, each
    stage ``[steps, sets, seconds a step]``; none without the ``plain`` and ``masked`` cases."""
    if "plain" not in results or "masked" not in results:
        return []
    rows = []
    for what, stages in paper_stages(model):
        st = [[steps, sets, step_seconds(results, sets)] for steps, sets in stages]
        rows.append({"model": model, "what": what, "hours": sum(n * t for n, _, t in st) / 3600, "stages": st})
    return rows


def report(model: str, results: dict) -> None:
    r = {k: v["median_s"] for k, v in results.items()}
    mib = {k: v["peak_bytes"] / 2**20 for k, v in results.items()}
    print(f"\n## {model}: {BENCHES[model].what}, B={BENCHES[model].b}, K={K}")
    passes = results.get("batched", {}).get("passes")
    for name, label in (("plain", "plain step"), ("masked", f"masked step (M=1, K={K})"),
                        ("masked4", "masked step (M=4), mode auto"),
                        ("vmap4", "masked step (M=4), batched (vmap)"),
                        ("stepwise4", "masked step (M=4), vmap, per-step grad"),
                        ("loop4", "masked step (M=4), one by one"),
                        ("batched", f"batched step (M={M}), {passes} pass(es)"),
                        ("one_pass", f"batched step (M={M}), one pass"), ("sequential", f"sequential {M} x (M=1)")):
        if name in r:
            print(f"{label:38s} {r[name]:8.4f} s   peak {mib[name]:6.0f} MiB")

    def line(label, needs, text):          # a ratio, printed when its cases were measured (--cases)
        if all(c in r for c in needs):
            print(f"{label:38s} {text()}")
    line("ratio masked / plain", ("masked", "plain"), lambda: f"{r['masked'] / r['plain']:.2f}x")
    line("ratio masked M=4 / (4 x plain)", ("masked4", "plain"), lambda: f"{r['masked4'] / (4 * r['plain']):.2f}x")
    line("speed-up one-matmul vs per-step grad", ("stepwise4", "vmap4", "plain"),
         lambda: f"{r['stepwise4'] / r['vmap4']:.2f}x (vmap M=4 / (4 x plain): {r['vmap4'] / (4 * r['plain']):.2f}x, "
                 f"per-step: {r['stepwise4'] / (4 * r['plain']):.2f}x)")
    line("speed-up M=4 batched vs one by one", ("loop4", "vmap4"), lambda: f"{r['loop4'] / r['vmap4']:.2f}x")
    line(f"auto (chose {results.get('masked4', {}).get('mode')}) / the better of vmap, loop",
         ("masked4", "vmap4", "loop4"), lambda: f"{r['masked4'] / min(r['vmap4'], r['loop4']):.2f}x")
    line("throughput batched / sequential", ("sequential", "batched", "one_pass"),
         lambda: f"{r['sequential'] / r['batched']:.2f}x (one pass: {r['sequential'] / r['one_pass']:.2f}x)")
    line("peak memory batched / sequential", ("sequential", "batched", "one_pass"),
         lambda: f"{mib['batched'] / mib['sequential']:.2f}x (one pass: {mib['one_pass'] / mib['sequential']:.2f}x)")
    for p in projections(model, results):
        parts = [f"{n:,} x {t:.4f} s" for n, _, t in p["stages"]]
        print(f"paper preset, {p['what']}: {' + '.join(parts)} = {p['hours']:.1f} h a seed (projected)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=["all", *BENCHES], default="all")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--cases", default=",".join(CASES), help="comma-separated cases to run (default: all)")
    ap.add_argument("--json", help="also write the step times and projections to this file")
    ap.add_argument("--case", help=argparse.SUPPRESS)
    a = ap.parse_args()
    a.cases = [c.strip() for c in a.cases.split(",") if c.strip()]
    unknown = [c for c in a.cases if c not in CASES]
    if unknown:
        ap.error(f"unknown case {unknown[0]!r}; known: {', '.join(CASES)}")
    device = wmask.get_device(a.device)
    threads = wmask.set_threads(a.threads)
    wmask.retain_freed_memory()
    if a.case:
        print(json.dumps(case(a.case, a.model, device, a.reps)))
        return
    machine = (f"{wmask.utils.device_name(device)}; torch {torch.__version__}; python {platform.python_version()}; "
               f"{threads} threads; median of {a.reps} steps after 2 warm-up steps")
    print("# " + machine)
    record = {"machine": machine, "commit": wmask.utils.git_commit(Path(__file__).parent),
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "load": os.getloadavg()[0],
              "models": {}, "projections": []}
    for model in ([m for m in BENCHES if m not in HEAVY] if a.model == "all" else [a.model]):
        results = run_model(model, a, threads)
        report(model, results)
        record["models"][model] = {"what": BENCHES[model].what, "batch": BENCHES[model].b, "k": K, "cases": results}
        record["projections"] += projections(model, results)
        if a.json:
            Path(a.json).parent.mkdir(parents=True, exist_ok=True)
            Path(a.json).write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
