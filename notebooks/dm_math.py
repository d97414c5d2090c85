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
# # Mathematics dataset: does a mask trained on easy problems keep the hard ones?
#
# The paper's last experiment asks the SCAN question of DeepMind's Mathematics dataset (Saxton et al. 2019).
# Each module's training data comes in three difficulties, *easy*, *medium* and *hard*. A character-level
# Transformer learns a module from all three. Two masks are then trained on it, in one batched pass: a **control**
# mask on all of the module's training data, and an **easy** mask on the easy problems only. If the easy mask loses
# much of the network's accuracy on hard problems while the control keeps it, the hard problems are solved by
# weights the easy ones do not need: the network did not learn one procedure that scales with difficulty, but
# something closer to separate solutions per difficulty. Accuracy is exact match of the greedy answer on examples
# held out of each difficulty's training file.
#
# **Data.** The released v1.0 archive cannot be downloaded on this book's machines; the runs here use a copy made
# with the official generator (same layout and distributions, 30,000 examples per module and difficulty instead of
# about 666,666, so 450 held out per difficulty instead of 10,000). The `smoke` preset, which only exercises the
# code, uses made-up sort problems in the dataset's style instead. Every caption says which data it used.
#
# Everything below is read from the committed run (`results/dm_math/cpu`, made by `make results PRESET=cpu
# EXP=dm_math`).

# %% tags=["parameters", "remove-cell"]
import os

preset = os.environ.get("WMASK_PRESET", "cpu")  # smoke | cpu | paper
seeds = [0]
run = False                  # False: read the committed results; True: run the experiment first (CI, at smoke)
results = "results"          # relative to the repository root (CI: _build/results)
device = "auto"

# %% tags=["remove-input"]
# %matplotlib inline
import pandas as pd
from IPython.display import HTML, Markdown, display

from myst_nb import glue

from wmask.book import claims, reach
from wmask.book.table import verdict_box
from wmask.book.report import chapter_run, committed_run, committed_variants, evidence_table
from wmask.experiments import runner
from wmask.experiments.status import word as status_word
from wmask.book.plots import math_accuracy_bars, math_base_curves, plot_curves, reach_curves

chapter = chapter_run("dm_math", preset, seeds, results, device, run=run)
summary, tables, where, run_cfg, _ = chapter
display(HTML(verdict_box(["math-easy-mask"], tables, run_cfg, where)))
net = run_cfg["net"]
print(f"Transformer {net['enc_layers']}+{net['dec_layers']} layers, d {net['d']}, {net['heads']} heads, "
      f"FF {net['ff']}, "
      f"tied embeddings; base {run_cfg['base']['steps']} steps (batch {run_cfg['base']['batch_size']}, lr "
      f"{run_cfg['base']['lr']:g}); modules: {', '.join(run_cfg['networks'])}")
display(pd.DataFrame({m: {**run_cfg["mask"], **over} for m, over in run_cfg["networks"].items()})
        .loc[["alpha", "lr", "steps", "batch_size", "k", "clip", "stop_on_plateau"]])

# %% [markdown]
# ## Can this run carry the claim?
#
# A mask can only lose a hard accuracy the network has: each module's network must reach the preset's target on
# the held-out hard problems, and each mask's training curve must have settled (the book's method page). Otherwise
# the claim reads *untestable*, with the reason.

# %% tags=["hide-input"]
evidence_table(tables)

# %% tags=["hide-input"]
math_base_curves(tables)
plot_curves(tables["curves"], title="control and easy masks");

# %% [markdown]
# ## The figure: each module's hard accuracy under the network, the control mask and the easy mask
#
# Left: the held-out hard problems (the paper's figure). Right: the held-out easy problems, which the easy mask was
# trained for.

# %% tags=["hide-input"]
math_accuracy_bars(tables["accuracy"])

# %% [markdown]
# The paper: the easy mask loses much of the hard accuracy, the control mask keeps it. Ours, as checked numbers:

# %% tags=["nbval-check-output", "hide-input"]
claims.section("math-easy-mask", tables, run_cfg, summary["preset"], "see-math")

# %% [markdown]
# **What we see**: {glue:md}`see-math`

# %% [markdown]
# ## Every accuracy, and how much each mask keeps
# Mean over seeds, per module and held-out difficulty; then the fraction of masked weights each mask keeps and the
# IoU of the two masks.

# %% tags=["hide-input"]
grid = tables["accuracy"].groupby(["network", "weights", "test"]).accuracy.mean().unstack("test")
display(grid[["easy", "medium", "hard"]].round(3))
tables["masks"].pivot_table(index=["network", "seed"], columns="mask", values=["kept", "IoU"]).round(3)

# %% [markdown]
# ## What the cpu run can show
# The `cpu` preset's run, committed with the repository (`make results PRESET=cpu EXP=dm_math`); when this chapter
# was built from another preset's run, that run's evidence is shown here as well.

# %% tags=["hide-input"]
committed = chapter if preset == "cpu" else committed_run("dm_math", "cpu")   # this chapter's own run at cpu
if committed is None:
    print("no committed cpu run (results/dm_math/cpu/summary.json)")
    glue("see-math-cpu", Markdown("no committed cpu run yet"), display=False)
    glue("math-cpu-scale", Markdown("there is no committed cpu run yet"), display=False)
else:
    c_tables, c_cfg, c_where = committed.tables, committed.cfg, committed.where
    if committed is not chapter:     # the chapter above is another preset's run: show the committed cpu run too
        print(c_where)
        display(evidence_table(c_tables))
        math_base_curves(c_tables)
        plot_curves(c_tables["curves"], title="control and easy masks")
        math_accuracy_bars(c_tables["accuracy"])
        claims.print_check("math-easy-mask", c_tables, c_cfg)
    glue("see-math-cpu", Markdown(claims.what_we_see("math-easy-mask", c_tables, c_cfg, "cpu")), display=False)
    net_acc = c_tables["accuracy"][c_tables["accuracy"].weights == "network"]
    scale_words = "; ".join(
        f"the {m} network answers {a.loc['easy']:.3f} of the held-out easy problems and {a.loc['hard']:.3f} of the "
        f"hard ones after {c_cfg['base']['steps']:,} steps (target {c_cfg['target']} on hard)"
        for m, a in ((m, g.groupby("test").accuracy.mean()) for m, g in net_acc.groupby("network")))
    glue("math-cpu-scale", Markdown(scale_words), display=False)

# %% [markdown]
# **What we see** in the committed cpu run: {glue:md}`see-math-cpu`
#
# **What the cpu preset can and cannot show.** In the committed run {glue:md}`math-cpu-scale`. The preset's module,
# linear equations, was chosen from probes of 1,500 steps, in which a 2+2-layer, width-64 Transformer learned it
# fastest (held-out easy: linear 0.14, sorting 0.07); a network that solves almost no hard problem has no hard
# accuracy for a mask to lose, so on linear equations the claim is *untestable* at this scale, not refuted. Sorting,
# trained longer, jumps past the target after those probes stopped (next section): the module a cpu preset can
# carry the claim on. The paper's own setting, the 6+6-layer, d-512 network on all five modules with the per-module
# mask settings, needs a GPU; and the data is the generated copy, not the released v1.0, so even then the numbers are
# not the paper's.

# %% [markdown]
# ## How far can two cores go?
# Beside the preset's run, configurations a cpu run can afford were trained and committed the same way (`python -m
# wmask run dm_math --preset cpu KEY=VALUE ...`, each in a folder `results/dm_math/cpu+` followed by a hash of its
# overrides); each is named by its module, network and base steps. Each curve is a network's exact match on the
# held-out problems of one difficulty during base training. The table gives each run's seconds a base step on one core
# and what a straight line through the later half of the evaluations of its hard curve, against log10(steps), projects
# for the target: an extrapolation, shown only to size the gap. Then each run's check of the claim, as the preset's
# above. Last, the paper's own network: its step times measured on this machine (`python benchmarks/mask_step.py
# --model math_paper --cases plain,masked --json results/dm_math/paper_steps.json`) times the paper preset's steps,
# each module's mask steps scaled from its own mask batch to the measured 128, at K = 4 mask samples where the paper's
# take 8.

# %% tags=["hide-input"]
target = run_cfg["target"] if preset == "cpu" else 0.5
tried = reach.runs("dm_math", "cpu")
if tried.empty:
    print("no committed cpu runs of this experiment")
    glue("math-reach", Markdown("no committed cpu run yet"), display=False)
    glue("math-variants", Markdown("none"), display=False)
else:
    reach_curves(tried, target)
    proj = {t: reach.projection(tried, target, t) for t in ("hard", "easy")}
    keys = ["run", "folder", "network"]
    shown = proj["hard"].merge(proj["easy"][keys + ["easy", "reached", "projected steps to target"]], on=keys,
                               suffixes=("", " (easy)"))
    display(reach.formatted(shown))
    best = proj["hard"].sort_values("best hard").iloc[-1]
    if best["best hard"] >= target:
        words = (f"the {best.run} network meets the target: it answers {best.hard:.3f} of the held-out hard problems "
                 f"after {best.steps:,} base steps ({best['base minutes']:.0f} min of base training on one core; "
                 f"target {target})")
    else:
        easy = proj["easy"].sort_values("easy").iloc[-1]
        words = (f"the best hard accuracy of any cpu run is {best['best hard']:.3f} ({best.run}, {best.steps:,} base "
                 f"steps, {best['base minutes']:.0f} min of base training on one core), against a target of "
                 f"{target}; {reach.trend_words(best)}. The easy problems do move: {easy.run} reaches "
                 f"{easy.easy:.3f} on them")
    glue("math-reach", Markdown(words), display=False)
    checked = []
    for s in committed_variants("dm_math", "cpu"):
        v = committed_run("dm_math", "cpu", overrides=s["overrides"])
        verdict = claims.tally(claims.check("math-easy-mask", v.tables, v.cfg))
        checked.append(f"{reach.run_label(v.cfg)} (`results/dm_math/{runner.folder_name('cpu', s['overrides'])}`, "
                       f"{status_word(s)}): *{verdict}*")
    print("\n".join(checked))
    glue("math-variants", Markdown("; ".join(checked)), display=False)

paper = reach.bench("results/dm_math/paper_steps.json")
if paper is None:
    glue("math-paper-hours", Markdown("not measured yet"), display=False)
else:
    rows = [p for p in paper["projections"] if p["model"] == "math_paper"]
    cases = paper["models"]["math_paper"]["cases"]
    display(pd.DataFrame([{"module": p["what"].split()[1].rstrip(":"), "base steps": p["stages"][0][0],
                           "mask steps (at batch 128)": p["stages"][1][0], "projected hours": p["hours"]}
                          for p in rows]).round(1))
    print(f"measured {paper['date']} at commit {paper['commit'][:7]} ({paper['machine']}; load average "
          f"{paper['load']:.1f} when it began: on a busy machine the step times, and the hours, are upper bounds)")
    glue("math-paper-hours", Markdown(
        f"a plain step of the paper's 6+6-layer, d-512 network takes {cases['plain']['median_s']:.1f} s on one core "
        f"of this machine and a step of one mask set {cases['masked']['median_s']:.1f} s (two sets counted as two "
        f"one-set steps, {reach.two_sets(paper, 'math_paper'):.1f} s: batching them is not slower, `make bench`), "
        f"so the paper preset would take about {sum(p['hours'] for p in rows):,.0f} h for one seed of the five "
        f"modules"),
         display=False)

# %% [markdown]
# **What we see**: {glue:md}`math-reach`. The claim on each committed cpu run: {glue:md}`math-variants`. At the
# paper's scale, {glue:md}`math-paper-hours`: the paper's network needs a GPU.
