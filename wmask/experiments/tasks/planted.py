"""Planted modularity: the engine's end-to-end check on a network whose decomposition is known.

Two small tanh MLPs are trained, each on its own classification task (labels from a fixed random linear teacher),
then placed block-diagonally into one wider MLP (off-diagonal weights zero). Its outputs ``[:n_out]`` solve task A
from inputs ``[:n_in]``, outputs ``[n_out:]`` task B from inputs ``[n_in:]``. A mask trained on task A alone must keep
A's block and remove B's and the (zero) off-diagonal weights; the A and B masks must barely overlap.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ... import metrics
from ..experiment import Experiment
from ...masks import MaskSet
from ...train import BaseTrainConfig, MaskTrainConfig, train_masks, train_model


@dataclass
class PlantedConfig:
    n_in: int = 8             # inputs per sub-network
    hidden: int = 32          # units per hidden layer per sub-network
    layers: int = 2           # hidden layers
    n_out: int = 4            # classes per task
    base_steps: int = 1500
    target: float = 0.95      # held-out accuracy each sub-network must reach for the check to be made
    mask: MaskTrainConfig = field(default_factory=lambda: MaskTrainConfig(steps=800, lr=1e-2, alpha=1e-4, k=4,
                                                                          batch_size=128, clip=1.0, log_every=20))
    seed: int = 0


def mlp(n_in: int, hidden: int, layers: int, n_out: int) -> nn.Sequential:
    sizes = [n_in] + [hidden] * layers
    mods: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        mods += [nn.Linear(a, b), nn.Tanh()]
    return nn.Sequential(*mods, nn.Linear(hidden, n_out))


class Teacher:
    """Inputs ``x ~ N(0, 1)``; label ``argmax(x @ T)`` for a fixed random ``T``."""

    def __init__(self, n_in: int, n_out: int, seed: int):
        g = torch.Generator().manual_seed(seed)
        self.t = torch.randn(n_in, n_out, generator=g)
        self.g = torch.Generator().manual_seed(seed + 1000)

    def batch(self, n: int):
        x = torch.randn(n, self.t.shape[0], generator=self.g)
        return x, (x @ self.t).argmax(1)


def block_diagonal(a: nn.Sequential, b: nn.Sequential) -> nn.Sequential:
    """One MLP computing ``a`` and ``b`` side by side: every Linear is ``[[A, 0], [0, B]]``."""
    mods = []
    for la, lb in zip(a, b):
        if isinstance(la, nn.Linear):
            lin = nn.Linear(la.in_features + lb.in_features, la.out_features + lb.out_features)
            with torch.no_grad():
                lin.weight.zero_()
                lin.weight[:la.out_features, :la.in_features] = la.weight
                lin.weight[la.out_features:, la.in_features:] = lb.weight
                lin.bias.copy_(torch.cat([la.bias, lb.bias]))
            mods.append(lin)
        else:
            mods.append(type(la)())
    return nn.Sequential(*mods)


def true_blocks(net: nn.Sequential, n_a_in: int, n_a_out: int, hidden: int) -> tuple[dict, dict]:
    """Bool masks of the A and B blocks of every Linear weight of ``block_diagonal``'s result."""
    blocks_a, blocks_b = {}, {}
    linears = [(i, m) for i, m in enumerate(net) if isinstance(m, nn.Linear)]
    for j, (i, lin) in enumerate(linears):
        rows_a = n_a_out if j == len(linears) - 1 else hidden
        cols_a = n_a_in if j == 0 else hidden
        a = torch.zeros_like(lin.weight, dtype=torch.bool)
        a[:rows_a, :cols_a] = True
        b = torch.zeros_like(a)
        b[rows_a:, cols_a:] = True
        blocks_a[f"{i}.weight"], blocks_b[f"{i}.weight"] = a, b
    return blocks_a, blocks_b


def accuracy(logits: torch.Tensor, y: torch.Tensor) -> float:
    return (logits.argmax(-1) == y).float().mean().item()


def run(cfg: PlantedConfig | None = None, progress: bool = True) -> dict:
    """Train the two sub-networks, combine them, train the A and B masks in one batched pass; report IoUs."""
    cfg = cfg or PlantedConfig()
    torch.manual_seed(cfg.seed)
    teachers = [Teacher(cfg.n_in, cfg.n_out, cfg.seed * 2 + t) for t in range(2)]
    subnets, base_acc = [], []
    for t, teacher in enumerate(teachers):
        net = mlp(cfg.n_in, cfg.hidden, cfg.layers, cfg.n_out)
        test_x, test_y = teacher.batch(4096)
        evals = train_model(net, lambda step, te=teacher: te.batch(cfg.mask.batch_size),
                            lambda m, x, y: F.cross_entropy(m(x), y),
                            BaseTrainConfig(steps=cfg.base_steps, eval_every=0),
                            eval_fn=lambda m, x=test_x, y=test_y: {"acc": accuracy(m(x), y)},
                            progress=progress, desc=f"base {'AB'[t]}")
        subnets.append(net)
        base_acc.append(evals[-1]["acc"])
    net = block_diagonal(*subnets)
    n = cfg.n_in

    def data(step):
        xa, ya = teachers[0].batch(cfg.mask.batch_size)
        xb, yb = teachers[1].batch(cfg.mask.batch_size)
        noise = [torch.randn(cfg.mask.batch_size, n) for _ in range(2)]
        x = torch.stack([torch.cat([xa, noise[0]], 1), torch.cat([noise[1], xb], 1)])  # set 0: task A, set 1: B
        return x, torch.stack([ya, yb])

    def loss_fn(out, y):
        return torch.stack([F.cross_entropy(out[0, :, :cfg.n_out], y[0]),
                            F.cross_entropy(out[1, :, cfg.n_out:], y[1])])

    masks = MaskSet(net, n_sets=2, seed=cfg.seed)
    hist = train_masks(masks, data, loss_fn, cfg.mask, progress=progress, desc="masks A,B")
    found_a, found_b = masks.binary(0), masks.binary(1)
    block_a, block_b = true_blocks(net, n, cfg.n_out, cfg.hidden)
    x, y = data(0)
    out = masks.eval_forward(x)
    return {
        "config": asdict(cfg),
        "base_accuracy": {"A": base_acc[0], "B": base_acc[1]},
        "masked_accuracy": {"A": accuracy(out[0, :, :cfg.n_out], y[0]), "B": accuracy(out[1, :, cfg.n_out:], y[1])},
        "iou_a_block_a": metrics.iou(found_a, block_a),
        "iou_b_block_b": metrics.iou(found_b, block_b),
        "iou_a_b": metrics.iou(found_a, found_b),
        "kept_fraction": masks.keep_fraction().tolist(),
        "masks": {"A": found_a, "B": found_b},
        "history": hist,
        "net": net,
    }


PRESETS = {
    "smoke": {"hidden": 16, "base_steps": 400, "mask.steps": 300, "mask.batch_size": 64},
    "cpu": {},
    "paper": {"hidden": 256, "base_steps": 5000, "mask.steps": 5000},
}


def summarize(result: dict) -> dict:
    """The JSON-able part of :func:`run`'s result: the numbers and the hidden layer's two masks (rows as strings of
    0/1, 1 = kept)."""
    keep = ("base_accuracy", "masked_accuracy", "iou_a_block_a", "iou_b_block_b", "iou_a_b", "kept_fraction")
    hidden = {name: ["".join(map(str, row)) for row in result["masks"][name]["2.weight"].int().tolist()]
              for name in ("A", "B")}           # one string of 0/1 a row, 1 = kept
    h = result["history"]
    return {**{k: result[k] for k in keep}, "hidden_masks": hidden,
            "history": {"step": h.step, "loss": h.loss, "kept": h.kept}}


def tables(runs: list[dict]) -> dict[str, list[dict]]:
    """Tidy rows over seeds: ``iou`` (each mask against its planted block and against the other mask, per layer),
    ``base`` (each sub-network's held-out accuracy and target) and ``curves`` (each mask's training curve)."""
    pairs = {"iou_a_block_a": "mask A vs block A", "iou_b_block_b": "mask B vs block B", "iou_a_b": "mask A vs mask B"}
    iou = [{"seed": r["seed"], "pair": name, "layer": layer, "IoU": v}
           for r in runs for key, name in pairs.items() for layer, v in r[key].items()]
    base = [{"seed": r["seed"], "subtask": t, "accuracy": a, "target": r["config"].get("target", float("nan"))}
            for r in runs for t, a in r["base_accuracy"].items()]
    curves = [{"seed": r["seed"], "mask": name, "step": step, "loss": loss[i], "kept": kept[i]}
              for r in runs if "history" in r
              for step, loss, kept in zip(r["history"]["step"], r["history"]["loss"], r["history"]["kept"])
              for i, name in enumerate("AB")]
    return {"iou": iou, "base": base, "curves": curves}


def run_stored(cfg: PlantedConfig, store=None, device=None, progress: bool = True) -> dict:
    """The planted check runs on the CPU in seconds (its networks are tiny); nothing is stored but the result."""
    return summarize(run(cfg, progress=progress))


def describe(config: dict) -> str:
    """The two planted MLPs and the steps, in one line."""
    return (f"two MLPs {config['n_in']}-{config['hidden']}x{config['layers']}-{config['n_out']} side by side, "
            f"{config['base_steps']} base / {config['mask']['steps']} mask steps at lr {config['mask']['lr']:g}")


EXPERIMENT = Experiment("planted", PlantedConfig, PRESETS, run_stored, tables, describe=describe)
