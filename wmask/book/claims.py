"""The paper's claims as explicit inequalities on our numbers, shared by the notebooks' verdict cells and the
reproduction report. Each check (:mod:`wmask.book.checks`) reads the tidy tables of an experiment (``<experiment>.tables(runs)`` as DataFrames)
and returns lines ``(holds, detail)``. ``holds`` is ``None`` (**untestable**) when the check cannot be made, and the
detail then ends with ``[untestable: reason]``: a base network below its target, a mask that had not converged
(:mod:`wmask.evidence`), or numbers that cannot show the effect. Nothing here trains anything.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import pandas as pd

from .checks import (aligned, beats_shuffles, class_specific, easy_mask_loses_hard, gate,  # noqa: F401
                     inverted_keeps_other, jump_token, low_overlap, ncut_below, no_reuse, partial_overlap,
                     sharing_falls, specialised, split_masks, sweep)
from ..runner import experiment_of, label, model_of


@dataclass
class Claim:
    key: str
    experiment: str
    claim: str          # the paper's claim, in words
    evidence: str       # where the paper shows it
    check: Callable     # (tables, config) -> list[(holds, detail)]
    why: str = ""       # the check's thresholds, and why those


SPECIALISED_WHY = ("A mask keeps >= 0.8 x the full network's accuracy on its own subtask (it may lose a little; a "
                   "mask that lost most would show nothing) and <= 0.1 on the other: 10 x the 1 % of a guessed "
                   "two-digit answer, far below any working network.")
INVERTED_WHY = ("The inverted mask keeps > half the full network's accuracy on the other subtask ('for most "
                "inputs'; chance is 1 %).")


def _scan_claims(model: str) -> list[Claim]:
    return [Claim(f"scan-split-masks-{model}", label("scan", model),
                  f"SCAN {model}: the full-problem mask keeps the iid accuracy; a split's own mask drops that "
                  "split's test accuracy to about the level of a network trained from scratch on the split.",
                  "SCAN section, Fig. 4a", split_masks,
                  why="The full-problem mask keeps >= 0.9 x the unmasked net's iid accuracy; a split's own mask is "
                      "closer to the from-scratch accuracy than to the full-problem mask's (own <= scratch + half the "
                      "gap). Untestable when from scratch is within 0.1 of the full-problem mask (no gap to fall)."),
            Claim(f"scan-jump-token-{model}", label("scan", model),
                  f"SCAN {model}: the add-jump mask removes most output weights from the JUMP token.",
                  "SCAN section, Fig. 4b", jump_token,
                  why="I_JUMP is the output token with the largest % of its output weights removed by the add-jump "
                      "mask (the paper's Fig. 4b shows it far ahead of every other token).")]


ADD, PAIRS = ("+", "×"), ("pair 1", "pair 2")
CLAIMS = [
    Claim("specialise", "addmul", "The + mask solves addition and fails multiplication; the × mask the reverse.",
          "§3.1, Table 1 (FNN and LSTM)", lambda t, c: specialised(t, c, ADD),
          why=SPECIALISED_WHY),
    Claim("partial-overlap", "addmul", "The + and × masks share weights substantially but partially in the hidden "
          "layers, and strongly in the input/output layers.", "§3.1, Fig. 2 (per-layer IoU / IoMin)",
          partial_overlap,
          why="Hidden IoU in [0.2, 0.9]: 'substantial but partial' (neither near-disjoint nor near-identical); "
              "IoMin >= 0.5: the smaller mask lies mostly inside the larger (the paper's Fig. 2); input/output IoU above "
              "every hidden layer's: 'strongly in the input/output layers'."),
    Claim("inverted-addmul", "addmul", "At the paper's width, the inverted + mask still multiplies and the inverted × "
          "mask still adds (at small widths both break, the paper's §3.1).", "§3.1, Table 1 (¬+, ¬× columns)",
          lambda t, c: inverted_keeps_other(t, c, ADD),
          why=INVERTED_WHY + " The paper and the authors' code at reduced scale: at small widths both operations break, "
              "so a 400-wide net failing this is expected (a scale effect)."),
    Claim("sharing-vs-size", "addmul", "The share of weights the two operations have in common falls as the "
          "network grows.", "§3.1, Fig. 3 (% shared vs size)", sharing_falls,
          why="The largest network of the size study shares a smaller % of its + weights with × than the smallest: "
              "the direction of the paper's Fig. 3, with no threshold on the size of the fall."),
    Claim("alpha-sweep", "addmul", "Specialisation does not depend on the regulariser strength α.",
          "Appendix, accuracy vs α", sweep,
          why="At every α of the sweep: each mask on the other operation <= 0.1 (as for the specialisation check) "
              "and on its own >= half the full net's (a strong α may cost accuracy; the claim is about specialisation)."),
    Claim("pairs-separate", "double_addition", "Each pair's mask solves its own pair and fails the other.",
          "§3.2, Table 2", lambda t, c: specialised(t, c, PAIRS),
          why=SPECIALISED_WHY),
    Claim("inverted-pairs", "double_addition", "Removing one pair's weights (¬pair i) leaves the other pair working "
          "for most inputs: the two identical additions are not computed by shared weights.", "§3.2, Table 2",
          lambda t, c: inverted_keeps_other(t, c, PAIRS, ("", " (I/O kept)")),
          why=INVERTED_WHY),
    Claim("class-specific", "cifar10", "Removing the weights a class needs alone causes a large accuracy drop on that "
          "class and small drops on the others: classification relies on class-specific weights.",
          "§3.4, Fig. 5 (relative drop; worst other class 0–10 %)", class_specific,
          why="Own-class relative drop >= 20 % for every class ('large'), and the worst other class's drop <= 10 % "
              "of it: the y range of the paper's Fig. 5."),
    Claim("pairs-low-overlap", "double_addition", "The pair-1 and pair-2 masks overlap little in the hidden layers.",
          "§3.2, Fig. 4 (per-layer IoU)", low_overlap,
          why="Hidden-layer IoU <= 0.3 in every hidden layer: 'low'. Input/output IoU is 0 by construction (each "
              "pair has its own inputs and outputs) and is not checked."),
    *_scan_claims("lstm"), *_scan_claims("transformer"),
    Claim("permuted-no-reuse", "permuted_mnist", "Tasks learned one after another (permuted MNIST) reuse few of "
          "the earlier tasks' weights beyond the first layer, although relearning only the first layer would "
          "suffice.", "the paper's permuted-MNIST experiment (reuse per layer and task)", no_reuse,
          why="Mean over later tasks of the share of mask t's kept weights in layers 2+ that earlier masks use <= 0.5 "
              "per layer and variant ('little'); and relearning only the first layer on task 0's network reaches "
              ">= 0.95 x the jointly trained task's accuracy ('would suffice')."),
    Claim("math-easy-mask", "dm_math", "Mathematics dataset: a mask trained on a module's easy problems loses much "
          "of the network's accuracy on the hard ones, while a control mask trained on every difficulty keeps it: "
          "hard problems use weights the easy ones do not need.", "§2.7 Mathematics dataset ('similar results': "
          "task-specific weights solve different splits)", easy_mask_loses_hard,
          why="Per module, on the held-out hard test: the control mask keeps >= 0.8 x the network's accuracy "
              "('keeps'; as for the specialisation checks) and the easy mask <= 0.5 x ('much of' it lost); the easy "
              "mask keeps >= 0.8 x the network's easy accuracy, so its loss on hard is not a broken mask. The "
              "network must reach the preset's hard-accuracy target: there is no hard accuracy to lose otherwise."),
    Claim("filan-pruned-below-init", "clusterability", "Trained and pruned MLPs are more clusterable (lower n-cut) "
          "than randomly initialised ones.", "Filan et al., Clusterability, §4 (MNIST MLPs at K=12: pruned 8.9–9.0, random init 10.3)",
          lambda t, c: ncut_below(t, c, "pruned", "init"),
          why="Mean n-cut over seeds of the trained + pruned network below the untrained initialisation's, at each K "
              "(both networks' test accuracy gates: the trained one must reach the target)."),
    Claim("filan-dropout-lower", "clusterability", "Trained with dropout, pruned MLPs are more clusterable still.",
          "Filan et al., Clusterability, §4 (K=12: 8.35–8.36 vs 8.88–9.01)",
          lambda t, c: ncut_below(t, c, "pruned+dropout", "pruned"),
          why="Mean n-cut of the pruned dropout network below the pruned one's, at each K."),
    Claim("filan-beats-shuffles", "clusterability", "Trained and pruned MLPs are more clusterable than every "
          "network with the same weights shuffled within layers.", "Filan et al., Pruned NNs are Surprisingly "
          "Modular, Table 1; Clusterability, §4 (5/5 nets at K=12)", beats_shuffles,
          why="In every seed, the n-cut below all 'layer' shuffles (percentile 1/(n+1), the papers' 'significant'); "
              "the topology-keeping 'layer_nonzero' null is shown, not checked (the papers find it much harder to "
              "beat)."),
    Claim("alignment-planted", "clusterability", "(Our positive control, no paper claims it.) Masks of a planted "
          "two-module network lie within clusters, and the two masks in different clusters.",
          "this book's clusterability chapter", lambda t, c: aligned(t, c, "planted"),
          why="Within-cluster fraction of each mask's kept weights above random masks of the same size per layer "
              "(mean + 2 sd), and the total-variation distance of the two masks' cluster shares above that of "
              "random pairs (mean + 2 sd)."),
    Claim("alignment-arithmetic", "clusterability", "(Our question, no paper claims it.) Do the functional masks "
          "of the arithmetic networks (+ and ×; pair 1 and pair 2) line up with the weight graph's clusters?",
          "this book's clusterability chapter", lambda t, c: aligned(t, c, "arithmetic"),
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


def claim_of(key: str) -> Claim:
    """The claim named ``key``; an unknown key is a one-line error listing the known ones."""
    claim = next((c for c in CLAIMS if c.key == key), None)
    if claim is None:
        raise ValueError(f"unknown claim {key!r}; known: {[c.key for c in CLAIMS]}")
    return claim


def check(key: str, tables: dict, cfg: dict) -> list[tuple[bool, str]]:
    claim = claim_of(key)
    tables = {k: v if isinstance(v, (pd.DataFrame, str)) else pd.DataFrame(v) for k, v in tables.items()}
    return claim.check(tables, cfg)


BORROWED = " (from scratch: our networks; the authors' code trains none)"


def authors_check(key: str, found: dict, ours: dict | None = None) -> list[tuple[bool | None, str]]:
    """The checks of claim ``key`` on the authors' code's numbers (:func:`wmask.book.authors.load_authors`), against the
    targets our preset sets for the same networks (the cpu preset's, else the paper's): "the authors' code at this
    configuration". Their runs log no mask curves we read back, so only the targets gate them. With ``ours`` (our
    tables at the same settings), a SCAN check borrows our from-scratch networks, which their code does not train;
    each line borrowing them says so."""
    from . import authors as reference
    claim = claim_of(key)
    exp = experiment_of(claim.experiment)
    model = exp.model_or_default(model_of(claim.experiment))
    cfg = exp.config("cpu" if "cpu" in exp.preset_names(model) else "paper", 0, model)
    if hasattr(cfg, "networks"):
        target = {n: dict(c.target) for n, c in cfg.networks.items()}
        nets = sorted(set(found["accuracy"]["network"]))
    else:
        target, nets = {model: {"iid": cfg.target}}, []
    tables, borrowed = reference.with_our_scratch(reference.authors_tables(found, target), ours or {})
    lines = check(key, tables, {"networks": {n: {} for n in nets}, "size_study": [], "sweep_network": None})

    def mark(d):      # before the "[untestable: ...]" tail, which tally reads
        head, sep, tail = d.partition(" [untestable: ")
        return head + BORROWED + sep + tail
    return [(h, mark(d) if borrowed and "from scratch" in d else d) for h, d in lines]


def what_we_see(key: str, tables: dict, cfg: dict, preset: str) -> str:
    """The chapter's "what we see" sentence for claim ``key`` (Markdown, numbers in it): our verdict with every
    number checked, then, at ``cpu``, the verdict of the authors' code at the same settings where it was run."""
    lines = check(key, tables, cfg)
    if not lines:
        return f"Not run at preset {preset}."
    numbers = "; ".join(d.split(" [untestable: ")[0] for _, d in lines)
    out = f"at preset {preset}, **{tally(lines)}**; the numbers checked: {numbers}."
    claim = claim_of(key)
    if preset == "cpu":
        from . import authors as reference
        found, folder = reference.find_authors(claim.experiment)
        theirs = authors_check(key, found, tables if folder == "cpu" else None) if found is not None else []
        if theirs:
            at = ("this network at a fixed budget" if folder == "cpu" else "a former cpu preset's settings")
            seeds = len(set((found["accuracy"] if found.get("accuracy") is not None else found["base"])["seed"]))
            borrowed = " with our from-scratch networks" if any(BORROWED in d for _, d in theirs) else ""
            out += (f" The authors' code at {at} ({seeds} seed{'s' * (seeds != 1)}, "
                    f"{reference.settings_text(reference.authors_settings(found))}){borrowed}: **{tally(theirs)}** "
                    f"(on its numbers alone: {reference.NO_CURVES}, so whether its masks settled is not known).")
    return out


def print_check(key: str, tables: dict, cfg: dict) -> None:
    """Print the claim and one ``[holds]`` / ``[does not hold]`` line per inequality checked."""
    claim = claim_of(key)
    print(f"Paper ({claim.evidence}): {claim.claim}")
    if claim.why:
        print(f"  checked as: {claim.why}")
    lines = check(key, tables, cfg)
    for holds, detail in lines:
        print(f"  [{'untestable' if holds is None else 'holds' if holds else 'does not hold'}] {detail}")
    if not lines:
        print("  (not run at this preset)")
