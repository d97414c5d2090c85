import json

import pytest

from wmask import runner
from wmask.__main__ import main


def test_parse_seeds():
    assert runner.parse_seeds("0,1, 2") == [0, 1, 2] and runner.parse_seeds("3-5") == [3, 4, 5]
    with pytest.raises(ValueError, match="cannot read 'x'"):
        runner.parse_seeds("1,x")


def test_unknown_experiment_and_preset_are_named(capsys):
    assert main(["run", "nope"]) == 2 and "unknown experiment 'nope'" in capsys.readouterr().err
    assert main(["run", "planted", "--preset", "huge"]) == 2
    assert "unknown preset 'huge'" in capsys.readouterr().err
    assert main(["run", "planted", "--seeds", "a"]) == 2


def test_run_writes_results_with_provenance_and_reuses_them(tmp_path, capsys):
    assert main(["run", "planted", "--preset", "smoke", "--seeds", "0", "--results", str(tmp_path), "--quiet"]) == 0
    summary = json.loads((tmp_path / "planted/smoke/summary.json").read_text())
    assert summary["preset"] == "smoke" and summary["seeds"] == [0]
    assert {"commit", "torch", "device", "wall_time_s"} <= set(summary["provenance"])
    seed_file = tmp_path / "planted/smoke/seed0.json"
    first = seed_file.read_text()
    assert main(["run", "planted", "--preset", "smoke", "--seeds", "0", "--results", str(tmp_path), "--quiet"]) == 0
    assert seed_file.read_text() == first  # reused, not recomputed
    data = json.loads(first)
    data["store"]["key"]["config"]["hidden"] = 99
    seed_file.write_text(json.dumps(data))
    assert main(["run", "planted", "--preset", "smoke", "--seeds", "0", "--results", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "different configuration" in err and "config.hidden: 99 -> 16" in err
