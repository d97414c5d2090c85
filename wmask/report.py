"""Small helpers the notebooks share: where the repository is, captions, mean ± sd tables, common figures.
The printed verdicts live in :mod:`wmask.claims`."""
from __future__ import annotations

from pathlib import Path


def repo_root(start: Path | None = None) -> Path:
    """The checkout's root (the folder holding ``pyproject.toml``), searched upwards from ``start`` or the cwd, so
    a notebook finds the same results folder wherever it is executed (papermill, nbval, the book)."""
    start = Path.cwd() if start is None else Path(start)
    for p in [start, *start.parents]:
        if (p / "pyproject.toml").exists():
            return p
    raise FileNotFoundError(f"no pyproject.toml above {start}: run the notebooks from inside the wmask checkout")


def caption(summary: dict, dataset: str) -> str:
    """What a figure comes from: preset, seeds, device and dataset."""
    return (f"preset {summary['preset']}, seeds {summary['seeds']}, {summary['provenance']['device']}, {dataset}; "
            "mean ± sd over seeds")


def mean_sd(df, index: list[str], columns: str, value: str):
    """A table of ``mean ± sd`` strings (sample sd over the rows of each cell; 0 with one seed)."""
    g = df.groupby(index + [columns], sort=False)[value]
    cell = g.mean().map("{:.3f}".format) + " ± " + g.std(ddof=1).fillna(0).map("{:.3f}".format)
    return cell.unstack(columns)


def describe_networks(networks: dict) -> None:
    """Print one line per network of an arithmetic run: model, widths, steps, alpha, clipping."""
    for name, c in networks.items():
        print(f"{name:>14}: {c['model']} {c['hidden']}, base {c['base']['steps']} steps, masks {c['mask']['steps']} "
              f"steps, alpha {c['mask']['alpha']}, clip {c['mask']['clip']} ({c['mask']['clip_mode']})")


def plot_layer_overlap(layers, nets: list[str], ylabel: str, title: str):
    """Per-layer IoU and IoMin bars (mean ± sd over seeds), one panel per network; ``layers`` is the tidy table."""
    import matplotlib.pyplot as plt
    import seaborn as sns
    layers = layers[layers.network.isin(nets) & (layers.layer != "total")]
    long = layers.melt(id_vars=["seed", "network", "layer"], value_vars=["IoU", "IoMin"], var_name="metric")
    fig, axes = plt.subplots(1, len(nets), figsize=(4.4 * len(nets), 3.2), sharey=True, squeeze=False)
    for ax, net in zip(axes[0], nets):
        sns.barplot(data=long[long.network == net], x="layer", y="value", hue="metric", errorbar="sd", ax=ax)
        ax.set(title=net, xlabel="masked weight tensor (input → output)", ylabel=ylabel)
        plt.setp(ax.get_xticklabels(), rotation=30, ha="right", rotation_mode="anchor")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig
