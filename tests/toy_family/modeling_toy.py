"""The toy family's models: a session is the mean of its item embeddings; the next item is scored against every
item embedding. Small enough to train in a test, and shaped like the package's models (a base model, one head that
computes a loss only with labels, ``ModelOutput`` dataclasses)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers.utils import ModelOutput

from .configuration_toy import ToyConfig


@dataclass
class ToyModelOutput(ModelOutput):
    """``session_embeddings``: ``(batch, hidden)``, the mean of each session's item embeddings."""

    session_embeddings: torch.Tensor | None = None


@dataclass
class ToyNextItemOutput(ModelOutput):
    """``loss``: next-item cross-entropy (with ``labels``); ``logits``: ``(batch, num_items)`` scores, padding
    masked; ``session_embeddings``: ``(batch, hidden)``."""

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    session_embeddings: torch.Tensor | None = None


class ToyPreTrainedModel(PreTrainedModel):
    config_class = ToyConfig
    base_model_prefix = "toy"
    main_input_name = "input_ids"
    accepts_loss_kwargs = False

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, std=self.config.initializer_range)


class ToyModel(ToyPreTrainedModel):
    """Item embeddings, mean-pooled over each session's items."""

    def __init__(self, config: ToyConfig):
        super().__init__(config)
        self.item_embeddings = nn.Embedding(config.num_items, config.hidden_size, padding_idx=0)
        self.post_init()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> ToyModelOutput:
        """``input_ids`` / ``attention_mask``: ``(batch, seq_len)`` item indices and their mask."""
        mask = attention_mask.unsqueeze(-1).to(self.item_embeddings.weight.dtype)  # (B, L, 1)
        summed = (self.item_embeddings(input_ids) * mask).sum(1)  # (B, H)
        return ToyModelOutput(session_embeddings=summed / mask.sum(1).clamp(min=1.0))


class ToyForNextItemPrediction(ToyPreTrainedModel):
    """Scores every item against the session embedding; cross-entropy over the catalogue with ``labels``."""

    def __init__(self, config: ToyConfig):
        super().__init__(config)
        self.toy = ToyModel(config)
        self.post_init()

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        labels: torch.Tensor | None = None,
    ) -> ToyNextItemOutput:
        """``labels``: ``(batch,)`` target item indices (``-100``: ignored)."""
        session = self.toy(input_ids, attention_mask).session_embeddings  # (B, H)
        logits = session @ self.toy.item_embeddings.weight.T  # (B, num_items)
        logits = logits.masked_fill(torch.arange(logits.size(1), device=logits.device) == 0, float("-inf"))
        loss = None if labels is None else F.cross_entropy(logits, labels, ignore_index=-100)
        return ToyNextItemOutput(loss=loss, logits=logits, session_embeddings=session)


__all__ = [
    "ToyForNextItemPrediction",
    "ToyModel",
    "ToyModelOutput",
    "ToyNextItemOutput",
    "ToyPreTrainedModel",
]
