"""Structural modularity (Filan et al.): how clusterable are MNIST MLPs' weight graphs, and do functional masks line
up with the clusters?

Per seed:

1. **Filan et al.'s networks** (:mod:`wmask.experiments.tasks.mnist_mlp`): the untrained initialisation; trained
without and
   with dropout; each of those magnitude-pruned to 90 %. For each, the n-cut of a K-way spectral clustering and its
   shuffle nulls (:mod:`wmask.experiments.clusterability`): ``layer`` always, ``layer_nonzero`` for the pruned networks
   (for a
   dense network the two nulls are the same shuffle).
2. **Masks against clusters** (the question neither paper asks): the networks whose functional masks the book trains
   (planted, add/mul, double addition) are clustered too, and each mask's kept weights are compared with the clusters:
   the fraction lying within one cluster (against random masks of the same size per layer) and how differently the
   two masks of a pair (A / B, + / ×, pair 1 / pair 2) spread over the clusters (total-variation distance of their
   cluster shares, against random pairs). The arithmetic networks and masks are those of the book's own chapters at
   ``align_preset``: stored under the same results folder, they are reused when the chapter ran first.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from .. import clusterability as cl
from ... import evidence
from ..experiment import Experiment
from ..fingerprint import computing_files
from ..store import Store
from . import mnist_mlp
from .mnist_mlp import MLPConfig

NETWORKS = ("init", "trained", "dropout", "pruned", "pruned+dropout")


@dataclass
class ClusterabilityConfig:
    """Defaults: Filan et al.'s "Clusterability" settings (K = 12, 50 shuffles, 20 + 20 epochs)."""
    mlp: MLPConfig = field(default_factory=MLPConfig)
    dataset: str = "mnist"            # "mnist" (from the data directory) or "synthetic" (Gaussian classes, for smoke)
    data_dir: str = ""                # "" = $WMASK_DATA
    ks: tuple[int, ...] = (12,)       # clusters; n-cut values at different K are not comparable
    n_shuffles: int = 50
    workers: int = 2                  # processes for the shuffles
    align: tuple[str, ...] = ("planted", "addmul", "double_addition")
    align_preset: str = "paper"       # the preset of the chapters whose networks and masks are compared
    align_k: tuple[int, ...] = (2, 12)
    align_seeds: tuple[int, ...] = (0, 1, 2)   # seeds that also run the alignment
    n_random: int = 100               # random masks per comparison
    seed: int = 0

    def __post_init__(self):
        for name in ("ks", "align", "align_k", "align_seeds"):
            setattr(self, name, tuple(getattr(self, name)))
        unknown = set(self.align) - {"planted", "addmul", "double_addition"}
        if unknown:
            raise ValueError(f"align: unknown networks {sorted(unknown)}; known: planted, addmul, double_addition")
        if self.dataset not in ("mnist", "synthetic"):
            raise ValueError(f"dataset must be 'mnist' or 'synthetic', got {self.dataset!r}")


def synthetic(seed: int, n_train: int = 6000, n_test: int = 1000) -> dict:
    """A learnable stand-in for MNIST (smoke runs without the data): 10 Gaussian classes in [0, 1]^784."""
    g = torch.Generator().manual_seed(1234 + seed)
    centres = torch.rand(10, 784, generator=g)

    def draw(n):
        y = torch.randint(0, 10, (n,), generator=g)
        return (centres[y] + 0.5 * torch.randn(n, 784, generator=g)).clamp(0, 1), y
    (tx, ty), (ex, ey) = draw(n_train), draw(n_test)
    return {"train_x": tx, "train_y": ty, "test_x": ex, "test_y": ey, "dataset": "synthetic (10 Gaussian classes)",
            "checksum": "synthetic"}


def mnist_networks(cfg: ClusterabilityConfig, data: dict, store: Store, progress: bool) -> dict:
    """The five networks: ``{name: (model, test accuracy, sparsity per layer)}``, trained or loaded from ``store``."""
    out = {"init": mnist_mlp.mlp(cfg.mlp.hidden, 0.0, cfg.seed)}
    x, y = data["train_x"], data["train_y"]
    key = {"mlp": asdict(cfg.mlp), "dataset": data["dataset"], "checksum": data["checksum"], "seed": cfg.seed}
    for dropout, name in ((0.0, "trained"), (cfg.mlp.dropout, "dropout")):
        model = mnist_mlp.mlp(cfg.mlp.hidden, dropout, cfg.seed)
        store.network(name, model, {**key, "net": name},
                      lambda m=model, n=name: mnist_mlp.train(m, x, y, cfg.mlp, cfg.seed, progress, n,
                                                              store.checkpoint(n)) or {})
        out[name] = model
        pruned = mnist_mlp.mlp(cfg.mlp.hidden, dropout, cfg.seed)
        pruned.load_state_dict(model.state_dict())
        pname = "pruned" if name == "trained" else "pruned+dropout"
        store.network(pname, pruned, {**key, "net": pname},
                      lambda m=pruned, n=pname: {"kept": [float(k.float().mean()) for k in
                                                          mnist_mlp.prune(m, x, y, cfg.mlp, cfg.seed, progress, n)]})
        out[pname] = pruned
    return {n: (out[n], mnist_mlp.accuracy(out[n], data["test_x"], data["test_y"]), mnist_mlp.sparsity(out[n]))
            for n in NETWORKS}


def _cluster(weights, k, method, cfg, store: Store, name: str) -> dict:
    """:func:`wmask.experiments.clusterability.clusterability`, stored (``<name>-k<K>-<method>.json``) so a rerun
    reuses it."""
    key = {"network": name, "k": k, "method": method, "n_shuffles": cfg.n_shuffles, "seed": cfg.seed}

    def compute():
        r = cl.clusterability(weights, k, cfg.n_shuffles, method, cfg.seed, cfg.workers)
        return {**{f: r[f] for f in ("ncut", "null", "mean", "sd", "percentile", "z")},
                "all_labels": r["all_labels"].tolist(), "all_sizes": r["all_sizes"], "units": int(len(r["labels"]))}
    return store.json(store.root / f"{name}-k{k}-{method}.json", key, compute)


# -- alignment: the book's functional masks against the clusters --------------------------------------------------
def _linear_masks(model, masks: dict) -> list:
    """A mask dict (parameter name -> bool, True = kept) as a list over the model's 2-d weights, first layer first."""
    names = [n for n, p in model.named_parameters() if n.endswith("weight") and p.ndim == 2]
    return [masks[n] for n in names]


def _arithmetic(which: str, cfg: ClusterabilityConfig, store: Store, device, progress) -> dict:
    """The FNN of the ``which`` chapter at ``align_preset`` (its base net and its two subtask masks), from the
    chapter's own store when it ran first."""
    from . import addmul, arithmetic, double_addition
    exp = {"addmul": addmul, "double_addition": double_addition}[which]
    net_cfg_all = exp.EXPERIMENT.config(cfg.align_preset, cfg.seed).networks
    name = next(n for n, c in net_cfg_all.items() if c.model == "fnn")
    net = net_cfg_all[name]
    task = arithmetic.AddMul() if which == "addmul" else arithmetic.DoubleAdd(separate_pairs=True)
    shared = Store(store.root.parent.parent.parent / which / cfg.align_preset / f"seed{cfg.seed}", store.stale,
                   computing_files(exp.__name__))      # the other chapter's artefacts, keyed as it keys them
    model, info = arithmetic.train_base(task, net, cfg.seed, shared, arithmetic.base_tag(net_cfg_all, name), device,
                                        progress)
    binary, history = arithmetic.train_mask_sets(task, model, [None, *task.subtasks], net, cfg.seed, shared, name,
                                                 device, progress)
    masks = {s: _linear_masks(model, {p: t[i + 1] for p, t in binary.items()}) for i, s in enumerate(task.subtasks)}
    settled = evidence.history_convergence(history, ["control", *task.subtasks])
    return {"weights": [w.cpu() for w in mnist_mlp.weights(model)], "masks": masks,
            "base": {s: (a, net.target.get(s, float("nan"))) for s, a in info["accuracy"].items()},
            "settled": {s: settled[s]["reason"] for s in task.subtasks}, "network": f"{which} {name}"}


def _planted(cfg: ClusterabilityConfig, progress) -> dict:
    from . import planted
    r = planted.run(planted.EXPERIMENT.config(cfg.align_preset, cfg.seed), progress=progress)
    settled = evidence.history_convergence({"step": r["history"].step, "loss": r["history"].loss,
                                            "kept": r["history"].kept}, ["A", "B"])
    return {"weights": mnist_mlp.weights(r["net"]), "masks": {s: _linear_masks(r["net"], r["masks"][s]) for s in "AB"},
            "base": {s: (a, float("nan")) for s, a in r["base_accuracy"].items()},
            "settled": {s: settled[s]["reason"] for s in "AB"}, "network": "planted"}


def align(found: dict, cfg: ClusterabilityConfig, store: Store, name: str) -> list[dict]:
    """Rows per K and mask: within-cluster fraction vs random masks, and (one row per pair) the separation."""
    rows = []
    (a, ma), (b, mb) = found["masks"].items()
    for k in cfg.align_k:
        c = _cluster(found["weights"], k, "layer", _no_null(cfg), store, name)
        labels, sizes = np.asarray(c["all_labels"]), c["all_sizes"]
        for mask_name, m in ((a, ma), (b, mb)):
            rand = cl.random_within_fraction(m, labels, sizes, cfg.n_random, cfg.seed)
            rows.append({"network": found["network"], "k": k, "ncut": c["ncut"], "mask": mask_name,
                         "within": cl.within_cluster_fraction(m, labels, sizes), "random within": float(rand.mean()),
                         "random within sd": float(rand.std())})
        rand = cl.random_separation(ma, mb, labels, sizes, k, cfg.n_random, cfg.seed)
        rows.append({"network": found["network"], "k": k, "ncut": c["ncut"], "mask": f"{a} vs {b}",
                     "separation": cl.separation(ma, mb, labels, sizes, k), "random separation": float(rand.mean()),
                     "random separation sd": float(rand.std())})
    return rows


def _no_null(cfg):
    from dataclasses import replace
    return replace(cfg, n_shuffles=0)


def run(cfg: ClusterabilityConfig, store: Store, device="cpu", progress: bool = True) -> dict:
    data = (synthetic(cfg.seed) if cfg.dataset == "synthetic"
            else mnist_mlp.load_mnist(cfg.data_dir, cfg.mlp.train_examples))
    nets = mnist_networks(cfg, data, store, progress)
    rows = []
    for name, (model, acc, sparsity) in nets.items():
        methods = cl.SHUFFLES if name.startswith("pruned") else ("layer",)
        for k in cfg.ks:
            for method in methods:
                c = _cluster(mnist_mlp.weights(model), k, method, cfg, store, name)
                rows.append({"network": name, "accuracy": acc, "sparsity": float(np.mean(sparsity)), "k": k,
                             "null": method, "units": c["units"], **{f: c[f] for f in
                                                                    ("ncut", "mean", "sd", "percentile", "z")},
                             "shuffles": c["null"]})
    alignment, gates = [], {}
    if cfg.seed in cfg.align_seeds:
        for which in cfg.align:
            found = _planted(cfg, progress) if which == "planted" else _arithmetic(which, cfg, store, device, progress)
            alignment += align(found, cfg, store, f"align-{which}")
            gates[found["network"]] = {"base": found["base"], "settled": found["settled"]}
    return {"clusterability": rows, "alignment": alignment, "gates": gates, "dataset": data["dataset"],
            "dataset_checksum": data["checksum"]}


def tables(runs: list[dict]) -> dict[str, list[dict]]:
    """Tidy rows over seeds: ``ncut`` (network, K, null: n-cut, null mean/sd, percentile, z, accuracy), ``shuffles``
    (every null n-cut), ``alignment`` (within-cluster fractions and separations against random masks), ``gates``
    (alignment networks' base accuracy against target and whether each mask settled)."""
    out = {"ncut": [], "shuffles": [], "alignment": [], "gates": []}
    for r in runs:
        for row in r["clusterability"]:
            out["ncut"].append({"seed": r["seed"], **{k: v for k, v in row.items() if k != "shuffles"}})
            out["shuffles"] += [{"seed": r["seed"], "network": row["network"], "k": row["k"], "null": row["null"],
                                 "ncut": v} for v in row["shuffles"]]
        out["alignment"] += [{"seed": r["seed"], **row} for row in r["alignment"]]
        for net, g in r["gates"].items():
            out["gates"] += [{"seed": r["seed"], "network": net, "subtask": s, "accuracy": a, "target": t,
                              "settled": g["settled"].get(s, "") == "", "reason": g["settled"].get(s, "")}
                             for s, (a, t) in g["base"].items()]
    return out


# Filan et al.'s released results for MNIST MLPs at K = 12 (5 networks, 50 shuffles, 20 + 20 epochs; their
# repository dfilan/clusterability_in_neural_networks, results/mlp-ncut-cohens-d-k12-n50.csv, and for the
# initialisation results/random_init_data.pkl, 100 networks): n-cut, then the mean of the 'layer' and of the
# 'layer_nonzero' null
PUBLISHED_K12 = {"init": (10.295, None, None), "trained": (10.05, 10.15, 10.15), "dropout": (9.92, 10.27, 10.28),
                 "pruned": (9.01, 9.18, 9.08), "pruned+dropout": (8.36, 9.24, 8.59)}


def published(network: str, null: str = "layer") -> str:
    """Filan et al.'s K = 12 numbers for ``network`` as ``"n-cut / null mean"`` (``""`` when they have none)."""
    ncut, layer, nonzero = PUBLISHED_K12.get(network, (None, None, None))
    mean = layer if null == "layer" else nonzero
    return "" if ncut is None else f"{ncut:.2f}" + (f" / {mean:.2f}" if mean is not None else " (no null)")


PRESETS = {
    "smoke": {"dataset": "synthetic", "mlp.hidden": (32, 32), "mlp.epochs": 1, "mlp.prune_epochs": 1,
              "mlp.target": 0.5, "ks": (4,), "n_shuffles": 4, "workers": 1, "align": ("planted", "addmul"),
              "align_k": (2,), "n_random": 10, "align_preset": "smoke", "align_seeds": (0,)},
    # 2 cores, about 10 min a seed: 10 + 10 epochs (MNIST MLPs are past 0.97 after a few), K = 12 as the
    # "Clusterability" paper, 100 shuffles per null (the issue's floor); alignment on the cpu chapters' networks
    "cpu": {"mlp.epochs": 10, "mlp.prune_epochs": 10, "n_shuffles": 100, "align_preset": "cpu",
            "align": ("planted", "addmul"), "align_seeds": (0,)},
    "paper": {"ks": (12, 4), "n_shuffles": 100},
}

def describe(config: dict) -> str:
    """The MLPs, the clustering and the masks compared, in one line."""
    m = config["mlp"]
    return (f"MLP 784-{'-'.join(map(str, m['hidden']))}-10, {m['epochs']} + {m['prune_epochs']} pruning epochs; "
            f"K {config['ks']}, {config['n_shuffles']} shuffles per null; masks of {config['align']} at "
            f"{config['align_preset']}")


EXPERIMENT = Experiment("clusterability", ClusterabilityConfig, PRESETS, run, tables, describe=describe)
