"""SCAN: the grammar generator against the canonical files (when present), the parser, and its errors."""
import os
from collections import Counter
from pathlib import Path

import pytest

from wmask.__main__ import main
from wmask.experiments.data import scan

# the canonical files: $WMASK_DATA/scan (the Makefile points it at ../shared/data), else ../shared/data/scan
CANONICAL = Path(os.environ.get("WMASK_DATA") or Path(__file__).resolve().parents[2] / "shared/data") / "scan"


def test_grammar_counts_and_semantics():
    cmds = scan.commands()
    assert len(cmds) == len(set(cmds)) == 20_910
    assert scan.interpret("jump opposite left and walk thrice") == ["I_TURN_LEFT", "I_TURN_LEFT", "I_JUMP"] + [
        "I_WALK"] * 3
    assert scan.interpret("jump opposite left after walk around left") == (["I_TURN_LEFT", "I_WALK"] * 4
                                                                          + ["I_TURN_LEFT", "I_TURN_LEFT", "I_JUMP"])
    assert scan.interpret("turn left twice") == ["I_TURN_LEFT"] * 2 and scan.interpret("turn around right") == [
        "I_TURN_RIGHT"] * 4
    assert max(len(scan.interpret(c)) for c in cmds) == 48


@pytest.mark.skipif(not CANONICAL.is_dir(), reason=f"canonical SCAN files not found at {CANONICAL}")
def test_generator_equals_the_canonical_files_as_multisets():
    gen = scan.generate(seed=0)
    for rel, lines in gen.items():
        canon = (CANONICAL / rel).read_text().splitlines()
        if rel.startswith("simple_split"):
            assert len(lines) == len(canon)          # same sizes; the canonical split is random (files only)
        else:
            assert Counter(lines) == Counter(canon), rel
    train, test = scan.load("addprim_jump", CANONICAL, verify=True)
    assert len(train) == 14_670 and len(test) == 7_706


def test_cli_writes_the_canonical_layout(tmp_path):
    assert main(["data", "scan", "--generate", str(tmp_path)]) == 0
    for rel in scan.MD5:
        assert (tmp_path / rel).exists(), rel
    assert "NOT the canonical" in (tmp_path / "GENERATED.txt").read_text()
    train, test = scan.load("length", tmp_path)
    assert max(len(a) for _, a in train) <= 22 and min(len(a) for _, a in test) >= 24
    with pytest.raises(scan.ScanError, match="not the canonical file"):
        scan.load("simple", tmp_path, verify=True)


def test_parser_errors_name_file_and_line(tmp_path):
    good = "IN: jump twice OUT: I_JUMP I_JUMP\n"
    assert scan.parse(good, "x") == [(["jump", "twice"], ["I_JUMP", "I_JUMP"])]
    with pytest.raises(scan.ScanError, match=r"f.txt:2: expected 'IN: <command> OUT: <actions>'"):
        scan.parse(good + "jump twice I_JUMP\n", "f.txt")
    with pytest.raises(scan.ScanError, match=r"f.txt:1: unknown token\(s\) \['hop'\]"):
        scan.parse("IN: hop OUT: I_JUMP\n", "f.txt")
    with pytest.raises(scan.ScanError, match=r"unknown token\(s\) \['I_FLY'\]"):
        scan.parse("IN: jump OUT: I_FLY\n", "f.txt")
    with pytest.raises(scan.ScanError, match="tasks_train_simple.txt is missing"):
        scan.load("simple", tmp_path)
    with pytest.raises(scan.ScanError, match="unknown SCAN split 'nope'"):
        scan.load("nope", tmp_path)
