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
# # Reproduction report
#
# One row per claim of the paper: the claim, where the paper shows it, and our result at every preset whose result
# summaries are committed under `results/` (with their provenance), each checked as the same explicit inequalities
# the chapters print. This page trains nothing: it is generated from the committed summaries when the book is
# built. A claim whose experiment has no committed run says so.

# %% tags=["parameters"]
results = "results"   # the committed result summaries, relative to the repository root

# %%
# %matplotlib inline
import json

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from wmask import claims, runner
from wmask.report import repo_root

root = repo_root() / results
stored = {}
for path in sorted(root.glob("*/*/summary.json")):
    summary = json.loads(path.read_text())
    if not summary.get("overrides"):        # runs with command-line overrides are not the preset's
        stored[summary["experiment"], summary["preset"]] = summary
presets = ["smoke", "cpu", "paper"]
rows, grid = [], {}
for claim in claims.CLAIMS:
    row = {"claim": claim.claim, "where in the paper": claim.evidence}
    for preset in presets:
        summary = stored.get((claim.experiment, preset))
        experiment = runner.experiment_of(claim.experiment)
        if summary is None:
            model = claim.experiment.split("-", 1)[1] if "-" in claim.experiment else None
            why = experiment.absent(preset, model)
            row[preset] = f"no {preset} preset: {why}" if why else "not run"
            continue
        lines = claims.check(claim.key, experiment.tables(summary["runs"]), summary["runs"][0]["config"])
        row[preset] = claims.tally(lines)
        made = [h for h, _ in lines if h is not None]
        grid[claim.key, preset] = sum(made) / len(made) if made else float("nan")
    rows.append(row)
report = pd.DataFrame(rows)
with pd.option_context("display.max_colwidth", None):
    display(report.style.hide(axis="index"))

# %% [markdown]
# The fraction of a claim's checks that hold, per preset (blank: no committed run, or no check could be made).

# %%
frac = pd.DataFrame([[grid.get((c.key, p), float("nan")) for p in presets] for c in claims.CLAIMS],
                    index=[c.key for c in claims.CLAIMS], columns=presets)
fig, ax = plt.subplots(figsize=(5.2, 0.35 * len(frac) + 1.2))
sns.heatmap(frac, vmin=0, vmax=1, cmap="RdYlGn", annot=True, fmt=".2f", cbar_kws={"label": "checks that hold"},
            ax=ax)
ax.set(xlabel="preset", ylabel="claim")
fig.tight_layout()

# %% [markdown]
# ## Every check, with its numbers

# %% tags=["nbval-check-output"]
for claim in claims.CLAIMS:
    for preset in presets:
        summary = stored.get((claim.experiment, preset))
        if summary is None:
            continue
        print(f"--- {claim.key} @ {preset}")
        claims.print_check(claim.key, runner.experiment_of(claim.experiment).tables(summary["runs"]),
                           summary["runs"][0]["config"])

# %% [markdown]
# ## Where the stored results come from

# %%
pd.DataFrame([{"experiment": e, "preset": p, "seeds": s["seeds"], "device": s["provenance"]["device"],
               "commit": s["provenance"]["commit"][:12], "torch": s["provenance"]["torch"],
               "compute (min, sum over seeds)": round(sum(r["wall_time_s"] for r in s["runs"]) / 60, 1)}
              for (e, p), s in stored.items()])
