"""SCAN (Lake & Baroni, 2018): read the canonical files, or generate them from the grammar with no files at all.

Canonical layout under the data directory (``data_dir`` or ``$WMASK_DATA/scan``): ``tasks.txt``,
``simple_split/tasks_{train,test}_simple.txt``, ``length_split/tasks_{train,test}_length.txt`` and
``add_prim_split/tasks_{train,test}_addprim_{jump,turn_left}.txt``; one ``IN: <command> OUT: <actions>`` per line.

The generator reproduces the 20,910 commands and the length, add-jump and turn-left splits exactly (as multisets,
with the repeated primitive lines). The canonical simple split is a random 80/20 split that only the files define;
the generator's is a seeded random 80/20 split of the same sizes and is **not** the canonical one.
"""
from __future__ import annotations

import hashlib
import os
import random
import urllib.request
from pathlib import Path

from ...utils import atomic_path, atomic_write_text, file_md5

URL = "https://raw.githubusercontent.com/brendenlake/SCAN/master/"
FILES = {
    "all": ("tasks.txt", None),
    "simple": ("simple_split/tasks_train_simple.txt", "simple_split/tasks_test_simple.txt"),
    "length": ("length_split/tasks_train_length.txt", "length_split/tasks_test_length.txt"),
    "addprim_jump": ("add_prim_split/tasks_train_addprim_jump.txt", "add_prim_split/tasks_test_addprim_jump.txt"),
    "addprim_turn_left": ("add_prim_split/tasks_train_addprim_turn_left.txt",
                          "add_prim_split/tasks_test_addprim_turn_left.txt"),
}
MD5 = {"tasks.txt": "ef3b0eb1847826039fdc5d51d4c96888",
       "simple_split/tasks_train_simple.txt": "dcc93c20625b2d3ffbef685396edc959",
       "simple_split/tasks_test_simple.txt": "4986284a1ed140efe3238094767eabc7",
       "length_split/tasks_train_length.txt": "9bb7aee6f3ad462c3d51af01bcfe937b",
       "length_split/tasks_test_length.txt": "ac3bd14b5a1f1154ee25c797387e0c9a",
       "add_prim_split/tasks_train_addprim_jump.txt": "29a58625e8b2e3b628dfb73b4890dee0",
       "add_prim_split/tasks_test_addprim_jump.txt": "8350ed0a3aaaf425bed3cf8cd4b9eca7",
       "add_prim_split/tasks_train_addprim_turn_left.txt": "9270b654ef282b9ae27dae9c433a5770",
       "add_prim_split/tasks_test_addprim_turn_left.txt": "c8d54ac01e4b3fe9162e5c4588d2707c"}

ACTIONS = {"walk": "I_WALK", "look": "I_LOOK", "run": "I_RUN", "jump": "I_JUMP", "turn": None}
TURNS = {"left": "I_TURN_LEFT", "right": "I_TURN_RIGHT"}
IN_VOCAB = frozenset([*ACTIONS, *TURNS, "opposite", "around", "twice", "thrice", "and", "after"])
OUT_VOCAB = frozenset(["I_WALK", "I_LOOK", "I_RUN", "I_JUMP", "I_TURN_LEFT", "I_TURN_RIGHT"])
REPEATS = {"addprim_jump": ("jump", 1467), "addprim_turn_left": ("turn left", 2189)}  # copies in the train file


class ScanError(ValueError):
    """A malformed line, unknown token or missing file; the message names the file and line."""


# -- the grammar ---------------------------------------------------------------------------------------------------
def _verb_phrases() -> list[str]:
    out = []
    for x in ACTIONS:
        for d in TURNS:
            out += [f"{x} opposite {d}", f"{x} around {d}", f"{x} {d}"]
    return out + [x for x in ACTIONS if x != "turn"]


def commands() -> list[str]:
    """All 20,910 commands: ``C -> S and S | S after S | S``, ``S -> V twice | V thrice | V``."""
    s = [f"{v}{m}" for v in _verb_phrases() for m in ("", " twice", " thrice")]
    return [f"{a} {conj} {b}" for conj in ("and", "after") for a in s for b in s] + s


def interpret(command: str) -> list[str]:
    """The action sequence of a command (the grammar's semantics)."""
    for conj in (" and ", " after "):
        if conj in command:
            a, b = command.split(conj)
            return interpret(a) + interpret(b) if conj == " and " else interpret(b) + interpret(a)
    words = command.split()
    times = {"twice": 2, "thrice": 3}.get(words[-1], 1)
    words = words[:-1] if times > 1 else words
    act = [ACTIONS[words[0]]] if ACTIONS[words[0]] else []
    if len(words) == 1:
        return act * times
    turn = [TURNS[words[-1]]]
    if words[1] == "opposite":
        return (turn * 2 + act) * times
    if words[1] == "around":
        return (turn + act) * 4 * times
    return (turn + act) * times


def line(command: str) -> str:
    return f"IN: {command} OUT: {' '.join(interpret(command))}"


def generate(seed: int = 0) -> dict[str, list[str]]:
    """Every canonical file (relative path -> lines). The simple split is a seeded 80/20 split (not canonical)."""
    cmds = commands()
    lines = {c: line(c) for c in cmds}
    files = {"tasks.txt": [lines[c] for c in cmds]}
    shuffled = random.Random(seed).sample(cmds, len(cmds))
    cut = 16_728
    files[FILES["simple"][0]], files[FILES["simple"][1]] = ([lines[c] for c in shuffled[:cut]],
                                                            [lines[c] for c in shuffled[cut:]])
    files[FILES["length"][0]] = [lines[c] for c in cmds if len(interpret(c)) <= 22]
    files[FILES["length"][1]] = [lines[c] for c in cmds if len(interpret(c)) >= 24]
    for split, (prim, copies) in REPEATS.items():
        test = [c for c in cmds if prim in c and c != prim]
        train = [c for c in cmds if not (prim in c and c != prim)] + [prim] * (copies - 1)
        files[FILES[split][0]], files[FILES[split][1]] = [lines[c] for c in train], [lines[c] for c in test]
    return files


def write_generated(out_dir: str | os.PathLike, seed: int = 0) -> list[Path]:
    """Write the generated dataset in the canonical layout and file names; returns the files written."""
    written = []
    for rel, lines_ in generate(seed).items():
        path = Path(out_dir) / rel
        atomic_write_text(path, "".join(f"{x}\n" for x in lines_))
        written.append(path)
    atomic_write_text(Path(out_dir) / "GENERATED.txt", "Generated by wmask from the SCAN grammar. tasks.txt and the "
                      "length and add-primitive splits equal the canonical files as multisets; simple_split is a "
                      f"seeded random 80/20 split (seed {seed}), NOT the canonical one.\n")
    return written


# -- reading -------------------------------------------------------------------------------------------------------
def data_dir(path: str | os.PathLike | None = None) -> Path:
    """``path``, else ``$WMASK_DATA/scan`` (or ``$WMASK_DATA`` itself); an error says how to set it."""
    if path is not None:
        return Path(path)
    root = os.environ.get("WMASK_DATA") or None
    if root is None:
        raise ScanError("no SCAN directory: pass --data-dir or set WMASK_DATA (here: WMASK_DATA=../shared/data)")
    return Path(root) / "scan" if (Path(root) / "scan").is_dir() else Path(root)


def parse(text: str, where: str) -> list[tuple[list[str], list[str]]]:
    """``IN: ... OUT: ...`` lines -> (command words, actions); errors name ``where`` and the line number."""
    pairs = []
    for i, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        if not raw.startswith("IN: ") or " OUT: " not in raw:
            raise ScanError(f"{where}:{i}: expected 'IN: <command> OUT: <actions>', got {raw[:80]!r}")
        cmd, act = raw[4:].split(" OUT: ", 1)
        cmd, act = cmd.split(), act.split()
        bad = sorted(set(cmd) - IN_VOCAB) + sorted(set(act) - OUT_VOCAB)
        if bad or not cmd:
            raise ScanError(f"{where}:{i}: unknown token(s) {bad or ['<empty command>']} in {raw[:80]!r}")
        if not act:
            raise ScanError(f"{where}:{i}: empty action sequence in {raw[:80]!r}")
        pairs.append((cmd, act))
    return pairs


def read(path: Path, verify: bool = False) -> list[tuple[list[str], list[str]]]:
    """The (command words, actions) pairs of one SCAN file. ``verify``: the file must match its canonical md5.

    A missing, unreadable, empty or non-ASCII file is a one-line :class:`ScanError` naming the file (and the line
    and column of a bad byte)."""
    if not path.exists():
        raise ScanError(f"{path} is missing")
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise ScanError(f"{path} cannot be read ({err.strerror or err})") from None
    rel = "/".join(path.parts[-2:]) if path.parent.name.endswith("_split") else path.name
    if verify and rel in MD5 and hashlib.md5(raw).hexdigest() != MD5[rel]:
        raise ScanError(f"{path} is not the canonical file: md5 {hashlib.md5(raw).hexdigest()}, expected {MD5[rel]}")
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError as err:
        line, col = raw.count(b"\n", 0, err.start) + 1, err.start - raw.rfind(b"\n", 0, err.start)
        raise ScanError(f"{path}:{line}:{col}: non-ASCII byte 0x{raw[err.start]:02x}; SCAN files are ASCII "
                        "'IN: <command> OUT: <actions>' lines") from None
    pairs = parse(text, str(path))
    if not pairs:
        raise ScanError(f"{path} is empty: expected 'IN: <command> OUT: <actions>' lines")
    return pairs


def load(split: str, path: str | os.PathLike | None = None, verify: bool = False):
    """``(train, test)`` pairs of a split: ``simple``, ``length``, ``addprim_jump``, ``addprim_turn_left``."""
    if split not in FILES or split == "all":
        raise ScanError(f"unknown SCAN split {split!r}; expected one of {[s for s in FILES if s != 'all']}")
    folder = data_dir(path)
    if not folder.is_dir():
        raise ScanError(f"no SCAN files in {folder} (not a folder): expected {', '.join(FILES[split])} there; set "
                        "WMASK_DATA or generate them with `python -m wmask data scan --generate DIR`")
    return tuple(read(folder / rel, verify) for rel in FILES[split])


def download(folder: str | os.PathLike) -> None:
    """Fetch the canonical files into ``folder`` and verify their md5s; a clear error when offline."""
    for rel, md5 in MD5.items():
        dest = Path(folder) / rel
        try:
            with atomic_path(dest) as tmp:
                urllib.request.urlretrieve(URL + rel, tmp)
                if file_md5(tmp) != md5:
                    raise ScanError(f"downloaded {rel} has md5 {file_md5(tmp)}, expected {md5}")
        except OSError as err:
            raise ScanError(f"could not download {URL + rel} ({err}); generate the data instead with "
                            "`python -m wmask data scan --generate DIR`") from None
