"""Nothing silently wrong: overrides that keep what they do not name, values refused before anything trains, one-line
errors naming the file, key or value, checksummed artefacts, finished seeds a summary leaves out, input checks."""
import dataclasses
import errno
import json

import pytest
import torch

from wmask import config, runner
from wmask.__main__ import main


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("wmask: error: ") and len(err.splitlines()) == 1, err
    return err


# -- config: overrides and values -----------------------------------------------------------------------------------
def test_a_dict_override_keeps_the_preset_values_it_does_not_name():
    preset = runner.resolve("addmul", "smoke").networks["fnn"].mask
    assert preset.clip_mode == "all" and preset.steps != 7           # the preset's, not the paper default "masks"
    for overrides in ({"networks.fnn.mask": {"steps": 7}}, {"networks.fnn": {"mask": {"steps": 7}}},
                      config.parse_overrides(["networks.fnn.mask={steps: 7}"])):
        got = runner.resolve("addmul", "smoke", overrides=overrides).networks["fnn"]
        assert got.mask.steps == 7 and got.mask.clip_mode == "all" and got.mask.lr == preset.lr
        assert got.hidden == runner.resolve("addmul", "smoke").networks["fnn"].hidden
    nets = runner.resolve("double_addition", "smoke",
                          overrides={"networks": {"fnn": {"mask": {"steps": 7}}}}).networks   # a map: entries named
    assert list(nets) == ["fnn"] and nets["fnn"].mask.steps == 7 and nets["fnn"].mask.clip_mode == "all"


@pytest.mark.parametrize("override, named", [
    ("hidden=0", "hidden=0 must be >= 1"), ("hidden=-4", "hidden=-4 must be >= 1"),
    ("mask.lr=nan", "mask.lr=nan must be a finite number"), ("mask.lr=0", "mask.lr=0.0 must be > 0"),
    ("mask.steps=-1", "mask.steps=-1 must be >= 0"), ("mask.batch_size=0", "mask.batch_size=0 must be >= 1"),
])
def test_impossible_values_are_refused_before_anything_trains(override, named, tmp_path, capsys, monkeypatch):
    def trains(*a, **k):
        raise AssertionError("trained")
    monkeypatch.setitem(runner.EXPERIMENTS, "planted", dataclasses.replace(runner.EXPERIMENTS["planted"], run=trains))
    assert main(["run", "planted", "--preset", "smoke", "--results", str(tmp_path), override]) == 2
    assert named in one_line_error(capsys)
    assert not (tmp_path / "planted").exists()


def test_a_size_in_a_list_and_an_empty_networks_map_are_named(capsys):
    assert main(["show", "addmul", "--preset", "smoke", "networks.fnn.hidden=[64, 0]"]) == 2
    assert "networks.fnn.hidden=" in one_line_error(capsys)
    assert main(["show", "addmul", "--preset", "smoke", "networks={}"]) == 2
    err = one_line_error(capsys)
    assert "networks={} names no network" in err and "size" not in err and "--networks" in err
    assert main(["show", "addmul", "--preset", "smoke", "networks={fnn: {}}"]) == 2
    assert "size_study names networks ['fnn_xs'] that networks does not hold" in one_line_error(capsys)


def test_spaces_around_the_equals_sign_and_unclosed_yaml(capsys):
    assert config.parse_overrides(["mask.steps =5", "mask.lr= 0.5", " base_steps = 3 "]) == \
        {"mask.steps": 5, "mask.lr": 0.5, "base_steps": 3}
    assert main(["show", "planted", "--preset", "smoke", "mask.steps =5"]) == 0
    assert "steps: 5" in capsys.readouterr().out
    for bad in ("x=[1,2", "x={a: 1"):
        assert main(["show", "planted", "--preset", "smoke", bad]) == 2
        assert f"cannot read override {bad!r}" in one_line_error(capsys)


def test_an_option_value_with_an_equals_sign_is_not_an_override(tmp_path, monkeypatch, capsys):
    seen = {}

    def fake_run(experiment, preset, seeds, results, *a, **k):
        seen.update(results=results, overrides=k["overrides"])
        return {"experiment": experiment, "runs": [], "provenance": {"wall_time_s": 0.0}}
    monkeypatch.setattr(runner, "run", fake_run)
    folder = str(tmp_path / "R-x=1")
    assert main(["run", "planted", "--results", folder, "--preset", "smoke", "mask.steps=5", "--quiet"]) == 0
    assert seen == {"results": folder, "overrides": {"mask.steps": 5}}


def test_a_huge_seed_range_is_refused_with_the_reason(capsys):
    with pytest.raises(ValueError, match="'0-100000000' asks for 100,000,001 seeds; at most 10,000"):
        runner.parse_seeds("0-100000000")
    assert len(runner.parse_seeds("0-9999")) == 10_000
    assert main(["run", "planted", "--seeds", "0-100000000"]) == 2
    assert "at most 10,000" in one_line_error(capsys)
