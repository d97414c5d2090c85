"""benchmarks/authors (the authors' code at our settings): for CIFAR-10 their exported confusion matrices become our
drops/worst tables (checked against a brute-force loop on planted matrices) and their run splits into a base and a
mask phase; the flags of SCAN and CIFAR-10 match our cpu presets' settings."""
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks" / "authors"))

import convert  # noqa: E402
import experiments  # noqa: E402
import extract  # noqa: E402

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def planted(seed=0):
    g = np.random.default_rng(seed)
    ref = g.dirichlet(np.ones(10) * 0.3, 10) * 0.3 + np.eye(10) * 0.7        # rows sum to 1, diagonal ≈ 0.7+
    diffs = {}
    for c, name in enumerate(CLASSES):
        d = np.zeros((10, 10))
        d[c, c] = -0.4 * ref[c, c]                # the removed class loses 40 % of its accuracy ...
        d[c, (c + 1) % 10] = 0.4 * ref[c, c]
        j = (c + 3) % 10
        d[j, j] = -0.02 * (c + 1) * ref[j, j]     # ... another class (c + 1) * 2 %
        d[j, c] = 0.02 * (c + 1) * ref[j, j]
        diffs[name] = d.tolist()
    return ref, diffs


def test_drops_and_worst_ratio_match_a_brute_force_loop():
    ref, diffs = planted()
    got = extract._drops({"reference": ref.tolist(), "difference": diffs})
    for c, name in enumerate(CLASSES):
        conf = ref + np.array(diffs[name])
        drops = [-(conf[j, j] - ref[j, j]) / ref[j, j] * 100 for j in range(10)]
        assert got["relative_drop"][c] == pytest.approx(drops)
        worst = max(d for j, d in enumerate(drops) if j != c) / drops[c] * 100
        assert got["worst_other_ratio"][c] == pytest.approx(worst)
        assert drops[c] == pytest.approx(40.0) and worst == pytest.approx(5.0 * (c + 1))


def test_converter_tables_and_base_from_the_mask_phase():
    ref, diffs = planted()
    conf = {"reference": ref.tolist(), "difference": diffs}
    conf.update(extract._drops(conf))
    masks = {"features_0_weight": {"size": 864, "kept": {str(s): 800 - s for s in range(11)}}}
    flags = experiments.build_flags("cifar10", 0, smoke=False)
    data = {"scalars": {"load_validation/iid/accuracy": [[0, 0.78]], "validation/iid/accuracy": [[10000, 0.5]]},
            "masks": masks, "confusion": conf}
    out = convert.convert("cifar10", 0, flags, data, "cnn")
    assert out["tables"]["base"] == [{"seed": 0, "subtask": "all classes", "accuracy": 0.78}]
    worst = {r["class"]: r for r in out["tables"]["worst"]}
    assert worst["cat"]["own drop %"] == pytest.approx(40.0)
    assert worst["cat"]["worst other / own %"] == pytest.approx(20.0)
    assert len(out["tables"]["drops"]) == 100
    assert out["layers"][0]["kept control"] == 800 and out["layers"][0]["kept without truck"] == 790
    with pytest.raises(experiments.RunError, match="no exported class_removal"):
        convert.convert("cifar10", 0, flags, {**data, "confusion": None}, "cnn")


def test_two_phases_share_the_flags_and_chain_through_restore_pretrained(tmp_path):
    flags = experiments.build_flags("cifar10", 1, smoke=False)
    (base_name, base, _), (mask_name, masks, copy_base) = experiments._cifar10_phases(flags, tmp_path)
    assert (base_name, mask_name) == ("base", "masks")
    assert experiments.flag(base, "-analysis.enable") == "0" and experiments.flag(base, "-name").endswith("_base")
    assert experiments.flag(masks, "-restore_pretrained") == str(tmp_path / "pretrained")
    assert base[:base.index("-name")] == masks[:masks.index("-name")]
    for f in ("-stop_after", "-step_per_mask", "-mask_lr", "-mask_batch_size", "-mask_loss_weight", "-seed"):
        assert experiments.flag(base, f) == experiments.flag(masks, f) == experiments.flag(flags, f)
    with pytest.raises(experiments.RunError, match="left no"):
        copy_base(tmp_path)
    src = tmp_path / "save" / "cifar10_cnn_s1_base" / "model_weights"
    src.mkdir(parents=True)
    (src / "model.pth").write_bytes(b"weights")
    copy_base(tmp_path)
    assert (tmp_path / "pretrained" / "0" / "model.pth").read_bytes() == b"weights"


@pytest.mark.parametrize("experiment, model", [("cifar10", "cnn"), ("scan", "lstm")])
def test_flags_are_our_cpu_preset(experiment, model):
    from wmask.experiments import runner
    cfg = runner.EXPERIMENTS[experiment].config("cpu", model=model, overrides=experiments.OURS.get(experiment))
    argv = experiments.build_flags(experiment, 0, smoke=False)
    flags = {k: float(experiments.flag(argv, k)) for k in ("-lr", "-batch_size", "-stop_after", "-step_per_mask",
                                                          "-mask_lr", "-mask_batch_size", "-mask_loss_weight")}
    assert (flags["-lr"], flags["-batch_size"], flags["-stop_after"]) == (cfg.base.lr, cfg.base.batch_size,
                                                                         cfg.base.steps)
    assert (flags["-step_per_mask"], flags["-mask_lr"], flags["-mask_batch_size"]) == (cfg.mask.steps, cfg.mask.lr,
                                                                                       cfg.mask.batch_size)
    # their regulariser divides by -batch_size, ours by the mask batch: the same weight per logit
    assert flags["-mask_loss_weight"] / flags["-batch_size"] == pytest.approx(cfg.mask.alpha / cfg.mask.batch_size)
    if experiment == "scan":
        assert float(experiments.flag(argv, "-grad_clip")) == cfg.base.clip == cfg.mask.clip
        assert int(experiments.flag(argv, "-state_size")) == cfg.net["hidden"]


def test_earlier_runs_keep_only_seeds_run_with_todays_flags(tmp_path, capsys):
    import json

    import run
    former = experiments.build_flags("scan", 1, smoke=False)
    former[former.index("-stop_after") + 1] = "3500"       # seed 1 ran at a former preset's base steps
    summary = tmp_path / "summary.json"
    summary.write_text(json.dumps({"runs": [
        {"seed": 0, "argv": ["python", "main.py", *experiments.build_flags("scan", 0, smoke=False)]},
        {"seed": 1, "argv": ["python", "main.py", *former]},
        {"seed": 2, "argv": ["python", "main.py", *experiments.build_flags("scan", 2, smoke=False), "-restore", "x"]}]}))
    assert sorted(run.earlier_runs(summary, "scan", smoke=False)) == [0, 2]
    assert "seed 1 was run with other flags" in capsys.readouterr().out
    assert run.earlier_runs(tmp_path / "absent.json", "scan", smoke=False) == {}


def test_cifar10_batches_without_wmask_environment_say_what_to_do(tmp_path, monkeypatch):
    # a clone with no .venv, run by a python that cannot run wmask: the one-line error says which environment to use
    monkeypatch.setattr(experiments, "REPO", tmp_path)
    monkeypatch.setattr(experiments.sys, "executable", "/bin/false")
    with pytest.raises(experiments.UserError, match="make setup"):
        experiments._prepare_cifar10(tmp_path / "seed0", tmp_path / "data")


def test_compare_writes_scans_comparison_with_its_own_floors(tmp_path, capsys):
    import compare
    import pandas as pd
    ours, theirs = tmp_path / "ours", tmp_path / "authors" / "scan" / "cpu"
    ours.mkdir()
    theirs.mkdir(parents=True)
    acc = [{"seed": 0, "model": "lstm", "variant": "mask simple", "test": "length", "accuracy": a} for a in (0.50,)]
    pd.DataFrame(acc).to_csv(ours / "accuracy.csv", index=False)
    pd.DataFrame([{**acc[0], "accuracy": 0.535}]).to_csv(theirs / "accuracy.csv", index=False)
    rem = {"seed": 0, "model": "lstm", "mask": "addprim_jump", "token": "I_JUMP", "removed %": 30.0}
    pd.DataFrame([rem]).to_csv(ours / "removed.csv", index=False)
    pd.DataFrame([{**rem, "removed %": 18.0}]).to_csv(theirs / "removed.csv", index=False)
    assert compare.main(["scan", "--ours-dir", str(ours), "--authors", str(tmp_path / "authors")]) == 0
    got = pd.read_csv(theirs / "comparison.csv")
    assert got.number.tolist() == ["exact match", "removed %"]
    # |0.50 - 0.535| = 0.035 <= 0.04; |30 - 18| = 12 > 10
    assert got.verdict.tolist() == ["within the authors' spread", "outside the authors' spread"]
