"""CIFAR-10 loader integrity: damaged archives, missing/empty/unknown class folders, wrong image counts and a stale or
corrupt decode cache are named errors (or a rebuilt cache), never a silently smaller dataset or a traceback."""
import gzip
import io
import os
import pickle
import tarfile
import warnings

import numpy as np
import pytest
from PIL import Image

from wmask.experiments.data import cifar10 as cf

SMALL = {"train": 2, "test": 1}          # images per class in the fixtures below


def png(seed: int) -> bytes:
    x = np.random.default_rng(seed).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(x).save(buf, format="PNG")
    return buf.getvalue()


def members(counts=SMALL, classes=cf.CLASSES, skip=(), dirs=False):
    """(name, bytes or None for a folder) in the image-folder layout; ``skip``: (split, class) folders left out."""
    out = []
    for split, n in counts.items():
        for c, cls in enumerate(classes):
            if (split, cls) in skip:
                continue
            if dirs:
                out.append((f"{split}/{cls}", None))
            out += [(f"{split}/{cls}/{i:04d}.png", png(1000 * c + i + (split == "test") * 500)) for i in range(n)]
    return out


def tar_bytes(entries) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, raw in entries:
            info = tarfile.TarInfo(name)
            if raw is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(raw)
                tar.addfile(info, io.BytesIO(raw))
    return buf.getvalue()


def write_dir(root, entries):
    for name, raw in entries:
        path = root / name
        if raw is None:
            path.mkdir(parents=True, exist_ok=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(raw)


def plain_tarfile_count(raw: bytes) -> int:
    """Image files Python's tarfile lists without any error (what the loader used to rely on)."""
    with tarfile.open(fileobj=io.BytesIO(raw), mode="r:gz") as tar:
        return sum(m.isfile() for m in tar)


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("WMASK_CACHE", str(tmp_path / "cache"))


# -- case 1: damaged archives and image counts ----------------------------------------------------------------------
def test_damaged_member_header_is_an_error_not_an_early_end(tmp_path):
    raw = tar_bytes(members())
    header = raw.index(b"train/frog/0000.png")            # the name field starts the member's 512-byte header
    damaged = bytearray(raw)
    damaged[header + 1] ^= 0x01                             # one flipped bit: the header checksum no longer matches
    (tmp_path / "images.tar.gz").write_bytes(gzip.compress(bytes(damaged)))
    assert plain_tarfile_count(gzip.compress(bytes(damaged))) < 30        # the old silent behaviour
    with pytest.raises(cf.DatasetError, match=r"images\.tar\.gz.*damaged tar header at byte \d+ .*after "
                                              r"test/truck/0000\.png|images\.tar\.gz.*damaged tar header"):
        cf.load(tmp_path, expected_counts=SMALL)


def test_flipped_compressed_byte_is_an_error(tmp_path):
    good = gzip.compress(tar_bytes(members()), mtime=0)
    for pos in range(20, len(good) - 8):                   # a flip that plain tarfile reads as an early end
        bad = bytearray(good)
        bad[pos] ^= 0x01
        try:
            if plain_tarfile_count(bytes(bad)) < 30:
                break
        except (tarfile.TarError, OSError, EOFError, Exception):   # noqa: B014 - zlib.error too
            continue
    else:
        pytest.skip("no silent single-bit damage found in this fixture")
    (tmp_path / "images.tar.gz").write_bytes(bytes(bad))
    with pytest.raises(cf.DatasetError, match=r"images\.tar\.gz"):
        cf.load(tmp_path, expected_counts=SMALL)


def test_tar_without_its_end_marker_is_truncated(tmp_path):
    raw = tar_bytes(members())
    cut = raw.index(b"test/truck/0000.png")               # drop the last member and the end-of-archive blocks
    (tmp_path / "images.tar.gz").write_bytes(gzip.compress(raw[:cut]))
    with pytest.raises(cf.DatasetError, match=r"images\.tar\.gz is truncated.*after test/ship/0000\.png"):
        cf.load(tmp_path, expected_counts=SMALL)


def test_good_archive_still_loads_with_folder_entries(tmp_path):
    entries = members(dirs=True) + [("README.md", b"hello")]
    (tmp_path / "images.tar.gz").write_bytes(gzip.compress(tar_bytes(entries)))
    got = cf.load(tmp_path, expected_counts=SMALL)
    assert got["train_x"].shape == (20, 32, 32, 3) and got["test_x"].shape == (10, 32, 32, 3)
    assert got["train_y"].tolist() == [c for c in range(10) for _ in range(2)]
    assert got["train_x"][0].tobytes() == np.asarray(Image.open(io.BytesIO(png(0)))).tobytes()


def test_image_counts_are_checked_against_expected_sizes(tmp_path):
    entries = [e for e in members() if e[0] != "train/frog/0001.png"]
    (tmp_path / "images.tar.gz").write_bytes(gzip.compress(tar_bytes(entries)))
    with pytest.raises(cf.DatasetError, match=r"images\.tar\.gz.*train/frog/ has 1 image.*expected 2"):
        cf.load(tmp_path, expected_counts=SMALL)
    with pytest.raises(cf.DatasetError, match=r"train/airplane/ has 2 image.*expected 5,000"):
        cf.load(tmp_path)                                  # the default is the real dataset's 5,000 / 1,000
    with pytest.raises(ValueError, match="expected_counts"):
        cf.load(tmp_path, expected_counts={"train": 2})


def test_canonical_batches_counts_and_structure_are_checked(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    g = np.random.default_rng(0)
    for i in range(1, 6):
        labels = [i - 1, i + 4] * 2                        # 2 images per class over the five batches
        (folder / f"data_batch_{i}").write_bytes(pickle.dumps(
            {"data": g.integers(0, 256, (4, 3072), dtype=np.uint8), "labels": labels}))
    (folder / "test_batch").write_bytes(pickle.dumps({"data": g.integers(0, 256, (10, 3072), dtype=np.uint8),
                                                      "labels": list(range(10))}))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": list(cf.CLASSES)}))
    assert cf.load(tmp_path, verify=False, expected_counts=SMALL)["train_x"].shape == (10 * 2, 32, 32, 3)
    with pytest.raises(cf.DatasetError, match=r"cifar-10-batches-py.*train/airplane/ has 2 image.*expected 5,000"):
        cf.load(tmp_path, verify=False, cache=False)
    (folder / "data_batch_3").write_bytes(pickle.dumps({"data": np.zeros((2, 100), np.uint8), "labels": [0, 1]}))
    with pytest.raises(cf.DatasetError, match=r"data_batch_3.*3072"):
        cf.load(tmp_path, verify=False, expected_counts=SMALL)
    (folder / "data_batch_3").write_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(cf.DatasetError, match=r"data_batch_3.*'data' and 'labels'"):
        cf.load(tmp_path, verify=False, expected_counts=SMALL)


# -- case 2: class folders ----------------------------------------------------------------------------------------
def test_missing_class_folder_is_named(tmp_path):
    write_dir(tmp_path, members(skip={("train", "frog")}))
    with pytest.raises(cf.DatasetError, match=r"missing class folder\(s\) train/frog/"):
        cf.load(tmp_path, expected_counts=SMALL)


def test_empty_and_unknown_class_folders_are_named(tmp_path):
    write_dir(tmp_path, members() + [("test/cat_extra", None)])
    with pytest.raises(cf.DatasetError, match=r"unknown class folder\(s\) test/cat_extra/"):
        cf.load(tmp_path, expected_counts=SMALL)
    (tmp_path / "test/cat_extra").rmdir()
    for f in (tmp_path / "train/dog").iterdir():
        f.unlink()
    with pytest.raises(cf.DatasetError, match=r"empty class folder\(s\) train/dog/"):
        cf.load(tmp_path, expected_counts=SMALL)


def test_empty_class_folder_inside_an_archive_is_named(tmp_path):
    entries = [e for e in members(dirs=True) if not e[0].startswith("test/ship/")]
    (tmp_path / "images.tar.gz").write_bytes(gzip.compress(tar_bytes(entries)))
    with pytest.raises(cf.DatasetError, match=r"images\.tar\.gz: empty class folder\(s\) test/ship/"):
        cf.load(tmp_path, expected_counts=SMALL)


# -- case 3: the decode cache -------------------------------------------------------------------------------------
def test_cache_is_rebuilt_when_the_source_changes(tmp_path):
    archive = tmp_path / "images.tar.gz"
    archive.write_bytes(gzip.compress(tar_bytes(members())))
    first = cf.load(tmp_path, expected_counts=SMALL)
    assert len(list((tmp_path / "cache").glob("cifar10-*.npz"))) == 1
    # same size, new content and mtime: a damaged copy must be read (and rejected), not served from the cache
    raw = bytearray(archive.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    archive.write_bytes(bytes(raw))
    os.utime(archive, ns=(archive.stat().st_atime_ns, archive.stat().st_mtime_ns + 10**9))
    with pytest.raises(cf.DatasetError, match=r"images\.tar\.gz"):
        cf.load(tmp_path, expected_counts=SMALL)
    # a different valid archive at the same path: its own images, not the cached ones
    archive.write_bytes(gzip.compress(tar_bytes(members(counts={"train": 3, "test": 1}))))
    second = cf.load(tmp_path, expected_counts={"train": 3, "test": 1})
    assert len(second["train_x"]) == 30 and len(first["train_x"]) == 20
    assert len(list((tmp_path / "cache").glob("cifar10-*.npz"))) == 1   # replaced, not piled up


def test_stale_cache_of_a_damaged_batch_folder_is_not_served(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    g = np.random.default_rng(0)
    for name, labels in [*((f"data_batch_{i}", [i - 1, i + 4] * 2) for i in range(1, 6)), ("test_batch", range(10))]:
        (folder / name).write_bytes(pickle.dumps({"data": g.integers(0, 256, (len(labels), 3072), np.uint8),
                                                  "labels": list(labels)}))
    (folder / "batches.meta").write_bytes(b"meta")
    cf.load(tmp_path, verify=False, expected_counts=SMALL)
    (folder / "test_batch").write_bytes(b"garbage")
    with pytest.raises(cf.DatasetError, match="test_batch cannot be read"):
        cf.load(tmp_path, verify=False, expected_counts=SMALL)


def test_corrupt_cache_is_rebuilt_with_a_warning(tmp_path):
    (tmp_path / "images.tar.gz").write_bytes(gzip.compress(tar_bytes(members())))
    first = cf.load(tmp_path, expected_counts=SMALL)
    (cached,) = (tmp_path / "cache").glob("cifar10-*.npz")
    cached.write_bytes(cached.read_bytes()[:1000])                    # truncated
    with pytest.warns(UserWarning, match=r"cifar10-.*\.npz.*rebuilding"):
        again = cf.load(tmp_path, expected_counts=SMALL)
    assert np.array_equal(again["train_x"], first["train_x"]) and again["checksum"] == first["checksum"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.array_equal(cf.load(tmp_path, expected_counts=SMALL)["test_x"], first["test_x"])   # cache is good


def test_unwritable_cache_is_a_warning_not_a_failure(tmp_path, monkeypatch):
    (tmp_path / "images.tar.gz").write_bytes(gzip.compress(tar_bytes(members())))
    (tmp_path / "not_a_dir").write_text("x")
    monkeypatch.setenv("WMASK_CACHE", str(tmp_path / "not_a_dir" / "cache"))
    with pytest.warns(UserWarning, match="could not write the decode cache"):
        assert len(cf.load(tmp_path, expected_counts=SMALL)["train_x"]) == 20


# -- case 5: other unreadable inputs ------------------------------------------------------------------------------
def test_unreadable_image_and_archive_members_are_named(tmp_path):
    entries = members()
    entries[3] = (entries[3][0], b"\x89PNG not really")
    write_dir(tmp_path / "d", entries)
    with pytest.raises(cf.DatasetError, match=r"train/airplane/.* is not a readable image|train/automobile/.*"
                                              r"is not a readable image"):
        cf.load(tmp_path / "d", expected_counts=SMALL)
    (tmp_path / "a").mkdir()
    (tmp_path / "a/images.tar.gz").write_bytes(b"")
    with pytest.raises(cf.DatasetError, match=r"images\.tar\.gz"):
        cf.load(tmp_path / "a", expected_counts=SMALL)
