"""The store of reusable artefacts: keyed by configuration and code version, exact resume of the random state,
named errors for foreign, stale or truncated files; concurrent runs of one results folder."""
import dataclasses
import json
import threading
import time

import pytest
import torch

from wmask.experiments import runner, store
from wmask.__main__ import main
from wmask.masks import MaskSet
from wmask.train import History


def _net():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))


def test_network_is_reused_and_the_random_state_continues_as_if_trained(tmp_path):
    s, calls = store.Store(tmp_path), []

    def train(model):
        calls.append(1)
        with torch.no_grad():
            model[0].weight.add_(torch.randn(4, 3))      # training draws from the global random state
        return {"acc": 0.5}

    a = _net()
    torch.manual_seed(1)
    assert s.network("base", a, {"w": 1}, lambda: train(a)) == {"acc": 0.5}
    after_training = torch.rand(3)
    b = _net()
    torch.manual_seed(123)                                  # whatever the state: reuse restores the stored one
    assert s.network("base", b, {"w": 1}, lambda: train(b)) == {"acc": 0.5} and len(calls) == 1
    assert torch.equal(torch.rand(3), after_training)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    with pytest.raises(ValueError, match=r"different configuration \(w: 1 -> 2\)"):
        s.network("base", b, {"w": 2}, lambda: train(b))


def test_masks_are_reused_in_model_order(tmp_path):
    net = torch.nn.LSTM(3, 4, num_layers=1)
    s = store.Store(tmp_path)

    def train():
        ms = MaskSet(net, 2, seed=0)
        return ms, History(step=[0], loss=[[1.0, 1.0]], kept=[[1.0, 1.0]])
    first, hist = s.masks("m", {"k": 1}, net, train)
    again, hist2 = s.masks("m", {"k": 1}, net, lambda: pytest.fail("retrained"))
    assert list(again) == list(first) == ["weight_ih_l0", "weight_hh_l0"] and hist2 == hist
    assert all(torch.equal(first[n], again[n]) for n in first)


def test_stale_code_is_refused_unless_asked(tmp_path, monkeypatch):
    s = store.Store(tmp_path)
    assert s.json(tmp_path / "r.json", {"a": 1}, lambda: {"x": 1})["x"] == 1
    files = dict(store.code_files())
    files["wmask/train.py"] = "0" * 32
    monkeypatch.setattr(store, "code_files", lambda: files)
    with pytest.raises(ValueError, match=r"another version of wmask \(changed since: wmask/train.py\).*--stale"):
        store.Store(tmp_path).json(tmp_path / "r.json", {"a": 1}, lambda: {"x": 2})
    assert store.Store(tmp_path, "reuse").json(tmp_path / "r.json", {"a": 1}, lambda: {"x": 2})["x"] == 1
    assert store.Store(tmp_path, "recompute").json(tmp_path / "r.json", {"a": 1}, lambda: {"x": 2})["x"] == 2
    files["wmask/experiments/tasks/addmul.py"] = "1" * 32                    # a preset changed: other code, other config
    assert store.Store(tmp_path, "recompute").json(tmp_path / "r.json", {"a": 2}, lambda: {"x": 3})["x"] == 3
    with pytest.raises(ValueError, match=r"different configuration \(a: 2 -> 4\)"):     # same code: never overwritten
        store.Store(tmp_path, "recompute").json(tmp_path / "r.json", {"a": 4}, lambda: {"x": 4})


def test_truncated_and_legacy_files_are_named(tmp_path):
    s = store.Store(tmp_path)
    (tmp_path / "r.json").write_text('{"x": 1, "st')
    with pytest.raises(ValueError, match=r"r.json is not valid JSON.*truncated"):
        s.json(tmp_path / "r.json", {}, lambda: {})
    (tmp_path / "base.pt").write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(ValueError, match=r"cannot read .*base.pt.*truncated"):
        s.network("base", _net(), {}, lambda: None)
    (tmp_path / "old.json").write_text(json.dumps({"x": 1}))      # written before keys were stored
    with pytest.raises(ValueError, match="older wmask"):
        s.json(tmp_path / "old.json", {}, lambda: {})


def test_a_seed_being_run_elsewhere_is_refused_and_summaries_merge(tmp_path, capsys):
    out = tmp_path / "planted" / "smoke"
    with runner.locked(out / ".seed0.lock", "seed 0", wait=False):
        assert main(["run", "planted", "--preset", "smoke", "--results", str(tmp_path), "--quiet"]) == 2
        assert "being run by another process" in capsys.readouterr().err
    # two runs of different seeds at the same time: the summary keeps both
    threads = [threading.Thread(target=runner.run, args=("planted", "smoke", [s], tmp_path),
                                kwargs={"progress": False}) for s in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["seeds"] == [0, 1] and [r["seed"] for r in summary["runs"]] == [0, 1]
    assert summary["runs"][0]["commit"]                        # each seed records its commit


def test_empty_seed_range_leaves_existing_results_alone(tmp_path, capsys):
    assert main(["run", "planted", "--preset", "smoke", "--results", str(tmp_path), "--quiet"]) == 0
    before = (tmp_path / "planted/smoke/summary.json").read_text()
    assert main(["run", "planted", "--preset", "smoke", "--seeds", "3-1", "--results", str(tmp_path)]) == 2
    assert (tmp_path / "planted/smoke/summary.json").read_text() == before


def test_wall_clock_sums_the_periods_of_one_key_and_survives_an_error(tmp_path):
    """The ledger: topped up while running (background thread) and on leaving, even by an error; a second period
    of the same key adds to the first; another key starts afresh."""
    ledger, key = tmp_path / ".t.json", {"seed": 0}
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt), store.wall_clock(ledger, key, every=0.02):
        time.sleep(0.15)
        mid = json.loads(ledger.read_text())    # the first write is at 0 s: a later one is the beat's
        assert mid["periods"] == 1 and 0.02 <= mid["seconds"] <= time.monotonic() - start
        raise KeyboardInterrupt
    first = json.loads(ledger.read_text())["seconds"]
    assert first >= 0.15
    with store.wall_clock(ledger, key) as clock:
        time.sleep(0.05)
    seconds, periods = clock()
    assert periods == 2 and seconds >= first + 0.05
    assert json.loads(ledger.read_text()) == {"key": key, "seconds": seconds, "periods": 2}
    with store.wall_clock(ledger, {"seed": 1}) as clock:
        pass
    assert clock()[1] == 1 and clock()[0] < first


def test_a_run_killed_and_rerun_reports_the_time_of_both_periods(tmp_path, monkeypatch):
    """A seed's wall_time_s is the sum of every process that computed it, not the last one's; the ledger goes once
    the result is stored, so a later recomputation starts from zero."""
    exp = runner.EXPERIMENTS["planted"]
    real, calls = exp.run, []

    def killed_once(*a, **k):
        calls.append(1)
        if len(calls) == 1:
            time.sleep(1.0)
            raise KeyboardInterrupt
        return real(*a, **k)
    monkeypatch.setitem(runner.EXPERIMENTS, "planted", dataclasses.replace(exp, run=killed_once))
    args = dict(seeds=[0], results=tmp_path, progress=False, threads=1)
    with pytest.raises(KeyboardInterrupt):
        runner.run("planted", "smoke", **args)
    assert list((tmp_path / "planted/smoke").glob(".seed0.time.json"))
    t0 = time.monotonic()
    run, = runner.run("planted", "smoke", **args)["runs"]
    second = time.monotonic() - t0
    assert run["work_periods"] == 2 and 1.0 <= run["wall_time_s"] - second + 0.05 < 2.0
    assert not list((tmp_path / "planted/smoke").glob(".seed*.time.json"))
