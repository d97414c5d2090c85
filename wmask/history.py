"""What a mask-training run logs, per set: the task loss and the fraction of weights kept (1 = kept), and a plot.

Only torch's standard library neighbours are imported here; matplotlib is imported when :meth:`History.plot` runs.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class History:
    """The logged curves of one :func:`wmask.train_masks` (or :func:`wmask.fit`) run: at each logged ``step``, the
    task loss of every set (``loss[j][i]``: log point ``j``, set ``i``) and the fraction of its masked weights each
    set's deterministic mask keeps (``kept``, 1 = every weight kept); ``evals``: what ``eval_fn`` returned;
    ``names``: the sets' names (a :func:`wmask.fit` run's subtasks; empty: ``set 0``, ``set 1``, ...)."""
    step: list[int] = field(default_factory=list)
    loss: list[list[float]] = field(default_factory=list)     # per set
    kept: list[list[float]] = field(default_factory=list)     # fraction of weights kept, per set
    evals: list[dict] = field(default_factory=list)
    names: list[str] = field(default_factory=list)

    def labels(self) -> list[str]:
        """The sets' names, ``set i`` where none were given."""
        n = len(self.loss[0]) if self.loss else len(self.names)
        return list(self.names) if len(self.names) == n else [f"set {i}" for i in range(n)]

    def settled(self) -> dict[str, dict]:
        """Per set: has its curve settled? (:func:`wmask.evidence.convergence`: ``converged`` and a ``reason``)."""
        from .evidence import history_convergence
        return history_convergence(asdict(self), self.labels())

    def plot(self, axes=None):
        """Draw every set's task loss and kept fraction against the step (two panels); returns the two axes.
        ``axes``: two matplotlib axes to draw into (default: a new figure)."""
        if not self.step:
            raise ValueError("the history is empty: nothing was logged (steps=0?)")
        import matplotlib.pyplot as plt
        if axes is None:
            _, axes = plt.subplots(1, 2, figsize=(9, 3), constrained_layout=True)
        loss_ax, kept_ax = axes
        for i, label in enumerate(self.labels()):
            loss_ax.plot(self.step, [row[i] for row in self.loss], label=label)
            kept_ax.plot(self.step, [row[i] for row in self.kept], label=label)
        loss_ax.set(xlabel="step", ylabel="task loss (sampled masks)")
        kept_ax.set(xlabel="step", ylabel="fraction of weights kept", ylim=(0, 1.02))
        kept_ax.legend()
        return loss_ax, kept_ax
