"""The arithmetic tasks of the paper's §3.1–2.2 and the experiment steps they share.

Numbers 0..99 are written as two one-hot digits, least significant first. **Add/mul**: input = a, b (4 digits) and a
one-hot operation (+, ×), 42 dims; target = (a + b) or (a · b) mod 100, two digits. **Double addition**: input = a1,
b1, a2, b2, 80 dims; targets = (a1 + b1) mod 100 and (a2 + b2) mod 100, four digits. A network outputs 10 logits per
target digit; the loss is the cross-entropy averaged over the digits that count for a subtask, and a problem is
solved when all of them are right.

An experiment on one network: train it on the full task (:func:`train_base`), train several mask sets on subtasks in
one batched pass (:func:`train_mask_sets`), then evaluate many masks (and their inversions) at once
(:func:`evaluate`). Every step stores its result in a work folder and reuses it when run again.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F

from ... import metrics
from ...evaluate import variants_forward
from ...masks import MaskSet, invert
from ..models import FNN, RepeatLSTM
from ...train import BaseTrainConfig, MaskTrainConfig, train_masks, train_model

OPS = ("+", "×")


def digits(n: torch.Tensor, n_digits: int = 2) -> torch.Tensor:
    """``[...] -> [..., n_digits]`` decimal digits, least significant first."""
    return torch.stack([(n // 10 ** i) % 10 for i in range(n_digits)], -1)


def one_hot_number(n: torch.Tensor) -> torch.Tensor:
    """``[...] -> [..., 20]``: the two digits of ``n`` (0..99) one-hot, least significant first."""
    return F.one_hot(digits(n), 10).flatten(-2).float()


def _uniform_ints(n: int, gen: torch.Generator, count: int = 1) -> list[torch.Tensor]:
    return list(torch.randint(0, 100, (count, n), generator=gen))


class AddMul:
    """``a op b mod 100`` with ``op`` in (+, ×). Subtasks: the two operations (``None`` = both, mixed)."""
    name, n_in, n_digits, subtasks = "addmul", 42, 2, OPS

    def encode(self, a, b, op):
        x = torch.cat([one_hot_number(a), one_hot_number(b), F.one_hot(op, 2).float()], -1)
        return x, digits(torch.where(op == 0, a + b, a * b) % 100)

    def sample(self, n: int, gen: torch.Generator, subtask: str | None = None):
        a, b = _uniform_ints(n, gen, 2)
        op = torch.randint(0, 2, (n,), generator=gen) if subtask is None else torch.full((n,), OPS.index(subtask))
        return self.encode(a, b, op)

    def test_set(self, subtask: str, n: int, gen: torch.Generator):
        """Every one of the 10,000 problems of the operation (``n`` is ignored: the domain is small)."""
        a, b = torch.arange(100).repeat_interleave(100), torch.arange(100).repeat(100)
        return self.encode(a, b, torch.full_like(a, OPS.index(subtask)))

    def digit_weights(self, subtask: str | None) -> torch.Tensor:
        return torch.ones(2)

    def logits(self, call, x):
        return call(x).unflatten(-1, (2, 10))


class DoubleAdd:
    """Two independent additions. Subtasks: ``pair 1`` and ``pair 2`` (``None`` = both). With
    ``separate_pairs`` (the FNN), each pair runs in its own forward pass with the other pair's inputs zeroed and only
    its own output slot is read; each call of a masked model draws fresh mask samples."""
    name, n_in, n_digits, subtasks = "double_addition", 80, 4, ("pair 1", "pair 2")

    def __init__(self, separate_pairs: bool):
        self.separate_pairs = separate_pairs

    def sample(self, n: int, gen: torch.Generator, subtask: str | None = None):
        a1, b1, a2, b2 = _uniform_ints(n, gen, 4)
        x = torch.cat([one_hot_number(v) for v in (a1, b1, a2, b2)], -1)
        return x, torch.cat([digits((a1 + b1) % 100), digits((a2 + b2) % 100)], -1)

    def test_set(self, subtask: str, n: int, gen: torch.Generator):
        return self.sample(n, gen)

    def digit_weights(self, subtask: str | None) -> torch.Tensor:
        return {None: torch.ones(4), "pair 1": torch.tensor([1., 1, 0, 0]), "pair 2": torch.tensor([0., 0, 1, 1])}[
            subtask]

    def logits(self, call, x):
        if not self.separate_pairs:
            return call(x).unflatten(-1, (4, 10))
        keep1 = torch.cat([torch.ones(40), torch.zeros(40)]).to(x.device)
        out1 = call(x * keep1)[..., :20]
        out2 = call(x * (1 - keep1))[..., 20:]
        return torch.cat([out1, out2], -1).unflatten(-1, (4, 10))


def per_digit_ce(logits, y):
    return F.cross_entropy(logits.flatten(0, -2), y.flatten(), reduction="none").view(y.shape)


def task_loss(logits, y, w):
    """Mean over the batch of the cross-entropy averaged over the digits with weight 1 in ``w`` (``[..., D]``)."""
    return ((per_digit_ce(logits, y) * w.unsqueeze(-2)).sum(-1) / w.sum(-1, keepdim=True)).mean(-1)


def solved(logits, y, w):
    """``[..., B]`` bools: every digit that counts (``w`` > 0) is right."""
    return ((logits.argmax(-1) == y) | (w.unsqueeze(-2) == 0)).all(-1)


@dataclass
class NetConfig:
    """One network of an arithmetic experiment, its base training and its mask training (paper defaults: the
    "big" FNN, 20k base and 20k mask steps, the add/mul experiment of the paper and the book's method page)."""
    model: str = "fnn"                        # fnn | lstm
    hidden: tuple[int, ...] = (2000, 2000, 2000, 2000)  # FNN widths; for the LSTM one width per layer
    lstm_steps: int = 3                       # how often the LSTM sees its input
    base: BaseTrainConfig = field(default_factory=lambda: BaseTrainConfig(steps=20_000, eval_every=0))
    mask: MaskTrainConfig = field(default_factory=lambda: MaskTrainConfig(steps=20_000, log_every=200,
                                                                          clip_mode="all"))
    n_test: int = 4096                        # random test problems (add/mul always uses all 20,000)
    target: dict[str, float] = field(default_factory=dict)   # accuracy the base net must reach, per subtask
    stop_at_target: bool = False              # end base training once a validation split meets the target
                                              # (checked every base.eval_every steps)

    def __post_init__(self):
        if self.model not in ("fnn", "lstm"):
            raise ValueError(f"unknown arithmetic model {self.model!r}; expected 'fnn' or 'lstm'")
        self.hidden = tuple(self.hidden)


def base_tag(networks: dict[str, NetConfig], name: str) -> str:
    """Networks that differ only in mask training (e.g. the two clipping modes) share one base network: the first
    one listed with the same architecture and base training."""
    key = lambda c: (c.model, c.hidden, c.lstm_steps, c.base)  # noqa: E731
    return next(other for other, c in networks.items() if key(c) == key(networks[name]))


def build(task, cfg: NetConfig) -> torch.nn.Module:
    n_out = task.n_digits * 10
    if cfg.model == "fnn":
        return FNN(task.n_in, list(cfg.hidden), n_out)
    if len(set(cfg.hidden)) != 1:
        raise ValueError(f"the LSTM needs one width for all layers, got {cfg.hidden}")
    return RepeatLSTM(task.n_in, cfg.hidden[0], n_out, layers=len(cfg.hidden), steps=cfg.lstm_steps)


def stream(seed: int, step: int, salt: int) -> torch.Generator:
    """The generator of one step's batch: a function of (seed, step, stream), so an interrupted run resumes exactly."""
    return torch.Generator().manual_seed(((seed * 1_000_003 + salt) * 1_000_000_007 + step) % 2**63)


def train_base(task, cfg: NetConfig, seed: int, store, tag: str, device, progress=True):
    """Train (or load) the base network of ``tag``; returns it (eval mode, on ``device``) and ``{"accuracy": test
    accuracy per subtask, "steps": steps trained}`` (fewer than ``cfg.base.steps`` when ``cfg.stop_at_target``)."""
    torch.manual_seed(seed)
    model = build(task, cfg).to(device)
    w = task.digit_weights(None).to(device)

    def data(step):
        x, y = task.sample(cfg.base.batch_size, stream(seed, step, 0))
        return x.to(device), y.to(device)

    stop = None
    if cfg.stop_at_target:
        if not (cfg.target and cfg.base.eval_every):
            raise ValueError("stop_at_target needs a target and base.eval_every > 0")
        stop = lambda e: all(e[s] >= t for s, t in cfg.target.items())  # noqa: E731

    def train():
        evals = train_model(model, data, lambda m, x, y: task_loss(task.logits(m, x), y, w), cfg.base,
                            progress=progress, desc=f"{tag} base", checkpoint=store.checkpoint(f"{tag}.base"),
                            eval_fn=(lambda m: validation_accuracy(task, m, seed, device)) if stop else None,
                            stop_when=stop)
        return {"accuracy": evaluate(task, model, {"full": None}, cfg, seed, device)["full"],
                "steps": evals[-1]["step"] if evals else cfg.base.steps}

    key = {"model": cfg.model, "hidden": cfg.hidden, "lstm_steps": cfg.lstm_steps, "base": asdict(cfg.base),
           "task": task.name, "seed": seed,
           **({"stop_at_target": cfg.target} if cfg.stop_at_target else {})}
    info = store.network(f"{tag}.base", model, key, train)
    return model.eval(), {"accuracy": info["accuracy"], "steps": info.get("steps", cfg.base.steps)}


def train_mask_sets(task, model, sets: list[str | None], cfg: NetConfig, seed: int, store, tag: str,
                    device, progress=True, alphas: list[float] | None = None):
    """Masks on subtasks ``sets`` (``None`` = the full task, e.g. the control mask), all in one batched pass; set
    ``i`` sees its own batches. Returns ``(binary masks [M, *shape], history dict)``; reuses a finished run."""
    masks = MaskSet(model, n_sets=len(sets), seed=seed)
    w = torch.stack([task.digit_weights(s) for s in sets]).to(device)

    def data(step):
        xy = [task.sample(cfg.mask.batch_size, stream(seed, step, 1 + i), s) for i, s in enumerate(sets)]
        return torch.stack([x for x, _ in xy]).to(device), torch.stack([y for _, y in xy]).to(device)

    def train():
        return masks, train_masks(masks, data, lambda out, y: task_loss(out, y, w), cfg.mask,
                                  checkpoint=store.checkpoint(f"{tag}.masks"), progress=progress,
                                  desc=f"{tag} masks {'/'.join(map(str, sets))}", forward=task.logits,
                                  alphas=alphas)

    key = {"sets": [str(s) for s in sets], "mask": asdict(cfg.mask), "alphas": alphas, "seed": seed}
    return store.masks(f"{tag}.masks", key, model, train)


@torch.no_grad()
def validation_accuracy(task, model, seed: int, device, n: int = 2000) -> dict[str, float]:
    """The unmasked model's accuracy per subtask on ``n`` random problems from a stream of their own (no training
    batch is drawn from it); what ``stop_at_target`` checks."""
    out = {}
    for i, subtask in enumerate(task.subtasks):
        x, y = task.sample(n, stream(seed, 0, 10_000 + i), subtask)
        w = task.digit_weights(subtask).to(device)
        out[subtask] = solved(task.logits(model, x.to(device)), y.to(device), w).float().mean().item()
    return out


@torch.no_grad()
def evaluate(task, model, variants: dict, cfg: NetConfig, seed: int, device, chunk: int = 2500) -> dict:
    """Test accuracy of ``model`` under each mask in ``variants`` (name -> masks dict, ``None`` = unmasked) on each
    subtask: ``{variant: {subtask: accuracy}}``. All variants run in one batched pass per test chunk."""
    call = variants_forward(model, list(variants.values()))
    result = {v: {} for v in variants}
    for subtask in task.subtasks:
        x, y = task.test_set(subtask, cfg.n_test, torch.Generator().manual_seed(10 ** 6 + seed))
        w = task.digit_weights(subtask).to(device)
        right = torch.zeros(len(variants), device=device)
        for i in range(0, len(x), chunk):
            xs, ys = x[i:i + chunk].to(device), y[i:i + chunk].to(device)
            right += solved(task.logits(call, xs), ys, w).float().sum(-1)
        for j, v in enumerate(variants):
            result[v][subtask] = (right[j] / len(x)).item()
    return result


def network_tables(runs: list[dict]) -> dict[str, list[dict]]:
    """The tidy rows every arithmetic experiment has, over all seeds: accuracy per (network, mask, subtask);
    per-layer counts and overlaps; the base network's accuracy against its target per subtask; the training curve
    (loss and kept fraction per logged step) of every mask."""
    out = {"accuracy": [], "layers": [], "base": [], "curves": []}
    for run in runs:
        seed = run["seed"]
        for name, net in run["networks"].items():
            for variant, accs in net["accuracy"].items():
                out["accuracy"] += [{"seed": seed, "network": name, "mask": variant, "evaluated on": sub,
                                     "accuracy": a} for sub, a in accs.items()]
            out["layers"] += [{"seed": seed, "network": name, **row} for row in net["layers"]]
            target = run["config"]["networks"][name].get("target", {})
            out["base"] += [{"seed": seed, "network": name, "subtask": sub, "accuracy": a,
                             "target": target.get(sub, float("nan"))} for sub, a in net["base_accuracy"].items()]
            hist = net["history"]
            for i, mask in enumerate(["control", *net["accuracy"]["full"]]):
                out["curves"] += [{"seed": seed, "network": name, "mask": mask, "step": st, "loss": lo[i],
                                   "kept": ke[i]} for st, lo, ke in zip(hist["step"], hist["loss"], hist["kept"])]
    return out


def layer_table(masks: dict[str, dict], a: str, b: str) -> list[dict]:
    """Per masked tensor (and ``total``): its size, the weights each mask keeps, IoU and IoMin of masks ``a``, ``b``."""
    first = next(iter(masks.values()))
    iou, iomin = metrics.iou(masks[a], masks[b]), metrics.iomin(masks[a], masks[b])
    rows = []
    for layer in [*first, "total"]:
        row = {"layer": layer, "size": sum(t.numel() for t in first.values()) if layer == "total"
               else first[layer].numel()}
        for name, m in masks.items():
            row[f"kept {name}"] = int(sum(t.sum() for t in m.values())) if layer == "total" else int(m[layer].sum())
        rows.append({**row, "IoU": iou[layer], "IoMin": iomin[layer]})
    return rows


def run_networks(networks: dict[str, NetConfig], task_for, seed: int, store, device, progress=True,
                 keep_io: bool = False) -> dict:
    """:func:`run_network` on every network (``task_for(cfg)`` gives its task), networks that differ only in mask
    training sharing one base net; each result also records its clipping mode and α."""
    out = {}
    for name, net in networks.items():
        base = base_tag(networks, name)
        out[name] = {"clip_mode": net.mask.clip_mode, "alpha": net.mask.alpha, "base": base,
                     **run_network(task_for(net), net, seed, store, name, device, progress, keep_io, base)}
    return out


def run_network(task, cfg: NetConfig, seed: int, store, tag: str, device, progress=True,
                keep_io: bool = False, base: str | None = None) -> dict:
    """The experiment on one network: base training; the control mask (full task) and one mask per subtask in one
    batched pass; accuracy of the unmasked net, every mask and every inverted mask on every subtask. ``keep_io``
    adds the inversions that keep the control mask on the input and output layers (the paper's variant). ``base``: the
    tag of the base network to train or reuse (default ``tag``)."""
    model, base_info = train_base(task, cfg, seed, store, base or tag, device, progress)
    sets = [None, *task.subtasks]
    binary, history = train_mask_sets(task, model, sets, cfg, seed, store, tag, device, progress)
    names = ["control", *task.subtasks]
    m = {name: {p: t[i] for p, t in binary.items()} for i, name in enumerate(names)}
    io = [next(iter(binary)), list(binary)[-1]]
    variants = {"full": None, "control": m["control"]}
    for s in task.subtasks:
        variants[s], variants[f"¬{s}"] = m[s], invert(m[s])
        if keep_io:
            variants[f"¬{s} (I/O kept)"] = invert(m[s], keep=io, like=m["control"])
    a, b = task.subtasks
    return {"base_accuracy": base_info["accuracy"], "base_steps": base_info["steps"],
            "accuracy": evaluate(task, model, variants, cfg, seed, device),
            "layers": layer_table(m, a, b), "io_layers": io,
            "shared": {f"{a} in {b}": metrics.shared_fraction([m[a], m[b]], 0),
                       f"{b} in {a}": metrics.shared_fraction([m[a], m[b]], 1)},
            "history": history}


def describe(config: dict) -> str:
    """Each network's widths and its base and mask steps, in one line."""
    return "; ".join(f"{n}: {c['model'].upper()} {'-'.join(map(str, c['hidden']))}, {c['base']['steps']} base / "
                     f"{c['mask']['steps']} mask steps at lr {c['mask']['lr']:g}"
                     + (" (maxima: stopped at target / when settled)" if c.get("stop_at_target") else "")
                     for n, c in config["networks"].items())
