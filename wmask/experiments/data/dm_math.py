"""The DeepMind Mathematics dataset (Saxton et al. 2019) in its v1.0 layout, for the paper's Mathematics-dataset
experiment.

Layout (inside ``mathematics_dataset-v1.0/`` of the released archive, or ``mathematics_dataset-generated/`` of a copy
made with the official generator): ``train-easy/``, ``train-medium/``, ``train-hard/``, ``interpolate/`` and
``extrapolate/``, one ``<module>.txt`` per module, question and answer on alternate lines. Read from the folder or
straight from the ``.tar.gz`` (no unpacking), under ``path`` or ``$WMASK_DATA/dm_math``. An archive is read to its
end before use, whatever its name, so a damaged one (its gzip CRC or length) is an error naming it; its sha256 is
checked where it is known (the generated copy's). Every result names the data and its checksum, and the data is
labelled by that checksum, never by a file name: an archive or folder whose checksum is not on record is "not
confirmed to be the released v1.0", whatever it is called. The generated copy is *not* the released v1.0 (other
samples of the same distributions, 30,000 examples per module and difficulty instead of about 666,666), and figures
must say which they used.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .common import DatasetError, find_dir

MODULES = ("arithmetic__add_or_sub", "algebra__linear_1d", "calculus__differentiate", "comparison__sort",
           "polynomials__collect")                        # the paper's five
DIFFICULTIES = ("train-easy", "train-medium", "train-hard")
EXTRAPOLATE = {"arithmetic__add_or_sub": "arithmetic__add_or_sub_big", "comparison__sort": "comparison__sort_more"}
RELEASED, GENERATED = "mathematics_dataset-v1.0", "mathematics_dataset-generated"
# sha256 of the archives whose contents are known, by file name (a file of that name must match it)
SHA256 = {f"{GENERATED}.tar.gz": "23439cf0c20919e799d639e4469eed6bfe14f9f622fa14780bed16ef9250e057"}
# what an archive is, by its sha256: the label data gets (none of the released v1.0 is on record here)
KNOWN = {SHA256[f"{GENERATED}.tar.gz"]: f"{GENERATED}: a generated copy, not the released v1.0"}
FULL_TRAIN, FULL_HELD_OUT = 666_666, 10_000               # v1.0: examples per module and difficulty; held out


@dataclass
class Source:
    """Where the files are read from: ``top`` a folder, or ``archive`` a ``.tar.gz`` holding ``name/``."""
    name: str
    checksum: str
    top: Path | None = None
    archive: Path | None = None

    @property
    def label(self) -> str:
        """What the data is, from its checksum alone (a file or folder name proves nothing)."""
        digest = self.checksum.split()[1] if self.checksum.startswith("sha256 ") else ""
        if digest in KNOWN:
            return f"DeepMind Mathematics ({KNOWN[digest]})"
        if self.name == GENERATED:
            return f"DeepMind Mathematics ({self.name}: a generated copy, not the released v1.0)"
        what = f"archive {self.archive.name}" if self.archive else f"folder {self.name}/"
        return (f"DeepMind Mathematics ({what}, a checksum not on record: not confirmed to be the released v1.0, "
                "whatever its name)")

    def where(self, rel: str) -> str:
        return f"{self.archive}:{self.name}/{rel}" if self.archive else str(self.top / rel)

    def read(self, rel: str) -> str:
        where = self.where(rel)
        try:
            if self.archive is None:
                data = (self.top / rel).read_bytes()
            else:
                with tarfile.open(self.archive, "r:gz") as tar:
                    member = tar.extractfile(f"{self.name}/{rel}")
                    if member is None:
                        raise KeyError(rel)
                    data = member.read()
        except (FileNotFoundError, KeyError):
            raise DatasetError(f"{where} is missing (the v1.0 layout has <difficulty>/<module>.txt)") from None
        except (OSError, tarfile.TarError, EOFError) as err:
            raise DatasetError(f"{where} cannot be read: {err}") from None
        try:
            return data.decode("ascii")
        except UnicodeDecodeError as err:
            raise DatasetError(f"{where}: not ASCII text (byte {err.start})") from None


class _Hashing:
    """A binary file that hashes every byte read from it."""
    def __init__(self, f):
        self.f, self.hash = f, hashlib.sha256()

    def read(self, n=-1):
        data = self.f.read(n)
        self.hash.update(data)
        return data


def read_through(path: Path, chunk: int = 1 << 20) -> str:
    """The sha256 of ``path``, a ``.tar.gz``, after decompressing all of it: gzip checks its CRC and length at the
    end, so any damaged byte is a :class:`DatasetError` naming the file (reading a member alone checks nothing)."""
    try:
        with open(path, "rb") as raw:
            hashing = _Hashing(raw)
            with gzip.GzipFile(fileobj=hashing, mode="rb") as gz:
                while gz.read(chunk):
                    pass
            while hashing.read(chunk):      # anything after the gzip stream counts in the checksum too
                pass
        return hashing.hash.hexdigest()
    except (OSError, EOFError, zlib.error) as err:
        raise DatasetError(f"{path} is damaged or truncated ({err}): it fails gzip's integrity check; fetch it "
                           "again") from None


def open_source(path: str | os.PathLike | None = None) -> Source:
    """The dataset under ``path`` (default ``$WMASK_DATA/dm_math``): the released v1.0 before a generated copy, a
    folder before its archive."""
    root = find_dir(path, "dm_math", "Mathematics dataset")
    for name in (RELEASED, GENERATED):
        if (root / name).is_dir():
            return Source(name, "folder (sha256 of the files read: see load)", top=root / name)
        archive = root / f"{name}.tar.gz"
        if archive.exists():
            got, want = read_through(archive), SHA256.get(archive.name)
            if want and got != want:
                raise DatasetError(f"{archive} is corrupt or not the known copy: sha256 {got}, expected {want}")
            return Source(name, f"sha256 {got}" + ("" if want else " (no published checksum to check)"),
                          archive=archive)
    raise DatasetError(f"no Mathematics dataset in {root}: expected {RELEASED}/ or {RELEASED}.tar.gz (the released "
                       f"data) or {GENERATED}/ or {GENERATED}.tar.gz (a generated copy)")


def parse(text: str, where: str) -> list[tuple[str, str]]:
    """Question/answer pairs from alternating lines; a malformed file is a :class:`DatasetError` naming it."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if not lines:
        raise DatasetError(f"{where} is empty")
    if len(lines) % 2:
        raise DatasetError(f"{where} has {len(lines)} lines, an odd number: questions and answers must alternate")
    for i, line in enumerate(lines):
        if not line.strip():
            raise DatasetError(f"{where} line {i + 1} is empty (a {'question' if i % 2 == 0 else 'answer'} expected)")
    return list(zip(lines[0::2], lines[1::2]))


def load(modules=MODULES, path: str | os.PathLike | None = None) -> dict:
    """``{"train": {difficulty: {module: pairs}}, "interpolate": {module: pairs}, "extrapolate": {module: pairs},
    "dataset": label, "checksum": ...}`` for ``modules`` (extrapolation sets only where the generator has one)."""
    unknown = [m for m in modules if m not in MODULES]
    if unknown:
        raise ValueError(f"unknown Mathematics modules {unknown}; the paper's: {', '.join(MODULES)}")
    src = open_source(path)
    contents = hashlib.sha256()      # of a folder: every file read, by name and content

    def read(rel):
        text = src.read(rel)
        contents.update(f"{rel}\0{len(text)}\0{text}".encode())
        return parse(text, src.where(rel))
    out = {"train": {d: {m: read(f"{d}/{m}.txt") for m in modules} for d in DIFFICULTIES},
           "interpolate": {m: read(f"interpolate/{m}.txt") for m in modules},
           "extrapolate": {m: read(f"extrapolate/{EXTRAPOLATE[m]}.txt") for m in modules if m in EXTRAPOLATE}}
    if src.top is not None:
        src.checksum = f"folder (sha256 of the files read {contents.hexdigest()})"
    return {**out, "dataset": src.label, "checksum": src.checksum}


def synthetic(modules=("comparison__sort",), n: int = 600, seed: int = 0) -> dict:
    """:func:`load`'s result made up without files, for the smoke preset and tests: sort problems in the dataset's
    style (``Sort 3, -1, 2.`` -> ``-1, 2, 3``), longer lists with each difficulty, ``n`` per file. Only
    ``comparison__sort`` has a generator; it is *not* the Mathematics dataset, and its label says so."""
    other = [m for m in modules if m != "comparison__sort"]
    if other:
        raise ValueError(f"no synthetic problems for {other}: only comparison__sort; use the dataset's files")
    rng = np.random.RandomState(seed)

    def problems(size):
        out = []
        for _ in range(n):
            xs = rng.randint(-9, 10, size + rng.randint(0, 2)).tolist()
            out.append((f"Sort {', '.join(map(str, xs))}.", ", ".join(map(str, sorted(xs)))))
        return out
    sizes = dict(zip((*DIFFICULTIES, "interpolate"), (2, 4, 6, 3)))
    data = {"train": {d: {m: problems(sizes[d]) for m in modules} for d in DIFFICULTIES},
            "interpolate": {m: problems(sizes["interpolate"]) for m in modules}, "extrapolate": {},
            "dataset": "synthetic sort problems in the Mathematics dataset's style (not the Mathematics dataset)"}
    data["checksum"] = "md5 " + hashlib.md5(repr(data["train"]).encode()).hexdigest()
    return data


def vocabulary(data: dict):
    """One character vocabulary for questions and answers (the model ties its input and output embeddings):
    ``<pad>`` = 0, the characters of every loaded file by frequency, ``<eos>`` last."""
    from ..seq2seq import Vocab
    sets = [*(p for d in data["train"].values() for p in d.values()), *data["interpolate"].values(),
            *data["extrapolate"].values()]
    return Vocab((text for pairs in sets for q, a in pairs for text in (q, a)), specials=("<pad>",), tail=("<eos>",))


def held_out(pairs: list, seed: int = 0) -> tuple[list, list]:
    """(train, test) of one difficulty's training file: the paper holds out 10,000 of v1.0's ≈ 666,666 examples;
    a smaller copy holds out the same proportion (450 of 30,000), at least 1. Deterministic in ``seed``."""
    n = max(1, round(FULL_HELD_OUT * len(pairs) / FULL_TRAIN))
    if n >= len(pairs):
        raise DatasetError(f"{len(pairs)} examples are too few to hold out {n}")
    order = np.random.RandomState(seed).permutation(len(pairs))
    test = set(order[:n].tolist())
    return [p for i, p in enumerate(pairs) if i not in test], [pairs[i] for i in sorted(test)]
