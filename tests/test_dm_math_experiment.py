"""The Mathematics experiment (§2.7): the tied Transformer, its data pools, batched evaluation against separate
masked copies, the claim's check on hand-made tables, and the runner end to end on a fixture in the v1.0 layout."""
import dataclasses
import json

import pandas as pd
import pytest
import torch
from torch import nn

from wmask.experiments import seq2seq
from wmask.book import claims
from wmask.__main__ import main
from wmask.experiments.data import dm_math as data
from wmask.forward import forward_with, slots
from wmask.masks import MaskFilter, MaskSet, materialize
from wmask.book.report import scale
from wmask.experiments.tasks import dm_math

from test_dm_math import write_folder

SORT = "comparison__sort"


def fixture(tmp_path, n=120):
    """A v1.0-layout folder whose sort problems get longer with difficulty (easy 2-3 numbers, hard 5-6)."""
    rng = torch.Generator().manual_seed(0)
    content = {}
    for d, size in zip((*data.DIFFICULTIES, "interpolate"), (2, 4, 5, 3)):
        for m in data.MODULES:
            lines = []
            for _ in range(n):
                xs = torch.randint(-9, 10, (size + int(torch.randint(0, 2, (), generator=rng)),), generator=rng)
                lines += [f"Sort {', '.join(map(str, xs.tolist()))}.", ", ".join(map(str, sorted(xs.tolist())))]
            content[f"{d}/{m}.txt"] = "\n".join(lines) + "\n"
    for m in data.EXTRAPOLATE.values():
        content[f"extrapolate/{m}.txt"] = "Sort 3, 1, 2.\n1, 2, 3\n"
    return write_folder(tmp_path, content=content)


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    root = fixture(tmp_path / "data")
    monkeypatch.setenv("WMASK_DATA", str(root))
    cfg = dataclasses.replace(dm_math.EXPERIMENT.config("smoke", 0), data="files")
    d = dm_math.Data(cfg)
    torch.manual_seed(0)
    return cfg, d, dm_math.build(cfg, d).eval()


def test_tied_transformer_shares_one_embedding_and_masks_leave_it_whole(tiny):
    cfg, d, net = tiny
    assert net.out.weight is net.src_emb.weight and net.tgt_emb is net.src_emb
    ms = MaskSet(net, n_sets=2, filter=dm_math.mask_filter(), seed=0)
    assert not any("emb" in n or n.startswith("out.") for n in ms.names)      # the output layer is the embedding
    assert any("norm" in n for n in ms.names)                                 # layer norms are masked (§2.7)
    with pytest.raises(ValueError, match="one vocabulary"):
        seq2seq.build("transformer", 10, 12, tied=True)


def test_a_shared_module_gets_its_own_parameters_back():
    """torch's functional_call swaps a module registered under two names twice and leaves the substitute behind;
    wmask substitutes each (module, attribute) once, tied weights in every module that holds them."""
    class Shared(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = self.b = nn.Linear(3, 3)
            self.head = nn.Linear(3, 3)
            self.head.weight = self.a.weight

        def forward(self, x):
            return self.head(self.b(self.a(x)))

    net = Shared()
    assert slots(net)["a.weight"] == ["a.weight", "head.weight"] and slots(net)["b.bias"] == ["a.bias"]
    before = {n: p for n, p in net.named_parameters(remove_duplicate=False)}
    w = {"a.weight": torch.zeros(2, 3, 3), "a.bias": torch.ones(2, 3)}
    for mode in ("vmap", "loop"):
        out = forward_with(net, w, torch.ones(2, 4, 3), mode)
        torch.testing.assert_close(out, net.head.bias.expand(2, 4, 3).detach())   # every weight zero
        assert all(p is before[n] for n, p in net.named_parameters(remove_duplicate=False))
    ms = MaskSet(net, n_sets=2, filter=MaskFilter(), seed=0)
    ms.track_frozen_grads()                                  # every parameter substituted, the tied one included
    for _ in range(2):
        ms.sample_forward(torch.ones(2, 4, 3), k=2).sum().backward()
    assert all(p is before[n] for n, p in net.named_parameters(remove_duplicate=False))


def test_pools_hold_the_training_examples_and_tests_the_held_out(tiny):
    cfg, d, _ = tiny
    n_easy = d.n_train[SORT, "train-easy"]
    assert len(d.pool[SORT, "easy"]) == n_easy and n_easy + d.n_held_out[SORT, "train-easy"] == 120
    assert len(d.pool[SORT, "control"]) == sum(d.n_train[SORT, x] for x in data.DIFFICULTIES)
    loaded = data.load([SORT])
    for x in data.DIFFICULTIES:
        train, test = data.held_out(loaded["train"][x][SORT])
        assert (d.n_train[SORT, x], len(d.test[SORT, x])) == (len(train), len(test))
        first = d.test[SORT, x]
        assert first.src[0, :int(first.src_len[0])].tolist() == d.vocab.encode(test[0][0])
    src, tgt = d.batch(SORT, ["control", "easy"], step=5, salt=100, size=8, device="cpu")
    assert src.shape[:2] == tgt.shape[:2] == (2, 8)
    again = d.batch(SORT, ["control", "easy"], step=5, salt=100, size=8, device="cpu")
    assert torch.equal(src, again[0]) and torch.equal(tgt, again[1])         # a function of the step: resumable
    easy_len = int(d.pool[SORT, "easy"].src_len.max())
    assert int((src[1] != 0).sum(-1).max()) <= easy_len                       # the easy set sees easy problems


def test_batched_evaluation_equals_separate_masked_models(tiny):
    cfg, d, net = tiny
    ms = MaskSet(net, n_sets=2, filter=dm_math.mask_filter(), seed=1)
    with torch.no_grad():
        for logit in ms.logits.values():
            logit.normal_()
    variants = {"network": None, "a": ms.binary(0), "b": ms.binary(1)}
    got = dm_math.evaluate(d, SORT, net, variants, "cpu", chunk=7)
    for name, masks in variants.items():
        one = net if masks is None else materialize(net, masks)
        assert got[name] == pytest.approx(dm_math.evaluate(d, SORT, one, {"x": None}, "cpu", chunk=50)["x"]), name
    enc = d.test[SORT, "train-hard"]                      # brute force: one example at a time, greedy by hand
    right = 0
    for i in range(len(enc)):
        src, tgt = enc.batch(torch.tensor([i]))
        with torch.no_grad(), seq2seq.free_running(net):
            right += bool(seq2seq.exact_match(net(src, tgt), tgt))
    assert got["network"]["hard"] == pytest.approx(right / len(enc))


def test_config_errors_are_named():
    with pytest.raises(ValueError, match="unknown Mathematics modules \\['numbers__gcd'\\]"):
        dm_math.DmMathConfig(networks={"numbers__gcd": {}})
    with pytest.raises(ValueError, match="networks.comparison__sort: 'alhpa' is not a mask setting"):
        dm_math.DmMathConfig(networks={SORT: {"alhpa": 1e-3}})
    cfg = dm_math.EXPERIMENT.config("paper", 0, networks=["algebra__linear_1d"])
    assert list(cfg.networks) == ["algebra__linear_1d"]
    m = cfg.mask_for("algebra__linear_1d")
    assert (m.alpha, m.lr, m.steps, m.batch_size, m.k, m.clip) == (1e-6, 0.02, 50_000, 400, 8, 0.1)


def _tables(net=(0.8, 0.9), control=(0.78, 0.9), easy=(0.2, 0.88), kept_moving=False, seeds=(0, 1)):
    acc, base, curves = [], [], []
    for seed in seeds:
        for weights, (hard, e) in (("network", net), ("control mask", control), ("easy mask", easy)):
            acc += [{"seed": seed, "network": SORT, "weights": weights, "test": t, "accuracy": a}
                    for t, a in (("hard", hard), ("easy", e), ("medium", (hard + e) / 2))]
        base.append({"seed": seed, "network": SORT, "subtask": "hard", "accuracy": net[0], "target": 0.5})
        for mask in dm_math.SETS:
            curves += [{"seed": seed, "network": SORT, "mask": mask, "step": s, "loss": 1.0 + 0.01 * (s % 3),
                        "kept": 0.3 + (0.003 * s if kept_moving else 0.0)} for s in range(0, 100, 5)]
    return {"accuracy": pd.DataFrame(acc), "base": pd.DataFrame(base), "curves": pd.DataFrame(curves)}


@pytest.mark.parametrize("kw, word", [
    ({}, "holds"),
    ({"easy": (0.6, 0.88)}, "does not hold"),            # the easy mask keeps most of the hard accuracy
    ({"control": (0.5, 0.9)}, "does not hold"),          # the control loses it too
    ({"easy": (0.1, 0.3)}, "does not hold"),             # a broken easy mask proves nothing
    ({"net": (0.3, 0.9)}, "untestable: base network below target"),
    ({"kept_moving": True}, "untestable: mask not converged"),
])
def test_the_claim_on_hand_made_tables(kw, word):
    lines = claims.check("math-easy-mask", _tables(**kw), {"networks": {SORT: {}}})
    assert len(lines) == 1 and str(claims.tally(lines)).startswith(word)


def test_synthetic_problems_need_no_files_and_say_what_they_are(monkeypatch):
    monkeypatch.delenv("WMASK_DATA", raising=False)
    made = data.synthetic([SORT], n=50)
    assert made == data.synthetic([SORT], n=50) and "not the Mathematics dataset" in made["dataset"]
    lengths = [sum(q.count(",") for q, _ in made["train"][x][SORT]) for x in data.DIFFICULTIES]
    assert lengths[0] < lengths[1] < lengths[2]                               # longer lists with difficulty
    assert all(a == ", ".join(map(str, sorted(int(v) for v in q[5:-1].split(", ")))) for q, a in made["train"]
               ["train-hard"][SORT])
    with pytest.raises(ValueError, match=r"no synthetic problems for \['algebra__linear_1d'\]"):
        data.synthetic(["algebra__linear_1d"])
    with pytest.raises(ValueError, match="unknown Mathematics data source 'web'"):
        dm_math.DmMathConfig(data="web")


def test_runner_end_to_end_at_smoke(tmp_path, monkeypatch):
    monkeypatch.delenv("WMASK_DATA", raising=False)                          # smoke needs no files (CI)
    args = ["run", "dm_math", "--preset", "smoke", "--results", str(tmp_path / "r"), "--quiet"]
    assert main(args) == 0
    out = tmp_path / "r" / "dm_math" / "smoke"
    summary = json.loads((out / "summary.json").read_text())
    run = summary["runs"][0]
    assert "not the Mathematics dataset" in run["dataset"]
    r = run["modules"][SORT]
    assert set(r["accuracy"]) == {"network", "control mask", "easy mask"}
    assert set(r["accuracy"]["network"]) == {"easy", "medium", "hard"} and r["n_test"]["hard"] >= 1
    assert len(r["history"]["step"]) == len(r["history"]["kept"]) and r["base_curve"]
    tables = dm_math.tables(summary["runs"])
    assert claims.check("math-easy-mask", {k: pd.DataFrame(v) for k, v in tables.items()}, run["config"])
    assert (out / "accuracy.csv").read_text().startswith("seed,network,weights,test,accuracy")
    assert scale("dm_math", run["config"]) == ("Transformer 1+1 layers, d 32, 40 base steps; comparison__sort: 12 mask steps at "
                                    "lr 0.3")                          # the reproduction report's scale column
    first = (out / "seed0.json").read_text()
    assert main(args) == 0 and (out / "seed0.json").read_text() == first   # reused, not retrained
