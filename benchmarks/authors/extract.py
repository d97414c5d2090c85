"""Read one run of the authors' code back: every scalar of its TensorBoard event file and its exported final mask
logits, as JSON. Runs under *their* python (``run.py --python``: tensorboard, torch and numpy are there)::

    python extract.py SAVE_DIR OUT_JSON
"""
from __future__ import annotations

import json
import os
import sys


def extract(save_dir: str) -> dict:
    """Every scalar of the run's event file (tag -> [[step, value], ...]); per exported mask stage and tensor, the
    kept count (logit > 0), the size and the pairwise intersections needed for IoU / IoMin / sharing; for CIFAR-10
    the exported confusion matrices ([true, predicted], normalised per true class)."""
    import glob

    import numpy as np
    import torch
    from tensorboard.backend.event_processing import event_accumulator as ea

    files = sorted(glob.glob(os.path.join(save_dir, "tensorboard", "events.out.tfevents.*")))
    if not files:
        raise SystemExit(f"no TensorBoard event file under {save_dir}/tensorboard")
    scalars: dict[str, list] = {}
    for f in files:
        acc = ea.EventAccumulator(f, size_guidance={ea.SCALARS: 0, ea.IMAGES: 1, ea.HISTOGRAMS: 1,
                                                    ea.TENSORS: 1, ea.COMPRESSED_HISTOGRAMS: 1})
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            scalars.setdefault(tag, []).extend([[e.step, e.value] for e in acc.Scalars(tag)])
    for v in scalars.values():
        v.sort(key=lambda e: e[0])

    mask_root = os.path.join(save_dir, "export", "stage_final_masks")
    stages = {}
    if os.path.isdir(mask_root):
        for d in sorted(os.listdir(mask_root)):
            stage = int(d.split("_")[1])
            stages[stage] = {}
            for f in sorted(os.listdir(os.path.join(mask_root, d))):
                # their export_tensor: torch.save(logits.numpy()); a numpy array needs weights_only=False
                logits = torch.load(os.path.join(mask_root, d, f), weights_only=False)
                stages[stage][f[:-4]] = np.asarray(logits) > 0     # as their paper/plot_*_iou.py: logit > 0
    masks = {}
    idx = sorted(stages)
    names = sorted(stages[idx[0]]) if idx else []
    for name in names:
        ms = {s: stages[s][name] for s in idx}
        entry = {"size": int(next(iter(ms.values())).size),
                 "kept": {str(s): int(m.sum()) for s, m in ms.items()}, "and": {}, "or": {}}
        for i in idx:
            for j in idx:
                if i < j:
                    entry["and"][f"{i},{j}"] = int((ms[i] & ms[j]).sum())
                    entry["or"][f"{i},{j}"] = int((ms[i] | ms[j]).sum())
        if "output_projection_weight" in name and next(iter(ms.values())).ndim == 2:
            # per output row (token): kept in each stage, and removed relative to stage 0 (m_0 & ~m_s)
            entry["rows_kept"] = {str(s): m.sum(1).astype(int).tolist() for s, m in ms.items()}
            entry["rows_removed_vs_0"] = {str(s): (ms[idx[0]] & ~m).sum(1).astype(int).tolist()
                                          for s, m in ms.items() if s != idx[0]}
        masks[name] = entry
    confusion = None
    conf_root = os.path.join(save_dir, "export", "class_removal")
    if os.path.isdir(conf_root):     # CIFAR-10: the control mask's confusion, and each class-removal mask's minus it
        load = lambda f: np.asarray(torch.load(f, weights_only=False), dtype=np.float64).tolist()  # noqa: E731
        diff_dir = os.path.join(conf_root, "confusion_difference")
        confusion = {"reference": load(os.path.join(conf_root, "confusion_reference.pth")),
                     "difference": {f[:-4]: load(os.path.join(diff_dir, f)) for f in sorted(os.listdir(diff_dir))}}
        confusion.update(_drops(confusion))
    vocab = None
    cache = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(save_dir))), "cache", "scan", "scan.pth")
    if os.path.isfile(cache):     # their SCAN vocabularies (id -> word); the decoder's extra last row is EOS
        v = torch.load(cache, weights_only=False)
        vocab = {"out": {int(k): w for k, w in v["out_voc"]["inv_words"].items()}}
    return {"event_files": files, "scalars": scalars, "masks": masks, "vocab": vocab, "confusion": confusion}


def _drops(confusion: dict) -> dict:
    """Relative drop per (removed class, evaluated class) and the worst-other ratio per class, with the very
    functions our CIFAR-10 experiment uses (``wmask.metrics``, loaded from this repository by path: it needs only
    torch). Classes in the order of their ``batches.meta``, which is ours
    (``wmask.experiments.data.cifar10.CLASSES``)."""
    import importlib.util

    import torch
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "wmask", "metrics.py")
    spec = importlib.util.spec_from_file_location("wmask_metrics", path)
    metrics = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(metrics)
    ref = torch.tensor(confusion["reference"], dtype=torch.float64)
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    missing = [n for n in names if n not in confusion["difference"]]
    if missing:
        raise SystemExit(f"no confusion difference exported for {missing}")
    drops = torch.stack([metrics.relative_drop(ref, ref + torch.tensor(confusion["difference"][n],
                                                                       dtype=torch.float64)) for n in names])
    return {"classes": names, "relative_drop": drops.tolist(),
            "worst_other_ratio": metrics.worst_other_ratio(drops).tolist()}


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit("usage: extract.py SAVE_DIR OUT_JSON")
    with open(sys.argv[2] + ".tmp", "w") as f:
        json.dump(extract(sys.argv[1]), f)
    os.replace(sys.argv[2] + ".tmp", sys.argv[2])
