"""SCAN: do the weights a network uses on a systematic-generalisation split differ from those of the full problem?

Train a seq2seq network on the simple (iid) split. Then, **in one batched pass**, train four masks, each on one
split's training file: the full problem (simple), add-jump, length and add-turn-left; evaluate each (and the
unmasked net) on every split's test file. Fig. 4a compares each split's test accuracy under the full-problem mask
with that under the split's own mask; Fig. 4b shows, per output token, the % of the output layer's weights the
add-jump mask removes relative to the full-problem mask. A network trained from scratch on each split gives the
level a split's own mask is expected to fall to.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from ... import metrics
from .. import seq2seq
from ..data import scan as data
from ...evaluate import variants_forward
from ..experiment import Experiment, at_most
from ...masks import MaskFilter, MaskSet
from ...train import BaseTrainConfig, MaskTrainConfig, train_masks, train_model
from ...utils import file_md5
from .arithmetic import stream

MODELS = ("lstm", "transformer")
SPLITS = ("simple", "addprim_jump", "length", "addprim_turn_left")   # the first is the full problem (iid)
LABELS = {"simple": "iid", "addprim_jump": "add jump", "length": "length", "addprim_turn_left": "turn left"}
ALPHA = {"lstm": 3e-5, "transformer": 6e-4}


@dataclass
class ScanConfig:
    """The experiment's config; the defaults are the paper's settings for the LSTM."""
    model: str = "lstm"                       # lstm | transformer
    net: dict[str, Any] = field(default_factory=dict)  # overrides of the model's defaults (seq2seq.Seq2SeqLSTM, ...)
    data: str = "files"                       # "files" (the data directory) or "generated" (from the grammar)
    buckets: int = 1                          # length buckets of training batches (1 = uniform, as the paper)
    base: BaseTrainConfig = field(default_factory=lambda: BaseTrainConfig(
        steps=25_000, lr=1e-3, batch_size=256, clip=5.0, eval_every=0))
    scratch_steps: int = 25_000               # steps of the from-scratch baseline on each split
    mask: MaskTrainConfig = field(default_factory=lambda: MaskTrainConfig(
        steps=25_000, lr=1e-2, alpha=3e-5, k=4, batch_size=256, clip=5.0, clip_mode="all", log_every=50))
    n_test: int = 0                           # test examples per file (0 = all)
    target: float = 0.95                      # iid exact match the base net must reach (the paper's nets: ~1.0)
    warmup: int = 0                           # steps of linear learning-rate warm-up (0: the paper's constant rate)
    schedule: str = "constant"                # after the warm-up: "constant", or "cosine" decay to 0 at the last step
    stop_at_target: bool = False              # the base net stops at the first base.eval_every evaluation at target
    seed: int = 0

    def __post_init__(self):
        if self.model not in MODELS:
            raise ValueError(f"unknown SCAN model {self.model!r}; expected one of {MODELS}")
        if self.data not in ("files", "generated"):
            raise ValueError(f"unknown SCAN data source {self.data!r}; expected 'files' or 'generated'")
        if self.buckets < 1:
            raise ValueError(f"buckets must be >= 1, got {self.buckets}")
        if self.schedule not in ("constant", "cosine"):
            raise ValueError(f"unknown learning-rate schedule {self.schedule!r}; expected 'constant' or 'cosine'")


def _preset(model, net, base_steps, scratch_steps, mask_steps, batch, n_test, buckets, data="files", mask_lr=1e-2):
    return dict(net=net, data=data, buckets=buckets, scratch_steps=scratch_steps, n_test=n_test,
                base=dict(steps=base_steps, lr=1e-3, batch_size=batch, clip=5.0, eval_every=0),
                mask=dict(steps=mask_steps, lr=mask_lr, alpha=ALPHA[model], k=4, batch_size=batch, clip=5.0,
                          clip_mode="all", log_every=50))


SMOKE_LSTM = {      # seconds: a tiny LSTM on SCAN generated from its grammar (the numbers mean nothing)
    **_preset("lstm", dict(hidden=32), 60, 30, 12, 32, 120, 4, data="generated"),
    "base.eval_every": 30,
}
# How the cpu runs went, and why the preset is what it is: results/scan/README.md.
CPU_LSTM = {        # two cores, about 2.5 h a seed on one: the base net to iid 1.0, four masks until settled
    "net": {"hidden": 128},             # paper 2 x 200
    "buckets": 8,                       # batches from one length bucket: the same steps learn faster here
    "n_test": 1000,                     # test lines per split: evaluation stays minutes
    "base.steps": 20_000,               # at batch 128 (paper 25,000 at 256): iid exact match 1.000
    "base.batch_size": 128,
    "base.eval_every": 2000,            # the iid curve for the chapter
    "scratch_steps": 5000,              # the from-scratch nets: enough to show where they stop
    "mask.steps": 24_000,               # at most: the four masks settled at 17,451 when given 24,000
    "mask.stop_on_plateau": True,
    "mask.lr": 3e-2,                    # the paper's 1e-2 over 25,000 steps travels as far in a third of them
    "mask.batch_size": 64,              # a mask step of four sets on one core ...
    "mask.alpha": ALPHA["lstm"] * 64 / 256,     # ... with alpha / batch, the weight per logit, the paper's
}
CPU_TRANSFORMER = {     # two cores: the paper's Transformer, the base net to iid >= 0.95, four masks until settled
    "buckets": 8,                       # as the LSTM's cpu preset
    "n_test": 1000,
    "warmup": 1000,                     # without warm-up a small Transformer stalled (a 2+2 d-64: iid 0.773 at 3,500)
    "schedule": "cosine",               # iid 0.987 after 4,000 steps (constant after warm-up: 0.914)
    "base.steps": 8000,                 # the cosine's length; at most: ...
    "stop_at_target": True,             # ... it stops at iid 0.95
    "base.batch_size": 128,
    "base.eval_every": 1000,
    "scratch_steps": 5000,              # as the LSTM's
    "mask.steps": 24_000,               # at most, as the LSTM's
    "mask.stop_on_plateau": True,
    "mask.lr": 3e-2,                    # the paper's 1e-2 over 25,000 steps travels as far in a third of them
    "mask.batch_size": 64,
    "mask.alpha": ALPHA["transformer"] * 64 / 256,   # alpha / batch, the weight per logit, the paper's
}
PRESETS = {
    "lstm": {"smoke": SMOKE_LSTM, "cpu": CPU_LSTM, "paper": {}},
    "transformer": {
        "smoke": _preset("transformer", dict(d=32, ff=64, enc_layers=1, dec_layers=1), 60, 30, 12, 32, 120, 4,
                         data="generated"),
        "cpu": CPU_TRANSFORMER,
        "paper": {"mask.alpha": ALPHA["transformer"]},     # the paper's Transformer alpha (the defaults are the LSTM's)
    },
}


# -- data ----------------------------------------------------------------------------------------------------------
def load_splits(cfg: ScanConfig) -> dict:
    """``{split: (train pairs, test pairs)}`` plus the dataset's name and checksum (canonical files are named so only
    when every md5 matches)."""
    if cfg.data == "generated":
        files = data.generate(seed=cfg.seed)
        pairs = {s: tuple(data.parse("\n".join(files[rel]), f"generated {rel}") for rel in data.FILES[s])
                 for s in SPLITS}
        digest = hashlib.md5(json.dumps(files, sort_keys=True).encode()).hexdigest()
        return {"pairs": pairs, "dataset": f"SCAN generated from the grammar (simple split seeded with {cfg.seed}, "
                "not the canonical one)", "checksum": f"md5 {digest}"}
    folder = data.data_dir()
    pairs = {s: data.load(s) for s in SPLITS}
    md5s = {rel: file_md5(folder / rel) for s in SPLITS for rel in data.FILES[s]}
    canonical = all(data.MD5[rel] == m for rel, m in md5s.items())
    digest = hashlib.md5(json.dumps(md5s, sort_keys=True).encode()).hexdigest()
    name = "SCAN (canonical files)" if canonical else f"SCAN files in {folder} (NOT canonical: md5s differ)"
    return {"pairs": pairs, "dataset": name, "checksum": f"md5 of the file md5s {digest}"}


class Data:
    """Encoded splits over one vocabulary (sorted by frequency over all split files, EOS last) and seeded training
    batches: a function of (seed, step), optionally drawn from one length bucket per step."""

    def __init__(self, pairs: dict, cfg: ScanConfig):
        every = [p for s in SPLITS for part in pairs[s] for p in part]
        self.in_vocab = seq2seq.Vocab([c for c, _ in every], specials=(seq2seq.PAD,))
        self.out_vocab = seq2seq.Vocab([a for _, a in every], tail=(seq2seq.EOS,))
        enc = lambda ps: seq2seq.Encoded(ps, self.in_vocab, self.out_vocab)  # noqa: E731
        self.train = {s: enc(pairs[s][0]) for s in SPLITS}
        self.test = {s: enc(seq2seq.subset(pairs[s][1], cfg.n_test, cfg.seed)) for s in SPLITS}
        self.cfg = cfg
        self.buckets = {s: torch.argsort(e.tgt_len, stable=True).tensor_split(cfg.buckets)
                        for s, e in self.train.items()}

    def batch(self, splits: list[str], step: int, salt: int, size: int, device):
        """One batch per split, stacked ``[len(splits), size, ...]`` and trimmed to the longest sequences."""
        bucket = int(torch.randint(0, self.cfg.buckets, (), generator=stream(self.cfg.seed, step, salt)))
        idx = []
        for i, s in enumerate(splits):
            pool = self.buckets[s][bucket]
            idx.append(pool[torch.randint(0, len(pool), (size,), generator=stream(self.cfg.seed, step, salt + 1 + i))])
        src, tgt = seq2seq.gather([self.train[s] for s in splits], idx)
        return src.to(device), tgt.to(device)


# -- the steps -----------------------------------------------------------------------------------------------------
def build(cfg: ScanConfig, d: Data) -> torch.nn.Module:
    return seq2seq.build(cfg.model, len(d.in_vocab), len(d.out_vocab), **cfg.net)


def mask_filter(cfg: ScanConfig) -> MaskFilter:
    """Weights of every layer but the embeddings; no biases; the Transformer's layer norms too (the book's method
    page)."""
    return MaskFilter(norms=cfg.model == "transformer")


def adam(params, lr):
    return torch.optim.Adam(params, lr=lr)


def lr_schedule(cfg: ScanConfig, steps: int):
    """The learning-rate multiplier at a step: a linear warm-up over ``cfg.warmup`` steps, then 1 or (``"cosine"``)
    a cosine decay to 0 at ``steps``."""
    def multiplier(step: int) -> float:
        s = step + 1
        if s < cfg.warmup:
            return s / cfg.warmup
        if cfg.schedule == "constant":
            return 1.0
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (s - cfg.warmup) / max(1, steps - cfg.warmup))))
    return multiplier


def train_net(cfg: ScanConfig, d: Data, split: str, steps: int, store, tag: str, device, progress=True,
              dataset: str = ""):
    """Train (or load) a network on ``split``'s training file: the base network, or a from-scratch baseline.
    Returns ``(model in eval mode, curve)``: ``curve["loss"]``, the training loss every 50 steps, and
    ``curve["held_out"]``, ``[step, exact match on split's test lines]`` every ``base.eval_every`` steps (for the
    curve only, unless ``cfg.stop_at_target``: the base network then stops at the first one at ``cfg.target``)."""
    stop = cfg.stop_at_target and split == "simple"
    key = {"model": cfg.model, "net": cfg.net, "split": split, "steps": steps, "base": asdict(cfg.base),
           "buckets": cfg.buckets, "data": cfg.data, "dataset": dataset, "seed": cfg.seed,
           **({"warmup": cfg.warmup} if cfg.warmup else {}), **({"stop_at_target": True} if stop else {}),
           **({"schedule": cfg.schedule} if cfg.schedule != "constant" else {})}
    torch.manual_seed(cfg.seed)
    model = build(cfg, d).to(device)
    tcfg = BaseTrainConfig(**{**asdict(cfg.base), "steps": steps})

    def batch(step):
        src, tgt = d.batch([split], step, 0, tcfg.batch_size, device)
        return (src[0], tgt[0]), tgt[0]

    def held_out(m):
        return {"accuracy": evaluate(cfg, d, m, {"net": None}, device, splits=[split])["net"][split]}

    def train():
        curve = []
        plain = cfg.warmup == 0 and cfg.schedule == "constant"
        evals = train_model(model, batch, lambda m, x, y: seq2seq.seq_loss(m(*x), y), tcfg, progress=progress,
                            desc=f"{cfg.model} {tag}", checkpoint=store.checkpoint(tag), loss_curve=curve,
                            eval_fn=held_out if tcfg.eval_every else None,
                            optimizer=None if plain else (adam, lr_schedule(cfg, steps)),
                            stop_when=(lambda e: e["accuracy"] >= cfg.target) if stop else None)
        return {"loss": curve, "held_out": [[e["step"], e["accuracy"]] for e in evals]}

    curve = store.network(tag, model, key, train)
    return model.eval(), curve


def train_split_masks(cfg: ScanConfig, d: Data, model, store, device, progress=True, dataset: str = ""):
    """One mask per split (the first, simple, is the full-problem mask), all in one batched pass; each set sees its
    own split's training batches. Returns ``(binary masks [M, *shape], history)``; reuses a finished run."""
    flt = mask_filter(cfg)

    def batch(step):
        src, tgt = d.batch(list(SPLITS), step, 100, cfg.mask.batch_size, device)
        return (src, tgt), tgt

    def train():
        masks = MaskSet(model, n_sets=len(SPLITS), filter=flt, seed=cfg.seed)
        return masks, train_masks(masks, batch, seq2seq.seq_loss, cfg.mask, checkpoint=store.checkpoint("masks"),
                                  progress=progress, desc=f"{cfg.model} masks {'/'.join(LABELS[s] for s in SPLITS)}")

    key = {"sets": SPLITS, "mask": asdict(cfg.mask), "buckets": cfg.buckets, "dataset": dataset, "seed": cfg.seed}
    return store.masks("masks", key, model, train, flt)


@torch.no_grad()
def evaluate(cfg: ScanConfig, d: Data, model, variants: dict, device, splits=SPLITS, chunk: int = 512) -> dict:
    """Exact-match accuracy (greedy decoding) under each mask in ``variants`` (name -> masks, ``None`` = unmasked)
    on each split's test file: ``{variant: {split: accuracy}}``. All variants run in one batched pass per chunk;
    test lines are sorted by length so that each chunk decodes only as many steps as its longest target."""
    call = variants_forward(model, list(variants.values()))
    result = {v: {} for v in variants}
    with seq2seq.free_running(model):
        for split in splits:
            rate = seq2seq.exact_match_rate(call, d.test[split], len(variants), device, chunk)
            for j, v in enumerate(variants):
                result[v][split] = rate[j].item()
    return result


def run(cfg: ScanConfig, store, device="cpu", progress=True) -> dict:
    loaded = load_splits(cfg)
    d = Data(loaded["pairs"], cfg)
    dataset = loaded["checksum"]
    model, base_curve = train_net(cfg, d, "simple", cfg.base.steps, store, "base", device, progress, dataset)
    binary, history = train_split_masks(cfg, d, model, store, device, progress, dataset)
    m = {s: {n: t[i] for n, t in binary.items()} for i, s in enumerate(SPLITS)}
    accuracy = evaluate(cfg, d, model, {"full": None, **{f"mask {s}": m[s] for s in SPLITS}}, device)
    scratch = {}
    for s in SPLITS[1:]:
        net, _ = train_net(cfg, d, s, cfg.scratch_steps, store, f"scratch_{s}", device, progress, dataset)
        scratch[s] = evaluate(cfg, d, net, {"scratch": None}, device, splits=[s])["scratch"][s]
    out = "out.weight"
    removed = {s: dict(zip(d.out_vocab.words, metrics.row_removed_percent(m["simple"][out], m[s][out]).tolist()))
               for s in SPLITS[1:]}
    return {"dataset": loaded["dataset"], "dataset_checksum": loaded["checksum"],
            "in_vocab": d.in_vocab.words, "out_vocab": d.out_vocab.words,
            "n_train": {s: len(e) for s, e in d.train.items()}, "n_test": {s: len(e) for s, e in d.test.items()},
            "accuracy": accuracy, "scratch": scratch, "removed_per_token": removed,
            "kept": {s: metrics.remaining_fraction(m[s])["total"] for s in SPLITS},
            "iou_with_full": {s: metrics.iou(m["simple"], m[s])["total"] for s in SPLITS[1:]},
            "history": history, "base_curve": base_curve}


def tables(runs: list[dict]) -> dict[str, list[dict]]:
    """Tidy rows over seeds: accuracy (variant x test split), from-scratch accuracy, % of output weights removed per
    token (mask x token), the base net's iid accuracy against its target, the split masks' training curves and the
    base net's (``base_curve``: loss every 50 steps, iid test exact match every ``base.eval_every`` steps)."""
    out = {"accuracy": [], "removed": [], "base": [], "curves": [], "base_curve": []}
    for r in runs:
        seed, model = r["seed"], r["config"]["model"]
        for variant, row in r["accuracy"].items():
            out["accuracy"] += [{"seed": seed, "model": model, "variant": variant, "test": s, "accuracy": a}
                                for s, a in row.items()]
        out["accuracy"] += [{"seed": seed, "model": model, "variant": "scratch", "test": s, "accuracy": a}
                            for s, a in r["scratch"].items()]
        for s, row in r["removed_per_token"].items():
            out["removed"] += [{"seed": seed, "model": model, "mask": s, "token": t, "removed %": v}
                               for t, v in row.items()]
        out["base"].append({"seed": seed, "model": model, "subtask": "iid", "accuracy": r["accuracy"]["full"]["simple"],
                            "target": r["config"].get("target", ScanConfig.target)})
        h = r["history"]
        out["curves"] += [{"seed": seed, "model": model, "mask": s, "step": st, "loss": lo[i], "kept": ke[i]}
                          for i, s in enumerate(SPLITS) for st, lo, ke in zip(h["step"], h["loss"], h["kept"])]
        bc = r.get("base_curve") or {}
        out["base_curve"] += [{"seed": seed, "model": model, "step": st, "loss": lo} for st, lo in bc.get("loss", [])]
        out["base_curve"] += [{"seed": seed, "model": model, "step": st, "held-out accuracy": a}
                              for st, a in bc.get("held_out", [])]
    return out


def describe(config: dict) -> str:
    """The network, its base steps and the masks' steps, in one line."""
    net, mask = config.get("net") or {}, config["mask"]
    words = (f"LSTM encoder-decoder, hidden {net['hidden']}" if config.get("model") == "lstm" and "hidden" in net
             else f"Transformer {net.get('enc_layers')}+{net.get('dec_layers')} layers, d {net['d']}" if "d" in net
             else f"{config.get('model')} at the paper's size")
    settled = at_most(mask)
    return f"{words}, {config['base']['steps']} base / {mask['steps']} mask steps at lr {mask['lr']:g}{settled}"


EXPERIMENT = Experiment("scan", ScanConfig, PRESETS, run, tables, models=MODELS, describe=describe)
