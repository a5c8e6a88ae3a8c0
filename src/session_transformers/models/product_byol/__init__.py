"""Product BYOL: a self-supervised product-title encoder trained on session co-occurrence (config, processor,
models). The training recipe is ``recipe.py``; the paper's downstream protocol is ``downstream.py``."""

from .configuration_product_byol import ProductByolConfig
from .modeling_product_byol import (
    ProductByolForPreTraining,
    ProductByolForPreTrainingOutput,
    ProductByolForSequenceClassification,
    ProductByolModel,
    ProductByolModelOutput,
    ProductByolPreTrainedModel,
    ProductByolSequenceClassifierOutput,
)
from .processing_product_byol import (
    STOP_WORDS,
    ProductByolProcessor,
    normalize_title,
    session_pairs,
    session_products,
)

__all__ = [
    "STOP_WORDS",
    "ProductByolConfig",
    "ProductByolForPreTraining",
    "ProductByolForPreTrainingOutput",
    "ProductByolForSequenceClassification",
    "ProductByolModel",
    "ProductByolModelOutput",
    "ProductByolPreTrainedModel",
    "ProductByolProcessor",
    "ProductByolSequenceClassifierOutput",
    "normalize_title",
    "session_pairs",
    "session_products",
]
