"""wmask: differentiable binary weight masks for any frozen PyTorch model (Csordás et al., ICLR 2021).

A mask value of 1 (True) means the weight is **kept**.
"""
from . import metrics
from .evaluate import variants_forward
from .fit import Fit, fit
from .history import History
from .inspection import applied, plot_kept, summary
from .masks import (MaskFilter, MaskSet, VmapForwardError, apply_masks, counts, forward_with, full_masks, invert,
                    load_masks, mask_and, mask_or, materialize, save_masks)
from .train import BaseTrainConfig, MaskTrainConfig, NonFiniteError, train_jointly, train_masks, train_model
from .utils import get_device, retain_freed_memory, seed_everything, set_threads

__version__ = "0.1.0"
__all__ = ["fit", "Fit", "History", "MaskFilter", "MaskSet", "MaskTrainConfig", "BaseTrainConfig", "train_masks",
           "train_jointly", "train_model", "metrics",
           "variants_forward", "summary", "plot_kept", "applied", "NonFiniteError", "VmapForwardError",
           "apply_masks", "counts", "forward_with", "full_masks", "invert", "load_masks", "mask_and", "mask_or",
           "materialize", "save_masks", "get_device", "retain_freed_memory", "seed_everything", "set_threads"]
