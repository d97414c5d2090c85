"""Where regenerating the committed results spends its time, from the runs' own records.

Every seed of a run records its wall time (``wall_time_s`` in ``results/<experiment>/<folder>/summary.json``,
summed over the processes that worked on it) and, since the runs record it, ``stage_seconds``: the seconds spent
computing its networks (``base``), its masks (``masks``) and other stored stages (``other``, e.g. null models);
the rest of the wall time is evaluation. ``python -m wmask.book.timing [RESULTS]`` prints the table."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from .report import repo_root

STAGES = ("base", "masks", "other", "evaluation")


def regeneration_rows(root: str | Path | None = None) -> list[dict]:
    """One row per committed results folder: ``experiment``, ``folder``, ``device``, ``seeds``, ``minutes`` (the
    seeds' wall time together) and, per stage of :data:`STAGES`, its minutes or None where the runs did not record
    it. A folder whose seeds were merged from several runs counts each run's time once."""
    root = Path(root) if root else repo_root() / "results"
    rows = []
    for path in sorted(root.glob("*/*/summary.json")):
        summary = json.loads(path.read_text())
        runs = summary.get("runs", [])
        total = sum(r.get("wall_time_s", 0.0) for r in runs)
        row = {"experiment": path.parent.parent.name, "folder": path.parent.name,
               "device": summary.get("provenance", {}).get("device", ""), "seeds": [r.get("seed") for r in runs],
               "minutes": total / 60, **dict.fromkeys(STAGES)}
        if runs and all("stage_seconds" in r for r in runs):
            for kind in STAGES[:-1]:
                row[kind] = sum(r["stage_seconds"].get(kind, 0.0) for r in runs) / 60
            row["evaluation"] = row["minutes"] - sum(row[k] for k in STAGES[:-1])
        rows.append(row)
    return rows


def markdown(rows: list[dict]) -> str:
    """The rows as a markdown table, stages as minutes (``–``: not recorded), with the total."""
    fmt = lambda v: "–" if v is None else f"{v:.0f}"   # noqa: E731
    lines = ["| experiment | results folder | seeds | minutes | base | masks | other | evaluation |",
             "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['experiment']} | {r['folder']} | {', '.join(map(str, r['seeds']))} | {r['minutes']:.0f} | "
              + " | ".join(fmt(r[k]) for k in STAGES) + " |" for r in rows]
    total = sum(r["minutes"] for r in rows)
    lines.append(f"| **all** | | | **{total:.0f}** ({total / 60:.1f} h) | | | | |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(markdown(regeneration_rows(sys.argv[1] if len(sys.argv) > 1 else None)), end="")
