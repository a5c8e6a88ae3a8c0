"""The Auto classes of session models: ``model_type`` -> config, models (per Auto class) and processor.

Each model family declares its row in its descriptor (``models/<family>/family.py``, found by
:func:`session_transformers.families.discover`); :data:`MODEL_TABLE` is the view of those rows. Importing
:mod:`session_transformers` registers every row with the ``transformers`` Auto classes, so that
``AutoConfig``, ``AutoModel``, ``AutoModelForPreTraining``, ``AutoProcessor`` and the task Auto classes
below resolve our checkpoints with no remote code. Tasks that ``transformers`` has no Auto class for get
one here, built on the same factory as the built-in ones.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field

from transformers import AutoConfig, AutoModelForPreTraining, AutoProcessor
from transformers.models.auto.auto_factory import _BaseAutoModelClass, _LazyAutoMapping
from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

from .families import FamilyView, ModelFamily, discover


def _auto_class(name: str, doc: str) -> type[_BaseAutoModelClass]:
    return type(
        name,
        (_BaseAutoModelClass,),
        {
            "_model_mapping": _LazyAutoMapping(CONFIG_MAPPING_NAMES, OrderedDict()),
            "__doc__": doc,
            "__module__": __name__,
        },
    )


AutoModelForNextItemPrediction = _auto_class(
    "AutoModelForNextItemPrediction", "Loads the next-item prediction head of a session model."
)
AutoModelForSessionRetrieval = _auto_class(
    "AutoModelForSessionRetrieval", "Loads the session-to-item retrieval head of a session model."
)
AutoModelForPurchaseIntent = _auto_class(
    "AutoModelForPurchaseIntent", "Loads the purchase-intent prediction head of a session model."
)
AutoModelForRemainingLength = _auto_class(
    "AutoModelForRemainingLength", "Loads the remaining-session-length prediction head of a session model."
)
AutoModelForQuerySuggestion = _auto_class(
    "AutoModelForQuerySuggestion", "Loads the next-query (query suggestion) head of a session model."
)
AutoModelForClickPrediction = _auto_class(
    "AutoModelForClickPrediction", "Loads the click-prediction head of a session model."
)


@dataclass(frozen=True)
class ModelEntry:
    """One row of the table: a model family's config, its model class per Auto class, and its processor."""

    config: type
    models: dict = field(default_factory=dict)
    processor: type | None = None


def _entry(family: ModelFamily) -> ModelEntry:
    return ModelEntry(family.config, dict(family.models), family.processor)


MODEL_TABLE: Mapping[str, ModelEntry] = FamilyView(_entry, "MODEL_TABLE")
"""``model_type`` -> :class:`ModelEntry`: a view of the model families (``models/<family>/family.py``, see
:mod:`session_transformers.families`), one row per family."""


def register_family_auto(family: ModelFamily) -> None:
    """Register one family's config, model classes and processor with the Auto classes (idempotent)."""
    AutoConfig.register(family.model_type, family.config, exist_ok=True)
    for auto_cls, model_cls in family.models.items():
        auto_cls.register(family.config, model_cls, exist_ok=True)
    if family.processor is not None:
        AutoProcessor.register(family.config, family.processor, exist_ok=True)


def register_all() -> None:
    """Register every model family with the Auto classes (idempotent)."""
    for family in discover().values():
        register_family_auto(family)


__all__ = [
    "MODEL_TABLE",
    "AutoModelForNextItemPrediction",
    "AutoModelForPreTraining",
    "AutoModelForClickPrediction",
    "AutoModelForPurchaseIntent",
    "AutoModelForQuerySuggestion",
    "AutoModelForRemainingLength",
    "AutoModelForSessionRetrieval",
    "ModelEntry",
    "register_all",
    "register_family_auto",
]
