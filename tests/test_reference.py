"""wmask.book.authors: comparing our tidy accuracy tables with the authors' code's."""
import math

import pandas as pd
import pytest

from wmask.book import authors as ref


def table(rows):
    return pd.DataFrame(rows, columns=["seed", "network", "mask", "evaluated on", "accuracy"])


OURS = table([
    (0, "fnn", "+", "+", 0.98), (1, "fnn", "+", "+", 0.96), (2, "fnn", "+", "+", 0.97),      # inside
    (0, "fnn", "+", "×", 0.30), (1, "fnn", "+", "×", 0.32), (2, "fnn", "+", "×", 0.31),      # outside
    (0, "fnn", "full", "+", 1.00),                                                           # only ours
])
THEIRS = table([
    (0, "fnn", "+", "+", 0.90), (1, "fnn", "+", "+", 1.00),   # mean 0.95, sd 0.0707 -> tol 0.141
    (0, "fnn", "+", "×", 0.02), (1, "fnn", "+", "×", 0.04),   # mean 0.03, sd 0.014 -> tol 0.028
    (0, "fnn", "×", "×", 0.95),                               # only theirs
])


def test_inside_and_outside():
    c = ref.compare_accuracy(OURS, THEIRS)
    assert list(c.columns) == ["network", "mask", "evaluated on", "ours mean", "ours sd", "ours n", "theirs mean",
                               "theirs sd", "theirs n", "difference", "tolerance", "verdict"]
    assert len(c) == 2                                       # inner join by default
    inside = c[(c["mask"] == "+") & (c["evaluated on"] == "+")].iloc[0]
    assert inside["ours mean"] == pytest.approx(0.97)
    assert inside["ours sd"] == pytest.approx(0.01)
    assert inside["ours n"] == 3 and inside["theirs n"] == 2
    assert inside["theirs mean"] == pytest.approx(0.95)
    assert inside["theirs sd"] == pytest.approx(math.sqrt(0.005))
    assert inside["tolerance"] == pytest.approx(2 * math.sqrt(0.005))
    assert inside["difference"] == pytest.approx(0.02)
    assert inside["verdict"] == ref.WITHIN
    outside = c[(c["mask"] == "+") & (c["evaluated on"] == "×")].iloc[0]
    assert outside["difference"] == pytest.approx(0.28)
    assert outside["tolerance"] == pytest.approx(0.02 * math.sqrt(2))   # 2 sd > the 0.02 floor
    assert outside["verdict"] == ref.OUTSIDE


def test_single_authors_seed_uses_absolute_floor():
    theirs = table([(0, "fnn", "¬+", "×", 0.50)])
    ours_in = table([(0, "fnn", "¬+", "×", 0.515), (1, "fnn", "¬+", "×", 0.525)])    # mean 0.52: |0.02| <= 0.02
    ours_out = table([(0, "fnn", "¬+", "×", 0.53)])                                  # one seed each: 0.03 > 0.02
    c = ref.compare_accuracy(ours_in, theirs)
    assert math.isnan(c["theirs sd"][0]) and c["theirs n"][0] == 1
    assert c["tolerance"][0] == pytest.approx(0.02)
    assert c["verdict"][0] == ref.WITHIN
    c = ref.compare_accuracy(ours_out, theirs)
    assert math.isnan(c["ours sd"][0])
    assert c["verdict"][0] == ref.OUTSIDE


def test_zero_spread_uses_floor_and_rule_parameters():
    theirs = table([(0, "fnn", "full", "+", 1.0), (1, "fnn", "full", "+", 1.0)])     # sd 0
    ours = table([(0, "fnn", "full", "+", 0.99)])
    assert ref.compare_accuracy(ours, theirs)["verdict"][0] == ref.WITHIN
    assert ref.compare_accuracy(ours, theirs, abs_tol=0.005)["verdict"][0] == ref.OUTSIDE
    assert ref.tolerance(None) == ref.tolerance(float("nan")) == 0.02
    assert ref.tolerance(0.1, k=3) == pytest.approx(0.3)


def test_outer_join_marks_unmatched_rows():
    c = ref.compare_accuracy(OURS, THEIRS, how="outer")
    v = {(r["mask"], r["evaluated on"]): r["verdict"] for _, r in c.iterrows()}
    assert v[("full", "+")] == "only ours"
    assert v[("×", "×")] == "only theirs"
    assert c.loc[c["mask"] == "full", "theirs n"].item() == 0


def test_missing_column_is_named():
    with pytest.raises(KeyError, match="evaluated on"):
        ref.compare_accuracy(OURS.drop(columns=["evaluated on"]), THEIRS)


def test_load_authors(tmp_path):
    assert ref.load_authors("addmul", root=tmp_path) is None
    d = tmp_path / "addmul" / "cpu"
    d.mkdir(parents=True)
    THEIRS.to_csv(d / "accuracy.csv", index=False)
    (d / "summary.json").write_text('{"experiment": "addmul"}')
    got = ref.load_authors("addmul", root=tmp_path)
    assert got["summary"] == {"experiment": "addmul"}
    assert got["layers"] is None and got["sharing"] is None
    pd.testing.assert_frame_equal(got["accuracy"], THEIRS)
    assert ref.load_authors("addmul", root=tmp_path, preset="paper") is None


def test_module_needs_no_torch():
    import ast
    import inspect
    tree = ast.parse(inspect.getsource(ref))
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert "torch" not in imported and "wmask" not in imported


def test_a_chapter_compares_with_the_authors_only_at_their_settings(tmp_path):
    from wmask.book.report import beside_the_authors
    d = tmp_path / "addmul" / "cpu"
    d.mkdir(parents=True)
    rows = [{"seed": s, "network": "fnn", "mask": "+", "evaluated on": "+", "accuracy": a}
            for s, a in ((0, 0.98), (1, 1.0))]
    pd.DataFrame(rows).to_csv(d / "accuracy.csv", index=False)
    (d / "summary.json").write_text(
        '{"runs": [{"argv": ["py", "main.py", "-stop_after", "8000", "-step_per_mask", "7000", "-mask_lr", "3e-2"]}]}')
    ours = pd.DataFrame([{**r, "accuracy": 0.9} for r in rows])
    same = {"base": {"steps": 8000}, "mask": {"steps": 7000, "lr": 0.03}}
    table = beside_the_authors("addmul", ours, same, "cpu", root=tmp_path)
    assert table.verdict.tolist() == [ref.OUTSIDE] and table["theirs mean"].iloc[0] == pytest.approx(0.99)
    other = {"base": {"steps": 8000}, "mask": {"steps": 3000, "lr": 0.03}}
    said = beside_the_authors("addmul", ours, other, "cpu", root=tmp_path)
    assert "other settings (base steps 8000, mask steps 7000, mask lr 3e-2, α ?)" in said
    assert "(base steps 8000, mask steps 3000, mask lr 0.03)" in said
    assert "No run of the authors' code" in beside_the_authors("addmul", ours, same, "smoke", root=tmp_path)
    # a committed comparison of ours run at their fixed budget is shown when this run's settings differ
    ref.compare_accuracy(ours.assign(accuracy=0.995), pd.read_csv(d / "accuracy.csv")).to_csv(d / "comparison.csv",
                                                                                            index=False)
    shown = beside_the_authors("addmul", ours, other, "cpu", root=tmp_path)
    assert shown.verdict.tolist() == [ref.WITHIN] and shown["ours mean"].iloc[0] == pytest.approx(0.995)


def test_compare_cifar_per_class_numbers_against_hand_computed_verdicts(tmp_path):
    ours = {"base": pd.DataFrame({"seed": [0], "accuracy": [0.78]}),
            "worst": pd.DataFrame({"seed": [0, 0], "class": ["cat", "dog"], "own drop %": [60.0, 40.0],
                                   "worst other / own %": [8.0, 30.0]})}
    theirs = {"base": pd.DataFrame({"seed": [0, 1], "subtask": "all classes", "accuracy": [0.75, 0.77],
                                    "target": 0.75}),
              "worst": pd.DataFrame({"seed": [0, 1, 0, 1], "class": ["cat", "cat", "dog", "dog"],
                                     "own drop %": [50.0, 54.0, 70.0, 70.0], "worst other / own %": [5.0, 7.0,
                                                                                                      9.0, 11.0]})}
    got = ref.compare_cifar(ours, theirs).set_index(["number", "class"])
    # base: |0.78 - 0.76| = 0.02 <= max(2 * 0.01414, 0.02) = 0.0283
    assert got.loc[("base accuracy", "all"), "verdict"] == ref.WITHIN
    # cat own drop: |60 - 52| = 8 <= max(2 * 2.83, 10) = 10; dog: |40 - 70| = 30 > 10 (their sd 0)
    assert got.loc[("own drop %", "cat"), "verdict"] == ref.WITHIN
    assert got.loc[("own drop %", "dog"), "verdict"] == ref.OUTSIDE
    assert got.loc[("own drop %", "dog"), "difference"] == pytest.approx(-30.0)
    # worst ratio: cat |8 - 6| = 2 inside; dog |30 - 10| = 20 > max(2 * 1.414, 10)
    assert got.loc[("worst other / own %", "cat"), "verdict"] == ref.WITHIN
    assert got.loc[("worst other / own %", "dog"), "verdict"] == ref.OUTSIDE
    assert got.loc[("worst other / own %", "dog"), "tolerance"] == pytest.approx(ref.DROP_ABS_TOL)
    # a CIFAR folder (no accuracy.csv) is found through its drops table
    d = tmp_path / "cifar10" / "cpu"
    d.mkdir(parents=True)
    theirs["worst"].to_csv(d / "worst.csv", index=False)
    theirs["base"].to_csv(d / "base.csv", index=False)
    pd.DataFrame({"seed": [0], "removed": ["cat"], "evaluated": ["cat"], "relative drop %": [50.0]}).to_csv(
        d / "drops.csv", index=False)
    found = ref.load_authors("cifar10", root=tmp_path)
    assert found["accuracy"] is None and len(found["worst"]) == 4
    tables = ref.authors_tables(found, {"cnn": {"iid": 0.8}})
    assert tables["curves"] == ref.NO_CURVES and list(tables["base"].target) == [0.8, 0.8]


def test_compare_scan_accuracies_and_jump_row_against_hand_computed_verdicts():
    acc = lambda rows: pd.DataFrame(rows, columns=["seed", "model", "variant", "test", "accuracy"])  # noqa: E731
    rem = lambda rows: pd.DataFrame(rows, columns=["seed", "model", "mask", "token", "removed %"])  # noqa: E731
    ours = {"accuracy": acc([(0, "lstm", "mask simple", "length", 0.50), (0, "lstm", "full", "simple", 0.97),
                             (0, "lstm", "scratch", "length", 0.10)]),
            "removed": rem([(0, "lstm", "addprim_jump", "I_JUMP", 30.0), (0, "lstm", "addprim_jump", "I_WALK", 2.0),
                            (0, "lstm", "length", "I_JUMP", 99.0)])}
    theirs = {"accuracy": acc([(0, "lstm", "mask simple", "length", 0.535), (0, "lstm", "full", "simple", 0.92)]),
              "removed": rem([(0, "lstm", "addprim_jump", "I_JUMP", 18.0), (0, "lstm", "addprim_jump", "I_WALK", 0.0),
                              (0, "lstm", "length", "I_JUMP", 0.0)])}
    got = ref.compare_scan(ours, theirs)
    a = got[got.number == "exact match"].set_index(["variant", "test"])
    # one seed each: only the floors apply; |0.50 - 0.535| = 0.035 <= 0.04, |0.97 - 0.92| = 0.05 > 0.04
    assert a.loc[("mask simple", "length"), "verdict"] == ref.WITHIN
    assert a.loc[("full", "simple"), "verdict"] == ref.OUTSIDE
    assert a.loc[("full", "simple"), "tolerance"] == pytest.approx(ref.SCAN_ABS_TOL)
    assert ("scratch", "length") not in a.index          # only ours runs from-scratch nets
    r = got[got.number == "removed %"].set_index("token")
    # the add-jump mask's rows only: |30 - 18| = 12 > 10, |2 - 0| = 2 <= 10; the length mask's row is not compared
    assert r.loc["I_JUMP", "verdict"] == ref.OUTSIDE and r.loc["I_WALK", "verdict"] == ref.WITHIN
    assert r.loc["I_JUMP", "difference"] == pytest.approx(12.0) and len(r) == 2
    assert list(got.columns[:5]) == ["number", "model", "variant", "test", "token"]


def test_scan_checks_of_the_authors_code_borrow_our_from_scratch_networks_and_say_so():
    from wmask.book import claims
    acc = lambda rows: pd.DataFrame(rows, columns=["seed", "model", "variant", "test", "accuracy"])  # noqa: E731
    theirs = acc([(0, "lstm", v, t, a) for v, t, a in [
        ("full", "simple", 1.0), ("mask simple", "simple", 1.0), ("mask simple", "addprim_jump", 1.0),
        ("mask simple", "length", 1.0), ("mask simple", "addprim_turn_left", 1.0),
        ("mask addprim_jump", "addprim_jump", 0.3), ("mask length", "length", 0.9),
        ("mask addprim_turn_left", "addprim_turn_left", 1.0)]])
    scratch = acc([(s, "lstm", "scratch", t, a) for s in (0, 1)
                   for t, a in (("addprim_jump", 0.0), ("length", 0.2), ("addprim_turn_left", 0.4))])
    tables, borrowed = ref.with_our_scratch({"accuracy": theirs}, {"accuracy": scratch})
    assert borrowed and len(tables["accuracy"]) == len(theirs) + 6
    again, twice = ref.with_our_scratch(tables, {"accuracy": scratch})       # theirs has scratch rows: kept as is
    assert not twice and len(again["accuracy"]) == len(tables["accuracy"])
    lines = claims.authors_check("scan-split-masks-lstm", {"accuracy": theirs}, {"accuracy": scratch})
    # add jump: 0.3 <= 0 + 0.5 * 1.0 holds; length: 0.9 > 0.2 + 0.4 does not; turn left 1.0 > 0.4 + 0.3 does not
    assert [ln.holds for ln in lines] == [True, True, False, False]
    assert all(claims.BORROWED in ln.detail for ln in lines[1:]) and claims.BORROWED not in lines[0].detail
    alone = claims.authors_check("scan-split-masks-lstm", {"accuracy": theirs})
    assert [ln.holds for ln in alone] == [True, None, None, None]


def test_within_sentence_counts_and_names_the_numbers_outside():
    cmp = pd.DataFrame({"number": ["own drop %", "own drop %", "base accuracy"], "class": ["cat", "dog", "all"],
                        "ours mean": [40.0, 60.0, 0.781], "theirs mean": [70.0, 58.0, 0.776],
                        "verdict": [ref.OUTSIDE, ref.WITHIN, ref.WITHIN]})
    name = lambda r: f"{r['number']} {r['class']}"  # noqa: E731
    assert ref.within_sentence(cmp, name) == ("2 of 3 numbers lie within the authors' spread; outside: own drop % cat "
                                              "(ours 40.00, theirs 70.00)")
    assert ref.within_sentence(cmp[cmp.verdict == ref.WITHIN], name, digits=3) == (
        "2 of 2 numbers lie within the authors' spread")


def test_each_gap_names_the_protocol_difference_that_closes_it_or_says_none_does(tmp_path):
    from wmask.book.authors import explained
    def acc(values):   # two seeds of (mask, evaluated on) -> accuracy
        return pd.DataFrame([{"seed": s, "network": "fnn", "mask": m, "evaluated on": e, "accuracy": a + 0.001 * s}
                             for (m, e), a in values.items() for s in (0, 1)])
    theirs = acc({("¬pair 1", "pair 2"): 0.95, ("pair 1", "pair 2"): 0.01})
    ours = acc({("¬pair 1", "pair 2"): 0.83, ("pair 1", "pair 2"): 0.08})
    gaps = ref.compare_accuracy(ours, theirs)
    gaps = gaps[gaps.verdict == ref.OUTSIDE]
    assert len(gaps) == 2
    assert set(explained("double_addition", gaps, {"accuracy": theirs}, tmp_path)["explained by"]) == {
        "no protocol run yet"}
    proto = tmp_path / "authors" / "double_addition" / "cpu" / "protocol"
    for label, values in {"authors": {("¬pair 1", "pair 2"): 0.84, ("pair 1", "pair 2"): 0.02},
                          "ours+sequential": {("¬pair 1", "pair 2"): 0.82, ("pair 1", "pair 2"): 0.015}}.items():
        (proto / label).mkdir(parents=True)
        acc(values).to_csv(proto / label / "accuracy.csv", index=False)
    got = explained("double_addition", gaps, {"accuracy": theirs}, tmp_path).set_index("mask")
    assert got.loc["¬pair 1", "explained by"] == "not the protocol: outside with every difference removed"
    assert got.loc["¬pair 1", "under the authors' protocol"] == pytest.approx(0.8405)
    assert got.loc["pair 1", "explained by"] == "ours+sequential, authors"     # one difference first
