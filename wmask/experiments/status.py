"""Is each committed result still what this code computes? (``python -m wmask status``)

Every seed's result records the md5 of the source files that computed it. A results folder is *current* when, for
every seed, each file that computes its experiment today (:mod:`wmask.experiments.fingerprint`) has the md5 recorded;
otherwise
it is *stale*, naming the files changed since. Stale results are still shown by the book, with that word in their
caption: regenerate them with ``make results PRESET=<preset> EXP=<experiment>``.
"""
from __future__ import annotations

import functools
import hashlib
import json
import subprocess
from pathlib import Path

from .fingerprint import PACKAGE, changed, code_md5

AUTHORS = "authors"      # results/authors/: the authors' released code run beside ours, not keyed by our code


def summaries(root: str | Path) -> list[Path]:
    """Every ``<root>/<experiment>/<folder>/summary.json`` of our runs, sorted."""
    return sorted(p for p in Path(root).glob("*/*/summary.json") if p.parts[-3] != AUTHORS)


@functools.lru_cache(maxsize=None)
def _at_commit(commit: str, path: str) -> bytes | None:
    """``path`` as it was at ``commit`` in the checkout holding the package, or None (no git, unknown commit)."""
    try:
        out = subprocess.run(["git", "show", f"{commit}:{path}"], cwd=PACKAGE.parent, capture_output=True,
                             timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


def _same_code(path: str, recorded: str | None, commit: str, now: str) -> bool:
    """Whether the file that made a result (``recorded`` md5 at ``commit``) has the code of today's (``now``, its
    :func:`~wmask.experiments.fingerprint.code_md5`). Results made before fingerprints left out comments and docstrings
    recorded the raw md5: the file is then read back from git at that commit (and checked against the recorded
    md5) to compare its code."""
    if recorded == now:
        return True
    if recorded is None or commit.endswith("+dirty"):
        return False
    old = _at_commit(commit, path)
    return old is not None and hashlib.md5(old).hexdigest() == recorded and code_md5(old) == now


def stale_files(summary: dict) -> list[str]:
    """The computing files (:func:`wmask.experiments.fingerprint.computing_files`) whose code differs from what any
    seed of
    ``summary`` was made by; empty when the summary is current."""
    from .runner import code_of, experiment_of
    files = code_of(experiment_of(summary["experiment"]))
    stale = set()
    for r in summary["runs"]:
        recorded = r.get("store", {}).get("code_files") or {}
        stale |= {f for f in changed(recorded, files)
                  if not _same_code(f, recorded.get(f), r.get("commit", ""), files[f])}
    return sorted(stale)


def word(summary: dict) -> str:
    """``current``, or ``stale: computing code changed in <files>`` (the word a chapter's caption carries)."""
    files = stale_files(summary)
    if not files:
        return "current"
    shown = ", ".join(f.removeprefix("wmask/") for f in files[:4])
    return f"stale: computing code changed in {shown}{f' and {len(files) - 4} more' if len(files) > 4 else ''}"


def row(path: Path) -> dict:
    """One line of the status table for the summary at ``path``."""
    s = json.loads(Path(path).read_text())
    p, runs = s["provenance"], s["runs"]
    commits = sorted({c[:7] for r in runs for c in (r.get("made_by") or {"": r.get("commit", "")}).values()})
    return {"experiment": s["experiment"], "folder": path.parent.name,
            "overrides": ", ".join(f"{k}={v}" for k, v in (s.get("overrides") or {}).items()),
            "seeds": ",".join(map(str, s["seeds"])), "commit": ",".join(commits),
            "wall time": f"{sum(r.get('wall_time_s', 0.0) for r in runs) / 60:.0f} min",
            "device": p.get("device", ""), "status": word(s)}


def table(rows: list[dict]) -> str:
    """Rows as an aligned text table."""
    if not rows:
        return "(no results)"
    cols = [c for c in rows[0] if any(r[c] for r in rows)]
    width = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in cols}
    lines = ["  ".join(c.ljust(width[c]) for c in cols), "  ".join("-" * width[c] for c in cols)]
    return "\n".join(lines + ["  ".join(str(r[c]).ljust(width[c]) for c in cols) for r in rows])


def authors_rows(root: str | Path) -> list[dict]:
    """The authors' code's committed runs (``results/authors/<experiment>/<folder>``): their commit, not ours."""
    rows = []
    for path in sorted(Path(root).glob(f"{AUTHORS}/*/*/summary.json")):
        p = json.loads(path.read_text()).get("provenance", {})
        rows.append({"experiment": path.parts[-3], "folder": path.parent.name,
                     "authors' commit": str(p.get("authors_commit", ""))[:7]})
    return rows
