"""Addition / multiplication: are there weights specialised to one operation (P_specialize)?

For each network: train it on both operations, then train three masks in one batched pass (control: full task;
"+": addition only; "×": multiplication only), and test every mask and its inversion on both operations. A size study
repeats this over FNN widths; an α sweep trains "+" and "×" masks at several regulariser strengths in one pass.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

from ... import metrics
from ..config import each_network
from ..experiment import Experiment
from ...train import BaseTrainConfig, MaskTrainConfig
from .arithmetic import (AddMul, NetConfig, base_tag, describe, evaluate, network_tables, run_networks, train_base,
                         train_mask_sets)


# What the base network must solve before its masks can say anything (the fraction of all 10,000 problems of an
# operation): an FNN solves + exactly and × nearly; the LSTM both nearly. Below target, every claim on the network is
# untestable (wmask.evidence).
FNN_TARGET, LSTM_TARGET = {"+": 0.99, "×": 0.95}, {"+": 0.95, "×": 0.95}


def _fnn(hidden, base_steps, mask_steps, clip_mode="all", base_lr=1e-3, until_settled=False,
         **mask) -> NetConfig:
    """``until_settled``: base training stops once a validation split meets the target (checked every 1,000
    steps), and mask training once every mask has settled (wmask.evidence); the steps are then maxima."""
    return NetConfig(model="fnn", hidden=hidden,
                     base=BaseTrainConfig(steps=base_steps, lr=base_lr, eval_every=1000 if until_settled else 0),
                     mask=MaskTrainConfig(steps=mask_steps, log_every=100, clip_mode=clip_mode,
                                          stop_on_plateau=until_settled, **mask),
                     target=dict(FNN_TARGET), stop_at_target=until_settled)


def _lstm(hidden, base_steps, mask_steps, clip_mode="all", base_lr=1e-3, **mask) -> NetConfig:
    return replace(_fnn(hidden, base_steps, mask_steps, clip_mode, base_lr, **mask), model="lstm", lstm_steps=3,
                   target=dict(LSTM_TARGET))


def paper_networks() -> dict[str, NetConfig]:
    """The paper's: 20k base and 20k mask steps, widths small / medium / big / huge, LSTM 2 x 256 (for a GPU)."""
    return {"fnn_small": _fnn([400, 400, 200], 20_000, 20_000), "fnn_medium": _fnn([800] * 4, 20_000, 20_000),
            "fnn_big": _fnn([2000] * 4, 20_000, 20_000), "fnn_huge": _fnn([4000] * 4, 20_000, 20_000),
            "fnn_big_masks_clip": _fnn([2000] * 4, 20_000, 20_000, clip_mode="masks"),
            "lstm": _lstm([256, 256], 20_000, 20_000)}


@dataclass
class AddMulConfig:
    """The experiment's config; the defaults are the paper's settings."""
    networks: dict[str, NetConfig] = field(default_factory=paper_networks)  # each gets control, +, × masks
    size_study: tuple[str, ...] = ("fnn_small", "fnn_medium", "fnn_big", "fnn_huge")  # smallest first
    sweep_network: str = "fnn_big"             # the α sweep trains + and × masks on this network's base net ("": none)
    sweep_alphas: tuple[float, ...] = (1e-5, 3e-5, 1e-4, 3e-4, 1e-3)
    seed: int = 0

    def __post_init__(self):
        for key, names in (("size_study", self.size_study), ("sweep_network", [self.sweep_network] * bool(
                self.sweep_network))):
            if unknown := list(dict.fromkeys(n for n in names if n not in self.networks)):
                raise ValueError(f"{key} names networks {unknown} that networks does not hold (it holds "
                                 f"{list(self.networks)}): override {key} too, or pass --networks NET[,NET...] to "
                                 "run some of the preset's networks")


# Masks use the authors' clipping ("all", the book's method page) unless a network's name ends in "_masks_clip"; such
# a network shares its base net with the one it is named after, so the two clipping modes compare on the same
# weights. A preset's "networks" names the networks it runs; a name the paper's networks lack starts from NetConfig's
# defaults. How each preset's runs went: results/addmul/README.md.
SMOKE = {   # seconds: tiny nets, enough steps to exercise every code path (the numbers mean nothing)
    "networks": {"fnn": _fnn([64, 64], 300, 100), "fnn_xs": _fnn([32, 32], 200, 60), "lstm": _lstm([32, 32], 150, 40),
                 "fnn_masks_clip": _fnn([64, 64], 300, 100, clip_mode="masks")},
    "size_study": ("fnn_xs", "fnn"),
    "sweep_network": "fnn",
    "sweep_alphas": (1e-4, 1e-3),
}
CPU = {     # two cores: each network trains until it can carry a claim (base to target, masks until settled)
    "networks": {"fnn": {}, "fnn_s": {}, "lstm": {}},
    **each_network(("fnn", "fnn_s", "lstm"), {
        "base.eval_every": 1000,        # check the target every 1,000 steps ...
        "stop_at_target": True,         # ... and stop there: base steps are maxima
        "mask.steps": 15_000,           # at most: ...
        "mask.stop_on_plateau": True,   # ... masks stop once settled (wmask.evidence)
        "mask.lr": 3e-2,                # Adam moves a logit ~lr a step: the paper's 20k steps at 1e-2 in a third
        "mask.log_every": 100,          # curves fine enough for the settling rule
    }),
    "networks.fnn.hidden": (400, 400, 200),     # a size of the authors' sweeps
    "networks.fnn.base.steps": 10_000,
    "networks.fnn.target": FNN_TARGET,
    "networks.fnn_s.hidden": (200, 200, 100),   # the smallest that reaches the target at this budget
    "networks.fnn_s.base.steps": 15_000,
    "networks.fnn_s.target": FNN_TARGET,
    "networks.lstm.model": "lstm",
    "networks.lstm.hidden": (128, 128),         # paper 2 x 256: half the width, a quarter of the weights
    "networks.lstm.base.steps": 8000,           # at most: reaches + 1.0 / × 0.999 by 8k steps at Adam 3e-3
    "networks.lstm.base.lr": 3e-3,              # the paper's 1e-3 needs all 20k steps
    "networks.lstm.target": LSTM_TARGET,
    "size_study": ("fnn_s", "fnn"),             # smallest first
    "sweep_network": "fnn_s",                   # the α sweep on the cheaper net ...
    "sweep_alphas": (3e-5, 1e-3),               # ... beside the nets' own 1e-4
}
PRESETS = {"smoke": SMOKE, "cpu": CPU, "paper": {}}


def run_sweep(cfg: AddMulConfig, store, device, progress=True) -> list[dict]:
    """+ and × masks at every α of the sweep, all in one batched pass, on the sweep network's base net."""
    task, net = AddMul(), cfg.networks[cfg.sweep_network]
    model, _ = train_base(task, net, cfg.seed, store, base_tag(cfg.networks, cfg.sweep_network), device, progress)
    sets = [op for _ in cfg.sweep_alphas for op in ("+", "×")]
    alphas = [a for a in cfg.sweep_alphas for _ in ("+", "×")]
    binary, _ = train_mask_sets(task, model, sets, net, cfg.seed, store, f"{cfg.sweep_network}.sweep", device,
                                progress, alphas=alphas)
    masks = [{p: t[i] for p, t in binary.items()} for i in range(len(sets))]
    acc = evaluate(task, model, {str(i): m for i, m in enumerate(masks)}, net, cfg.seed, device)
    rows = []
    for j, alpha in enumerate(cfg.sweep_alphas):
        plus, times = masks[2 * j], masks[2 * j + 1]
        rows.append({"alpha": alpha, "+ mask on +": acc[str(2 * j)]["+"], "+ mask on ×": acc[str(2 * j)]["×"],
                     "× mask on ×": acc[str(2 * j + 1)]["×"], "× mask on +": acc[str(2 * j + 1)]["+"],
                     "shared + in ×": metrics.shared_fraction([plus, times], 0)["total"],
                     "shared × in +": metrics.shared_fraction([plus, times], 1)["total"]})
    return rows


def run(cfg: AddMulConfig, store, device="cpu", progress: bool = True) -> dict:
    nets = run_networks(cfg.networks, lambda net: AddMul(), cfg.seed, store, device, progress)
    sweep = run_sweep(cfg, store, device, progress) if cfg.sweep_alphas else []
    return {"networks": nets, "sweep": sweep}


def tables(runs: list[dict]) -> dict[str, list[dict]]:
    """Tidy rows over all seeds: those of :func:`network_tables`; sharing per network; the α sweep."""
    out = {**network_tables(runs), "sharing": [], "sweep": []}
    for run_ in runs:
        seed = run_["seed"]
        for name, net in run_["networks"].items():
            total = net["layers"][-1]
            out["sharing"].append({"seed": seed, "network": name, "clip_mode": net["clip_mode"],
                                   "weights": total["size"], "shared + in ×": net["shared"]["+ in ×"]["total"],
                                   "shared × in +": net["shared"]["× in +"]["total"],
                                   "IoU": total["IoU"], "IoMin": total["IoMin"]})
        out["sweep"] += [{"seed": seed, **row} for row in run_["sweep"]]
    return out


EXPERIMENT = Experiment("addmul", AddMulConfig, PRESETS, run, tables, describe=describe)
