"""Which source files can change an experiment's numbers, and whether a stored result is still what this code computes.

An artefact (a trained network, a mask stage, a seed's result) is keyed by its resolved configuration and by the md5
of every source file that **computes** it: the experiment's own task module and every ``wmask`` module it imports,
directly or inside a function, transitively. That is the engine (masks, sampling, training, evaluation, metrics),
the models, the data loaders it reads and the task code it builds on, and nothing else: the book's layer (claims,
checks, report, the authors' comparison), the command line, the runner, the sweep and the other experiments' task
modules never enter it, so rewording a claim or a chapter leaves every stored network reusable. A package's
``__init__.py`` is followed (its imports count) but not hashed: it only re-exports. Each file's md5 is taken of its
code without comments and docstrings (:func:`code_text`), so rewording those changes no fingerprint either.
"""
from __future__ import annotations

import ast
import functools
import hashlib
import io
import json
import sys
import tokenize
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1]      # the wmask package
ROOT = PACKAGE.name
# what reads results and never computes them: an import of these does not enter a fingerprint
READERS = (f"{ROOT}.book", f"{ROOT}.experiments.fingerprint", f"{ROOT}.experiments.status",
           f"{ROOT}.experiments.runner", f"{ROOT}.experiments.regenerate", f"{ROOT}.experiments.sweep")


def _reader(module: str) -> bool:
    return any(module == r or module.startswith(r + ".") for r in READERS)


def code_text(source: str) -> str:
    """``source`` without its comments, docstrings and blank lines, each line right-stripped: what a fingerprint
    hashes (plain text, so the same on every Python version)."""
    lines = source.splitlines()
    cut: list[tuple[int, int, int, int]] = []          # (start line, start col, end line, end col), 1-based lines
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            cut.append((*tok.start, *tok.end))
    for node in ast.walk(ast.parse(source)):
        body = getattr(node, "body", None)
        if (isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and body
                and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            d = body[0]      # ast's columns count UTF-8 bytes, tokenize's characters
            chars = lambda line, col: len(lines[line - 1].encode()[:col].decode(errors="ignore"))  # noqa: E731
            cut.append((d.lineno, chars(d.lineno, d.col_offset), d.end_lineno, chars(d.end_lineno, d.end_col_offset)))
    for l0, c0, l1, c1 in sorted(cut, reverse=True):   # from the end, so earlier positions stay valid
        head, tail = lines[l0 - 1][:c0], lines[l1 - 1][c1:]
        lines[l0 - 1:l1] = [head + tail]
    return "\n".join(line.rstrip() for line in lines if line.strip())


def code_md5(source: bytes) -> str:
    """The md5 of a source file's :func:`code_text`."""
    return hashlib.md5(code_text(source.decode()).encode()).hexdigest()


def _path(module: str) -> Path | None:
    """The source file of ``module`` (``wmask.experiments.tasks.addmul``), a package's ``__init__.py``, or
    None. A module
    outside the package (an experiment of your own) is found through ``sys.modules``."""
    if module != ROOT and not module.startswith(ROOT + "."):
        file = getattr(sys.modules.get(module), "__file__", None)
        return Path(file) if file and file.endswith(".py") else None
    rel = PACKAGE.parent.joinpath(*module.split("."))
    for candidate in (rel.with_suffix(".py"), rel / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _name(path: Path) -> str:
    """How a file is named in a fingerprint: relative to the package's parent (``wmask/train.py``), else its path."""
    try:
        return str(path.relative_to(PACKAGE.parent))
    except ValueError:
        return str(path)


def _parents(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


@functools.lru_cache(maxsize=None)
def _imports(module: str) -> tuple[str, ...]:
    """The package's modules that ``module`` imports anywhere in its source (module level or inside functions)."""
    path = _path(module)
    if path is None:
        return ()
    is_package = path.name == "__init__.py"
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                here = module.split(".") if is_package else module.split(".")[:-1]
                base = ".".join(here[:len(here) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            found.append(base)
            found += [f"{base}.{alias.name}" for alias in node.names]   # `from pkg import module`
    inside = [m for m in found if (m == ROOT or m.startswith(ROOT + ".")) and _path(m) is not None]
    return tuple(dict.fromkeys(p for m in inside for p in [*_parents(m), m]))


def computing_modules(module: str) -> list[str]:
    """``module`` and every package module it imports, transitively, less the book's reader modules."""
    seen, todo = set(), [*_parents(module), module]
    while todo:
        m = todo.pop()
        if m in seen or _reader(m):
            continue
        seen.add(m)
        todo += _imports(m)
    return sorted(seen)


@functools.lru_cache(maxsize=None)
def _computing_files(module: str) -> tuple[tuple[str, str], ...]:
    files = (_path(m) for m in computing_modules(module))
    return tuple((_name(p), code_md5(p.read_bytes())) for p in sorted(f for f in files if f is not None)
                 if p.name != "__init__.py")


def computing_files(module: str) -> dict[str, str]:
    """:func:`code_md5` of every file that can change the numbers of the experiment defined in ``module``, by path
    relative to the package's parent (``wmask/train.py``)."""
    return dict(_computing_files(module))


def fingerprint(files: dict[str, str]) -> str:
    """16 hex digits standing for ``files`` (path -> md5)."""
    return hashlib.md5(json.dumps(files, sort_keys=True).encode()).hexdigest()[:16]


def changed(recorded: dict[str, str] | None, files: dict[str, str]) -> list[str]:
    """The files of ``files`` whose md5 differs from the one ``recorded`` with an artefact (absent there counts as
    changed). A recording may name more files (older artefacts recorded the whole package): those do not count."""
    recorded = recorded or {}
    return sorted(f for f, md5 in files.items() if recorded.get(f) != md5)
