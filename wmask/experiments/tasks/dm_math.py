"""The Mathematics dataset: does a mask trained on easy problems keep the hard ones?

One character-level Transformer per module (the SCAN Transformer of :mod:`wmask.experiments.seq2seq` with tied
input/output
embeddings, so its output layer is left whole), trained on the module's easy, medium and hard training data
together. Then, **in one batched pass**, two masks: a *control* mask trained on all of that training data and an
*easy* mask trained on ``train-easy`` only (the paper's code calls the latter "hard"). Each is evaluated, with the
unmasked network, on the examples held out of each difficulty's training file (10k of v1.0's; proportionally
fewer of a smaller copy, :func:`wmask.experiments.data.dm_math.held_out`). The paper: the easy mask loses much of the
hard
accuracy while the control keeps it, so the network solves hard problems with weights the easy ones do not need.

Every result names its data: the generated copy in this book's data folder is **not** the released v1.0.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from ... import metrics
from .. import seq2seq
from ..data import dm_math as data
from ...evaluate import variants_forward
from ..experiment import Experiment
from ...masks import MaskFilter, MaskSet
from ...train import BaseTrainConfig, MaskTrainConfig, train_masks, train_model
from .arithmetic import stream

SETS = ("control", "easy")                    # the mask sets, trained in one pass
TRAIN_ON = {"control": data.DIFFICULTIES, "easy": ("train-easy",)}
SHORT = {"train-easy": "easy", "train-medium": "medium", "train-hard": "hard"}
# The paper's per-module mask settings (its appendix): alpha, mask lr, mask steps, mask batch.
PAPER_MASKS = {
    "arithmetic__add_or_sub": dict(alpha=2e-5, lr=0.03, steps=30_000, batch_size=256),
    "calculus__differentiate": dict(alpha=1e-5, lr=0.03, steps=40_000, batch_size=128),
    "algebra__linear_1d": dict(alpha=1e-6, lr=0.02, steps=50_000, batch_size=400),
    "polynomials__collect": dict(alpha=1e-6, lr=0.02, steps=50_000, batch_size=256),
    "comparison__sort": dict(alpha=3e-6, lr=0.03, steps=30_000, batch_size=256),
}


@dataclass
class DmMathConfig:
    """The experiment's config; the defaults are its settings where it gives them. ``networks``: one network per module,
    each with its mask settings (overrides of ``mask``); ``--networks comparison__sort`` runs one."""
    networks: dict[str, dict[str, Any]] = field(default_factory=lambda: {m: dict(s) for m, s in PAPER_MASKS.items()})
    net: dict[str, Any] = field(default_factory=lambda: dict(d=512, heads=8, enc_layers=6, dec_layers=6, ff=2048,
                                                             dropout=0.1, tied=True, max_len=192))
    # base training is not in the paper's text: our choice, Adam at 1e-4 (the usual rate for a post-LN Transformer
    # of this size without warm-up; not tuned here), batch 128, clip 1
    base: BaseTrainConfig = field(default_factory=lambda: BaseTrainConfig(
        steps=100_000, lr=1e-4, batch_size=128, clip=1.0, eval_every=0))
    mask: MaskTrainConfig = field(default_factory=lambda: MaskTrainConfig(
        steps=30_000, lr=0.03, alpha=2e-5, k=8, batch_size=256, clip=0.1, clip_mode="all", log_every=50))
    data: str = "files"                       # "files" (the dataset under WMASK_DATA) or "synthetic" (smoke: made-up
                                              # sort problems, wmask.experiments.data.dm_math.synthetic)
    n_test: int = 0                           # held-out examples evaluated per difficulty (0 = all held out)
    target: float = 0.5                       # hard held-out exact match the network must reach: a mask can only
                                              # "lose much of the hard accuracy" of a network that has some
    seed: int = 0

    def __post_init__(self):
        if self.data not in ("files", "synthetic"):
            raise ValueError(f"unknown Mathematics data source {self.data!r}; expected 'files' or 'synthetic'")
        unknown = [m for m in self.networks if m not in data.MODULES]
        if unknown:
            raise ValueError(f"unknown Mathematics modules {unknown}; the paper's: {', '.join(data.MODULES)}")
        for m, over in self.networks.items():
            bad = [k for k in over if k not in MaskTrainConfig.__dataclass_fields__]
            if bad:
                raise ValueError(f"networks.{m}: {bad[0]!r} is not a mask setting (known: "
                                 f"{', '.join(MaskTrainConfig.__dataclass_fields__)})")

    def mask_for(self, module: str) -> MaskTrainConfig:
        return MaskTrainConfig(**{**asdict(self.mask), **self.networks[module]})


# -- data ----------------------------------------------------------------------------------------------------------
class Data:
    """The loaded modules, one character vocabulary over all of them, each difficulty's training file split into
    training and held-out test examples (the same for every seed), and seeded training batches (a function of seed
    and step): per module the pool ``"control"`` (easy, medium and hard training examples together) and the pool
    ``"easy"``."""

    def __init__(self, cfg: DmMathConfig, path=None):
        modules = tuple(cfg.networks)
        loaded = data.synthetic(modules, seed=cfg.seed) if cfg.data == "synthetic" else data.load(modules, path)
        self.dataset, self.checksum = loaded["dataset"], loaded["checksum"]
        self.vocab = data.vocabulary(loaded)
        enc = lambda ps: seq2seq.Encoded(ps, self.vocab, self.vocab)  # noqa: E731
        self.pool, self.test, self.n_train, self.n_held_out = {}, {}, {}, {}
        for m in cfg.networks:
            train = {}
            for d in data.DIFFICULTIES:
                train[d], test = data.held_out(loaded["train"][d][m])
                self.n_train[m, d], self.n_held_out[m, d] = len(train[d]), len(test)
                self.test[m, d] = enc(seq2seq.subset(test, cfg.n_test, cfg.seed))
            for name, ds in TRAIN_ON.items():
                self.pool[m, name] = enc([p for d in ds for p in train[d]])
        self.seed = cfg.seed

    def batch(self, module: str, pools: list[str], step: int, salt: int, size: int, device):
        """One batch of ``size`` per pool, stacked ``[len(pools), size, ...]`` and trimmed to the longest
        sequences."""
        encoded = [self.pool[module, p] for p in pools]
        idx = [torch.randint(0, len(e), (size,), generator=stream(self.seed, step, salt + i))
               for i, e in enumerate(encoded)]
        src, tgt = seq2seq.gather(encoded, idx)
        return src.to(device), tgt.to(device)


# -- the steps -----------------------------------------------------------------------------------------------------
def build(cfg: DmMathConfig, d: Data) -> torch.nn.Module:
    return seq2seq.build("transformer", len(d.vocab), len(d.vocab), **cfg.net)


def mask_filter() -> MaskFilter:
    """Weights and layer norms, no biases, no embeddings (the tied output layer is the embedding), as the paper
    masks its Transformer."""
    return MaskFilter(norms=True)


def train_net(cfg: DmMathConfig, d: Data, module: str, store, device, progress=True):
    """Train (or load) ``module``'s network on its easy, medium and hard training examples; returns it (eval mode)
    and its training curves: the loss (mean of every 50 steps) and the held-out accuracy per difficulty every
    ``base.eval_every`` steps and at the end."""
    key = {"module": module, "net": cfg.net, "base": asdict(cfg.base), "dataset": d.checksum, "seed": cfg.seed}
    torch.manual_seed(cfg.seed)
    model = build(cfg, d).to(device)
    curve = []                   # [last step, mean loss] of every 50 steps, whole across a resume

    def batch(step):
        src, tgt = d.batch(module, ["control"], step, 0, cfg.base.batch_size, device)
        return (src[0], tgt[0]), tgt[0]

    def held_out(m):
        return evaluate(d, module, m, {"network": None}, device)["network"]

    def train():
        evals = train_model(model, batch, lambda m, x, y: seq2seq.seq_loss(m(*x), y), cfg.base, eval_fn=held_out,
                            progress=progress, desc=f"{module} base", checkpoint=store.checkpoint(f"base_{module}"),
                            loss_curve=curve)
        return {"loss": curve, "evals": evals}

    extras = store.network(f"base_{module}", model, key, train)
    return model.eval(), extras


def train_module_masks(cfg: DmMathConfig, d: Data, module: str, model, store, device, progress=True):
    """The control and easy masks of ``module``'s network, in one batched pass. Returns ``(binary masks
    [2, *shape], history)``; reuses a finished run."""
    mcfg, flt = cfg.mask_for(module), mask_filter()

    def batch(step):
        src, tgt = d.batch(module, list(SETS), step, 100, mcfg.batch_size, device)
        return (src, tgt), tgt

    def train():
        masks = MaskSet(model, n_sets=len(SETS), filter=flt, seed=cfg.seed)
        return masks, train_masks(masks, batch, seq2seq.seq_loss, mcfg, checkpoint=store.checkpoint(f"masks_{module}"),
                                  progress=progress, desc=f"{module} masks control/easy")

    key = {"sets": SETS, "mask": asdict(mcfg), "dataset": d.checksum, "seed": cfg.seed}
    return store.masks(f"masks_{module}", key, model, train, flt)


@torch.no_grad()
def evaluate(d: Data, module: str, model, variants: dict, device, chunk: int = 256) -> dict:
    """Exact match (greedy decoding) under each of ``variants`` (name -> masks, ``None`` = unmasked) on the
    examples held out of each difficulty: ``{variant: {difficulty: accuracy}}``, all variants in one batched pass
    per chunk of examples sorted by answer length."""
    call = variants_forward(model, list(variants.values()))
    result = {v: {} for v in variants}
    with seq2seq.free_running(model):
        for diff in data.DIFFICULTIES:
            rate = seq2seq.exact_match_rate(call, d.test[module, diff], len(variants), device, chunk)
            for j, v in enumerate(variants):
                result[v][SHORT[diff]] = rate[j].item()
    return result


def run(cfg: DmMathConfig, store, device="cpu", progress=True) -> dict:
    d = Data(cfg)
    out = {"dataset": d.dataset, "dataset_checksum": d.checksum, "vocab": d.vocab.words, "modules": {}}
    for module in cfg.networks:
        model, extras = train_net(cfg, d, module, store, device, progress)
        binary, history = train_module_masks(cfg, d, module, model, store, device, progress)
        m = {s: {n: t[i] for n, t in binary.items()} for i, s in enumerate(SETS)}
        acc = evaluate(d, module, model, {"network": None, **{f"{s} mask": m[s] for s in SETS}}, device)
        out["modules"][module] = {
            "accuracy": acc, "base_curve": extras["loss"], "base_evals": extras["evals"], "history": history,
            "n_train": {SHORT[k[1]]: v for k, v in d.n_train.items() if k[0] == module},
            "n_held_out": {SHORT[k[1]]: v for k, v in d.n_held_out.items() if k[0] == module},
            "n_test": {SHORT[k[1]]: len(e) for k, e in d.test.items() if k[0] == module},
            "kept": {s: metrics.remaining_fraction(m[s])["total"] for s in SETS},
            "iou": metrics.iou(m["control"], m["easy"])["total"]}
    return out


def tables(runs: list[dict]) -> dict[str, list[dict]]:
    """Tidy rows over seeds: accuracy (module x weights x held-out difficulty), the networks' hard accuracy against
    the target, the masks' training curves, the networks' loss curves and held-out accuracy during training."""
    out = {"accuracy": [], "base": [], "curves": [], "base_curves": [], "base_evals": [], "masks": []}
    for r in runs:
        seed, target = r["seed"], r["config"].get("target", DmMathConfig.target)
        for module, mr in r["modules"].items():
            for variant, row in mr["accuracy"].items():
                out["accuracy"] += [{"seed": seed, "network": module, "weights": variant, "test": t, "accuracy": a}
                                    for t, a in row.items()]
            out["base"].append({"seed": seed, "network": module, "subtask": "hard",
                                "accuracy": mr["accuracy"]["network"]["hard"], "target": target})
            h = mr["history"]
            out["curves"] += [{"seed": seed, "network": module, "mask": s, "step": st, "loss": lo[i], "kept": ke[i]}
                              for i, s in enumerate(SETS) for st, lo, ke in zip(h["step"], h["loss"], h["kept"])]
            out["base_curves"] += [{"seed": seed, "network": module, "step": st, "loss": lo}
                                   for st, lo in mr["base_curve"]]
            out["base_evals"] += [{"seed": seed, "network": module, "step": e["step"], "test": t, "accuracy": e[t]}
                                  for e in mr["base_evals"] for t in ("easy", "medium", "hard")]
            out["masks"] += [{"seed": seed, "network": module, "mask": s, "kept": mr["kept"][s], "IoU": mr["iou"]}
                             for s in SETS]
    return out


# How the cpu runs went, and why the preset is what it is: results/dm_math/README.md.
SMOKE = {   # seconds: one module's made-up problems, no files needed (the numbers mean nothing)
    "networks": {"comparison__sort": dict(lr=0.3, steps=12, batch_size=16, log_every=2)},
    "net": dict(d=32, heads=2, enc_layers=1, dec_layers=1, ff=64, dropout=0.1, tied=True, max_len=192),
    "base.steps": 40,
    "base.batch_size": 32,
    "base.lr": 1e-3,
    "base.eval_every": 20,
    "n_test": 40,
    "data": "synthetic",
}
CPU = {     # two cores, ~10 min a seed: the pipeline and its curves, at a scale far below the hard-accuracy target
    "networks": {"algebra__linear_1d": dict(   # of the modules tried, the one a small net learned fastest
        alpha=1e-4, lr=0.03, steps=1500, batch_size=32, log_every=20, stop_on_plateau=True)},
    "net": dict(d=64, heads=4, enc_layers=2, dec_layers=2, ff=128, dropout=0.0, tied=True, max_len=192,
                norm_first=True),          # 2+2 layers, d 64 (paper 6+6, d 512); pre-LN trains without warm-up
    "base.steps": 5000,
    "base.batch_size": 64,
    "base.lr": 2e-3,
    "base.eval_every": 1000,               # the held-out curves for the chapter
}
PRESETS = {"smoke": SMOKE, "cpu": CPU, "paper": {}}   # paper: days of a GPU


def describe(config: dict) -> str:
    """The Transformer and each module's mask steps, in one line."""
    n, mask = config["net"], config["mask"]
    return (f"Transformer {n['enc_layers']}+{n['dec_layers']} layers, d {n['d']}, {config['base']['steps']} base "
            "steps; " + "; ".join(f"{m}: {o.get('steps', mask['steps'])} mask steps at lr {o.get('lr', mask['lr']):g}"
                                  for m, o in config["networks"].items()))


EXPERIMENT = Experiment("dm_math", DmMathConfig, PRESETS, run, tables, describe=describe)
