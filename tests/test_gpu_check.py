"""``make gpu-check``'s dry run: the same code on the CPU at tiny sizes, writing the documented record."""
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_gpu_check_dry_run_writes_the_documented_record(tmp_path):
    env = {**os.environ, "OUT": str(tmp_path), "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--dry-run"], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    rec = json.loads((tmp_path / "gpu_check.json").read_text())
    assert rec["dry_run"] is True and rec["device"].startswith("cpu")
    assert {"torch", "python", "commit", "impl", "seconds"} <= rec.keys()
    assert [c["name"] for c in rec["checks"]] == ["sets_batched_equal_separate", "sampler_matches_cpu",
                                                   "recurrent_batched_equal_loop", "resume_bit_for_bit",
                                                   "nan_is_named"]
    assert all(c["result"] == "pass" and c["detail"] for c in rec["checks"]), rec["checks"]
    assert list(rec["bench"]) == ["fnn_big", "scan_lstm", "scan_transformer", "cifar_cnn"]
    for model, entry in rec["bench"].items():
        cases = set(entry["cases"])
        want = {"plain", "masked", "masked4", "batched", "one_pass", "sequential"} | (
            {"vmap4", "stepwise4", "loop4"} if model == "scan_lstm" else set())
        assert cases == want, model
        assert all(c["median_s"] > 0 and "peak_bytes" in c for c in entry["cases"].values())
        assert {"masked/plain", "M4/(4 plain)", "sequential/batched", "sequential/one_pass"} <= entry["ratios"].keys()
    assert {"loop4/vmap4", "stepwise4/vmap4", "auto/best(vmap4, loop4)"} <= rec["bench"]["scan_lstm"]["ratios"].keys()
    assert rec["bench"]["scan_lstm"]["cases"]["masked4"]["mode"] in ("vmap", "loop")
    models = {p["model"] for p in rec["projections"]}
    assert models == set(rec["bench"]) and all(p["hours"] > 0 and p["stages"] for p in rec["projections"])
    md = (tmp_path / "gpu_check.md").read_text()
    for heading in ("## Checks", "## Bench", "## Ratios", "## Paper presets, projected"):
        assert heading in md
    assert md.count("| pass |") == 5
