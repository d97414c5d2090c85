"""The engine on a GPU in one short sitting: correctness checks, the step benchmark, the paper presets' projected
time (``make gpu-check``).

Usage: ``python benchmarks/gpu_check.py [--dry-run] [--out DIR] [--budget SECONDS]``. On a machine without CUDA
(or with ``--dry-run``) the same code runs on the CPU at tiny sizes, in well under a minute: that proves the paths,
not the numbers. Findings go to ``$OUT`` when set, else ``_build/gpu-check/``: ``gpu_check.json`` (the record,
rewritten after every item, so a run cut short still leaves what it found) and ``gpu_check.md`` (the same as
tables). The format is described in ``benchmarks/README.md``.

1. **checks** (pass/fail, each with its detail): mask sets in one pass equal the same sets in separate passes
   (outputs and logit gradients); the compiled sampler on the device draws the masks the CPU draws; the SCAN
   LSTM's masks batched through the recurrent drop-ins equal torch's own (cuDNN) layer one sample at a time;
   mask training interrupted and resumed from its checkpoint equals the uninterrupted run bit for bit; a NaN in a
   batch stops training with an error naming the step and the set.
2. **bench**: the cases of ``mask_step.py`` (plain, one set, 4 sets batched and, for recurrent models, one by
   one, 10 sets in passes / one pass / one after another) for the FNN, the SCAN LSTM and Transformer and the
   CIFAR-10 CNN, run in this process; peak memory from ``torch.cuda.max_memory_allocated`` (on the CPU: none).
3. **projections**: each paper preset's time on this device from those step times (``mask_step.paper_stages``).

Items that would start after ``--budget`` seconds (default 420) are recorded as skipped.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
import mask_step  # noqa: E402
import wmask  # noqa: E402
from wmask.experiments import seq2seq  # noqa: E402
from wmask.masks import MaskSet  # noqa: E402
from wmask.experiments.models import FNN, SimpleCNN  # noqa: E402
from wmask.train import MaskTrainConfig, train_masks  # noqa: E402

BENCH_MODELS = ("fnn_big", "scan_lstm", "scan_transformer", "cifar_cnn")
TINY = {   # the dry run's stand-ins: the same kinds of model and data, a few units wide
    "fnn_big": mask_step.Bench(lambda: FNN(42, [32, 32], 20), mask_step._digits(42, 2), 8, "tiny FNN"),
    "scan_lstm": mask_step.Bench(lambda: seq2seq.Seq2SeqLSTM(14, 8, hidden=8, emb=4),
                                 lambda b, g: mask_step._scan(b, g, 5, 6), 8, "tiny SCAN LSTM"),
    "scan_transformer": mask_step.Bench(
        lambda: seq2seq.Seq2SeqTransformer(14, 8, d=8, heads=2, enc_layers=1, dec_layers=1, ff=8),
        lambda b, g: mask_step._scan(b, g, 5, 6), 8, "tiny SCAN Transformer"),
    "cifar_cnn": mask_step.Bench(lambda: SimpleCNN(2), lambda b, g: ((torch.randn(b, 3, 16, 16, generator=g),),
                                                                    torch.randint(0, 10, (b,), generator=g)), 8,
                                 "tiny CNN"),
}
CLOSE = dict(rtol=1e-4, atol=1e-5)


# -- 1. checks: each returns its detail and raises (an AssertionError) when it fails ------------------------------
def _random_logits(ms: MaskSet) -> None:
    g = torch.Generator().manual_seed(1)
    for t in ms.logits.values():
        t.data.copy_(torch.randn(t.shape, generator=g).to(t.device))


def check_sets_batched_equal_separate(device, impl):
    torch.manual_seed(0)
    net = FNN(6, [16, 16], 3).to(device)
    x = torch.randn(3, 8, 6, device=device)
    runs = []
    for per_pass in (3, 1):
        ms = MaskSet(net, n_sets=3, seed=2, impl=impl)
        _random_logits(ms)
        outs = []
        with ms.passes():
            for a in range(0, 3, per_pass):
                ms.next_pass()
                out = ms.sample_forward(x[a:a + per_pass], k=2, sets=(a, a + per_pass))
                out.square().sum().backward()
                outs.append(out.detach())
        runs.append((torch.cat(outs), [t.grad for t in ms.logits.values()]))
    torch.testing.assert_close(runs[0][0], runs[1][0], **CLOSE)
    for u, v in zip(runs[0][1], runs[1][1]):
        torch.testing.assert_close(u, v, **CLOSE)
    return f"3 sets, one pass vs three passes: outputs and gradients equal (impl {ms.impl})"


def check_sampler_matches_cpu(device, impl):
    torch.manual_seed(0)
    net = FNN(6, [16, 16], 3)
    x = torch.randn(2, 8, 6)
    outs = []
    for dev in (torch.device("cpu"), device):
        ms = MaskSet(net.to(dev), n_sets=2, seed=5, impl="eager" if dev.type == "cpu" else impl)
        _random_logits(ms)
        outs.append(ms.sample_forward(x.to(dev), k=4).cpu())
    torch.testing.assert_close(outs[1], outs[0], **CLOSE)
    return f"sampled forward on {device.type} ({ms.impl}) equals the CPU's eager sampler"


def check_recurrent_batched_equal_loop(device, impl):
    torch.manual_seed(0)
    net = seq2seq.Seq2SeqLSTM(6, 5, hidden=8, layers=2, emb=4, teacher_forcing=1.0).to(device).eval()
    src = torch.randint(1, 6, (2, 4, 5), device=device)
    src[:, :, 3:] *= torch.randint(0, 2, (2, 4, 1), device=device)
    tgt = torch.randint(0, 5, (2, 4, 3), device=device)
    got = []
    for mode in ("vmap", "loop"):
        ms = MaskSet(net, n_sets=2, seed=3, mode=mode, impl=impl)
        _random_logits(ms)
        out = ms.sample_forward((src, tgt), k=2)
        got.append((out, torch.autograd.grad(out.square().sum(), list(ms.logits.values()))))
    torch.testing.assert_close(got[0][0], got[1][0], **CLOSE)
    for u, v in zip(got[0][1], got[1][1]):
        torch.testing.assert_close(u, v, **CLOSE)
    return "seq2seq LSTM: drop-ins under vmap equal torch's layer one sample at a time (outputs, gradients)"


class _Interrupted(Exception):
    pass


def check_resume_bit_for_bit(device, impl):
    def masks():
        torch.manual_seed(0)
        net = seq2seq.Seq2SeqLSTM(6, 5, hidden=8, layers=2, emb=4, dropout=0.5, teacher_forcing=0.5)
        return MaskSet(net.to(device).eval(), n_sets=2, seed=1, impl=impl)

    def data(step):
        g = torch.Generator().manual_seed(step)
        src, tgt = torch.randint(1, 6, (2, 4, 5), generator=g), torch.randint(0, 5, (2, 4, 3), generator=g)
        return (src.to(device), tgt.to(device)), tgt.to(device)

    def failing(step, failed=[]):   # noqa: B006 - fails once
        if step == 7 and not failed:
            failed.append(step)
            raise _Interrupted
        return data(step)

    cfg = MaskTrainConfig(steps=10, lr=0.05, alpha=1e-2, k=2, batch_size=4, checkpoint_every=2, log_every=1)
    full = masks()
    train_masks(full, data, seq2seq.seq_loss, cfg, progress=False)
    with tempfile.TemporaryDirectory() as tmp:
        ck = Path(tmp) / "masks.ckpt"
        try:
            train_masks(masks(), failing, seq2seq.seq_loss, cfg, progress=False, checkpoint=ck)
            raise AssertionError("the interruption did not happen")
        except _Interrupted:
            pass
        resumed = masks()
        train_masks(resumed, failing, seq2seq.seq_loss, cfg, progress=False, checkpoint=ck)
    differ = [n for n in full.names if not torch.equal(full.logits[n], resumed.logits[n])]
    assert not differ, f"resumed logits differ from the uninterrupted run's: {differ}"
    return "seq2seq LSTM, teacher forcing 0.5: interrupted at step 7 of 10, resumed: logits bit for bit equal"


def check_nan_is_named(device, impl):
    torch.manual_seed(0)
    model = FNN(6, [16], 3).to(device)

    def data(step):
        x = torch.randn(2, 8, 6, generator=torch.Generator().manual_seed(step))
        if step == 3:
            x[1, 2, 0] = float("nan")
        return x.to(device), x[..., :3].argmax(-1).to(device)

    def loss(out, y):
        return F.cross_entropy(out.flatten(0, 1), y.flatten(), reduction="none").view(2, -1).mean(1)

    cfg = MaskTrainConfig(steps=6, lr=0.05, alpha=1e-2, k=2, batch_size=8, log_every=1)
    try:
        train_masks(MaskSet(model, n_sets=2, seed=1, impl=impl), data, loss, cfg, progress=False)
    except FloatingPointError as err:
        assert "step 3" in str(err) and "set 1" in str(err) and "input batch" in str(err), str(err)
        return f"NaN in set 1's batch at step 3: {str(err).splitlines()[0][:100]}"
    raise AssertionError("no error for a NaN in the input batch")


CHECKS = [check_sets_batched_equal_separate, check_sampler_matches_cpu, check_recurrent_batched_equal_loop,
          check_resume_bit_for_bit, check_nan_is_named]


# -- the record ---------------------------------------------------------------------------------------------------
def ratios(r: dict) -> dict:
    """The benchmark's ratios from one model's cases (median seconds)."""
    t = {k: v["median_s"] for k, v in r.items() if "median_s" in v}
    out = {"masked/plain": t["masked"] / t["plain"], "M4/(4 plain)": t["masked4"] / (4 * t["plain"]),
           "sequential/batched": t["sequential"] / t["batched"], "sequential/one_pass": t["sequential"] / t["one_pass"]}
    if "vmap4" in t:
        out["stepwise4/vmap4"] = t["stepwise4"] / t["vmap4"]
        out["loop4/vmap4"] = t["loop4"] / t["vmap4"]
        out["auto/best(vmap4, loop4)"] = t["masked4"] / min(t["vmap4"], t["loop4"])
    return out


def markdown(rec: dict) -> str:
    lines = [f"# GPU check: {rec['device']}", "",
             f"torch {rec['torch']}, python {rec['python']}, commit {rec['commit']}, dry run: {rec['dry_run']}, "
             f"sampler {rec['impl']}, "
             f"{rec['seconds']:.0f} s", "", "## Checks", "", "| check | result | seconds | detail |",
             "|---|---|---|---|"]
    lines += [f"| {c['name']} | {c['result']} | {c['seconds']:.1f} | {c['detail']} |" for c in rec["checks"]]
    lines += ["", "## Bench (median seconds a step; peak MiB)", "",
              "| model | case | median s | peak MiB | passes |", "|---|---|---|---|---|"]
    for model, r in rec["bench"].items():
        for name, v in r["cases"].items():
            peak = "–" if v.get("peak_bytes") is None else f"{v['peak_bytes'] / 2**20:.0f}"
            med = v["median_s"] if "median_s" in v else v.get("error", "skipped")
            lines.append(f"| {model} | {name} | {med if isinstance(med, str) else f'{med:.4f}'} | {peak} | "
                         f"{v.get('passes', '–')} |")
    lines += ["", "## Ratios", "", "| model | ratio | value |", "|---|---|---|"]
    lines += [f"| {m} | {k} | {v:.2f}× |" for m, r in rec["bench"].items() for k, v in r.get("ratios", {}).items()]
    lines += ["", "## Paper presets, projected (one seed)", "", "| model | what | hours |", "|---|---|---|"]
    lines += [f"| {p['model']} | {p['what']} | {p['hours']:.2f} |" for p in rec["projections"]]
    return "\n".join(lines) + "\n"


def write(rec: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_check.json").write_text(json.dumps(rec, indent=1) + "\n")
    (out / "gpu_check.md").write_text(markdown(rec))


def run(device: torch.device, dry: bool, out: Path, budget: float, reps: int, impl: str) -> dict:
    t0 = time.perf_counter()
    elapsed = lambda: time.perf_counter() - t0   # noqa: E731
    rec = {"device": wmask.utils.device_name(device), "torch": torch.__version__,
           "python": platform.python_version(), "commit": wmask.utils.git_commit(), "dry_run": dry, "impl": impl,
           "seconds": 0.0, "checks": [], "bench": {}, "projections": []}

    def save():
        rec["seconds"] = elapsed()
        write(rec, out)

    for fn in CHECKS:
        name, t = fn.__name__.removeprefix("check_"), time.perf_counter()
        if elapsed() > budget:
            rec["checks"].append({"name": name, "result": "skipped", "seconds": 0.0, "detail": "time budget"})
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                detail, result = fn(device, impl), "pass"
        except Exception as err:  # noqa: BLE001 - every failure is a finding
            detail, result = f"{type(err).__name__}: {' '.join(str(err).split())[:300]}", "FAIL"
            traceback.print_exc()
        rec["checks"].append({"name": name, "result": result, "seconds": time.perf_counter() - t, "detail": detail})
        print(f"check {name}: {result} ({detail})", flush=True)
        save()
    for model in BENCH_MODELS:
        bench = TINY[model] if dry else mask_step.BENCHES[model]
        entry = rec["bench"][model] = {"what": bench.what, "cases": {}}
        recurrent = bool(wmask.recurrent.has_recurrent(bench.build()))
        for name in mask_step.CASES:
            if name in mask_step.RECURRENT_ONLY and not recurrent:
                continue
            if elapsed() > budget:
                entry["cases"][name] = {"error": "skipped (time budget)"}
                continue
            try:
                if device.type == "cuda":
                    torch.cuda.empty_cache()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    r = mask_step.case(name, model, device, reps, bench, impl)
                if device.type != "cuda":
                    r["peak_bytes"] = None   # one process for every case: its max RSS says nothing of one case
            except Exception as err:  # noqa: BLE001
                r = {"error": f"{type(err).__name__}: {' '.join(str(err).split())[:200]}"}
                traceback.print_exc()
            entry["cases"][name] = r
            print(f"bench {model} {name}: {r.get('median_s', r.get('error'))}", flush=True)
            save()
        cases = entry["cases"]
        if all("median_s" in cases.get(c, {}) for c in ("plain", "masked", "masked4", "batched", "one_pass",
                                                         "sequential")):
            entry["ratios"] = ratios(cases)
            for what, stages in mask_step.paper_stages(model):
                hours = sum(s * mask_step.step_seconds(cases, m) for s, m in stages) / 3600
                rec["projections"].append({"model": model, "what": what, "hours": hours,
                                           "stages": [[s, m, mask_step.step_seconds(cases, m)] for s, m in stages]})
        save()
    return rec


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dry-run", action="store_true", help="tiny models on the CPU (the default without CUDA)")
    ap.add_argument("--out", default=None, help="folder for the findings (default: $OUT, else _build/gpu-check)")
    ap.add_argument("--budget", type=float, default=420.0, help="start no item after this many seconds")
    ap.add_argument("--reps", type=int, default=None, help="timed steps a case (default 5; dry run 2)")
    ap.add_argument("--impl", default=None, help="mask sampler (default: auto, compiled; the dry run: eager, "
                                                 "as compiling the CPU kernel takes longer than the rest)")
    a = ap.parse_args(argv)
    dry = a.dry_run or not torch.cuda.is_available()
    device = torch.device("cpu" if dry else "cuda")
    out = Path(a.out or os.environ.get("OUT") or Path(__file__).resolve().parent.parent / "_build" / "gpu-check")
    if dry:
        wmask.set_threads(1)
    with contextlib.suppress(Exception):
        wmask.retain_freed_memory()
    # one process runs every model: let the compiled sampler specialise to each one's shapes
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)
    rec = run(device, dry, out, a.budget, a.reps or (2 if dry else 5), a.impl or ("eager" if dry else "auto"))
    failed = [c["name"] for c in rec["checks"] if c["result"] == "FAIL"]
    print(f"wrote {out / 'gpu_check.md'}; {len(rec['checks']) - len(failed)}/{len(rec['checks'])} checks passed"
          f"{'; failed: ' + ', '.join(failed) if failed else ''}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
