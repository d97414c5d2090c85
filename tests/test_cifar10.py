"""CIFAR-10 loading from tiny synthetic datasets written in the canonical and image-folder formats, the errors
for bad files, and the experiment end to end on synthetic data."""
import io
import json
import pickle
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image

from wmask.__main__ import main
from wmask.experiments.data import cifar10 as cf


SMALL = {"train": 2, "test": 1}      # images per class in fake()'s default sizes


def fake(n_train=20, n_test=10, seed=0):
    g = np.random.default_rng(seed)
    return (g.integers(0, 256, (n_train, 32, 32, 3), dtype=np.uint8), np.arange(n_train) % 10,
            g.integers(0, 256, (n_test, 32, 32, 3), dtype=np.uint8), np.arange(n_test) % 10)


def write_batches(folder, arrays):
    tx, ty, ex, ey = arrays
    folder.mkdir(parents=True)
    chunks = np.array_split(np.arange(len(tx)), 5)
    for i, idx in enumerate(chunks, 1):
        rows = tx[idx].transpose(0, 3, 1, 2).reshape(len(idx), -1)
        (folder / f"data_batch_{i}").write_bytes(pickle.dumps({"data": rows, "labels": ty[idx].tolist()}))
    (folder / "test_batch").write_bytes(pickle.dumps({"data": ex.transpose(0, 3, 1, 2).reshape(len(ex), -1),
                                                      "labels": ey.tolist()}))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": list(cf.CLASSES)}))


def write_image_tar(path, arrays):
    tx, ty, ex, ey = arrays
    with tarfile.open(path, "w:gz") as tar:
        for split, xs, ys in (("train", tx, ty), ("test", ex, ey)):
            for i, (x, y) in enumerate(zip(xs, ys)):
                buf = io.BytesIO()
                Image.fromarray(x).save(buf, format="PNG")   # lossless, so the pixels must round-trip
                info = tarfile.TarInfo(f"{split}/{cf.CLASSES[y]}/{i:04d}.png")
                info.size = len(buf.getvalue())
                tar.addfile(info, io.BytesIO(buf.getvalue()))


def test_canonical_batches_round_trip_and_are_verified(tmp_path, monkeypatch):
    monkeypatch.setenv("WMASK_CACHE", str(tmp_path / "cache"))
    arrays = fake()
    write_batches(tmp_path / "cifar-10-batches-py", arrays)
    with pytest.raises(cf.DatasetError, match="data_batch_1 is corrupt or not the canonical file.*expected c99caf"):
        cf.load(tmp_path)
    got = cf.load(tmp_path, verify=False, expected_counts=SMALL)
    assert np.array_equal(got["train_x"], arrays[0]) and np.array_equal(got["train_y"], arrays[1])
    assert np.array_equal(got["test_x"], arrays[2]) and "not canonical" in got["dataset"]
    (tmp_path / "cifar-10-batches-py/test_batch").unlink()
    with pytest.raises(cf.DatasetError, match="test_batch is missing"):
        cf.load(tmp_path, verify=False, expected_counts=SMALL)


def test_image_archive_round_trips_and_is_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("WMASK_CACHE", str(tmp_path / "cache"))
    arrays = fake()
    write_image_tar(tmp_path / "images.tar.gz", arrays)
    got = cf.load(tmp_path, expected_counts=SMALL)
    assert got["train_x"].shape == (20, 32, 32, 3) and sorted(got["train_y"].tolist()) == sorted(arrays[1].tolist())
    assert {x.tobytes() for x in got["train_x"]} == {x.tobytes() for x in arrays[0]}
    assert "not canonical" in got["dataset"] and got["checksum"] in got["dataset"]
    assert list((tmp_path / "cache").glob("cifar10-*.npz"))
    assert np.array_equal(cf.load(tmp_path, expected_counts=SMALL)["test_x"], got["test_x"])   # now from the cache


def test_write_batches_round_trips_through_load_and_a_plain_unpickler(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WMASK_CACHE", str(tmp_path / "cache"))
    tx, ty, ex, ey = fake()
    arrays = {"train_x": tx, "train_y": ty, "test_x": ex, "test_y": ey}
    cf.write_batches(tmp_path / "out" / "cifar-10-batches-py", arrays)
    got = cf.load(tmp_path / "out", verify=False, expected_counts=SMALL)
    assert all(np.array_equal(got[k], v) for k, v in arrays.items())
    # as a reader of the canonical layout sees it (e.g. the authors' code): bytes keys, [N, 3, 32, 32] rows
    raw = pickle.loads((tmp_path / "out/cifar-10-batches-py/data_batch_1").read_bytes(), encoding="bytes")
    assert np.array_equal(raw[b"data"].reshape(-1, 3, 32, 32), tx[:4].transpose(0, 3, 1, 2))
    assert raw[b"labels"] == ty[:4].tolist()
    meta = pickle.loads((tmp_path / "out/cifar-10-batches-py/batches.meta").read_bytes(), encoding="bytes")
    assert [n.decode() for n in meta[b"label_names"]] == list(cf.CLASSES)
    assert main(["data", "cifar10"]) == 2
    assert "data cifar10 needs --write-batches OUT_DIR" in capsys.readouterr().err


def test_bad_archives_are_named(tmp_path, monkeypatch):
    monkeypatch.setenv("WMASK_CACHE", str(tmp_path / "cache"))
    write_image_tar(tmp_path / "full.tar.gz", fake())
    raw = (tmp_path / "full.tar.gz").read_bytes()
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "images.tar.gz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(cf.DatasetError, match="images.tar.gz"):
        cf.load(bad)
    (bad / "images.tar.gz").unlink()
    (bad / "cifar-10-python.tar.gz").write_bytes(b"not an archive")
    with pytest.raises(cf.DatasetError, match="expected c58f30108f718f92721af3b95e74349a"):
        cf.load(bad)
    with pytest.raises(cf.DatasetError, match="no CIFAR-10 in"):
        cf.load(tmp_path / "empty_dir_that_does_not_exist")


def test_cifar_experiment_end_to_end_on_synthetic_data(tmp_path):
    assert main(["run", "cifar10", "--preset", "smoke", "--results", str(tmp_path), "--quiet",
                 "base.eval_every=150", "control_steps=60"]) == 0
    (out,) = (tmp_path / "cifar10").glob("smoke+*")       # an overridden preset gets its own folder
    run = json.loads((out / "summary.json").read_text())["runs"][0]
    # the base network's curves: the loss every 50 steps, the held-out accuracy every 150 steps; the last one is
    # the same network on the same images as the run's base accuracy
    assert [s for s, _ in run["base_curve"]["loss"]] == [49, 99, 149, 199, 249, 299]   # last step (0-based) of each window
    assert [s for s, _ in run["base_curve"]["held_out"]] == [150, 300]
    assert run["base_curve"]["held_out"][-1][1] == run["accuracy_base"]
    assert run["dataset"].startswith("synthetic") and len(run["relative_drop"]) == 10
    # the control stage runs its own number of steps, the class-removal stage mask.steps (smoke: 40)
    assert run["history"]["control"]["step"][-1] == 59 and run["history"]["removal"]["step"][-1] == 39
    assert 0 <= run["stability_iou"]["total"] <= 1
    assert (out / "worst.csv").exists() and (out / "base_curve.csv").exists()


def test_resnet110_has_he_et_al_size_and_rejects_bad_depths():
    import torch
    from wmask.experiments.models import CifarResNet
    net = CifarResNet(110)
    convs = sum(isinstance(m, torch.nn.Conv2d) for m in net.modules())
    assert convs + 1 == 110                                    # 109 convs + the linear read-out
    assert 1.65e6 < sum(p.numel() for p in net.parameters()) < 1.75e6   # "1.7M" in He et al. (2016), Table 6
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    with pytest.raises(ValueError, match="6n \\+ 2"):
        CifarResNet(100)


def test_crop_flip_against_a_loop():
    import torch
    from wmask.experiments.tasks.cifar10 import crop_flip
    x = torch.randint(0, 255, (6, 3, 32, 32), dtype=torch.uint8)
    got = crop_flip(x, torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)
    dy, dx = (torch.randint(0, 9, (6, 1), generator=g) for _ in range(2))
    flip = torch.rand(6, generator=g) < 0.5
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    for i in range(6):
        crop = padded[i, :, dy[i, 0]:dy[i, 0] + 32, dx[i, 0]:dx[i, 0] + 32]
        assert torch.equal(got[i], crop.flip(-1) if flip[i] else crop)


def test_sgd_schedule_divides_by_ten_at_milestones():
    import torch
    from wmask.train import sgd
    make, schedule = sgd(milestones=(10, 20))
    assert [schedule(s) for s in (0, 9, 10, 19, 20, 99)] == pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.01])
    opt = make([torch.nn.Parameter(torch.zeros(1))], 0.1)
    assert isinstance(opt, torch.optim.SGD) and opt.defaults["momentum"] == 0.9 and opt.defaults["weight_decay"] == 1e-4


def test_resnet_experiment_end_to_end_at_smoke(tmp_path, capsys):
    args = ["run", "cifar10", "--model", "resnet", "--preset", "smoke", "--results", str(tmp_path), "--quiet"]
    assert main(args) == 0
    run = json.loads((tmp_path / "cifar10-resnet" / "smoke" / "summary.json").read_text())["runs"][0]
    assert run["config"]["model"] == "resnet" and run["config"]["official_test"]
    assert run["n_test"] == 3000 and len(run["relative_drop"]) == 10      # the synthetic "official" test half
    assert main(["run", "cifar10", "--model", "resnet", "--preset", "cpu", "--results", str(tmp_path)]) == 2
    assert "cifar10-resnet has no 'cpu' preset: the ResNet-110 needs a GPU" in capsys.readouterr().err


def test_class_removal_masks_start_from_the_control_mask_or_fresh(tmp_path, capsys):
    """``removal_init``: from the control mask's logits (ours), or from the initial logit with the output layer
    copied from the control mask (the authors' code). With no class-removal step, the masks are where they start."""
    from safetensors.torch import load_file
    kept = {}
    for init in ("control", "fresh"):
        assert main(["run", "cifar10", "--preset", "smoke", "--results", str(tmp_path / init), "--quiet",
                     "base.steps=50", "control_steps=100", "mask.lr=0.05", "mask.steps=0", f"removal_init={init}"]) == 0
        (store,) = (tmp_path / init / "cifar10").glob("smoke+*/seed0")
        kept[init] = load_file(store / "removal.safetensors")
    head = [n for n in kept["control"] if n.startswith("head.")]
    assert head and len(kept["control"]) > len(head)
    for n, m in kept["control"].items():
        assert m.shape[0] == 10 and all(torch.equal(m[c], m[0]) for c in range(10))   # ten copies of the control
        if n in head:
            assert torch.equal(kept["fresh"][n], m)
        else:
            assert kept["fresh"][n].all()
    assert not all(m.all() for m in kept["control"].values())     # the control mask had removed weights
    assert main(["show", "cifar10", "--preset", "smoke", "removal_init=theirs"]) == 2
    assert "unknown removal_init 'theirs'" in capsys.readouterr().err
