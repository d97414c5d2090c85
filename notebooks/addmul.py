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
# # Addition and multiplication: are there weights for one operation only?
#
# The paper's first question (its §3.1, *P_specialize*): a network trained to add **and** multiply two-digit
# numbers modulo 100, does it have weights that only one operation needs? We train the network on both
# operations, then three masks on the frozen network in one batched pass: a *control* mask on the full task, a
# **+** mask on additions only and a **×** mask on multiplications only. If the + mask solves addition but not
# multiplication, the weights it removed were needed for × and not for +: specialised weights exist. Inverting a
# mask (¬+: keep exactly the weights the + mask removed) tests whether the weights + needs are exclusive to it.
#
# Everything below comes from `python -m wmask run addmul --preset <preset> --seeds ...`; the notebook only reads
# its results and draws them.

# %% tags=["parameters"]
import os

preset = os.environ.get("WMASK_PRESET", "cpu")  # smoke | cpu | paper
seeds = [0, 1, 2]
results = "_build/results"   # relative to the repository root; finished runs there are reused
device = "auto"

# %%
# %matplotlib inline
import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

import wmask
from wmask import runner
from wmask.report import caption, mean_sd, repo_root, verdict
from wmask.tasks import addmul

wmask.set_threads()
summary = runner.run("addmul", preset, seeds, repo_root() / results, device=device, progress=False)
tables = {k: pd.DataFrame(v) for k, v in addmul.tables(summary["runs"]).items()}
caption = caption(summary, "problems generated on the fly")
cfg = summary["runs"][0]["config"]["networks"]
print(caption)
for name, c in cfg.items():
    print(f"{name:>14}: {c['model']} {c['hidden']}, base {c['base']['steps']} steps, masks {c['mask']['steps']} "
          f"steps, alpha {c['mask']['alpha']}, clip {c['mask']['clip']} ({c['mask']['clip_mode']})")

# %% [markdown]
# ## Accuracy of each mask on each operation
#
# Columns: the unmasked network (*full*), the control mask, each operation's mask and its inversion. Accuracy is
# the fraction of all 10,000 problems of an operation with both result digits right.

# %%
acc = tables["accuracy"]
order = ["full", "control", "+", "¬+", "×", "¬×"]


main_nets = [n for n in cfg if n in ("fnn", "lstm", "fnn_big", "fnn_small")]
table = mean_sd(acc[acc.network.isin(main_nets) & acc["mask"].isin(order)], ["network", "evaluated on"], "mask",
                "accuracy")
table[order]

# %%
mean_acc = acc.groupby(["network", "mask", "evaluated on"]).accuracy.mean()
nets_plot = [n for n in ("fnn", "fnn_big", "lstm") if n in cfg]
fig, axes = plt.subplots(1, len(nets_plot), figsize=(4.2 * len(nets_plot), 3.2), sharey=True, squeeze=False)
for ax, net in zip(axes[0], nets_plot):
    sub = acc[(acc.network == net) & acc["mask"].isin(order)]
    sns.barplot(data=sub, x="mask", y="accuracy", hue="evaluated on", order=order, errorbar="sd", ax=ax)
    ax.set(title=f"{net} ({cfg[net]['model']})", xlabel="mask", ylabel="accuracy (fraction solved)")
fig.suptitle(f"Accuracy per mask — {caption}", fontsize=9)
fig.tight_layout()

# %% [markdown]
# **Paper:** the + mask solves addition and fails multiplication, and the × mask the reverse (FNN and LSTM).
# The check below compares each mask with the unmasked network.

# %% tags=["nbval-check-output"]
for net in [n for n in ("fnn", "fnn_big", "lstm") if n in cfg]:
    for op, other in (("+", "×"), ("×", "+")):
        own, full, cross = (mean_acc[net, op, op], mean_acc[net, "full", op], mean_acc[net, op, other])
        verdict(f"{net}: the {op} mask solves {op} and fails {other}",
                full >= 0.5 and own >= 0.8 * full and cross <= 0.1,
                f"{op} mask on {op} {own:.3f} (>= 0.8 x full {full:.3f}, full >= 0.5), on {other} {cross:.3f} "
                "(<= 0.1)")

# %% [markdown]
# ## Where the + and × masks overlap, layer by layer
#
# IoU = |+ ∧ ×| / |+ ∨ ×|; IoMin = |+ ∧ ×| / min(|+|, |×|), which is 1 when the smaller mask lies inside the larger.

# %%
layers = tables["layers"]
layers = layers[layers.network.isin(nets_plot) & (layers.layer != "total")]
long = layers.melt(id_vars=["seed", "network", "layer"], value_vars=["IoU", "IoMin"], var_name="metric")
fig, axes = plt.subplots(1, len(nets_plot), figsize=(4.2 * len(nets_plot), 3.2), sharey=True, squeeze=False)
for ax, net in zip(axes[0], nets_plot):
    sns.barplot(data=long[long.network == net], x="layer", y="value", hue="metric", errorbar="sd", ax=ax)
    ax.set(title=net, xlabel="masked weight tensor (input → output)", ylabel="overlap of + and × masks")
    ax.tick_params(axis="x", rotation=30)
fig.suptitle(f"Per-layer IoU / IoMin of the + and × masks — {caption}", fontsize=9)
fig.tight_layout()

# %%
kept = layers.melt(id_vars=["seed", "network", "layer"], value_vars=["kept control", "kept +", "kept ×"],
                   var_name="mask", value_name="weights kept")
kept["mask"] = kept["mask"].str.replace("kept ", "")
fig, axes = plt.subplots(1, len(nets_plot), figsize=(4.2 * len(nets_plot), 3.2), squeeze=False)
for ax, net in zip(axes[0], nets_plot):
    sns.barplot(data=kept[kept.network == net], x="layer", y="weights kept", hue="mask", errorbar="sd", ax=ax)
    ax.set(title=net, xlabel="masked weight tensor (input → output)", ylabel="weights kept (count)")
    ax.tick_params(axis="x", rotation=30)
fig.suptitle(f"Weights kept by each mask, per layer — {caption}", fontsize=9)
fig.tight_layout()

# %% [markdown]
# **Paper:** the + and × masks overlap substantially but only partially in the hidden layers (the smaller mask is
# mostly inside the larger) and strongly in the input and output layers.

# %% tags=["nbval-check-output"]
for net in nets_plot:
    per = layers[layers.network == net].groupby("layer", sort=False)[["IoU", "IoMin"]].mean()
    io, hidden = per.iloc[[0, -1]], per.iloc[1:-1]
    verdict(f"{net}: partial hidden-layer overlap", (0.2 <= hidden.IoU).all() and (hidden.IoU <= 0.9).all()
            and (hidden.IoMin >= 0.5).all(),
            f"hidden IoU {hidden.IoU.round(2).tolist()} in [0.2, 0.9], IoMin {hidden.IoMin.round(2).tolist()} >= 0.5")
    verdict(f"{net}: input/output layers overlap more than hidden ones", io.IoU.min() > hidden.IoU.max(),
            f"I/O IoU {io.IoU.round(2).tolist()} > hidden max {hidden.IoU.max():.2f}")

# %% [markdown]
# ## Inverted masks
#
# **Paper:** at the paper's width, ¬+ (everything the + mask removed) still multiplies; at small widths (spec §2.1)
# inverting either mask breaks **both** operations, because the weights both operations share go with it.

# %% tags=["nbval-check-output"]
for net in nets_plot:
    for op, other in (("+", "×"), ("×", "+")):
        inv_other, inv_own = mean_acc[net, f"¬{op}", other], mean_acc[net, f"¬{op}", op]
        keeps = inv_other >= 0.5 * mean_acc[net, "full", other] and mean_acc[net, "full", other] >= 0.5
        print(f"{net}: ¬{op} solves {other} {inv_other:.3f}, {op} {inv_own:.3f} -> "
              f"{'exclusive weights: ¬' + op + ' keeps ' + other if keeps else 'both break (shared weights removed)'}")

# %% [markdown]
# ## Sharing versus network size
#
# The share of the + mask's weights that the × mask also keeps, summed over all layers
# (Σ|+ ∧ ×| / Σ|+|), for FNNs of growing width.

# %%
sharing = tables["sharing"]
size = sharing[sharing.network.isin(cfg_sizes := summary["runs"][0]["config"]["size_study"])].copy()
size["% of + weights shared with ×"] = 100 * size["shared + in ×"]
fig, ax = plt.subplots(figsize=(5, 3.4))
sns.lineplot(data=size, x="weights", y="% of + weights shared with ×", marker="o", errorbar="sd", ax=ax)
for name in cfg_sizes:
    row = size[size.network == name].iloc[0]
    ax.annotate(f"{name} {cfg[name]['hidden']}", (row["weights"], row["% of + weights shared with ×"]),
                fontsize=7, textcoords="offset points", xytext=(4, 4))
ax.set(xscale="log", xlabel="masked weights in the network (count, log scale)", ylabel="% of + weights shared with ×",
       title=f"Sharing vs size — {caption}")
ax.title.set_fontsize(8)
fig.tight_layout()

# %% [markdown]
# **Paper:** sharing falls as the network grows.

# %% tags=["nbval-check-output"]
by_size = size.groupby("network")["% of + weights shared with ×"].mean().reindex(list(cfg_sizes))
verdict("sharing falls with size (smallest vs largest)", by_size.iloc[-1] < by_size.iloc[0],
        " -> ".join(f"{n} {v:.1f}%" for n, v in by_size.items()))

# %% [markdown]
# ## Accuracy versus the regulariser strength α
#
# The + and × masks trained at several α in one batched pass (one mask set per α and operation) on the same base
# network; colour = % of + weights shared with ×.

# %%
sweep = tables["sweep"]
long = pd.concat([sweep.assign(mask="+ mask", own=sweep["+ mask on +"], other=sweep["+ mask on ×"]),
                  sweep.assign(mask="× mask", own=sweep["× mask on ×"], other=sweep["× mask on +"])])
long["% shared"] = 100 * long["shared + in ×"]
fig, axes = plt.subplots(1, 2, figsize=(8.4, 3.2), sharey=True)
for ax, col, title in zip(axes, ["own", "other"], ["on its own operation", "on the other operation"]):
    pts = ax.scatter(long["alpha"], long[col], c=long["% shared"], cmap="viridis", s=28,
                     marker="o", edgecolor="k", linewidth=0.3)
    ax.set(xscale="log", xlabel="α (regulariser strength)", ylabel="accuracy (fraction solved)",
           title=f"masks evaluated {title}")
fig.colorbar(pts, ax=axes, label="% of + weights shared with ×")
fig.suptitle(f"Accuracy vs α on {summary['runs'][0]['config']['sweep_network']} — {caption}", fontsize=9)

# %% tags=["nbval-check-output"]
spec = sweep.groupby("alpha")[["+ mask on +", "+ mask on ×", "× mask on ×", "× mask on +"]].mean()
verdict("specialisation holds at every α of the sweep (own >= 0.5, other <= 0.1)",
        bool((spec["+ mask on ×"] <= 0.1).all() and (spec["× mask on +"] <= 0.1).all()
             and (spec["+ mask on +"] >= 0.5).all() and (spec["× mask on ×"] >= 0.5).all()),
        "; ".join(f"α={a:g}: +→+ {r['+ mask on +']:.3f}, +→× {r['+ mask on ×']:.3f}, ×→× {r['× mask on ×']:.3f}, "
                  f"×→+ {r['× mask on +']:.3f}" for a, r in spec.iterrows()))

# %% [markdown]
# ## The two clipping behaviours
#
# Spec §1: the authors clip the gradient norm over *all* parameters, including the frozen weights, whose gradients
# accumulate during mask training (`clip_mode="all"`). That produced the paper's figures, so it is what these
# presets use. Clipping the mask logits alone (`"masks"`) is effectively no clipping; networks named
# `*_masks_clip` use it on the same base network, so the two compare here.

# %%
rows = []
for variant in [n for n in cfg if n.endswith("_masks_clip")]:
    for net in (variant[: -len("_masks_clip")], variant):
        t = tables["layers"][(tables["layers"].network == net) & (tables["layers"].layer == "total")]
        s = sharing[sharing.network == net]
        rows.append({"network": net, "clip_mode": cfg[net]["mask"]["clip_mode"],
                     "kept by + (% of weights)": 100 * (t["kept +"] / t["size"]).mean(),
                     "IoU(+, ×)": s.IoU.mean(), "% + shared with ×": 100 * s["shared + in ×"].mean(),
                     "+ mask on +": mean_acc[net, "+", "+"], "× mask on ×": mean_acc[net, "×", "×"]})
pd.DataFrame(rows).round(3) if rows else print(f"preset {preset} trains every mask with clip_mode 'all'")
