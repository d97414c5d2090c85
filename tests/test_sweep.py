"""``python -m wmask sweep`` on a local Ray instance: the merged results equal a sequential run's, finished seeds
are reused, a task whose worker dies is retried, and a task that keeps dying is reported as failed."""
import json
import os
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from wmask.experiments import runner, sweep  # noqa: E402
from wmask.__main__ import main  # noqa: E402

VOLATILE = {"wall_time_s", "stage_seconds", "host", "device", "sha256"}   # where and how long (and checksums over them), not what


def numbers(obj):
    if isinstance(obj, dict):
        return {k: numbers(v) for k, v in obj.items() if k not in VOLATILE}
    if isinstance(obj, list):
        return [numbers(v) for v in obj]
    return obj


def test_sweep_equals_a_sequential_run_and_reuses(tmp_path):
    exps = [("planted", None), ("double_addition", None)]
    rows = sweep.sweep(exps, "smoke", [0, 1], tmp_path / "sweep", num_cpus=2, progress=False)
    assert [(r["experiment"], r["seed"], r["status"]) for r in rows] == [
        ("planted", 0, "finished"), ("planted", 1, "finished"),
        ("double_addition", 0, "finished"), ("double_addition", 1, "finished")]
    assert all(r["host"] and r["device"].startswith("cpu") for r in rows)
    for experiment, _ in exps:
        seq = runner.run(experiment, "smoke", [0, 1], tmp_path / "seq", threads=1, progress=False)
        swept = json.loads((tmp_path / "sweep" / experiment / "smoke" / "summary.json").read_text())
        assert swept["seeds"] == [0, 1]
        assert numbers(swept["runs"]) == numbers(seq["runs"])
        assert all(r["host"] for r in swept["runs"])            # provenance per seed: host and device
        for csv in (tmp_path / "seq" / experiment / "smoke").glob("*.csv"):
            assert (tmp_path / "sweep" / experiment / "smoke" / csv.name).read_text() == csv.read_text(), csv.name
    again = sweep.sweep(exps[:1], "smoke", [0, 1], tmp_path / "sweep", num_cpus=2, progress=False)
    assert [r["status"] for r in again] == ["reused", "reused"]


def _crash_once(marker_dir):
    """A ``run_seed`` whose first attempt of each task leaves a marker, then exits its worker process as if killed
    (no exception, no cleanup); Ray retries the task, and the retry finds the marker and runs."""
    original = sweep.run_seed

    def run_seed(experiment, model, preset, seed, *args):
        marker = Path(marker_dir) / f"{runner.label(experiment, model)}-{seed}"
        if not marker.exists():
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.touch()
            os._exit(1)
        return original(experiment, model, preset, seed, *args)
    return run_seed


def test_a_killed_task_is_retried_and_one_that_keeps_dying_fails(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sweep, "run_seed", _crash_once(tmp_path / "crashed"))    # what the Ray workers run
    rows = sweep.sweep([("planted", None)], "smoke", [0], tmp_path / "res", num_cpus=1, retries=1, progress=False)
    assert (tmp_path / "crashed" / "planted-0").exists()             # the first attempt died
    assert [r["status"] for r in rows] == ["finished"]               # the retry ran it
    assert (tmp_path / "res" / "planted" / "smoke" / "summary.json").exists()
    code = main(["sweep", "planted", "--preset", "smoke", "--seeds", "1", "--results", str(tmp_path / "res"),
                 "--num-cpus", "1", "--retries", "0", "--quiet"])
    out = capsys.readouterr().out
    assert code == 1 and "failed" in out and "rerun the same command" in out


def test_bad_sweeps_are_named_errors(capsys):
    with pytest.raises(ValueError, match="unknown experiment 'nope'"):
        sweep.parse_experiments("addmul,nope")
    assert sweep.parse_experiments("addmul,scan-transformer") == [("addmul", None), ("scan", "transformer")]
    assert main(["sweep", "addmul", "--preset", "smoke", "no.such.key=1"]) == 2
    assert "unknown key 'no.such.key' for addmul" in capsys.readouterr().err
