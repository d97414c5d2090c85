"""MNIST loading from tiny idx fixtures written in the standard format (raw and gzipped), the canonical checksums,
and the errors for a corrupted byte, a truncated file and a missing file."""
import gzip
import hashlib
from pathlib import Path

import numpy as np
import pytest

from wmask.experiments.data import mnist

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"


def idx(array: np.ndarray) -> bytes:
    header = (2051 if array.ndim == 3 else 2049).to_bytes(4, "big")
    header += b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_fixture(folder: Path, gz: bool = True, seed: int = 0) -> dict:
    g = np.random.default_rng(seed)
    arrays = {"train_x": g.integers(0, 256, (12, 28, 28)), "train_y": np.arange(12) % 10,
              "test_x": g.integers(0, 256, (5, 28, 28)), "test_y": np.arange(5)}
    folder.mkdir(parents=True, exist_ok=True)
    for key, name in mnist.FILES.items():
        raw = idx(arrays[key])
        if gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(raw))
        else:
            (folder / name).write_bytes(raw)
    return arrays


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("WMASK_CACHE", str(tmp_path / "cache"))


@pytest.mark.parametrize("gz", [True, False])
def test_idx_round_trip_raw_and_gzipped(tmp_path, gz):
    arrays = write_fixture(tmp_path / "m", gz)
    for _ in range(2):                                   # decoded, then read back from the cache
        d = mnist.load(tmp_path / "m", verify=False)
        for key in mnist.FILES:
            np.testing.assert_array_equal(d[key], arrays[key])
        assert d["train_y"].dtype == np.int64 and "not canonical" in d["dataset"]
    assert len(list((tmp_path / "cache").glob("mnist-*.npz"))) == 1


def test_checksums_are_of_the_uncompressed_contents(tmp_path, monkeypatch):
    write_fixture(tmp_path / "m")
    with pytest.raises(mnist.DatasetError, match=r"train-images-idx3-ubyte\.gz is corrupt or not the canonical "
                                                 r"file: md5 of its contents \w+, expected 6bbc9ace"):
        mnist.load(tmp_path / "m")
    sums = {name: hashlib.md5(gzip.decompress((tmp_path / "m" / f"{name}.gz").read_bytes())).hexdigest()
            for name in mnist.FILES.values()}
    monkeypatch.setattr(mnist, "MD5", sums)          # the fixture as "canonical": verified and named so
    d = mnist.load(tmp_path / "m")
    assert d["dataset"] == mnist.CANONICAL and d["checksum"] != "unverified"


def test_a_corrupted_byte_is_caught(tmp_path, monkeypatch):
    write_fixture(tmp_path / "m", gz=False)
    sums = {name: hashlib.md5((tmp_path / "m" / name).read_bytes()).hexdigest() for name in mnist.FILES.values()}
    monkeypatch.setattr(mnist, "MD5", sums)
    path = tmp_path / "m" / "t10k-images-idx3-ubyte"
    raw = bytearray(path.read_bytes())
    raw[100] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(mnist.DatasetError, match=r"t10k-images-idx3-ubyte is corrupt or not the canonical file"):
        mnist.load(tmp_path / "m", cache=False)


def test_truncated_files(tmp_path):
    write_fixture(tmp_path / "raw", gz=False)
    path = tmp_path / "raw" / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(mnist.DatasetError, match=r"train-images-idx3-ubyte is truncated: 9,398 data bytes for "
                                                 r"shape \(12, 28, 28\)"):
        mnist.load(tmp_path / "raw", verify=False)
    write_fixture(tmp_path / "gz")
    path = tmp_path / "gz" / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-12])          # cuts into the gzip trailer and data
    with pytest.raises(mnist.DatasetError, match=r"t10k-labels-idx1-ubyte\.gz cannot be read .*truncated"):
        mnist.load(tmp_path / "gz", verify=False)


def test_missing_file_and_bad_header(tmp_path):
    write_fixture(tmp_path / "m")
    (tmp_path / "m" / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(mnist.DatasetError, match=r"train-labels-idx1-ubyte\(\.gz\) is missing"):
        mnist.load(tmp_path / "m", verify=False)
    with pytest.raises(mnist.DatasetError, match="magic number 2049, expected 2051"):
        mnist.parse_idx(idx(np.zeros(20)), "x", 3)


@pytest.mark.skipif(not SHARED.is_dir(), reason="the project's shared MNIST copy is not here")
def test_the_shared_copy_is_canonical(tmp_path):
    d = mnist.load(SHARED)
    assert d["dataset"] == mnist.CANONICAL
    assert d["train_x"].shape == (60000, 28, 28) and d["test_x"].shape == (10000, 28, 28)
    assert np.bincount(d["test_y"]).tolist()[:3] == [980, 1135, 1032]      # the well-known test class counts
