"""wmask.book.reach: the log-linear projection against planted curves, and the runs read from committed results."""
import json
import math

import numpy as np
import pandas as pd

from wmask.book import reach
from wmask.book.report import repo_root


def test_steps_to_recovers_a_planted_log_linear_curve():
    steps = [1000, 2000, 4000, 8000, 16000]
    acc = [0.1 + 0.2 * math.log10(s / 1000) for s in steps]            # 0.5 at 10^(0.4/0.2) * 1000 = 100,000
    assert math.isclose(reach.steps_to(steps, acc, 0.5), 100_000, rel_tol=1e-9)
    assert math.isclose(reach.steps_to(steps, acc, 0.5, last=3), 100_000, rel_tol=1e-9)


def test_steps_to_is_nan_without_a_rising_trend_or_enough_points():
    assert math.isnan(reach.steps_to([1000, 2000, 3000], [0.3, 0.2, 0.1], 0.5))
    assert math.isnan(reach.steps_to([1000, 2000, 3000], [0.2, 0.2, 0.2], 0.5))
    assert math.isnan(reach.steps_to([1000, 2000], [0.1, 0.2], 0.5))


def test_projection_means_over_seeds_and_prices_the_steps():
    rows = [{"run": "r", "folder": "cpu", "network": "m", "seed": seed, "step": s, "test": "hard", "s_per_step": 0.5,
             "accuracy": 0.2 * math.log10(s / 1000) + (0.05 if seed else -0.05)}
            for seed in (0, 1) for s in (1000, 10_000, 100_000)]
    p = reach.projection(pd.DataFrame(rows), 0.6).iloc[0]
    assert math.isclose(p["projected steps to target"], 1e6, rel_tol=1e-9)   # mean curve 0.2 log10(s/1000)
    assert math.isclose(p["projected hours"], 1e6 * 0.5 / 3600, rel_tol=1e-9)
    assert p.steps == 100_000 and math.isclose(p["best hard"], 0.4) and math.isclose(p["base minutes"], 100_000 * 0.5 / 60)


def test_run_label_names_what_the_run_trained():
    cfg = {"networks": {"comparison__sort": {}}, "net": {"d": 64, "enc_layers": 2, "dec_layers": 2},
           "base": {"steps": 5000}}
    assert reach.run_label(cfg) == "sort: d 64, 2+2 layers, 5,000 steps"


def test_runs_read_the_committed_preset_run():
    summary = json.loads((repo_root() / "results/dm_math/cpu/summary.json").read_text())
    ev = reach.runs("dm_math", "cpu")
    mine = ev[ev.folder == "cpu"]
    r = summary["runs"][0]
    assert set(mine.test) == {"easy", "medium", "hard"} and (mine.run == reach.run_label(summary["runs"][0]["config"])).all()
    assert np.allclose(mine.s_per_step, r["stage_seconds"]["base"] / r["config"]["base"]["steps"])
    assert mine.step.max() == r["config"]["base"]["steps"]


def test_verdicts_beside_names_the_claims_whose_verdicts_differ(monkeypatch):
    from wmask.book import authors, claims, report
    from wmask.book.verdict import Line
    keys = [c.key for c in claims.CLAIMS if c.experiment == "double_addition"]
    ours = {keys[0]: [Line(True, "a")], keys[1]: [Line(False, "b"), Line(True, "c")], keys[2]: [Line(None, "d", "why")]}
    theirs = {keys[0]: [Line(True, "a")], keys[1]: [Line(True, "b"), Line(True, "c")], keys[2]: [Line(True, "d")]}
    monkeypatch.setattr(authors, "find_authors", lambda e, root=None: ({}, "cpu"))
    monkeypatch.setattr(claims, "check", lambda key, t, c: ours[key])
    monkeypatch.setattr(claims, "authors_check", lambda key, found, t=None: theirs[key])
    text = report.verdicts_beside_authors("double_addition", {}, {})
    assert f"{keys[1]}: ours **partly**, the authors' code **holds**" in text
    assert f"The verdicts of {keys[1]} differ" in text and f"({keys[2]}: untestable on one side" in text
    theirs[keys[1]] = ours[keys[1]]
    assert "No verdict that both can give differs" in report.verdicts_beside_authors("double_addition", {}, {})
    monkeypatch.setattr(authors, "find_authors", lambda e, root=None: ({}, "former-cpu"))
    assert report.verdicts_beside_authors("double_addition", {}, {}) == ""


def test_a_curve_that_met_the_target_reports_where_not_a_projection():
    rows = [{"run": "r", "folder": "cpu", "network": "m", "seed": 0, "step": s, "test": "hard", "s_per_step": 1.0,
             "accuracy": a} for s, a in ((1000, 0.0), (2000, 0.6), (3000, 0.55), (4000, 0.7))]
    p = reach.projection(pd.DataFrame(rows), 0.5)
    assert p.reached.iloc[0] and p["projected steps to target"].iloc[0] == 2000
    assert reach.formatted(p)["projected steps to target"].iloc[0] == "reached at 2,000"
