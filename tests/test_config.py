"""The experiment contract: paper defaults, presets as overrides, command-line overrides, ``show``, the runner's
folders and the checks on what a user types."""
import json
import os
import stat

import pytest

from wmask.experiments import config, runner
from wmask.__main__ import main
from wmask.experiments.experiment import Experiment
from wmask.experiments.tasks import addmul, planted, scan


def test_presets_are_overrides_of_the_paper_defaults():
    paper = addmul.EXPERIMENT.config("paper", 0)
    assert config.to_dict(paper) == config.to_dict(addmul.AddMulConfig())      # paper = the defaults
    cpu = addmul.EXPERIMENT.config("cpu", 3)
    assert cpu.seed == 3 and cpu.networks["fnn"].hidden == (400, 400, 200) and "fnn_big" not in cpu.networks
    lstm, tr = (scan.EXPERIMENT.config("paper", 0, m) for m in ("lstm", "transformer"))
    assert (lstm.model, tr.model, lstm.mask.alpha, tr.mask.alpha) == ("lstm", "transformer", 3e-5, 6e-4)


def test_overrides_apply_and_are_type_checked():
    cfg = addmul.EXPERIMENT.config("smoke", 0, overrides=config.parse_overrides(
        ["networks.fnn.mask.steps=50", "networks.fnn.hidden=[8, 8]", "sweep_alphas=[1e-3]"]))
    assert cfg.networks["fnn"].mask.steps == 50 and cfg.networks["fnn"].hidden == (8, 8)
    assert cfg.sweep_alphas == (1e-3,) and cfg.networks["fnn_xs"].mask.steps == 60   # the rest as the preset
    with pytest.raises(ValueError, match=r"unknown key 'networks.fnn.mask.stepz'.*did you mean steps.*valid keys "
                                         r"under 'networks.fnn.mask': steps, lr, alpha"):
        addmul.EXPERIMENT.config("smoke", 0, overrides={"networks.fnn.mask.stepz": 3})
    with pytest.raises(ValueError, match=r"valid keys under 'networks': fnn, fnn_xs, lstm, fnn_masks_clip"):
        addmul.EXPERIMENT.config("smoke", 0, overrides={"networks.fnx.mask.steps": 3})
    with pytest.raises(ValueError, match=r"networks.fnn.mask.steps='abc'.*could not be converted to Integer"):
        addmul.EXPERIMENT.config("smoke", 0, overrides={"networks.fnn.mask.steps": "abc"})
    with pytest.raises(ValueError, match="unknown clip_mode"):                   # the dataclass's own checks run
        addmul.EXPERIMENT.config("smoke", 0, overrides={"networks.fnn.mask.clip_mode": "weights"})
    with pytest.raises(ValueError, match="use --seeds"):
        addmul.EXPERIMENT.config("smoke", 0, overrides={"seed": 3})
    for bad in ("steps", "=3", "a b=3"):
        with pytest.raises(ValueError, match="cannot read override"):
            config.parse_overrides([bad])


def test_show_prints_the_resolved_config(capsys):
    assert main(["show", "scan", "--preset", "smoke", "mask.steps=77"]) == 0
    out = capsys.readouterr().out
    assert "model: lstm" in out and "steps: 77" in out and "buckets: 4" in out
    assert main(["show", "cifar10", "--preset", "cpu", "--model", "resnet"]) == 2   # absent: the error says why
    assert "cifar10-resnet has no 'cpu' preset: the ResNet-110 needs a GPU" in capsys.readouterr().err
    assert main(["show", "addmul", "--preset", "smoke", "networks.fnn.mask.stepz=3"]) == 2
    assert "valid keys" in capsys.readouterr().err
    assert main(["info", "a=b"]) == 2


def test_overrides_are_recorded_and_get_their_own_folder(tmp_path, capsys):
    args = ["run", "planted", "--preset", "smoke", "--results", str(tmp_path), "--quiet"]
    assert main(args + ["mask.steps=20"]) == 0
    folder = runner.folder_name("smoke", {"mask.steps": 20})
    assert folder.startswith("smoke+") and folder in capsys.readouterr().out
    summary = json.loads((tmp_path / "planted" / folder / "summary.json").read_text())
    assert summary["overrides"] == {"mask.steps": 20} == summary["provenance"]["overrides"]
    assert summary["runs"][0]["config"]["mask"]["steps"] == 20
    assert not (tmp_path / "planted" / "smoke").exists()          # never shares the preset's own folder
    mode = stat.S_IMODE(os.stat(tmp_path / "planted" / folder / "summary.json").st_mode)
    assert mode == 0o666 & ~_umask()                               # readable as any file the user writes


def _umask():
    m = os.umask(0)
    os.umask(m)
    return m


def test_seed_and_thread_errors_are_named(capsys):
    for text, msg in (("3-1", "is empty"), ("-1", "must be >= 0"), ("0,0", "given twice"), ("1,x", "cannot read 'x'")):
        with pytest.raises(ValueError, match=msg):
            runner.parse_seeds(text)
    assert main(["run", "planted", "--preset", "smoke", "--threads", "-2"]) == 2
    assert "--threads must be a positive integer, got '-2'" in capsys.readouterr().err


def test_thread_variable_is_checked(monkeypatch):
    from wmask.utils import set_threads
    monkeypatch.setenv("WMASK_THREADS", "abc")
    with pytest.raises(ValueError, match="WMASK_THREADS must be a positive integer, got 'abc'"):
        set_threads()


def test_results_path_that_is_a_file_is_one_line(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    assert main(["run", "planted", "--preset", "smoke", "--results", str(tmp_path / "file"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("wmask: error: cannot read or write") and "file" in err and len(err.splitlines()) == 1


def test_an_experiment_must_fulfil_the_contract():
    from dataclasses import dataclass

    @dataclass
    class NoSeed:
        x: int = 1

    with pytest.raises(TypeError, match="needs a 'seed' field"):
        Experiment("x", NoSeed, {"smoke": {}}, lambda *a: {})
    with pytest.raises(TypeError, match="need a 'model' config field"):
        Experiment("x", planted.PlantedConfig, {"a": {"smoke": {}}}, lambda *a: {}, models=("a",))
    with pytest.raises(TypeError, match="must be a dict of overrides"):
        Experiment("x", planted.PlantedConfig, {"smoke": 3}, lambda *a: {})
    for exp in runner.EXPERIMENTS.values():          # every registered experiment resolves every preset
        for model in exp.models or (None,):
            for preset in exp.preset_names(model):
                assert exp.config(preset, 0, model).seed == 0


def test_a_preset_an_experiment_lacks_says_why():
    exp = Experiment("x", planted.PlantedConfig, {"smoke": {}, "cpu": "its nets need a GPU"}, lambda *a: {})
    assert list(exp.preset_names()) == ["smoke"] and exp.absent("cpu") == "its nets need a GPU"
    with pytest.raises(ValueError, match="x has no 'cpu' preset: its nets need a GPU"):
        exp.config("cpu")
    with pytest.raises(ValueError, match="unknown preset 'gpu' for x; known: smoke$"):
        exp.config("gpu")


def test_interrupt_and_full_disk_say_what_to_do(tmp_path, monkeypatch, capsys):
    def interrupted(*a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr(runner, "run", interrupted)
    assert main(["run", "planted", "--preset", "smoke", "--results", str(tmp_path)]) == 130
    err = capsys.readouterr().err
    assert f"{tmp_path}/planted/smoke/seed<N>/" in err and "rerun the same command to resume" in err
    assert len(err.strip().splitlines()) == 1

    def full(obj, f):
        raise RuntimeError("[enforce fail at inline_container.cc:603] . unexpected pos 4096 vs 4082")
    monkeypatch.setattr("torch.save", full)
    from wmask.utils import atomic_torch_save
    with pytest.raises(OSError, match="is the disk full") as info:
        atomic_torch_save({}, tmp_path / "x.pt")
    assert info.value.filename.endswith("x.pt") and not list(tmp_path.glob(".x.pt*"))


def test_a_chapter_at_a_preset_its_experiment_lacks_runs_smoke_and_says_why():
    from wmask.book.report import preset_to_run
    assert preset_to_run("addmul", "cpu") == ("cpu", "")
    preset, note = preset_to_run("cifar10", "cpu", "resnet")
    assert preset == "smoke" and note.startswith("cifar10-resnet has no cpu preset: the ResNet-110 needs a GPU")
    assert "its numbers mean nothing" in note


@pytest.mark.parametrize("experiment, model, preset, expected", [
    ("cifar10", "cnn", "cpu", "CNN 32-64-128-256, 10000 base / 8000 control / 2000 class-removal mask steps at lr "
                              "0.01 (at most; stopped when settled)"),
    ("cifar10", "cnn", "paper", "CNN 32-64-128-256, 20000 base / 20000 mask steps at lr 0.001"),
    ("cifar10", "resnet", "paper", "ResNet-110, width 16, 64000 base / 30000 mask steps at lr 0.03"),
    ("scan", "lstm", "cpu", "LSTM encoder-decoder, hidden 128, 20000 base / 24000 mask steps at lr 0.03 (at most; "
                            "stopped when settled)"),
    ("scan", "transformer", "smoke", "Transformer 1+1 layers, d 32, 60 base / 12 mask steps at lr 0.01"),
    ("own_model", None, "cpu", "GPT-2 2 layers, d 64, 4 heads, 3000 base / 8000 mask steps at lr 0.01"),
])
def test_the_scale_line_names_the_network_and_its_steps(experiment, model, preset, expected):
    from wmask.book.report import scale
    kw = {} if model is None else {"model": model}
    label = runner.label(experiment, model)
    assert scale(label, config.to_dict(runner.EXPERIMENTS[experiment].config(preset, **kw))).startswith(expected)


def test_the_scale_line_names_cifars_own_control_steps():
    from wmask.book.report import scale
    cfg = config.to_dict(runner.EXPERIMENTS["cifar10"].config("cpu", overrides={"control_steps": 3000}))
    assert scale("cifar10", cfg) == ("CNN 32-64-128-256, 10000 base / 3000 control / 2000 class-removal mask steps at lr 0.01 "
                          "(at most; stopped when settled)")
    cfg = config.to_dict(runner.EXPERIMENTS["cifar10"].config("cpu", overrides={"control_steps": 0}))
    assert scale("cifar10", cfg).startswith("CNN 32-64-128-256, 10000 base / 2000 mask steps")
