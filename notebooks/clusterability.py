# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Structural modularity: are the weight graphs clusterable, and do masks follow the clusters?
#
# The masks of the other chapters find modules by **function**: which weights a subtask needs. Filan et al.
# {cite}`filan2020pruned,filan2021clusterability` find them by **structure** alone: an MLP is a graph whose nodes
# are its units and whose edges weigh |w|; a spectral clustering splits it into K clusters, and the normalised cut
# (n-cut, in [0, K], lower = more modular) scores the split. A network counts as clusterable when its n-cut is below
# that of the same network with each layer's weights shuffled. Their findings on MNIST MLPs (784-256×4-10): trained
# and pruned networks are more clusterable than random initialisations, more still when trained with dropout, and
# below every shuffle of their weights.
#
# Then a question neither paper asks: **do the functional masks line up with the structural clusters?** We cluster
# the networks whose masks the book trains (the planted two-module network, the add/mul FNN) and measure how much of
# each mask lies within one cluster, and how differently the two masks of a pair spread over the clusters, each
# against random masks of the same size per layer.
#
# Everything below is read from the committed run (`results/clusterability/cpu`, made by `make results PRESET=cpu
# EXP=clusterability`). How each piece follows the official code, and where it deviates, is in
# `wmask.experiments.clusterability` and `wmask.experiments.tasks.mnist_mlp`.

# %% tags=["parameters", "remove-cell"]
import os

preset = os.environ.get("WMASK_PRESET", "cpu")  # smoke | cpu | paper
seeds = [0, 1, 2]
run = False                  # False: read the committed results; True: run the experiment first (CI, at smoke)
results = "results"          # relative to the repository root (CI: _build/results)
device = "auto"

# %% tags=["remove-input"]
# %matplotlib inline
import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

from IPython.display import HTML, Markdown, display
from myst_nb import glue

from wmask.book import claims
from wmask.book.table import verdict_box
from wmask.book.report import chapter_run
from wmask.experiments.tasks import clusterability

summary, tables, where, run_cfg, _ = chapter_run("clusterability", preset, seeds, results, device, run=run)
CLAIMS = ["filan-pruned-below-init", "filan-dropout-lower", "filan-beats-shuffles",
          "alignment-planted", "alignment-arithmetic"]
display(HTML(verdict_box(CLAIMS, tables, run_cfg, where)))
mlp = run_cfg["mlp"]
print(f"MLP 784-{'-'.join(map(str, mlp['hidden']))}-10: {mlp['epochs']} epochs, then {mlp['prune_epochs']} pruning "
      f"epochs to {mlp['final_sparsity']:.0%} sparsity; K = {run_cfg['ks']}; {run_cfg['n_shuffles']} shuffles per "
      f"null; alignment on {run_cfg['align']} (their {run_cfg['align_preset']} presets), K = {run_cfg['align_k']}")

# %% [markdown]
# ## Can this run carry the claims?
#
# Filan et al.'s MNIST MLPs reach 0.98 test accuracy; a trained network here must reach the target below before its
# n-cut is compared (the untrained initialisation has no target). Test accuracy and the fraction of zero weights:

# %% tags=["hide-input"]
nets = tables["ncut"].drop_duplicates(["seed", "network"])
nets.pivot(index="network", columns="seed", values="accuracy").reindex(clusterability.NETWORKS).round(4) \
    .assign(target=mlp["target"], **{"sparsity (mean over layers)": nets.groupby("network").sparsity.mean()})

# %% [markdown]
# ## n-cut against the shuffle nulls
#
# For each network: its n-cut (line) and the n-cuts of its shuffles (histograms). `layer` shuffles every entry of a
# weight matrix, zeros included, so a pruned network's sparsity pattern becomes random; `layer_nonzero` shuffles only
# the non-zero weights among their positions, keeping the topology. For a dense network the two are the same
# shuffle and only `layer` is run.

# %% tags=["hide-input"]
shuf, ncut = tables["shuffles"], tables["ncut"]
k0, seed0 = run_cfg["ks"][0], summary["seeds"][0]
fig, axes = plt.subplots(1, len(clusterability.NETWORKS), figsize=(13, 2.8), sharey=True)
for ax, net in zip(axes, clusterability.NETWORKS):
    for null, colour in (("layer", "tab:blue"), ("layer_nonzero", "tab:orange")):
        s = shuf[(shuf.network == net) & (shuf.k == k0) & (shuf.null == null) & (shuf.seed == seed0)]
        if len(s):
            ax.hist(s.ncut, bins=15, alpha=0.6, color=colour, label=f"{null} shuffles")
    value = ncut[(ncut.network == net) & (ncut.k == k0) & (ncut.seed == seed0)].ncut.iloc[0]
    ax.axvline(value, color="k", lw=2, label="the network")
    ax.set(title=net, xlabel=f"n-cut (K={k0})")
axes[0].set_ylabel("shuffles")
axes[-1].legend(fontsize=7)
fig.suptitle(f"n-cut of each network and of its shuffles, seed {seed0}")
fig.tight_layout()

# %% [markdown]
# Mean over seeds: the network's n-cut, the null's mean, the percentile (share of shuffles below the network, with
# the +1 estimator; 1/(n+1) = below every shuffle) and the z-score; beside them Filan et al.'s released numbers at
# K = 12 (5 networks, 50 shuffles; trained 20 + 20 epochs).

# %% tags=["hide-input"]
view = (ncut.groupby(["k", "network", "null"], sort=False)[["ncut", "mean", "sd", "percentile", "z"]].mean()
        .round(3).reset_index())
view["below every shuffle"] = [
    f"{int((g.percentile <= 1 / (run_cfg['n_shuffles'] + 1) + 1e-12).sum())}/{len(g)}"
    for _, g in ncut.groupby(["k", "network", "null"], sort=False)]
view["Filan et al. (K=12): n-cut / null mean"] = [
    clusterability.published(r.network, r.null) if r.k == 12 else "" for r in view.itertuples()]
view

# %% [markdown]
# **Papers:** trained and pruned MLPs are more clusterable than random initialisations; with dropout, more still;
# and below every `layer` shuffle of their own weights.

# %% tags=["nbval-check-output", "hide-input"]
for key in ("filan-pruned-below-init", "filan-dropout-lower", "filan-beats-shuffles"):
    claims.print_check(key, tables, run_cfg)

# %% tags=["remove-cell"]
for key in ("filan-pruned-below-init", "filan-dropout-lower", "filan-beats-shuffles", "alignment-planted",
            "alignment-arithmetic"):
    glue(f"see-{key}", Markdown(claims.what_we_see(key, tables, run_cfg, preset)), display=False)

# %% [markdown]
# **What we see** (pruned vs initialisation): {glue:md}`see-filan-pruned-below-init`
#
# **What we see** (dropout): {glue:md}`see-filan-dropout-lower`
#
# **What we see** (against the shuffles): {glue:md}`see-filan-beats-shuffles`

# %% [markdown]
# ## Do the functional masks follow the clusters?
#
# Each network is clustered (its weights as trained, no shuffles), and each mask's kept weights (1 = kept) are
# sorted into those joining two units of the same cluster and those crossing clusters. Two numbers per K:
#
# - **within**: the fraction of a mask's kept weights inside one cluster, against random masks keeping as many
#   weights in each layer (bars: the masks; grey: random, mean ± sd);
# - **separation**: how differently the two masks of a pair divide their within-cluster weights among the clusters
#   (total-variation distance, 0 = alike, 1 = disjoint clusters), against pairs of random masks.
#
# The planted network, two modules side by side, is the positive control: its masks must lie within clusters and
# apart. Networks below their target or masks that had not settled make the comparison untestable:

# %% tags=["hide-input"]
tables["gates"]

# %% tags=["hide-input"]
al = tables["alignment"]
within, sep = al.dropna(subset=["within"]), al.dropna(subset=["separation"])
fig, axes = plt.subplots(1, 2, figsize=(11, 3.4))
within = within.assign(what=within.network + ", K=" + within.k.astype(str))
order = list(dict.fromkeys(within.what))
sns.barplot(data=within, x="what", y="within", hue="mask", order=order, ax=axes[0], errorbar=None)
rand = within.groupby("what", sort=False)[["random within", "random within sd"]].mean().reindex(order)
axes[0].errorbar(np.arange(len(order)), rand["random within"], rand["random within sd"], fmt="s", color="grey",
                 label="random masks")
axes[0].set(ylim=(0, 1.05), xlabel="", ylabel="kept weights within one cluster")
axes[0].legend(fontsize=7, ncol=2)
sep = sep.assign(what=sep.network + ", K=" + sep.k.astype(str))
sns.barplot(data=sep, x="what", y="separation", ax=axes[1], errorbar=None, color="tab:green")
axes[1].errorbar(np.arange(len(sep)), sep["random separation"], sep["random separation sd"], fmt="s", color="grey")
axes[1].set(ylim=(0, 1.05), xlabel="", ylabel="separation of the pair's masks (TV)")
for ax in axes:
    plt.setp(ax.get_xticklabels(), rotation=25, ha="right", rotation_mode="anchor", fontsize=7)
fig.suptitle("Masks against clusters (grey: random masks of the same sizes)")
fig.tight_layout()

# %% tags=["nbval-check-output", "hide-input"]
claims.print_check("alignment-planted", tables, run_cfg)
claims.print_check("alignment-arithmetic", tables, run_cfg)

# %% [markdown]
# **What we see** (planted control): {glue:md}`see-alignment-planted`
#
# **What we see** (arithmetic networks): {glue:md}`see-alignment-arithmetic`
