"""The configs' value checks (``session_transformers.configuration_utils``): every family's config refuses an
impossible value with an error naming the field and the value."""

import pytest

from session_transformers.data.synthetic import SyntheticStoreConfig
from session_transformers.models.ceres import CeresConfig
from session_transformers.models.muvcog import MuvcogConfig
from session_transformers.models.product_byol import ProductByolConfig
from session_transformers.models.tagnn_pp import TagnnPPConfig
from session_transformers.models.ubm import UbmConfig

CASES = [
    (CeresConfig, {"num_latent_tokens": 0}, r"num_latent_tokens must be >= 1, got 0"),
    (
        CeresConfig,
        {"hidden_size": 48, "gnn_num_heads": 5},
        r"hidden_size \(48\) must be a multiple of gnn_num_heads",
    ),
    (CeresConfig, {"mlm_probability": 1.5}, r"mlm_probability must be in \[0, 1\], got 1.5"),
    (
        CeresConfig,
        {"sentence_pooling": "max"},
        r"sentence_pooling must be one of \('first', 'mean'\), got 'max'",
    ),
    (
        CeresConfig,
        {"vocab_size": 10, "pad_token_id": 10},
        r"pad_token_id \(10\) must be in \[0, vocab_size=10\)",
    ),
    (UbmConfig, {"num_session_layers": -1}, r"num_session_layers must be >= 0, got -1"),
    (UbmConfig, {"interaction_pooling": "max"}, r"interaction_pooling must be one of"),
    (ProductByolConfig, {"encoder_dropout": 1.0}, r"encoder_dropout must be in \[0, 1\), got 1.0"),
    (MuvcogConfig, {"views": "three"}, r"views must be one of"),
    (
        TagnnPPConfig,
        {"hidden_size": 10, "num_attention_heads": 3},
        r"hidden_size \(10\) must be a multiple of",
    ),
    (TagnnPPConfig, {"score_chunk_size": 0}, r"score_chunk_size must be >= 1, got 0"),
]


@pytest.mark.parametrize(
    ("config", "values", "message"), CASES, ids=[f"{c.__name__}-{next(iter(v))}" for c, v, _ in CASES]
)
def test_configs_name_the_bad_field(config, values, message):
    with pytest.raises(ValueError, match=message):
        config(**values)


def test_store_config_names_the_bad_field():
    with pytest.raises(ValueError, match=r"image_dim must be >= 4, got 2"):
        SyntheticStoreConfig(image_dim=2).validate()
