"""The book's figures, drawn from an experiment's tidy tables (no training): sized for the page's column, fonts of 9 pt
and more; the run a figure comes from is named in the chapter's verdict box and captions, not in the figure."""
from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from ..experiments.tasks.scan import LABELS     # SCAN's split names as the paper writes them

WIDTH = 7.4          # inches: the book's content column at 100 dpi
plt.rcParams.update({"font.size": 10, "axes.titlesize": 10, "axes.labelsize": 10, "legend.fontsize": 9,
                     "xtick.labelsize": 9, "ytick.labelsize": 9, "figure.dpi": 100})


def _panels(n: int, height: float, **kw):
    """``n`` panels side by side across the column."""
    return plt.subplots(1, n, figsize=(WIDTH, height), squeeze=False, **kw)


def plot_curves(curves, by: str | None = "network", title: str = ""):
    """Kept fraction and task loss vs step for every mask (mean over seeds, band = min..max), one row per ``by``."""
    curves = pd.DataFrame(curves)
    groups = list(curves.groupby(by, sort=False)) if by else [("", curves)]
    fig, axes = plt.subplots(len(groups), 2, figsize=(WIDTH, 2.5 * len(groups) + 0.5), squeeze=False)
    for (name, c), (ax_k, ax_l) in zip(groups, axes):
        for mask, m in c.groupby("mask", sort=False):
            g = m.groupby("step")
            for ax, col in ((ax_k, "kept"), (ax_l, "loss")):
                line, = ax.plot(g[col].mean().index, g[col].mean(), label=mask, lw=1.2)
                ax.fill_between(g[col].min().index, g[col].min(), g[col].max(), color=line.get_color(), alpha=0.15)
        ax_k.set(title=f"{name} — kept fraction" if name else "kept fraction", xlabel="mask step",
                 ylabel="kept fraction")
        ax_l.set(title=f"{name} — task loss" if name else "task loss", xlabel="mask step", ylabel="loss",
                 yscale="log")
        ax_k.legend(fontsize=9, ncol=2)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_base(curve, title: str = "", accuracy: str = "held-out accuracy"):
    """The base network's training curve per seed: loss (mean of each 50 steps) and the accuracy it was evaluated
    at every ``base.eval_every`` steps (``accuracy`` names that axis, e.g. "iid test exact match")."""
    curve = pd.DataFrame(curve)
    fig, (ax_l, ax_a) = plt.subplots(1, 2, figsize=(WIDTH, 2.9))
    for seed, c in curve.groupby("seed"):
        for ax, column, style in ((ax_l, "loss", {}), (ax_a, "held-out accuracy", {"marker": "o", "ms": 3})):
            points = c.dropna(subset=[column]) if column in c else c.iloc[:0]
            ax.plot(points.step, points.get(column, []), lw=1, label=f"seed {seed}", **style)
    ax_l.set(xlabel="step", ylabel="training loss (mean of 50 steps)", yscale="log")
    ax_a.set(xlabel="step", ylabel=accuracy)
    ax_a.legend(fontsize=9)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_layer_overlap(layers, nets: list[str], ylabel: str, title: str):
    """Per-layer IoU and IoMin bars (mean ± sd over seeds), one panel per network; ``layers`` is the tidy table."""
    layers = layers[layers.network.isin(nets) & (layers.layer != "total")]
    long = layers.melt(id_vars=["seed", "network", "layer"], value_vars=["IoU", "IoMin"], var_name="metric")
    fig, axes = plt.subplots(1, len(nets), figsize=(WIDTH, 3.4), sharey=True, squeeze=False)
    for ax, net in zip(axes[0], nets):
        sns.barplot(data=long[long.network == net], x="layer", y="value", hue="metric", errorbar="sd", ax=ax)
        ax.set(title=net, xlabel="masked weight tensor (input → output)", ylabel=ylabel)
        plt.setp(ax.get_xticklabels(), rotation=30, ha="right", rotation_mode="anchor")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def fig4a(tables, models, title: str = ""):
    """Each split's test accuracy under the full-problem mask, the split's own mask and a net from scratch."""
    rows = []
    for m in models:
        acc = tables[m]["accuracy"]
        for split, name in LABELS.items():
            on = acc[acc.test == split]
            for variant, label in (("mask simple", "full-problem mask"), (f"mask {split}", "split's own mask"),
                                   ("scratch" if split != "simple" else "full", "from scratch")):
                rows += [{"model": m, "split": name, "how": label, "accuracy": a}
                         for a in on[on.variant == variant].accuracy]
    bars = pd.DataFrame(rows)
    fig, axes = plt.subplots(1, len(models), figsize=(WIDTH, 3.6), sharey=True, squeeze=False)
    for ax, m in zip(axes[0], models):
        sns.barplot(data=bars[bars.model == m], x="split", y="accuracy", hue="how", errorbar="sd", ax=ax)
        ax.set(title=m, xlabel="test set", ylabel="exact-match accuracy", ylim=(0, 1.05))
        ax.legend(fontsize=9)
    fig.tight_layout()


def fig4b(tables, summaries, models, title: str = ""):
    """Per output token, the % of its output weights the add-jump mask removes (of those the full-problem mask
    keeps)."""
    removed = pd.concat([pd.DataFrame(tables[m]["removed"]).assign(model=m) for m in models])
    tokens = summaries[models[0]]["runs"][0]["out_vocab"]
    fig, axes = plt.subplots(1, len(models), figsize=(WIDTH, 3.4), sharey=True, squeeze=False)
    for ax, m in zip(axes[0], models):
        r = removed[(removed.model == m) & (removed["mask"] == "addprim_jump")]
        sns.barplot(data=r, x="token", y="removed %", order=tokens, errorbar="sd", ax=ax, color="tab:red")
        ax.set(title=f"{m}: add-jump mask", xlabel="output token", ylabel="output weights removed (%)")
        plt.setp(ax.get_xticklabels(), rotation=30, ha="right", rotation_mode="anchor")
    fig.tight_layout()


def fig5(worst, title: str = ""):
    """The paper's Fig. 5: per removed class, the relative drop on it and the worst other class's drop as % of it;
    with a ``code`` column (ours / the authors'), side by side."""
    hue = "code" if "code" in worst else None
    fig, axes = plt.subplots(1, 2, figsize=(WIDTH, 3.6 if hue else 3.3))
    sns.barplot(data=worst, x="class", y="own drop %", hue=hue, errorbar="sd", ax=axes[0],
                **({} if hue else {"color": "tab:red"}))
    axes[0].set(xlabel="removed class", ylabel="relative accuracy drop on it (%)", title="drop on the removed class")
    sns.barplot(data=worst, x="class", y="worst other / own %", hue=hue, errorbar="sd", ax=axes[1],
                **({} if hue else {"color": "tab:blue"}))
    axes[1].axhline(10, ls="--", c="k", lw=0.8, label="paper's y-range (10 %)")
    axes[1].set(xlabel="removed class", ylabel="worst other-class drop / own drop (%)",
                title="largest drop on any other class")
    if hue:                       # one legend, beside the right panel, for both
        axes[0].get_legend().remove()
        axes[1].legend(fontsize=9, loc="upper left", bbox_to_anchor=(1.01, 1))
    else:
        axes[1].legend(fontsize=9)
    for ax in axes:
        ax.tick_params(axis="x", rotation=45)
    fig.tight_layout()


def math_base_curves(t, title: str = ""):
    """The Mathematics chapter's base networks: training loss and held-out exact match per module."""
    fig, (ax_l, ax_a) = plt.subplots(1, 2, figsize=(WIDTH, 3.0))
    for module, c in t["base_curves"].groupby("network"):
        ax_l.plot(c.step, c.loss, label=module)
    ev = t["base_evals"].groupby(["network", "test", "step"]).accuracy.mean().reset_index()
    for (module, test), c in ev.groupby(["network", "test"]):
        ax_a.plot(c.step, c.accuracy, marker=".", label=f"{module}: {test}")
    target = t["base"].target.iloc[0]
    ax_a.axhline(target, color="grey", ls=":", label="target (hard)")
    ax_l.set(xlabel="base step", ylabel="training loss (per sequence)", yscale="log")
    ax_a.set(xlabel="base step", ylabel="held-out exact match", ylim=(0, 1.02))
    ax_l.legend(fontsize=9)
    ax_a.legend(fontsize=9)
    fig.tight_layout()


def reach_curves(evals, target: float, tests=("easy", "medium", "hard")):
    """Held-out exact match against base steps of every run tried (:func:`wmask.book.reach.runs`), one panel per
    difficulty, mean over seeds; the hard target dotted."""
    fig, axes = _panels(len(tests), 3.0, sharey=True)
    for ax, test in zip(axes[0], tests):
        for (run, network), c in evals[evals.test == test].groupby(["run", "network"], sort=False):
            g = c.groupby("step").accuracy.mean()
            ax.plot(g.index, g.values, marker=".", label=run)
        if test == "hard":
            ax.axhline(target, color="grey", ls=":", label="target")
        ax.set(title=f"held-out {test}", xlabel="base step", xscale="log", ylim=(0, 1.02))
    axes[0][0].set_ylabel("exact match")
    axes[0][-1].legend(fontsize=8, loc="upper left")
    fig.tight_layout()


def math_accuracy_bars(acc, title: str = ""):
    """The Mathematics chapter's figure: each module's hard and easy accuracy under the network and both masks."""
    order = ["network", "control mask", "easy mask"]
    fig, axes = plt.subplots(1, 2, figsize=(WIDTH, 3.3), sharey=True)
    for ax, test in zip(axes, ("hard", "easy")):
        sns.barplot(data=acc[acc.test == test], x="network", y="accuracy", hue="weights", hue_order=order,
                    errorbar="sd", ax=ax)
        ax.set(title=f"held-out {test} problems", xlabel="module", ylabel="exact match", ylim=(0, 1.05))
        ax.legend(fontsize=9)
    if title:
        fig.suptitle(title)
    fig.tight_layout()


def accuracy_bars(acc, cfg: dict, nets: list[str], order: list[str], title: str = "Accuracy per mask"):
    """The arithmetic chapters' bars: each mask's accuracy on each subtask, one panel per network (± sd over seeds).
    ``cfg``: the run's ``networks`` config, for the panel titles."""
    fig, axes = _panels(len(nets), 3.4, sharey=True)
    for ax, net in zip(axes[0], nets):
        sub = acc[(acc.network == net) & acc["mask"].isin(order)]
        sns.barplot(data=sub, x="mask", y="accuracy", hue="evaluated on", order=order, errorbar="sd", ax=ax)
        ax.set(title=f"{net} ({cfg[net]['model']} {cfg[net]['hidden']})", xlabel="mask",
               ylabel="accuracy (fraction solved)")
        plt.setp(ax.get_xticklabels(), rotation=35, ha="right", rotation_mode="anchor")
    fig.suptitle(title)
    fig.tight_layout()


def kept_per_layer(layers, nets: list[str], masks=("control", "+", "×"),
                   title: str = "Weights kept by each mask, per layer"):
    """How many weights each mask keeps in each weight tensor, one panel per network (± sd over seeds)."""
    kept = layers.melt(id_vars=["seed", "network", "layer"], value_vars=[f"kept {m}" for m in masks],
                       var_name="mask", value_name="weights kept")
    kept["mask"] = kept["mask"].str.replace("kept ", "")
    fig, axes = _panels(len(nets), 3.4)
    for ax, net in zip(axes[0], nets):
        sns.barplot(data=kept[kept.network == net], x="layer", y="weights kept", hue="mask", errorbar="sd", ax=ax)
        ax.set(title=net, xlabel="masked weight tensor (input → output)", ylabel="weights kept (count)")
        ax.tick_params(axis="x", rotation=30)
    fig.suptitle(title)
    fig.tight_layout()


def sharing_vs_size(sharing, sizes: list[str], cfg: dict, title: str = "Sharing vs size"):
    """The add/mul size study: % of the + mask's weights the × mask shares, against the network's size."""
    from matplotlib.ticker import NullFormatter
    size = sharing[sharing.network.isin(sizes)].copy()
    size["% of + weights shared with ×"] = 100 * size["shared + in ×"]
    fig, ax = plt.subplots(figsize=(WIDTH * 0.7, 3.4))
    sns.lineplot(data=size, x="weights", y="% of + weights shared with ×", marker="o", errorbar="sd", ax=ax)
    for name in sizes:
        row = size[size.network == name].iloc[0]
        ax.annotate(f"{name} {cfg[name]['hidden']}", (row["weights"], row["% of + weights shared with ×"]),
                    fontsize=9, textcoords="offset points", xytext=(4, 4))
    ax.set(xscale="log", xlabel="masked weights in the network (count, log scale)",
           ylabel="% of + weights shared with ×", title=title)
    ax.xaxis.set_minor_formatter(NullFormatter())   # log axis: label the decades only
    fig.tight_layout()


def alpha_sweep(sweep, network: str):
    """The add/mul α sweep: each mask's accuracy on its own and on the other operation against α, coloured by the
    share of + weights the × mask also keeps (one point per seed)."""
    long = pd.concat([sweep.assign(mask="+ mask", own=sweep["+ mask on +"], other=sweep["+ mask on ×"]),
                      sweep.assign(mask="× mask", own=sweep["× mask on ×"], other=sweep["× mask on +"])])
    long["% shared"] = 100 * long["shared + in ×"]
    fig, axes = _panels(2, 3.6, sharey=True, layout="constrained")
    for ax, col, title in zip(axes[0], ["own", "other"], ["own operation", "other operation"]):
        for mask, marker in (("+ mask", "o"), ("× mask", "s")):
            pts_of = long[long["mask"] == mask]
            pts = ax.scatter(pts_of["alpha"], pts_of[col], c=pts_of["% shared"], cmap="viridis", s=30, marker=marker,
                             edgecolor="k", linewidth=0.3, label=mask, vmin=long["% shared"].min(),
                             vmax=long["% shared"].max())
        ax.set(xscale="log", xlabel="α (regulariser strength)", ylabel="accuracy (fraction solved)",
               title=f"mask evaluated on its {title}")
        ax.legend()
    fig.colorbar(pts, ax=axes[0].tolist(), label="% of + weights shared with ×")
    fig.suptitle(f"Accuracy vs α on {network} (one point per seed)")


def confusion_change(diff, classes: list[str]):
    """CIFAR-10: the mean change of the confusion matrix from the control mask to the class-removal masks."""
    import numpy as np
    fig, ax = plt.subplots(figsize=(WIDTH * 0.8, 5.6))
    lim = np.abs(diff).max()
    sns.heatmap(pd.DataFrame(diff, index=classes, columns=classes), cmap="RdBu_r", vmin=-lim, vmax=lim, ax=ax,
                cbar_kws={"label": "change in fraction of the true class"})
    ax.set(xlabel="predicted class", ylabel="true class", title="mean confusion difference (class-removal − control)")
    fig.tight_layout()
