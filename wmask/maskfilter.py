"""Which parameters of a model get a mask: the paper's defaults (weight matrices and kernels; biases, normalisation
parameters only when asked; embeddings never), plus names or glob patterns to include or exclude."""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass

import torch
from torch import nn

_NORMS = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm)
_EMBEDDINGS = (nn.Embedding, nn.EmbeddingBag)


def param_role(module: nn.Module, name: str, p: torch.Tensor) -> str:
    """Classify a parameter: ``weight`` (matrices and kernels), ``bias``, ``norm``, ``embedding`` or ``other``."""
    if isinstance(module, _EMBEDDINGS):
        return "embedding"
    if isinstance(module, _NORMS):
        return "norm"
    if "bias" in name:
        return "bias"
    return "weight" if p.dim() >= 2 else "other"


@dataclass
class MaskFilter:
    """Which parameters get a mask. Defaults follow the paper: weight matrices and kernels of linear, convolution,
    LSTM and attention layers; biases only when ``biases``; normalisation gains/biases only when ``norms``;
    embeddings never. ``include``/``exclude`` are parameter names or glob patterns applied after the defaults
    (``exclude`` wins); a pattern that matches no parameter is an error."""
    biases: bool = False
    norms: bool = False
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    def select(self, model: nn.Module) -> list[str]:
        roles = {}
        for mod_name, module in model.named_modules():
            for p_name, p in module.named_parameters(recurse=False):
                roles[f"{mod_name}.{p_name}" if mod_name else p_name] = param_role(module, p_name, p)
        # named_parameters() drops tied duplicates; keep its names so each tensor is masked once
        names = [n for n, _ in model.named_parameters()]
        for pattern in (*self.include, *self.exclude):
            if not any(fnmatch.fnmatchcase(n, pattern) for n in names):
                raise ValueError(f"mask filter pattern {pattern!r} matches no parameter of the model; "
                                 f"parameters are: {', '.join(names)}")
        wanted = {"weight"} | ({"bias"} if self.biases else set()) | ({"norm"} if self.norms else set())
        chosen = [n for n in names if roles.get(n) in wanted or any(fnmatch.fnmatchcase(n, p) for p in self.include)]
        chosen = [n for n in chosen if not any(fnmatch.fnmatchcase(n, p) for p in self.exclude)]
        if not chosen:
            raise ValueError("the mask filter selects no parameter of the model")
        return chosen
