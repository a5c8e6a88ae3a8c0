"""One explicit table: ``model_type`` -> config, models (per Auto class) and processor.

Importing :mod:`session_transformers` registers every row with the ``transformers`` Auto classes, so that
``AutoConfig``, ``AutoModel``, ``AutoModelForPreTraining``, ``AutoProcessor`` and the task Auto classes
below resolve our checkpoints with no remote code. Tasks that ``transformers`` has no Auto class for get
one here, built on the same factory as the built-in ones.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from transformers import AutoConfig, AutoModel, AutoModelForPreTraining, AutoProcessor
from transformers.models.auto.auto_factory import _BaseAutoModelClass, _LazyAutoMapping
from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES


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


MODEL_TABLE: dict[str, ModelEntry] = {}
"""``model_type`` -> :class:`ModelEntry`. Filled below, one line per model family."""


def _table() -> dict[str, ModelEntry]:
    # Imported here so that this module stays importable by the model packages themselves.
    # One row per model family; each model issue adds its row.
    from transformers import AutoModelForSequenceClassification

    from .models.ceres import (
        CeresConfig,
        CeresForPreTraining,
        CeresForSessionRetrieval,
        CeresModel,
        CeresProcessor,
    )
    from .models.muvcog import (
        MuvcogConfig,
        MuvcogForClickPrediction,
        MuvcogForPreTraining,
        MuvcogForQuerySuggestion,
        MuvcogModel,
        MuvcogProcessor,
    )
    from .models.product_byol import (
        ProductByolConfig,
        ProductByolForPreTraining,
        ProductByolForSequenceClassification,
        ProductByolModel,
        ProductByolProcessor,
    )
    from .models.tagnn_pp import TagnnPPConfig, TagnnPPForNextItemPrediction, TagnnPPModel, TagnnPPProcessor
    from .models.ubm import (
        UbmConfig,
        UbmForNextItem,
        UbmForPreTraining,
        UbmForPurchaseIntent,
        UbmForRemainingLength,
        UbmModel,
        UbmProcessor,
    )

    return {
        "muvcog": ModelEntry(
            MuvcogConfig,
            {
                AutoModel: MuvcogModel,
                AutoModelForPreTraining: MuvcogForPreTraining,
                AutoModelForQuerySuggestion: MuvcogForQuerySuggestion,
                AutoModelForClickPrediction: MuvcogForClickPrediction,
            },
            MuvcogProcessor,
        ),
        "ubm": ModelEntry(
            UbmConfig,
            {
                AutoModel: UbmModel,
                AutoModelForPreTraining: UbmForPreTraining,
                AutoModelForPurchaseIntent: UbmForPurchaseIntent,
                AutoModelForRemainingLength: UbmForRemainingLength,
                AutoModelForNextItemPrediction: UbmForNextItem,
            },
            UbmProcessor,
        ),
        "tagnn_pp": ModelEntry(
            TagnnPPConfig,
            {
                AutoModel: TagnnPPModel,
                AutoModelForNextItemPrediction: TagnnPPForNextItemPrediction,
                # TAGNN++ trains on next-item cross-entropy, so its pre-training head is the prediction head.
                AutoModelForPreTraining: TagnnPPForNextItemPrediction,
            },
            TagnnPPProcessor,
        ),
        "ceres": ModelEntry(
            CeresConfig,
            {
                AutoModel: CeresModel,
                AutoModelForPreTraining: CeresForPreTraining,
                AutoModelForSessionRetrieval: CeresForSessionRetrieval,
            },
            CeresProcessor,
        ),
        "product_byol": ModelEntry(
            ProductByolConfig,
            {
                AutoModel: ProductByolModel,
                AutoModelForPreTraining: ProductByolForPreTraining,
                AutoModelForSequenceClassification: ProductByolForSequenceClassification,
            },
            ProductByolProcessor,
        ),
    }


def register_all() -> None:
    """Register every table row with the Auto classes (idempotent)."""
    MODEL_TABLE.update(_table())
    for model_type, entry in MODEL_TABLE.items():
        if entry.config.model_type != model_type:
            raise ValueError(f"table key {model_type!r} != {entry.config.__name__}.model_type")
        AutoConfig.register(model_type, entry.config, exist_ok=True)
        for auto_cls, model_cls in entry.models.items():
            auto_cls.register(entry.config, model_cls, exist_ok=True)
        if entry.processor is not None:
            AutoProcessor.register(entry.config, entry.processor, exist_ok=True)


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
]
