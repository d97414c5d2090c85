"""Which parameters of a model get a mask: the paper's defaults (weight matrices and kernels; biases, normalisation
parameters only when asked; embeddings never), plus names or glob patterns to include or exclude."""
from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass

import torch
from torch import nn

_NORMS = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm)
_EMBEDDINGS = (nn.Embedding, nn.EmbeddingBag)
_LAYERS = (nn.Linear, nn.Bilinear, nn.modules.conv._ConvNd, nn.RNNBase, nn.MultiheadAttention)


def param_role(module: nn.Module, name: str, p: torch.Tensor) -> str:
    """Classify a parameter: ``weight`` (matrices and kernels), ``bias``, ``norm``, ``embedding`` or ``other``.

    A weight has two or more dimensions and belongs to a linear, convolution, recurrent or attention layer, or has
    ``weight`` in its name (``weight_ih_l0``, ``in_proj_weight``, a Hugging Face ``Conv1D``'s ``weight``); tables
    such as ``pos_embed``, ``cls_token`` or ``relative_position_bias_table`` are ``other`` (add them with
    ``MaskFilter(include=...)``)."""
    if isinstance(module, _EMBEDDINGS):
        return "embedding"
    if isinstance(module, _NORMS):
        return "norm"
    if "bias" in name:
        return "bias"
    return "weight" if p.dim() >= 2 and (isinstance(module, _LAYERS) or "weight" in name) else "other"


def check_unparametrized(model: nn.Module) -> None:
    """A named error for weights computed from other parameters (``weight_norm``, ``spectral_norm``, any
    ``torch.nn.utils.parametrize`` parametrization): a mask multiplies parameters, so it would mask the direction
    ``v`` or the raw matrix, which the parametrization then renormalises, instead of the weight the layer uses."""
    from torch.nn.utils import parametrize
    from torch.nn.utils.spectral_norm import SpectralNorm
    from torch.nn.utils.weight_norm import WeightNorm
    for name, module in model.named_modules():
        hooks = [h for h in module._forward_pre_hooks.values() if isinstance(h, (WeightNorm, SpectralNorm))]
        if parametrize.is_parametrized(module):
            what = ", ".join(module.parametrizations)
            fix = "torch.nn.utils.parametrize.remove_parametrizations(module, name)"
        elif hooks:
            what = ", ".join(h.name for h in hooks)
            fix = "torch.nn.utils.remove_weight_norm / remove_spectral_norm(module)"
        else:
            continue
        raise ValueError(f"module {name or type(model).__name__!r} computes its {what} from other parameters "
                         f"(weight_norm, spectral_norm or a parametrization); a mask would scale what that "
                         f"computation renormalises. Fold it into a plain weight first: {fix}")


@dataclass
class MaskFilter:
    """Which parameters get a mask. Defaults follow the paper: weight matrices and kernels of linear, convolution,
    LSTM and attention layers; biases only when ``biases``; normalisation gains/biases only when ``norms``;
    embeddings never, and a tensor tied to an embedding (a language model's output layer) neither, whatever the
    order its modules were registered in. ``include``/``exclude`` are parameter names or glob patterns applied after
    the defaults (``exclude`` wins); a pattern that matches no parameter is an error. ``types``: module classes
    (e.g. ``(nn.Linear,)``, or a Hugging Face ``Conv1D``); when given, only parameters of modules of those types
    (subclasses included) get a mask, besides what ``include`` names. See :func:`param_role`."""
    biases: bool = False
    norms: bool = False
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    types: tuple[type, ...] = ()

    def __post_init__(self):
        self.types = tuple(self.types) if isinstance(self.types, (tuple, list)) else (self.types,)
        bad = [t for t in self.types if not (isinstance(t, type) and issubclass(t, nn.Module))]
        if bad:
            raise TypeError(f"MaskFilter(types=...) takes nn.Module classes, e.g. (nn.Linear,); got {bad}")

    def select(self, model: nn.Module) -> list[str]:
        roles, tied, typed = {}, {}, set()
        for mod_name, module in model.named_modules(remove_duplicate=False):
            for p_name, p in module.named_parameters(recurse=False):
                role = param_role(module, p_name, p)
                roles.setdefault(f"{mod_name}.{p_name}" if mod_name else p_name, role)
                if isinstance(module, self.types):
                    typed.add(f"{mod_name}.{p_name}" if mod_name else p_name)
                tied.setdefault(id(p), set()).add(role)
        # named_parameters() drops tied duplicates; keep its names so each tensor is masked once
        params = dict(model.named_parameters())
        names = list(params)
        roles.update({n: "embedding" for n in names if "embedding" in tied[id(params[n])]})
        for pattern in (*self.include, *self.exclude):
            if not any(fnmatch.fnmatchcase(n, pattern) for n in names):
                raise ValueError(f"mask filter pattern {pattern!r} matches no parameter of the model; "
                                 f"parameters are: {', '.join(names)}")
        wanted = {"weight"} | ({"bias"} if self.biases else set()) | ({"norm"} if self.norms else set())
        if self.types and not typed & set(names):
            raise ValueError(f"mask filter types {[t.__name__ for t in self.types]}: the model has no parameter in a "
                             f"module of these types; its modules are of types "
                             f"{sorted({type(m).__name__ for m in model.modules()})}")
        chosen = [n for n in names if (roles.get(n) in wanted and (not self.types or n in typed))
                  or any(fnmatch.fnmatchcase(n, p) for p in self.include)]
        chosen = [n for n in chosen if not any(fnmatch.fnmatchcase(n, p) for p in self.exclude)]
        if not chosen:
            raise ValueError("the mask filter selects no parameter of the model")
        return chosen

    def to_json(self) -> str:
        types = {"types": [f"{t.__module__}:{t.__qualname__}" for t in self.types]} if self.types else {}
        return json.dumps({"biases": self.biases, "norms": self.norms, "include": list(self.include),
                           "exclude": list(self.exclude), **types})

    @classmethod
    def from_json(cls, text: str) -> "MaskFilter":
        d = json.loads(text)
        return cls(bool(d["biases"]), bool(d["norms"]), tuple(d["include"]), tuple(d["exclude"]),
                   tuple(_resolve_type(t) for t in d.get("types", ())))


def _resolve_type(path: str) -> type:
    """``"module:Qual.Name"`` (as :meth:`MaskFilter.to_json` writes a type) -> the class."""
    import importlib
    module, _, qual = path.partition(":")
    try:
        obj = importlib.import_module(module)
        for part in qual.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as err:
        raise ValueError(f"the stored mask filter names module type {path!r}, which cannot be imported here "
                         f"({err}); pass filter= to load_masks") from None
    return obj
