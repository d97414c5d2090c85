"""Nothing silently wrong: overrides that keep what they do not name, values refused before anything trains, one-line
errors naming the file, key or value, checksummed artefacts, finished seeds a summary leaves out, input checks."""
import dataclasses
import errno
import json

import pytest
import torch

from wmask.experiments import config, runner
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
        return {"experiment": experiment, "runs": [], "computed": [], "provenance": {"wall_time_s": 0.0}}
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


# -- files: full disk, foreign JSON, damaged artefacts ---------------------------------------------------------------
def test_a_full_disk_while_saving_masks_is_one_line_naming_the_file(tmp_path, monkeypatch, capsys):
    from safetensors import SafetensorError

    from wmask.masks import save_masks
    target = tmp_path / "m.safetensors"

    def full(*a, **k):
        raise SafetensorError('Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "No '
                              'space left on device" })')
    monkeypatch.setattr("safetensors.torch.save_file", full)
    monkeypatch.setattr(runner, "run", lambda *a, **k: save_masks(target, {"w": torch.ones(2, dtype=torch.bool)}))
    assert main(["run", "planted", "--preset", "smoke", "--results", str(tmp_path)]) == 2
    err = one_line_error(capsys)
    assert str(target) in err and "disk full" in err and not list(tmp_path.glob(".m.safetensors*"))

    def enospc(self, *a, **k):      # a plain write: the OS error names no file
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr("pathlib.Path.write_text", enospc)
    from wmask.utils import atomic_write_text
    with pytest.raises(OSError) as info:
        atomic_write_text(tmp_path / "seed0.json", "{}")
    assert info.value.filename == str(tmp_path / "seed0.json") and info.value.errno == errno.ENOSPC


def test_a_seed_file_that_is_json_but_not_an_object_is_named(tmp_path, capsys):
    folder = tmp_path / "planted/smoke"
    folder.mkdir(parents=True)
    (folder / "seed0.json").write_text("[1, 2]\n")
    assert main(["run", "planted", "--preset", "smoke", "--results", str(tmp_path), "--quiet"]) == 2
    err = one_line_error(capsys)
    assert f"{folder / 'seed0.json'} holds JSON list, not an object" in err


# -- stored artefacts carry a checksum of their contents -----------------------------------------------------------
def _net():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))


def _flip(path, at: int):
    data = bytearray(path.read_bytes())
    data[at] ^= 0x01
    path.write_bytes(bytes(data))


def test_a_damaged_result_is_an_error_naming_the_file_and_an_unchecked_one_is_reused(tmp_path):
    from wmask.experiments import store
    s = store.Store(tmp_path)
    s.json(tmp_path / "r.json", {"a": 1}, lambda: {"accuracy": 0.25})
    text = (tmp_path / "r.json").read_text()
    (tmp_path / "r.json").write_text(text.replace("0.25", "0.35"))     # still valid JSON, another number
    with pytest.raises(ValueError, match=f"{tmp_path / 'r.json'} is damaged"):
        s.json(tmp_path / "r.json", {"a": 1}, lambda: pytest.fail("recomputed"))
    legacy = json.loads(text)
    del legacy["store"]["sha256"]                                      # written before results had checksums
    (tmp_path / "r.json").write_text(json.dumps(legacy))
    assert s.json(tmp_path / "r.json", {"a": 1}, lambda: pytest.fail("recomputed"))["accuracy"] == 0.25


def test_a_damaged_network_is_an_error_naming_the_file_never_reused(tmp_path):
    from wmask.experiments import store
    s, net = store.Store(tmp_path), _net()
    s.network("base", net, {"w": 1}, lambda: {"acc": 0.5})
    path, good = tmp_path / "base.pt", (tmp_path / "base.pt").read_bytes()
    sealed = torch.load(path, weights_only=False)
    payload = bytearray(sealed["payload"])
    payload[len(payload) // 2] ^= 0x01                                 # a bit of the weights, the zip still valid
    torch.save({**sealed, "payload": bytes(payload)}, path)
    with pytest.raises(ValueError, match=f"cannot read {path} .*do not match the sha256"):
        s.network("base", _net(), {"w": 1}, lambda: pytest.fail("retrained"))
    for at in range(0, len(good), max(1, len(good) // 60)):            # any byte of the file: named, or harmless
        path.write_bytes(good)
        _flip(path, at)
        other = _net()
        with torch.no_grad():
            other[0].weight.zero_()
        try:
            s.network("base", other, {"w": 1}, lambda: pytest.fail("retrained"))
        except ValueError as err:
            assert str(path) in str(err)
        else:
            assert all(torch.equal(p, q) for p, q in zip(net.parameters(), other.parameters())), at


def test_a_network_stored_before_checksums_is_still_reused(tmp_path):
    from wmask.experiments import store
    s, net = store.Store(tmp_path), _net()
    meta = s._meta({"w": 1})
    torch.save({"store": meta, "state": {"model": net.state_dict(), "extras": {"acc": 0.5}}, "rng": None},
               tmp_path / "base.pt")                                   # the format before checksums
    assert s.network("base", _net(), {"w": 1}, lambda: pytest.fail("retrained")) == {"acc": 0.5}


def test_damaged_masks_are_an_error_naming_the_file(tmp_path):
    from safetensors.torch import save_file

    from wmask.experiments import store
    from wmask.masks import MaskSet, load_masks, save_masks
    from wmask.train import History
    net, s = _net(), store.Store(tmp_path)

    def train():
        ms = MaskSet(net, 2, seed=0)
        return ms, History(step=[0], loss=[[1.0, 1.0]], kept=[[1.0, 1.0]])
    first, _ = s.masks("m", {"k": 1}, net, train)
    path = tmp_path / "m.safetensors"
    good = path.read_bytes()
    _flip(path, len(good) - 1)                        # the last mask bit: still a valid bool, one weight changed
    with pytest.raises(ValueError, match=f"{path} is damaged"):
        s.masks("m", {"k": 1}, net, lambda: pytest.fail("retrained"))
    with pytest.raises(ValueError, match=f"masks in {path} are damaged"):
        load_masks(path, net)
    path.write_bytes(good[: len(good) // 2])
    with pytest.raises(ValueError, match=f"cannot read masks from {path}"):
        load_masks(path)
    # masks written before files carried checksums: read as they are
    save_file({n: m.contiguous() for n, m in first.items()}, tmp_path / "old.safetensors")
    assert all(torch.equal(first[n], m) for n, m in load_masks(tmp_path / "old.safetensors", net).items())
    save_masks(tmp_path / "new.safetensors", first)
    assert all(torch.equal(first[n], m) for n, m in load_masks(tmp_path / "new.safetensors", net).items())


# -- a summary that leaves out finished seeds says so -----------------------------------------------------------
def test_a_summary_names_the_seeds_of_other_code_it_leaves_out(tmp_path, monkeypatch, capsys):
    fast = dataclasses.replace(runner.EXPERIMENTS["planted"], run=lambda cfg, *a: {"x": cfg.seed}, tables=None)
    monkeypatch.setitem(runner.EXPERIMENTS, "planted", fast)
    args = ["run", "planted", "--preset", "smoke", "--results", str(tmp_path), "--quiet"]
    assert main([*args, "--seeds", "0"]) == 0
    monkeypatch.setattr(runner, "code_of", lambda exp: {"wmask/train.py": "changed-code"})   # other code now
    capsys.readouterr()
    assert main([*args, "--seeds", "1"]) == 0
    summary = json.loads((tmp_path / "planted/smoke/summary.json").read_text())
    assert summary["seeds"] == [1] and summary["left_out"]["files"] == ["seed0.json"]
    assert "--stale reuse" in summary["left_out"]["why"]
    err = capsys.readouterr().err
    assert "left out of the summary: seed0.json" in err and "--stale reuse" in err
    assert main([*args, "--seeds", "1", "--stale", "reuse"]) == 0
    summary = json.loads((tmp_path / "planted/smoke/summary.json").read_text())
    assert summary["seeds"] == [0, 1] and "left_out" not in summary


# -- training inputs are checked before anything slices them ------------------------------------------------------
def test_train_masks_refuses_more_input_sets_than_mask_sets_naming_the_tensor():
    from wmask.masks import MaskSet
    from wmask.train import MaskTrainConfig, train_masks
    net = _net()
    masks = MaskSet(net, n_sets=2, impl="eager", seed=0)
    cfg = MaskTrainConfig(steps=2, batch_size=8, k=1, log_every=1)
    loss = lambda out, y: ((out - y) ** 2).mean(dim=(1, 2))     # noqa: E731
    x = torch.randn(3, 8, 3)
    for inputs, name in ((x, "0"), ((x,), "0"), ({"input": x}, "'input'")):
        with pytest.raises(ValueError, match=f"input {name} has shape \\(3, 8, 3\\).*the 2 mask sets"):
            train_masks(masks, lambda step: (inputs, torch.zeros(3, 8, 2)), loss, cfg, progress=False)
    one = MaskSet(net, n_sets=1, impl="eager", seed=0)           # a missing set dimension is not a batch size
    with pytest.raises(ValueError, match="input 0 has shape \\(8, 3\\).*the 1 mask sets"):
        train_masks(one, lambda step: (torch.randn(8, 3), torch.zeros(8, 2)), loss, cfg, progress=False)
    for per_pass in (None, 1):
        with pytest.raises(ValueError, match="input 0 has shape \\(1, 8, 3\\)"):
            train_masks(masks, lambda step: (torch.randn(1, 8, 3), torch.zeros(1, 8, 2)), loss, cfg,
                        progress=False, sets_per_pass=per_pass)


# -- Ctrl-C is honoured wherever it comes ---------------------------------------------------------------------------
class _CtrlCInFinaliser:
    """Ctrl-C pressed while this object is freed: Python raises KeyboardInterrupt inside __del__, and loses it."""
    def __del__(self):
        import signal
        signal.raise_signal(signal.SIGINT)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning",
                            "ignore:mask training removed no weight")
def test_a_ctrl_c_lost_while_the_first_mask_checkpoint_is_written_still_stops_training(tmp_path, monkeypatch, request):
    import signal
    from wmask import interrupts, train
    from wmask.masks import MaskSet
    # Python's own Ctrl-C handler, as in a fresh process: honoured() leaves any other one alone, and a library used
    # by an earlier test in the same pytest process may have left its own installed
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    request.addfinalizer(lambda: signal.signal(signal.SIGINT, previous))
    saved = train.atomic_torch_save

    def save_then_ctrl_c(obj, path):     # a finaliser runs as the checkpoint is written, and Ctrl-C comes then
        saved(obj, path)
        _CtrlCInFinaliser()
    monkeypatch.setattr(train, "atomic_torch_save", save_then_ctrl_c)
    net, ckpt = _net(), tmp_path / "masks.ckpt"
    cfg = train.MaskTrainConfig(steps=6, batch_size=4, k=1, log_every=1, checkpoint_every=2)
    data = lambda step: (torch.randn(1, 4, 3), torch.zeros(1, 4, 2))         # noqa: E731
    loss = lambda out, y: ((out - y) ** 2).mean(dim=(1, 2))                  # noqa: E731
    hist = train.train_masks(MaskSet(net, 1, seed=0), data, loss, cfg, checkpoint=ckpt, progress=False)
    assert hist.step[-1] == 5                        # outside honoured(): the interrupt is lost, as in Python itself
    with interrupts.honoured(), pytest.raises(KeyboardInterrupt):
        train.train_masks(MaskSet(net, 1, seed=0), data, loss, cfg, checkpoint=ckpt, progress=False)
    assert train.read_torch(ckpt)["step"] == 2       # stopped at the step after the first checkpoint: kept
    with interrupts.honoured(), pytest.raises(KeyboardInterrupt):
        train.train_model(_net(), lambda step: (torch.randn(4, 3), torch.zeros(4, 2)),
                          lambda m, x, y: ((m(x) - y) ** 2).mean(), train.BaseTrainConfig(steps=6, checkpoint_every=2),
                          checkpoint=tmp_path / "base.ckpt", progress=False)
    assert train.read_torch(tmp_path / "base.ckpt")["step"] == 2


def test_a_results_only_change_leaves_the_commit_clean(tmp_path):
    """A regeneration rewrites the summaries it has finished: that is no change of code, so the next experiment's
    commit is not +dirty; a change anywhere else is."""
    import subprocess
    from wmask.experiments.runner import changed_outside_results
    git = lambda *a: subprocess.run(["git", *a], cwd=tmp_path, check=True, capture_output=True)  # noqa: E731
    git("init", "-q")
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "summary.json").write_text("{}")
    (tmp_path / "code.py").write_text("x = 1\n")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    assert not changed_outside_results(tmp_path)
    (tmp_path / "results" / "summary.json").write_text('{"seeds": [0]}')
    assert not changed_outside_results(tmp_path)
    (tmp_path / "code.py").write_text("x = 2\n")
    assert changed_outside_results(tmp_path)
    assert changed_outside_results(tmp_path / "nowhere")      # git cannot tell: dirty
