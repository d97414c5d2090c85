"""Bring your own model: masks on a model the paper never used, through the public API only.

The model is a Hugging Face GPT-2 (``transformers.GPT2LMHeadModel``, built from a config, nothing downloaded),
trained on two operations of modular arithmetic in one network: ``a + b mod p`` and ``a - b mod p``, written as the
four tokens ``a op b =``; the answer is read at the ``=`` position. Then two masks are trained at once, one on the
``+`` problems and one on the ``-`` problems (the paper's add/mul question, §3.1, on a transformer): does each
operation have weights of its own, and how much do the two share?

The network is trained and tested on all ``2 p²`` problems: the question is which weights compute what, not
generalisation. Every step uses only what ``import wmask`` offers (the book's chapter *Bring your own model*).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F

import wmask
from ... import evidence
from ..experiment import Experiment, at_most

OPS = ("+", "-")


@dataclass
class OwnModelConfig:
    p: int = 11                # the modulus
    n_embd: int = 64
    n_layer: int = 2
    n_head: int = 4
    base: wmask.BaseTrainConfig = field(default_factory=lambda: wmask.BaseTrainConfig(
        steps=3000, lr=1e-3, batch_size=128, eval_every=250))
    target: float = 0.99       # the base network's accuracy on each operation before masks are trained
    mask: wmask.MaskTrainConfig = field(default_factory=lambda: wmask.MaskTrainConfig(
        steps=8000, lr=1e-2, alpha=1e-3, k=4, batch_size=128, log_every=20, stop_on_plateau=True))
    seed: int = 0


def make_model(cfg: OwnModelConfig):
    """A fresh GPT-2 with ``p`` number tokens, one token per operation and ``=``; no dropout."""
    import transformers
    torch.manual_seed(cfg.seed)
    config = transformers.GPT2Config(vocab_size=cfg.p + 3, n_positions=4, n_embd=cfg.n_embd, n_layer=cfg.n_layer,
                                     n_head=cfg.n_head, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                                     bos_token_id=cfg.p + 2, eos_token_id=cfg.p + 2)
    return transformers.GPT2LMHeadModel(config)


def problems(p: int, op: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Every problem of operation ``op`` (0: +, 1: -): tokens ``[p², 4]`` and answers ``[p²]``."""
    a, b = torch.cartesian_prod(torch.arange(p), torch.arange(p)).T
    tokens = torch.stack([a, torch.full_like(a, p + op), b, torch.full_like(a, p + 2)], 1)
    return tokens, (a + b) % p if op == 0 else (a - b) % p


class Stream:
    """Random batches of one operation's problems, from a generator of its own (one stream per mask set)."""

    def __init__(self, p: int, op: int, seed: int):
        self.tokens, self.answers = problems(p, op)
        self.g = torch.Generator().manual_seed(seed)

    def batch(self, n: int):
        i = torch.randint(0, len(self.answers), (n,), generator=self.g)
        return self.tokens[i], self.answers[i]


def answer_logits(out) -> torch.Tensor:
    """The logits at the ``=`` position (the model's output, any leading dims)."""
    return out.logits[..., -1, :]


def accuracy(logits: torch.Tensor, answers: torch.Tensor) -> float:
    return (logits.argmax(-1) == answers).float().mean().item()


def train_base(model, cfg: OwnModelConfig, progress: bool = True) -> list[dict]:
    """Train the GPT-2 on both operations (half of each batch each); evaluations hold each operation's accuracy."""
    streams = [Stream(cfg.p, op, cfg.seed * 10 + op) for op in range(2)]
    tests = [problems(cfg.p, op) for op in range(2)]

    def data(step):
        parts = [s.batch(cfg.base.batch_size // 2) for s in streams]
        return torch.cat([x for x, _ in parts]), torch.cat([y for _, y in parts])

    return wmask.train_model(
        model, data, lambda m, x, y: F.cross_entropy(answer_logits(m(input_ids=x)), y), cfg.base,
        eval_fn=lambda m: {op: accuracy(answer_logits(m(input_ids=x)), y) for op, (x, y) in zip(OPS, tests)},
        progress=progress, desc="GPT-2", stop_when=lambda e: min(e[op] for op in OPS) >= cfg.target)


def train_op_masks(model, cfg: OwnModelConfig, progress: bool = True):
    """Two masks in one call (:func:`wmask.fit`), trained together in one batched pass: ``+`` on the ``+``
    problems, ``-`` on the ``-`` problems, each from a stream of its own. Returns the ``MaskSet`` and its history."""
    def problems_of(op: int):        # an endless stream of ({"input_ids": [B, 4]}, answers [B])
        stream = Stream(cfg.p, op, 1000 + cfg.seed * 10 + op)
        while True:
            x, y = stream.batch(cfg.mask.batch_size)
            yield {"input_ids": x}, y

    m = cfg.mask
    fit = wmask.fit(model, {op: problems_of(i) for i, op in enumerate(OPS)},
                    loss=lambda out, answers: F.cross_entropy(answer_logits(out), answers),
                    steps=m.steps, alpha=m.alpha, lr=m.lr, k=m.k, clip=m.clip, log_every=m.log_every,
                    stop_when_settled=m.stop_on_plateau, seed=cfg.seed, progress=progress)
    return fit.masks, fit.history


def evaluate(model, masks) -> dict:
    """Accuracy of the network and of each mask on each operation's problems, in one batched call per operation."""
    variants = [None, masks.binary(0), masks.binary(1)]
    call = wmask.variants_forward(model, variants)
    acc = {}
    for op in range(2):
        x, y = problems(_p(model), op)
        logits = answer_logits(call(input_ids=x))
        for name, lg in zip(("network", "mask +", "mask -"), logits):
            acc.setdefault(name, {})[OPS[op]] = accuracy(lg, y)
    return acc


def _p(model) -> int:
    return model.config.vocab_size - 3


def run(cfg: OwnModelConfig, progress: bool = True) -> dict:
    """The chapter's example, end to end; the result is JSON-able."""
    model = make_model(cfg)
    evals = train_base(model, cfg, progress)
    base = {op: evals[-1][op] for op in OPS}
    result = {"config": asdict(cfg), "base_curve": evals, "base_accuracy": base,
              "base_steps_run": evals[-1]["step"]}
    masks, hist = train_op_masks(model, cfg, progress)
    table = wmask.summary(masks)
    per_tensor = wmask.metrics.iou(masks.binary(0), masks.binary(1))
    return {**result, "accuracy": evaluate(model, masks), "history": {"step": hist.step, "loss": hist.loss,
                                                                      "kept": hist.kept},
            "kept": table.to_dict("records"), "iou": per_tensor,
            "convergence": evidence.history_convergence(asdict(hist), ["mask +", "mask -"])}


def verdict(result: dict, keep: float = 0.9, lose: float = 0.5) -> tuple[str, str]:
    """Do the operations have weights of their own? ``("holds" | "does not hold" | "untestable", why)``: holds when
    each mask keeps its own operation (accuracy >= ``keep``) and loses the other one (< ``lose``), on a network at
    its target and masks that settled (:mod:`wmask.evidence`). ``result``: :func:`run`'s (the keys
    ``config``, ``base_accuracy``, ``accuracy``, ``convergence``)."""
    below = evidence.below_target(result["base_accuracy"], {op: result["config"]["target"] for op in OPS})
    if below:
        return "untestable", evidence.untestable_reason(below, {})
    unsettled = {n: c["reason"] for n, c in result["convergence"].items() if not c["converged"]}
    if unsettled:
        return "untestable", evidence.untestable_reason([], unsettled)
    acc = result["accuracy"]
    own = [acc[f"mask {op}"][op] for op in OPS]
    other = [acc[f"mask {op}"][OPS[1 - i]] for i, op in enumerate(OPS)]
    ok = min(own) >= keep and max(other) < lose
    return ("holds" if ok else "does not hold"), (f"own operation {min(own):.3f}-{max(own):.3f} (>= {keep}), the "
                                                   f"other {min(other):.3f}-{max(other):.3f} (< {lose})")


# The paper has no such model: the defaults are the cpu run (10-20 minutes on one core); smoke only exercises the
# code (its network stays below the target, so its verdict is "untestable"); "paper": a larger GPT-2, p = 97, a GPU.
PRESETS = {
    "smoke": {"p": 7, "n_embd": 32, "n_layer": 1, "n_head": 2, "base.steps": 300, "base.eval_every": 100,
              "base.batch_size": 64, "mask.steps": 100, "mask.batch_size": 32, "mask.log_every": 5},
    "cpu": {},
    "paper": {"p": 97, "n_embd": 256, "n_layer": 4, "base.steps": 20000, "base.eval_every": 1000,
              "mask.steps": 20000, "mask.log_every": 100},
}


def run_stored(cfg: OwnModelConfig, store=None, device=None, progress: bool = True) -> dict:
    """Runs on the CPU in minutes; nothing is stored but the result."""
    return run(cfg, progress)


def tables(runs: list[dict]) -> dict[str, list[dict]]:
    """Tidy rows over seeds: ``accuracy`` (the network and each mask on each operation), ``base`` (the network's
    accuracy per operation against its target) and ``curves`` (each mask's training curve)."""
    accuracy = [{"seed": r["seed"], "weights": w, "evaluated on": op, "accuracy": a}
                for r in runs for w, by_op in r["accuracy"].items() for op, a in by_op.items()]
    base = [{"seed": r["seed"], "subtask": op, "accuracy": a, "target": r["config"]["target"]}
            for r in runs for op, a in r["base_accuracy"].items()]
    h = [(r["seed"], r["history"]) for r in runs]
    curves = [{"seed": seed, "mask": f"mask {op}", "step": step, "loss": loss[i], "kept": kept[i]}
              for seed, hist in h for step, loss, kept in zip(hist["step"], hist["loss"], hist["kept"])
              for i, op in enumerate(OPS)]
    return {"accuracy": accuracy, "base": base, "curves": curves}


def describe(config: dict) -> str:
    """The GPT-2, its base steps and the masks' steps, in one line."""
    mask = config["mask"]
    settled = at_most(mask)
    return (f"GPT-2 {config['n_layer']} layers, d {config['n_embd']}, {config['n_head']} heads, "
            f"{config['base']['steps']} base / {mask['steps']} mask steps at lr {mask['lr']:g}{settled}")


EXPERIMENT = Experiment("own_model", OwnModelConfig, PRESETS, run_stored, tables, describe=describe)
