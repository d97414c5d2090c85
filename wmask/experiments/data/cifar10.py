"""CIFAR-10 from a data directory, without torchvision.

Layouts read, in this order (``data_dir`` or ``$WMASK_DATA/cifar10`` or ``$WMASK_DATA``):

1. ``cifar-10-batches-py/`` (the canonical pickle batches), every file checked against its canonical md5;
2. ``cifar-10-python.tar.gz`` (the canonical archive), checked against its md5;
3. an image folder ``train/<class>/*.jpg|png`` and ``test/<class>/*``, as a folder or inside any ``*.tar.gz``
   (e.g. ``CIFAR-10-images-jpeg.tar.gz``). This is **not** the canonical data: :func:`load` names it so, with the
   archive's md5, and every result computed from it must carry that name. No md5 of such a copy is published, so
   what is read is checked instead: the whole archive is read to its end (a damaged member header or gzip CRC is an
   error, not a quietly shorter archive), exactly the ten class folders must be present in each split, and none
   may be empty.

Whatever the layout, the number of images per class and split must match ``expected_counts`` (default: the real
dataset's 5,000 train and 1,000 test images per class); small test fixtures pass their own sizes.

Decoded arrays are cached (``.npz`` under ``$WMASK_CACHE`` or ``~/.cache/wmask``, one file per source path), so later
runs start in seconds. The cache records the source files' paths, sizes and modification times: when any of them
changes, the source is read and verified again; an unreadable cache file is rebuilt with a warning. With
``download_missing=True`` and no copy present, the canonical archive is fetched and verified.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import pickle
import tarfile
import urllib.request
import zlib
from pathlib import Path

import numpy as np

from ...utils import atomic_path
from .common import DatasetError, cache_dir, find_dir, check_md5, md5, read_cache, write_cache  # noqa: F401

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
SPLITS = ("train", "test")
CLASS_COUNTS = {"train": 5000, "test": 1000}      # images per class in the real dataset
URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
ARCHIVE_MD5 = "c58f30108f718f92721af3b95e74349a"
BATCH_MD5 = {"data_batch_1": "c99cafc152244af753f735de768cd75f", "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
             "data_batch_3": "54ebc095f3ab1f0389bbae665268c751", "data_batch_4": "634d18415352ddfa80567beed471001a",
             "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb", "test_batch": "40351d587109b95175f43aff81a1287e",
             "batches.meta": "5ff9c542aee3614f3951f8cda6e48888"}
CANONICAL = "CIFAR-10 (canonical python batches)"
IMAGE_EXT = (".jpg", ".jpeg", ".png")
_CACHE_FORMAT = 2           # bump when what the cache holds changes


def data_dir(path: str | os.PathLike | None = None) -> Path:
    """``path``, else ``$WMASK_DATA/cifar10`` (or ``$WMASK_DATA`` itself); an error names what was tried."""
    return find_dir(path, "cifar10", "CIFAR-10")


_md5, _check_md5 = md5, check_md5


# -- checks shared by every layout -------------------------------------------------------------------------------
def _expected(counts) -> dict[str, int]:
    """``{split: images per class}`` from ``expected_counts`` (``None``: the real dataset's)."""
    counts = CLASS_COUNTS if counts is None else counts
    try:
        out = {s: int(counts[s]) for s in SPLITS}
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"expected_counts must give images per class for 'train' and 'test', e.g. "
                         f"{CLASS_COUNTS}; got {counts!r}") from None
    if set(counts) - set(SPLITS) or min(out.values()) < 1:
        raise ValueError(f"expected_counts must be positive counts for exactly 'train' and 'test'; got {counts!r}")
    return out


def _check_counts(labels: dict[str, np.ndarray], where: str, expected: dict[str, int]):
    """Images per class and split against the expected sizes; the error lists every mismatch."""
    wrong = []
    for split in SPLITS:
        y = np.asarray(labels[split])
        if y.size and (y.min() < 0 or y.max() >= len(CLASSES)):
            raise DatasetError(f"{where}: {split} labels outside 0..9 (found {y.min()}..{y.max()})")
        found = np.bincount(y, minlength=len(CLASSES))
        wrong += [f"{split}/{cls}/ has {n:,} image(s), expected {expected[split]:,}"
                  for cls, n in zip(CLASSES, found) if n != expected[split]]
    if wrong:
        more = f" (and {len(wrong) - 6} more)" if len(wrong) > 6 else ""
        raise DatasetError(f"{where}: wrong number of images: {'; '.join(wrong[:6])}{more}; the copy is incomplete "
                           "or damaged (small fixtures: pass expected_counts)")


# -- canonical batches ---------------------------------------------------------------------------------------------
def _unpickle(raw: bytes, name: str) -> dict:
    try:
        return pickle.loads(raw, encoding="latin1")
    except Exception as err:  # noqa: BLE001 - any unpickling failure is a corrupt file
        raise DatasetError(f"{name} cannot be read as a CIFAR-10 batch ({type(err).__name__}: {err})") from None


def _batch_arrays(b, name: str) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(b, dict) or "data" not in b or "labels" not in b:
        raise DatasetError(f"{name} is not a CIFAR-10 batch: expected a dict with 'data' and 'labels'")
    try:
        data = np.asarray(b["data"], dtype=np.uint8)
        labels = np.asarray(b["labels"], dtype=np.int64).reshape(-1)
    except (TypeError, ValueError) as err:
        raise DatasetError(f"{name}: 'data' or 'labels' is not numeric ({err})") from None
    if data.ndim != 2 or data.shape[1] != 3072 or len(data) != len(labels):
        raise DatasetError(f"{name}: 'data' is {data.shape}, expected [{len(labels)}, 3072] (one row per label)")
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels


def _from_batches(batches: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict:
    train = [batches[f"data_batch_{i}"] for i in range(1, 6)]
    return {"train_x": np.concatenate([x for x, _ in train]), "train_y": np.concatenate([y for _, y in train]),
            "test_x": batches["test_batch"][0], "test_y": batches["test_batch"][1]}


def _read_batch_dir(folder: Path, verify: bool = True) -> dict:
    for name, expected in BATCH_MD5.items():
        if not (folder / name).is_file():
            raise DatasetError(f"{folder / name} is missing (expected md5 {expected})")
        if verify:
            _check_md5(folder / name, expected)
    batches = {}
    for name in BATCH_MD5:
        if name != "batches.meta":
            try:
                raw = (folder / name).read_bytes()
            except OSError as err:
                raise DatasetError(f"{folder / name} cannot be read ({err})") from None
            batches[name] = _batch_arrays(_unpickle(raw, str(folder / name)), str(folder / name))
    return _from_batches(batches)


# -- archives ------------------------------------------------------------------------------------------------------
def _read_tar(path: Path, wanted) -> tuple[list[str], dict[str, bytes]]:
    """Every member name of the ``.tar.gz`` at ``path``, and the bytes of the files ``wanted(name)`` selects.

    Python's ``tarfile`` takes a damaged member header for the end of the archive and stops there, before gzip's
    CRC is checked. Here only zero blocks may follow the last member, read to the end of the gzip stream (which
    checks its CRC), so any damage is a :class:`DatasetError`."""
    names, data, last = [], {}, "the start"
    try:
        with gzip.open(path, "rb") as gz, tarfile.open(fileobj=gz, mode="r:") as tar:
            for m in tar:
                names.append(m.name + ("/" if m.isdir() and not m.name.endswith("/") else ""))
                if m.isfile() and wanted(m.name):
                    data[m.name] = tar.extractfile(m).read()
                last = m.name
            end, zeros = tar.offset, 0
            gz.seek(end)
            while block := gz.read(1 << 20):
                if block.strip(b"\0"):
                    raise DatasetError(f"{path} is damaged: damaged tar header at byte {end:,} of the unpacked "
                                       f"archive, after {last} ({len(names):,} members read); the archive is "
                                       "corrupt or truncated")
                zeros += len(block)
            if zeros < tarfile.BLOCKSIZE:
                raise DatasetError(f"{path} is truncated: the tar archive stops after {last} ({len(names):,} "
                                   "members) without its end-of-archive marker")
    except (tarfile.TarError, OSError, EOFError, zlib.error) as err:
        raise DatasetError(f"{path} is truncated or corrupt after {last} ({type(err).__name__}: {err})") from None
    return names, data


def _read_canonical_archive(path: Path, verify: bool = True) -> dict:
    if verify:
        _check_md5(path, ARCHIVE_MD5)
    want = {f"cifar-10-batches-py/{n}": n for n in BATCH_MD5 if n != "batches.meta"}
    _, data = _read_tar(path, lambda name: name in want)
    for member, name in want.items():
        if member not in data:
            raise DatasetError(f"{path} has no {member}")
    return _from_batches({n: _batch_arrays(_unpickle(data[m], f"{path}:{m}"), f"{path}:{m}") for m, n in want.items()})


# -- image folders -------------------------------------------------------------------------------------------------
def _decode(raw: bytes, name: str) -> np.ndarray:
    from PIL import Image
    try:
        img = np.asarray(Image.open(io.BytesIO(raw)).convert("RGB"))
    except Exception as err:  # noqa: BLE001 - Pillow raises many kinds of errors on bad images
        raise DatasetError(f"{name} is not a readable image ({err})") from None
    if img.shape != (32, 32, 3):
        raise DatasetError(f"{name} is {img.shape}, expected a 32x32 RGB image")
    return img


def _image_layout(names, where: str) -> dict[str, list[tuple[str, int]]]:
    """``{split: [(path, label)]}`` sorted by path, from the paths (folders end in ``/``) of an image folder. Every
    split must hold exactly the ten class folders, none of them empty; other files are ignored."""
    folders, images = {}, {s: [] for s in SPLITS}
    for name in names:
        parts = [p for p in name.split("/") if p not in ("", ".")]
        if name.endswith("/") and len(parts) >= 2 and parts[-2] in SPLITS:
            folders.setdefault((parts[-2], parts[-1]), 0)
        elif len(parts) >= 3 and parts[-3] in SPLITS:
            folders.setdefault((parts[-3], parts[-2]), 0)
            if parts[-1].lower().endswith(IMAGE_EXT):
                folders[parts[-3], parts[-2]] += 1
                images[parts[-3]].append((name, parts[-2]))
    problems = []
    unknown = sorted(f"{s}/{c}/" for s, c in folders if c not in CLASSES)
    missing = [f"{s}/{c}/" for s in SPLITS for c in CLASSES if (s, c) not in folders]
    empty = [f"{s}/{c}/" for s in SPLITS for c in CLASSES if folders.get((s, c)) == 0]
    for what, found in (("missing", missing), ("empty", empty), ("unknown", unknown)):
        if found:
            problems.append(f"{what} class folder(s) {', '.join(found)}")
    if problems:
        raise DatasetError(f"{where}: {'; '.join(problems)}; expected exactly train/ and test/ each holding the "
                           f"folders {', '.join(CLASSES)} with .jpg/.png images")
    return {s: [(n, CLASSES.index(c)) for n, c in sorted(images[s])] for s in SPLITS}


def _read_images(layout, read, where: str, expected: dict[str, int]) -> dict:
    """Check the counts per class from the layout alone, then decode ``read(path)`` for every image."""
    _check_counts({s: np.array([y for _, y in layout[s]], dtype=np.int64) for s in SPLITS}, where, expected)
    out = {}
    for s in SPLITS:
        out[f"{s}_x"] = np.stack([_decode(read(n), f"{where}:{n}") for n, _ in layout[s]])
        out[f"{s}_y"] = np.array([y for _, y in layout[s]], dtype=np.int64)
    return out


def _read_image_archive(path: Path, expected: dict[str, int]) -> dict:
    names, data = _read_tar(path, lambda name: name.lower().endswith(IMAGE_EXT))
    return _read_images(_image_layout(names, str(path)), data.__getitem__, str(path), expected)


def _read_image_dir(folder: Path, expected: dict[str, int]) -> dict:
    names = [str(p.relative_to(folder)) + ("/" if p.is_dir() else "") for p in folder.glob("*/*/*")]
    names += [str(p.relative_to(folder)) + "/" for p in folder.glob("*/*") if p.is_dir()]

    def read(rel: str) -> bytes:
        try:
            return (folder / rel).read_bytes()
        except OSError as err:
            raise DatasetError(f"{folder / rel} cannot be read ({err})") from None
    return _read_images(_image_layout(names, str(folder)), read, str(folder), expected)


# -- the decode cache ------------------------------------------------------------------------------------------------
def _signature(source: Path, verify: bool) -> str:
    """What the cache must match: the source files' paths, sizes and modification times (and the reader's
    settings). Any change means the source is read and verified again."""
    roots = [source / s for s in SPLITS if (source / s).is_dir()] or [source]   # an image folder: train/, test/
    files = [source] if source.is_file() else sorted(p for r in roots for p in [r, *r.rglob("*")])
    try:
        stats = [(str(p.relative_to(source)) if p != source else str(source.resolve()), p.stat().st_size,
                  p.stat().st_mtime_ns) for p in files]
    except OSError as err:
        raise DatasetError(f"{source} cannot be read ({err})") from None
    return json.dumps({"format": _CACHE_FORMAT, "source": str(source.resolve()), "verify": verify, "files": stats})


def _cache_file(source: Path) -> Path:
    return cache_dir() / f"cifar10-{hashlib.sha1(str(source.resolve()).encode()).hexdigest()[:16]}.npz"


def _check_cached(arrays: dict):
    for s in SPLITS:
        x, y = arrays[f"{s}_x"], arrays[f"{s}_y"]
        if x.dtype != np.uint8 or x.shape[1:] != (32, 32, 3) or y.shape != (len(x),):
            raise ValueError(f"{s} arrays {x.shape} / {y.shape}")


def _read_cache(path: Path, key: str) -> tuple[dict, str] | None:
    return read_cache(path, key, ("train_x", "train_y", "test_x", "test_y"), _check_cached)


_write_cache = write_cache


def download(folder: Path) -> Path:
    """Fetch the canonical archive into ``folder`` and verify it; a clear error when offline."""
    dest = folder / "cifar-10-python.tar.gz"
    try:
        with atomic_path(dest) as tmp:
            urllib.request.urlretrieve(URL, tmp)
            _check_md5(Path(tmp), ARCHIVE_MD5)
    except OSError as err:
        raise DatasetError(f"could not download {URL} ({err}); put cifar-10-python.tar.gz (md5 {ARCHIVE_MD5}) "
                           f"or an image-folder archive into {folder}") from None
    return dest


def load(path: str | os.PathLike | None = None, download_missing: bool = False, verify: bool = True,
         cache: bool = True, expected_counts: dict | None = None) -> dict:
    """Arrays ``train_x/test_x`` (uint8 ``[N, 32, 32, 3]``), ``train_y/test_y`` (int64), plus ``dataset`` (a name
    that says whether the copy is canonical), ``checksum`` (md5 of the file(s) read) and ``source``.

    ``verify=False`` skips the canonical checksums (for small test fixtures in the canonical format; such data is
    then not named canonical). ``expected_counts``: images per class, ``{"train": n, "test": m}``; default the real
    dataset's 5,000 and 1,000. Every problem found is a :class:`DatasetError` naming the file."""
    expected = _expected(expected_counts)
    folder = data_dir(path)
    batch_dir = folder / "cifar-10-batches-py"
    archive = folder / "cifar-10-python.tar.gz"
    image_archives = sorted(p for p in folder.glob("*.tar.gz") if p != archive)
    if batch_dir.is_dir():
        source, name = batch_dir, CANONICAL
        reader = lambda: (_read_batch_dir(batch_dir, verify), ARCHIVE_MD5)  # noqa: E731 - same content as the archive
    elif archive.exists():
        source, name = archive, CANONICAL
        reader = lambda: (_read_canonical_archive(archive, verify), ARCHIVE_MD5)  # noqa: E731
    elif (folder / "train").is_dir():
        source, name = folder, f"CIFAR-10 images in {folder.name}/ (not canonical)"
        reader = lambda: (_read_image_dir(folder, expected), "image folder (no single checksum)")  # noqa: E731
    elif image_archives:
        source = image_archives[0]
        reader = lambda: (_read_image_archive(source, expected), _md5(source))  # noqa: E731
        name = None     # named with its md5 below
    elif download_missing:
        return load(download(folder).parent, verify=verify, cache=cache, expected_counts=expected_counts)
    else:
        raise DatasetError(f"no CIFAR-10 in {folder}: expected cifar-10-batches-py/, cifar-10-python.tar.gz "
                           f"(md5 {ARCHIVE_MD5}), train/<class>/ folders, or an image-folder .tar.gz")
    key = _signature(source, verify) if cache else ""
    cached = _read_cache(_cache_file(source), key) if cache else None
    if cached is not None:
        arrays, checksum = cached
    else:
        arrays, checksum = reader()
    _check_counts({s: arrays[f"{s}_y"] for s in SPLITS}, str(source), expected)
    if cache and cached is None:
        _write_cache(_cache_file(source), key, arrays, checksum)
    if name is None:
        name = f"CIFAR-10 re-encoded images {source.name} (not canonical; md5 {checksum})"
    if not verify and name == CANONICAL:
        name, checksum = "CIFAR-10 layout, checksums not verified (not canonical)", "unverified"
    return {**arrays, "dataset": name, "checksum": checksum, "source": str(source)}


def write_batches(folder: str | os.PathLike, arrays: dict) -> list[Path]:
    """Write ``arrays`` (as :func:`load` returns them) in the canonical ``cifar-10-batches-py`` layout: five training
    batches (the training images in order, split as evenly as possible), ``test_batch`` and ``batches.meta``, each
    a pickled dict with ``data`` (uint8 ``[N, 3072]``, channel-major rows) and ``labels``. For tools that read only
    that layout (e.g. the authors' code, run side by side in the book). The files are not the canonical ones unless
    the arrays are: their md5 will not match when the source was, e.g., the JPEG image folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)

    def batch(x, y, label):
        rows = np.ascontiguousarray(np.asarray(x, dtype=np.uint8).transpose(0, 3, 1, 2).reshape(len(x), -1))
        return {"batch_label": label, "labels": [int(v) for v in y], "data": rows}
    out = []
    chunks = np.array_split(np.arange(len(arrays["train_y"])), 5)
    items = [(f"data_batch_{i}", batch(arrays["train_x"][idx], arrays["train_y"][idx], f"training batch {i} of 5"))
             for i, idx in enumerate(chunks, 1)]
    items += [("test_batch", batch(arrays["test_x"], arrays["test_y"], "testing batch 1 of 1")),
              ("batches.meta", {"label_names": list(CLASSES), "num_cases_per_batch": len(chunks[0]),
                                "num_vis": 3072})]
    for name, obj in items:
        buf = io.BytesIO()
        _Py2Pickler(buf, protocol=2).dump(obj)
        with atomic_path(folder / name) as tmp:
            Path(tmp).write_bytes(buf.getvalue())
        out.append(folder / name)
    return out


class _Py2Pickler(pickle._Pickler):
    """Writes ``str`` as Python 2 byte strings, as the canonical batches (pickled by Python 2) hold them: read back
    with ``encoding="latin1"`` they are ``str``, with ``encoding="bytes"`` ``bytes`` (what readers of the canonical
    files, such as the authors' code, expect: ``{k.decode(): v}``)."""
    dispatch = pickle._Pickler.dispatch.copy()

    def save_str(self, obj):
        self.save_bytes(obj.encode("latin1"), obj)

    def save_bytes(self, raw, obj=None):      # numpy's array data too, as in the canonical files
        self.write((pickle.SHORT_BINSTRING + bytes([len(raw)])) if len(raw) < 256 else
                   (pickle.BINSTRING + len(raw).to_bytes(4, "little")))
        self.write(raw)
        self.memoize(raw if obj is None else obj)
    dispatch[str] = save_str
    dispatch[bytes] = save_bytes
