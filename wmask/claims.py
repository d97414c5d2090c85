"""The paper's claims as explicit inequalities on our numbers, shared by the notebooks' verdict cells and the
reproduction report. Each check reads the tidy tables of an experiment (``<experiment>.tables(runs)`` as DataFrames)
and returns lines ``(holds, detail)``. ``holds`` is ``None`` (**untestable**) when the check cannot be made, and the
detail then ends with ``[untestable: reason]``: a base network below its target, a mask that had not converged
(:mod:`wmask.evidence`), or numbers that cannot show the effect. Nothing here trains anything.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import pandas as pd

from . import evidence
from .runner import experiment_of, label, model_of
from .tasks import scan


@dataclass
class Claim:
    key: str
    experiment: str
    claim: str          # the paper's claim, in words
    evidence: str       # where the paper shows it
    check: Callable     # (tables, config) -> list[(holds, detail)]
    why: str = ""       # the check's thresholds, and why those


def _mean_acc(tables):
    return tables["accuracy"].groupby(["network", "mask", "evaluated on"]).accuracy.mean()


def gate(tables: dict, network: str | None = None, masks: list[str] | None = None) -> str:
    """Why checks on ``network`` (its ``masks``; ``None`` = all) cannot be made, "" when they can: every seed's base
    network at its target (table ``base``: seed, [network,] subtask, accuracy, target) and every seed's masks
    converged (table ``curves``: seed, [network,] mask, step, loss, kept). ``curves`` may instead be a string saying
    why no curves exist (the authors' code, :func:`wmask.reference.authors_tables`): then only the targets gate."""
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


def _main_nets(cfg: dict, subtasks=None) -> list[str]:
    return [n for n in ("fnn", "fnn_big", "lstm") if n in cfg["networks"]]


def _specialised(tables, cfg, subtasks):
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


def _partial_overlap(tables, cfg):
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


def _sharing_falls(tables, cfg):
    sizes = list(cfg["size_study"])
    if len(sizes) < 2:
        return []
    s = tables["sharing"]
    by = (100 * s[s.network.isin(sizes)].groupby("network")["shared + in ×"].mean()).reindex(sizes)
    why = "; ".join(f"{n}: {r}" for n in sizes if (r := gate(tables, n, ["+", "×"])))
    return [_line(why, by.iloc[-1] < by.iloc[0], "% of + weights shared with ×: "
                  + " -> ".join(f"{n} {v:.1f}%" for n, v in by.items()) + " (largest < smallest)")]


def _sweep(tables, cfg):
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


def _inverted_keeps_other(tables, cfg, subtasks, variants=("",)):
    acc, lines = _mean_acc(tables), []
    for net in _main_nets(cfg):
        for me, other in (subtasks, subtasks[::-1]):
            for suffix in (v for v in variants if (net, f"¬{me}{v}", other) in acc.index):
                kept, full = acc[net, f"¬{me}{suffix}", other], acc[net, "full", other]
                lines.append(_line(gate(tables, net, [me, "control"] if suffix else [me]), kept > 0.5 * full,
                                   f"{net}: ¬{me}{suffix} on {other} {kept:.3f} (> half the full net's {full:.3f}), "
                                   f"on {me} {acc[net, f'¬{me}{suffix}', me]:.3f}"))
    return lines


def _low_overlap(tables, cfg):
    lines = []
    for net in _main_nets(cfg):
        _, hidden = _hidden(tables, net)
        lines.append(_line(gate(tables, net, ["pair 1", "pair 2"]), (hidden.IoU <= 0.3).all(),
                           f"{net}: hidden IoU of the pair masks {hidden.IoU.round(2).tolist()} (<= 0.3), "
                           f"IoMin {hidden.IoMin.round(2).tolist()}"))
    return lines


def _class_specific(tables, cfg):
    worst = tables["worst"].groupby("class", sort=False)[["own drop %", "worst other / own %"]].mean()
    why = gate(tables)
    return [_line(why, (worst["own drop %"] >= 20).all(), "own-class relative drop per class: "
                  + ", ".join(f"{c} {v:.0f}%" for c, v in worst["own drop %"].items()) + " (>= 20% for every class)"),
            _line(why, (worst["worst other / own %"] <= 10).all(), "worst other-class drop as % of the own drop: "
                  + ", ".join(f"{c} {v:.0f}%" for c, v in worst["worst other / own %"].items()) + " (<= 10%)")]


def _split_masks(tables, cfg):
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


def _jump_token(tables, cfg):
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


def _ncut_below(tables, cfg, low, high):
    lines = []
    for k in sorted(set(tables["ncut"].k)):
        a, b = _ncut_mean(tables, k, low), _ncut_mean(tables, k, high)
        lines.append(_line(_filan_gate(tables, cfg, [n for n in (low, high) if n != "init"]), a < b,
                           f"K={k}: n-cut {low} {a:.3f} < {high} {b:.3f}"))
    return lines


def _beats_shuffles(tables, cfg):
    n, lines, first = tables["ncut"], [], 1 / (cfg["n_shuffles"] + 1)

    def count(rows):
        return f"{int((rows.percentile <= first + 1e-12).sum())}/{len(rows)} seeds (z {rows.z.mean():.1f})"
    for (k, net), rows in n[n.network.str.startswith("pruned")].groupby(["k", "network"]):
        lay, nz = rows[rows.null == "layer"], rows[rows.null == "layer_nonzero"]
        lines.append(_line(_filan_gate(tables, cfg, [net]), bool((lay.percentile <= first + 1e-12).all()),
                           f"K={k}, {net}: below every 'layer' shuffle in {count(lay)}; every 'layer_nonzero' "
                           f"shuffle in {count(nz)}"))
    return lines


def _aligned(tables, cfg, which):
    a, g, lines = tables["alignment"], tables["gates"], []
    for net in [n for n in dict.fromkeys(a.network) if (n == "planted") == (which == "planted")]:
        gg = g[g.network == net]
        why = evidence.untestable_reason(
            [f"seed {r['seed']}: {r['subtask']} {r['accuracy']:.3f} < {r['target']:g}" for _, r in gg.iterrows()
             if r["accuracy"] < r["target"]],
            {f"{r['subtask']}, seed {r['seed']}": r["reason"] for _, r in gg.iterrows() if not r["settled"]})
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


SPECIALISED_WHY = ("A mask keeps >= 0.8 x the full network's accuracy on its own subtask (it may lose a little; a "
                   "mask that lost most would show nothing) and <= 0.1 on the other: 10 x the 1 % of a guessed "
                   "two-digit answer, far below any working network.")
INVERTED_WHY = ("The inverted mask keeps > half the full network's accuracy on the other subtask ('for most "
                "inputs'; chance is 1 %).")


def _scan_claims(model: str) -> list[Claim]:
    return [Claim(f"scan-split-masks-{model}", label("scan", model),
                  f"SCAN {model}: the full-problem mask keeps the iid accuracy; a split's own mask drops that "
                  "split's test accuracy to about the level of a network trained from scratch on the split.",
                  "SCAN section, Fig. 4a", _split_masks,
                  why="The full-problem mask keeps >= 0.9 x the unmasked net's iid accuracy; a split's own mask is "
                      "closer to the from-scratch accuracy than to the full-problem mask's (own <= scratch + half the "
                      "gap). Untestable when from scratch is within 0.1 of the full-problem mask (no gap to fall)."),
            Claim(f"scan-jump-token-{model}", label("scan", model),
                  f"SCAN {model}: the add-jump mask removes most output weights from the JUMP token.",
                  "SCAN section, Fig. 4b", _jump_token,
                  why="I_JUMP is the output token with the largest % of its output weights removed by the add-jump "
                      "mask (the paper's Fig. 4b shows it far ahead of every other token).")]


ADD, PAIRS = ("+", "×"), ("pair 1", "pair 2")
CLAIMS = [
    Claim("specialise", "addmul", "The + mask solves addition and fails multiplication; the × mask the reverse.",
          "§3.1, Table 1 (FNN and LSTM)", lambda t, c: _specialised(t, c, ADD),
          why=SPECIALISED_WHY),
    Claim("partial-overlap", "addmul", "The + and × masks share weights substantially but partially in the hidden "
          "layers, and strongly in the input/output layers.", "§3.1, Fig. 2 (per-layer IoU / IoMin)",
          _partial_overlap,
          why="Hidden IoU in [0.2, 0.9]: 'substantial but partial' (neither near-disjoint nor near-identical); "
              "IoMin >= 0.5: the smaller mask lies mostly inside the larger (the paper's Fig. 2); input/output IoU above "
              "every hidden layer's: 'strongly in the input/output layers'."),
    Claim("inverted-addmul", "addmul", "At the paper's width, the inverted + mask still multiplies and the inverted × "
          "mask still adds (at small widths both break, the paper's §3.1).", "§3.1, Table 1 (¬+, ¬× columns)",
          lambda t, c: _inverted_keeps_other(t, c, ADD),
          why=INVERTED_WHY + " The paper and the authors' code at reduced scale: at small widths both operations break, "
              "so a 400-wide net failing this is expected (a scale effect)."),
    Claim("sharing-vs-size", "addmul", "The share of weights the two operations have in common falls as the "
          "network grows.", "§3.1, Fig. 3 (% shared vs size)", _sharing_falls,
          why="The largest network of the size study shares a smaller % of its + weights with × than the smallest: "
              "the direction of the paper's Fig. 3, with no threshold on the size of the fall."),
    Claim("alpha-sweep", "addmul", "Specialisation does not depend on the regulariser strength α.",
          "Appendix, accuracy vs α", _sweep,
          why="At every α of the sweep: each mask on the other operation <= 0.1 (as for the specialisation check) "
              "and on its own >= half the full net's (a strong α may cost accuracy; the claim is about specialisation)."),
    Claim("pairs-separate", "double_addition", "Each pair's mask solves its own pair and fails the other.",
          "§3.2, Table 2", lambda t, c: _specialised(t, c, PAIRS),
          why=SPECIALISED_WHY),
    Claim("inverted-pairs", "double_addition", "Removing one pair's weights (¬pair i) leaves the other pair working "
          "for most inputs: the two identical additions are not computed by shared weights.", "§3.2, Table 2",
          lambda t, c: _inverted_keeps_other(t, c, PAIRS, ("", " (I/O kept)")),
          why=INVERTED_WHY),
    Claim("class-specific", "cifar10", "Removing the weights a class needs alone causes a large accuracy drop on that "
          "class and small drops on the others: classification relies on class-specific weights.",
          "§3.4, Fig. 5 (relative drop; worst other class 0–10 %)", _class_specific,
          why="Own-class relative drop >= 20 % for every class ('large'), and the worst other class's drop <= 10 % "
              "of it: the y range of the paper's Fig. 5."),
    Claim("pairs-low-overlap", "double_addition", "The pair-1 and pair-2 masks overlap little in the hidden layers.",
          "§3.2, Fig. 4 (per-layer IoU)", _low_overlap,
          why="Hidden-layer IoU <= 0.3 in every hidden layer: 'low'. Input/output IoU is 0 by construction (each "
              "pair has its own inputs and outputs) and is not checked."),
    *_scan_claims("lstm"), *_scan_claims("transformer"),
    Claim("filan-pruned-below-init", "clusterability", "Trained and pruned MLPs are more clusterable (lower n-cut) "
          "than randomly initialised ones.", "Filan et al., Clusterability, §4 (MNIST MLPs at K=12: pruned 8.9–9.0, random init 10.3)",
          lambda t, c: _ncut_below(t, c, "pruned", "init"),
          why="Mean n-cut over seeds of the trained + pruned network below the untrained initialisation's, at each K "
              "(both networks' test accuracy gates: the trained one must reach the target)."),
    Claim("filan-dropout-lower", "clusterability", "Trained with dropout, pruned MLPs are more clusterable still.",
          "Filan et al., Clusterability, §4 (K=12: 8.35–8.36 vs 8.88–9.01)",
          lambda t, c: _ncut_below(t, c, "pruned+dropout", "pruned"),
          why="Mean n-cut of the pruned dropout network below the pruned one's, at each K."),
    Claim("filan-beats-shuffles", "clusterability", "Trained and pruned MLPs are more clusterable than every "
          "network with the same weights shuffled within layers.", "Filan et al., Pruned NNs are Surprisingly "
          "Modular, Table 1; Clusterability, §4 (5/5 nets at K=12)", _beats_shuffles,
          why="In every seed, the n-cut below all 'layer' shuffles (percentile 1/(n+1), the papers' 'significant'); "
              "the topology-keeping 'layer_nonzero' null is shown, not checked (the papers find it much harder to "
              "beat)."),
    Claim("alignment-planted", "clusterability", "(Our positive control, no paper claims it.) Masks of a planted "
          "two-module network lie within clusters, and the two masks in different clusters.",
          "this book's clusterability chapter", lambda t, c: _aligned(t, c, "planted"),
          why="Within-cluster fraction of each mask's kept weights above random masks of the same size per layer "
              "(mean + 2 sd), and the total-variation distance of the two masks' cluster shares above that of "
              "random pairs (mean + 2 sd)."),
    Claim("alignment-arithmetic", "clusterability", "(Our question, no paper claims it.) Do the functional masks "
          "of the arithmetic networks (+ and ×; pair 1 and pair 2) line up with the weight graph's clusters?",
          "this book's clusterability chapter", lambda t, c: _aligned(t, c, "arithmetic"),
          why="As the planted control: within-cluster fraction and separation above random masks (mean + 2 sd). "
              "'Does not hold' means the masks cut across the clusters like random masks of their size."),
]


def tally(lines: list[tuple[bool | None, str]]) -> str:
    """One word for a claim at one preset: holds / partly / does not hold / untestable (with the first reason)."""
    made = [h for h, _ in lines if h is not None]
    if not lines:
        return "not run"
    reasons = [d.rsplit("[untestable: ", 1)[1].rstrip("]") for h, d in lines if h is None and "[untestable: " in d]
    if not made:
        return f"untestable: {reasons[0] if reasons else 'no check could be made'}"
    held = sum(made)
    word = "holds" if held == len(made) else "does not hold" if held == 0 else "partly"
    untestable = len(lines) - len(made)
    return f"{word} ({held}/{len(made)} checks" + (f"; {untestable} untestable)" if untestable else ")")


def check(key: str, tables: dict, cfg: dict) -> list[tuple[bool, str]]:
    claim = next((c for c in CLAIMS if c.key == key), None)
    if claim is None:
        raise ValueError(f"unknown claim {key!r}; known: {[c.key for c in CLAIMS]}")
    tables = {k: v if isinstance(v, (pd.DataFrame, str)) else pd.DataFrame(v) for k, v in tables.items()}
    return claim.check(tables, cfg)


def authors_check(key: str, found: dict) -> list[tuple[bool | None, str]]:
    """The checks of claim ``key`` on the authors' code's numbers (:func:`wmask.reference.load_authors`), against the
    targets our preset sets for the same networks (the cpu preset's, else the paper's): "the authors' code at this
    configuration". Their runs log no mask curves we read back, so only the targets gate them."""
    from . import reference
    claim = next(c for c in CLAIMS if c.key == key)
    exp = experiment_of(claim.experiment)
    model = exp.model_or_default(model_of(claim.experiment))
    cfg = exp.config("cpu" if "cpu" in exp.preset_names(model) else "paper", 0, model)
    if hasattr(cfg, "networks"):
        target = {n: dict(c.target) for n, c in cfg.networks.items()}
        nets = sorted(set(found["accuracy"]["network"]))
    else:
        target, nets = {model: {"iid": cfg.target}}, []
    return check(key, reference.authors_tables(found, target),
                 {"networks": {n: {} for n in nets}, "size_study": [], "sweep_network": None})


def what_we_see(key: str, tables: dict, cfg: dict, preset: str) -> str:
    """The chapter's "what we see" sentence for claim ``key`` (Markdown, numbers in it): our verdict with every
    number checked, then, at ``cpu``, the verdict of the authors' code at the same settings where it was run."""
    lines = check(key, tables, cfg)
    if not lines:
        return f"Not run at preset {preset}."
    numbers = "; ".join(d.split(" [untestable: ")[0] for _, d in lines)
    out = f"at preset {preset}, **{tally(lines)}**; the numbers checked: {numbers}."
    claim = next(c for c in CLAIMS if c.key == key)
    if preset == "cpu":
        from . import reference
        found, folder = reference.find_authors(claim.experiment)
        theirs = authors_check(key, found) if found is not None else []
        if theirs:
            at = "the same settings" if folder == "cpu" else "a former cpu preset's settings"
            out += (f" The authors' code at {at} ({len(set(found['accuracy']['seed']))} seeds, "
                    f"{reference.authors_settings(found)}): **{tally(theirs)}**.")
    return out


def print_check(key: str, tables: dict, cfg: dict) -> None:
    """Print the claim and one ``[holds]`` / ``[does not hold]`` line per inequality checked."""
    claim = next(c for c in CLAIMS if c.key == key)
    print(f"Paper ({claim.evidence}): {claim.claim}")
    if claim.why:
        print(f"  checked as: {claim.why}")
    lines = check(key, tables, cfg)
    for holds, detail in lines:
        print(f"  [{'untestable' if holds is None else 'holds' if holds else 'does not hold'}] {detail}")
    if not lines:
        print("  (not run at this preset)")
