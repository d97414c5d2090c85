"""One store for every reusable artefact of a run: trained networks, mask stages, other stage states, seed results.

Each artefact is keyed by the resolved configuration that made it **and** by a fingerprint of the code that
computes it (the experiment's own source files, :mod:`wmask.experiments.fingerprint`; the whole package's when no
experiment is named). Asked for again, it is reused when both match; a different configuration is an
error naming the keys that differ; a different code version is refused with the files that changed, unless the
store was opened with ``stale="reuse"`` (reuse anyway) or ``stale="recompute"`` (compute it again and overwrite;
also when its configuration differs because the code that defines a preset changed; with the same code, an artefact
of another configuration is never overwritten).

Reusing a stage leaves torch's random state exactly as computing it would have (the state after the stage is
stored with it and restored on reuse), so a run resumed after any finished stage continues bit for bit like an
uninterrupted one. Mid-stage checkpoints (``store.checkpoint(name)``) are the trainers' own business
(:func:`wmask.train_model`, :func:`wmask.train_masks`). All files are written atomically, each with a checksum of
its contents that is checked when it is read back: a damaged artefact is an error naming its file, never reused
(one written before artefacts carried checksums is reused as before, unchecked).
"""
from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import io
import json
import os
import threading
import time
from pathlib import Path
from typing import Callable

import torch

from . import config as _config
from .fingerprint import changed, fingerprint
from ..masks import MaskFilter, load_masks, save_masks
from ..utils import (atomic_torch_save, atomic_write_text, dumps, file_hash, read_torch, rng_state,
                     set_rng_state)

STALE = ("error", "reuse", "recompute")
PACKAGE = Path(__file__).resolve().parents[1]      # the wmask package


@functools.lru_cache(maxsize=1)
def code_files() -> dict[str, str]:
    """md5 of every source file of the package, by path relative to the package's parent."""
    return {str(p.relative_to(PACKAGE.parent)): hashlib.md5(p.read_bytes()).hexdigest()
            for p in sorted(PACKAGE.rglob("*.py"))}


def code_fingerprint(files: dict[str, str] | None = None) -> str:
    return fingerprint(code_files() if files is None else files)


class Store:
    """The artefacts of one run (one experiment, preset and seed) in the folder ``root``. ``code``: the source
    files (path -> md5) that compute them (:func:`wmask.experiments.fingerprint.computing_files`; default: the whole
    package)."""

    def __init__(self, root: str | os.PathLike, stale: str = "error", code: dict[str, str] | None = None):
        if stale not in STALE:
            raise ValueError(f"unknown stale policy {stale!r}; expected one of {STALE}")
        self.root, self.stale = Path(root), stale
        self.code = dict(code_files() if code is None else code)
        self.root.mkdir(parents=True, exist_ok=True)
        #: seconds this process spent computing each kind of stage (``base``: networks, ``masks``, ``other``);
        #: reused stages cost nothing
        self.seconds: dict[str, float] = {}

    def checkpoint(self, name: str) -> Path:
        """Where a stage keeps its mid-stage checkpoint (resumed by the trainers)."""
        return self.root / f"{name}.ckpt"

    # -- the key check shared by every kind of artefact -------------------------------------------------------------
    def _meta(self, key: dict) -> dict:
        return {"key": json.loads(dumps(key)), "code": fingerprint(self.code), "code_files": self.code}

    def same_code(self, stored: dict) -> bool:
        """True when an artefact's ``store`` entry was made by this version of the files that compute it."""
        return "code_files" in stored and not changed(stored["code_files"], self.code)

    def holds(self, stored: dict, key: dict) -> bool:
        """True when an artefact's stored ``key`` and ``code`` (its ``store`` entry) let it be reused as it is: the
        same configuration, made by this code (or by any, with ``stale="reuse"``). Never raises."""
        return stored.get("key") == json.loads(dumps(key)) and (self.same_code(stored) or self.stale == "reuse")

    def _reusable(self, path: Path, stored: dict, key: dict) -> bool:
        """True to reuse ``path``; False to recompute it; an error when the key differs or the code is stale."""
        if self.holds(stored, key):
            return True
        expected = json.loads(dumps(key))
        if "key" not in stored:   # written before artefacts carried their key and code fingerprint
            if self.stale == "recompute":
                return False
            raise ValueError(f"{path} was written by an older wmask that recorded neither its configuration nor its "
                             "code version; rerun with --stale recompute to redo it, or move it away")
        if stored["key"] != expected:
            if self.stale == "recompute" and not self.same_code(stored):
                return False    # a preset's definition is code: made by other code with another config, redo it
            lines = _config.diff(stored["key"], expected)
            raise ValueError(f"{path} was made by a different configuration ({'; '.join(lines[:8])}"
                             f"{' …' if len(lines) > 8 else ''}); move it away or use another --results folder")
        if self.stale == "recompute":
            return False
        files = changed(stored.get("code_files"), self.code)
        raise ValueError(f"{path} was made by another version of wmask (changed since: "
                         f"{', '.join(files[:6]) or 'unknown'}{' …' if len(files) > 6 else ''}); rerun with "
                         "--stale recompute to redo it, --stale reuse to use it anyway, or move it away")

    # -- artefacts ----------------------------------------------------------------------------------------------
    def json(self, path: str | os.PathLike, key: dict, compute: Callable[[], dict]) -> dict:
        """A JSON result at ``path`` (e.g. a seed's result): reused, or ``compute()``d and written with its key."""
        path = Path(path)
        if path.exists():
            stored = read_json(path)
            if self._reusable(path, stored.get("store", {}), key):
                return stored
        result = compute()
        result = sealed({**json.loads(dumps(result)), "store": self._meta(key)})
        atomic_write_text(path, dumps(result))
        return result

    def _timed(self, kind: str, compute: Callable):
        t0 = time.perf_counter()
        try:
            return compute()
        finally:
            self.seconds[kind] = self.seconds.get(kind, 0.0) + time.perf_counter() - t0

    def state(self, name: str, key: dict, compute: Callable[[], dict], kind: str = "other") -> dict:
        """A stage's state (any ``torch.save``-able dict), stored as ``<name>.pt``; computing it counts towards
        :attr:`seconds` ``[kind]``."""
        path = self.root / f"{name}.pt"
        if path.exists():
            stored = read_torch(path)
            if self._reusable(path, stored.get("store", {}), key):
                set_rng_state(stored["rng"])
                return stored["state"]
        state = self._timed(kind, compute)
        atomic_torch_save({"store": self._meta(key), "state": state, "rng": rng_state()}, path)
        return state

    def network(self, name: str, model: torch.nn.Module, key: dict, train: Callable[[], dict | None]) -> dict:
        """Load into ``model`` the network stored as ``<name>.pt``, or ``train()`` it in place (returning extras such
        as its accuracy) and store it. Returns the extras."""
        def compute():
            extras = train() or {}
            return {"model": model.state_dict(), "extras": extras}
        state = self.state(name, key, compute, kind="base")
        model.load_state_dict(state["model"])
        return state["extras"]

    def masks(self, name: str, key: dict, model: torch.nn.Module, train: Callable[[], tuple],
              filter: MaskFilter | None = None) -> tuple[dict, dict]:
        """Binary masks ``[M, *shape]`` (True = kept) and the training history of one mask stage, stored as
        ``<name>.safetensors`` and ``<name>.json``; ``train() -> (trained MaskSet, History)``."""
        done, meta_path = self.root / f"{name}.safetensors", self.root / f"{name}.json"
        if done.exists() and meta_path.exists():
            stored = read_json(meta_path)
            if self._reusable(done, stored.get("store", {}), key):
                if "sha256" in stored and file_hash(done, "sha256") != stored["sha256"]:
                    raise ValueError(f"{done} is damaged: its sha256 differs from the one {meta_path.name} recorded "
                                     "when it was written; move it away to recompute")
                try:
                    masks = load_masks(done, model, filter)
                except Exception as err:   # a truncated or foreign file
                    raise ValueError(f"cannot read masks from {done}: {err}; move it away to recompute") from None
                set_rng_state(torch.load(io.BytesIO(base64.b64decode(stored["rng"])), weights_only=False))
                return masks, stored["history"]
        masks, hist = self._timed("masks", train)
        history = {"step": hist.step, "loss": hist.loss, "kept": hist.kept}
        binary = masks.binary()
        save_masks(done, binary, filter=masks.filter)
        rng = io.BytesIO()
        torch.save(rng_state(), rng)   # the same random state (CPU and CUDA) as the other stages keep
        atomic_write_text(meta_path, dumps(sealed({"store": self._meta(key), "history": history,
                                                   "sha256": file_hash(done, "sha256"),
                                                   "rng": base64.b64encode(rng.getvalue()).decode()})))
        return binary, history


@contextlib.contextmanager
def wall_clock(path: Path, key: dict, every: float = 60.0):
    """The wall time spent computing one artefact across the processes that worked on it: a run killed and rerun
    resumes from its checkpoints, and its time is the sum of every period's, not the last one's. A ledger at ``path``
    (JSON: the artefact's ``key``, the seconds and the number of work periods so far) is topped up by a background
    thread every ``every`` seconds and on leaving, error or not, so a killed process loses at most ``every`` seconds;
    a ledger of another key is started afresh. Yields ``clock() -> (seconds, periods)``, which stops on leaving.
    Remove the ledger once the artefact is stored, or a later recomputation would add to it. Time a process spent
    stopped counts (wall time)."""
    expected, earlier, periods = json.loads(dumps(key)), 0.0, 0
    if path.is_file():
        with contextlib.suppress(ValueError, OSError):
            old = read_json(path)
            if old.get("key") == expected:
                earlier, periods = float(old["seconds"]), int(old["periods"])
    t0, stop, end = time.monotonic(), threading.Event(), []

    def clock() -> tuple[float, int]:     # frozen once the block is left
        return earlier + (end[0] if end else time.monotonic()) - t0, periods + 1

    def write():
        seconds, n = clock()
        atomic_write_text(path, dumps({"key": expected, "seconds": seconds, "periods": n}))

    def beat():
        while not stop.wait(every):
            write()
    write()
    thread = threading.Thread(target=beat, daemon=True, name=f"wall clock {path.name}")
    thread.start()
    try:
        yield clock
    finally:
        stop.set()
        thread.join()
        end.append(time.monotonic())
        write()


def _content_sha256(doc: dict) -> str:
    """The sha256 of a stored JSON document, without the checksum it carries in ``doc["store"]["sha256"]``."""
    meta = {k: v for k, v in doc.get("store", {}).items() if k != "sha256"}
    return hashlib.sha256(dumps({**doc, "store": meta}).encode()).hexdigest()


def sealed(doc: dict) -> dict:
    """``doc`` with the sha256 of its contents in ``doc["store"]["sha256"]``, which :func:`read_json` checks."""
    return {**doc, "store": {**doc.get("store", {}), "sha256": _content_sha256(doc)}}


def read_json(path: Path) -> dict:
    """A JSON object from ``path``; one that carries a checksum (:func:`sealed`) is checked against it. A file that
    is not JSON, not an object, or damaged is a ValueError naming it; one written before artefacts carried a
    checksum is read as it is (it cannot be checked)."""
    try:
        doc = json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not valid JSON ({err}); it may be truncated: move it away to recompute") \
            from None
    if not isinstance(doc, dict):
        raise ValueError(f"{path} holds JSON {type(doc).__name__}, not an object: it was not written by wmask; "
                         "move it away to recompute")
    want = doc.get("store", {}).get("sha256") if isinstance(doc.get("store"), dict) else None
    if want is not None and _content_sha256(doc) != want:
        raise ValueError(f"{path} is damaged: its contents do not match the sha256 stored with them; move it away "
                         "to recompute")
    return doc
