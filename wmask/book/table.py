"""The table of every claim, drawn from the committed results: the book's first page and the reproduction report
show the same rows.

For each claim (:data:`wmask.book.claims.CLAIMS`), each committed run of its experiment that can speak to it: the
cpu preset, the cpu preset with overrides (e.g. SCAN's masks given 24,000 steps), and the part of the paper preset a
CPU finished. Per run: our verdict, its decisive numbers, how many seeds give the same word on their own, the
authors' code's verdict where it ran at the same settings, and whether the run is still what this code computes.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ..experiments.runner import experiment_of, model_of
from ..experiments.status import word as status_word
from . import claims
from .verdict import UNTESTABLE

SCALES = ("cpu", "paper")          # the presets whose runs carry evidence (smoke only exercises the code)
CHAPTERS = {"planted": "notebooks/planted", "addmul": "notebooks/addmul",
            "double_addition": "notebooks/double_addition",
            "permuted_mnist": "notebooks/permuted_mnist", "cifar10": "notebooks/cifar10", "scan": "notebooks/scan",
            "scan-transformer": "notebooks/scan", "dm_math": "notebooks/dm_math",
            "clusterability": "notebooks/clusterability", "own_model": "notebooks/own_model"}


def runs_of(label: str, root: str | Path) -> list[tuple[str, dict]]:
    """``(scale, summary)`` for every committed run of ``label`` that carries evidence: ``cpu``, ``cpu`` with
    overrides (``cpu, mask.steps=24000``), ``paper`` (or the networks of it that ran)."""
    found = []
    for preset in SCALES:
        base = Path(root) / label
        for folder in [base / preset, *sorted(base.glob(f"{preset}+*"))]:
            path = folder / "summary.json"
            if not path.is_file():
                continue
            s = json.loads(path.read_text())
            over = ", ".join(f"{k}={v}" for k, v in (s.get("overrides") or {}).items())
            part = f" (networks {', '.join(s['selected'])})" if s.get("selected") else ""
            found.append((preset + (f", {over}" if over else "") + part, s))
    return found


def seeds_agreeing(claim: claims.Claim, summary: dict, word: str) -> str:
    """How many of the run's seeds, checked alone, give the claim the same word: ``"2/3"`` (``"1/1"`` for one);
    seeds that ran no part of this claim are not counted."""
    exp = experiment_of(claim.experiment)
    alone = []
    for r in summary["runs"]:
        try:
            lines = claim.lines(exp.tables([r]), r["config"])
        except (KeyError, AttributeError, IndexError):    # a part this seed did not run (e.g. seed 0's alignment)
            continue
        if lines:
            alone.append(claims.tally(lines).word)
    return f"{sum(w == word for w in alone)}/{len(alone)}" if alone else ""


def _numbers(lines, limit: int = 240) -> str:
    text = "; ".join(ln.detail for ln in lines)
    return text if len(text) <= limit else text[:limit - 1].rsplit(" ", 1)[0] + " …"


def _authors(claim: claims.Claim, scale: str, tables: dict):
    """The authors' code's :class:`~wmask.book.verdict.Verdict` on this claim where it ran at this run's settings
    (the plain cpu preset), else None."""
    from . import authors
    if scale != "cpu":        # the authors' code ran at the cpu preset's own settings
        return None
    found, folder = authors.find_authors(claim.experiment)
    if found is None or folder != "cpu":
        return None
    theirs = claims.tally(claims.authors_check(claim.key, found, tables))
    return None if theirs.word == "not run" else theirs


def claims_table(root: str | Path = "results") -> pd.DataFrame:
    """One row per claim and committed run (claims without a run: one row saying so)."""
    rows = []
    for claim in claims.CLAIMS:
        exp = experiment_of(claim.experiment)
        head = {"claim": claim.key, "family": claim.family, "statement": claim.claim, "where": claim.evidence,
                "chapter": CHAPTERS.get(claim.experiment, "")}
        runs = runs_of(claim.experiment, root)
        if not runs:
            why = exp.absent("cpu", model_of(claim.experiment))
            rows.append({**head, "run": "none", "verdict": UNTESTABLE, "our verdict": "untestable: no committed run"
                         + (f" ({why})" if why else ""), "brief": "untestable: no committed run",
                         "seeds agreeing": "", "numbers": "", AUTHORS: "", "authors brief": "", "status": ""})
            continue
        for scale, summary in runs:
            tables = exp.tables(summary["runs"])
            lines = claim.lines(tables, summary["runs"][0]["config"])
            if not lines:
                continue
            v, theirs = claims.tally(lines), _authors(claim, scale, tables)
            rows.append({**head, "run": scale, "verdict": v.word, "our verdict": str(v), "brief": v.brief,
                         "seeds agreeing": seeds_agreeing(claim, summary, v.word), "numbers": _numbers(lines),
                         AUTHORS: str(theirs or ""), "authors brief": theirs.brief if theirs else "",
                         "status": status_word(summary)})
    return pd.DataFrame(rows)


AUTHORS = "authors' code"
COLOURS = {"holds": "#d9f2d9", "partly": "#fff2cc", "does not hold": "#f8d7d3", "untestable": "#e8e8e8"}


def html(table: pd.DataFrame, link_prefix: str = "../") -> str:
    """The claims table as the book shows it, one row per claim: the claim and where the paper shows it; per
    committed run, our verdict (coloured by its word), the seeds agreeing and the decisive numbers (unfolded on a
    click); the authors' code's verdict; the chapter."""
    rows = []
    for key, group in table.groupby("claim", sort=False):
        r0 = group.iloc[0]
        chapter = (f'<a href="{link_prefix}{r0["chapter"]}.html">{r0["chapter"].split("/")[-1]}</a>'
                   if r0["chapter"] else "")
        runs = []
        for _, r in group.iterrows():
            stale = "" if r["status"] in ("", "current") else " (stale)"
            seeds = f", seeds {r['seeds agreeing']}" if r["seeds agreeing"] else ""
            numbers = (f'<details><summary>numbers</summary>{_esc(r["numbers"])}</details>'
                       if r["numbers"] else "")
            runs.append(f'<div style="background:{COLOURS.get(r["verdict"], "white")};padding:2px 4px;margin:2px 0">'
                        f'<b>{_esc(r["run"])}</b>{stale}: {_esc(r["brief"])}{seeds}{numbers}</div>')
        theirs = "<br>".join(_esc(t) for t in group["authors brief"] if t)
        rows.append(f'<tr><td>{_esc(r0["statement"])}<br><small>{_esc(r0["where"])}</small></td>'
                    f'<td>{"".join(runs)}</td><td>{theirs}</td><td>{chapter}</td></tr>')
    head = "".join(f"<th>{c}</th>" for c in ("claim", "our verdict, per committed run", "the authors' code",
                                             "chapter"))
    return (f'<table class="claims-table" style="font-size:0.8em;width:100%;table-layout:fixed">'
            f'<colgroup><col style="width:38%"><col style="width:40%"><col style="width:13%"><col style="width:9%">'
            f'</colgroup><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>')


def verdict_box(keys: list[str], tables: dict, cfg: dict, where: str) -> str:
    """The box a chapter opens with: each of its claims, our verdict on this chapter's run (coloured by its word)
    and the decisive numbers, then the run it comes from (HTML)."""
    items = []
    for key in keys:
        claim = claims.claim_of(key)
        lines = claim.lines(tables, cfg)
        v = claims.tally(lines)
        items.append(f'<li><b style="background:{COLOURS.get(v.word, "white")};padding:0 .3em">{_esc(v)}</b> '
                     f'{_esc(claim.claim)} <small>({_esc(claim.evidence)}; {_esc(_numbers(lines, 200))})</small></li>')
    return (f'<div class="admonition note"><p class="admonition-title">The answer, from the committed run</p>'
            f'<ul>{"".join(items)}</ul><p><small>{_esc(where)}</small></p></div>')


def _esc(text) -> str:
    import html as _html
    return _html.escape(str(text))
