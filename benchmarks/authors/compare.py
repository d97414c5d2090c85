#!/usr/bin/env python3
"""Compare our committed cpu tables with the authors' code's (``results/authors/<experiment>/cpu/``).

    PYTHONPATH=. python benchmarks/authors/compare.py addmul double_addition

Writes ``results/authors/<experiment>/cpu/comparison.csv`` (accuracy, per network/mask/evaluated on; SCAN: exact
match per variant/test and the add-jump mask's removed % per output token) and ``comparison_layers.csv`` (IoU and
IoMin per tensor) with ``wmask.book.authors`` and prints them. The rule: |ours − theirs| ≤ max(2 × their sd, floor),
the floor 0.02 for accuracies, 0.04 for SCAN's exact match, 10 points for SCAN's removed % (see
``wmask/reference.py``).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(REPO))
from wmask.book import authors as reference  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("experiments", nargs="+")
    p.add_argument("--ours", default=str(REPO / "results"), help="our results root (default: the repo's results/)")
    p.add_argument("--authors", default=str(reference.DEFAULT_AUTHORS_ROOT))
    p.add_argument("--ours-dir", help="one folder of our tables instead of <ours>/<experiment>/cpu (one experiment)")
    p.add_argument("--tag", default="", help="suffix of the written files: comparison<_tag>.csv")
    p.add_argument("--network", help="keep only this network of ours (e.g. fnn)")
    args = p.parse_args(argv)
    pd.set_option("display.width", 200)
    pd.set_option("display.max_rows", 200)
    for exp in args.experiments:
        theirs = reference.load_authors(exp, args.authors)
        ours_dir = Path(args.ours_dir) if args.ours_dir else Path(args.ours) / exp / "cpu"
        tag = f"_{args.tag}" if args.tag else ""
        if theirs is None or not (ours_dir / "accuracy.csv").is_file():
            print(f"{exp}: nothing to compare (authors: {theirs is not None}, ours: {ours_dir.is_dir()})")
            continue
        out_dir = Path(args.authors) / exp / "cpu"
        ours = pd.read_csv(ours_dir / "accuracy.csv")
        if args.network:
            ours = ours[ours["network"] == args.network]
        if "network" in ours.columns:
            acc = reference.compare_accuracy(ours, theirs["accuracy"])
        else:        # SCAN: exact match per variant and test, and Fig. 4b's add-jump row per token
            removed = pd.read_csv(ours_dir / "removed.csv")
            acc = reference.compare_scan({"accuracy": ours, "removed": removed}, theirs)
        acc.to_csv(out_dir / f"comparison{tag}.csv", index=False)
        print(f"== {exp}: accuracy (ours {ours_dir}, theirs {out_dir})")
        print(acc.round(4).to_string(index=False))
        if theirs["layers"] is not None and (ours_dir / "layers.csv").is_file():
            ol = pd.read_csv(ours_dir / "layers.csv")
            if args.network:
                ol = ol[ol["network"] == args.network]
            parts = [reference.compare_tables(ol, theirs["layers"], ("network", "layer"), v).assign(value=v)
                     for v in ("IoU", "IoMin")]
            lay = pd.concat(parts, ignore_index=True)
            lay.to_csv(out_dir / f"comparison_layers{tag}.csv", index=False)
            print(f"== {exp}: per-tensor IoU / IoMin of the two subtask masks")
            print(lay.round(4).to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
