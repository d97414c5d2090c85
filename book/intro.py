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
# # Are neural nets modular?
#
# This book reproduces *Are Neural Nets Modular? Inspecting Functional Modularity Through Differentiable Weight
# Masks* {cite}`csordas2021are` ([arXiv:2010.02066](https://arxiv.org/abs/2010.02066); the authors' code:
# [RobertCsordas/modules](https://github.com/RobertCsordas/modules)) with the `wmask` package, and the structural
# counterpart of Filan et al. {cite}`filan2020pruned,filan2021clusterability`. The paper's question: when a network
# solves a task made of subtasks, does it use **separate weights** for each subtask, and does it **reuse** weights
# when two subtasks are the same? It freezes a trained network and learns, for one subtask at a time, a binary mask
# over the weights that keeps only what that subtask needs (mask value 1 = kept); comparing the masks tells which
# weights are shared.
#
# ## What holds
# Every claim, checked on the committed runs as an explicit inequality (each chapter prints it). A claim is tested
# only on networks that reached their task's target and on masks whose training curves settled; otherwise it reads
# *untestable*, with the reason, and a claim with an untestable check never reads *holds*. *Seeds agreeing*: how many
# seeds give the same word when checked alone. *The authors' code*: the same checks on the authors' released code,
# run on this machine at the cpu preset's settings.

# %% tags=["remove-input"]
from IPython.display import HTML, display

from wmask.book.report import repo_root
from wmask.book.table import claims_table, html

table = claims_table(repo_root() / "results")
display(HTML(html(table)))
counts = table[table.run != "none"].groupby("verdict").size()
print("runs × claims: " + ", ".join(f"{n} {w}" for w, n in counts.items()))

# %% [markdown]
# Scale: `cpu` is a 2-core laptop's version of each experiment (narrower networks, fewer steps, trained until they
# can carry a claim); `paper (networks …)` is the paper's own configuration for the networks a CPU finished. The
# paper's main networks at full scale need a GPU (*Running the experiments*).
#
# ## How to read it
# - **The method** gives the formulas and how `wmask` trains many masks in one pass; its first notebook checks the
#   engine on a network whose modules we planted ourselves.
# - **Arithmetic** reproduces the paper's first two experiments, specialisation (addition vs multiplication) and
#   reuse (two identical additions), and its sequential reuse experiment on permuted MNIST.
# - **Vision** asks whether CIFAR-10 classes rely on weights of their own.
# - **Systematic generalisation** masks a SCAN seq2seq network per split, to see why it fails on the add-jump and
#   length splits, and asks the same of DeepMind's Mathematics dataset.
# - **Structural modularity** measures Filan et al.'s clusterability of the weight graph on MNIST MLPs, and asks a
#   question neither paper asks: do the functional masks line up with the structural clusters?
# - **Your own models** runs the same question on a Hugging Face GPT-2 doing `+` and `−` mod p, through the public
#   API, and ends with the API reference.
# - **Reproduction** lists every check with its numbers, ours beside the authors' code number by number, how to
#   regenerate the results, and this build's execution times.
#
# Each chapter reads the committed `results/` and trains nothing: `make book` builds this book in minutes. Every
# figure's caption names the run it comes from (preset, seeds, device, dataset, commit) and whether that run is
# still what today's code computes; `make results PRESET=cpu EXP=<experiment>` regenerates one.
