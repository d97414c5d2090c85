"""SCAN models and experiment: loss and accuracy against hand computations, greedy decoding against teacher forcing
on the network's own predictions, padding invariance, batched evaluation against separate masked models, the runner
end to end at smoke, and a chapter's view of a committed run."""
import json

import pandas as pd
import pytest
import torch

from wmask.experiments import runner, seq2seq
from wmask.book import claims
from wmask.__main__ import main
from wmask.masks import MaskFilter, MaskSet, materialize
from wmask.book.report import committed_run
from wmask.experiments.tasks import scan

PAIRS = [("jump twice".split(), ["I_JUMP", "I_JUMP"]), ("walk left".split(), ["I_TURN_LEFT", "I_WALK"]),
         ("look".split(), ["I_LOOK"]), ("run after jump".split(), ["I_JUMP", "I_RUN"])]


@pytest.fixture
def vocabs():
    return (seq2seq.Vocab([c for c, _ in PAIRS], specials=(seq2seq.PAD,)),
            seq2seq.Vocab([a for _, a in PAIRS], tail=(seq2seq.EOS,)))


def test_vocab_is_sorted_by_frequency_and_names_unknown_words(vocabs):
    iv, ov = vocabs
    assert iv.words[:2] == ["<pad>", "jump"] and ov.words[0] == "I_JUMP" and ov.words[-1] == "<eos>"
    with pytest.raises(ValueError, match="fly"):
        iv.encode(["fly"])


def test_encoding_pads_and_appends_eos(vocabs):
    iv, ov = vocabs
    enc = seq2seq.Encoded(PAIRS, iv, ov)
    assert enc.src.shape == (4, 3) and enc.tgt.shape == (4, 3)
    assert enc.src_len.tolist() == [2, 2, 1, 3] and enc.tgt_len.tolist() == [3, 3, 2, 3]
    assert enc.tgt[2].tolist() == [ov.index["I_LOOK"], ov.index["<eos>"], -1]
    src, tgt = enc.batch(torch.tensor([2, 2]))
    assert src.shape == (2, 1) and tgt.shape == (2, 2)      # trimmed to the longest in the batch


def test_loss_is_token_sum_over_batch_and_exact_match_needs_the_length():
    tgt = torch.tensor([[1, 2, -1], [0, 2, 2]])
    logits = torch.randn(2, 3, 4)
    ce = torch.nn.functional.cross_entropy
    expected = (ce(logits[0, :2], tgt[0, :2], reduction="sum") + ce(logits[1], tgt[1], reduction="sum")) / 2
    assert seq2seq.seq_loss(logits, tgt) == pytest.approx(expected.item(), rel=1e-6)
    right = torch.nn.functional.one_hot(tgt.clamp(min=0), 4).float()
    assert seq2seq.exact_match(right, tgt).tolist() == [True, True]
    early = right.clone()
    early[1, 1] = torch.nn.functional.one_hot(torch.tensor(2), 4)   # EOS (2) one step early: wrong
    early[1, 1, 0] = 0
    assert seq2seq.exact_match(early, torch.tensor([[1, 2, -1], [0, 0, 2]])).tolist() == [True, False]


def _small_net(name, vocabs):
    torch.manual_seed(0)
    iv, ov = vocabs
    size = {"hidden": 16} if name == "lstm" else {"d": 16, "ff": 32}
    return seq2seq.build(name, len(iv), len(ov), **size).eval(), seq2seq.Encoded(PAIRS, iv, ov)


@pytest.mark.parametrize("name", ["lstm", "transformer"])
def test_greedy_decoding_equals_teacher_forcing_on_its_own_predictions(name, vocabs):
    """Free running feeds back argmax tokens; teacher-forcing those same tokens must give the same logits."""
    net, enc = _small_net(name, vocabs)
    tgt = torch.zeros(4, 6, dtype=torch.long)
    with torch.no_grad(), seq2seq.free_running(net):
        free = net(enc.src, tgt)
    net.teacher_forcing = 1.0
    with torch.no_grad():
        forced = net(enc.src, free.argmax(-1))
    torch.testing.assert_close(forced, free, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", ["lstm", "transformer"])
def test_padding_does_not_change_a_sequence_output(name, vocabs):
    net, enc = _small_net(name, vocabs)
    with torch.no_grad(), seq2seq.free_running(net):
        together = net(enc.src, enc.tgt)
        alone = net(enc.src[2:3, :1], enc.tgt[2:3])
    torch.testing.assert_close(together[2:3], alone, atol=1e-5, rtol=1e-4)


def _tiny(model):
    cfg = scan.EXPERIMENT.config("smoke", 0, model)
    d = scan.Data(scan.load_splits(cfg)["pairs"], cfg)
    torch.manual_seed(0)
    return cfg, d, scan.build(cfg, d).eval()


@pytest.mark.parametrize("model", ["lstm", "transformer"])
def test_batched_evaluation_equals_separate_masked_models(model):
    cfg, d, net = _tiny(model)
    ms = MaskSet(net, n_sets=2, filter=scan.mask_filter(cfg), seed=1)
    with torch.no_grad():
        for logit in ms.logits.values():
            logit.normal_()     # random masks: about half the weights kept
    variants = {"full": None, "a": ms.binary(0), "b": ms.binary(1)}
    got = scan.evaluate(cfg, d, net, variants, "cpu", chunk=50)
    for name, masks in variants.items():
        one = net if masks is None else materialize(net, masks)
        expected = scan.evaluate(cfg, d, one, {"x": None}, "cpu", chunk=37)["x"]
        assert got[name] == pytest.approx(expected, abs=1e-9), name
    if model == "transformer":
        assert any("norm" in n for n in ms.logits)     # layer norms are masked in the Transformer


def test_training_batches_stack_splits_with_padding():
    cfg, d, _ = _tiny("lstm")
    src, tgt = d.batch(list(scan.SPLITS), step=3, salt=0, size=8, device="cpu")
    assert src.shape[:2] == (4, 8) and tgt.shape[:2] == (4, 8)
    length = d.train["length"]
    assert int((tgt[2] != -1).sum(1).max()) <= int(length.tgt_len.max())
    again = d.batch(list(scan.SPLITS), step=3, salt=0, size=8, device="cpu")
    assert torch.equal(again[0], src) and torch.equal(again[1], tgt)       # a function of the step: resumable


def test_a_mask_step_moves_every_set(vocabs):
    iv, ov = vocabs
    net = seq2seq.build("lstm", len(iv), len(ov), hidden=8).eval()
    ms = MaskSet(net, n_sets=2, filter=MaskFilter(), mode="loop", seed=0)
    enc = seq2seq.Encoded(PAIRS, iv, ov)
    x = (enc.src.expand(2, -1, -1), enc.tgt.expand(2, -1, -1))
    loss = seq2seq.seq_loss(ms.sample_forward(x, k=2), x[1])
    assert loss.shape == (2,)
    loss.sum().backward()
    assert all(logit.grad[i].abs().sum() > 0 for logit in ms.logits.values() for i in range(2))
    assert not any("emb" in n for n in ms.logits)          # embeddings are never masked


@pytest.mark.parametrize("model", ["lstm", "transformer"])
def test_runner_end_to_end_at_smoke(model, tmp_path, capsys):
    args = ["run", "scan", "--model", model, "--preset", "smoke", "--results", str(tmp_path), "--quiet"]
    assert main(args) == 0
    label = "scan" if model == "lstm" else f"scan-{model}"
    out = tmp_path / label / "smoke"
    summary = json.loads((out / "summary.json").read_text())
    run = summary["runs"][0]
    assert summary["experiment"] == label and "not the canonical" in run["dataset"]
    assert set(run["accuracy"]) == {"full", *(f"mask {s}" for s in scan.SPLITS)}
    assert set(run["scratch"]) == set(scan.SPLITS[1:])
    assert set(run["removed_per_token"]["addprim_jump"]) == set(run["out_vocab"])
    assert (out / "accuracy.csv").read_text().startswith("seed,model,variant,test,accuracy")
    cfg = run["config"]
    curve = run["base_curve"]      # loss every 50 steps (labelled by the window's last step index, from 0, as the
    steps = cfg["base"]["steps"]   # mask curves), held out every eval_every steps (labelled by steps done)
    assert [st for st, _ in curve["loss"]] == [*range(49, steps - 1, 50), steps - 1]
    every = cfg["base"]["eval_every"]
    assert [st for st, _ in curve["held_out"]] == ([*range(every, steps, every), steps] if every else [])
    if every:      # the last point: the same net on the same iid test lines as the run's "full" row
        assert curve["held_out"][-1][1] == run["accuracy"]["full"]["simple"]
    tables = scan.tables(summary["runs"])
    assert len(tables["base_curve"]) == len(curve["loss"]) + len(curve["held_out"])
    for key in (f"scan-split-masks-{model}", f"scan-jump-token-{model}"):
        assert claims.check(key, tables, run["config"])     # checks run on real output
    first = (out / "seed0.json").read_text()
    assert main(args) == 0 and (out / "seed0.json").read_text() == first
    view = committed_run("scan", "smoke", model, root=tmp_path)   # how a chapter reads a committed run
    assert view.summary == json.loads((out / "summary.json").read_text()) and view.cfg == run["config"]
    assert view.tables["accuracy"].equals(pd.DataFrame(tables["accuracy"]))
    assert f"commit {summary['provenance']['commit'][:7]}" in view.where and "wall time seed 0 " in view.where
    assert committed_run("scan", "cpu", model, root=tmp_path) is None


def test_model_option_errors_are_named(capsys):
    assert main(["run", "scan", "--model", "gru", "--preset", "smoke"]) == 2
    assert "unknown model 'gru'" in capsys.readouterr().err
    assert main(["run", "addmul", "--model", "lstm", "--preset", "smoke"]) == 2
    assert "no choice of model" in capsys.readouterr().err
    with pytest.raises(ValueError, match="unknown SCAN data source"):
        scan.ScanConfig(data="web")
    assert runner.experiment_of("scan-transformer") is scan.EXPERIMENT


def test_scan_claims_on_hand_made_tables():
    def acc(own_jump, scratch_jump=0.0, iid=1.0):
        rows = [("full", s, iid) for s in scan.SPLITS] + [("mask simple", s, 0.99) for s in scan.SPLITS]
        rows += [(f"mask {s}", s, own_jump if s == "addprim_jump" else 0.1) for s in scan.SPLITS[1:]]
        rows += [("scratch", s, scratch_jump if s == "addprim_jump" else 0.05) for s in scan.SPLITS[1:]]
        settled = [{"seed": 0, "mask": s, "step": st, "loss": 0.1 + 0.001 * (-1) ** (st // 50),
                    "kept": max(0.3, 0.88 - st / 1000)} for s in scan.SPLITS for st in range(0, 2000, 50)]
        return {"accuracy": [{"variant": v, "test": t, "accuracy": a} for v, t, a in rows],
                "removed": [{"mask": "addprim_jump", "token": t, "removed %": p}
                            for t, p in (("I_JUMP", 80.0), ("I_WALK", 5.0))],
                "base": [{"seed": 0, "subtask": "iid", "accuracy": iid, "target": 0.95}], "curves": settled}
    holds = [ln.holds for ln in claims.check("scan-split-masks-lstm", acc(0.05), {})]
    assert holds == [True, True, True, True]
    below = claims.check("scan-split-masks-lstm", acc(0.05, iid=0.914), {})
    assert [ln.holds for ln in below] == [None] * 4
    assert "base network below target: seed 0: iid 0.914 < 0.95" in below[0].reason
    assert [ln.holds for ln in claims.check("scan-split-masks-lstm", acc(0.9), {})][1] is False
    assert [ln.holds for ln in claims.check("scan-split-masks-lstm", acc(0.9, scratch_jump=0.95), {})][1] is None
    assert claims.check("scan-jump-token-lstm", acc(0.0), {})[0].holds is True
    nothing = acc(0.0) | {"removed": [{"mask": "addprim_jump", "token": t, "removed %": 0.0} for t in ("A", "B")]}
    assert claims.check("scan-jump-token-lstm", nothing, {})[0].holds is None
