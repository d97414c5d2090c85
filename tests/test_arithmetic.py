"""Arithmetic tasks (the paper's §3.1-2.2): encodings against plain Python arithmetic, the double-addition pair passes,
batched evaluation against separate forwards, and the experiment runner end to end at smoke size."""
import json

import pytest
import torch

from wmask import materialize
from wmask.experiments import runner
from wmask.__main__ import main
from wmask.masks import invert
from wmask.experiments.models import FNN, RepeatLSTM
from wmask.experiments.store import sealed
from wmask.experiments.tasks import addmul, double_addition
from wmask.experiments.tasks.arithmetic import AddMul, DoubleAdd, NetConfig, evaluate, solved, task_loss


def read_number(one_hot: torch.Tensor) -> int:
    """Brute-force decoding of a 20-dim two-digit one-hot block, least significant digit first."""
    lo, hi = one_hot[:10].tolist(), one_hot[10:].tolist()
    assert sum(lo) == 1 and sum(hi) == 1
    return lo.index(1) + 10 * hi.index(1)


def test_addmul_encoding_matches_python_arithmetic():
    task = AddMul()
    x, y = task.sample(300, torch.Generator().manual_seed(0))
    assert x.shape == (300, 42) and y.shape == (300, 2)
    seen_ops = set()
    for xi, yi in zip(x, y):
        a, b, op = read_number(xi[:20]), read_number(xi[20:40]), xi[40:].tolist().index(1)
        seen_ops.add(op)
        expected = (a + b) % 100 if op == 0 else (a * b) % 100
        assert yi.tolist() == [expected % 10, expected // 10]
    assert seen_ops == {0, 1}
    x, y = task.encode(torch.tensor([37]), torch.tensor([5]), torch.tensor([1]))
    assert x[0, 7] == 1 and x[0, 13] == 1 and y.tolist() == [[5, 8]]      # 37 -> 7 then 3; 37*5 = 185 -> 85
    only_mul = task.sample(50, torch.Generator().manual_seed(1), "×")[0]
    assert (only_mul[:, 41] == 1).all()


def test_addmul_test_set_is_every_problem_once():
    x, y = AddMul().test_set("+", 0, torch.Generator())
    pairs = {(read_number(r[:20]), read_number(r[20:40])) for r in x[::97]}
    assert len(x) == 10_000 and len(set(map(tuple, x.int().tolist()))) == 10_000 and len(pairs) == len(x[::97])
    assert (x[:, 40] == 1).all()


def test_double_addition_encoding_and_separate_pair_passes():
    task = DoubleAdd(separate_pairs=True)
    x, y = task.sample(100, torch.Generator().manual_seed(2))
    for xi, yi in zip(x, y):
        a1, b1, a2, b2 = (read_number(xi[i:i + 20]) for i in range(0, 80, 20))
        s1, s2 = (a1 + b1) % 100, (a2 + b2) % 100
        assert yi.tolist() == [s1 % 10, s1 // 10, s2 % 10, s2 // 10]
    calls = []

    def model(inp):
        calls.append(inp.clone())
        return torch.arange(40.).expand(*inp.shape[:-1], 40) + 100 * len(calls)

    out = task.logits(model, x)
    assert len(calls) == 2 and (calls[0][:, 40:] == 0).all() and torch.equal(calls[0][:, :40], x[:, :40])
    assert (calls[1][:, :40] == 0).all() and torch.equal(calls[1][:, 40:], x[:, 40:])
    assert out.shape == (100, 4, 10)
    assert torch.equal(out[0, :2].flatten(), torch.arange(20.) + 100) and torch.equal(out[0, 2:].flatten(),
                                                                                     torch.arange(20., 40) + 200)
    w = task.digit_weights("pair 2")
    logits = torch.nn.functional.one_hot(y, 10).float()
    logits[:, 0] = logits[:, 0].flip(-1)                     # pair 1 wrong, pair 2 right
    assert solved(logits, y, w).all() and not solved(logits, y, task.digit_weights(None)).any()
    assert task_loss(logits * 50, y, w) < 1e-6 < task_loss(logits * 50, y, task.digit_weights("pair 1"))


@pytest.mark.parametrize("make,separate", [(lambda: FNN(80, [24, 16], 40), True),
                                           (lambda: RepeatLSTM(80, 12, 40, steps=2), False)])
def test_batched_evaluation_equals_separate_materialized_models(make, separate):
    task, model = DoubleAdd(separate), make().eval()
    names = [n for n, p in model.named_parameters() if p.dim() == 2]
    g = torch.Generator().manual_seed(0)
    a = {n: torch.rand(dict(model.named_parameters())[n].shape, generator=g) < 0.7 for n in names}
    variants = {"full": None, "a": a, "¬a": invert(a)}
    cfg = NetConfig(model="fnn", hidden=(8,), n_test=300)
    got = evaluate(task, model, variants, cfg, seed=3, device="cpu", chunk=128)
    x, y = task.test_set("pair 1", 300, torch.Generator().manual_seed(10 ** 6 + 3))
    for name, masks in variants.items():
        net = model if masks is None else materialize(model, masks)
        with torch.no_grad():
            logits = task.logits(net, x)
        for pair in task.subtasks:
            expected = solved(logits, y, task.digit_weights(pair)).float().mean().item()
            assert got[name][pair] == pytest.approx(expected, abs=1e-6), (name, pair)


@pytest.mark.parametrize("experiment", ["addmul", "double_addition"])
def test_runner_end_to_end_at_smoke(experiment, tmp_path, capsys):
    args = ["run", experiment, "--preset", "smoke", "--seeds", "0", "--results", str(tmp_path), "--quiet"]
    assert main(args) == 0
    out = tmp_path / experiment / "smoke"
    summary = json.loads((out / "summary.json").read_text())
    run = summary["runs"][0]
    assert {"commit", "torch", "device", "wall_time_s", "preset", "seeds"} <= set(summary["provenance"])
    assert set(run["networks"]) == set(runner.EXPERIMENTS[experiment].presets["smoke"]["networks"])
    for net in run["networks"].values():
        subtasks = list(net["accuracy"]["full"])
        assert {"control", *subtasks, *(f"¬{s}" for s in subtasks)} <= set(net["accuracy"])
        assert net["clip_mode"] in ("masks", "all") and net["layers"][-1]["layer"] == "total"
    assert {r["clip_mode"] for r in run["networks"].values()} == {"masks", "all"}
    header = (out / "accuracy.csv").read_text().splitlines()[0]
    assert header == "seed,network,mask,evaluated on,accuracy"
    # re-running reuses the finished seed; a changed configuration is refused, not overwritten
    first = (out / "seed0.json").read_text()
    assert main(args) == 0 and (out / "seed0.json").read_text() == first
    data = json.loads(first)
    next(iter(data["store"]["key"]["config"]["networks"].values()))["mask"]["alpha"] = 0.5
    (out / "seed0.json").write_text(json.dumps(sealed(data)))          # as if made with another alpha
    assert main(args) == 2 and "different configuration" in capsys.readouterr().err


def test_interrupted_experiment_resumes_from_its_files(tmp_path, monkeypatch):
    """Kill the run during the second network's mask training; the rerun reuses the first network's files."""
    import wmask.experiments.tasks.arithmetic as arith
    real = arith.train_masks
    calls = []

    def failing(*args, **kw):
        calls.append(kw.get("desc"))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kw)

    monkeypatch.setattr(arith, "train_masks", failing)
    with pytest.raises(KeyboardInterrupt):
        runner.run("double_addition", "smoke", [0], tmp_path, progress=False)
    work = tmp_path / "double_addition/smoke/seed0"
    assert (work / "fnn.masks.safetensors").exists() and (work / "lstm.base.pt").exists()
    before = (work / "fnn.masks.safetensors").stat().st_mtime_ns
    calls.clear()
    monkeypatch.setattr(arith, "train_masks", real)
    runner.run("double_addition", "smoke", [0], tmp_path, progress=False)
    assert (work / "fnn.masks.safetensors").stat().st_mtime_ns == before


def test_bad_configurations_are_named():
    with pytest.raises(ValueError, match="unknown arithmetic model 'gru'"):
        NetConfig(model="gru")
    with pytest.raises(ValueError, match="names networks .* that networks does not hold"):
        addmul.AddMulConfig(networks={"a": NetConfig()}, size_study=("b",))
    with pytest.raises(ValueError, match="unknown clip_mode"):
        double_addition.EXPERIMENT.config("smoke", 0, overrides={"networks.fnn.mask.clip_mode": "weights"})
