"""The inequalities behind each claim of :mod:`wmask.book.claims`: pure functions ``(tables, config, **thresholds)
-> [Line]`` on an experiment's tidy tables (DataFrames). A :class:`~wmask.book.verdict.Line` is untestable, with its
reason, when the check cannot be made: a base network below its target, a mask that had not converged
(:mod:`wmask.evidence`), or numbers that cannot show the effect. The thresholds come from the claim
(:data:`wmask.book.claims.CLAIMS`), which prints them from the same values.
"""
from __future__ import annotations

import pandas as pd

from .. import evidence
from ..experiments.tasks import scan
from .verdict import Line, line as _line


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


def specialised(tables, cfg, *, subtasks, keep, other_at_most) -> list[Line]:
    acc, lines = _mean_acc(tables), []
    for net in _main_nets(cfg):
        for me, other in (subtasks, subtasks[::-1]):
            own, full, cross = acc[net, me, me], acc[net, "full", me], acc[net, me, other]
            lines.append(_line(gate(tables, net, [me]), own >= keep * full and cross <= other_at_most,
                               f"{net}: {me} mask on {me} {own:.3f} (>= {keep} x full {full:.3f}), "
                               f"on {other} {cross:.3f} (<= {other_at_most})"))
    return lines


def _hidden(tables, net):
    layers = tables["layers"]
    per = layers[(layers.network == net) & (layers.layer != "total")].groupby("layer", sort=False)[["IoU", "IoMin"]]
    per = per.mean()
    return per.iloc[[0, -1]], per.iloc[1:-1]


def partial_overlap(tables, cfg, *, iou, iomin) -> list[Line]:
    lines, (low, high) = [], iou
    for net in _main_nets(cfg):
        io, hidden = _hidden(tables, net)
        why = gate(tables, net, ["+", "×"])
        lines.append(_line(why, (hidden.IoU >= low).all() and (hidden.IoU <= high).all()
                           and (hidden.IoMin >= iomin).all(),
                           f"{net}: hidden IoU {hidden.IoU.round(2).tolist()} in [{low}, {high}], "
                           f"IoMin {hidden.IoMin.round(2).tolist()} >= {iomin}"))
        lines.append(_line(why, io.IoU.min() > hidden.IoU.max(),
                           f"{net}: input/output IoU {io.IoU.round(2).tolist()} > hidden max {hidden.IoU.max():.2f}"))
    return lines


def sharing_falls(tables, cfg) -> list[Line]:
    sizes = list(cfg["size_study"])
    if len(sizes) < 2:
        return []
    s = tables["sharing"]
    by = (100 * s[s.network.isin(sizes)].groupby("network")["shared + in ×"].mean()).reindex(sizes)
    why = "; ".join(f"{n}: {r}" for n in sizes if (r := gate(tables, n, ["+", "×"])))
    return [_line(why, by.iloc[-1] < by.iloc[0], "% of + weights shared with ×: "
                  + " -> ".join(f"{n} {v:.1f}%" for n, v in by.items()) + " (largest < smallest)")]


def sweep(tables, cfg, *, other_at_most, own_share) -> list[Line]:
    sweep = tables["sweep"]
    if not len(sweep):
        return []
    spec = sweep.groupby("alpha")[["+ mask on +", "+ mask on ×", "× mask on ×", "× mask on +"]].mean()
    full = _mean_acc(tables)
    f = {op: full[cfg["sweep_network"], "full", op] for op in ("+", "×")}
    why = gate(tables, cfg["sweep_network"], [])     # the base network; the sweep's masks log no curves
    return [_line(why, (spec["+ mask on ×"] <= other_at_most).all() and (spec["× mask on +"] <= other_at_most).all(),
                  "each mask on the other operation: " + "; ".join(
                      f"α={a:g}: +→× {r['+ mask on ×']:.3f}, ×→+ {r['× mask on +']:.3f}" for a, r in spec.iterrows())
                  + f" (<= {other_at_most})"),
            _line(why, (spec["+ mask on +"] >= own_share * f["+"]).all()
                  and (spec["× mask on ×"] >= own_share * f["×"]).all(),
                  "each mask on its own operation: " + "; ".join(
                      f"α={a:g}: +→+ {r['+ mask on +']:.3f}, ×→× {r['× mask on ×']:.3f}" for a, r in spec.iterrows())
                  + f" (>= {own_share} x the full net's + {f['+']:.3f}, × {f['×']:.3f})")]


def inverted_keeps_other(tables, cfg, *, subtasks, share, variants=("",)) -> list[Line]:
    acc, lines = _mean_acc(tables), []
    for net in _main_nets(cfg):
        for me, other in (subtasks, subtasks[::-1]):
            for suffix in (v for v in variants if (net, f"¬{me}{v}", other) in acc.index):
                kept, full = acc[net, f"¬{me}{suffix}", other], acc[net, "full", other]
                lines.append(_line(gate(tables, net, [me, "control"] if suffix else [me]), kept > share * full,
                                   f"{net}: ¬{me}{suffix} on {other} {kept:.3f} (> {share} x the full net's "
                                   f"{full:.3f}), "
                                   f"on {me} {acc[net, f'¬{me}{suffix}', me]:.3f}"))
    return lines


def low_overlap(tables, cfg, *, iou) -> list[Line]:
    lines = []
    for net in _main_nets(cfg):
        _, hidden = _hidden(tables, net)
        lines.append(_line(gate(tables, net, ["pair 1", "pair 2"]), (hidden.IoU <= iou).all(),
                           f"{net}: hidden IoU of the pair masks {hidden.IoU.round(2).tolist()} (<= {iou}), "
                           f"IoMin {hidden.IoMin.round(2).tolist()}"))
    return lines


def class_specific(tables, cfg, *, own_drop, other_share) -> list[Line]:
    worst = tables["worst"].groupby("class", sort=False)[["own drop %", "worst other / own %"]].mean()
    why = gate(tables)
    return [_line(why, (worst["own drop %"] >= own_drop).all(), "own-class relative drop per class: "
                  + ", ".join(f"{c} {v:.0f}%" for c, v in worst["own drop %"].items())
                  + f" (>= {own_drop}% for every class)"),
            _line(why, (worst["worst other / own %"] <= other_share).all(),
                  "worst other-class drop as % of the own drop: "
                  + ", ".join(f"{c} {v:.0f}%" for c, v in worst["worst other / own %"].items())
                  + f" (<= {other_share}%)")]


def split_masks(tables, cfg, *, keep, closer, min_gap) -> list[Line]:
    """Full-problem mask keeps the iid accuracy; each split's own mask falls towards the from-scratch level."""
    acc = tables["accuracy"].groupby(["variant", "test"]).accuracy.mean()
    full, kept = acc["full", "simple"], acc["mask simple", "simple"]
    lines = [_line(gate(tables, None, ["simple"]), kept >= keep * full,
                   f"full-problem mask on the iid test {kept:.3f} (>= {keep} x the unmasked net's {full:.3f})")]
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
            f"from scratch ({scratch:.3f}) is within {min_gap} of the full-problem mask ({whole:.3f})"
            if gap < min_gap else "")
        lines.append(_line(why, own <= scratch + closer * gap,
                           f"{name} test: own mask {own:.3f}, full-problem mask {whole:.3f}, from scratch "
                           f"{scratch:.3f} (own <= from scratch + {closer} x the gap)"))
    return lines


def jump_token(tables, cfg) -> list[Line]:
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


def ncut_below(tables, cfg, *, low, high) -> list[Line]:
    lines = []
    for k in sorted(set(tables["ncut"].k)):
        a, b = _ncut_mean(tables, k, low), _ncut_mean(tables, k, high)
        lines.append(_line(_filan_gate(tables, cfg, [n for n in (low, high) if n != "init"]), a < b,
                           f"K={k}: n-cut {low} {a:.3f} < {high} {b:.3f}"))
    return lines


def beats_shuffles(tables, cfg) -> list[Line]:
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


def aligned(tables, cfg, *, which, sds) -> list[Line]:
    a, g, lines = tables["alignment"], tables["gates"], []
    for net in [n for n in dict.fromkeys(a.network) if (n == "planted") == (which == "planted")]:
        why = _gate_rows(g[g.network == net], lambda r: f"{r['subtask']}, seed {r['seed']}", "target")
        for k, rows in a[a.network == net].groupby("k"):
            within, sep = rows.dropna(subset=["within"]), rows.dropna(subset=["separation"])
            over = lambda v, r, sd: bool((v > r + sds * sd).all())  # noqa: E731
            lines.append(_line(why, over(within.within, within["random within"], within["random within sd"]),
                               f"{net}, K={k}: kept weights within one cluster " + ", ".join(
                                   f"{r['mask']} {r['within']:.2f} (random {r['random within']:.2f} ± "
                                   f"{r['random within sd']:.2f})" for _, r in within.iterrows())
                               + f" (> random + {sds} sd)"))
            lines.append(_line(why, over(sep.separation, sep["random separation"], sep["random separation sd"]),
                               f"{net}, K={k}: separation " + ", ".join(
                                   f"{r['mask']} {r['separation']:.2f} (random {r['random separation']:.2f} ± "
                                   f"{r['random separation sd']:.2f})" for _, r in sep.iterrows())
                               + f" (> random + {sds} sd)"))
    return lines


def no_reuse(tables, cfg, *, share_at_most, relearn) -> list[Line]:
    t, reuse, control = tables["tasks"], tables["reuse"], tables["control"]

    def why(rows):        # every task of these rows at target, and its mask settled
        return _gate_rows(rows, lambda r: f"init {r['new init']:g} T{r['task']}", cfg["target"])
    later = later_reuse(reuse).groupby(["new init", "layer"]).reused.mean()
    lines = []
    for v in dict.fromkeys(t["new init"]):
        share = later[v]
        lines.append(_line(why(t[t["new init"] == v]), bool((share <= share_at_most).all()),
                           f"init {v:g}: share of a later task's kept weights that earlier tasks used, "
                           + ", ".join(f"layer {la} {x:.2f}" for la, x in share.items()) + f" (<= {share_at_most})"))
    first = t[t["new init"] == t["new init"].iloc[0]]
    joint = first.groupby("task").accuracy.mean()
    for (task, what), a in control.groupby(["task", "what"]).accuracy.mean().items():
        if what == "first layer only":
            lines.append(_line(why(first[first.task.isin([0, task])]), a >= relearn * joint[task],
                               f"T{task}: relearning only the first layer {a:.3f} (>= {relearn} x the jointly trained "
                               f"task's {joint[task]:.3f}, init {first['new init'].iloc[0]:g})"))
    return lines


def easy_mask_loses_hard(tables, cfg, *, keep, lose) -> list[Line]:
    """Per module: the control mask keeps the network's hard accuracy, the easy-trained mask keeps the easy
    accuracy it was trained for and loses much of the hard one."""
    acc = tables["accuracy"].groupby(["network", "weights", "test"]).accuracy.mean()
    lines = []
    for net in cfg["networks"]:
        full_h, full_e = acc[net, "network", "hard"], acc[net, "network", "easy"]
        ctrl_h, easy_h, easy_e = (acc[net, "control mask", "hard"], acc[net, "easy mask", "hard"],
                                  acc[net, "easy mask", "easy"])
        holds = ctrl_h >= keep * full_h and easy_e >= keep * full_e and easy_h <= lose * full_h
        lines.append(_line(gate(tables, net), holds,
                           f"{net}: hard test: control mask {ctrl_h:.3f} (>= {keep} x network {full_h:.3f}), easy mask "
                           f"{easy_h:.3f} (<= {lose} x network); easy test: easy mask {easy_e:.3f} (>= {keep} x "
                           f"network {full_e:.3f})"))
    return lines


def later_reuse(reuse):
    """The rows of the ``reuse`` table the claim is about: later tasks (1 on) in layers 2 on (the first layer is
    relearned for every task, so its reuse says nothing)."""
    return reuse[(reuse.task > 0) & (reuse.layer > 1)]


def planted_blocks(tables, cfg, *, own, cross) -> list[Line]:
    """Each mask recovers its planted block in the hidden layers, and the two masks are disjoint there."""
    iou = tables["iou"]
    layers = [la for la in dict.fromkeys(iou.layer) if la != "total"]
    hidden = iou[iou.layer.isin(layers[1:-1])]          # the input and output layers hold no block structure
    mine = hidden[hidden.pair != "mask A vs mask B"].groupby("pair").IoU.min()
    both = hidden[hidden.pair == "mask A vs mask B"].IoU.max()
    why = gate(tables)
    return [_line(why, (mine >= own).all(), "hidden-layer IoU with the planted block, lowest over seeds and layers: "
                  + ", ".join(f"{p.split(' vs ')[0]} {v:.3f}" for p, v in mine.items()) + f" (>= {own})"),
            _line(why, both <= cross, f"hidden-layer IoU of mask A with mask B, highest: {both:.3f} (<= {cross})")]


def own_operations(tables, cfg, *, subtasks, keep, lose) -> list[Line]:
    """Each operation's mask keeps its own operation and loses the other (a model of your own, no paper claim)."""
    acc = tables["accuracy"].groupby(["weights", "evaluated on"]).accuracy.mean()
    lines = []
    for me, other in (subtasks, subtasks[::-1]):
        own, cross = acc[f"mask {me}", me], acc[f"mask {me}", other]
        lines.append(_line(gate(tables, None, [f"mask {me}"]), own >= keep and cross < lose,
                           f"{me} mask on {me} {own:.3f} (>= {keep}), on {other} {cross:.3f} (< {lose})"))
    return lines
