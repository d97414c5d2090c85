"""Turn what ``extract.py`` read from one authors' run into our tidy tables (our column and mask names), so that
``wmask.book.authors`` can join them with ours. Standard library only."""
from __future__ import annotations

import csv
import os
from pathlib import Path

from experiments import RunError, UserError, flag


def _last(scalars: dict, tag: str, at: int | None = None):
    ev = scalars.get(tag)
    if not ev:
        raise RunError(f"tag {tag!r} not in the event file")
    if at is not None:
        ev = [e for e in ev if e[0] == at]
        if not ev:
            raise RunError(f"tag {tag!r} has no value at step {at}")
    return ev[-1]


def their_layer_name(name: str) -> str:
    """Their FeedforwardModel's ``layers_<j>_weight`` -> our nn.Sequential name ``<2j>.weight``."""
    parts = name.split("_")
    if parts[0] == "layers" and parts[1].isdecimal() and parts[2:] == ["weight"]:
        return f"{2 * int(parts[1])}.weight"
    return name


def convert(experiment: str, seed: int, flags: list[str], data: dict, network: str) -> dict:
    sc = data["scalars"]
    base_step = int(flag(flags, "-stop_after"))
    rows, sources = [], []

    def add(mask, on, tag, at=None):
        step, value = _last(sc, tag, at)
        rows.append({"seed": seed, "network": network, "mask": mask, "evaluated on": on, "accuracy": value})
        sources.append({"mask": mask, "evaluated on": on, "tag": tag, "step": step})

    if experiment == "addmul":
        ops = {"+": "add", "×": "mul"}
        stage_names = {"control": "verify", "+": "add", "×": "mul"}
        for on, t in ops.items():
            add("full", on, f"validation/{t}/accuracy", at=base_step)
        for mask, st in stage_names.items():
            for on, t in ops.items():      # the last periodic validation of the stage (deterministic mask)
                add(mask, on, f"analyzer/{st}/validation/{t}/accuracy")
        for mask, st in stage_names.items():
            for on, t in ops.items():      # inverted mask, after the stage
                add(f"¬{mask}", on, f"inverse_mask_test/{st}/{t}/accuracy")
        stage_label = {0: "control", 1: "+", 2: "×"}
        pair = (1, 2)
    elif experiment == "double_addition":
        pairs = {"pair 1": 0, "pair 2": 1}
        stage_label = {0: "control", 1: "pair 1", 2: "pair 2"}
        for on, t in pairs.items():
            add("full", on, f"validation/iid/accuracy/tuple/{t}", at=base_step)
        for s, mask in stage_label.items():
            for on, t in pairs.items():    # at the end of the stage, both pairs evaluated
                add(mask, on, f"final_accuracy/{s}/iid/accuracy/tuple/{t}")
        for s, mask in stage_label.items():
            for on, t in pairs.items():
                add(f"¬{mask}", on, f"inverse_mask_test/split_{s}/iid/accuracy/tuple/{t}")
        pair = (1, 2)
    elif experiment == "scan":
        return convert_scan(seed, flags, data, network)
    elif experiment == "cifar10":
        return convert_cifar10(seed, flags, data)
    else:
        raise UserError(f"no converter for {experiment}")

    # per-tensor IoU / IoMin of the two subtask masks (stages 1 and 2), kept counts of every stage
    layers = []
    key = f"{pair[0]},{pair[1]}"
    tot = {"and": 0, "or": 0, "size": 0, "kept": {str(s): 0 for s in stage_label}}
    for name, m in sorted(data["masks"].items(), key=lambda kv: their_layer_name(kv[0])):
        inter, union = m["and"][key], m["or"][key]
        n_min = min(m["kept"][str(pair[0])], m["kept"][str(pair[1])])
        row = {"seed": seed, "network": network, "IoMin": inter / n_min if n_min else float("nan"),
               "IoU": inter / union if union else float("nan")}
        row.update({f"kept {stage_label[s]}": m["kept"][str(s)] for s in stage_label})
        row.update({"layer": their_layer_name(name), "size": m["size"]})
        layers.append(row)
        tot["and"] += inter
        tot["or"] += union
        tot["size"] += m["size"]
        for s in stage_label:
            tot["kept"][str(s)] += m["kept"][str(s)]
    n_min = min(tot["kept"][str(pair[0])], tot["kept"][str(pair[1])])
    total = {"seed": seed, "network": network, "IoMin": tot["and"] / n_min if n_min else float("nan"),
             "IoU": tot["and"] / tot["or"] if tot["or"] else float("nan")}
    total.update({f"kept {stage_label[s]}": tot["kept"][str(s)] for s in stage_label})
    total.update({"layer": "total", "size": tot["size"]})
    layers.append(total)

    sharing = []
    if experiment == "addmul":
        k1, k2 = tot["kept"]["1"], tot["kept"]["2"]
        sharing.append({"seed": seed, "network": network, "clip_mode": "all", "weights": tot["size"],
                        "shared + in ×": tot["and"] / k1 if k1 else float("nan"),
                        "shared × in +": tot["and"] / k2 if k2 else float("nan"),
                        "IoU": total["IoU"], "IoMin": total["IoMin"]})
    their_sharing = {k: v[-1][1] for k, v in sc.items() if k.startswith("mask_stat/all/")}
    return {"accuracy": rows, "sources": sources, "layers": layers, "sharing": sharing,
            "their_logged_mask_stat": their_sharing}


SCAN_TESTS = {"iid": "simple", "jump": "addprim_jump", "length": "length", "turn_left": "addprim_turn_left"}
SCAN_STAGES = ["simple", "jump", "length", "turn_left"]     # their mask stages 0..3


def convert_scan(seed: int, flags: list[str], data: dict, model: str) -> dict:
    """Their SCAN LSTM -> our results/scan/cpu tables: accuracy (seed, model, variant, test, accuracy) and removed
    (seed, model, mask, token, removed %: per output token, 100 |m_simple & ~m_split| / |m_simple| of that row)."""
    sc = data["scalars"]
    base_step = int(flag(flags, "-stop_after"))
    rows, sources = [], []

    def add(variant, test, tag, at=None):
        step, value = _last(sc, tag, at)
        rows.append({"seed": seed, "model": model, "variant": variant, "test": SCAN_TESTS[test], "accuracy": value})
        sources.append({"variant": variant, "test": SCAN_TESTS[test], "tag": tag, "step": step})

    for t in SCAN_TESTS:
        add("full", t, f"validation/{t}/accuracy/total", at=base_step)
    for st in SCAN_STAGES:        # at the end of each stage (analysis_results), deterministic mask, no dropout
        for t in SCAN_TESTS:
            add(f"mask {SCAN_TESTS.get(st, st)}", t, f"analysis_results/{st}/{t}/accuracy/total")
    removed = []
    out = [m for n, m in data["masks"].items() if n.startswith("decoder_output_projection_weight")]
    if out and data.get("vocab"):
        m = out[0]
        inv = {int(k): w for k, w in data["vocab"]["out"].items()}    # JSON keys are strings
        tokens = [inv.get(i, "<eos>" if i == len(inv) else f"#{i}") for i in range(len(m["rows_kept"]["0"]))]
        for s, rem in sorted(m["rows_removed_vs_0"].items()):
            name = SCAN_TESTS.get(SCAN_STAGES[int(s)], SCAN_STAGES[int(s)])
            for tok, r, k in zip(tokens, rem, m["rows_kept"]["0"]):
                removed.append({"seed": seed, "model": model, "mask": name, "token": tok,
                                "removed %": 100.0 * r / k if k else float("nan")})
    kept = [{"seed": seed, "model": model, "tensor": n, "size": m["size"],
             **{f"kept mask {SCAN_TESTS.get(SCAN_STAGES[int(s)], SCAN_STAGES[int(s)])}": k
                for s, k in sorted(m["kept"].items())}}
            for n, m in sorted(data["masks"].items())]
    return {"accuracy": rows, "sources": sources, "layers": kept, "sharing": [], "removed": removed,
            "their_logged_mask_stat": {k: v[-1][1] for k, v in sc.items() if k.startswith("mask_stat/all/")}}


def convert_cifar10(seed: int, flags: list[str], data: dict) -> dict:
    """Their CIFAR-10 class removal -> our results/cifar10/cpu tables: ``base`` (the base network's validation
    accuracy at its last step; ``wmask.book.authors.authors_tables`` holds it to our preset's target), ``drops`` (seed,
    removed, evaluated, relative drop %) and ``worst`` (seed, class, own drop %, worst other / own %), from their
    exported confusion matrices (the drops are computed by extract.py with our metrics); ``layers``: kept weights
    per tensor and stage."""
    sc, conf = data["scalars"], data.get("confusion")
    if not conf:
        raise RunError("no exported class_removal confusion matrices (export/class_removal/) in the run")
    if "load_validation/iid/accuracy" in sc:     # run in two phases: the mask phase validates the loaded network
        tag, at = "load_validation/iid/accuracy", None
    else:
        tag, at = "validation/iid/accuracy", int(flag(flags, "-stop_after"))
    step, acc = _last(sc, tag, at)
    base = [{"seed": seed, "subtask": "all classes", "accuracy": acc}]
    sources = [{"table": "base", "tag": tag, "step": step},
               {"table": "drops, worst", "file": "export/class_removal/confusion_{reference,difference/<class>}.pth"}]
    names, drops, worst = conf["classes"], conf["relative_drop"], conf["worst_other_ratio"]
    drop_rows = [{"seed": seed, "removed": names[c], "evaluated": names[j], "relative drop %": v}
                 for c, row in enumerate(drops) for j, v in enumerate(row)]
    worst_rows = [{"seed": seed, "class": names[c], "own drop %": drops[c][c], "worst other / own %": worst[c]}
                  for c in range(len(names))]
    stage_label = ["control"] + [f"without {n}" for n in names]
    kept = [{"seed": seed, "tensor": n, "size": m["size"],
             **{f"kept {stage_label[int(s)]}": k for s, k in sorted(m["kept"].items(), key=lambda kv: int(kv[0]))}}
            for n, m in sorted(data["masks"].items())]
    return {"accuracy": [], "sources": sources, "layers": kept, "sharing": [],
            "tables": {"base": base, "drops": drop_rows, "worst": worst_rows},
            "their_logged_mask_stat": {k: v[-1][1] for k, v in sc.items() if k.startswith("mask_stat/all/")}}


TABLE_COLS = {"base": ["seed", "subtask", "accuracy"],
              "drops": ["seed", "removed", "evaluated", "relative drop %"],
              "worst": ["seed", "class", "own drop %", "worst other / own %"]}
ACC_COLS = ["seed", "network", "mask", "evaluated on", "accuracy"]
SCAN_ACC_COLS = ["seed", "model", "variant", "test", "accuracy"]
REMOVED_COLS = ["seed", "model", "mask", "token", "removed %"]
SHARING_COLS = ["seed", "network", "clip_mode", "weights", "shared + in ×", "shared × in +", "IoU", "IoMin"]


def write_csv(path: Path, rows: list[dict], cols: list[str] | None = None):
    if not rows:
        return
    cols = cols or sorted(rows[0].keys())
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        for r in rows:
            w.writerow(r)
    os.replace(tmp, path)
