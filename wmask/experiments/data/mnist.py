"""MNIST from a data directory, without torchvision.

Read from ``data_dir`` (or ``$WMASK_DATA/mnist``, or ``$WMASK_DATA``): the four files of the standard idx layout,
``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``,
each either raw or gzipped (``<name>.gz``). The **uncompressed** contents are checked against the canonical md5s (so a
copy re-gzipped elsewhere is still recognised as canonical), then parsed: the idx magic number, the dimensions in the
header, and the file's length against them. Every problem is a :class:`DatasetError` naming the file.

Decoded arrays are cached like CIFAR-10's (:mod:`wmask.experiments.data.common`): a later run reads one ``.npz``. With
``download_missing=True`` and no copy present, the canonical ``.gz`` files are fetched and verified.
"""
from __future__ import annotations

import gzip
import hashlib
import json
import os
import urllib.request
import zlib
from pathlib import Path

import numpy as np

from ...utils import atomic_path
from .common import DatasetError, cache_dir, check_md5, find_dir, read_cache, write_cache

FILES = {"train_x": "train-images-idx3-ubyte", "train_y": "train-labels-idx1-ubyte",
         "test_x": "t10k-images-idx3-ubyte", "test_y": "t10k-labels-idx1-ubyte"}
MD5 = {"train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",     # uncompressed
       "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
       "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
       "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637"}
GZ_MD5 = {"train-images-idx3-ubyte": "f68b3c2dcbeaaa9fbdd348bbdeb94873",  # the canonical .gz downloads
          "train-labels-idx1-ubyte": "d53e105ee54ea40749a09fcbcd1e9432",
          "t10k-images-idx3-ubyte": "9fb629c4189551a2d022fa330f9573f3",
          "t10k-labels-idx1-ubyte": "ec29112dd5afa0611ce80d1b7f02629c"}
URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"    # a mirror of the original files (the original site blocks)
CANONICAL = "MNIST (canonical idx files)"
_MAGIC = {3: 2051, 1: 2049}      # idx magic numbers: unsigned bytes, 3 dims (images) / 1 dim (labels)
_CACHE_FORMAT = 1


def data_dir(path: str | os.PathLike | None = None) -> Path:
    """``path``, else ``$WMASK_DATA/mnist`` (or ``$WMASK_DATA`` itself); an error names what was tried."""
    return find_dir(path, "mnist", "MNIST")


def _source(folder: Path, name: str) -> Path:
    for p in (folder / name, folder / f"{name}.gz"):
        if p.is_file():
            return p
    raise DatasetError(f"{folder / name}(.gz) is missing: MNIST needs {', '.join(FILES.values())} (raw or .gz) in "
                       f"{folder}")


def _read_bytes(path: Path) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (OSError, EOFError, zlib.error) as err:
        raise DatasetError(f"{path} cannot be read ({type(err).__name__}: {err}); the file is truncated or "
                           "damaged") from None


def parse_idx(raw: bytes, where: str, dims: int) -> np.ndarray:
    """An idx file's array (unsigned bytes, ``dims`` dimensions); a wrong magic number or length is an error."""
    if len(raw) < 4 + 4 * dims:
        raise DatasetError(f"{where} is truncated: {len(raw)} bytes, shorter than an idx header")
    magic = int.from_bytes(raw[:4], "big")
    if magic != _MAGIC[dims]:
        raise DatasetError(f"{where} is not an idx file of {dims}-d unsigned bytes: magic number {magic}, expected "
                           f"{_MAGIC[dims]}")
    shape = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(dims))
    start, size = 4 + 4 * dims, int(np.prod(shape))
    if len(raw) - start != size:
        what = "truncated" if len(raw) - start < size else "longer than its header says"
        raise DatasetError(f"{where} is {what}: {len(raw) - start:,} data bytes for shape {shape} ({size:,})")
    return np.frombuffer(raw, np.uint8, size, start).reshape(shape).copy()


def _read(folder: Path, verify: bool) -> tuple[dict, str]:
    arrays, digest = {}, hashlib.md5()
    for key, name in FILES.items():
        path = _source(folder, name)
        raw = _read_bytes(path)
        got = hashlib.md5(raw).hexdigest()
        if verify and got != MD5[name]:
            raise DatasetError(f"{path} is corrupt or not the canonical file: md5 of its contents {got}, expected "
                               f"{MD5[name]}")
        digest.update(got.encode())
        arrays[key] = parse_idx(raw, str(path), 3 if key.endswith("_x") else 1)
        if key.endswith("_y"):
            arrays[key] = arrays[key].astype(np.int64)
    for split in ("train", "test"):
        x, y = arrays[f"{split}_x"], arrays[f"{split}_y"]
        if len(x) != len(y):
            raise DatasetError(f"{folder}: {split} has {len(x):,} images but {len(y):,} labels")
        if y.size and y.max() > 9:
            raise DatasetError(f"{folder / FILES[f'{split}_y']}: labels outside 0..9 (found {y.max()})")
    return arrays, digest.hexdigest()


def _check_cached(arrays: dict):
    for split in ("train", "test"):
        x, y = arrays[f"{split}_x"], arrays[f"{split}_y"]
        if x.dtype != np.uint8 or x.shape[1:] != (28, 28) or y.shape != (len(x),):
            raise ValueError(f"{split} arrays {x.shape} / {y.shape}")


def _signature(folder: Path, verify: bool) -> str:
    files = [_source(folder, name) for name in FILES.values()]
    stats = [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files]
    return json.dumps({"format": _CACHE_FORMAT, "source": str(folder.resolve()), "verify": verify, "files": stats})


def download(folder: Path) -> Path:
    """Fetch the four canonical ``.gz`` files into ``folder`` and verify them; a clear error when offline."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in FILES.values():
        dest = folder / f"{name}.gz"
        if dest.exists():
            continue
        try:
            with atomic_path(dest) as tmp:
                urllib.request.urlretrieve(f"{URL}{name}.gz", tmp)
                check_md5(Path(tmp), GZ_MD5[name])
        except OSError as err:
            raise DatasetError(f"could not download {URL}{name}.gz ({err}); put the MNIST idx files (raw or .gz) "
                               f"into {folder}") from None
    return folder


def load(path: str | os.PathLike | None = None, download_missing: bool = False, verify: bool = True,
         cache: bool = True) -> dict:
    """Arrays ``train_x/test_x`` (uint8 ``[N, 28, 28]``), ``train_y/test_y`` (int64), plus ``dataset`` (a name that
    says whether the copy was verified as canonical), ``checksum`` (md5 over the four files' content md5s) and
    ``source``. ``verify=False`` skips the canonical checksums (small test fixtures in the idx format)."""
    folder = data_dir(path)
    if download_missing and not all((folder / n).is_file() or (folder / f"{n}.gz").is_file()
                                    for n in FILES.values()):
        download(folder)
    key = _signature(folder, verify)
    cache_file = cache_dir() / f"mnist-{hashlib.sha1(str(folder.resolve()).encode()).hexdigest()[:16]}.npz"
    cached = read_cache(cache_file, key, tuple(FILES), _check_cached) if cache else None
    if cached is not None:
        arrays, checksum = cached
    else:
        arrays, checksum = _read(folder, verify)
        if cache:
            write_cache(cache_file, key, arrays, checksum)
    name = CANONICAL if verify else "MNIST idx layout, checksums not verified (not canonical)"
    return {**arrays, "dataset": name, "checksum": checksum if verify else "unverified", "source": str(folder)}
