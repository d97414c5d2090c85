"""Double addition: does a network reuse the weights of one addition for an identical second one (P_reuse)?

For each network: train it on both pairs, then train three masks in one batched pass (control: both pairs; pair 1;
pair 2), and test every mask and its inversion on both pairs, also with the variant that keeps the control mask on
the input and output layers when inverting (so removing pair 1 does not delete pair 2's I/O weights).
"""
from __future__ import annotations

from dataclasses import dataclass, field

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
# (same base net).
PRESETS = {
    "smoke": dict(networks={"fnn": _net("fnn", [64, 64], 300, 100, 4e-4, n_test=512),
                            "lstm": _net("lstm", [32, 32], 150, 40, 1e-4, n_test=512),
                            "fnn_masks_clip": _net("fnn", [64, 64], 300, 100, 4e-4, n_test=512, clip_mode="masks")}),
    # 2 cores: the FNN trained like add/mul's 400-400-200 network (until it can carry a claim: base training to the
    # target, at most 5,000 steps, which solve both pairs exactly in every seed; masks at lr 3e-2 until settled, at
    # most 15,000 steps). The LSTM reaches 0.99 per pair after 2,000 steps, but its masks took ≈ 14 min per seed
    # to settle (measured one set at a time over six input steps, 0.12 s a step for three; batched since, make
    # bench): it runs at paper only.
    "cpu": dict(networks={"fnn": _net("fnn", [400, 400, 200], 5000, 15_000, 4e-4, mask_lr=3e-2,
                                      until_settled=True)}),
    "paper": {},
}


def run(cfg: DoubleAddConfig, store, device="cpu", progress: bool = True) -> dict:
    nets = run_networks(cfg.networks, lambda net: DoubleAdd(separate_pairs=net.model == "fnn"), cfg.seed, store,
                        device, progress, keep_io=True)
    return {"networks": nets}


def tables(runs: list[dict]) -> dict[str, list[dict]]:
    """Tidy rows over all seeds (:func:`network_tables`): accuracy per (network, mask, pair); per-layer counts and
    overlaps; base accuracy against target; training curves."""
    return network_tables(runs)


EXPERIMENT = Experiment("double_addition", DoubleAddConfig, PRESETS, run, tables, describe=describe)
