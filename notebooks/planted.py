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
# # Planted modularity: do masks find modules we put there?
#
# Before asking whether trained networks are modular, we check that the mask method finds modularity where we
# *know* it exists. Two small tanh MLPs are trained, each on its own classification task, and placed
# block-diagonally into one wider MLP. A mask trained on task A alone should keep A's block and remove B's; the
# masks of A and B should barely overlap. Both masks are trained at once, in one batched pass
# (`wmask.train_masks` with two mask sets).

# %% tags=["parameters", "remove-cell"]
import os

preset = os.environ.get("WMASK_PRESET", "cpu")  # smoke | cpu | paper
seeds = [0, 1, 2]
run = False                  # False: read the committed results; True: run the experiment first (CI, at smoke)
results = "results"          # relative to the repository root (CI: _build/results)

# %% tags=["remove-input"]
# %matplotlib inline
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from IPython.display import HTML, display

from wmask.book.report import chapter_run
from wmask.book.table import verdict_box

summary, tables, where, cfg, _ = chapter_run("planted", preset, seeds, results, run=run,
                                             dataset="synthetic teacher data")
runs, seeds = summary["runs"], summary["seeds"]
display(HTML(verdict_box(["planted-blocks"], tables, cfg, where)))
print(f"preset {summary['preset']}: hidden {cfg['hidden']} x {cfg['layers']} per sub-network, {cfg['base_steps']} "
      f"base steps, {cfg['mask']['steps']} mask steps, seeds {seeds}")

# %% [markdown]
# ## How well does each mask match its planted block?
# IoU per layer between the mask and the true block (1 = exactly the block), and between the two masks.

# %% tags=["hide-input"]
rows = []
for seed, r in zip(seeds, runs):
    for key, label in [("iou_a_block_a", "mask A vs block A"), ("iou_b_block_b", "mask B vs block B"),
                       ("iou_a_b", "mask A vs mask B")]:
        for layer, v in r[key].items():
            rows.append({"seed": seed, "pair": label, "layer": layer, "IoU": v})
iou = pd.DataFrame(rows)
table = iou.groupby(["pair", "layer"])["IoU"].agg(["mean", "std"]).round(3).unstack("layer")
table

# %% tags=["hide-input"]
fig, axes = plt.subplots(1, 3, figsize=(9, 3.2))
a, b = (np.array([[c == "1" for c in row] for row in runs[0]["hidden_masks"][name]]) for name in ("A", "B"))
for ax, (title, m) in zip(axes, [("mask A", a), ("mask B", b), ("A and B", a & b)]):
    ax.imshow(m, cmap="Greys", interpolation="nearest")
    ax.set(title=title, xlabel="input unit", ylabel="output unit")
fig.suptitle(f"Hidden-layer masks (black = kept), seed {seeds[0]}")
fig.tight_layout()

# %% [markdown]
# Mask A keeps the upper-left block, mask B the lower-right one, and they share (almost) nothing: the method
# recovers the planted modules.

# %% tags=["hide-input"]
fig, ax = plt.subplots(figsize=(6, 3))
sns.barplot(data=iou[iou.layer == "total"], x="pair", y="IoU", errorbar="sd", ax=ax)
ax.bar_label(ax.containers[0], fmt="%.2f")
ax.set(ylim=(0, 1.05), xlabel="", ylabel="IoU (all layers)", title="mean ± sd over seeds")
ax.title.set_fontsize(7)
fig.tight_layout()

# %% [markdown]
# ## Verdict
# Claim (our end-to-end check of the method): each mask recovers its own block, IoU ≥ 0.9 on the hidden layers, and the
# two
# masks overlap with IoU ≤ 0.1.

# %% tags=["nbval-check-output", "hide-input"]
hidden = iou[iou.layer == "2.weight"]
own = hidden[hidden.pair != "mask A vs mask B"]["IoU"].min()
cross = hidden[hidden.pair == "mask A vs mask B"]["IoU"].max()
print(f"each mask recovers its block (min hidden IoU >= 0.9): {own >= 0.9}")
print(f"the masks are disjoint (max hidden IoU <= 0.1): {cross <= 0.1}")
