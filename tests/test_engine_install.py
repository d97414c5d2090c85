"""The engine installs lean: ``import wmask``, a MaskSet, train_masks and fit run with torch, numpy, safetensors and
tqdm only (pyproject's core dependencies); pandas, omegaconf, seaborn, scikit-learn, matplotlib and scipy are
extras (``wmask[book]``)."""
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BLOCKED = ("pandas", "omegaconf", "seaborn", "sklearn", "matplotlib", "scipy", "PIL")

SCRIPT = f"""
import importlib.util
import sys

for name in {BLOCKED!r}:     # as if not installed: import raises ModuleNotFoundError, find_spec gives None
    sys.modules[name] = None
try:
    import pandas
    raise AssertionError("pandas was not blocked")
except ImportError:
    pass
import torch, torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
import wmask
torch.manual_seed(0)
model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
x = torch.randn(64, 4)
data = TensorDataset(x, (x[:, 0] > 0).long())
fit = wmask.fit(model, {{"a": DataLoader(data, batch_size=16)}}, loss=F.cross_entropy, steps=30, lr=0.2, k=2,
                impl="eager", progress=False)
masks = wmask.MaskSet(model, impl="eager")
hist = wmask.train_masks(masks, lambda s: (x[None, :16], data.tensors[1][None, :16]),
                         lambda o, t: F.cross_entropy(o[0], t[0]),
                         wmask.MaskTrainConfig(steps=30, k=2, batch_size=16, lr=0.2), progress=False)
assert fit.kept()["a"] < 1 and float(masks.keep_fraction()[0]) < 1
assert not [m for m, v in sys.modules.items() if v is not None and m.split(".")[0] in {BLOCKED!r}]
print("engine ok")
"""


def test_the_engine_imports_and_trains_without_the_book_dependencies():
    run = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "engine ok" in run.stdout


def test_the_core_dependencies_are_the_engines_four():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = {d.split(">")[0].split("=")[0].split("<")[0].strip() for d in project["dependencies"]}
    assert core == {"torch", "numpy", "safetensors", "tqdm"}
    book = " ".join(project["optional-dependencies"]["book"])
    assert all(name in book for name in ("omegaconf", "pandas", "seaborn", "scikit-learn", "matplotlib"))
