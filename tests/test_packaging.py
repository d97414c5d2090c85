"""The package declares what it imports: every third-party module imported anywhere in ``wmask`` (also inside
functions) belongs to a distribution listed in ``pyproject.toml``'s dependencies (or, for an optional feature, in
its optional dependencies: ``ray`` for ``wmask.experiments.sweep``), and every module imports."""
import ast
import importlib
import importlib.metadata as md
import pkgutil
import re
import sys
import tomllib
from pathlib import Path

import wmask

ROOT = Path(__file__).resolve().parents[1]


def _declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps = project["dependencies"] + [d for extra in project.get("optional-dependencies", {}).values() for d in extra]
    return {re.split(r"[<>=!~\[; ]", d, maxsplit=1)[0].lower().replace("_", "-") for d in deps}


def _imported_top_level() -> dict[str, str]:
    found = {}
    for path in (ROOT / "wmask").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for n in names:
                found.setdefault(n.split(".")[0], str(path.relative_to(ROOT)))
    return found


def test_every_third_party_import_is_declared():
    dists = md.packages_distributions()
    declared = _declared()
    missing = []
    for name, where in sorted(_imported_top_level().items()):
        if name in sys.stdlib_module_names or name == "wmask":
            continue
        owners = {d.lower().replace("_", "-") for d in dists.get(name, [name])}
        if not owners & declared:
            missing.append(f"{name} (imported in {where}; distribution {sorted(owners)})")
    assert not missing, f"imported but not in pyproject.toml's dependencies: {missing}"


def test_every_module_imports():
    for mod in pkgutil.walk_packages(wmask.__path__, "wmask."):
        importlib.import_module(mod.name)
