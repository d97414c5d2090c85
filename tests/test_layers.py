"""The package's three layers (README, Layout): import-linter's contracts hold and no module imports itself back
through others (grimp's graph of every import, module level or inside functions, searched by networkx)."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_no_import_circle():
    grimp = pytest.importorskip("grimp")
    nx = pytest.importorskip("networkx")
    graph = grimp.build_graph("wmask")
    edges = nx.DiGraph([(m, i) for m in graph.modules for i in graph.find_modules_directly_imported_by(m)])
    cycles = list(nx.simple_cycles(edges))
    assert not cycles, f"import circles: {cycles[:5]}"


def test_the_layer_contracts_hold():
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    if lint is None:
        pytest.skip("import-linter is not installed (pip install import-linter)")
    out = subprocess.run([lint], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-2000:]
    assert "0 broken" in out.stdout
