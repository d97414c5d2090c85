"""The Mathematics-dataset loader: the v1.0 layout from a folder or a .tar.gz, checksums, named errors for malformed
files, the held-out split; fixtures written in the same format (never a download)."""
import hashlib
import io
import os
import tarfile
from pathlib import Path

import pytest

from wmask.experiments.data import dm_math
from wmask.experiments.data.common import DatasetError

SHARED = Path(os.environ.get("WMASK_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data") / "dm_math"


def files(n=40) -> dict[str, str]:
    out = {}
    for d in (*dm_math.DIFFICULTIES, "interpolate"):
        for m in dm_math.MODULES:
            out[f"{d}/{m}.txt"] = "".join(f"What is {i} + {len(d)}? ({m})\n{i + len(d)}\n" for i in range(n))
    for m in dm_math.EXTRAPOLATE.values():
        out[f"extrapolate/{m}.txt"] = "Sort 3, 1, 2.\n1, 2, 3\n"
    return out


def write_folder(root: Path, name=dm_math.GENERATED, content=None) -> Path:
    for rel, text in (content or files()).items():
        (root / name / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / name / rel).write_text(text)
    return root


def write_archive(root: Path, name=dm_math.GENERATED, content=None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    with tarfile.open(root / f"{name}.tar.gz", "w:gz") as tar:
        for rel, text in (content or files()).items():
            data = text.encode()
            info = tarfile.TarInfo(f"{name}/{rel}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return root / f"{name}.tar.gz"


def test_folder_and_archive_read_the_same(tmp_path, monkeypatch):
    a = dm_math.load(path=write_folder(tmp_path / "folder", dm_math.RELEASED))
    archive = write_archive(tmp_path / "archive", dm_math.RELEASED)
    b = dm_math.load(path=archive.parent)
    assert a["train"] == b["train"] and a["interpolate"] == b["interpolate"] and a["extrapolate"] == b["extrapolate"]
    assert a["train"]["train-hard"]["comparison__sort"][3] == ("What is 3 + 10? (comparison__sort)", "13")
    assert set(a["extrapolate"]) == set(dm_math.EXTRAPOLATE)
    for data in (a, b):        # named like the release, but no checksum on record says it is
        assert "not confirmed to be the released v1.0" in data["dataset"]
    assert a["checksum"].startswith("folder (sha256 of the files read ")
    assert b["checksum"] == f"sha256 {hashlib.sha256(archive.read_bytes()).hexdigest()} (no published checksum to check)"
    monkeypatch.setenv("WMASK_DATA", str(tmp_path / "folder"))           # $WMASK_DATA (no dm_math/ below it)
    assert dm_math.load(["comparison__sort"])["train"]["train-easy"]["comparison__sort"] == \
        a["train"]["train-easy"]["comparison__sort"]


def test_a_generated_archive_is_checked_and_named(tmp_path):
    archive = write_archive(tmp_path)
    with pytest.raises(DatasetError, match=f"{archive}.*sha256 .*expected 23439cf0"):
        dm_math.load(path=tmp_path)                                      # our fixture is not the known copy
    data = dm_math.load(path=write_folder(tmp_path / "f"))
    assert "a generated copy, not the released v1.0" in data["dataset"]


@pytest.mark.parametrize("bad, message", [
    ("q\na\nq2\n", "has 3 lines, an odd number"),
    ("q\n\nq2\na2\n", "line 2 is empty \\(a answer expected\\)"),
    ("", "is empty"),
    ("q\nanswer \xe9\n", "not ASCII"),
])
def test_malformed_files_are_named(tmp_path, bad, message):
    content = files()
    content["train-medium/algebra__linear_1d.txt"] = bad
    write_folder(tmp_path, content=content)
    with pytest.raises(DatasetError, match=f"train-medium/algebra__linear_1d.txt.*{message}"):
        dm_math.load(path=tmp_path)


def test_missing_files_and_folders_are_named(tmp_path):
    content = files()
    del content["interpolate/polynomials__collect.txt"]
    write_archive(tmp_path, dm_math.RELEASED, content)
    with pytest.raises(DatasetError, match="interpolate/polynomials__collect.txt is missing"):
        dm_math.load(path=tmp_path)
    with pytest.raises(DatasetError, match="no Mathematics dataset in .*expected mathematics_dataset-v1.0"):
        dm_math.load(path=tmp_path / "nowhere")
    with pytest.raises(ValueError, match="unknown Mathematics modules \\['numbers__gcd'\\]"):
        dm_math.load(["numbers__gcd"], path=tmp_path)


def test_truncated_archive_is_named(tmp_path):
    archive = write_archive(tmp_path, dm_math.RELEASED)
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(DatasetError, match="damaged or truncated|cannot be read|is missing"):
        dm_math.load(path=tmp_path)


def test_a_flipped_byte_anywhere_in_an_archive_is_an_error_naming_it(tmp_path):
    archive = write_archive(tmp_path, dm_math.RELEASED)
    good = archive.read_bytes()
    assert dm_math.load(path=tmp_path)["train"]["train-easy"]["comparison__sort"][0][1] == "10"
    for at in (len(good) // 3, len(good) // 2, len(good) - 6):    # compressed data, and the CRC in the trailer
        bad = bytearray(good)
        bad[at] ^= 0x01
        archive.write_bytes(bytes(bad))
        with pytest.raises(DatasetError, match=f"{archive}.*(damaged|cannot be read)"):
            dm_math.load(path=tmp_path)


def test_data_is_labelled_by_its_checksum_not_its_name(tmp_path, monkeypatch):
    archive = write_archive(tmp_path, dm_math.RELEASED)
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    assert "not confirmed to be the released v1.0" in dm_math.load(path=tmp_path)["dataset"]
    monkeypatch.setitem(dm_math.KNOWN, digest, "the archive on record")
    assert dm_math.load(path=tmp_path)["dataset"] == "DeepMind Mathematics (the archive on record)"
    folder = write_folder(tmp_path / "f", dm_math.RELEASED)
    one = dm_math.load(path=folder)["checksum"]
    (folder / dm_math.RELEASED / "train-easy" / "comparison__sort.txt").write_text("What is 1 + 1?\n3\n")
    assert dm_math.load(path=folder)["checksum"] != one           # the folder's checksum covers contents


def test_held_out_is_proportional_disjoint_and_seeded():
    pairs = [(f"q{i}", str(i)) for i in range(30_000)]
    train, test = dm_math.held_out(pairs, seed=0)
    assert len(test) == 450 and len(train) == 29_550                    # 10,000 / 666,666 of the file
    assert not set(train) & set(test) and sorted(train + test) == sorted(pairs)
    assert dm_math.held_out(pairs, seed=0) == (train, test) and dm_math.held_out(pairs, seed=1)[1] != test
    assert len(dm_math.held_out([("q", "a")] * 666_666)[1]) == 10_000
    with pytest.raises(DatasetError, match="too few"):
        dm_math.held_out([("q", "a")])


def test_character_vocabulary(tmp_path):
    content = files(3)
    content["extrapolate/comparison__sort_more.txt"] = "Sort z~.\n~z\n"     # characters seen only here count too
    data = dm_math.load(path=write_folder(tmp_path, content=content))
    v = dm_math.vocabulary(data)
    chars = {c for text in content.values() for c in text if c != "\n"}
    assert set(v.words) == chars | {"<pad>", "<eos>"} and v.words[0] == "<pad>" and v.words[-1] == "<eos>"
    assert v.encode("Sort z~.") == [v.words.index(c) for c in "Sort z~."]
    with pytest.raises(ValueError, match="\\['#'\\] are not in the vocabulary"):
        v.encode("#")


@pytest.mark.skipif(not (SHARED / f"{dm_math.GENERATED}.tar.gz").exists(), reason="the shared copy is not here")
def test_the_shared_generated_copy():
    data = dm_math.load(path=SHARED)
    assert data["checksum"] == f"sha256 {dm_math.SHA256[dm_math.GENERATED + '.tar.gz']}"
    assert all(len(p) == 30_000 for d in data["train"].values() for p in d.values())
    assert all(len(p) == 2_000 for p in data["interpolate"].values())
    assert {len(p) for p in data["extrapolate"].values()} == {2_000}
    pairs = [qa for d in data["train"].values() for p in d.values() for qa in p]
    assert max(len(q) for q, _ in pairs) <= 160 and max(len(a) for _, a in pairs) <= 30   # the generator's limits
