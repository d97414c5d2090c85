"""Figures drawn outside a chapter: the README's overview (``make figures`` writes it into ``book/figures/``)."""
from __future__ import annotations

from pathlib import Path


def overview(results: str | Path = "results"):
    """The paper's first question at the committed cpu preset: each add/mul mask's accuracy on + and on × (mean and
    sd over seeds, the 400-400-200 FNN). Read from ``<results>/addmul/cpu/accuracy.csv``."""
    import matplotlib.pyplot as plt
    import pandas as pd

    acc = pd.read_csv(Path(results) / "addmul/cpu/accuracy.csv")
    acc = acc[(acc.network == "fnn") & acc["mask"].isin(["full", "control", "+", "×"])]
    stats = acc.groupby(["mask", "evaluated on"]).accuracy.agg(["mean", "std"]).fillna(0.0)
    masks = ["full", "control", "+", "×"]
    fig, ax = plt.subplots(figsize=(6.4, 2.8))
    width = 0.38
    for j, (op, colour) in enumerate((("+", "tab:blue"), ("×", "tab:orange"))):
        rows = stats.xs(op, level="evaluated on").reindex(masks)
        ax.bar([i + (j - 0.5) * width for i in range(len(masks))], rows["mean"], width, yerr=rows["std"],
               color=colour, label=f"evaluated on {op}", capsize=2)
    ax.set_xticks(range(len(masks)), ["no mask", "control mask", "+ mask", "× mask"])
    ax.set(ylabel="fraction solved", ylim=(0, 1.05))
    ax.legend(fontsize=9, loc="upper center", ncol=2, bbox_to_anchor=(0.5, 1.18), frameon=False)
    seeds = sorted(acc.seed.unique())
    fig.text(0.99, 0.01, f"results/addmul/cpu, seeds {seeds[0]}–{seeds[-1]}", ha="right", fontsize=8, color="0.4")
    fig.tight_layout()
    return fig


if __name__ == "__main__":
    import sys
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "book/figures/overview.png")
    overview().savefig(out, dpi=120)
    print(f"wrote {out}")
