"""How many mask sets one forward/backward pass may hold, from a memory budget.

A pass over ``M`` sets with ``K`` samples each needs memory in proportion to ``M``, for two reasons: every mask
sample holds its own masked copy of the weights, its own weight gradient and the sampler's temporaries (``K x P``
masked weights a set: about 0.75 GiB a set on the paper's 2000x4 FNN, K = 4), and every sample runs its own part
of the batch through the model, whose activations autograd keeps for the backward (what dominates the sequence
models and the CNN: about 0.2 GiB a set for the SCAN LSTM and 0.4 GiB for its Transformer at B = 256).
:func:`sets_per_pass` counts both: the weights by formula, the activations by :func:`saved_bytes`, measured on
one set's forward before training starts. :func:`train_masks` runs a step's sets in passes of at most that many
sets, accumulating their gradients before the one update, so memory follows the budget instead of ``M``; the masks
do not depend on the passes.

The budget: ``WMASK_MASK_MEMORY`` (bytes, or with a suffix: ``512M``, ``4G``), else a quarter of the memory free
on the masks' device when training starts, and at most 256 MiB on a CPU: there a pass is memory-bound, so a bigger
one buys little (the 2000x4 FNN's ten sets in one 8.5 GiB pass ran 0.99x as fast as one set at a time; the SCAN
LSTM's 0.9x), while the small models whose passes do gain (fixed costs shared: the 400-400-200 FNN's ten sets in one
pass 1.4x) fit easily. The passes are chosen by memory only, never by timing, so a run's numbers do not depend on
how busy the machine was.
"""
from __future__ import annotations

import math
import os

import torch

from .utils import rng_state, set_rng_state

# bytes a mask sample costs per masked weight in one training pass: masked copy (4), weight gradient (4), the
# sampler's uniforms and comparisons and the gradient's temporaries (~8); measured on the 2000x4 FNN, K = 4
BYTES_PER_SAMPLED_WEIGHT = 16
# bytes a pass holds per byte autograd saves for its backward: the saved tensors plus the gradients of the same
# size the backward makes from them (peak growth / saved bytes was 1.3-1.8 on the SCAN LSTM, Transformer, the CIFAR
# CNN and the arithmetic LSTM, M = 1 and 4)
PASS_BYTES_PER_SAVED_BYTE = 2
_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def parse_bytes(text: str) -> int:
    """``"4G"`` -> 4 * 2**30; ``"512M"``, ``"1000000"``; anything else is a named error."""
    t = str(text).strip().upper().removesuffix("B").removesuffix("I")
    unit = t[-1:] if t[-1:] in _UNITS else ""
    try:
        value = float(t[:-1] if unit else t)
    except ValueError:
        raise ValueError(f"WMASK_MASK_MEMORY must be a size like '4G', '512M' or a number of bytes; got {text!r}") \
            from None
    if not value > 0:
        raise ValueError(f"WMASK_MASK_MEMORY must be > 0, got {text!r}")
    return int(value * _UNITS[unit])


def free_bytes(device: torch.device) -> int:
    """Memory free on ``device`` now: CUDA's free memory, or the system's available memory (Linux
    ``MemAvailable``; elsewhere the physical memory)."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


CPU_CAP = 2**28


def budget(device: torch.device) -> int:
    """The memory one pass may take: ``WMASK_MASK_MEMORY``, else a quarter of :func:`free_bytes` (at most
    :data:`CPU_CAP`, 256 MiB, on a CPU)."""
    env = os.environ.get("WMASK_MASK_MEMORY")
    if env:
        return parse_bytes(env)
    free = free_bytes(device) // 4
    return free if device.type == "cuda" else min(free, CPU_CAP)


def saved_bytes(fn, exclude=()) -> int:
    """Bytes of the tensors autograd saves for the backward of ``fn()`` (each storage counted once), leaving out the
    storages of ``exclude`` (tensors that live anyway: parameters, mask logits, inputs): what a forward pass keeps
    in memory until its backward."""
    seen: dict[int, torch.UntypedStorage] = {}    # held until counted, so no address is freed and reused

    def pack(t):
        storage = t.untyped_storage()
        seen[storage.data_ptr()] = storage
        return t
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    live = {t.untyped_storage().data_ptr() for t in exclude}
    return sum(st.nbytes() for ptr, st in seen.items() if ptr not in live)


def sets_per_pass(masks, k: int, budget_bytes: int | None = None, saved_per_set: int = 0) -> int:
    """The most sets of ``masks`` (a :class:`wmask.MaskSet`) whose ``k`` samples fit ``budget_bytes`` in one pass
    (default :func:`budget`), at least 1 and at most all of them. A set costs its sampled weights
    (:data:`BYTES_PER_SAMPLED_WEIGHT` × ``k`` × masked weights) or, when more, ``saved_per_set`` (bytes one set's
    forward saves for the backward, :func:`saved_bytes`) × :data:`PASS_BYTES_PER_SAVED_BYTE`."""
    device = next(iter(masks.logits.values())).device
    weights = BYTES_PER_SAMPLED_WEIGHT * k * sum(t[0].numel() for t in masks.logits.values())
    per_set = max(weights, PASS_BYTES_PER_SAVED_BYTE * saved_per_set)
    room = budget(device) if budget_bytes is None else budget_bytes
    return max(1, min(masks.n_sets, room // max(per_set, 1)))


def measured_sets_per_pass(masks, one_set, k: int, live=(), budget_bytes: int | None = None) -> int:
    """:func:`sets_per_pass` with one set's activations measured: ``one_set()`` runs set 0's masked forward (no loss,
    no backward, no update) under ``masks.passes()``, and :func:`saved_bytes` counts what it keeps for the backward,
    leaving out the storages that live anyway (the masks' logits, the model's parameters, the weight sinks, and
    ``live``: the batch). Torch's random state and the mask sampler's generator are put back, so training draws
    exactly what it would draw without the probe."""
    exclude = [*masks.logits.values(), *masks.model.parameters(), *(masks.sinks or {}).values(), *live]
    rng, gen = rng_state(), masks.generator.get_state()
    try:
        masks.measuring = True
        with masks.passes():
            saved = saved_bytes(one_set, exclude=exclude)
    finally:
        masks.measuring = False
        set_rng_state(rng)
        masks.generator.set_state(gen)
    return sets_per_pass(masks, k, budget_bytes, saved_per_set=saved)


def passes(n_sets: int, per_pass: int) -> list[tuple[int, int]]:
    """``n_sets`` split into the fewest passes of at most ``per_pass`` sets, as even as possible: ``[(a, b), ...]``."""
    n = math.ceil(n_sets / per_pass)
    edges = [round(i * n_sets / n) for i in range(n + 1)]
    return list(zip(edges[:-1], edges[1:]))
