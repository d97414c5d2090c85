"""CIFAR-10 from a data directory, without torchvision.

Layouts read, in this order (``data_dir`` or ``$WMASK_DATA/cifar10`` or ``$WMASK_DATA``):

1. ``cifar-10-batches-py/`` (the canonical pickle batches), every file checked against its canonical md5;
2. ``cifar-10-python.tar.gz`` (the canonical archive), checked against its md5;
3. an image folder ``train/<class>/*.jpg|png`` and ``test/<class>/*``, as a folder or inside any ``*.tar.gz``
   (e.g. ``CIFAR-10-images-jpeg.tar.gz``). This is **not** the canonical data: :func:`load` names it so, with the
   archive's md5, and every result computed from it must carry that name.

Decoded arrays are cached once (``.npz`` under ``$WMASK_CACHE`` or ``~/.cache/wmask``), so later runs start in
seconds. With ``download=True`` and no copy present, the canonical archive is fetched and verified.
"""
from __future__ import annotations

import io
import os
import pickle
import tarfile
import urllib.request
from pathlib import Path

import numpy as np

from ..utils import atomic_path, file_md5

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
ARCHIVE_MD5 = "c58f30108f718f92721af3b95e74349a"
BATCH_MD5 = {"data_batch_1": "c99cafc152244af753f735de768cd75f", "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
             "data_batch_3": "54ebc095f3ab1f0389bbae665268c751", "data_batch_4": "634d18415352ddfa80567beed471001a",
             "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb", "test_batch": "40351d587109b95175f43aff81a1287e",
             "batches.meta": "5ff9c542aee3614f3951f8cda6e48888"}
CANONICAL = "CIFAR-10 (canonical python batches)"


class DatasetError(ValueError):
    """A missing, corrupt or unreadable dataset file; the message names the file and what was expected."""


def data_dir(path: str | os.PathLike | None = None) -> Path:
    """``path``, else ``$WMASK_DATA/cifar10`` (or ``$WMASK_DATA`` itself) ; an error names what was tried."""
    if path is not None:
        return Path(path)
    root = os.environ.get("WMASK_DATA") or None
    if root is None:
        raise DatasetError("no CIFAR-10 directory: pass --data-dir or set WMASK_DATA (on this project's machines: "
                           "WMASK_DATA=../shared/data)")
    return Path(root) / "cifar10" if (Path(root) / "cifar10").is_dir() else Path(root)


def _check_md5(path: Path, expected: str):
    got = file_md5(path)
    if got != expected:
        raise DatasetError(f"{path} is corrupt or not the canonical file: md5 {got}, expected {expected}")


def _unpickle(raw: bytes, name: str) -> dict:
    try:
        return pickle.loads(raw, encoding="latin1")
    except Exception as err:  # noqa: BLE001 - any unpickling failure is a corrupt file
        raise DatasetError(f"{name} cannot be read as a CIFAR-10 batch ({type(err).__name__}: {err})") from None


def _from_batches(batches: dict[str, dict]) -> dict:
    def images(b):
        return np.asarray(b["data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)

    train = [batches[f"data_batch_{i}"] for i in range(1, 6)]
    return {"train_x": np.concatenate([images(b) for b in train]),
            "train_y": np.concatenate([np.asarray(b["labels"], dtype=np.int64) for b in train]),
            "test_x": images(batches["test_batch"]), "test_y": np.asarray(batches["test_batch"]["labels"], np.int64)}


def _read_batch_dir(folder: Path, verify: bool = True) -> dict:
    for name, md5 in BATCH_MD5.items():
        if not (folder / name).exists():
            raise DatasetError(f"{folder / name} is missing (expected md5 {md5})")
        if verify:
            _check_md5(folder / name, md5)
    return _from_batches({n: _unpickle((folder / n).read_bytes(), str(folder / n)) for n in BATCH_MD5
                          if n != "batches.meta"})


def _open_tar(path: Path) -> tarfile.TarFile:
    try:
        return tarfile.open(path, "r:gz")
    except (tarfile.TarError, OSError, EOFError) as err:
        raise DatasetError(f"{path} is not a readable .tar.gz ({err})") from None


def _read_canonical_archive(path: Path, verify: bool = True) -> dict:
    if verify:
        _check_md5(path, ARCHIVE_MD5)
    with _open_tar(path) as tar:
        batches = {}
        for name in BATCH_MD5:
            if name != "batches.meta":
                try:
                    batches[name] = _unpickle(tar.extractfile(f"cifar-10-batches-py/{name}").read(), f"{path}:{name}")
                except (KeyError, tarfile.TarError, OSError, EOFError) as err:
                    raise DatasetError(f"{path}: cannot read cifar-10-batches-py/{name} ({err})") from None
    return _from_batches(batches)


def _decode(raw: bytes, name: str) -> np.ndarray:
    from PIL import Image
    try:
        img = np.asarray(Image.open(io.BytesIO(raw)).convert("RGB"))
    except Exception as err:  # noqa: BLE001 - Pillow raises many kinds of errors on bad images
        raise DatasetError(f"{name} is not a readable image ({err})") from None
    if img.shape != (32, 32, 3):
        raise DatasetError(f"{name} is {img.shape}, expected a 32x32 RGB image")
    return img


def _read_image_files(files, where: str) -> dict:
    """``files``: iterable of (relative path ``split/class/name``, bytes)."""
    out = {"train": ([], []), "test": ([], [])}
    for rel, raw in files:
        parts = rel.strip("./").split("/")
        if len(parts) < 3 or parts[-3] not in out or not parts[-1].lower().endswith((".jpg", ".jpeg", ".png")):
            continue
        split, cls = parts[-3], parts[-2]
        if cls not in CLASSES:
            raise DatasetError(f"{where}: unknown class folder {cls!r} in {rel}; expected one of {CLASSES}")
        out[split][0].append(_decode(raw, f"{where}:{rel}"))
        out[split][1].append(CLASSES.index(cls))
    for split, (xs, _) in out.items():
        if not xs:
            raise DatasetError(f"{where} holds no {split}/<class>/*.jpg|png images")
    return {f"{s}_x": np.stack(xs) for s, (xs, _) in out.items()} | {
        f"{s}_y": np.asarray(ys, dtype=np.int64) for s, (_, ys) in out.items()}


def _read_image_archive(path: Path) -> dict:
    with _open_tar(path) as tar:
        try:
            files = [(m.name, tar.extractfile(m).read()) for m in sorted(tar.getmembers(), key=lambda m: m.name)
                     if m.isfile()]
        except (tarfile.TarError, OSError, EOFError) as err:
            raise DatasetError(f"{path} is truncated or corrupt ({err})") from None
    return _read_image_files(files, str(path))


def _read_image_dir(folder: Path) -> dict:
    files = sorted(p for p in folder.glob("*/*/*") if p.is_file())
    return _read_image_files(((str(p.relative_to(folder)), p.read_bytes()) for p in files), str(folder))


def cache_dir() -> Path:
    return Path(os.environ.get("WMASK_CACHE", Path.home() / ".cache" / "wmask"))


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
         cache: bool = True) -> dict:
    """Arrays ``train_x/test_x`` (uint8 ``[N, 32, 32, 3]``), ``train_y/test_y`` (int64), plus ``dataset`` (a name
    that says whether the copy is canonical) and ``checksum`` (md5 of the file(s) read). ``verify=False`` skips the
    canonical checksums (for small test fixtures in the canonical format; such data is then not named canonical)."""
    folder = data_dir(path)
    batch_dir = folder / "cifar-10-batches-py"
    archive = folder / "cifar-10-python.tar.gz"
    image_archives = sorted(p for p in folder.glob("*.tar.gz") if p != archive)
    if batch_dir.is_dir():
        source, checksum, reader = batch_dir, ARCHIVE_MD5, lambda: _read_batch_dir(batch_dir, verify)
        name = CANONICAL   # same content as the canonical archive: one cache
    elif archive.exists():
        source, checksum, reader = archive, ARCHIVE_MD5, lambda: _read_canonical_archive(archive, verify)
        name = CANONICAL
    elif (folder / "train").is_dir():
        source, checksum = folder, "image folder (no single checksum)"
        reader, name = (lambda: _read_image_dir(folder)), f"CIFAR-10 images in {folder.name}/ (not canonical)"
    elif image_archives:
        source, checksum = image_archives[0], file_md5(image_archives[0])
        reader = lambda: _read_image_archive(source)  # noqa: E731
        name = f"CIFAR-10 re-encoded images {source.name} (not canonical; md5 {checksum})"
    elif download_missing:
        return load(download(folder).parent)
    else:
        raise DatasetError(f"no CIFAR-10 in {folder}: expected cifar-10-batches-py/, cifar-10-python.tar.gz "
                           f"(md5 {ARCHIVE_MD5}), train/<class>/ folders, or an image-folder .tar.gz")
    if not verify and name == CANONICAL:
        name, checksum = "CIFAR-10 layout, checksums not verified (not canonical)", "unverified"
    cached = cache_dir() / f"cifar10-{checksum}.npz" if cache and len(checksum) == 32 else None   # md5-named
    if cached is not None and cached.exists():
        with np.load(cached) as z:
            arrays = {k: z[k] for k in z.files}
    else:
        arrays = reader()
        if cached is not None:
            with atomic_path(cached) as tmp, open(tmp, "wb") as f:
                np.savez(f, **arrays)
    return {**arrays, "dataset": name, "checksum": checksum, "source": str(source)}
