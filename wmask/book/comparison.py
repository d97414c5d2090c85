"""The reproduction report's comparison with the authors' released code: for every experiment it was run for, their
settings, how many of the compared numbers lie within their seed spread, and the numbers that do not."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from . import authors
from .report import committed_summary

# compared on our committed cpu run itself (or its run at the authors' budget, authors.SAME_BUDGET): the authors'
# code ran at its network, steps and mask settings
LIVE = {"cifar10": (authors.compare_cifar, "the committed cpu run at their budget (control_steps=0: every mask stage "
                    "at most 2,000 steps, stopped once settled; theirs run 2,000 steps each)"),
        "scan": (authors.compare_scan, "the committed cpu run (masks at most 8,000 steps, stopped once settled; "
                 "theirs run 8,000 each)")}
EXPERIMENTS = ("addmul", "double_addition", "scan", "cifar10")

KEYS = authors.GAP_KEYS


def _compared(experiment: str, found: dict, folder: str, root: Path, ours: dict | None):
    """``(comparison rows, what of ours they compare)``, or ``(None, why not)``."""
    from ..experiments.runner import experiment_of, folder_name
    tables = lambda summary: experiment_of(experiment).tables(summary["runs"])  # noqa: E731
    net = (ours or {}).get("runs", [{}])[0].get("config", {}).get("networks", {}).get("fnn") if ours else None
    budget = authors.SAME_BUDGET.get(experiment, {})
    at_budget = committed_summary(experiment, folder_name("cpu", budget), root) if budget else ours
    committed = root / "authors" / experiment / folder / "comparison.csv"
    if experiment in LIVE and at_budget is not None and folder == "cpu":   # same network, steps and mask settings
        compare, how = LIVE[experiment]
        return compare(tables(at_budget), found), f"ours: {how}"
    if net is not None and authors.same_settings(found, net):
        accuracy = pd.DataFrame(tables(ours)["accuracy"])
        return authors.compare_accuracy(accuracy, found["accuracy"]), "ours: the committed cpu run"
    if committed.is_file():
        return pd.read_csv(committed), ("ours run at the authors' settings" + (
            " (a fixed budget)" if folder == "cpu" else " (a former cpu preset)")
            + f": results/authors/{experiment}/{folder}/comparison.csv")
    return None, "no run of ours at these settings"


def beside_the_authors(root: Path, stored: dict) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """``(their settings, per experiment how many numbers lie within their spread, the numbers outside it)``.
    ``stored``: ``{(experiment, preset): summary}`` of our committed runs."""
    settings, side, outside = [], [], []
    for experiment in EXPERIMENTS:
        found, folder = authors.find_authors(experiment, Path(root) / "authors")
        if found is None:
            continue
        summary = found["summary"] or {}
        settings.append({"experiment": experiment, "folder": f"results/authors/{experiment}/{folder}",
                         "their seeds": ", ".join(str(r.get("seed")) for r in summary.get("runs", [])),
                         **authors.authors_settings(found),
                         "their commit": summary.get("provenance", {}).get("authors_commit", "?")[:12]})
        cmp, note = _compared(experiment, found, folder, Path(root), stored.get((experiment, "cpu")))
        if cmp is None:
            side.append({"experiment": experiment, "compared": 0, "within the authors' spread": 0, "ours": note})
            continue
        side.append({"experiment": experiment, "compared": len(cmp),
                     "within the authors' spread": int((cmp.verdict == authors.WITHIN).sum()), "ours": note})
        gaps = cmp[cmp.verdict == authors.OUTSIDE]
        outside += [{"experiment": experiment, **r} for r in authors.explained(experiment, gaps, found, Path(root))
                    .to_dict("records")]
    out = pd.DataFrame(outside)
    keys = [c for c in KEYS if c in out and out[c].notna().any()]
    cols = ["experiment", *keys, "ours mean", "ours sd", "theirs mean", "theirs sd", "difference", "tolerance",
            "under the authors' protocol", "explained by"]
    return pd.DataFrame(settings), pd.DataFrame(side), out.reindex(columns=cols) if len(out) else out

