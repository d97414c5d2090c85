"""Kill and resume whole experiments: a resumed run equals an uninterrupted one bit for bit (an LSTM with dropout and
teacher forcing; SCAN at smoke size), and stages made by another configuration are never reused."""
import json

import pytest
import torch
from safetensors.torch import load_file

from wmask.experiments import runner
from wmask.__main__ import main
from wmask.experiments.tasks import scan

# enough mask steps at a high rate that the masks prune; checkpoints every 10 steps
OVERRIDES = {"mask.steps": 40, "mask.lr": 0.1, "mask.checkpoint_every": 10, "base.checkpoint_every": 20}


def _run(results):
    return runner.run("scan", "smoke", [0], results, progress=False, overrides=OVERRIDES)["runs"][0]


def _interrupt_once_at(monkeypatch, salt: int, step: int):
    """Make ``Data.batch`` raise KeyboardInterrupt the first time the stage with ``salt`` reaches ``step``."""
    real, hit = scan.Data.batch, []

    def batch(self, splits, step_, salt_, size, device):
        if salt_ == salt and step_ == step and not hit:
            hit.append(step_)
            raise KeyboardInterrupt
        return real(self, splits, step_, salt_, size, device)
    monkeypatch.setattr(scan.Data, "batch", batch)
    return hit


def _same(a_dir, b_dir, a, b):
    ma, mb = (load_file(d / "masks.safetensors") for d in (a_dir, b_dir))
    assert set(ma) == set(mb) and all(torch.equal(ma[n], mb[n]) for n in ma)
    assert not all(bool(m.all()) for m in ma.values())          # the masks prune: the comparison means something
    for key in ("accuracy", "scratch", "removed_per_token", "kept", "history"):
        assert a[key] == b[key], key


@pytest.mark.parametrize("salt,step", [(0, 35), (100, 25)], ids=["base stage (dropout)", "mask stage"])
def test_scan_resumed_mid_stage_equals_uninterrupted(tmp_path, monkeypatch, salt, step):
    uninterrupted = _run(tmp_path / "a")
    hit = _interrupt_once_at(monkeypatch, salt, step)
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path / "b")
    assert hit == [step]
    work = tmp_path / "b" / "scan" / runner.folder_name("smoke", OVERRIDES) / "seed0"
    assert list(work.glob("*.ckpt"))                               # it stopped mid-stage, with a checkpoint
    resumed = _run(tmp_path / "b")
    a_dir = tmp_path / "a" / "scan" / runner.folder_name("smoke", OVERRIDES) / "seed0"
    _same(a_dir, work, uninterrupted, resumed)


def test_scan_resumed_after_the_base_network_equals_uninterrupted(tmp_path, monkeypatch):
    """The masks draw teacher forcing from torch's random state: reusing the stored base network restores the state
    its training left, so the masks are the same as in one uninterrupted run."""
    uninterrupted = _run(tmp_path / "a")
    real = scan.train_masks
    monkeypatch.setattr(scan, "train_masks", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path / "b")
    monkeypatch.setattr(scan, "train_masks", real)
    resumed = _run(tmp_path / "b")
    folder = runner.folder_name("smoke", OVERRIDES)
    _same(tmp_path / "a" / "scan" / folder / "seed0", tmp_path / "b" / "scan" / folder / "seed0", uninterrupted,
          resumed)


def test_a_stage_from_another_config_is_refused_with_the_key(tmp_path, capsys):
    """CIFAR used to reuse base.pt / control.pt / removal.safetensors whatever made them."""
    args = ["run", "cifar10", "--preset", "smoke", "--results", str(tmp_path), "--quiet"]
    assert main(args + ["base.steps=30", "mask.steps=4"]) == 0
    first = tmp_path / "cifar10" / runner.folder_name("smoke", {"base.steps": 30, "mask.steps": 4})
    other = tmp_path / "cifar10" / runner.folder_name("smoke", {"base.steps": 50, "mask.steps": 4})
    other.mkdir(parents=True)
    (other / "seed0").symlink_to(first / "seed0")                 # the old stages where the new run looks
    assert main(args + ["base.steps=50", "mask.steps=4"]) == 2
    err = capsys.readouterr().err
    assert "base.pt was made by a different configuration" in err and "base.steps: 30 -> 50" in err
    assert json.loads((first / "seed0.json").read_text())["config"]["base"]["steps"] == 30
