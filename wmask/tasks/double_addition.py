"""§2.2 Double addition: does a network reuse the weights of one addition for an identical second one (P_reuse)?

For each network: train it on both pairs, then train three masks in one batched pass (control: both pairs; pair 1;
pair 2), and test every mask and its inversion on both pairs, also with the variant that keeps the control mask on
the input and output layers when inverting (so removing pair 1 does not delete pair 2's I/O weights).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from .arithmetic import DoubleAdd, NetConfig, run_networks


@dataclass
class DoubleAddConfig:
    networks: dict = field(default_factory=dict)   # name -> NetConfig; every network gets control, pair 1, pair 2
    seed: int = 0

    def __post_init__(self):
        self.networks = {n: c if isinstance(c, NetConfig) else NetConfig(**c) for n, c in self.networks.items()}


def _net(model, hidden, base_steps, mask_steps, alpha, n_test=4096, clip_mode="all"):
    return dict(model=model, hidden=hidden, lstm_steps=6, base=dict(steps=base_steps, eval_every=0),
                mask=dict(steps=mask_steps, alpha=alpha, log_every=100, clip_mode=clip_mode), n_test=n_test)


# Masks use the authors' clipping ("all", spec §1) unless a network's name ends in "_masks_clip" (same base net).
PRESETS = {
    "smoke": dict(networks={"fnn": _net("fnn", [64, 64], 300, 100, 4e-4, n_test=512),
                            "lstm": _net("lstm", [32, 32], 150, 40, 1e-4, n_test=512),
                            "fnn_masks_clip": _net("fnn", [64, 64], 300, 100, 4e-4, n_test=512, clip_mode="masks")}),
    # ~15 minutes for 3 seeds on 2 cores; the LSTM is narrow and briefly trained (see the notebook)
    "cpu": dict(networks={"fnn": _net("fnn", [400, 400, 200], 5000, 1500, 4e-4),
                          "lstm": _net("lstm", [128, 128], 2000, 500, 1e-4)}),
    "paper": dict(networks={"fnn": _net("fnn", [2000] * 4, 20_000, 20_000, 4e-4),
                            "fnn_masks_clip": _net("fnn", [2000] * 4, 20_000, 20_000, 4e-4, clip_mode="masks"),
                            "lstm": _net("lstm", [256, 256], 20_000, 20_000, 1e-4)}),
}


def config(preset: str, seed: int) -> DoubleAddConfig:
    return DoubleAddConfig(**{**PRESETS[preset], "seed": seed})


def run_preset(preset: str, seed: int, progress: bool = True, work: str | Path = ".", device="cpu") -> dict:
    cfg = config(preset, seed)
    nets = run_networks(cfg.networks, lambda net: DoubleAdd(separate_pairs=net.model == "fnn"), seed, Path(work),
                        device, progress, keep_io=True)
    return {"config": asdict(cfg), "networks": nets}


def tables(runs: list[dict]) -> dict[str, list[dict]]:
    """Tidy rows over all seeds: accuracy per (network, mask, pair); per-layer counts and overlaps."""
    out = {"accuracy": [], "layers": []}
    for run in runs:
        for name, net in run["networks"].items():
            for variant, accs in net["accuracy"].items():
                out["accuracy"] += [{"seed": run["seed"], "network": name, "mask": variant, "evaluated on": pair,
                                     "accuracy": a} for pair, a in accs.items()]
            out["layers"] += [{"seed": run["seed"], "network": name, **row} for row in net["layers"]]
    return out
