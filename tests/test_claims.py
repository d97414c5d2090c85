"""The claim checks on hand-made tables: each inequality can hold, fail, or be untestable."""
import pytest

from wmask import claims


def addmul_tables(plus_on_plus=0.95, plus_on_times=0.02, full=0.99):
    acc = {("full", "+"): full, ("full", "×"): full, ("+", "+"): plus_on_plus, ("+", "×"): plus_on_times,
           ("×", "×"): 0.9, ("×", "+"): 0.01, ("¬+", "×"): 0.8, ("¬+", "+"): 0.0, ("¬×", "+"): 0.1,
           ("¬×", "×"): 0.0}
    rows = [{"seed": s, "network": "fnn", "mask": m, "evaluated on": op, "accuracy": a}
            for s in (0, 1) for (m, op), a in acc.items()]
    layers = [{"seed": 0, "network": "fnn", "layer": name, "IoU": iou, "IoMin": iomin}
              for name, iou, iomin in (("in", 0.8, 0.9), ("h", 0.4, 0.7), ("out", 0.85, 0.9), ("total", 0.5, 0.8))]
    return {"accuracy": rows, "layers": layers, "sharing": [], "sweep": []}


CFG = {"networks": {"fnn": {}}, "size_study": [], "sweep_network": "fnn"}


def test_specialisation_check_holds_fails_and_is_untestable():
    assert [h for h, _ in claims.check("specialise", addmul_tables(), CFG)] == [True, True]
    assert [h for h, _ in claims.check("specialise", addmul_tables(plus_on_times=0.3), CFG)] == [False, True]
    assert [h for h, _ in claims.check("specialise", addmul_tables(plus_on_plus=0.5), CFG)] == [False, True]
    assert [h for h, _ in claims.check("specialise", addmul_tables(full=0.3), CFG)] == [None, None]


def test_overlap_and_inversion_checks():
    assert [h for h, _ in claims.check("partial-overlap", addmul_tables(), CFG)] == [True, True]
    assert [h for h, _ in claims.check("inverted-addmul", addmul_tables(), CFG)] == [True, False]


def test_tally_words():
    assert claims.tally([]) == "not run"
    assert claims.tally([(True, ""), (True, "")]) == "reproduced (2/2 checks)"
    assert claims.tally([(True, ""), (False, ""), (None, "")]) == "partly (1/2 checks; 1 untestable)"
    assert claims.tally([(None, "")]) == "untestable (1 checks)"
    assert claims.tally([(False, "")]) == "not reproduced (0/1 checks)"
    with pytest.raises(ValueError, match="unknown claim 'x'"):
        claims.check("x", {}, CFG)
