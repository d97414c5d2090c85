"""Double addition: does a network reuse the weights of one addition for an identical second one (P_reuse)?

For each network: train it on both pairs, then train three masks in one batched pass (control: both pairs; pair 1;
pair 2), and test every mask and its inversion on both pairs, also with the variant that keeps the control mask on
the input and output layers when inverting (so removing pair 1 does not delete pair 2's I/O weights).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..config import each_network
from ..experiment import Experiment
from ...train import BaseTrainConfig, MaskTrainConfig
from .arithmetic import DoubleAdd, NetConfig, describe, network_tables, run_networks


# What the base network must solve (fraction of test problems with both digits of the pair right) before its masks
# can say anything; below it every claim on the network is untestable (wmask.evidence).
TARGET = {"pair 1": 0.95, "pair 2": 0.95}


def _net(model, hidden, base_steps, mask_steps, alpha, n_test=4096, clip_mode="all", base_lr=1e-3,
         mask_lr=1e-2, until_settled=False) -> NetConfig:
    """``until_settled``: as add/mul's (base training to the target, masks until settled; steps are maxima)."""
    return NetConfig(model=model, hidden=hidden, lstm_steps=6,
                     base=BaseTrainConfig(steps=base_steps, lr=base_lr, eval_every=1000 if until_settled else 0),
                     mask=MaskTrainConfig(steps=mask_steps, lr=mask_lr, alpha=alpha, log_every=100,
                                          clip_mode=clip_mode, stop_on_plateau=until_settled),
                     n_test=n_test, target=dict(TARGET), stop_at_target=until_settled)


def paper_networks() -> dict[str, NetConfig]:
    """The paper's: the 2000 x 4 FNN (also with clipping over the mask logits alone) and the 2 x 256 LSTM; plus
    the add/mul size study's small FNN (400-400-200) at the same settings and steps, the part of this preset a CPU
    finishes in about half an hour (``--networks fnn_small``)."""
    return {"fnn": _net("fnn", [2000] * 4, 20_000, 20_000, 4e-4),
            "fnn_masks_clip": _net("fnn", [2000] * 4, 20_000, 20_000, 4e-4, clip_mode="masks"),
            "lstm": _net("lstm", [256, 256], 20_000, 20_000, 1e-4),
            "fnn_small": _net("fnn", [400, 400, 200], 20_000, 20_000, 4e-4)}


@dataclass
class DoubleAddConfig:
    """The experiment's config; the defaults are the paper's settings."""
    networks: dict[str, NetConfig] = field(default_factory=paper_networks)  # each gets control, pair 1, pair 2
    seed: int = 0


# Masks use the authors' clipping ("all", see the book's method page) unless a network's name ends in "_masks_clip"
# (same base net). How each preset's runs went: results/double_addition/README.md.
SMOKE = {   # seconds: tiny nets (the numbers mean nothing)
    "networks": {"fnn": _net("fnn", [64, 64], 300, 100, 4e-4, n_test=512),
                 "lstm": _net("lstm", [32, 32], 150, 40, 1e-4, n_test=512),
                 "fnn_masks_clip": _net("fnn", [64, 64], 300, 100, 4e-4, n_test=512, clip_mode="masks")},
}
CPU = {     # two cores: each network trains until it can carry a claim (base to target, masks until settled)
    "networks": {"fnn": {}, "lstm": {}},        # the paper's two kinds, smaller
    **each_network(("fnn", "lstm"), {
        "base.eval_every": 1000,        # check the target every 1,000 steps ...
        "stop_at_target": True,         # ... and stop there: base steps are maxima
        "mask.steps": 15_000,           # at most: ...
        "mask.stop_on_plateau": True,   # ... masks stop once settled (wmask.evidence)
        "mask.lr": 3e-2,                # Adam moves a logit ~lr a step: the paper's 20k steps at 1e-2 in a third
        "mask.log_every": 100,          # curves fine enough for the settling rule
        "target": TARGET,
    }),
    "networks.fnn.hidden": (400, 400, 200),     # add/mul's size-study net: solves both pairs exactly by 5,000 steps
    "networks.fnn.base.steps": 5000,
    "networks.fnn.mask.alpha": 4e-4,            # the paper's FNN alpha
    "networks.lstm.model": "lstm",
    "networks.lstm.hidden": (128, 128),         # paper 2 x 256: half the width
    "networks.lstm.lstm_steps": 6,              # as the paper's LSTM (reads the input six times)
    "networks.lstm.base.steps": 8000,           # at most: at the paper's 1e-3 all three seeds reach the target by
    "networks.lstm.base.lr": 1e-3,              # 2,000 steps (at 3e-3 two of them stalled on a pair for 15,000)
    "networks.lstm.mask.alpha": 1e-4,           # the paper's LSTM alpha
}
PRESETS = {"smoke": SMOKE, "cpu": CPU, "paper": {}}


def run(cfg: DoubleAddConfig, store, device="cpu", progress: bool = True) -> dict:
    nets = run_networks(cfg.networks, lambda net: DoubleAdd(separate_pairs=net.model == "fnn"), cfg.seed, store,
                        device, progress, keep_io=True)
    return {"networks": nets}


def tables(runs: list[dict]) -> dict[str, list[dict]]:
    """Tidy rows over all seeds (:func:`network_tables`): accuracy per (network, mask, pair); per-layer counts and
    overlaps; base accuracy against target; training curves."""
    return network_tables(runs)


EXPERIMENT = Experiment("double_addition", DoubleAddConfig, PRESETS, run, tables, describe=describe)
