"""session_transformers: pretrained models of e-commerce user sessions for the Hugging Face ecosystem.

``import session_transformers`` registers every model with the ``transformers`` Auto classes; after it,
``AutoModel.from_pretrained(path)`` and ``AutoProcessor.from_pretrained(path)`` load our checkpoints. The model
families are the descriptors ``models/<family>/family.py`` that :func:`.families.discover` finds;
:func:`register_family` adds one from outside the package.
"""

from . import losses, metrics
from .auto import (
    MODEL_TABLE,
    AutoModelForClickPrediction,
    AutoModelForNextItemPrediction,
    AutoModelForPurchaseIntent,
    AutoModelForQuerySuggestion,
    AutoModelForRemainingLength,
    AutoModelForSessionRetrieval,
    register_all,
)
from .data.io import load_catalogue, load_sessions, write_catalogue, write_sessions
from .data.schema import (
    CATALOGUE_FEATURES,
    DEFAULT_ACTIONS,
    SESSION_FEATURES,
    InvalidRecordError,
    SchemaSpec,
    ValidationReport,
)
from .families import ModelFamily, register_family

register_all()

from .pipelines import register_pipelines  # noqa: E402  (after the Auto classes: the pipelines load through them)

register_pipelines()

__version__ = "0.1.0"

__all__ = [
    "CATALOGUE_FEATURES",
    "DEFAULT_ACTIONS",
    "MODEL_TABLE",
    "SESSION_FEATURES",
    "AutoModelForClickPrediction",
    "AutoModelForNextItemPrediction",
    "AutoModelForPurchaseIntent",
    "AutoModelForQuerySuggestion",
    "AutoModelForRemainingLength",
    "AutoModelForSessionRetrieval",
    "InvalidRecordError",
    "ModelFamily",
    "SchemaSpec",
    "ValidationReport",
    "load_catalogue",
    "load_sessions",
    "losses",
    "metrics",
    "register_all",
    "register_family",
    "write_catalogue",
    "write_sessions",
]
