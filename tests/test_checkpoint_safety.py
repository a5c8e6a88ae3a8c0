"""Corrupt or hostile checkpoints are refused with a clear error; nothing loads with silently random weights."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModel, AutoProcessor

import session_transformers  # noqa: F401  (registers the Auto classes)
from session_transformers.modeling_utils import CheckpointError
from session_transformers.models.ceres import CeresConfig, CeresModel
from session_transformers.models.tagnn_pp import (
    TagnnPPConfig,
    TagnnPPForNextItemPrediction,
    TagnnPPModel,
    TagnnPPProcessor,
)


def _tagnn(path, cls=TagnnPPForNextItemPrediction):
    torch.manual_seed(0)
    model = cls(TagnnPPConfig(num_items=20, hidden_size=8, num_attention_heads=2))
    model.save_pretrained(path)
    TagnnPPProcessor(item_vocab=[f"i{k}" for k in range(20)]).save_pretrained(path)
    return model


def test_intact_checkpoint_loads_exactly(tmp_path):
    model = _tagnn(tmp_path)
    loaded = TagnnPPForNextItemPrediction.from_pretrained(tmp_path)
    for (name, a), b in zip(model.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), name


def test_truncated_weights_are_refused(tmp_path):
    _tagnn(tmp_path)
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="model.safetensors|cannot load"):
        TagnnPPForNextItemPrediction.from_pretrained(tmp_path)


def test_tampered_header_is_refused(tmp_path):
    _tagnn(tmp_path)
    weights = tmp_path / "model.safetensors"
    raw = bytearray(weights.read_bytes())
    raw[8:16] = b"\xff" * 8  # the JSON header no longer parses
    weights.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match=str(tmp_path)):
        AutoModel.from_pretrained(tmp_path)


def test_missing_weight_is_an_error_not_a_random_init(tmp_path):
    _tagnn(tmp_path)
    weights = tmp_path / "model.safetensors"
    tensors = load_file(weights)
    dropped = sorted(tensors)[0]
    del tensors[dropped]
    save_file(tensors, weights, metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match="missing"):
        TagnnPPForNextItemPrediction.from_pretrained(tmp_path)
    # Deliberate surgery stays possible.
    TagnnPPForNextItemPrediction.from_pretrained(tmp_path, strict=False)


def test_config_sizes_disagreeing_with_weights_are_refused(tmp_path):
    _tagnn(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["num_items"] = 25
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="shape|size"):
        TagnnPPForNextItemPrediction.from_pretrained(tmp_path)


def test_checkpoint_of_another_model_type_is_refused(tmp_path):
    _tagnn(tmp_path)
    with pytest.raises(CheckpointError, match="'tagnn_pp' checkpoint cannot be loaded as CeresModel"):
        CeresModel.from_pretrained(tmp_path)
    ceres_dir = tmp_path / "ceres"
    CeresModel(
        CeresConfig(
            vocab_size=50,
            hidden_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=32,
            num_cross_attention_layers=1,
            retrieval_projection_size=16,
        )
    ).save_pretrained(ceres_dir)
    with pytest.raises(CheckpointError, match="'ceres' checkpoint"):
        TagnnPPModel.from_pretrained(ceres_dir)


def test_new_head_on_a_pretrained_base_needs_the_whole_base(tmp_path):
    base = _tagnn(tmp_path, cls=TagnnPPModel)
    head = TagnnPPForNextItemPrediction.from_pretrained(tmp_path)  # a head on the pretrained encoder: fine
    assert torch.equal(
        head.tagnn_pp.state_dict()[next(iter(base.state_dict()))], next(iter(base.state_dict().values()))
    )
    tensors = load_file(tmp_path / "model.safetensors")
    del tensors[sorted(tensors)[-1]]
    save_file(tensors, tmp_path / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match="missing"):
        TagnnPPForNextItemPrediction.from_pretrained(tmp_path)


def test_processor_folder_without_or_with_an_edited_vocabulary(tmp_path):
    _tagnn(tmp_path)
    config = json.loads((tmp_path / "processor_config.json").read_text())
    vocab_key = next(k for k, v in config.items() if isinstance(v, list) and v and v[0] == "i0")
    config[vocab_key] = config[vocab_key][:-1] + ["i0"]  # a duplicated ID
    (tmp_path / "processor_config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="duplicate"):
        AutoProcessor.from_pretrained(tmp_path)
    (tmp_path / "processor_config.json").unlink()
    with pytest.raises((OSError, ValueError)):
        AutoProcessor.from_pretrained(tmp_path)
