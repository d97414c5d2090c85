"""The claims, as data: each one's sentence, where the paper shows it, its check (:mod:`wmask.book.checks`) and
the check's thresholds, printed from the same values the check uses. A check reads the tidy tables of an experiment
(``<experiment>.tables(runs)`` as DataFrames) and returns :class:`~wmask.book.verdict.Line` s; a claim's word is
their :func:`~wmask.book.verdict.tally`. The paper's claims, Filan et al.'s, and our own questions (the planted
control, your own model, masks against clusters) share the registry, so the reproduction report lists them all.
Nothing here trains anything.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import pandas as pd

from . import checks
from .verdict import UNTESTABLE, Line, Verdict, tally  # noqa: F401  (re-exported: claims.tally, claims.Line)
from ..experiments.runner import experiment_of, label, model_of


@dataclass(frozen=True)
class Claim:
    key: str
    experiment: str     # the results label it is checked on (addmul, scan-transformer, ...)
    claim: str          # the claim, in words
    evidence: str       # where the paper shows it
    check: Callable     # (tables, config, **thresholds) -> list[Line]
    thresholds: dict = field(default_factory=dict)
    why: str = ""       # the check in words, with {threshold} fields filled from ``thresholds``
    family: str = "paper"   # paper | filan | ours

    def lines(self, tables: dict, cfg: dict) -> list[Line]:
        """The check's lines on ``tables`` (DataFrames or rows) of a run made with ``cfg``."""
        tables = {k: v if isinstance(v, (pd.DataFrame, str)) else pd.DataFrame(v) for k, v in tables.items()}
        return self.check(tables, cfg, **self.thresholds)

    @property
    def how(self) -> str:
        """How it is checked, with this claim's thresholds."""
        return self.why.format(**{k: v for k, v in self.thresholds.items() if not isinstance(v, tuple)},
                               **{f"{k}_{i}": x for k, v in self.thresholds.items() if isinstance(v, tuple)
                                  for i, x in enumerate(v)})


SPECIALISED = {"keep": 0.8, "other_at_most": 0.1}
SPECIALISED_WHY = ("A mask keeps >= {keep} x the full network's accuracy on its own subtask (it may lose a little; "
                   "a mask that lost most would show nothing) and <= {other_at_most} on the other: far above the 1 % "
                   "of a guessed two-digit answer, far below any working network.")
INVERTED_WHY = ("The inverted mask keeps > {share} x the full network's accuracy on the other subtask ('for most "
                "inputs'; chance is 1 %).")


def _scan_claims(model: str) -> list[Claim]:
    return [Claim(f"scan-split-masks-{model}", label("scan", model),
                  f"SCAN {model}: the full-problem mask keeps the iid accuracy; a split's own mask drops that "
                  "split's test accuracy to about the level of a network trained from scratch on the split.",
                  "the paper's SCAN experiment, Fig. 4a", checks.split_masks,
                  {"keep": 0.9, "closer": 0.5, "min_gap": 0.1},
                  why="The full-problem mask keeps >= {keep} x the unmasked net's iid accuracy; a split's own mask is "
                      "closer to the from-scratch accuracy than to the full-problem mask's (own <= scratch + {closer} "
                      "x the gap). Untestable when from scratch is within {min_gap} of the full-problem mask (no gap "
                      "to fall)."),
            Claim(f"scan-jump-token-{model}", label("scan", model),
                  f"SCAN {model}: the add-jump mask removes most output weights from the JUMP token.",
                  "the paper's SCAN experiment, Fig. 4b", checks.jump_token,
                  why="I_JUMP is the output token with the largest % of its output weights removed by the add-jump "
                      "mask (the paper's Fig. 4b shows it far ahead of every other token).")]


ADD, PAIRS = ("+", "×"), ("pair 1", "pair 2")
CLAIMS = [
    Claim("specialise", "addmul", "The + mask solves addition and fails multiplication; the × mask the reverse.",
          "§3.1, Table 1 (FNN and LSTM)", checks.specialised, {"subtasks": ADD, **SPECIALISED}, SPECIALISED_WHY),
    Claim("partial-overlap", "addmul", "The + and × masks share weights substantially but partially in the hidden "
          "layers, and strongly in the input/output layers.", "§3.1, Fig. 2 (per-layer IoU / IoMin)",
          checks.partial_overlap, {"iou": (0.2, 0.9), "iomin": 0.5},
          why="Hidden IoU in [{iou_0}, {iou_1}]: 'substantial but partial' (neither near-disjoint nor near-identical); "
              "IoMin >= {iomin}: the smaller mask lies mostly inside the larger (the paper's Fig. 2); input/output IoU "
              "above every hidden layer's: 'strongly in the input/output layers'."),
    Claim("inverted-addmul", "addmul", "At the paper's width, the inverted + mask still multiplies and the inverted × "
          "mask still adds (at small widths both break, the paper's §3.1).", "§3.1, Table 1 (¬+, ¬× columns)",
          checks.inverted_keeps_other, {"subtasks": ADD, "share": 0.5},
          why=INVERTED_WHY + " The paper and the authors' code at reduced scale: at small widths both operations "
              "break, so a 400-wide net failing this is expected (a scale effect)."),
    Claim("sharing-vs-size", "addmul", "The share of weights the two operations have in common falls as the "
          "network grows.", "§3.1, Fig. 3 (% shared vs size)", checks.sharing_falls,
          why="The largest network of the size study shares a smaller % of its + weights with × than the smallest: "
              "the direction of the paper's Fig. 3, with no threshold on the size of the fall."),
    Claim("alpha-sweep", "addmul", "Specialisation does not depend on the regulariser strength α.",
          "Appendix, accuracy vs α", checks.sweep, {"other_at_most": 0.1, "own_share": 0.5},
          why="At every α of the sweep: each mask on the other operation <= {other_at_most} (as for the "
              "specialisation check) and on its own >= {own_share} x the full net's (a strong α may cost accuracy; "
              "the claim is about specialisation)."),
    Claim("pairs-separate", "double_addition", "Each pair's mask solves its own pair and fails the other.",
          "§3.2, Table 2", checks.specialised, {"subtasks": PAIRS, **SPECIALISED}, SPECIALISED_WHY),
    Claim("inverted-pairs", "double_addition", "Removing one pair's weights (¬pair i) leaves the other pair working "
          "for most inputs: the two identical additions are not computed by shared weights.", "§3.2, Table 2",
          checks.inverted_keeps_other, {"subtasks": PAIRS, "share": 0.5, "variants": ("", " (I/O kept)")},
          INVERTED_WHY),
    Claim("class-specific", "cifar10", "Removing the weights a class needs alone causes a large accuracy drop on that "
          "class and small drops on the others: classification relies on class-specific weights.",
          "§3.4, Fig. 5 (relative drop; worst other class 0–10 %)", checks.class_specific,
          {"own_drop": 20, "other_share": 10},
          why="Own-class relative drop >= {own_drop} % for every class ('large'), and the worst other class's drop "
              "<= {other_share} % of it: the y range of the paper's Fig. 5."),
    Claim("pairs-low-overlap", "double_addition", "The pair-1 and pair-2 masks overlap little in the hidden layers.",
          "§3.2, Fig. 4 (per-layer IoU)", checks.low_overlap, {"iou": 0.3},
          why="Hidden-layer IoU <= {iou} in every hidden layer: 'low'. Input/output IoU is 0 by construction (each "
              "pair has its own inputs and outputs) and is not checked."),
    *_scan_claims("lstm"), *_scan_claims("transformer"),
    Claim("permuted-no-reuse", "permuted_mnist", "Tasks learned one after another (permuted MNIST) reuse few of "
          "the earlier tasks' weights beyond the first layer, although relearning only the first layer would "
          "suffice.", "the paper's permuted-MNIST experiment (reuse per layer and task)", checks.no_reuse,
          {"share_at_most": 0.5, "relearn": 0.95},
          why="Mean over later tasks of the share of mask t's kept weights in layers 2+ that earlier masks use <= "
              "{share_at_most} per layer and variant ('little'); and relearning only the first layer on task 0's "
              "network reaches >= {relearn} x the jointly trained task's accuracy ('would suffice')."),
    Claim("math-easy-mask", "dm_math", "Mathematics dataset: a mask trained on a module's easy problems loses much "
          "of the network's accuracy on the hard ones, while a control mask trained on every difficulty keeps it: "
          "hard problems use weights the easy ones do not need.", "the paper's Mathematics-dataset experiment "
          "('similar results': task-specific weights solve different splits)", checks.easy_mask_loses_hard,
          {"keep": 0.8, "lose": 0.5},
          why="Per module, on the held-out hard test: the control mask keeps >= {keep} x the network's accuracy "
              "('keeps'; as for the specialisation checks) and the easy mask <= {lose} x ('much of' it lost); the "
              "easy mask keeps >= {keep} x the network's easy accuracy, so its loss on hard is not a broken mask. The "
              "network must reach the preset's hard-accuracy target: there is no hard accuracy to lose otherwise."),
    Claim("filan-pruned-below-init", "clusterability", "Trained and pruned MLPs are more clusterable (lower n-cut) "
          "than randomly initialised ones.", "Filan et al., Clusterability, §4 (MNIST MLPs at K=12: pruned 8.9–9.0, "
          "random init 10.3)", checks.ncut_below, {"low": "pruned", "high": "init"},
          why="Mean n-cut over seeds of the trained + pruned network below the untrained initialisation's, at each K "
              "(both networks' test accuracy gates: the trained one must reach the target).", family="filan"),
    Claim("filan-dropout-lower", "clusterability", "Trained with dropout, pruned MLPs are more clusterable still.",
          "Filan et al., Clusterability, §4 (K=12: 8.35–8.36 vs 8.88–9.01)", checks.ncut_below,
          {"low": "pruned+dropout", "high": "pruned"},
          why="Mean n-cut of the pruned dropout network below the pruned one's, at each K.", family="filan"),
    Claim("filan-beats-shuffles", "clusterability", "Trained and pruned MLPs are more clusterable than every "
          "network with the same weights shuffled within layers.", "Filan et al., Pruned NNs are Surprisingly "
          "Modular, Table 1; Clusterability, §4 (5/5 nets at K=12)", checks.beats_shuffles,
          why="In every seed, the n-cut below all 'layer' shuffles (percentile 1/(n+1), the papers' 'significant'); "
              "the topology-keeping 'layer_nonzero' null is shown, not checked (the papers find it much harder to "
              "beat).", family="filan"),
    Claim("alignment-planted", "clusterability", "(Our positive control, no paper claims it.) Masks of a planted "
          "two-module network lie within clusters, and the two masks in different clusters.",
          "this book's clusterability chapter", checks.aligned, {"which": "planted", "sds": 2},
          why="Within-cluster fraction of each mask's kept weights above random masks of the same size per layer "
              "(mean + {sds} sd), and the total-variation distance of the two masks' cluster shares above that of "
              "random pairs (mean + {sds} sd).", family="ours"),
    Claim("alignment-arithmetic", "clusterability", "(Our question, no paper claims it.) Do the functional masks "
          "of the arithmetic networks (+ and ×; pair 1 and pair 2) line up with the weight graph's clusters?",
          "this book's clusterability chapter", checks.aligned, {"which": "arithmetic", "sds": 2},
          why="As the planted control: within-cluster fraction and separation above random masks (mean + {sds} sd). "
              "'Does not hold' means the masks cut across the clusters like random masks of their size.",
          family="ours"),
    Claim("planted-blocks", "planted", "(Our positive control of the method.) On a network made of two planted "
          "sub-networks, each subtask's mask recovers its own block and the two masks share nothing.",
          "this book's planted chapter", checks.planted_blocks, {"own": 0.9, "cross": 0.1},
          why="In the hidden layers, each mask's IoU with its planted block >= {own} in every seed, and the two "
              "masks' IoU <= {cross}.", family="ours"),
    Claim("own-model-operations", "own_model", "(Our question, asked of a model the paper never used: a GPT-2 on + "
          "and − mod p.) Each operation has weights of its own: its mask keeps it and loses the other.",
          "this book's chapter Bring your own model", checks.own_operations,
          {"subtasks": ("+", "-"), "keep": 0.9, "lose": 0.5},
          why="Each operation's mask keeps its own operation at >= {keep} and the other below {lose}.",
          family="ours"),
]


def claim_of(key: str) -> Claim:
    """The claim named ``key``; an unknown key is a one-line error listing the known ones."""
    claim = next((c for c in CLAIMS if c.key == key), None)
    if claim is None:
        raise ValueError(f"unknown claim {key!r}; known: {[c.key for c in CLAIMS]}")
    return claim


def check(key: str, tables: dict, cfg: dict) -> list[Line]:
    """The lines of claim ``key`` on ``tables`` (DataFrames or rows) of a run made with ``cfg``."""
    return claim_of(key).lines(tables, cfg)


def verdict(key: str, tables: dict, cfg: dict) -> Verdict:
    """Claim ``key``'s :class:`~wmask.book.verdict.Verdict` on ``tables``."""
    return tally(check(key, tables, cfg))


BORROWED = " (from scratch: our networks; the authors' code trains none)"


def authors_check(key: str, found: dict, ours: dict | None = None) -> list[Line]:
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

    return [Line(ln.holds, ln.detail + BORROWED, ln.reason) if borrowed and "from scratch" in ln.detail else ln
            for ln in lines]


def what_we_see(key: str, tables: dict, cfg: dict, preset: str) -> str:
    """The chapter's "what we see" sentence for claim ``key`` (Markdown, numbers in it): our verdict with every
    number checked, then, at ``cpu``, the verdict of the authors' code at the same settings where it was run."""
    lines = check(key, tables, cfg)
    if not lines:
        return f"Not run at preset {preset}."
    numbers = "; ".join(ln.detail for ln in lines)
    out = f"at preset {preset}, **{tally(lines)}**; the numbers checked: {numbers}."
    claim = claim_of(key)
    if preset == "cpu":
        from . import authors as reference
        found, folder = reference.find_authors(claim.experiment)
        theirs = authors_check(key, found, tables if folder == "cpu" else None) if found is not None else []
        if theirs:
            at = ("this network at a fixed budget" if folder == "cpu" else "a former cpu preset's settings")
            seeds = len(set((found["accuracy"] if found.get("accuracy") is not None else found["base"])["seed"]))
            borrowed = " with our from-scratch networks" if any(BORROWED in ln.detail for ln in theirs) else ""
            out += (f" The authors' code at {at} ({seeds} seed{'s' * (seeds != 1)}, "
                    f"{reference.settings_text(reference.authors_settings(found))}){borrowed}: **{tally(theirs)}** "
                    f"(on its numbers alone: {reference.NO_CURVES}, so whether its masks settled is not known).")
    return out


def print_check(key: str, tables: dict, cfg: dict) -> None:
    """Print the claim and one ``[holds]`` / ``[does not hold]`` line per inequality checked."""
    claim = claim_of(key)
    print(f"Paper ({claim.evidence}): {claim.claim}")
    if claim.why:
        print(f"  checked as: {claim.how}")
    lines = check(key, tables, cfg)
    for ln in lines:
        print(f"  {ln}")
    if not lines:
        print("  (not run at this preset)")


def section(key: str, tables: dict, cfg: dict, preset: str, glue_as: str | None = None) -> None:
    """A chapter's claim in one call: print the claim, how it is checked and every line (:func:`print_check`), and
    glue the "what we see" sentence (:func:`what_we_see`) as ``glue_as`` (default ``see-<key>``) for the prose."""
    from IPython.display import Markdown
    from myst_nb import glue
    print_check(key, tables, cfg)
    glue(glue_as or f"see-{key}", Markdown(what_we_see(key, tables, cfg, preset)), display=False)


def verdicts_beside(experiment: str, tables: dict, cfg: dict, found: dict) -> str:
    """Whether the differences from the authors' code change a verdict: for every claim of ``experiment`` (a results
    label) that both codes' numbers can check, ours on ``tables`` and the authors' on ``found`` (their results at
    these settings, :func:`wmask.book.authors.find_authors`), then which differ (Markdown; "" when no claim is
    checked by both). A claim untestable on either side is not compared: its numbers cannot say."""
    parts, differ, open_ = [], [], []
    for claim in [c for c in CLAIMS if c.experiment == experiment]:
        ours, theirs = check(claim.key, tables, cfg), authors_check(claim.key, found, tables)
        if ours and theirs:
            a, b = tally(ours).word, tally(theirs).word
            parts.append(f"{claim.key}: ours **{a}**, the authors' code **{b}**")
            (open_ if UNTESTABLE in (a, b) else differ if a != b else []).append(claim.key)
    if not parts:
        return ""
    said = ("the verdicts of " + ", ".join(differ) + " differ, so the gaps matter there" if differ
            else "no verdict that both can give differs")
    return ("Do the gaps change a verdict? " + "; ".join(parts) + f". {said[0].upper()}{said[1:]}"
            + (f" ({', '.join(open_)}: untestable on one side, not compared)" if open_ else "") + ".")
