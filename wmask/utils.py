"""Small shared helpers: devices, seeds, threads, atomic files, provenance."""
from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import io
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch


def get_device(name: str = "auto") -> torch.device:
    """``auto`` -> CUDA when present, else CPU; ``cpu``, ``cuda``, ``cuda:N`` as asked (error if unavailable)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"unknown device {name!r}; expected 'auto', 'cpu', 'cuda' or 'cuda:N'") from err
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"unsupported device {name!r}; expected 'auto', 'cpu', 'cuda' or 'cuda:N'")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} was asked for but CUDA is not available on this machine")
    return dev


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def set_threads(n: int | None = None) -> int:
    """Fix torch's intra-op thread count (default: ``WMASK_THREADS`` or the number of cores).

    Oversubscribed threads (a second busy process on a 2-core machine) make CPU steps tens of times slower, so
    runs and benchmarks fix the count explicitly."""
    if n is None:
        n = parse_threads(os.environ.get("WMASK_THREADS") or None, "WMASK_THREADS")
    if n is not None and (not isinstance(n, int) or n < 1):
        raise ValueError(f"threads must be a positive integer, got {n!r}")
    n = n or os.cpu_count() or 1
    torch.set_num_threads(n)
    return n


def parse_threads(text: str | None, what: str = "--threads") -> int | None:
    """A thread count from text (``None`` stays ``None``); anything but a positive integer names ``what``."""
    if text is None:
        return None
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise ValueError(f"{what} must be a positive integer, got {text!r}")
    return n


def retain_freed_memory() -> bool:
    """Ask glibc to keep freed memory for reuse instead of returning it to the OS.

    The mask step allocates and frees the same few hundred MB every step; by default glibc serves such blocks with
    fresh ``mmap`` pages, and faulting them in again costs more than the arithmetic (measured: a 48 M-element
    weight-gradient product 31 ms -> 9 ms). No-op (returns False) where glibc's ``mallopt`` is unavailable."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4
        return bool(libc.mallopt(M_MMAP_MAX, 0)) and bool(libc.mallopt(M_TRIM_THRESHOLD, 2**31 - 1))
    except (OSError, AttributeError):
        return False


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path next to ``path``; move it into place only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())   # mkstemp makes it owner-only; give it the permissions open() would
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as err:      # a full disk reports no file name, or the temporary one: name the file written
        if err.filename in (None, tmp):
            raise OSError(err.errno, err.strerror or str(err), os.fspath(path)) from err
        raise
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text)


SEALED = "wmask.sealed"     # the key of a file written by atomic_torch_save: the checksum of the payload it holds


def atomic_torch_save(obj, path: str | os.PathLike) -> None:
    """``torch.save(obj)`` to ``path`` atomically, with the sha256 of the saved bytes, which :func:`read_torch`
    checks."""
    with atomic_path(path) as tmp:
        try:
            buf = io.BytesIO()
            torch.save(obj, buf)
            payload = buf.getvalue()
            torch.save({SEALED: {"sha256": hashlib.sha256(payload).hexdigest()}, "payload": payload}, tmp)
        except RuntimeError as err:   # torch's zip writer reports a full disk as "unexpected pos ..."
            raise OSError(errno.EIO, f"{str(err).splitlines()[0]} (is the disk full?)", os.fspath(path)) from err


def rng_state() -> dict:
    """torch's global random state (dropout, teacher-forcing draws): the CPU's, and CUDA's once CUDA is in use."""
    state = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict | None) -> None:
    """Restore :func:`rng_state`'s result (``None``, from files written before it was stored, changes nothing)."""
    if state is None:
        return
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"][:torch.cuda.device_count()])


def read_torch(path: str | os.PathLike) -> dict:
    """``torch.load`` (on the CPU) with a message that names a truncated or foreign file. A file written by
    :func:`atomic_torch_save` is checked against its checksum, and a damaged one is an error naming it; one written
    before files carried a checksum is read as it is (it cannot be checked)."""
    def fail(why: str):
        return ValueError(f"cannot read {path} ({why}); it may be truncated or damaged: move it away to recompute")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:   # torch raises several types for truncated or foreign files
        first = str(err).splitlines()[0] if str(err) else ""
        raise fail(f"{type(err).__name__}: {first}") from None
    if not (isinstance(obj, dict) and SEALED in obj):
        return obj
    payload = obj.get("payload")
    want = obj[SEALED].get("sha256") if isinstance(obj[SEALED], dict) else None
    if not isinstance(payload, bytes) or hashlib.sha256(payload).hexdigest() != want:
        raise fail("its contents do not match the sha256 stored with them")
    try:
        return torch.load(io.BytesIO(payload), map_location="cpu", weights_only=False)
    except Exception as err:   # noqa: BLE001 - a payload that matches its checksum but is not a torch file
        raise fail(f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}") from None


def file_hash(path: str | os.PathLike, algorithm: str = "md5", chunk: int = 1 << 20) -> str:
    """The hex digest of a file's bytes (``algorithm``: any of :mod:`hashlib`'s), read in chunks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def file_md5(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    return file_hash(path, "md5", chunk)


def git_commit(cwd: str | os.PathLike | None = None) -> str:
    """The current commit (with ``+dirty`` when the tree has changes), or ``unknown`` outside a checkout."""
    cwd = cwd or Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, check=True).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def provenance(device: torch.device, **extra) -> dict:
    """What a result needs to be traced: commit, versions, device, plus anything the caller adds."""
    return {"commit": git_commit(), "torch": torch.__version__, "python": platform.python_version(),
            "device": device_name(device), **extra}


def dumps(obj) -> str:
    return json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n"


def diff(stored, expected, prefix: str = "") -> list[str]:
    """Dotted keys where two JSON-like configs differ, as ``key: stored -> expected`` lines."""
    if isinstance(stored, dict) and isinstance(expected, dict):
        out = []
        for k in sorted(set(stored) | set(expected), key=str):
            a, b = stored.get(k, "<absent>"), expected.get(k, "<absent>")
            out += diff(a, b, f"{prefix}{k}.")
        return out
    return [] if stored == expected else [f"{prefix[:-1] or '(root)'}: {stored!r} -> {expected!r}"]
