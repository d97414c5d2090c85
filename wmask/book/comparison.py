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
# runs of ours under the authors' protocol, or with one of its differences (the book's method page): the arithmetic
# ones from benchmarks/authors/protocol.py (results/authors/<experiment>/cpu/protocol/<label>/), the others as
# committed runs of the experiment with these overrides
PROTOCOL_RUNS = {"cifar10": {"removal_init=fresh": {"control_steps": 0, "removal_init": "fresh"}}}
AUTHORS_PROTOCOL = "authors"
KEYS = ("network", "model", "mask", "variant", "evaluated on", "test", "token", "number", "class")


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
        outside += [{"experiment": experiment, **r} for r in explained(experiment, gaps, found, Path(root))
                    .to_dict("records")]
    out = pd.DataFrame(outside)
    keys = [c for c in KEYS if c in out and out[c].notna().any()]
    cols = ["experiment", *keys, "ours mean", "ours sd", "theirs mean", "theirs sd", "difference", "tolerance",
            "under the authors' protocol", "explained by"]
    return pd.DataFrame(settings), pd.DataFrame(side), out.reindex(columns=cols) if len(out) else out


def protocol_runs(experiment: str, root: Path) -> dict[str, dict]:
    """Our runs of ``experiment`` under another protocol (:data:`PROTOCOL_RUNS`): ``{label: tables}``; the
    authors' whole protocol is labelled ``authors``, one difference ``ours+<switch>``, all but one
    ``authors-<switch>``."""
    from ..experiments.runner import experiment_of, folder_name
    found = {}
    for folder in sorted((root / "authors" / experiment / "cpu" / "protocol").glob("*/accuracy.csv")):
        found[folder.parent.name] = {"accuracy": pd.read_csv(folder)}
    for label, overrides in PROTOCOL_RUNS.get(experiment, {}).items():
        summary = committed_summary(experiment, folder_name("cpu", overrides), root)
        if summary is not None:
            found[label] = experiment_of(experiment).tables(summary["runs"])
    return found


def explained(experiment: str, gaps: pd.DataFrame, found: dict, root: Path) -> pd.DataFrame:
    """``gaps`` (numbers of ours outside the authors' spread) with what explains each: ``under the authors'
    protocol`` (our mean with every protocol difference removed) and ``explained by``: the runs under another
    protocol (:func:`protocol_runs`) whose number lies within the authors' spread (single differences first), or,
    when even the authors' whole protocol leaves it outside, that the protocol does not explain it. A run labelled
    ``ours`` (our protocol again, the control) explains nothing."""
    runs = protocol_runs(experiment, root)
    gaps = gaps.copy()
    gaps["under the authors' protocol"], gaps["explained by"] = float("nan"), "no protocol run yet"
    if gaps.empty or not runs:
        return gaps
    keys = [c for c in KEYS if c in gaps.columns]
    compare = LIVE[experiment][0] if experiment in LIVE else (
        lambda tables, theirs: authors.compare_accuracy(pd.DataFrame(tables["accuracy"]), theirs["accuracy"]))
    verdicts = {label: compare(tables, found).set_index(keys) for label, tables in runs.items()}
    for i, row in gaps.iterrows():
        key = tuple(row[k] for k in keys)
        closes = [label for label, v in sorted(verdicts.items(), key=lambda kv: kv[0] == AUTHORS_PROTOCOL)
                  if label != "ours" and key in v.index and v.loc[key, "verdict"] == authors.WITHIN]
        whole = verdicts.get(AUTHORS_PROTOCOL)
        if whole is not None and key in whole.index:
            gaps.loc[i, "under the authors' protocol"] = whole.loc[key, "ours mean"]
        gaps.loc[i, "explained by"] = (", ".join(closes) if closes else
                                       "not the protocol: outside with every difference removed"
                                       if whole is not None and key in whole.index else
                                       f"none of {', '.join(sorted(runs))}")
    return gaps
