"""Small helpers the notebooks share: where the repository is, captions, mean ± sd tables and printed verdicts."""
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


def verdict(claim: str, holds: bool, detail: str) -> None:
    """Print one checked claim: ``[holds] claim: the numbers and the inequality``."""
    print(f"[{'holds' if holds else 'does not hold'}] {claim}: {detail}")
