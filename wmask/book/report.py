"""Small helpers the notebooks share: where the repository is, captions, mean ± sd tables, common figures.
The printed verdicts live in :mod:`wmask.book.claims`."""
from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple


def repo_root(start: Path | None = None) -> Path:
    """The checkout's root (the folder holding ``pyproject.toml``), searched upwards from ``start`` or the cwd, so
    a notebook finds the same results folder wherever it is executed (papermill, nbval, the book)."""
    start = Path.cwd() if start is None else Path(start)
    for p in [start, *start.parents]:
        if (p / "pyproject.toml").exists():
            return p
    raise FileNotFoundError(f"no pyproject.toml above {start}: run the notebooks from inside the wmask checkout")


def preset_to_run(experiment: str, preset: str, model: str | None = None) -> tuple[str, str]:
    """``(preset, "")`` when ``experiment`` has ``preset``; ``("smoke", note)`` when it deliberately lacks it (e.g.
    no cpu preset where two cores cannot train its networks to target), ``note`` saying why, so a chapter built at
    that preset still shows every step of the method, at smoke, and says that its numbers mean nothing."""
    from ..experiments.runner import EXPERIMENTS, label
    why = EXPERIMENTS[experiment].absent(preset, model)
    if not why:
        return preset, ""
    return "smoke", (f"{label(experiment, model)} has no {preset} preset: {why}. Shown instead: the smoke preset, "
                     "which runs every step of the method in seconds on tiny networks; its numbers mean nothing and "
                     "its claims are untestable.")


def caption(summary: dict, dataset: str) -> str:
    """What a figure comes from: preset, seeds, device and dataset."""
    return (f"preset {summary['preset']}, seeds {summary['seeds']}, {summary['provenance']['device']}, {dataset}; "
            "mean ± sd over seeds")


class ChapterRun(NamedTuple):
    """What a chapter starts from (:func:`chapter_run`); unpacks as ``summary, tables, where, cfg, note``."""
    summary: dict   # the run's summary.json: provenance, seeds, every seed's results
    tables: dict    # the experiment's tidy tables over seeds, as DataFrames
    where: str      # the caption: preset, seeds, device, dataset
    cfg: dict       # the resolved config of the first seed's run
    note: str       # why the smoke preset stands in for the one asked ("" when it does not)


def chapter_run(experiment: str, preset: str, seeds: list[int] | None = None, results: str = "results",
                device: str = "auto", model: str | None = None, dataset: str | None = None,
                run: bool = False) -> ChapterRun | None:
    """The run a chapter shows. By default it **reads** the committed summary ``<results>/<label>/<preset>/`` (relative
    to the repository root) and trains nothing; its caption names the commit that made it, the wall time and whether
    it is still what this code computes (:mod:`wmask.experiments.status`). None when the experiment deliberately lacks
    the
    preset (the Transformer at cpu); a missing summary is an error saying how to make it.

    With ``run=True`` it runs the experiment first (or reuses finished work under ``results``), as CI does at smoke:
    threads set for this machine, stale artefacts recomputed, smoke in place of a preset the experiment lacks (with
    the note saying why). ``dataset`` names the data in the caption (default: the run's own dataset and checksum)."""
    from ..experiments.runner import EXPERIMENTS, label
    if not run:
        if EXPERIMENTS[experiment].absent(preset, model):
            return None
        view = committed_run(experiment, preset, model, repo_root() / results, dataset=dataset)
        if view is None:
            where = repo_root() / results / label(experiment, model) / preset
            raise FileNotFoundError(f"no committed run in {where}: make it with `make results PRESET={preset} "
                                    f"EXP={label(experiment, model)}`, or execute this chapter with run=True")
        return view
    from ..experiments.runner import run as run_experiment
    from ..utils import set_threads
    set_threads()
    preset, note = preset_to_run(experiment, preset, model)
    summary = run_experiment(experiment, preset, seeds or [0], repo_root() / results, device=device, progress=False,
                             stale="recompute", model=model)
    return _chapter_view(EXPERIMENTS[experiment], summary, summary["runs"], dataset, note,
                         where_tail="; run by this build")


def _chapter_view(exp, summary: dict, runs: list[dict], dataset: str | None, note: str = "",
                  where_tail: str = "") -> ChapterRun:
    """Tables and caption of ``runs`` (a summary's) for a chapter."""
    import pandas as pd

    tables = {k: pd.DataFrame(v) for k, v in (exp.tables(runs) if exp.tables else {}).items()}
    if dataset is None:
        dataset, checksum = str(runs[0].get("dataset", "")), str(runs[0].get("dataset_checksum") or "")
        if (checksum.startswith("md5") or re.fullmatch(r"[0-9a-f]{8,}", checksum)) and checksum not in dataset:
            dataset += f", {checksum}" if checksum.startswith("md5") else f" (md5 {checksum})"
    return ChapterRun(summary, tables, caption(summary, dataset) + where_tail, runs[0]["config"], note)


def committed_run(experiment: str, preset: str, model: str | None = None, root=None,
                  overrides: dict | None = None, dataset: str | None = None) -> ChapterRun | None:
    """The committed run of ``experiment`` at ``preset`` (``results/<experiment>[-<model>]/<preset>``; with
    ``overrides``, the run made with them, ``<preset>+<hash>``) as a chapter reads it; its caption adds the commit,
    the wall time and whether the run is *current* or *stale* (:func:`wmask.experiments.status.word`). None when none is
    committed."""
    from ..experiments.runner import EXPERIMENTS, folder_name, label
    from ..experiments.status import word
    summary = committed_summary(label(experiment, model), folder_name(preset, overrides or {}), root)
    if summary is None:
        return None
    runs, p = summary["runs"], summary["provenance"]
    return _chapter_view(EXPERIMENTS[experiment], summary, runs, dataset,
                         where_tail=f"; commit {p['commit'][:7]}, torch {p['torch']}, wall time {_seed_minutes(runs)}"
                                    f"; {word(summary)}")


def _results(experiment: str, root=None) -> Path:
    """The committed results of ``experiment``: ``results/<experiment>`` (``root``: another results folder)."""
    return Path(root or repo_root() / "results") / experiment


def _summary_in(folder: Path) -> dict | None:
    import json
    path = folder / "summary.json"
    return json.loads(path.read_text()) if path.is_file() else None


def committed_summary(experiment: str, preset: str, root=None) -> dict | None:
    """The committed ``results/<experiment>/<preset>/summary.json`` (``root``: another results folder), or None."""
    return _summary_in(_results(experiment, root) / preset)


def committed_variants(experiment: str, preset: str, root=None) -> list[dict]:
    """The committed summaries of ``preset`` and of its runs with overrides (``results/<experiment>/<preset>`` and
    ``<preset>+<hash>``, e.g. ``python -m wmask run permuted_mnist --preset cpu 'hidden=[512,512,64]'``), the plain
    preset first. Each summary names its overrides."""
    base = _results(experiment, root)
    found = (_summary_in(f) for f in [base / preset, *sorted(base.glob(f"{preset}+*"))])
    return [s for s in found if s is not None]


def _seed_minutes(runs: list[dict]) -> str:
    """Each seed's wall time in minutes, with its work periods when it was resumed: "seed 0 28 min, seed 1 ..."."""
    return ", ".join(f"seed {r['seed']} {r.get('wall_time_s', float('nan')) / 60:.0f} min"
                     + (f" over {n} work periods" if (n := r.get("work_periods", 1)) > 1 else "") for r in runs)


def partial_caption(summary: dict) -> str:
    """What a run of some of a preset's networks (``--networks``) is: which networks, seeds, where, how long."""
    p, runs = summary["provenance"], summary["runs"]
    nets = summary.get("selected") or list(runs[0]["config"]["networks"])
    by_commit: dict[str, set] = {}
    for r in runs:
        for net, commit in (r.get("made_by") or dict.fromkeys(r["networks"], r["commit"])).items():
            by_commit.setdefault(commit[:7], set()).add(net)
    commits = (f"commit {next(iter(by_commit))}" if len(by_commit) == 1 else "commits " + ", ".join(
        f"{c} ({', '.join(n for n in nets if n in made)})" for c, made in by_commit.items()))
    return (f"preset {summary['preset']}, networks {', '.join(nets)} only (partial: the rest needs a GPU), seeds "
            f"{summary['seeds']}, {p['device']}, torch {p['torch']}, {commits}; wall time {_seed_minutes(runs)}; "
            "mean ± sd over seeds")


def show_paper_scale(experiment: str, order: list[str], claim_keys: list[str], root=None, display=print) -> str:
    """A chapter's section on the committed run of the paper preset's own configuration for some of its networks
    (``python -m wmask run <experiment> --preset paper --networks ...`` on a CPU): what ran, each base network
    against its target and each mask's settling, the accuracy table (masks ``order``), the checks of
    ``claim_keys`` on those networks (tables through ``display``: a notebook passes IPython's). Returns the "what we
    see" sentences (Markdown), or why there is nothing."""
    import pandas as pd

    from . import claims
    from ..experiments.runner import EXPERIMENTS
    summary = committed_summary(experiment, "paper", root)
    if summary is None:
        return f"No run of the paper preset is committed for {experiment} (results/{experiment}/paper/)."
    tables = {k: pd.DataFrame(v) for k, v in EXPERIMENTS[experiment].tables(summary["runs"]).items()}
    cfg = summary["runs"][0]["config"]
    print(partial_caption(summary))
    print(scale(experiment, cfg))
    display(evidence_table(tables))
    acc = tables["accuracy"]
    display(mean_sd(acc[acc["mask"].isin(order)], ["network", "evaluated on"], "mask", "accuracy")[order])
    for key in claim_keys:
        claims.print_check(key, tables, cfg)
    return " ".join(f"*{key}*: {claims.what_we_see(key, tables, cfg, 'paper')}" for key in claim_keys)


def mean_sd(df, index: list[str], columns: str, value: str):
    """A table of ``mean ± sd`` strings (sample sd over the rows of each cell); a cell from one row (one seed) shows
    its value alone, with no spread to claim."""
    g = df.groupby(index + [columns], sort=False)[value]
    sd = g.std(ddof=1)
    cell = g.mean().map("{:.3f}".format) + sd.map(lambda v: "" if v != v else f" ± {v:.3f}")
    return cell.unstack(columns)


def scale(experiment: str, config: dict) -> str:
    """The scale a result of ``experiment`` (a results label: ``addmul``, ``scan-transformer``) comes from, in one
    line: its networks' sizes and steps, in the experiment's own words (``Experiment.describe``)."""
    from ..experiments.runner import experiment_of
    describe = experiment_of(experiment).describe
    return describe(config) if describe else ""


def describe_networks(networks: dict) -> None:
    """Print one line per network of an arithmetic run: model, widths, steps, alpha, clipping."""
    for name, c in networks.items():
        print(f"{name:>14}: {c['model']} {c['hidden']}, base {c['base']['steps']} steps, masks {c['mask']['steps']} "
              f"steps, alpha {c['mask']['alpha']}, clip {c['mask']['clip']} ({c['mask']['clip_mode']})")


def beside_the_authors(experiment: str, accuracy, network_cfg: dict, preset: str, root=None):
    """Our accuracies beside the authors' code's at the same settings (:mod:`wmask.book.authors`: per number, both
    means,
    their sd, and whether ours lies within their spread), or a sentence saying why there is no such comparison.
    ``network_cfg`` is our config of the compared network (its base and mask steps and mask lr must be theirs);
    ``root``: where the authors' results are (default ``results/authors``)."""
    import pandas as pd

    from . import authors as reference
    found = reference.load_authors(experiment, root) if preset == "cpu" else None
    if found is None:
        return (f"No run of the authors' code is committed for {experiment} at preset {preset}'s settings "
                "(results/authors/ says which settings they were run at).")
    cols = ["network", "mask", "evaluated on", "ours mean", "ours sd", "theirs mean", "theirs sd", "theirs n",
            "difference", "tolerance", "verdict"]
    if not reference.same_settings(found, network_cfg):
        ours = {"base steps": network_cfg["base"]["steps"], "mask steps": network_cfg["mask"]["steps"],
                "mask lr": network_cfg["mask"]["lr"]}
        committed = Path(root or reference.DEFAULT_AUTHORS_ROOT) / experiment / "cpu" / "comparison.csv"
        theirs, ours = reference.settings_text(reference.authors_settings(found)), reference.settings_text(ours)
        if not committed.is_file():
            return f"The authors' code was run at other settings ({theirs}) than ours here ({ours}): not compared."
        print(f"The authors' code runs a fixed budget ({theirs}); this chapter's run stops at target / when settled "
              f"({ours} are maxima). Below: ours run at the authors' fixed budget "
              f"(committed beside their results, results/authors/{experiment}/cpu/) against theirs.")
        return _explain(experiment, pd.read_csv(committed).reindex(columns=cols), found, root).round(3)
    cmp = reference.compare_accuracy(pd.DataFrame(accuracy), found["accuracy"])
    return _explain(experiment, cmp[cols], found, root).round(3)


def verdicts_beside_authors(experiment: str, tables: dict, cfg: dict, network_cfg: dict | None = None,
                            root=None) -> str:
    """Whether the gaps beside the authors' code change a verdict (:func:`wmask.book.claims.verdicts_beside`), on
    our run at their settings: ``tables`` and ``cfg`` when ``network_cfg`` (the compared network's config; None:
    the run is at their settings) matches theirs, else our committed run at their fixed budget
    (``results/authors/<experiment>/cpu/ours-fixed-budget``). "" when there is nothing to compare."""
    import pandas as pd

    from . import authors as reference
    from .claims import verdicts_beside
    from ..experiments.runner import EXPERIMENTS
    found, folder = reference.find_authors(experiment, root)
    if found is None or folder != "cpu":
        return ""
    if network_cfg is None or reference.same_settings(found, network_cfg):
        return verdicts_beside(experiment, tables, cfg, found)
    folder = Path(root or reference.DEFAULT_AUTHORS_ROOT) / experiment / "cpu" / "ours-fixed-budget"
    summary = _summary_in(folder)
    if summary is None:
        return ""
    runs = summary["runs"]
    tables = {k: pd.DataFrame(v) for k, v in EXPERIMENTS[experiment].tables(runs).items()}
    return (f"Compared at the authors' fixed budget (ours: results/authors/{experiment}/cpu/{folder.name}). "
            + verdicts_beside(experiment, tables, runs[0]["config"], found))


def _explain(experiment: str, table, found: dict, root=None):
    """``table`` with, for each number outside the authors' spread, ``explained by`` (and our number under the
    authors' whole protocol) from our runs under their protocol (:func:`wmask.book.authors.explained`)."""
    from . import authors as reference
    gaps = table[table.verdict == reference.OUTSIDE]
    if gaps.empty:
        return table
    results = Path(root).parent if root else reference.DEFAULT_AUTHORS_ROOT.parent
    why = reference.explained(experiment, gaps, found, results)
    table = table.assign(**{"under the authors' protocol": float("nan"), "explained by": ""})
    for col in ("under the authors' protocol", "explained by"):
        table.loc[why.index, col] = why[col]
    protocol = table["under the authors' protocol"].round(3)
    return table.assign(**{"under the authors' protocol": protocol.astype(object).where(protocol.notna(), "")})


def clipping_table(tables: dict, networks: dict, a: str, b: str):
    """The two clipping behaviours on one base network: for every network named ``*_masks_clip`` and the one it is
    named after, how much subtask ``a``'s mask keeps, how much it overlaps ``b``'s, and the masks' accuracies (mean
    over seeds). None when the run has no such pair."""
    import pandas as pd
    acc = tables["accuracy"].groupby(["network", "mask", "evaluated on"]).accuracy.mean()
    rows = []
    for variant in [n for n in networks if n.endswith("_masks_clip")]:
        for net in (variant[: -len("_masks_clip")], variant):
            t = tables["layers"][(tables["layers"].network == net) & (tables["layers"].layer == "total")]
            rows.append({"network": net, "clip_mode": networks[net]["mask"]["clip_mode"],
                         f"kept by {a} (% of weights)": 100 * (t[f"kept {a}"] / t["size"]).mean(),
                         f"IoU({a}, {b})": t.IoU.mean(), f"{a} mask on {a}": acc[net, a, a],
                         f"{b} mask on {b}": acc[net, b, b], f"¬{a} on {b}": acc[net, f"¬{a}", b]})
    return pd.DataFrame(rows).round(3) if rows else None


def show_evidence(tables: dict, by: str | None = "network",
                  title: str = "Mask training, mean over seeds (band: min..max)") -> None:
    """A chapter's "can this run carry the claims?" evidence: :func:`evidence_table`, then the masks' training
    curves."""
    from IPython.display import display

    from .plots import plot_curves
    display(evidence_table(tables, by))
    plot_curves(tables["curves"], by=by, title=title)


def evidence_table(tables: dict, by: str | None = "network"):
    """Per network (``by``; ``None`` for a one-network experiment) and seed: the base network's accuracy against its
    target and, per mask, whether its training curve settled (:mod:`wmask.evidence`), with the final kept fraction."""
    import pandas as pd

    from .. import evidence
    base, settled = pd.DataFrame(tables["base"]), evidence.settling(tables["curves"])
    keys = [by] if by else []
    rows = []
    for key, b in base.groupby(keys + ["seed"], sort=False):
        key = key if isinstance(key, tuple) else (key,)
        row = dict(zip(keys + ["seed"], key))
        row["base vs target"] = ", ".join(f"{s} {a:.3f}/{t:g}" for s, a, t in zip(b.subtask, b.accuracy, b.target))
        row["base at target"] = not evidence.below_target(dict(zip(b.subtask, b.accuracy)),
                                                          dict(zip(b.subtask, b.target)))
        mine = settled
        for k, v in zip(keys + ["seed"], key):
            mine = mine[mine[k] == v]
        for _, r in mine.iterrows():
            row[f"{r['mask']}: kept, settled"] = (f"{r['kept']:.3f}, {'yes' if r['converged'] else 'NO'} "
                                                  f"(moved {100 * r['kept_change']:.1f} pts)")
        rows.append(row)
    return pd.DataFrame(rows)


def reuse_by_width(summary: dict) -> dict:
    """A committed run (a summary) as one row of the chapter's width comparison: the hidden widths, the overrides of
    the preset it ran with, the seeds, the tasks at the target with a settled mask, the mean share of a later task's
    kept weights (tasks 1 on) that earlier tasks use in each layer from 2 on, for the first new-weight init, the
    verdict of its "little reuse" check alone (the claim's other checks are on the first layer), and the claim's."""
    import pandas as pd

    from ..experiments.runner import EXPERIMENTS
    from . import claims
    from .checks import later_reuse
    tb = {k: pd.DataFrame(v) for k, v in EXPERIMENTS["permuted_mnist"].tables(summary["runs"]).items()}
    cfg = summary["runs"][0]["config"]
    t, reuse = tb["tasks"], tb["reuse"]
    init = cfg["new_inits"][0]
    later = later_reuse(reuse[reuse["new init"] == init]).groupby("layer").reused.mean()
    t = t[t["new init"] == init]
    ok = (t.accuracy >= cfg["target"]) & t.settled.astype(bool)
    changed = ", ".join(f"{k}={v}" for k, v in (summary.get("overrides") or {}).items()) or "none"
    lines = claims.check("permuted-no-reuse", tb, cfg)
    return {"hidden": "-".join(map(str, cfg["hidden"])), "overrides": changed, "seeds": len(summary["seeds"]),
            "new init": init,
            "tasks at target, settled": f"{int(ok.sum())}/{len(t)}",
            **{f"layer {layer} reused": round(float(x), 3) for layer, x in later.items()},
            "little reuse": str(claims.tally([ln for ln in lines if ln.detail.startswith(f"init {init:g}: share")])),
            "verdict": str(claims.tally(lines))}
