"""An artefact's key covers only the code that computes it (wmask.experiments.fingerprint), and `status` tells current
results
from stale ones."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from wmask.experiments import fingerprint as fp
from wmask.experiments import status

ROOT = Path(__file__).resolve().parents[1]


def test_an_experiment_is_computed_by_its_task_its_imports_and_the_engine_only():
    mods = fp.computing_modules("wmask.experiments.tasks.addmul")
    for needed in ("wmask.train", "wmask.masks", "wmask.sampling", "wmask.experiments.models", "wmask.experiments.tasks.arithmetic",
                   "wmask.experiments.tasks.addmul", "wmask.metrics"):
        assert needed in mods
    for reader in ("wmask.book.claims", "wmask.book.report", "wmask.book.checks", "wmask.book.authors",
                   "wmask.experiments.runner", "wmask.__main__", "wmask.experiments.sweep", "wmask.experiments.tasks.scan", "wmask.experiments.data.cifar10"):
        assert reader not in mods
    assert "wmask.experiments.data.scan" in fp.computing_modules("wmask.experiments.tasks.scan")     # its own data loader counts
    files = fp.computing_files("wmask.experiments.tasks.addmul")
    assert "wmask/train.py" in files and not any(f.endswith("__init__.py") for f in files)


def test_comments_and_docstrings_do_not_change_a_files_md5_but_code_does():
    src = 'def f(x):\n    """Doc, with ünïcode."""\n    return x + 1  # one more\n'
    same = 'def f(x):\n    """Another doc\n    over two lines."""\n    # a comment line\n\n    return x + 1\n'
    other = 'def f(x):\n    """Doc, with ünïcode."""\n    return x + 2  # one more\n'
    assert fp.code_md5(src.encode()) == fp.code_md5(same.encode())
    assert fp.code_md5(src.encode()) != fp.code_md5(other.encode())
    assert fp.code_text('x = "# not a comment"  # a comment') == 'x = "# not a comment"'


def _run(pkg_parent: Path, results: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(pkg_parent), "WMASK_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "wmask", "run", "planted", "--preset", "smoke", "--results",
                           str(results), "--quiet"], capture_output=True, text=True, env=env, cwd=pkg_parent,
                          timeout=600)


def test_editing_a_claim_or_the_report_reuses_stored_work_editing_the_sampler_does_not(tmp_path):
    """In a copy of the package: a run, then a rerun after editing the book layer (reused), then after editing the
    engine's sampler (refused, naming the file)."""
    copy = tmp_path / "src"
    shutil.copytree(ROOT / "wmask", copy / "wmask", ignore=shutil.ignore_patterns("__pycache__"))
    results = tmp_path / "results"
    first = _run(copy, results)
    assert first.returncode == 0, first.stderr
    assert "seeds computed: 0; reused: none" in first.stdout
    seed0 = (results / "planted/smoke/seed0.json").read_text()
    for path in ("wmask/book/claims.py", "wmask/book/report.py", "wmask/experiments/tasks/scan.py", "wmask/experiments/runner.py"):
        with open(copy / path, "a") as f:
            f.write("\nREWORDED = 'a claim read differently'\n")
    again = _run(copy, results)
    assert again.returncode == 0, again.stderr
    assert "seeds computed: none; reused: 0" in again.stdout
    assert (results / "planted/smoke/seed0.json").read_text() == seed0
    with open(copy / "wmask/sampling.py", "a") as f:
        f.write("\n_CHANGED = 1\n")
    stale = _run(copy, results)
    assert stale.returncode == 2
    assert "another version of wmask (changed since: wmask/sampling.py)" in stale.stderr


def test_status_says_current_or_stale_with_the_changed_files(tmp_path):
    from wmask.experiments import runner
    runner.run("planted", "smoke", [0], tmp_path, progress=False, threads=1)
    path = tmp_path / "planted/smoke/summary.json"
    row = status.row(path)
    assert row["status"] == "current" and row["seeds"] == "0" and row["experiment"] == "planted"
    summary = json.loads(path.read_text())
    summary["runs"][0]["store"]["code_files"]["wmask/train.py"] = "0" * 32
    summary["runs"][0]["commit"] += "+dirty"       # not found in git: its md5 alone decides
    path.write_text(json.dumps(summary))
    assert status.row(path)["status"] == "stale: computing code changed in train.py"
    assert status.summaries(tmp_path) == [path]
