"""Compare our tidy tables with the authors' code run side by side (``results/authors/<experiment>/cpu/``).

Pure functions over pandas tables; no torch needed. ``benchmarks/authors/run.py`` runs the authors' released code
(RobertCsordas/modules) at our ``cpu`` configurations and writes their numbers with our column and mask names, so
the two ``accuracy.csv`` tables (``seed, network, mask, evaluated on, accuracy``) can be joined directly.

The rule for "within the authors' spread", per (network, mask, evaluated on)::

    |mean(ours) - mean(theirs)| <= max(k * sd(theirs), abs_tol)     with k = 2, abs_tol = 0.02

Why: the authors' own seed-to-seed spread is the yardstick for "the same result" (the paper reports mean ± sample
sd over seeds), and about 95 % of single runs of a normally distributed quantity fall within 2 sd of its mean. The
absolute floor of 0.02 is there because we (and they) run only a few seeds at the cpu scale: an sd estimated from 2
or 3 seeds is itself very noisy and is often ≈ 0 (e.g. a full network at accuracy 1.000 in every seed, or a mask at
chance level), and the test sets (4,096 examples ours, ≈ 5,000–10,000 theirs) alone carry a binomial error of up to
≈ 0.008 per number, so differences under 2 accuracy points cannot be told apart from measurement noise. With a
single authors' seed the sd is undefined and only the absolute floor applies. The rule is deliberately loose; a
number outside it is a real difference of method, data stream or scale worth explaining, a number inside it is not
proof of equality.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Optional, Sequence

import pandas as pd

__all__ = ["ACCURACY_KEYS", "WITHIN", "OUTSIDE", "tolerance", "summarize", "compare_tables", "compare_accuracy",
           "compare_cifar", "DROP_ABS_TOL", "compare_scan", "SCAN_ABS_TOL", "REMOVED_ABS_TOL", "load_authors",
           "find_authors", "authors_settings", "settings_text", "same_settings", "authors_tables", "with_our_scratch",
           "NO_CURVES", "DEFAULT_AUTHORS_ROOT", "SAME_BUDGET", "within_sentence", "PROTOCOL_RUNS", "AUTHORS_PROTOCOL",
           "GAP_KEYS", "protocol_runs", "explained"]

ACCURACY_KEYS = ("network", "mask", "evaluated on")
WITHIN = "within the authors' spread"
OUTSIDE = "outside the authors' spread"
DEFAULT_K = 2.0
DEFAULT_ABS_TOL = 0.02
DEFAULT_AUTHORS_ROOT = Path(__file__).resolve().parents[2] / "results" / "authors"   # the checkout's
NO_CURVES = "the authors' code logs no mask training curves that we read back"
# Where our cpu preset gives a stage more steps than the authors' code can (its one -step_per_mask flag sets every
# mask stage), the overrides of our committed run at their budget (results/<experiment>/cpu+<hash>), the one
# compared with theirs number by number: CIFAR-10's control masks at the class-removal masks' 2,000 steps.
SAME_BUDGET = {"cifar10": {"control_steps": 0}}


def tolerance(their_sd: float, k: float = DEFAULT_K, abs_tol: float = DEFAULT_ABS_TOL) -> float:
    """``max(k * their_sd, abs_tol)``; an undefined sd (one seed, NaN or None) counts as 0."""
    if their_sd is None or (isinstance(their_sd, float) and math.isnan(their_sd)):
        their_sd = 0.0
    return max(k * float(their_sd), abs_tol)


def summarize(table: pd.DataFrame, keys: Sequence[str] = ACCURACY_KEYS, value: str = "accuracy") -> pd.DataFrame:
    """Mean, sample sd (ddof = 1; NaN for one seed) and number of seeds of ``value`` per ``keys``."""
    missing = [c for c in list(keys) + [value] if c not in table.columns]
    if missing:
        raise KeyError(f"table lacks column(s) {missing}; it has {list(table.columns)}")
    g = table.groupby(list(keys), sort=True)[value]
    out = pd.DataFrame({"mean": g.mean(), "sd": g.std(ddof=1), "n": g.count()})
    return out.reset_index()


def compare_tables(ours: pd.DataFrame, theirs: pd.DataFrame, keys: Sequence[str] = ACCURACY_KEYS,
                   value: str = "accuracy", k: float = DEFAULT_K, abs_tol: float = DEFAULT_ABS_TOL,
                   how: str = "inner") -> pd.DataFrame:
    """One row per ``keys`` present in both tables (``how="outer"`` keeps the others, with verdict
    ``"only ours"`` / ``"only theirs"``): ``ours mean``, ``ours sd``, ``ours n``, ``theirs mean``, ``theirs sd``,
    ``theirs n``, ``difference`` (ours − theirs), ``tolerance`` and ``verdict`` (see the module docstring)."""
    a = summarize(ours, keys, value).rename(columns={"mean": "ours mean", "sd": "ours sd", "n": "ours n"})
    b = summarize(theirs, keys, value).rename(columns={"mean": "theirs mean", "sd": "theirs sd", "n": "theirs n"})
    m = a.merge(b, on=list(keys), how=how)
    m["difference"] = m["ours mean"] - m["theirs mean"]
    m["tolerance"] = [tolerance(sd, k, abs_tol) for sd in m["theirs sd"]]

    def verdict(r) -> str:
        if pd.isna(r["ours mean"]):
            return "only theirs"
        if pd.isna(r["theirs mean"]):
            return "only ours"
        return WITHIN if abs(r["difference"]) <= r["tolerance"] + 1e-12 else OUTSIDE

    m["verdict"] = [verdict(r) for _, r in m.iterrows()] if len(m) else pd.Series(dtype=object)
    for c in ("ours n", "theirs n"):
        m[c] = m[c].fillna(0).astype(int)
    return m.reset_index(drop=True)


def compare_accuracy(ours: pd.DataFrame, theirs: pd.DataFrame, k: float = DEFAULT_K,
                     abs_tol: float = DEFAULT_ABS_TOL, how: str = "inner") -> pd.DataFrame:
    """Compare two tidy ``accuracy.csv`` tables (``seed, network, mask, evaluated on, accuracy``) per
    (network, mask, evaluated on). See :func:`compare_tables`."""
    return compare_tables(ours, theirs, ACCURACY_KEYS, "accuracy", k, abs_tol, how)


DROP_ABS_TOL = 10.0   # relative-drop points (CIFAR-10): see compare_cifar


def compare_cifar(ours: dict, theirs: dict, k: float = DEFAULT_K) -> pd.DataFrame:
    """CIFAR-10, ours against the authors' code (both as tables: ``base``, ``worst``), per number: the base
    network's held-out accuracy (within ``max(k sd, 0.02)``, as accuracies elsewhere) and, per class, the own-class
    relative drop and the worst other class's drop as % of it (within ``max(k sd, 10)`` points: a class's held-out
    accuracy rests on ≈ 1,000 images, a binomial sd of ≈ 1.3 accuracy points, i.e. ≈ 2 points of relative drop
    for each of the two confusion matrices it compares, and a mask's own seed-to-seed variation comes on top; a
    single seed per code has no sd). Columns: ``number``, ``class`` and those of :func:`compare_tables`."""
    def tidy(t):
        base = pd.DataFrame(t["base"])[["seed", "accuracy"]].assign(number="base accuracy", **{"class": "all"})
        worst = pd.DataFrame(t["worst"]).melt(id_vars=["seed", "class"], value_vars=["own drop %",
                                                                                      "worst other / own %"],
                                              var_name="number", value_name="accuracy")
        return base, worst
    (ob, ow), (tb, tw) = tidy(ours), tidy(theirs)
    keys = ["number", "class"]
    return pd.concat([compare_tables(ob, tb, keys, "accuracy", k, DEFAULT_ABS_TOL),
                      compare_tables(ow, tw, keys, "accuracy", k, DROP_ABS_TOL)], ignore_index=True)


SCAN_ABS_TOL = 0.04      # exact-match points (SCAN): see compare_scan
REMOVED_ABS_TOL = 10.0   # % of a token's output weights (SCAN Fig. 4b): see compare_scan


def compare_scan(ours: dict, theirs: dict, k: float = DEFAULT_K) -> pd.DataFrame:
    """SCAN, ours against the authors' code (both as tables: ``accuracy`` with ``seed, model, variant, test`` and
    ``removed`` with ``seed, model, mask, token, removed %``), per number:

    - ``exact match``: each variant (the unmasked net, each split's mask) on each split's test, within
      ``max(k sd, 0.04)``: ours decodes 1,000 test lines a split, theirs the whole files (1,208-7,706 lines), so at
      an accuracy near 0.5 the two measurements alone differ by a binomial sd of up to 0.021, and 2 sd is 0.04;
    - ``removed %``: per output token, the % of the full-problem mask's output weights the add-jump mask removes
      (Fig. 4b), within ``max(k sd, 10)`` points: a token's row of the output layer holds one weight per hidden
      unit (128 at cpu) of which the full-problem mask keeps a few dozen, so one weight moves the % by 2-4 points.

    The variants only ours runs (from scratch) drop out. Columns: ``number``, ``model``, ``variant``, ``test``,
    ``token`` and those of :func:`compare_tables`."""
    def removed(t):
        r = pd.DataFrame(t["removed"])
        return r[r["mask"] == "addprim_jump"].assign(variant="mask addprim_jump")
    acc = compare_tables(pd.DataFrame(ours["accuracy"]), pd.DataFrame(theirs["accuracy"]),
                         ("model", "variant", "test"), "accuracy", k, SCAN_ABS_TOL)
    rem = compare_tables(removed(ours), removed(theirs), ("model", "variant", "token"), "removed %", k,
                         REMOVED_ABS_TOL)
    return pd.concat([acc.assign(number="exact match"), rem.assign(number="removed %")], ignore_index=True)[
        ["number", "model", "variant", "test", "token", *[c for c in acc.columns if c not in
                                                          ("model", "variant", "test")]]]


def within_sentence(cmp: pd.DataFrame, name, digits: int = 2) -> str:
    """A chapter's sentence on a comparison (``compare_*``): "N of M numbers lie within the authors' spread;
    outside: <name(row)> (ours x, theirs y); ...", ``name(row)`` naming each number outside."""
    out = cmp[cmp.verdict == OUTSIDE]
    return (f"{int((cmp.verdict == WITHIN).sum())} of {len(cmp)} numbers lie within the authors' spread"
            + ("" if out.empty else "; outside: " + "; ".join(
                f"{name(r)} (ours {r['ours mean']:.{digits}f}, theirs {r['theirs mean']:.{digits}f})"
                for _, r in out.iterrows())))


def load_authors(experiment: str, root: Optional[Path | str] = None, preset: str = "cpu") -> Optional[dict]:
    """The authors' results for ``experiment`` as written by ``benchmarks/authors/run.py``, or None if absent:
    ``{"summary": dict, name: DataFrame | None}`` for the tables ``accuracy``, ``layers``, ``sharing``, ``removed``
    and, for CIFAR-10 (which has no ``accuracy``), ``base``, ``drops``, ``worst``, ``kept``."""
    d = Path(root if root is not None else DEFAULT_AUTHORS_ROOT) / experiment / preset
    if not ((d / "accuracy.csv").is_file() or (d / "drops.csv").is_file()):
        return None
    out = {"summary": json.loads((d / "summary.json").read_text()) if (d / "summary.json").is_file() else None}
    for name in ("accuracy", "layers", "sharing", "removed", "base", "drops", "worst", "kept"):
        out[name] = pd.read_csv(d / f"{name}.csv") if (d / f"{name}.csv").is_file() else None
    return out


def find_authors(experiment: str, root: Optional[Path | str] = None) -> tuple[Optional[dict], str]:
    """The authors' results at today's cpu settings, else at a former cpu preset's (``former-cpu/``), with the name
    of the folder they came from (``(None, "")`` when neither is committed)."""
    for folder in ("cpu", "former-cpu"):
        found = load_authors(experiment, root, folder)
        if found is not None:
            return found, folder
    return None, ""


def authors_settings(found: dict) -> dict[str, str]:
    """The settings the authors' code ran at, from its command line: base steps, mask steps per stage, mask lr, α."""
    argv = ((found.get("summary") or {}).get("runs") or [{}])[0].get("argv", [])
    flags = {"base steps": "-stop_after", "mask steps": "-step_per_mask", "mask lr": "-mask_lr",
             "α": "-mask_loss_weight"}
    return {k: argv[argv.index(f) + 1] if f in argv else "?" for k, f in flags.items()}


def settings_text(settings: dict) -> str:
    """``{"base steps": "10000", "mask lr": "1e-2"}`` as ``base steps 10000, mask lr 1e-2``, for prose."""
    return ", ".join(f"{k} {v}" for k, v in settings.items())


def same_settings(found: dict, network_cfg: dict) -> bool:
    """Whether the authors' run used our ``network_cfg``'s base steps, mask steps and mask lr."""
    theirs = authors_settings(found)
    ours = {"base steps": network_cfg["base"]["steps"], "mask steps": network_cfg["mask"]["steps"],
            "mask lr": network_cfg["mask"]["lr"]}
    return all(theirs[k] != "?" and float(theirs[k]) == float(v) for k, v in ours.items())


def authors_tables(found: dict, target: dict[str, dict[str, float]]) -> dict:
    """The authors' results (:func:`load_authors`) as the tables :mod:`wmask.book.claims` checks read, so their code's
    numbers get the same verdicts as ours: ``accuracy``, ``layers``, ``sharing``, an empty ``sweep``, and ``base``:
    their unmasked network's accuracy per seed against ``target`` (``{network: {subtask: accuracy}}``, ours for the
    same configuration; SCAN: ``{model: {"iid": accuracy}}``). Their runs log no mask training curves we read back,
    so ``curves`` is the string :data:`NO_CURVES` and a check on their numbers is gated by the targets alone.
    CIFAR-10 (``drops`` and ``worst`` instead of ``accuracy``): ``target`` is ``{model: {"iid": accuracy}}``, the
    one target of its base network."""
    if found.get("drops") is not None:
        (goal,) = [t for per in target.values() for t in per.values()]
        base = found["base"].assign(target=goal)
        return {"drops": found["drops"], "worst": found["worst"], "base": base, "curves": NO_CURVES}
    acc = found["accuracy"]
    if "variant" in acc.columns:          # SCAN: the unmasked net on the iid test
        full = acc[(acc["variant"] == "full") & (acc["test"] == "simple")]
        net, subtask = full["model"], pd.Series("iid", index=full.index)
    else:
        full = acc[acc["mask"] == "full"]
        net, subtask = full["network"], full["evaluated on"]
    base = pd.DataFrame({"seed": full["seed"], "network": net, "subtask": subtask, "accuracy": full["accuracy"],
                         "target": [target.get(n, {}).get(t, math.nan) for n, t in zip(net, subtask)]})
    return {"accuracy": acc, "base": base.reset_index(drop=True), "curves": NO_CURVES, "sweep": pd.DataFrame(),
            **{k: found[k] for k in ("layers", "sharing", "removed") if found.get(k) is not None}}


def with_our_scratch(theirs: dict, ours: dict) -> tuple[dict, bool]:
    """SCAN: the authors' code trains no network from scratch on a split, so their split-mask check borrows ours
    (the same network trained on the same split file). ``theirs`` and ``ours`` are tables as the checks read them;
    returns ``(theirs with our "scratch" rows added, whether any were borrowed)``."""
    acc = pd.DataFrame(theirs.get("accuracy"))
    mine = pd.DataFrame(ours.get("accuracy"))
    if "variant" not in acc or "variant" not in mine or (acc["variant"] == "scratch").any():
        return theirs, False
    mine = mine[mine["variant"] == "scratch"]
    if mine.empty:
        return theirs, False
    return {**theirs, "accuracy": pd.concat([acc, mine], ignore_index=True)}, True


# runs of ours under the authors' protocol, or with one of its differences (the book's method page): the arithmetic
# ones from benchmarks/authors/protocol.py (results/authors/<experiment>/cpu/protocol/<label>/), the others as
# committed runs of the experiment with these overrides
PROTOCOL_RUNS = {"cifar10": {"removal_init=fresh": {"control_steps": 0, "removal_init": "fresh"}}}
AUTHORS_PROTOCOL = "authors"
GAP_KEYS = ("network", "model", "mask", "variant", "evaluated on", "test", "token", "number", "class")


def protocol_runs(experiment: str, root: Path) -> dict[str, dict]:
    """Our runs of ``experiment`` under another protocol (:data:`PROTOCOL_RUNS`): ``{label: tables}``; the
    authors' whole protocol is labelled ``authors``, one difference ``ours+<switch>``, all but one
    ``authors-<switch>``."""
    from ..experiments.runner import experiment_of, folder_name
    found = {}
    for folder in sorted((root / "authors" / experiment / "cpu" / "protocol").glob("*/accuracy.csv")):
        found[folder.parent.name] = {"accuracy": pd.read_csv(folder)}
    for label, overrides in PROTOCOL_RUNS.get(experiment, {}).items():
        path = root / experiment / folder_name("cpu", overrides) / "summary.json"
        if path.is_file():
            found[label] = experiment_of(experiment).tables(json.loads(path.read_text())["runs"])
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
    keys = [c for c in gaps.columns if c in GAP_KEYS]
    compare = {"cifar10": compare_cifar, "scan": compare_scan}.get(experiment) or (
        lambda tables, theirs: compare_accuracy(pd.DataFrame(tables["accuracy"]), theirs["accuracy"]))
    verdicts = {label: compare(tables, found).set_index(keys) for label, tables in runs.items()}
    for i, row in gaps.iterrows():
        key = tuple(row[k] for k in keys)
        closes = [label for label, v in sorted(verdicts.items(), key=lambda kv: kv[0] == AUTHORS_PROTOCOL)
                  if label != "ours" and key in v.index and v.loc[key, "verdict"] == WITHIN]
        whole = verdicts.get(AUTHORS_PROTOCOL)
        if whole is not None and key in whole.index:
            gaps.loc[i, "under the authors' protocol"] = whole.loc[key, "ours mean"]
        gaps.loc[i, "explained by"] = (", ".join(closes) if closes else
                                       "not the protocol: outside with every difference removed"
                                       if whole is not None and key in whole.index else
                                       f"none of {', '.join(sorted(runs))}")
    return gaps
