"""Contrastive objectives, selectable by name: `build_loss("ntxent", temperature=0.2)` for a loss
with its own parameters, `build_objective(loss_config, "image")` for the training loss module of
a configured objective. Both read the table in `cl_core.losses.objectives`.

The names below load on first use (PEP 562), so that the table, which the config validation reads,
can be imported without torch.
"""

from __future__ import annotations

from cl_core.lazy_names import lazy_names
from cl_core.losses.objectives import OBJECTIVES

# Each public name -> the module of this package that defines it: the loss class of every row of
# the table, and the builders.
_HOMES = {
    **{o.loss_class.name: o.loss_class.module for o in OBJECTIVES.values() if o.loss_class is not None},
    **dict.fromkeys(("LOSSES", "build_loss", "build_objective"), "builders"),
}

__all__ = sorted(_HOMES)

__getattr__, __dir__ = lazy_names(__name__, _HOMES)
