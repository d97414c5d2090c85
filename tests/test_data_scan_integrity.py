"""SCAN loader integrity: empty, undecodable, unreadable or malformed files are one-line ScanErrors naming the file
(and the line), never a traceback from deeper in the code."""
import pytest

from wmask.experiments.data import scan

TRAIN, TEST = scan.FILES["length"]
GOOD = "IN: jump twice OUT: I_JUMP I_JUMP\nIN: walk left OUT: I_TURN_LEFT I_WALK\n"


def write(root, train=GOOD, test=GOOD):
    for rel, text in ((TRAIN, train), (TEST, test)):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(text if isinstance(text, bytes) else text.encode())


def one_line(err) -> str:
    msg = str(err.value)
    assert "\n" not in msg and "Traceback" not in msg
    return msg


def test_valid_files_still_load(tmp_path):
    write(tmp_path, test=GOOD.replace("\n", "\r\n"))
    train, test = scan.load("length", tmp_path)
    assert train == test == [(["jump", "twice"], ["I_JUMP", "I_JUMP"]), (["walk", "left"], ["I_TURN_LEFT", "I_WALK"])]


@pytest.mark.parametrize("text", ["", "\n\n  \n"])
def test_empty_file_is_named(tmp_path, text):
    write(tmp_path, test=text)
    with pytest.raises(scan.ScanError, match=r"tasks_test_length\.txt is empty") as err:
        scan.load("length", tmp_path)
    assert str(tmp_path) in one_line(err)


def test_undecodable_bytes_name_file_line_and_column(tmp_path):
    write(tmp_path, train=GOOD.encode() + b"IN: jump OUT: I_JUMP\xe2\x80\x94\n")
    with pytest.raises(scan.ScanError, match=r"tasks_train_length\.txt:3:21: non-ASCII byte 0xe2") as err:
        scan.load("length", tmp_path)
    one_line(err)


def test_unreadable_path_is_named(tmp_path):
    write(tmp_path)
    (tmp_path / TEST).unlink()
    (tmp_path / TEST).mkdir()                       # a folder where the file should be
    with pytest.raises(scan.ScanError, match=r"tasks_test_length\.txt cannot be read") as err:
        scan.load("length", tmp_path)
    one_line(err)
    with pytest.raises(scan.ScanError, match=r"tasks_test_length\.txt cannot be read"):
        scan.read(tmp_path / TEST, verify=True)


def test_empty_action_sequence_is_named(tmp_path):
    write(tmp_path, train=GOOD + "IN: jump OUT: \n")
    with pytest.raises(scan.ScanError, match=r"tasks_train_length\.txt:3: empty action sequence"):
        scan.load("length", tmp_path)


def test_data_dir_that_is_missing_is_named(tmp_path):
    with pytest.raises(scan.ScanError, match=r"no SCAN files in .*nowhere.*expected"):
        scan.load("simple", tmp_path / "nowhere")
