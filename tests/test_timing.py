"""The regeneration-time table reads each run's recorded wall time and stage times; the store records them."""
import json

import torch

from wmask.experiments.store import Store
from wmask.book.timing import markdown, regeneration_rows


def write(root, exp, folder, runs):
    (root / exp / folder).mkdir(parents=True)
    (root / exp / folder / "summary.json").write_text(json.dumps({"provenance": {"device": "cpu"}, "runs": runs}))


def test_rows_sum_the_seeds_and_split_the_stages_where_recorded(tmp_path):
    write(tmp_path, "scan", "cpu", [{"seed": 0, "wall_time_s": 600.0}, {"seed": 1, "wall_time_s": 1200.0}])
    write(tmp_path, "addmul", "cpu", [{"seed": 0, "wall_time_s": 600.0,
                                       "stage_seconds": {"base": 120.0, "masks": 300.0}},
                                      {"seed": 1, "wall_time_s": 60.0, "stage_seconds": {"other": 6.0}}])
    rows = {r["experiment"]: r for r in regeneration_rows(tmp_path)}
    assert rows["scan"]["minutes"] == 30 and rows["scan"]["seeds"] == [0, 1]
    assert rows["scan"]["base"] is None and rows["scan"]["evaluation"] is None
    a = rows["addmul"]
    assert (a["minutes"], a["base"], a["masks"], a["other"]) == (11, 2, 5, 0.1)
    assert abs(a["evaluation"] - 3.9) < 1e-9
    md = markdown(list(rows.values()))
    assert "| addmul | cpu | 0, 1 | 11 | 2 | 5 | 0 | 4 |" in md and "| scan | cpu | 0, 1 | 30 | – | – | – | – |" in md
    assert "**41** (0.7 h)" in md


def test_the_store_times_computed_stages_only(tmp_path):
    net = torch.nn.Linear(2, 2)
    store = Store(tmp_path)
    store.network("base", net, {"k": 1}, lambda: {"acc": 1.0})
    store.state("nulls", {"k": 1}, lambda: {"x": 1})
    assert set(store.seconds) == {"base", "other"} and all(s >= 0 for s in store.seconds.values())
    again = Store(tmp_path)
    again.network("base", net, {"k": 1}, lambda: {"acc": 1.0})
    assert again.seconds == {}
