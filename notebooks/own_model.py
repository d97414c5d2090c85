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
# # Bring your own model
#
# wmask masks the weights of *any* frozen PyTorch model, without porting its layers: the model's own code runs,
# with masked weights passed in through `torch.func.functional_call`, and every mask sample of every mask set runs
# in one batched pass (`torch.func.vmap`). This chapter takes a model the paper never used, a Hugging Face GPT-2
# (built from a config, nothing downloaded), teaches it two operations of modular arithmetic, `a + b mod p` and
# `a - b mod p`, and asks the paper's add/mul question of it (§3.1): does each operation have weights of its own?
#
# The code below is the whole method on your own model, step by step; the numbers and figures under each step are
# those of the committed run of exactly these steps (`wmask.experiments.tasks.own_model`, written with the same public
# calls;
# `make results PRESET=cpu EXP=own_model` makes it again). A mask value of 1 means the weight is **kept**.

# %% tags=["parameters", "remove-cell"]
import os

preset = os.environ.get("WMASK_PRESET", "cpu")  # smoke | cpu | paper
seeds = [0]
run = False                  # False: read the committed results; True: run the experiment first (CI, at smoke)
results = "results"          # relative to the repository root (CI: _build/results)

# %% tags=["remove-input"]
# %matplotlib inline
import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import HTML, Markdown, display

from wmask.book import claims
from wmask.book.report import chapter_run
from wmask.book.table import verdict_box
from wmask.experiments.tasks import own_model as om

summary, tables, where, cfg, _ = chapter_run("own_model", preset, seeds, results, run=run,
                                             dataset="all 2p² problems")
r = summary["runs"][0]
verdict = claims.verdict("own-model-operations", tables, cfg)
display(HTML(verdict_box(["own-model-operations"], tables, cfg,
                         f"GPT-2 with {cfg['n_layer']} layers, width {cfg['n_embd']}, {cfg['n_head']} heads, "
                         f"p = {cfg['p']}; {where}")))

# %% [markdown]
# ## 1. The model, as you would load it
# Any `nn.Module` will do. A Hugging Face model starts in train mode with `use_cache=True`; wmask runs masks in
# eval mode with the cache off and gives both back afterwards, so nothing needs changing. The network is trained on
# both operations until it answers at least 99 % of each (the verdict below needs that).
#
# ```python
# from transformers import GPT2Config, GPT2LMHeadModel
# model = GPT2LMHeadModel(GPT2Config(vocab_size=p + 3, n_positions=4, n_embd=64, n_layer=2, n_head=4))
# ...  # train it on both operations, as you would any model
# ```

# %% tags=["hide-input"]
curve = pd.DataFrame(r["base_curve"])
fig, ax = plt.subplots(figsize=(6, 3))
for op in om.OPS:
    ax.plot(curve.step, curve[op], marker=".", label=op)
ax.axhline(cfg["target"], color="grey", ls=":", label="target")
ax.set(xlabel="step", ylabel="accuracy (all problems)", ylim=(0, 1.02), title="GPT-2 training")
ax.legend()
fig.tight_layout()
print(f"after {r['base_steps_run']} steps: + {r['base_accuracy']['+']:.3f}, - {r['base_accuracy']['-']:.3f}")

# %% [markdown]
# ## 2. Two masks in one call
# `wmask.fit` takes one iterable of batches per subtask (a `DataLoader`, a list, a generator) and an ordinary loss,
# and trains one mask per subtask, every mask in one batched pass. The default filter follows the paper: weight
# matrices (here GPT-2's `Conv1D` layers) get masks; biases, LayerNorms and embeddings do not, and nor does the
# output layer, which GPT-2 ties to the token embedding. A batch may be a dict of keyword inputs, as a Hugging Face
# batch is.
#
# ```python
# import torch.nn.functional as F, wmask
# def problems_of(op):                 # endless ({"input_ids": [B, 4]}, answers [B]) of one operation
#     ...
# fit = wmask.fit(model, {"+": problems_of(0), "-": problems_of(1)},
#                 loss=lambda out, answers: F.cross_entropy(out.logits[:, -1, :], answers),
#                 steps=8000, alpha=1e-3, lr=1e-2, stop_when_settled=True)
# fit.history.plot()                   # the curves below
# ```

# %% tags=["hide-input"]
h = r["history"]
fig, axes = plt.subplots(1, 2, figsize=(9, 3))
for i, op in enumerate(om.OPS):
    axes[0].plot(h["step"], [loss[i] for loss in h["loss"]], label=f"mask {op}")
    axes[1].plot(h["step"], [kept[i] for kept in h["kept"]], label=f"mask {op}")
axes[0].set(xlabel="step", ylabel="task loss", yscale="log", title="mask training: loss")
axes[1].set(xlabel="step", ylabel="fraction of weights kept", ylim=(0, 1.02), title="mask training: kept")
axes[1].legend()
fig.tight_layout()
print("; ".join(f"{n}: {'settled' if c['converged'] else 'NOT settled (' + c['reason'] + ')'}"
                for n, c in r["convergence"].items()))

# %% [markdown]
# ## 3. What each mask keeps, per layer
# `wmask.summary(fit.masks)` is a table of kept counts per set and tensor (`wmask.plot_kept` draws it).

# %% tags=["hide-input"]
kept = pd.DataFrame(r["kept"])
kept["set"] = kept["set"].map({i: f"mask {op}" for i, op in enumerate(om.OPS)})
per = kept[kept.tensor != "(all)"].pivot(index="tensor", columns="set", values="kept_fraction")
per.index = per.index.str.replace("transformer.", "", regex=False)
ax = per.plot.barh(figsize=(7, 0.35 * len(per) + 1))
ax.set(xlabel="fraction of the tensor's weights kept", ylabel="")
ax.figure.tight_layout()
display(kept[kept.tensor == "(all)"][["set", "kept", "total", "kept_fraction"]].round(3))

# %% [markdown]
# ## 4. Does each mask solve its own operation, and the other?
# `wmask.variants_forward` evaluates the network and both masks on the same problems in one batched call.
# Then keep the result: `wmask.materialize(model, fit.mask("+"))` is a standalone copy whose removed weights are
# zero, `with wmask.applied(model, fit.mask("+")):` masks the real model for the length of the block and restores
# it exactly, and `fit.save(path, "+")` / `wmask.load_masks(path, model)` write and check a mask.

# %% tags=["hide-input"]
display(pd.DataFrame(r["accuracy"]).T.rename_axis("weights").round(3))
print("IoU of the two masks:", round(r["iou"]["total"], 3))

# %% [markdown]
# ## Verdict
# The paper's add/mul claim, asked of this GPT-2: each operation's mask keeps its own operation (accuracy ≥ 0.9)
# and loses the other one (< 0.5). It is checked only on a network at its target and on masks whose training
# curves settled (the book's evidence rules); otherwise the verdict is *untestable*, with the reason.

# %% tags=["nbval-check-output", "hide-input"]
claims.print_check("own-model-operations", tables, cfg)

# %% [markdown]
# **What we see**:

# %% tags=["remove-input"]
display(Markdown(f"The GPT-2 reached + {r['base_accuracy']['+']:.3f} and - {r['base_accuracy']['-']:.3f} in "
                 f"{r['base_steps_run']} steps; the + mask keeps + at {r['accuracy']['mask +']['+']:.3f} and - at "
                 f"{r['accuracy']['mask +']['-']:.3f}, the - mask - at {r['accuracy']['mask -']['-']:.3f} and + at "
                 f"{r['accuracy']['mask -']['+']:.3f}: *{verdict}*."))
