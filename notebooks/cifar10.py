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
# # CIFAR-10: does each class have weights of its own?
#
# The paper's §3.4: a CNN classifies the ten CIFAR-10 classes. For each class *c* we train a mask on the data
# **without** *c*, starting from a control mask trained on all classes; its output layer is copied from the control
# mask and frozen, so the mask cannot just drop *c*'s output row. Whatever weights the mask removes are weights
# only class *c* needed. If classification relied on shared features, removing them would cost little; if it
# relies on class-specific weights, *c*'s accuracy falls and the other classes barely move. The ten class-removal
# masks are trained together in one batched pass.
#
# Everything below comes from `python -m wmask run cifar10 --preset <preset> --seeds ...`.

# %% tags=["parameters"]
import os

preset = os.environ.get("WMASK_PRESET", "cpu")  # smoke | cpu | paper
seeds = [0, 1, 2]
model = "cnn"                # cnn | resnet (ResNet-110 at paper; only smoke and paper presets)
results = "_build/results"   # relative to the repository root; finished runs there are reused
device = "auto"

# %%
# %matplotlib inline
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from IPython.display import Markdown, display

from myst_nb import glue

from wmask import claims
from wmask.data.cifar10 import CLASSES
from wmask.report import chapter_run, evidence_table, plot_curves

summary, tables, where, c, absent = chapter_run("cifar10", preset, seeds, results, device, model=model)
if absent:
    display(Markdown(f"**{absent}**"))
preset, runs = summary["preset"], summary["runs"]
print(where)
net = "CNN" if c.get("model", "cnn") == "cnn" else f"ResNet-{c['depth']}"
print(f"{net} width {c['width']}, {runs[0]['n_train']} training / {runs[0]['n_test']} held-out images, base "
      f"{c['base']['steps']} steps, masks {c['mask']['steps']} steps, alpha {c['mask']['alpha']}, clip "
      f"{c['mask']['clip']} ({c['mask']['clip_mode']}); base accuracy "
      f"{np.mean([r['accuracy_base'] for r in runs]):.3f}, with the control mask "
      f"{np.mean([r['accuracy_control'] for r in runs]):.3f}")


# %% [markdown]
# ## Can this run carry the claims?
#
# A mask can only tell which weights a subtask needs on a network that solves it, and only once it has stopped
# changing. Below: each base network's held-out accuracy against its target (accuracy/target), and for each mask its
# final kept fraction and whether its training curve settled over the last 20 % of steps (the rules are on the book's
# method page). A claim on a network below target or on a mask that had not settled reads *untestable* further down,
# with the reason, never "does not hold".

# %%
evidence_table(tables, by=None)

# %% tags=["hide-input"]
plot_curves(tables["curves"], by=None, title=f"Control and class-removal mask training — {where}");

# %% [markdown]
# ## Accuracy lost on the removed class
#
# Relative drop of class *c* = −(conf_c − ref)[c, c] / ref[c, c] · 100, with `ref` the control mask's confusion
# matrix (normalised per true class) and `conf_c` that of the mask trained without *c*.

# %% tags=["hide-input"]
worst = tables["worst"]
fig, axes = plt.subplots(1, 2, figsize=(9.6, 3.4))
sns.barplot(data=worst, x="class", y="own drop %", errorbar="sd", ax=axes[0], color="tab:red")
axes[0].set(xlabel="removed class", ylabel="relative accuracy drop on it (%)", title="drop on the removed class")
sns.barplot(data=worst, x="class", y="worst other / own %", errorbar="sd", ax=axes[1], color="tab:blue")
axes[1].axhline(10, ls="--", c="k", lw=0.8, label="paper's y-range (10 %)")
axes[1].set(xlabel="removed class", ylabel="worst other-class drop / own drop (%)",
            title="largest drop on any other class")
axes[1].legend(fontsize=7)
for ax in axes:
    ax.tick_params(axis="x", rotation=45)
fig.suptitle(where, fontsize=7)
fig.tight_layout()

# %% [markdown]
# ## What the removed class turns into
#
# The mean over classes of conf_c − ref (rows: true class, columns: predicted class), averaged over seeds.

# %% tags=["hide-input"]
diff = np.mean([r["confusion_diff_mean"] for r in runs], axis=0)
fig, ax = plt.subplots(figsize=(6, 5))
lim = np.abs(diff).max()
sns.heatmap(pd.DataFrame(diff, index=CLASSES, columns=CLASSES), cmap="RdBu_r", vmin=-lim, vmax=lim, ax=ax,
            cbar_kws={"label": "change in fraction of the true class"})
ax.set(xlabel="predicted class", ylabel="true class", title="mean confusion difference (class-removal − control)")
ax.title.set_fontsize(9)
fig.tight_layout()

# %% tags=["nbval-check-output"]
claims.print_check("class-specific", tables, runs[0]["config"])

# %% tags=["remove-cell"]
glue("see-class-specific", Markdown(claims.what_we_see("class-specific", tables, runs[0]["config"], preset)), display=False)

# %% [markdown]
# **What we see** (class removal): {glue:md}`see-class-specific`

# %% [markdown]
# ## Mask stability and the cost of batching
#
# Stability: the control mask was trained twice on different data streams; IoU between the two (1 = identical).
# Batching: wall time of the ten class-removal masks trained together vs one after another, for the same steps.

# %%
pd.DataFrame([{"seed": r["seed"], "IoU of two control masks": r["stability_iou"]["total"],
               "kept by the control mask": r["kept_control"],
               "10 masks batched (s)": r["timing"]["batched_s"], "one after another (s)": r["timing"]["sequential_s"],
               "speed-up": r["timing"]["speedup"], "timed steps": r["timing"]["steps"]} for r in runs]).round(3)
