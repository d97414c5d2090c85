"""Mask-training step vs plain training step, and M mask sets batched vs one after another.

Prints medians of several repetitions, measured in one run on one machine, as ratios. Each case runs in its own
process so that its peak memory can be read. Usage: ``python benchmarks/mask_step.py [--model big|small]
[--device auto|cpu|cuda] [--reps 5] [--threads N]`` (``make bench`` runs both models).
"""
from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

import wmask
from wmask.models import FNN

MODELS = {"big": [2000] * 4, "small": [400, 400, 200]}   # the paper's 4x2000 FNN and its "small" size
B, K, M = 128, 4, 10


def batch(n_sets, gen):
    x = torch.randn(n_sets, B, 42, generator=gen)
    return x, torch.randint(0, 10, (n_sets, B, 2), generator=gen)


def case(name: str, model: str, device: torch.device, reps: int) -> dict:
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    net = FNN(42, MODELS[model], 20).to(device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def loss_per_set(out, y):
        return F.cross_entropy(out.reshape(-1, 10), y.reshape(-1), reduction="none").view(out.shape[0], -1).mean(1)

    if name == "plain":
        opt = torch.optim.Adam(net.parameters(), 1e-3)
        x, y = (t[0].to(device) for t in batch(1, gen))

        def step():
            loss = F.cross_entropy(net(x).view(-1, 10), y.view(-1))
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            opt.step()
    else:
        n_sets = M if name == "batched" else 1
        copies = 1 if name != "sequential" else M
        sets = [wmask.MaskSet(net, n_sets=n_sets) for _ in range(copies)]
        opts = [torch.optim.Adam(list(s.logits.values()), 1e-2) for s in sets]
        data = [tuple(t.to(device) for t in batch(n_sets, gen)) for _ in sets]

        def step():
            for s, opt, (x, y) in zip(sets, opts, data):  # "sequential": M single-set steps
                task = loss_per_set(s.sample_forward(x, k=K), y)
                reg = sum(l.sum() for l in s.logits.values()) * (1e-4 / B)
                opt.zero_grad(set_to_none=False)
                (task.sum() + reg).backward()
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
    return {"case": name, "median_s": statistics.median(times), "times_s": times, "peak_bytes": peak}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=sorted(MODELS), default="big")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--case", help=argparse.SUPPRESS)
    a = ap.parse_args()
    device = wmask.get_device(a.device)
    threads = wmask.set_threads(a.threads)
    wmask.retain_freed_memory()
    if a.case:
        print(json.dumps(case(a.case, a.model, device, a.reps)))
        return
    results = {}
    for name in ("plain", "masked", "batched", "sequential"):
        cmd = [sys.executable, __file__, "--case", name, "--model", a.model, "--device", a.device,
               "--reps", str(a.reps), "--threads", str(threads)]
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode:
            sys.exit(f"case {name} failed:\n{out.stderr}")
        results[name] = json.loads(out.stdout.strip().splitlines()[-1])
    r = {k: v["median_s"] for k, v in results.items()}
    mib = {k: v["peak_bytes"] / 2**20 for k, v in results.items()}
    print(f"# FNN 42-{'-'.join(map(str, MODELS[a.model]))}-20, B={B}, K={K}, M={M}; {wmask.utils.device_name(device)}; "
          f"torch {torch.__version__}; python {platform.python_version()}; median of {a.reps}")
    print(f"plain step                {r['plain']:.4f} s   peak {mib['plain']:.0f} MiB")
    print(f"masked step (M=1, K={K})   {r['masked']:.4f} s   peak {mib['masked']:.0f} MiB")
    print(f"batched step (M={M})       {r['batched']:.4f} s   peak {mib['batched']:.0f} MiB")
    print(f"sequential {M} x (M=1)      {r['sequential']:.4f} s   peak {mib['sequential']:.0f} MiB")
    print(f"ratio masked / plain                   {r['masked'] / r['plain']:.2f}x")
    print(f"throughput batched / sequential        {r['sequential'] / r['batched']:.2f}x")


if __name__ == "__main__":
    main()
