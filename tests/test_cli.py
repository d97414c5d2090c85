import json

import pytest

from wmask.experiments import runner
from wmask.__main__ import main
from wmask.experiments.store import sealed


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
    again = runner.run("planted", "smoke", [0], tmp_path, progress=False)
    assert again["computed"] == [] and again["runs"][0] == json.loads(first)   # what a sweep reports as "reused"
    assert runner.run("planted", "smoke", [0], tmp_path / "new", progress=False)["computed"] == [0]
    data = json.loads(first)
    data["store"]["key"]["config"]["hidden"] = 99
    seed_file.write_text(json.dumps(sealed(data)))   # as if made so
    assert main(["run", "planted", "--preset", "smoke", "--seeds", "0", "--results", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "different configuration" in err and "config.hidden: 99 -> 16" in err


def test_networks_selects_part_of_a_preset_and_the_summary_merges_selections(tmp_path, capsys):
    """--networks runs some of a preset's networks (how a CPU runs the paper preset's smallest FNN); selections
    of one seed land in their own files, and the summary merges them into one run per seed."""
    from wmask.book.checks import _main_nets
    args = ["run", "addmul", "--preset", "smoke", "--results", str(tmp_path), "--quiet", "--threads", "1"]
    assert main([*args, "--networks", "nope"]) == 2
    assert "unknown network 'nope' for addmul at smoke; known: fnn, fnn_xs" in capsys.readouterr().err
    assert main(["run", "planted", "--preset", "smoke", "--networks", "fnn"]) == 2
    assert "planted has no networks to select from" in capsys.readouterr().err
    assert main([*args, "--networks", "fnn_masks_clip"]) == 0
    assert main([*args, "--networks", "fnn_xs"]) == 0
    folder = tmp_path / "addmul/smoke"
    parts = {p.name: json.loads(p.read_text()) for p in folder.glob("seed0@*.json")}
    assert set(parts) == {"seed0@fnn_masks_clip.json", "seed0@fnn_xs.json"}
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["selected"] == ["fnn_masks_clip", "fnn_xs"] and summary["seeds"] == [0]
    run, = summary["runs"]
    assert set(run["networks"]) == {"fnn_xs", "fnn_masks_clip"} == set(run["config"]["networks"])
    assert run["config"]["size_study"] == ["fnn_xs"] and run["config"]["sweep_network"] == "" and run["sweep"] == []
    for name, part in parts.items():
        net = name[len("seed0@"):-len(".json")]
        assert run["networks"][net] == part["networks"][net]
    assert _main_nets(run["config"]) == ["fnn_xs"]
    acc = (folder / "accuracy.csv").read_text()
    assert "fnn_xs" in acc and "fnn_masks_clip" in acc
    # a chapter shows such a run, committed as the paper preset's, with what it is and its checks
    import shutil

    from wmask.book.report import show_paper_scale
    shutil.copytree(folder, tmp_path / "committed/addmul/paper")
    assert show_paper_scale("addmul", ["full", "+"], ["specialise"], tmp_path / "nothing").startswith("No run")
    seen = show_paper_scale("addmul", ["full", "+"], ["specialise"], tmp_path / "committed")
    out = capsys.readouterr().out
    assert "preset smoke, networks fnn_masks_clip, fnn_xs only (partial: the rest needs a GPU), seeds [0]" in out
    assert seen.startswith("*specialise*: at preset paper") and "fnn_xs" in seen
    # a selection made by another version of the code joins the summary only with --stale reuse, named by its commit
    from wmask.book.report import partial_caption
    old = json.loads((folder / "seed0@fnn_xs.json").read_text())
    old["store"]["code"], old["commit"] = "0" * 16, "f" * 40
    old["store"]["code_files"]["wmask/train.py"] = "0" * 32
    (folder / "seed0@fnn_xs.json").write_text(json.dumps(sealed(old)))
    assert main([*args, "--networks", "fnn_masks_clip"]) == 0
    assert set(json.loads((folder / "summary.json").read_text())["runs"][0]["networks"]) == {"fnn_masks_clip"}
    assert main([*args, "--networks", "fnn_masks_clip", "--stale", "reuse"]) == 0
    summary = json.loads((folder / "summary.json").read_text())
    run, = summary["runs"]
    mine = parts["seed0@fnn_masks_clip.json"]["commit"]
    assert run["made_by"] == {"fnn_xs": "f" * 40, "fnn_masks_clip": mine}
    assert summary["provenance"]["made_by"] == sorted({"f" * 40, mine})
    caption = partial_caption(summary)
    assert "fffffff (fnn_xs)" in caption and f"{mine[:7]} (fnn_masks_clip)" in caption


def test_a_selection_held_by_a_larger_finished_one_is_not_run_again(tmp_path):
    """``--networks fnn_xs`` after ``--networks fnn_xs,fnn_masks_clip`` of the same seed reuses the larger result (the
    same settings, the same code); a larger result whose key or code differs does not stand for it."""
    root, cover = tmp_path, tmp_path / "addmul/smoke"
    both = runner.run("addmul", "smoke", [1], root, progress=False, threads=1, networks=["fnn_xs", "fnn_masks_clip"])
    assert both["computed"] == [1]
    again = runner.run("addmul", "smoke", [1], root, progress=False, threads=1, networks=["fnn_xs"])
    assert again["computed"] == [] and again["runs"] == both["runs"]
    assert not (cover / "seed1@fnn_xs.json").exists()
    larger, = cover.glob("seed1@*+*.json")
    made = json.loads(larger.read_text())
    for field, value in (("seed", 2), ("code", "0" * 16)):   # another seed's key, another code version: run again
        changed = json.loads(json.dumps(made))
        (changed["store"]["key"] if field == "seed" else changed["store"])[field] = value
        if field == "code":       # what tells code versions apart: the md5 of each computing file
            changed["store"]["code_files"]["wmask/train.py"] = "0" * 32
        larger.write_text(json.dumps(sealed(changed)))
        assert runner.run("addmul", "smoke", [1], root, progress=False, threads=1,
                          networks=["fnn_xs"])["computed"] == [1], field
        (cover / "seed1@fnn_xs.json").unlink()
    assert runner.run("addmul", "smoke", [1], root, progress=False, threads=1, networks=["fnn_xs"],
                      stale="reuse")["computed"] == []   # other code with --stale reuse: reused
