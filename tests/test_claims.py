"""The claim checks on hand-made tables: each inequality can hold, fail, or be untestable with its reason (a base
network below target, a mask still moving, a summary without the records)."""
import numpy as np
import pandas as pd
import pytest

from wmask import evidence
from wmask.book import authors as reference, claims, settling


def _curve(kept_end=0.4, moving=False, steps=range(0, 3000, 100)):
    """A mask's logged curve: kept fraction falls from 0.88 and settles at ``kept_end`` (or keeps falling)."""
    n = len(steps)
    kept = [max(kept_end, 0.88 - 0.05 * i) if not moving else 0.88 - 0.4 * i / n for i in range(n)]
    loss = [0.1 + 0.001 * ((-1) ** i) for i in range(n)]
    return list(steps), loss, kept


def addmul_tables(plus_on_plus=0.95, plus_on_times=0.02, full=0.99, moving=(), base=1.0):
    acc = {("full", "+"): full, ("full", "×"): full, ("+", "+"): plus_on_plus, ("+", "×"): plus_on_times,
           ("×", "×"): 0.9, ("×", "+"): 0.01, ("¬+", "×"): 0.8, ("¬+", "+"): 0.0, ("¬×", "+"): 0.1,
           ("¬×", "×"): 0.0}
    rows = [{"seed": s, "network": "fnn", "mask": m, "evaluated on": op, "accuracy": a}
            for s in (0, 1) for (m, op), a in acc.items()]
    layers = [{"seed": 0, "network": "fnn", "layer": name, "IoU": iou, "IoMin": iomin}
              for name, iou, iomin in (("in", 0.8, 0.9), ("h", 0.4, 0.7), ("out", 0.85, 0.9), ("total", 0.5, 0.8))]
    base_rows = [{"seed": s, "network": "fnn", "subtask": op, "accuracy": base, "target": t}
                 for s in (0, 1) for op, t in (("+", 0.99), ("×", 0.95))]
    curves = [{"seed": s, "network": "fnn", "mask": m, "step": st, "loss": lo, "kept": ke}
              for s in (0, 1) for m in ("control", "+", "×")
              for st, lo, ke in zip(*_curve(moving=m in moving))]
    return {"accuracy": rows, "layers": layers, "sharing": [], "sweep": [], "base": base_rows, "curves": curves}


CFG = {"networks": {"fnn": {}}, "size_study": [], "sweep_network": "fnn"}


def test_specialisation_check_holds_fails_and_is_untestable():
    assert [ln.holds for ln in claims.check("specialise", addmul_tables(), CFG)] == [True, True]
    assert [ln.holds for ln in claims.check("specialise", addmul_tables(plus_on_times=0.3), CFG)] == [False, True]
    assert [ln.holds for ln in claims.check("specialise", addmul_tables(plus_on_plus=0.5), CFG)] == [False, True]


def test_a_base_network_below_target_makes_every_check_untestable():
    lines = claims.check("specialise", addmul_tables(base=0.97), CFG)
    assert [ln.holds for ln in lines] == [None, None]
    assert lines[0].reason.startswith("base network below target: seed 0: + 0.970 < 0.99")
    assert str(claims.tally(lines)).startswith("untestable: base network below target")


def test_an_unconverged_mask_makes_its_checks_untestable():
    lines = claims.check("specialise", addmul_tables(moving=("+",)), CFG)
    assert lines[0].holds is None and "mask not converged: +, seed 0 (kept fraction moved" in lines[0].reason
    assert lines[1].holds is True                      # the × line needs only the × mask
    old = {k: v for k, v in addmul_tables().items() if k not in ("base", "curves")}
    assert "older wmask" in claims.check("specialise", old, CFG)[0].reason


def test_overlap_and_inversion_checks():
    assert [ln.holds for ln in claims.check("partial-overlap", addmul_tables(), CFG)] == [True, True]
    assert [ln.holds for ln in claims.check("inverted-addmul", addmul_tables(), CFG)] == [True, False]


def test_convergence_rule():
    assert evidence.convergence(*_curve())["converged"]
    moving = evidence.convergence(*_curve(moving=True))
    assert not moving["converged"] and "kept fraction moved" in moving["reason"]
    steps, loss, kept = _curve()
    falling = [1.0 - 0.03 * i for i in range(len(steps))]
    assert "loss still falling" in evidence.convergence(steps, falling, kept)["reason"]
    assert "only 1 logged point in" in evidence.convergence([0, 100, 200, 300, 400], [1] * 5, [1] * 5)["reason"]
    window = list(range(0, 2100, 100))          # ... here 1600-2000: five points
    drift = lambda points: [0.3 - points / 100 * i / 20 for i in range(21)]   # noqa: E731
    assert evidence.convergence(window, [0.1] * 21, drift(7))["converged"]          # 1.4 points in the window
    slow = evidence.convergence(window, [0.1] * 21, drift(12))                      # 2.4 points
    assert not slow["converged"] and "moved 2.4 points" in slow["reason"]
    with pytest.raises(ValueError, match="one value per logged step"):
        evidence.convergence([0, 1], [1.0], [1.0, 1.0])
    assert evidence.below_target({"+": 0.5, "×": 1.0}, {"+": 0.99, "×": 0.95}) == ["+ 0.500 < 0.99"]


def test_tally_words():
    L = claims.Line
    assert str(claims.tally([])) == "not run"
    assert str(claims.tally([L(True, ""), L(True, "")])) == "holds (2/2 checks)"
    assert str(claims.tally([L(True, ""), L(False, ""), L(None, "x", "why")])) == "partly (1/2 checks; 1 untestable)"
    assert str(claims.tally([L(None, "x", "base network below target")])) == "untestable: base network below target"
    assert str(claims.tally([L(False, "")])) == "does not hold (0/1 checks)"


def test_a_claim_whose_checks_hold_but_one_is_untestable_never_reads_holds():
    """A hand-made table: the + line holds, the × mask is still moving, so the claim is untestable, not holds."""
    lines = claims.check("specialise", addmul_tables(moving=("×",)), CFG)
    assert [ln.holds for ln in lines] == [True, None]
    v = claims.tally(lines)
    assert v.word == "untestable" and v.held == v.checked == 1 and v.untestable == 1
    assert str(v).startswith("untestable: mask not converged: ×") and str(v).endswith("(the 1 other check holds)")
    four = claims.tally([claims.Line(True, "")] * 4 + [claims.Line(None, "", "below target")] * 4)
    assert four.word == "untestable" and "holds" not in str(four)


def test_each_threshold_is_written_once_and_printed_from_the_same_value():
    import dataclasses
    claim = claims.claim_of("specialise")
    assert "0.8 x" in claim.how and "<= 0.1" in claim.how
    stricter = dataclasses.replace(claim, thresholds={**claim.thresholds, "keep": 0.99})
    assert "0.99 x" in stricter.how
    line = stricter.lines(addmul_tables(), CFG)[0]
    assert "(>= 0.99 x full" in line.detail
    for use in (lambda: claims.check("x", {}, CFG), lambda: claims.print_check("x", {}, CFG),
                lambda: claims.what_we_see("x", {}, CFG, "cpu"), lambda: claims.authors_check("x", {})):
        with pytest.raises(ValueError, match="unknown claim 'x'; known: "):
            use()


def test_mask_training_can_stop_on_a_plateau():
    from wmask import MaskSet, MaskTrainConfig, train_masks
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    net = torch.nn.Linear(4, 2)
    x = torch.randn(1, 64, 4)
    x[..., 2:] = 0                                            # the weights on inputs 2 and 3 are not needed
    y = net(x).detach()
    loss = lambda out, t: (out - t).pow(2).mean((1, 2))   # noqa: E731
    cfg = MaskTrainConfig(steps=400, lr=0.05, alpha=0.05, batch_size=64, log_every=5, stop_on_plateau=True)
    hist = train_masks(MaskSet(net, 1, seed=0), lambda s: (x, y), loss, cfg, progress=False)
    assert hist.kept[-1][0] <= 0.5 + 1e-6                    # the unneeded half is gone
    assert 200 <= hist.step[-1] < 399                        # then nothing moves: settled, stopped after half
    assert evidence.convergence(hist.step, [r[0] for r in hist.loss], [r[0] for r in hist.kept])["converged"]


def test_the_authors_numbers_get_the_same_checks_gated_by_targets_only():
    t = addmul_tables()
    found = {"accuracy": pd.DataFrame(t["accuracy"]), "layers": pd.DataFrame(t["layers"]), "sharing": None}
    theirs = reference.authors_tables(found, {"fnn": {"+": 0.99, "×": 0.95}})
    assert theirs["curves"] == reference.NO_CURVES and set(theirs["base"].subtask) == {"+", "×"}
    assert [ln.holds for ln in claims.check("specialise", theirs, CFG)] == [True, True]      # no curves needed
    assert [ln.holds for ln in claims.check("inverted-addmul", theirs, CFG)] == [True, False]
    low = reference.authors_tables(found, {"fnn": {"+": 0.995, "×": 0.95}})          # their full net: 0.99 on +
    lines = claims.check("specialise", low, CFG)
    assert lines[0].holds is None and "base network below target: seed 0: + 0.990 < 0.995" in lines[0].reason
    untargeted = reference.authors_tables(found, {})
    assert "no target recorded" in claims.check("specialise", untargeted, CFG)[0].reason


def test_settling_table_is_convergence_per_mask():
    t = pd.DataFrame(addmul_tables(moving=("+",))["curves"])
    s = evidence.settling(t)
    assert list(s.columns[:3]) == ["seed", "network", "mask"] and len(s) == 6
    for _, r in s.iterrows():
        c = t[(t.seed == r.seed) & (t["mask"] == r["mask"])]
        assert r.converged == evidence.convergence(c.step.tolist(), c.loss.tolist(), c.kept.tolist())["converged"]
    assert set(s[~s.converged]["mask"]) == {"+"}


def test_steps_to_settle_matches_a_brute_force_search_on_planted_power_laws():
    steps = np.arange(0, 8001, 50)
    t = pd.concat([pd.DataFrame({"seed": 0, "mask": m, "step": steps, "loss": 0.1,
                                 "kept": np.minimum(1.0, a * np.maximum(steps, 1) ** b)})
                   for m, a, b in (("slow", 3.0, -0.3), ("fast", 8.0, -0.6))] +
                  [pd.DataFrame({"seed": 0, "mask": "flat", "step": steps, "loss": 0.1, "kept": 0.4})])
    got = settling.steps_to_settle(t).set_index("mask")
    for m, a, b in (("slow", 3.0, -0.3), ("fast", 8.0, -0.6)):
        assert got.loc[m, "exponent"] == pytest.approx(b)
        # brute force: the first T on a fine grid where the kept fraction moves < 2 points over the last 20 %
        grid = np.arange(100, 10 ** 7, 100, dtype=float)
        moved = a * (0.8 * grid) ** b - a * grid ** b
        first = grid[np.argmax(moved < 0.02)]
        assert got.loc[m, "steps"] == pytest.approx(first, rel=1e-3, abs=100)
    assert np.isnan(got.loc["flat", "steps"])


def test_kept_fall_reads_a_planted_curve_at_the_nearest_logged_steps():
    steps = list(range(0, 1001, 50))                        # kept falls 1 point per 100 steps, then flat after 600
    kept = [1 - 0.01 * min(s, 600) / 100 for s in steps]
    t = pd.DataFrame({"seed": 0, "mask": "a", "step": steps, "loss": 0.1, "kept": kept})
    t = pd.concat([t, t.assign(mask="b", kept=1.0)])
    fall = settling.kept_fall(t, 0.4, 0.5)                  # steps 400 -> 500
    assert fall[(0, "a")] == pytest.approx(1.0) and fall[(0, "b")] == pytest.approx(0.0)
    assert settling.kept_fall(t, 0.9, 1.0)[(0, "a")] == pytest.approx(0.0)
    assert settling.kept_fall(t, 0.42, 0.58)[(0, "a")] == pytest.approx(2.0)   # nearest logged: 400 and 600


def test_claims_are_checked_on_each_kind_of_networks_main_one_or_on_what_a_partial_run_has():
    """A full preset: its main FNN and its LSTM. A run of some networks (the paper preset on a CPU): the main one of
    each kind where it ran, else every network of that kind (bar clipping variants), so adding the LSTM to a run of
    the smaller FNNs does not drop the FNNs from the checks."""
    from wmask.book.checks import _main_nets
    nets = {"fnn_small": "fnn", "fnn_medium": "fnn", "fnn_big": "fnn", "fnn_big_masks_clip": "fnn", "lstm": "lstm"}
    cfg = lambda *names: {"networks": {n: {"model": nets[n]} for n in names}}   # noqa: E731
    assert _main_nets(cfg(*nets)) == ["fnn_big", "lstm"]
    assert _main_nets(cfg("fnn_small", "fnn_medium", "lstm")) == ["fnn_small", "fnn_medium", "lstm"]
    assert _main_nets(cfg("fnn_small", "fnn_big_masks_clip")) == ["fnn_small"]
    assert _main_nets(cfg("lstm", "fnn_big", "fnn_small")) == ["lstm", "fnn_big"]


def test_a_mask_that_never_removed_a_weight_has_not_settled():
    steps = list(range(0, 3000, 100))
    flat = evidence.convergence(steps, [0.5] * 30, [1.0] * 30)
    assert not flat["converged"] and flat["reason"].startswith("removed no weight")
    moved = evidence.convergence(steps, [0.5] * 30, [1.0] * 10 + [0.4] * 20)
    assert moved["converged"]


def test_one_seed_shows_no_spread():
    import pandas as pd

    from wmask.book.report import mean_sd
    df = pd.DataFrame({"net": ["a", "a", "b"], "seed": [0, 1, 0], "m": ["x", "x", "x"], "v": [0.5, 0.7, 0.9]})
    table = mean_sd(df, ["net"], "m", "v")
    assert table.loc["a", "x"] == "0.600 ± 0.141" and table.loc["b", "x"] == "0.900"
