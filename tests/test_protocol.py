"""The authors' protocol, difference by difference (wmask.experiments.protocol): the switches, stages one after
another against separate runs, the carried frozen gradients, resume, and the ablation script at toy size."""
import importlib.util
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import wmask
from wmask.experiments.runner import run as run_experiment
from wmask.experiments.protocol import CarriedGrads, Protocol, in_stages, stage_steps

REPO = Path(__file__).resolve().parent.parent


def _setup():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))
    x = torch.randn(64, 6)
    y = model(x).argmax(-1)
    return model, x, y


def _cfg(steps=12, **kw):
    """lr 0.3: some logits cross 0 within the few steps."""
    return wmask.MaskTrainConfig(**{"steps": steps, "lr": 0.3, "alpha": 1e-3, "batch_size": 16, "clip_mode": "all",
                                    "log_every": 4, **kw})


def _data(x, y, salt):
    def data(step):
        g = torch.Generator().manual_seed(1000 * salt + step)
        i = torch.randint(0, len(x), (16,), generator=g)
        return x[i].unsqueeze(0), y[i].unsqueeze(0)
    return data


def _loss(out, t):
    return F.cross_entropy(out.flatten(0, 1), t.flatten(), reduction="none").view(t.shape).mean(-1)


def test_switches_names_and_labels():
    assert Protocol().switches() == dict.fromkeys(("sequential", "shared_stream", "carry_grads", "extra_step"), False)
    assert all(Protocol(name="authors").switches().values())
    assert Protocol(name="authors", extra_step=False).label() == "authors − extra_step"
    assert Protocol(sequential=True).label() == "ours + sequential"
    assert stage_steps(_cfg(10), Protocol(name="authors")).steps == 11
    assert stage_steps(_cfg(10), Protocol()).steps == 10
    with pytest.raises(ValueError, match="unknown protocol name 'theirs'"):
        Protocol(name="theirs")
    with pytest.raises(ValueError, match="carry_grads needs sequential"):
        Protocol(carry_grads=True)


def test_stages_one_after_another_equal_separate_runs(tmp_path):
    """Without carried gradients, stage i is a one-set run of its own: the same logits as training that set alone."""
    model, x, y = _setup()
    proto = Protocol(sequential=True)

    def stage(i, masks):
        return wmask.train_masks(masks, _data(x, y, i), _loss, _cfg(), progress=False)
    whole, hist = in_stages(model, 2, 5, proto, stage, lambda i: tmp_path / f"done{i}")
    for i in range(2):
        alone = wmask.MaskSet(model, n_sets=1, seed=5 * 1_000_003 + i)
        wmask.train_masks(alone, _data(x, y, i), _loss, _cfg(), progress=False)
        for n, l in whole.logits.items():
            assert torch.equal(l[i], alone.logits[n][0])
    assert hist.step == [0, 4, 8, 11] and len(hist.loss[0]) == 2
    assert not list(tmp_path.iterdir())          # the stage files are gone once every stage is in


def test_carried_gradients_start_where_the_last_stage_stopped_and_enter_the_clip():
    model, x, y = _setup()
    # without clipping, the trajectory does not depend on the carried gradients: the carry only adds up
    free = dict(clip=1e9)
    plain = wmask.MaskSet(model, n_sets=1, seed=1)
    wmask.train_masks(plain, _data(x, y, 0), _loss, _cfg(**free), progress=False)
    own = CarriedGrads(model, n_sets=1, seed=1, carry={})
    wmask.train_masks(own, _data(x, y, 0), _loss, _cfg(**free), progress=False)
    start = {n: torch.full_like(g, 0.5) for n, g in own.carry.items()}
    carried = CarriedGrads(model, n_sets=1, seed=1, carry=dict(start))
    wmask.train_masks(carried, _data(x, y, 0), _loss, _cfg(**free), progress=False)
    assert set(own.carry) == {"0.weight", "0.bias", "2.weight", "2.bias"}
    for n in own.carry:
        torch.testing.assert_close(carried.carry[n], start[n] + own.carry[n])
    for n, l in plain.logits.items():
        assert torch.equal(l, carried.logits[n])
    # the carried gradient enters the clipping norm: a huge one shrinks the first update (Adam normalises, so only a
    # scale that brings the update below its eps, 1e-8, shows); the clip then scales it down too, as in their code
    moved = {}
    for size in (0.0, 1e12):
        m = CarriedGrads(model, n_sets=1, seed=1, carry={n: torch.full_like(g, size) for n, g in own.carry.items()})
        wmask.train_masks(m, _data(x, y, 0), _loss, _cfg(steps=1, alpha=0.0), progress=False)
        moved[size] = sum((l.detach() - 2.0).abs().sum().item() for l in m.logits.values())
    assert moved[1e12] < 0.1 * moved[0.0]


def test_in_stages_resumes_from_the_last_finished_stage(tmp_path):
    model, x, y = _setup()
    proto = Protocol(name="authors")

    def stage(i, masks, fail_at=None):
        if i == fail_at:
            raise KeyboardInterrupt
        return wmask.train_masks(masks, _data(x, y, 0), _loss, stage_steps(_cfg(), proto), progress=False)
    ref, _ = in_stages(model, 3, 0, proto, stage, lambda i: tmp_path / "a" / f"done{i}")
    (tmp_path / "b").mkdir()
    with pytest.raises(KeyboardInterrupt):
        in_stages(model, 3, 0, proto, lambda i, m: stage(i, m, fail_at=2), lambda i: tmp_path / "b" / f"done{i}")
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["done0", "done1"]
    again, _ = in_stages(model, 3, 0, proto, stage, lambda i: tmp_path / "b" / f"done{i}")
    for n, l in ref.logits.items():
        assert torch.equal(l, again.logits[n])


def test_the_ablation_script_runs_at_toy_size_and_ours_is_the_experiment(tmp_path):
    """``--protocol ours`` is the experiment's own mask training; ``authors`` runs its stages."""
    def run(*args):
        r = subprocess.run([sys.executable, str(REPO / "benchmarks/authors/protocol.py"), "double_addition", "--smoke",
                            "--seeds", "0", "--quiet", "--work", str(tmp_path), *args], capture_output=True, text=True,
                           cwd=REPO)
        assert r.returncode == 0, r.stderr[-2000:]
        return pd.read_csv(tmp_path / "double_addition" / "cpu" / "protocol" / args[-1].replace("--protocol=", "")
                           / "accuracy.csv")
    ours = run("--protocol=ours")
    authors = run("--protocol=authors")
    assert set(ours["mask"]) == set(authors["mask"]) >= {"control", "pair 1", "¬pair 1"}
    spec = importlib.util.spec_from_file_location("ablation", REPO / "benchmarks/authors/protocol.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    summary = run_experiment("double_addition", "cpu", [0], results=tmp_path / "exp", progress=False,
                             overrides=script.overrides("double_addition", smoke=True))
    exp = pd.read_csv(Path(tmp_path / "exp" / "double_addition") / next(
        p.name for p in (tmp_path / "exp" / "double_addition").iterdir()) / "accuracy.csv")
    assert summary["seeds"] == [0]
    pd.testing.assert_frame_equal(ours.reset_index(drop=True), exp.reset_index(drop=True))
