"""The paper's experiments on top of the engine: one config per experiment (the paper's defaults, presets as
overrides), the experiment contract, the store that keys every artefact by its config and computing code, the
runner and sweeps, the command line's commands, the paper's tasks (``tasks/``), their models and dataset loaders
(``data/``). Nothing here is needed to mask your own model: that is ``import wmask``."""
