"""Read one run of the authors' code back: every scalar of its TensorBoard event file and its exported final mask
logits, as JSON. Runs under *their* python (``run.py --python``: tensorboard, torch and numpy are there)::

    python extract.py SAVE_DIR OUT_JSON
"""
from __future__ import annotations

import json
import os
import sys


def extract(save_dir: str) -> dict:
    """Every scalar of the run's event file (tag -> [[step, value], ...]) and, per exported mask stage and tensor,
    the kept count (logit > 0), the size and the pairwise intersections needed for IoU / IoMin / sharing."""
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
    vocab = None
    cache = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(save_dir))), "cache", "scan", "scan.pth")
    if os.path.isfile(cache):     # their SCAN vocabularies (id -> word); the decoder's extra last row is EOS
        v = torch.load(cache, weights_only=False)
        vocab = {"out": {int(k): w for k, w in v["out_voc"]["inv_words"].items()}}
    return {"event_files": files, "scalars": scalars, "masks": masks, "vocab": vocab}


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit("usage: extract.py SAVE_DIR OUT_JSON")
    with open(sys.argv[2] + ".tmp", "w") as f:
        json.dump(extract(sys.argv[1]), f)
    os.replace(sys.argv[2] + ".tmp", sys.argv[2])
