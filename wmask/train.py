"""Training loops: the masks (many sets at once) and the base networks they inspect."""
from __future__ import annotations

import json
import math
import os
import warnings
from dataclasses import asdict, dataclass
from typing import Callable, Sequence

import torch
from torch import nn
from tqdm import tqdm

from .evidence import history_convergence
from . import interrupts
from .history import History  # noqa: F401 (re-exported)
from .nonfinite import NonFiniteError, non_finite as _non_finite, non_finite_base as _non_finite_base  # noqa: F401
from .masks import MaskSet
from .maskstep import JointStep, MaskStep, clip_per_set, set_norms  # noqa: F401 (re-exported)
from .utils import atomic_torch_save, diff, dumps, read_torch, rng_state, set_rng_state

# "masks": clip each set's gradient norm over its mask logits (what the method describes).
# "all": the authors' code: the norm also covers the frozen parameters' gradients, which are never zeroed during a
#        mask-training stage and so accumulate (and get scaled by every clip), the book's method page.
CLIP_MODES = ("masks", "all")


@dataclass
class MaskTrainConfig:
    """Mask training hyper-parameters. The defaults are the paper's add/mul settings (the book's method page), but
    for ``clip_mode``: ``"masks"`` clips the mask logits' gradient as the method describes, while the paper's figures
    came from the authors' ``"all"``, which every experiment of :mod:`wmask.experiments.tasks` sets explicitly."""
    steps: int = 20_000
    lr: float = 1e-2          # Adam on the mask logits, constant
    alpha: float = 1e-4       # regulariser: alpha * sum(raw logits) / batch_size (train_masks' alphas= per set)
    k: int = 4                # mask samples per step, each on its own contiguous batch_size / k slice
    batch_size: int = 128     # B of each set's batch (the regulariser divides by it)
    clip: float = 1.0         # gradient-norm clip, per set
    clip_mode: str = "masks"  # see CLIP_MODES
    batch_dim: int = 0        # where the batch is in one set's input
    log_every: int = 100
    eval_every: int = 0       # 0 = only at the end
    checkpoint_every: int = 1000
    stop_on_plateau: bool = False  # stop once every set's curve has settled (wmask.evidence.convergence), checked
                                   # at each logged step after at least half the steps

    def __post_init__(self):
        if isinstance(self.alpha, bool) or not isinstance(self.alpha, (int, float)):
            raise ValueError(f"alpha must be one number (train_masks takes alphas= for one per set), got "
                             f"{self.alpha!r}")
        if not math.isfinite(self.alpha) or self.alpha < 0:
            raise ValueError(f"alpha must be finite and >= 0 (it scales the push towards removing weights), got "
                             f"{self.alpha}")
        if self.k < 1 or self.batch_size < 1:
            raise ValueError(f"k must be >= 1 (mask samples per step) and batch_size >= 1; got k={self.k}, "
                             f"batch_size={self.batch_size}")
        if self.batch_size % self.k:
            raise ValueError(f"batch_size={self.batch_size} must be divisible by k={self.k} (one mask sample per "
                             "contiguous batch_size/k slice)")
        if self.clip_mode not in CLIP_MODES:
            raise ValueError(f"unknown clip_mode {self.clip_mode!r}; expected one of {CLIP_MODES}")
        if self.steps < 0 or self.lr <= 0 or self.clip <= 0:
            raise ValueError(f"need steps >= 0, lr > 0, clip > 0; got {self.steps}, {self.lr}, {self.clip}")


def _resume(checkpoint, cfg) -> dict | None:
    """The saved state of an interrupted run, or None; refuses a checkpoint written with another configuration
    (``cfg``: the config dataclass or the dict a checkpoint stores), naming the keys that differ."""
    if checkpoint is None or not os.path.exists(checkpoint):
        return None
    state = read_torch(checkpoint)
    expected = json.loads(dumps(cfg if isinstance(cfg, dict) else asdict(cfg)))
    if json.loads(dumps(state["config"])) != expected:
        lines = diff(json.loads(dumps(state["config"])), expected)
        raise ValueError(f"checkpoint {checkpoint} was written with a different configuration ({'; '.join(lines)});"
                         " remove it or use the same settings")
    return state


def _next_batch(data, step):
    return data(step) if callable(data) else next(data)


def advance(bar, warm_up: bool) -> None:
    """One step done. The first step of a run builds what later steps reuse (``torch.compile``'s kernels for the
    mask sampler, ``impl="compile"``, and vmap's traces: seconds); its time is left out of the rate and the ETA."""
    if not warm_up or bar.disable:
        bar.update(1)
        return
    bar.n += 1
    bar.last_print_n = bar.n
    bar.start_t = bar.last_print_t = bar._time()       # the bar's clock starts after the warm-up


def set_postfix(hist: History, most: int = 6) -> str:
    """The progress bar's text: each set's kept fraction (1 = every weight kept) and loss at the last log point."""
    parts = [f"{n} kept {k:.3f} loss {l:.3g}" for n, k, l in zip(hist.labels(), hist.kept[-1], hist.loss[-1])]
    return " | ".join(parts[:most]) + (f" | (+{len(parts) - most} sets)" if len(parts) > most else "")


def _settled(hist: History) -> bool:
    """Every set's logged curve has settled by :func:`wmask.evidence.convergence`'s rule."""
    names = range(len(hist.loss[0]))
    return all(r["converged"] for r in history_convergence(asdict(hist), names).values())


def train_masks(masks: MaskSet, data, loss_fn: Callable, cfg: MaskTrainConfig | None = None,
                eval_fn: Callable | None = None, checkpoint: str | os.PathLike | None = None,
                progress: bool = True, desc: str = "masks", forward: Callable | None = None,
                alphas: Sequence[float] | None = None, sets_per_pass: int | None = None,
                names: Sequence[str] | None = None) -> History:
    """Train every set of ``masks`` at once over the frozen model (a mask value 1 means the weight is kept).

    ``data``: a callable ``step -> (inputs, targets)`` or an iterator of them; inputs ``[M, B, ...]`` (a tensor, a
    tuple, or a dict of keyword inputs), one batch per set from that set's own stream; B (dim ``cfg.batch_dim + 1``)
    must be ``cfg.batch_size``. ``loss_fn(outputs, targets)`` returns the per-set task losses, shape ``[M]`` (a
    scalar when there is one set). The objective of set ``i`` is ``loss_i + alpha_i * sum(logits_i) / B``, with
    ``alpha_i`` from ``alphas`` (one per set, e.g. an α sweep in one pass) or else ``cfg.alpha``. Sets are
    independent: one Adam over the stacked logits is exactly ``M`` separate Adams (it is element-wise), and clipping
    is per set (``cfg.clip_mode``, see :data:`CLIP_MODES`).

    ``forward(call, inputs)``: how the model is run, for models whose forward is more than ``model(inputs)`` (e.g.
    a decoder loop): it gets ``call``, the masked model over every set (``call(x)`` with ``x`` ``[M, ...]``), and
    returns the outputs ``loss_fn`` reads. Default: ``call(inputs)``.

    Runs exactly ``cfg.steps`` updates (the authors' code runs ``steps + 1``), or fewer with
    ``cfg.stop_on_plateau`` once every set has settled. ``eval_fn(masks) -> dict`` runs every ``cfg.eval_every``
    steps and at the end, into ``History.evals``. With ``checkpoint``, the state (with torch's global RNG state,
    which e.g. teacher-forcing draws use) is saved atomically every ``cfg.checkpoint_every`` steps and an existing
    checkpoint is resumed, bit for bit when ``data`` is a function of the step. A NaN or infinity in a set's batch,
    loss, logits or gradients stops training with a :class:`NonFiniteError` (a ``FloatingPointError``) naming the
    step, the set and what it was.

    ``sets_per_pass``: how many sets run in one forward/backward pass; a step runs its sets in passes of at most
    that many (each pass's gradients accumulate before the one update), so memory grows with the pass, not with
    ``M``. The masks are the same whatever the passes (:meth:`MaskSet.passes`). Default: as many as fit a memory
    budget (:func:`wmask.memory.sets_per_pass`: ``WMASK_MASK_MEMORY``, else a quarter of the free memory, at most
    256 MiB on a CPU), counting each set's sampled weights and the activations one set's forward keeps, measured
    on the first batch (the probe changes no random state).

    ``names``: one name per set, for the progress bar (each set's kept fraction and loss) and ``History.names``.
    """
    update = MaskStep(masks, loss_fn, cfg or MaskTrainConfig(), alphas=alphas, forward=forward,
                      sets_per_pass=sets_per_pass)
    return _train(update, data, eval_fn, checkpoint, progress, desc, names)


def train_jointly(masks: MaskSet, data, loss_fn: Callable, cfg: MaskTrainConfig | None = None,
                  frozen: dict[str, torch.Tensor] | None = None, eval_fn: Callable | None = None,
                  checkpoint: str | os.PathLike | None = None, progress: bool = True, desc: str = "masks",
                  forward: Callable | None = None) -> History:
    """:func:`train_masks` for one mask set whose model's weights train too, jointly with the mask (the paper's
    permuted MNIST, §2.4): one Adam at ``cfg.lr`` over the logits and the weights, whose gradient is the
    straight-through gradient through the masked weights, and one clipping norm over both (``cfg.clip_mode`` must
    be ``"all"``, as the authors' code). ``frozen``: ``{parameter name: bool tensor}``, True where a weight must not
    change (e.g. weights earlier tasks' masks use); the others train. The model's parameters change in place; a
    checkpoint holds them too. The other arguments are :func:`train_masks`'."""
    update = JointStep(masks, loss_fn, cfg or MaskTrainConfig(), frozen=frozen, forward=forward)
    return _train(update, data, eval_fn, checkpoint, progress, desc, None)


def _train(update: MaskStep, data, eval_fn, checkpoint, progress, desc, names) -> History:
    """The loop both run: resume, steps, log points, evaluations, checkpoints."""
    masks, cfg = update.masks, update.cfg
    if names is not None and len(names) != masks.n_sets:
        raise ValueError(f"names: {len(names)} given for {masks.n_sets} mask sets")
    masks.track_frozen_grads(cfg.clip_mode == "all")
    hist, start = History(), 0
    state = _resume(checkpoint, update.config)
    if state is not None:
        update.load_state_dict(state)
        hist, start = History(**state["history"]), state["step"]
        set_rng_state(state.get("rng"))
    hist.names = list(names or [])
    masks.model.eval()
    bar = tqdm(desc=desc, disable=not progress, mininterval=2.0, initial=start, total=cfg.steps)
    for step in range(start, cfg.steps):
        interrupts.check()      # a Ctrl-C lost in a finaliser (e.g. while the last checkpoint was written)
        task = update(step, *_next_batch(data, step))
        advance(bar, warm_up=step == start)
        if step % cfg.log_every == 0 or step == cfg.steps - 1:
            hist.step.append(step)
            hist.loss.append(task.detach().tolist())
            hist.kept.append(masks.keep_fraction().tolist())
            bar.set_postfix_str(set_postfix(hist), refresh=False)
            if cfg.stop_on_plateau and step + 1 >= cfg.steps // 2 and step + 1 < cfg.steps and _settled(hist):
                break                       # the stage ends at this logged step
        if eval_fn is not None and cfg.eval_every and (step + 1) % cfg.eval_every == 0 and step + 1 < cfg.steps:
            hist.evals.append({"step": step + 1, **eval_fn(masks)})
        if checkpoint is not None and (step + 1) % cfg.checkpoint_every == 0 and step + 1 < cfg.steps:
            atomic_torch_save({"config": update.config, "step": step + 1, **update.state_dict(),
                               "history": asdict(hist), "rng": rng_state()}, checkpoint)
    bar.close()
    _finish(hist, masks, cfg, eval_fn, checkpoint)
    return hist


def _finish(hist: History, masks: MaskSet, cfg: MaskTrainConfig, eval_fn, checkpoint) -> None:
    """The last evaluation, a warning when no weight was removed, the checkpoint gone."""
    if eval_fn is not None:
        hist.evals.append({"step": cfg.steps, **eval_fn(masks)})
    if hist.kept and min(hist.kept[-1]) >= 1.0 and cfg.steps > 0:
        warnings.warn(f"mask training removed no weight in {cfg.steps} steps: a logit starts at the MaskSet's init "
                      f"(default 2) and falls by about lr = {cfg.lr:g} a step, so with the defaults nothing crosses 0 "
                      "before ≈ 200 steps; train longer, or raise lr or alpha", stacklevel=4)
    if checkpoint is not None and os.path.exists(checkpoint):
        os.unlink(checkpoint)
    masks.track_frozen_grads(False)


LOSS_WINDOW = 50     # steps per point of train_model's loss curve


@dataclass
class BaseTrainConfig:
    """Base-network training: Adam, no weight decay, gradient-norm clipping (the paper's defaults; the book's method
    page)."""
    steps: int = 20_000
    lr: float = 1e-3
    batch_size: int = 128
    clip: float = 1.0
    eval_every: int = 1000
    checkpoint_every: int = 1000

    def __post_init__(self):
        if self.steps < 0 or self.lr <= 0 or self.clip <= 0 or self.batch_size < 1:
            raise ValueError(f"bad base training config {self}")


def sgd(momentum: float = 0.9, weight_decay: float = 1e-4, milestones: tuple = ()):
    """``(optimizer factory, lr multiplier per step)`` for :func:`train_model`: SGD with momentum and weight decay,
    the learning rate divided by 10 at each step in ``milestones`` (He et al.'s CIFAR ResNet recipe)."""
    def make(params, lr):
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    return make, lambda step: 0.1 ** sum(step >= m for m in milestones)


def train_model(model: nn.Module, data, loss_fn: Callable, cfg: BaseTrainConfig | None = None,
                eval_fn: Callable | None = None, progress: bool = True, desc: str = "base",
                checkpoint: str | os.PathLike | None = None, optimizer: tuple | None = None,
                stop_when: Callable[[dict], bool] | None = None, loss_curve: list | None = None) -> list[dict]:
    """Train ``model`` in place. ``data``: callable ``step -> (inputs, targets)`` or an iterator; ``loss_fn(model,
    inputs, targets) -> scalar``. ``eval_fn(model) -> dict`` runs every ``cfg.eval_every`` steps and at the end
    (in eval mode). Returns the list of evaluations, each with its ``step``. With ``checkpoint``, the state is
    saved atomically every ``cfg.checkpoint_every`` steps and an existing checkpoint is resumed (exactly, when
    ``data`` is a function of the step; the checkpoint holds torch's global RNG state, which dropout draws from).
    ``optimizer``: ``(factory(params, lr), lr multiplier(step))``, e.g. :func:`sgd`; default Adam at a constant
    ``cfg.lr``. A non-finite loss or gradient stops training with a :class:`NonFiniteError` naming the step.
    ``stop_when(evaluation) -> bool``: training stops after the first periodic evaluation for which it is true (e.g.
    the base network at its target on a validation split); the returned evaluations then end at that step.
    ``loss_curve``: a list that receives ``[last step, mean loss]`` of every :data:`LOSS_WINDOW` steps (and of the
    last, shorter window), kept in the checkpoint, so a resumed run's curve is whole."""
    cfg = cfg or BaseTrainConfig()
    make, schedule = optimizer or (lambda params, lr: torch.optim.Adam(params, lr=lr), lambda step: 1.0)
    opt = make([p for p in model.parameters() if p.requires_grad], cfg.lr)
    evals, start, carried = [], 0, []     # carried: the open loss window's losses before a resume (floats)
    state = _resume(checkpoint, cfg)
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        evals, start = state["evals"], state["step"]
        if loss_curve is not None:
            loss_curve[:] = state.get("loss_curve", [])
            carried = state.get("loss_window", [])
        set_rng_state(state.get("rng"))
    window = []     # this window's losses, on the device until the window ends (no host sync per step)
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    bar = tqdm(range(start, cfg.steps), desc=desc, disable=not progress, mininterval=2.0, initial=start,
               total=cfg.steps)
    for step in bar:
        interrupts.check()
        model.train()
        inputs, targets = _next_batch(data, step)
        loss = loss_fn(model, inputs, targets)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        grads = [p.grad for _, p in params if p.grad is not None]
        norm = nn.utils.get_total_norm(grads)     # = clip_grad_norm_, split to check the norm before scaling
        if not bool(torch.isfinite(loss) & torch.isfinite(norm)):    # one host sync per step
            raise _non_finite_base(step, inputs, targets, loss, params)
        nn.utils.clip_grads_with_norm_([p for _, p in params], cfg.clip, norm)
        for group in opt.param_groups:
            group["lr"] = cfg.lr * schedule(step)
        opt.step()
        if step % 100 == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}")
        last = step + 1 == cfg.steps
        if loss_curve is not None:
            if carried:     # the first step after a resume: the window goes on from the checkpoint's losses
                window, carried = [loss.new_tensor(v) for v in carried], []
            window.append(loss.detach())
            if last or (step + 1) % LOSS_WINDOW == 0:
                loss_curve.append([step, torch.stack(window).mean().item()])
                window = []
        if eval_fn is not None and (last or (cfg.eval_every and (step + 1) % cfg.eval_every == 0)):
            model.eval()
            with torch.no_grad():
                evals.append({"step": step + 1, **eval_fn(model)})
            if stop_when is not None and not last and stop_when(evals[-1]):
                break
        if checkpoint is not None and (step + 1) % cfg.checkpoint_every == 0 and not last:
            atomic_torch_save({"config": asdict(cfg), "step": step + 1, "model": model.state_dict(),
                               "opt": opt.state_dict(), "evals": evals, "rng": rng_state(),
                               "loss_curve": loss_curve or [], "loss_window": [w.item() for w in window]},
                              checkpoint)
    if loss_curve is not None and window:   # stopped early (stop_when) inside a window
        loss_curve.append([step, torch.stack(window).mean().item()])
    if checkpoint is not None and os.path.exists(checkpoint):
        os.unlink(checkpoint)
    model.eval()
    return evals
