"""The paper's claims as explicit inequalities on our numbers, shared by the notebooks' verdict cells and the
reproduction report. Each check reads the tidy tables of an experiment (``<module>.tables(runs)`` as DataFrames)
and returns lines ``(holds, detail)``, where ``holds`` is ``None`` when the check cannot be made (the unmasked network
does not solve the subtask, so a mask cannot show anything about it); nothing here trains anything.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import pandas as pd

from .runner import label
from .tasks import scan


@dataclass
class Claim:
    key: str
    experiment: str
    claim: str          # the paper's claim, in words
    evidence: str       # where the paper shows it
    check: Callable     # (tables, config) -> list[(holds, detail)]


def _mean_acc(tables):
    return tables["accuracy"].groupby(["network", "mask", "evaluated on"]).accuracy.mean()


def _testable(full_accuracy: float, holds: bool) -> bool | None:
    """``None`` (untestable) when the unmasked network solves under half of the subtask's problems."""
    return None if full_accuracy < 0.5 else bool(holds)


def _main_nets(cfg: dict, subtasks=None) -> list[str]:
    return [n for n in ("fnn", "fnn_big", "lstm") if n in cfg["networks"]]


def _specialised(tables, cfg, subtasks):
    acc, lines = _mean_acc(tables), []
    for net in _main_nets(cfg):
        for me, other in (subtasks, subtasks[::-1]):
            own, full, cross = acc[net, me, me], acc[net, "full", me], acc[net, me, other]
            lines.append((_testable(full, own >= 0.8 * full and cross <= 0.1),
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
        lines.append((bool((hidden.IoU >= 0.2).all() and (hidden.IoU <= 0.9).all() and (hidden.IoMin >= 0.5).all()),
                      f"{net}: hidden IoU {hidden.IoU.round(2).tolist()} in [0.2, 0.9], "
                      f"IoMin {hidden.IoMin.round(2).tolist()} >= 0.5"))
        lines.append((bool(io.IoU.min() > hidden.IoU.max()),
                      f"{net}: input/output IoU {io.IoU.round(2).tolist()} > hidden max {hidden.IoU.max():.2f}"))
    return lines


def _sharing_falls(tables, cfg):
    sizes = list(cfg["size_study"])
    if len(sizes) < 2:
        return []
    s = tables["sharing"]
    by = (100 * s[s.network.isin(sizes)].groupby("network")["shared + in ×"].mean()).reindex(sizes)
    return [(bool(by.iloc[-1] < by.iloc[0]), "% of + weights shared with ×: "
             + " -> ".join(f"{n} {v:.1f}%" for n, v in by.items()) + " (largest < smallest)")]


def _sweep(tables, cfg):
    sweep = tables["sweep"]
    if not len(sweep):
        return []
    spec = sweep.groupby("alpha")[["+ mask on +", "+ mask on ×", "× mask on ×", "× mask on +"]].mean()
    full = _mean_acc(tables)
    f = {op: full[cfg["sweep_network"], "full", op] for op in ("+", "×")}
    return [(bool((spec["+ mask on ×"] <= 0.1).all() and (spec["× mask on +"] <= 0.1).all()),
             "each mask on the other operation: " + "; ".join(
                 f"α={a:g}: +→× {r['+ mask on ×']:.3f}, ×→+ {r['× mask on +']:.3f}" for a, r in spec.iterrows())
             + " (<= 0.1)"),
            (bool((spec["+ mask on +"] >= 0.5 * f["+"]).all() and (spec["× mask on ×"] >= 0.5 * f["×"]).all()),
             "each mask on its own operation: " + "; ".join(
                 f"α={a:g}: +→+ {r['+ mask on +']:.3f}, ×→× {r['× mask on ×']:.3f}" for a, r in spec.iterrows())
             + f" (>= half the full net's + {f['+']:.3f}, × {f['×']:.3f})")]


def _inverted_keeps_other(tables, cfg, subtasks, variants=("",)):
    acc, lines = _mean_acc(tables), []
    for net in _main_nets(cfg):
        for me, other in (subtasks, subtasks[::-1]):
            for suffix in variants:
                kept, full = acc[net, f"¬{me}{suffix}", other], acc[net, "full", other]
                lines.append((_testable(full, kept > 0.5 * full),
                              f"{net}: ¬{me}{suffix} on {other} {kept:.3f} (> half the full net's {full:.3f}), "
                              f"on {me} {acc[net, f'¬{me}{suffix}', me]:.3f}"))
    return lines


def _low_overlap(tables, cfg):
    lines = []
    for net in _main_nets(cfg):
        _, hidden = _hidden(tables, net)
        lines.append((bool((hidden.IoU <= 0.3).all()), f"{net}: hidden IoU of the pair masks "
                      f"{hidden.IoU.round(2).tolist()} (<= 0.3), IoMin {hidden.IoMin.round(2).tolist()}"))
    return lines


def _class_specific(tables, cfg):
    worst = tables["worst"].groupby("class", sort=False)[["own drop %", "worst other / own %"]].mean()
    return [(bool((worst["own drop %"] >= 20).all()), "own-class relative drop per class: "
             + ", ".join(f"{c} {v:.0f}%" for c, v in worst["own drop %"].items()) + " (>= 20% for every class)"),
            (bool((worst["worst other / own %"] <= 10).all()), "worst other-class drop as % of the own drop: "
             + ", ".join(f"{c} {v:.0f}%" for c, v in worst["worst other / own %"].items()) + " (<= 10%)")]


def _split_masks(tables, cfg):
    """Full-problem mask keeps the iid accuracy; each split's own mask falls towards the from-scratch level."""
    acc = tables["accuracy"].groupby(["variant", "test"]).accuracy.mean()
    full, kept = acc["full", "simple"], acc["mask simple", "simple"]
    lines = [(_testable(full, kept >= 0.9 * full), f"full-problem mask on the iid test {kept:.3f} "
              f"(>= 0.9 x the unmasked net's {full:.3f})")]
    for split in scan.SPLITS[1:]:
        name = scan.LABELS[split]
        whole, own, scratch, unmasked = (acc["mask simple", split], acc[f"mask {split}", split], acc["scratch", split],
                                         acc["full", split])
        gap = whole - scratch
        holds = None if unmasked < 0.5 or gap < 0.1 else bool(own <= scratch + 0.5 * gap)
        why = "" if holds is not None else (" [untestable: the unmasked net solves < 50%]" if unmasked < 0.5 else
                                            " [untestable: from scratch is within 0.1 of the full-problem mask]")
        lines.append((holds, f"{name} test: own mask {own:.3f}, full-problem mask {whole:.3f}, from scratch "
                      f"{scratch:.3f} (own mask closer to from-scratch than to the full-problem mask){why}"))
    return lines


def _jump_token(tables, cfg):
    r = tables["removed"]
    per = r[r["mask"] == "addprim_jump"].groupby("token")["removed %"].mean().sort_values(ascending=False)
    holds = None if per.iloc[0] <= 0 else bool(per.index[0] == "I_JUMP")
    return [(holds, "add-jump mask, % of output weights removed per token: "
             + ", ".join(f"{t} {v:.1f}%" for t, v in per.items()) + " (I_JUMP largest)"
             + (" [untestable: the mask removes no output weight]" if holds is None else ""))]


def _scan_claims(model: str) -> list[Claim]:
    return [Claim(f"scan-split-masks-{model}", label("scan", model),
                  f"SCAN {model}: the full-problem mask keeps the iid accuracy; a split's own mask drops that "
                  "split's test accuracy to about the level of a network trained from scratch on the split.",
                  "SCAN section, Fig. 4a", _split_masks),
            Claim(f"scan-jump-token-{model}", label("scan", model),
                  f"SCAN {model}: the add-jump mask removes most output weights from the JUMP token.",
                  "SCAN section, Fig. 4b", _jump_token)]


ADD, PAIRS = ("+", "×"), ("pair 1", "pair 2")
CLAIMS = [
    Claim("specialise", "addmul", "The + mask solves addition and fails multiplication; the × mask the reverse.",
          "§3.1, Table 1 (FNN and LSTM)", lambda t, c: _specialised(t, c, ADD)),
    Claim("partial-overlap", "addmul", "The + and × masks share weights substantially but partially in the hidden "
          "layers, and strongly in the input/output layers.", "§3.1, Fig. 2 (per-layer IoU / IoMin)",
          _partial_overlap),
    Claim("inverted-addmul", "addmul", "At the paper's width, the inverted + mask still multiplies and the inverted × "
          "mask still adds (at small widths both break, the paper's §3.1).", "§3.1, Table 1 (¬+, ¬× columns)",
          lambda t, c: _inverted_keeps_other(t, c, ADD)),
    Claim("sharing-vs-size", "addmul", "The share of weights the two operations have in common falls as the "
          "network grows.", "§3.1, Fig. 3 (% shared vs size)", _sharing_falls),
    Claim("alpha-sweep", "addmul", "Specialisation does not depend on the regulariser strength α.",
          "Appendix, accuracy vs α", _sweep),
    Claim("pairs-separate", "double_addition", "Each pair's mask solves its own pair and fails the other.",
          "§3.2, Table 2", lambda t, c: _specialised(t, c, PAIRS)),
    Claim("inverted-pairs", "double_addition", "Removing one pair's weights (¬pair i) leaves the other pair working "
          "for most inputs: the two identical additions are not computed by shared weights.", "§3.2, Table 2",
          lambda t, c: _inverted_keeps_other(t, c, PAIRS, ("", " (I/O kept)"))),
    Claim("class-specific", "cifar10", "Removing the weights a class needs alone causes a large accuracy drop on that "
          "class and small drops on the others: classification relies on class-specific weights.",
          "§3.4, Fig. 5 (relative drop; worst other class 0–10 %)", _class_specific),
    Claim("pairs-low-overlap", "double_addition", "The pair-1 and pair-2 masks overlap little in the hidden layers.",
          "§3.2, Fig. 4 (per-layer IoU)", _low_overlap),
    *_scan_claims("lstm"), *_scan_claims("transformer"),
]


def tally(lines: list[tuple[bool | None, str]]) -> str:
    """One word for a claim at one preset: reproduced / partly / not reproduced / untestable."""
    made = [h for h, _ in lines if h is not None]
    if not lines:
        return "not run"
    if not made:
        return f"untestable ({len(lines)} checks)"
    held = sum(made)
    word = "reproduced" if held == len(made) else "not reproduced" if held == 0 else "partly"
    untestable = len(lines) - len(made)
    return f"{word} ({held}/{len(made)} checks" + (f"; {untestable} untestable)" if untestable else ")")


def check(key: str, tables: dict, cfg: dict) -> list[tuple[bool, str]]:
    claim = next((c for c in CLAIMS if c.key == key), None)
    if claim is None:
        raise ValueError(f"unknown claim {key!r}; known: {[c.key for c in CLAIMS]}")
    tables = {k: v if isinstance(v, pd.DataFrame) else pd.DataFrame(v) for k, v in tables.items()}
    return claim.check(tables, cfg)


def print_check(key: str, tables: dict, cfg: dict) -> None:
    """Print the claim and one ``[holds]`` / ``[does not hold]`` line per inequality checked."""
    claim = next(c for c in CLAIMS if c.key == key)
    print(f"Paper ({claim.evidence}): {claim.claim}")
    lines = check(key, tables, cfg)
    for holds, detail in lines:
        word = ("untestable" if "untestable" in detail else "untestable: the unmasked network solves < 50%") \
            if holds is None else \
            "holds" if holds else "does not hold"
        print(f"  [{word}] {detail}")
    if not lines:
        print("  (not run at this preset)")
