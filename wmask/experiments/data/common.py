"""What every dataset loader shares: the error type, checksums, and the cache of decoded arrays (``.npz`` files
under ``$WMASK_CACHE`` or ``~/.cache/wmask``, each keyed by a signature of the files it was decoded from)."""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Callable

import numpy as np

from ...utils import atomic_path, file_md5


class DatasetError(ValueError):
    """A missing, corrupt or unreadable dataset file; the message names the file and what was expected."""


def find_dir(path: str | os.PathLike | None, sub: str, what: str) -> Path:
    """``path``, else ``$WMASK_DATA/<sub>`` (or ``$WMASK_DATA`` itself when it has no ``sub``); an error otherwise."""
    if path is not None:
        return Path(path)
    root = os.environ.get("WMASK_DATA") or None
    if root is None:
        raise DatasetError(f"no {what} directory: pass --data-dir or set WMASK_DATA (on this project's machines: "
                           "WMASK_DATA=../shared/data)")
    return Path(root) / sub if (Path(root) / sub).is_dir() else Path(root)


def md5(path: Path) -> str:
    try:
        return file_md5(path)
    except OSError as err:
        raise DatasetError(f"{path} cannot be read ({err})") from None


def check_md5(path: Path, expected: str):
    got = md5(path)
    if got != expected:
        raise DatasetError(f"{path} is corrupt or not the canonical file: md5 {got}, expected {expected}")


def cache_dir() -> Path:
    return Path(os.environ.get("WMASK_CACHE", Path.home() / ".cache" / "wmask"))


def read_cache(path: Path, key: str, names: tuple[str, ...],
               check: Callable[[dict], None]) -> tuple[dict, str] | None:
    """The cached ``names`` arrays and checksum, or ``None`` when absent or decoded from other files (``key``
    differs); ``check(arrays)`` raises on arrays of the wrong shape. An unreadable file: a warning, then ``None``."""
    if not path.exists():
        return None
    try:
        with np.load(path) as z:
            if str(z["key"]) != key:
                return None
            arrays = {k: z[k] for k in names}
            checksum = str(z["checksum"])
        check(arrays)
        return arrays, checksum
    except Exception as err:  # noqa: BLE001 - a damaged .npz raises zipfile, zlib, OS and value errors
        warnings.warn(f"decode cache {path} is unreadable ({type(err).__name__}: {err}); rebuilding it", stacklevel=3)
        return None


def write_cache(path: Path, key: str, arrays: dict, checksum: str):
    try:
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, key=np.array(key), checksum=np.array(checksum), **arrays)
    except OSError as err:
        warnings.warn(f"could not write the decode cache {path} ({err}); the next run decodes again", stacklevel=3)
