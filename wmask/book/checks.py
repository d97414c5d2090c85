"""The inequalities behind each claim of :mod:`wmask.book.claims`: pure functions ``(tables, config) -> [(holds, detail)]``
on an experiment's tidy tables (DataFrames). ``holds`` is ``None`` (**untestable**) when the check cannot be made,
and the detail then ends with ``[untestable: reason]``: a base network below its target, a mask that had not
converged (:mod:`wmask.evidence`), or numbers that cannot show the effect.
"""
from __future__ import annotations

import pandas as pd

from .. import evidence
from ..tasks import scan


def _mean_acc(tables):
    return tables["accuracy"].groupby(["network", "mask", "evaluated on"]).accuracy.mean()


def gate(tables: dict, network: str | None = None, masks: list[str] | None = None) -> str:
    """Why checks on ``network`` (its ``masks``; ``None`` = all) cannot be made, "" when they can: every seed's base
    network at its target (table ``base``: seed, [network,] subtask, accuracy, target) and every seed's masks
    converged (table ``curves``: seed, [network,] mask, step, loss, kept). ``curves`` may instead be a string saying
    why no curves exist (the authors' code, :func:`wmask.book.authors.authors_tables`): then only the targets gate."""
    base, curves = tables.get("base"), tables.get("curves")
    if base is None or not len(base):
        return "no base accuracy against a target recorded (a summary from an older wmask)"
    if isinstance(curves, str):
        curves = pd.DataFrame(columns=["seed", "network", "mask", "step", "loss", "kept"])
    elif curves is None or not len(curves):
        return "no mask training curves recorded (a summary from an older wmask)"
    if network is not None and "network" in base:
        base, curves = base[base.network == network], curves[curves.network == network]
    if base.target.isna().any():
        return "no target recorded for the base network (a summary from an older wmask)"
    below = [f"seed {seed}: " + ", ".join(miss) for seed, b in base.groupby("seed")
             if (miss := evidence.below_target(dict(zip(b.subtask, b.accuracy)), dict(zip(b.subtask, b.target))))]
    settled = evidence.settling(curves)
    unconverged = {f"{r['mask']}, seed {r['seed']}": r["reason"] for _, r in settled.iterrows()
                   if not r["converged"] and (masks is None or r["mask"] in masks)}
    return evidence.untestable_reason(below, unconverged)


def _line(reason: str, holds, detail: str) -> tuple[bool | None, str]:
    """One check's line: untestable with ``reason`` when there is one."""
    return (None, f"{detail} [untestable: {reason}]") if reason else (bool(holds), detail)


MAIN_NETS = ("fnn", "fnn_big", "lstm")


def _main_nets(cfg: dict, subtasks=None) -> list[str]:
    """The networks a claim is checked on: per kind of network (FNN, LSTM) the preset's main one (fnn / fnn_big,
    lstm); where a run of some of a preset's networks lacks it (e.g. the paper's smaller FNNs and its LSTM on a CPU,
    without the 2000×4 FNN), every network of that kind it ran, bar the clipping variants."""
    nets, picked = cfg["networks"], []
    for model in dict.fromkeys(c.get("model") for c in nets.values()):
        kind = [n for n, c in nets.items() if c.get("model") == model and not n.endswith("_masks_clip")]
        picked += [n for n in kind if n in MAIN_NETS] or kind
    return picked


def specialised(tables, cfg, subtasks):
    acc, lines = _mean_acc(tables), []
    for net in _main_nets(cfg):
        for me, other in (subtasks, subtasks[::-1]):
            own, full, cross = acc[net, me, me], acc[net, "full", me], acc[net, me, other]
            lines.append(_line(gate(tables, net, [me]), own >= 0.8 * full and cross <= 0.1,
                               f"{net}: {me} mask on {me} {own:.3f} (>= 0.8 x full {full:.3f}), "
                               f"on {other} {cross:.3f} (<= 0.1)"))
    return lines


def _hidden(tables, net):
    layers = tables["layers"]
    per = layers[(layers.network == net) & (layers.layer != "total")].groupby("layer", sort=False)[["IoU", "IoMin"]]
    per = per.mean()
    return per.iloc[[0, -1]], per.iloc[1:-1]


def partial_overlap(tables, cfg):
    lines = []
    for net in _main_nets(cfg):
        io, hidden = _hidden(tables, net)
        why = gate(tables, net, ["+", "×"])
        lines.append(_line(why, (hidden.IoU >= 0.2).all() and (hidden.IoU <= 0.9).all() and (hidden.IoMin >= 0.5).all(),
                           f"{net}: hidden IoU {hidden.IoU.round(2).tolist()} in [0.2, 0.9], "
                           f"IoMin {hidden.IoMin.round(2).tolist()} >= 0.5"))
        lines.append(_line(why, io.IoU.min() > hidden.IoU.max(),
                           f"{net}: input/output IoU {io.IoU.round(2).tolist()} > hidden max {hidden.IoU.max():.2f}"))
    return lines


def sharing_falls(tables, cfg):
    sizes = list(cfg["size_study"])
    if len(sizes) < 2:
        return []
    s = tables["sharing"]
    by = (100 * s[s.network.isin(sizes)].groupby("network")["shared + in ×"].mean()).reindex(sizes)
    why = "; ".join(f"{n}: {r}" for n in sizes if (r := gate(tables, n, ["+", "×"])))
    return [_line(why, by.iloc[-1] < by.iloc[0], "% of + weights shared with ×: "
                  + " -> ".join(f"{n} {v:.1f}%" for n, v in by.items()) + " (largest < smallest)")]


def sweep(tables, cfg):
    sweep = tables["sweep"]
    if not len(sweep):
        return []
    spec = sweep.groupby("alpha")[["+ mask on +", "+ mask on ×", "× mask on ×", "× mask on +"]].mean()
    full = _mean_acc(tables)
    f = {op: full[cfg["sweep_network"], "full", op] for op in ("+", "×")}
    why = gate(tables, cfg["sweep_network"], [])     # the base network; the sweep's masks log no curves
    return [_line(why, (spec["+ mask on ×"] <= 0.1).all() and (spec["× mask on +"] <= 0.1).all(),
                  "each mask on the other operation: " + "; ".join(
                      f"α={a:g}: +→× {r['+ mask on ×']:.3f}, ×→+ {r['× mask on +']:.3f}" for a, r in spec.iterrows())
                  + " (<= 0.1)"),
            _line(why, (spec["+ mask on +"] >= 0.5 * f["+"]).all() and (spec["× mask on ×"] >= 0.5 * f["×"]).all(),
                  "each mask on its own operation: " + "; ".join(
                      f"α={a:g}: +→+ {r['+ mask on +']:.3f}, ×→× {r['× mask on ×']:.3f}" for a, r in spec.iterrows())
                  + f" (>= half the full net's + {f['+']:.3f}, × {f['×']:.3f})")]


def inverted_keeps_other(tables, cfg, subtasks, variants=("",)):
    acc, lines = _mean_acc(tables), []
    for net in _main_nets(cfg):
        for me, other in (subtasks, subtasks[::-1]):
            for suffix in (v for v in variants if (net, f"¬{me}{v}", other) in acc.index):
                kept, full = acc[net, f"¬{me}{suffix}", other], acc[net, "full", other]
                lines.append(_line(gate(tables, net, [me, "control"] if suffix else [me]), kept > 0.5 * full,
                                   f"{net}: ¬{me}{suffix} on {other} {kept:.3f} (> half the full net's {full:.3f}), "
                                   f"on {me} {acc[net, f'¬{me}{suffix}', me]:.3f}"))
    return lines


def low_overlap(tables, cfg):
    lines = []
    for net in _main_nets(cfg):
        _, hidden = _hidden(tables, net)
        lines.append(_line(gate(tables, net, ["pair 1", "pair 2"]), (hidden.IoU <= 0.3).all(),
                           f"{net}: hidden IoU of the pair masks {hidden.IoU.round(2).tolist()} (<= 0.3), "
                           f"IoMin {hidden.IoMin.round(2).tolist()}"))
    return lines


def class_specific(tables, cfg):
    worst = tables["worst"].groupby("class", sort=False)[["own drop %", "worst other / own %"]].mean()
    why = gate(tables)
    return [_line(why, (worst["own drop %"] >= 20).all(), "own-class relative drop per class: "
                  + ", ".join(f"{c} {v:.0f}%" for c, v in worst["own drop %"].items()) + " (>= 20% for every class)"),
            _line(why, (worst["worst other / own %"] <= 10).all(), "worst other-class drop as % of the own drop: "
                  + ", ".join(f"{c} {v:.0f}%" for c, v in worst["worst other / own %"].items()) + " (<= 10%)")]


def split_masks(tables, cfg):
    """Full-problem mask keeps the iid accuracy; each split's own mask falls towards the from-scratch level."""
    acc = tables["accuracy"].groupby(["variant", "test"]).accuracy.mean()
    full, kept = acc["full", "simple"], acc["mask simple", "simple"]
    lines = [_line(gate(tables, None, ["simple"]), kept >= 0.9 * full,
                   f"full-problem mask on the iid test {kept:.3f} (>= 0.9 x the unmasked net's {full:.3f})")]
    for split in scan.SPLITS[1:]:
        name = scan.LABELS[split]
        if ("scratch", split) not in acc.index:
            why = gate(tables, None, ["simple", split]) or "no network trained from scratch on the split in this run"
            lines.append(_line(why, None, f"{name} test: own mask {acc[f'mask {split}', split]:.3f}, full-problem "
                                          f"mask {acc['mask simple', split]:.3f}"))
            continue
        whole, own, scratch = acc["mask simple", split], acc[f"mask {split}", split], acc["scratch", split]
        gap = whole - scratch
        why = gate(tables, None, ["simple", split]) or (
            f"from scratch ({scratch:.3f}) is within 0.1 of the full-problem mask ({whole:.3f})" if gap < 0.1 else "")
        lines.append(_line(why, own <= scratch + 0.5 * gap,
                           f"{name} test: own mask {own:.3f}, full-problem mask {whole:.3f}, from scratch "
                           f"{scratch:.3f} (own mask closer to from-scratch than to the full-problem mask)"))
    return lines


def jump_token(tables, cfg):
    r = tables["removed"]
    per = r[r["mask"] == "addprim_jump"].groupby("token")["removed %"].mean().sort_values(ascending=False)
    why = gate(tables, None, ["simple", "addprim_jump"]) or (
        "the mask removes no output weight" if per.iloc[0] <= 0 else "")
    return [_line(why, per.index[0] == "I_JUMP", "add-jump mask, % of output weights removed per token: "
                  + ", ".join(f"{t} {v:.1f}%" for t, v in per.items()) + " (I_JUMP largest)")]


def _filan_gate(tables, cfg, networks) -> str:
    """Why a clusterability check cannot be made: a trained MNIST network below the target accuracy."""
    n = tables["ncut"]
    low = n[n.network.isin(networks) & (n.accuracy < cfg["mlp"]["target"])].drop_duplicates(["seed", "network"])
    return "base network below target: " + ", ".join(
        f"{r.network} seed {r.seed} {r.accuracy:.3f} < {cfg['mlp']['target']:g}" for r in low.itertuples()) \
        if len(low) else ""


def _ncut_mean(tables, k, network, null="layer"):
    n = tables["ncut"]
    return n[(n.k == k) & (n.network == network) & (n.null == null)].ncut.mean()


def ncut_below(tables, cfg, low, high):
    lines = []
    for k in sorted(set(tables["ncut"].k)):
        a, b = _ncut_mean(tables, k, low), _ncut_mean(tables, k, high)
        lines.append(_line(_filan_gate(tables, cfg, [n for n in (low, high) if n != "init"]), a < b,
                           f"K={k}: n-cut {low} {a:.3f} < {high} {b:.3f}"))
    return lines


def beats_shuffles(tables, cfg):
    n, lines, first = tables["ncut"], [], 1 / (cfg["n_shuffles"] + 1)

    def count(rows):
        return f"{int((rows.percentile <= first + 1e-12).sum())}/{len(rows)} seeds (z {rows.z.mean():.1f})"
    for (k, net), rows in n[n.network.str.startswith("pruned")].groupby(["k", "network"]):
        lay, nz = rows[rows.null == "layer"], rows[rows.null == "layer_nonzero"]
        lines.append(_line(_filan_gate(tables, cfg, [net]), bool((lay.percentile <= first + 1e-12).all()),
                           f"K={k}, {net}: below every 'layer' shuffle in {count(lay)}; every 'layer_nonzero' "
                           f"shuffle in {count(nz)}"))
    return lines


def _gate_rows(rows, label, target) -> str:
    """Why checks on ``rows`` (columns ``accuracy``, ``settled``, ``reason``) cannot be made: a row below its target
    (``target``: a column name or one number), then a mask that had not settled; ``label(row)`` names a row."""
    rows = [r for _, r in rows.iterrows()]
    goal = (lambda r: r[target]) if isinstance(target, str) else (lambda r: target)  # noqa: E731
    return evidence.untestable_reason([f"{label(r)} {r['accuracy']:.3f} < {goal(r):g}" for r in rows
                                       if r["accuracy"] < goal(r)],
                                      {label(r): r["reason"] for r in rows if not r["settled"]})


def aligned(tables, cfg, which):
    a, g, lines = tables["alignment"], tables["gates"], []
    for net in [n for n in dict.fromkeys(a.network) if (n == "planted") == (which == "planted")]:
        why = _gate_rows(g[g.network == net], lambda r: f"{r['subtask']}, seed {r['seed']}", "target")
        for k, rows in a[a.network == net].groupby("k"):
            within, sep = rows.dropna(subset=["within"]), rows.dropna(subset=["separation"])
            over = lambda v, r, sd: bool((v > r + 2 * sd).all())  # noqa: E731
            lines.append(_line(why, over(within.within, within["random within"], within["random within sd"]),
                               f"{net}, K={k}: kept weights within one cluster " + ", ".join(
                                   f"{r['mask']} {r['within']:.2f} (random {r['random within']:.2f} ± "
                                   f"{r['random within sd']:.2f})" for _, r in within.iterrows()) + " (> random + 2 sd)"))
            lines.append(_line(why, over(sep.separation, sep["random separation"], sep["random separation sd"]),
                               f"{net}, K={k}: separation " + ", ".join(
                                   f"{r['mask']} {r['separation']:.2f} (random {r['random separation']:.2f} ± "
                                   f"{r['random separation sd']:.2f})" for _, r in sep.iterrows()) + " (> random + 2 sd)"))
    return lines


def no_reuse(tables, cfg):
    t, reuse, control = tables["tasks"], tables["reuse"], tables["control"]

    def why(rows):        # every task of these rows at target, and its mask settled
        return _gate_rows(rows, lambda r: f"init {r['new init']:g} T{r['task']}", cfg["target"])
    later = later_reuse(reuse).groupby(["new init", "layer"]).reused.mean()
    lines = []
    for v in dict.fromkeys(t["new init"]):
        share = later[v]
        lines.append(_line(why(t[t["new init"] == v]), bool((share <= 0.5).all()),
                           f"init {v:g}: share of a later task's kept weights that earlier tasks used, "
                           + ", ".join(f"layer {la} {x:.2f}" for la, x in share.items()) + " (<= 0.5)"))
    first = t[t["new init"] == t["new init"].iloc[0]]
    joint = first.groupby("task").accuracy.mean()
    for (task, what), a in control.groupby(["task", "what"]).accuracy.mean().items():
        if what == "first layer only":
            lines.append(_line(why(first[first.task.isin([0, task])]), a >= 0.95 * joint[task],
                               f"T{task}: relearning only the first layer {a:.3f} (>= 0.95 x the jointly trained "
                               f"task's {joint[task]:.3f}, init {first['new init'].iloc[0]:g})"))
    return lines


def easy_mask_loses_hard(tables, cfg):
    """Per module (§2.7): the control mask keeps the network's hard accuracy, the easy-trained mask keeps the easy
    accuracy it was trained for and loses much of the hard one."""
    acc = tables["accuracy"].groupby(["network", "weights", "test"]).accuracy.mean()
    lines = []
    for net in cfg["networks"]:
        full_h, full_e = acc[net, "network", "hard"], acc[net, "network", "easy"]
        ctrl_h, easy_h, easy_e = (acc[net, "control mask", "hard"], acc[net, "easy mask", "hard"],
                                  acc[net, "easy mask", "easy"])
        holds = ctrl_h >= 0.8 * full_h and easy_e >= 0.8 * full_e and easy_h <= 0.5 * full_h
        lines.append(_line(gate(tables, net), holds,
                           f"{net}: hard test: control mask {ctrl_h:.3f} (>= 0.8 x network {full_h:.3f}), easy mask "
                           f"{easy_h:.3f} (<= 0.5 x network); easy test: easy mask {easy_e:.3f} (>= 0.8 x network "
                           f"{full_e:.3f})"))
    return lines


def later_reuse(reuse):
    """The rows of the ``reuse`` table the claim is about: later tasks (1 on) in layers 2 on (the first layer is
    relearned for every task, so its reuse says nothing)."""
    return reuse[(reuse.task > 0) & (reuse.layer > 1)]
