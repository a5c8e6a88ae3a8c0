"""Training recipes: for each ``model_type``, how the trainers get its data, processor, config and metrics.

The two entry points (``trainers/pretrain.py`` with Accelerate, ``trainers/finetune.py`` with
``transformers.Trainer``) are generic: everything model-specific they need is one
:class:`~session_transformers.trainer_utils.Recipe` in :data:`RECIPES`, written beside its model
(``models/<family>/recipe.py``). A recipe turns a data source (the synthetic store by default, or a named
real-data loader and a path) into a :class:`~session_transformers.trainer_utils.PreparedData`: the processor,
train and eval ``datasets.Dataset`` s, the collate function and a config. Its ``eval_step`` returns per-example
tensors (so scripts can ``accelerator.gather_for_metrics`` them) and ``summarize`` turns the gathered tensors
into metrics.
"""

from __future__ import annotations

from .models.ceres.recipe import RECIPE as _CERES
from .models.tagnn_pp.recipe import RECIPE as _TAGNN_PP
from .trainer_utils import PreparedData, Recipe, Task, add_data_arguments, resolve_data_arguments

RECIPES: dict[str, Recipe] = {"tagnn_pp": _TAGNN_PP, "ceres": _CERES}
"""``model_type`` -> :class:`Recipe`; one row per model family."""

__all__ = ["RECIPES", "PreparedData", "Recipe", "Task", "add_data_arguments", "resolve_data_arguments"]
