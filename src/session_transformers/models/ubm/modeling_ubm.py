"""UBM: a two-level Transformer over sessions of interactions (Li et al., Sec. 3.1, Figure 2).

1. **Interaction Encoder**: a BERT (``transformers.BertModel``, 4 layers of 256 by default) over the tokens of
   one interaction (``[CLS] [ACTION] text [SEP]``); its ``[CLS]`` output is the interaction embedding ``b'``. It
   runs only on the real interactions of a batch, flattened into ``(N, T)`` rows padded to the longest
   interaction of the batch (never to 32 x 64).
2. **Session Encoder**: a Transformer encoder (``torch.nn.TransformerEncoder``, 4 layers) over a session's
   interaction embeddings plus sinusoidal position embeddings; the session embedding ``h'`` is the mean of its
   outputs over the session's real interactions.

Heads: :class:`UbmForPreTraining` (the two pretraining stages: InfoNCE losses 1-2 on items, 3-4 on sessions),
:class:`UbmForPurchaseIntent` (PIP), :class:`UbmForRemainingLength` (RLP) and :class:`UbmForNextItemPrediction` (NIP:
candidates embedded as one-item sessions, dot product, softmax over the pool).

Shapes: ``N`` interactions of ``T`` tokens, ``B`` sessions of at most ``L`` interactions, ``C`` candidates,
``H`` hidden size.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn
from torch.utils.checkpoint import checkpoint
from transformers import BertModel, PreTrainedModel
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.utils import ModelOutput

from ... import losses
from ...candidate_pool import CandidatePoolCacheMixin, tensor_digest
from ...modeling_utils import StrictLoadingMixin
from .configuration_ubm import UbmConfig

# --- blocks --------------------------------------------------------------------------------------------------


def sinusoidal_positions(length: int, dim: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """``(length, dim)`` sinusoidal position embeddings (Vaswani et al. 2017): ``sin`` on even, ``cos`` on odd
    dimensions, wavelengths from ``2 pi`` to ``10000 * 2 pi``."""
    position = torch.arange(length, device=device, dtype=torch.float32)[:, None]
    rates = torch.exp(
        torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim)
    )
    out = torch.zeros(length, dim, device=device, dtype=torch.float32)
    out[:, 0::2] = torch.sin(position * rates)
    out[:, 1::2] = torch.cos(position * rates[: dim // 2])
    return out.to(dtype)


class UbmSessionEncoder(nn.Module):
    """Transformer encoder over ``(B, L, H)`` interaction embeddings plus sinusoidal positions (Sec. 3.1.3)."""

    def __init__(self, config: UbmConfig):
        super().__init__()
        act = config.hidden_act if config.hidden_act in ("gelu", "relu") else ACT2FN[config.hidden_act]
        layer = nn.TransformerEncoderLayer(
            d_model=config.hidden_size,
            nhead=config.session_num_attention_heads,
            dim_feedforward=config.session_intermediate_size,
            dropout=config.hidden_dropout_prob,
            activation=act,
            layer_norm_eps=config.layer_norm_eps,
            batch_first=True,
        )
        self.encoder = (
            nn.TransformerEncoder(layer, config.num_session_layers, enable_nested_tensor=False)
            if config.num_session_layers
            else None
        )
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.max_interactions = config.max_interactions
        self.use_positions = config.use_session_positions

    def forward(self, interactions: torch.Tensor, interaction_mask: torch.Tensor) -> torch.Tensor:
        """``interactions`` ``(B, L, H)``: each session's interaction embeddings in its ``L`` slots;
        ``interaction_mask`` ``(B, L)``: the real ones. Returns the contextual interactions ``(B, L, H)``."""
        length = interactions.shape[1]
        if length > self.max_interactions:
            raise ValueError(
                f"a session has {length} interaction slots, more than max_interactions ({self.max_interactions}); "
                "the processor keeps the last max_interactions"
            )
        hidden = interactions
        if self.use_positions:
            hidden = hidden + sinusoidal_positions(length, hidden.shape[-1], hidden.device, hidden.dtype)
        if self.encoder is not None:
            hidden = self.encoder(self.dropout(hidden), src_key_padding_mask=~interaction_mask)
        return hidden.masked_fill(~interaction_mask[..., None], 0.0)


# --- outputs -------------------------------------------------------------------------------------------------


@dataclass
class UbmModelOutput(ModelOutput):
    r"""Outputs of :class:`UbmModel`.

    Args:
        last_hidden_state: ``(B, L, H)`` Session Encoder outputs ``o'`` (zero at padding slots).
        interaction_embeddings: ``(N, H)`` the ``[CLS]`` outputs ``b'`` of the Interaction Encoder.
        session_embeddings: ``(B, H)`` mean of each session's outputs, ``h'``.
    """

    last_hidden_state: torch.Tensor | None = None
    interaction_embeddings: torch.Tensor | None = None
    session_embeddings: torch.Tensor | None = None


@dataclass
class UbmForPreTrainingOutput(ModelOutput):
    r"""Outputs of :class:`UbmForPreTraining`.

    Args:
        loss: ``()`` the sum of the active losses of the batch's stage (``None`` for a plain session batch).
        loss1, loss2: ``()`` stage 1: Item Token Masking and Next Item Pairing InfoNCE.
        loss3, loss4: ``()`` stage 2: Behaviour Reordering and Action and Item Token Masking InfoNCE.
        session_embeddings: ``(B, H)`` of the original sessions (stage 2 or a plain batch).
        interaction_embeddings: ``(N, H)`` of the original interactions, or of the 2N items (stage 1).
    """

    loss: torch.Tensor | None = None
    loss1: torch.Tensor | None = None
    loss2: torch.Tensor | None = None
    loss3: torch.Tensor | None = None
    loss4: torch.Tensor | None = None
    session_embeddings: torch.Tensor | None = None
    interaction_embeddings: torch.Tensor | None = None


@dataclass
class UbmSessionPredictionOutput(ModelOutput):
    r"""Outputs of :class:`UbmForPurchaseIntent` and :class:`UbmForRemainingLength`.

    Args:
        loss: ``()`` BCE (PIP) or MSE of the standardised length (RLP), with ``labels``.
        logits: ``(B,)`` PIP: the logit of a purchase (``sigmoid`` is the probability); RLP: the predicted
            remaining length, in interactions.
        session_embeddings: ``(B, H)``.
    """

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    session_embeddings: torch.Tensor | None = None


@dataclass
class UbmNextItemOutput(ModelOutput):
    r"""Outputs of :class:`UbmForNextItemPrediction`.

    Args:
        loss: ``()`` softmax cross-entropy of the target among the candidates, with ``labels``.
        logits: ``(B, C)`` scores of every candidate (``h' v_c``).
        session_embeddings: ``(B, H)``.
        candidate_embeddings: ``(C, H)``.
    """

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    session_embeddings: torch.Tensor | None = None
    candidate_embeddings: torch.Tensor | None = None


@dataclass(eq=False)
class UbmCandidatePool:
    r"""A fixed candidate pool of items, tokenised once (``UbmProcessor.encode_items``), that
    :class:`UbmForNextItemPrediction` embeds once per evaluation. It is not a tensor, so ``transformers.Trainer`` and
    Accelerate pass it to the model untouched. ``key`` is a digest of the tokens (copies share cached
    embeddings).

    Args:
        input_ids, attention_mask: ``(C, T)`` one row per candidate.
        item_ids: the candidates' item ids, in row order.
        chunk_size: candidates embedded at once.
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    item_ids: list[str] = field(default_factory=list)
    chunk_size: int = 512
    key: str = field(init=False)

    def __post_init__(self):
        if self.input_ids.dim() != 2 or self.input_ids.shape[0] == 0:
            raise ValueError("a candidate pool needs at least one candidate row (C, T)")
        if self.item_ids and len(self.item_ids) != self.input_ids.shape[0]:
            raise ValueError(f"{len(self.item_ids)} item ids for {self.input_ids.shape[0]} candidate rows")
        self.key = tensor_digest(self.input_ids, self.attention_mask)

    @classmethod
    def from_items(
        cls, processor, items: Sequence[Any], catalogue=None, chunk_size: int = 512
    ) -> UbmCandidatePool:
        inputs = processor.encode_items(items, catalogue)
        ids = [i if isinstance(i, str) else i["item_id"] for i in items]
        return cls(inputs["input_ids"], inputs["attention_mask"], ids, chunk_size)

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    def chunks(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """``(input_ids, attention_mask)`` of ``chunk_size`` candidates at a time, cut to the chunk's longest row."""
        for start in range(0, len(self), self.chunk_size):
            mask = self.attention_mask[start : start + self.chunk_size]
            width = max(1, int(mask.sum(1).max()))
            yield self.input_ids[start : start + self.chunk_size, :width], mask[:, :width]


# --- models --------------------------------------------------------------------------------------------------


class UbmPreTrainedModel(StrictLoadingMixin, PreTrainedModel):
    config: UbmConfig
    config_class = UbmConfig
    base_model_prefix = "ubm"
    main_input_name = "input_ids"
    # Activation checkpointing recomputes the Interaction Encoder in the backward pass, per chunk of interaction rows
    # (UbmModel.encode_interactions): nearly all of a batch's activation memory is there (every interaction x its
    # tokens); the Session Encoder's (sessions x slots) activations are small and kept.
    supports_gradient_checkpointing = True
    _no_split_modules = ["BertLayer", "TransformerEncoderLayer"]
    _supports_sdpa = True
    accepts_loss_kwargs = False

    @torch.no_grad()
    def _init_weights(self, module):
        super()._init_weights(module)
        if isinstance(module, nn.MultiheadAttention):
            if module.in_proj_weight is not None:
                init.normal_(module.in_proj_weight, mean=0.0, std=self.config.initializer_range)
            if module.in_proj_bias is not None:
                init.zeros_(module.in_proj_bias)

    def _set_gradient_checkpointing(
        self, enable: bool = True, gradient_checkpointing_func=checkpoint, every_n_layers=1
    ):
        """transformers' switch, then the Interaction Encoder's own layers back off: UbmModel checkpoints that
        encoder as a whole per chunk of rows, and a layer checkpointed inside a checkpointed chunk would be
        recomputed twice."""
        super()._set_gradient_checkpointing(enable, gradient_checkpointing_func, every_n_layers)
        for layer in self._ubm().interaction_encoder.modules():
            if hasattr(layer, "gradient_checkpointing"):
                layer.gradient_checkpointing = False

    def _ubm(self) -> UbmModel:
        return getattr(self, self.base_model_prefix, self)

    @torch.no_grad()
    def encode_sessions(self, sessions, processor, catalogue=None, batch_size: int = 64) -> np.ndarray:
        """``(B, H)`` session embeddings ``h'`` of raw sessions (package schema) as a numpy array, in eval mode."""
        ubm, was_training = self._ubm(), self.training
        self.eval()
        device = next(self.parameters()).device
        out = []
        for start in range(0, len(sessions), batch_size):
            batch = processor(list(sessions[start : start + batch_size]), catalogue)
            out.append(ubm(**{k: v.to(device) for k, v in batch.items()}).session_embeddings.float().cpu())
        self.train(was_training)
        return torch.cat(out).numpy() if out else np.zeros((0, self.config.hidden_size), np.float32)

    @torch.no_grad()
    def encode_items(self, items, processor, catalogue=None, batch_size: int = 512) -> np.ndarray:
        """``(C, H)`` embeddings of items as one-item sessions with no action token (the NIP candidates)."""
        ubm, was_training = self._ubm(), self.training
        self.eval()
        device = next(self.parameters()).device
        pool = UbmCandidatePool.from_items(processor, list(items), catalogue, chunk_size=batch_size)
        out = [ubm.embed_items(i.to(device), m.to(device)).float().cpu() for i, m in pool.chunks()]
        self.train(was_training)
        return torch.cat(out).numpy()


class UbmModel(UbmPreTrainedModel):
    """The two-level UBM encoder: Interaction Encoder (BERT) + Session Encoder (Transformer, sinusoidal positions)."""

    def __init__(self, config: UbmConfig):
        super().__init__(config)
        self.interaction_encoder = BertModel(config.interaction_encoder_config(), add_pooling_layer=False)
        self.session_encoder = UbmSessionEncoder(config)
        self.gradient_checkpointing = False  # set by activation_checkpointing_enable()
        self.post_init()

    def get_input_embeddings(self):
        return self.interaction_encoder.embeddings.word_embeddings

    def set_input_embeddings(self, value):
        self.interaction_encoder.embeddings.word_embeddings = value

    def encode_interactions(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """``(N, H)``: the Interaction Encoder's ``[CLS]`` output of every interaction row (the paper's; with
        ``config.interaction_pooling="mean"`` the mean of its token outputs instead)."""
        if input_ids.shape[0] == 0:
            raise ValueError("no interaction to encode")
        if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
            size = self.config.checkpoint_chunk_size
            return torch.cat(
                [
                    self._gradient_checkpointing_func(
                        self._pooled_interactions, input_ids[i : i + size], attention_mask[i : i + size]
                    )
                    for i in range(0, input_ids.shape[0], size)
                ]
            )
        return self._pooled_interactions(input_ids, attention_mask)

    def _pooled_interactions(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.interaction_encoder(
            input_ids=input_ids, attention_mask=attention_mask
        ).last_hidden_state
        if self.config.interaction_pooling == "mean":
            mask = attention_mask.to(hidden.dtype)[..., None]
            return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        return hidden[:, 0]

    def encode_sessions_from_interactions(
        self, interactions: torch.Tensor, interaction_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Scatter ``(N, H)`` interaction embeddings into their sessions' slots (``interaction_mask`` ``(B, L)``,
        row-major) and run the Session Encoder: ``(B, L, H)`` outputs and ``(B, H)`` their mean over real slots."""
        mask = interaction_mask.bool()
        if int(mask.sum()) != interactions.shape[0]:
            raise ValueError(
                f"interaction_mask has {int(mask.sum())} real slots but there are {interactions.shape[0]} "
                "interaction rows"
            )
        if bool((mask.sum(1) == 0).any()):
            raise ValueError(
                "every session needs at least one interaction (a row of interaction_mask is empty)"
            )
        slots = interactions.new_zeros(*mask.shape, interactions.shape[-1])
        slots[mask] = interactions
        outputs = self.session_encoder(slots, mask)
        sessions = outputs.sum(1) / mask.sum(1, keepdim=True).to(outputs.dtype)
        return outputs, sessions

    def embed_items(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """``(C, H)``: items (``[CLS] item text [SEP]`` rows) as one-interaction sessions, ``v = UBM([p])``."""
        interactions = self.encode_interactions(input_ids, attention_mask)
        ones = torch.ones(interactions.shape[0], 1, dtype=torch.bool, device=interactions.device)
        return self.encode_sessions_from_interactions(interactions, ones)[1]

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, interaction_mask: torch.Tensor, **kwargs
    ) -> UbmModelOutput:
        r"""``input_ids`` / ``attention_mask`` ``(N, T)``: every real interaction of the batch;
        ``interaction_mask`` ``(B, L)``: which slots of each session hold them (row-major)."""
        interactions = self.encode_interactions(input_ids, attention_mask)
        outputs, sessions = self.encode_sessions_from_interactions(interactions, interaction_mask)
        return UbmModelOutput(
            last_hidden_state=outputs, interaction_embeddings=interactions, session_embeddings=sessions
        )

    def load_interaction_encoder_from_bert(self, path: str | Path) -> dict[str, list[str]]:
        """Initialise the Interaction Encoder from a BERT-family checkpoint folder (or ``.safetensors`` file) on
        disk, e.g. MiniLM or BERT-mini (the paper starts from a pretrained BERT, Sec. 3.2).

        The sizes must match (build the config with :meth:`UbmConfig.from_bert_config`). Rows of the word
        embeddings past BERT's vocabulary (the added action, field and attribute tokens) start at BERT's mean
        embedding plus their own small random init; position embeddings past ``max_position_embeddings`` are
        dropped; the pooler is not used.

        Returns:
            ``{"loaded": [...], "unused": [...]}``: parameter names of the encoder and of the checkpoint.
        """
        path = Path(path)
        file = path / "model.safetensors" if path.is_dir() else path
        state = {}
        for k, v in load_file(str(file)).items():
            for prefix in ("bert.", "model."):
                k = k.removeprefix(prefix)
            state[k] = v
        own = dict(self.interaction_encoder.state_dict())
        words = "embeddings.word_embeddings.weight"
        if words not in state:
            raise ValueError(f"{file} holds no BERT embeddings ({words})")
        if state[words].shape[1] != self.config.hidden_size:
            raise ValueError(
                f"BERT hidden size {state[words].shape[1]} != UBM hidden_size {self.config.hidden_size}"
            )
        layers = 1 + max(int(k.split(".")[2]) for k in state if k.startswith("encoder.layer."))
        if layers != self.config.num_hidden_layers:
            raise ValueError(
                f"BERT has {layers} layers but num_hidden_layers is {self.config.num_hidden_layers}"
            )
        loaded, unused = [], []
        with torch.no_grad():
            for name, source in state.items():
                if name not in own:
                    unused.append(name)
                    continue
                target = own[name]
                if source.shape == target.shape:
                    target.copy_(source.to(target.dtype))
                elif source.dim() == 2 and source.shape[1] == target.shape[1]:
                    rows = min(source.shape[0], target.shape[0])
                    target[:rows].copy_(source[:rows].to(target.dtype))
                    if name == words and target.shape[0] > source.shape[0]:
                        target[rows:] += source.mean(0).to(target.dtype)
                else:
                    raise ValueError(
                        f"{name}: checkpoint shape {tuple(source.shape)} != {tuple(target.shape)}"
                    )
                loaded.append(f"interaction_encoder.{name}")
        return {"loaded": loaded, "unused": sorted(unused)}


def _contrastive(config: UbmConfig, query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
    return losses.info_nce(
        query, key, config.temperature, decoupled=config.decoupled_contrastive, gather=True
    )


class UbmForPreTraining(UbmPreTrainedModel):
    r"""The two pretraining stages (Sec. 3.2). The batch says which stage it is:

    - **stage 1** (``item_input_ids``, from :class:`UbmStage1Collator`): N item pairs, 2N rows ``p`` (items then
      next items) and their Item-Token-Masked copies ``p+``. Loss 1 (Eq. 1): InfoNCE of each of the 2N items
      against its masked copy; loss 2 (Eq. 2): InfoNCE of each item against its next item. Only the Interaction
      Encoder runs.
    - **stage 2** (``input_ids`` with ``reordered_input_ids`` / ``masked_input_ids``, from
      :class:`UbmStage2Collator`): loss 3 (Eq. 3): InfoNCE of each session ``h'`` against its reordered view;
      loss 4 (Eq. 4): against its action-and-item-token-masked view. All views go through the encoders in one
      pass (dropout differs between them: the Dropout Masking augmentation).

    In-batch negatives, cosine similarity, temperature ``config.temperature`` (0.05); under several processes
    the keys of every process are negatives (``losses.info_nce(..., gather=True)``). ``config.use_loss1``...
    switch each loss off (the paper's ablations, Table 2). A session batch without views returns embeddings.
    """

    def __init__(self, config: UbmConfig):
        super().__init__(config)
        self.ubm = UbmModel(config)
        self.post_init()

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        interaction_mask: torch.Tensor | None = None,
        reordered_input_ids: torch.Tensor | None = None,
        reordered_attention_mask: torch.Tensor | None = None,
        masked_input_ids: torch.Tensor | None = None,
        item_input_ids: torch.Tensor | None = None,
        item_attention_mask: torch.Tensor | None = None,
        masked_item_input_ids: torch.Tensor | None = None,
        **kwargs,
    ) -> UbmForPreTrainingOutput:
        r"""One pretraining step's losses, stage 1 or stage 2 by what the batch holds.

        Stage 1 (item text): ``item_input_ids`` / ``item_attention_mask`` ``(N, T)`` and ``masked_item_input_ids``
        ``(N, T)`` (the same rows, masked). Stage 2 (sessions):
        ``input_ids`` / ``attention_mask`` ``(N, T)``: the batch's ``N`` real interactions, one row each (action token
        and item text); ``interaction_mask`` ``(B, L)``: which of each session's ``L`` slots hold them, row-major.
        ``reordered_input_ids`` / ``reordered_attention_mask`` ``(N, T)``: the Behaviour Reordering view (loss 3);
        ``masked_input_ids`` ``(N, T)``: the Token Masking view (loss 4)."""
        config = self.config
        if item_input_ids is not None:
            return self._stage1(item_input_ids, item_attention_mask, masked_item_input_ids)
        if input_ids is None:
            raise ValueError(
                "UbmForPreTraining needs input_ids (stage 2 or sessions) or item_input_ids (stage 1)"
            )
        views = [(input_ids, attention_mask)]
        use3 = config.use_loss3 and reordered_input_ids is not None
        use4 = config.use_loss4 and masked_input_ids is not None
        if use3:
            views.append((reordered_input_ids, reordered_attention_mask))
        if use4:
            views.append((masked_input_ids, attention_mask))
        wanted = reordered_input_ids is not None or masked_input_ids is not None
        if wanted and not (use3 or use4):
            raise ValueError("a stage-2 batch with losses 3 and 4 both switched off has nothing to train")
        ids = torch.cat([v[0] for v in views])
        mask = torch.cat([v[1] for v in views])
        interactions = self.ubm.encode_interactions(ids, mask)
        _, sessions = self.ubm.encode_sessions_from_interactions(
            interactions, interaction_mask.bool().repeat(len(views), 1)
        )
        batch, n = interaction_mask.shape[0], input_ids.shape[0]
        original, rest = sessions[:batch], list(sessions[batch:].split(batch))
        loss3 = _contrastive(config, original, rest.pop(0)) if use3 else None
        loss4 = _contrastive(config, original, rest.pop(0)) if use4 else None
        parts = [x for x in (loss3, loss4) if x is not None]
        return UbmForPreTrainingOutput(
            loss=sum(parts) if parts else None,
            loss3=loss3,
            loss4=loss4,
            session_embeddings=original,
            interaction_embeddings=interactions[:n],
        )

    def _stage1(self, ids, mask, masked_ids) -> UbmForPreTrainingOutput:
        config = self.config
        rows = ids.shape[0]
        if rows % 2:
            raise ValueError(
                f"stage-1 item_input_ids must hold N items then their N next items, got {rows} rows"
            )
        use1 = config.use_loss1 and masked_ids is not None
        use2 = config.use_loss2
        if not (use1 or use2):
            raise ValueError(
                "a stage-1 batch with losses 1 and 2 both switched off (or no masked view) has nothing to train"
            )
        both = self.ubm.encode_interactions(
            torch.cat([ids, masked_ids]) if use1 else ids, mask.repeat(1 + use1, 1)
        )
        items = both[:rows]
        loss1 = _contrastive(config, items, both[rows:]) if use1 else None
        loss2 = _contrastive(config, items[: rows // 2], items[rows // 2 :]) if use2 else None
        return UbmForPreTrainingOutput(
            loss=sum(x for x in (loss1, loss2) if x is not None),
            loss1=loss1,
            loss2=loss2,
            interaction_embeddings=items,
        )


class UbmFeedForward(nn.Module):
    """``depth`` feed-forward layers ``H -> H`` (activation, dropout), then a linear map to ``out`` numbers."""

    def __init__(self, config: UbmConfig, depth: int, out: int = 1):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(config.hidden_size, config.hidden_size) for _ in range(depth))
        self.act = ACT2FN[config.hidden_act]
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.output = nn.Linear(config.hidden_size, out)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """``hidden`` ``(B, H)`` -> ``(B, out)``."""
        for layer in self.layers:
            hidden = self.dropout(self.act(layer(hidden)))
        return self.output(hidden)


class UbmForPurchaseIntent(UbmPreTrainedModel):
    """Purchase Intention Prediction (Sec. 3.4.1): two feed-forward layers and a linear layer on ``h'``, a sigmoid,
    binary cross-entropy. ``labels`` ``(B,)``: 1 if the session goes on to a purchase."""

    def __init__(self, config: UbmConfig):
        super().__init__(config)
        self.ubm = UbmModel(config)
        self.classifier = UbmFeedForward(config, depth=2)
        self.post_init()

    def forward(
        self, input_ids, attention_mask, interaction_mask, labels=None, **kwargs
    ) -> UbmSessionPredictionOutput:
        r"""Purchase-intent logits ``(B,)`` and the session embeddings ``(B, H)``.

        ``input_ids`` / ``attention_mask`` ``(N, T)``: the batch's ``N`` real interactions, one row each (action token
        and item text); ``interaction_mask`` ``(B, L)``: which of each session's ``L`` slots hold them, row-major.
        ``labels`` ``(B,)``, 0 or 1: the binary cross-entropy ``loss`` (a scalar)."""
        sessions = self.ubm(input_ids, attention_mask, interaction_mask).session_embeddings
        logits = self.classifier(sessions).squeeze(-1)
        loss = None
        if labels is not None:
            loss = F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))
        return UbmSessionPredictionOutput(loss=loss, logits=logits, session_embeddings=sessions)


class UbmForRemainingLength(UbmPreTrainedModel):
    """Remaining Length Prediction (Sec. 3.4.2): two feed-forward layers output one number, trained with MSE.

    The head predicts the standardised length ``(y - mean) / std`` (``config.remaining_length_mean`` / ``_std``,
    set from the training split), so that its output starts at the right scale; ``logits`` are in interactions,
    and the loss is the MSE of the standardised length (the paper's MSE divided by ``std**2``)."""

    def __init__(self, config: UbmConfig):
        super().__init__(config)
        self.ubm = UbmModel(config)
        self.regressor = UbmFeedForward(config, depth=1)
        self.post_init()

    def forward(
        self, input_ids, attention_mask, interaction_mask, labels=None, **kwargs
    ) -> UbmSessionPredictionOutput:
        r"""Remaining lengths ``(B,)`` as ``logits`` (in interactions) and the session embeddings ``(B, H)``.

        ``input_ids`` / ``attention_mask`` ``(N, T)``: the batch's ``N`` real interactions, one row each (action token
        and item text); ``interaction_mask`` ``(B, L)``: which of each session's ``L`` slots hold them, row-major.
        ``labels`` ``(B,)``: the remaining number of interactions; ``loss`` is the MSE of the standardised length."""
        config = self.config
        sessions = self.ubm(input_ids, attention_mask, interaction_mask).session_embeddings
        z = self.regressor(sessions).squeeze(-1)
        loss = None
        if labels is not None:
            target = (labels.to(z.dtype) - config.remaining_length_mean) / config.remaining_length_std
            loss = F.mse_loss(z, target)
        logits = z * config.remaining_length_std + config.remaining_length_mean
        return UbmSessionPredictionOutput(loss=loss, logits=logits, session_embeddings=sessions)


class UbmForNextItemPrediction(CandidatePoolCacheMixin, UbmPreTrainedModel):
    r"""Next Item Prediction (Sec. 3.4.3): each candidate is embedded as a one-item session with no action token,
    ``v_c = UBM([p_c])``; the score of a candidate is ``h' v_c`` (``config.next_item_similarity="dot"``, the
    paper's; ``"cosine"``: cosine / ``next_item_temperature``), and a softmax over the candidates is trained with
    cross-entropy. Because candidates are text, items never seen in training can be ranked.

    Candidates come as rows (``candidate_input_ids`` / ``candidate_attention_mask`` ``(C, T)``: training, the
    batch's targets and sampled negatives) or as a fixed :class:`UbmCandidatePool` (evaluation: embedded once,
    cached in eval mode without gradients until the weights change). ``labels`` ``(B,)``: the target's
    candidate index (``-100``: ignored).
    """

    def __init__(self, config: UbmConfig):
        super().__init__(config)
        self.ubm = UbmModel(config)
        self.post_init()

    def embed_candidate_pool(self, pool: UbmCandidatePool) -> torch.Tensor:
        """``(C, H)`` embeddings of a fixed pool (cached in eval mode without gradients, per weights version)."""
        device = next(self.parameters()).device
        return self._cached_pool_embeddings(
            pool.key,
            lambda: torch.cat([self.ubm.embed_items(i.to(device), m.to(device)) for i, m in pool.chunks()]),
        )

    def score(self, sessions: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        if self.config.next_item_similarity == "cosine":
            return (
                F.normalize(sessions, dim=-1)
                @ F.normalize(candidates, dim=-1).T
                / self.config.next_item_temperature
            )
        return sessions @ candidates.T

    def forward(
        self,
        input_ids,
        attention_mask,
        interaction_mask,
        candidate_input_ids: torch.Tensor | None = None,
        candidate_attention_mask: torch.Tensor | None = None,
        candidate_pool: UbmCandidatePool | None = None,
        labels: torch.Tensor | None = None,
        **kwargs,
    ) -> UbmNextItemOutput:
        r"""Scores ``logits`` ``(B, C)`` of ``C`` candidate items for each of ``B`` sessions.

        ``input_ids`` / ``attention_mask`` ``(N, T)``: the batch's ``N`` real interactions, one row each (action token
        and item text); ``interaction_mask`` ``(B, L)``: which of each session's ``L`` slots hold them, row-major.
        Candidates either as rows, ``candidate_input_ids`` / ``candidate_attention_mask`` ``(C, T)`` (each a one-item
        session with no action token), or as a ``candidate_pool`` (:class:`UbmCandidatePool`, embedded once and
        cached). ``labels`` ``(B,)``: the index of each session's next item among the candidates (``-100``
        ignored): softmax cross-entropy ``loss``. Without candidates only ``session_embeddings`` ``(B, H)``."""
        if candidate_input_ids is not None and candidate_pool is not None:
            raise ValueError("pass candidates as rows or as a pool, not both")
        sessions = self.ubm(input_ids, attention_mask, interaction_mask).session_embeddings
        if candidate_pool is not None:
            candidates = self.embed_candidate_pool(candidate_pool)
        elif candidate_input_ids is not None:
            candidates = self.ubm.embed_items(candidate_input_ids, candidate_attention_mask)
        else:
            if labels is not None:
                raise ValueError("labels were given without candidates")
            return UbmNextItemOutput(session_embeddings=sessions)
        logits = self.score(sessions, candidates)
        loss = None if labels is None else F.cross_entropy(logits, labels.long(), ignore_index=-100)
        return UbmNextItemOutput(
            loss=loss, logits=logits, session_embeddings=sessions, candidate_embeddings=candidates
        )

    @torch.no_grad()
    def recommend(
        self,
        sessions: Sequence[Mapping[str, Any]],
        candidates: Sequence[str | Mapping[str, Any]],
        top_k: int = 10,
        processor=None,
        catalogue=None,
        batch_size: int = 64,
    ) -> list[list[tuple[str, float]]]:
        """The ``top_k`` candidates of each session, best first, as ``(item_id, score)``.

        Args:
            sessions: raw sessions (package schema).
            candidates: the pool: item ids of ``catalogue`` or catalogue records (items never seen in training
                work: they are read as text), or a :class:`UbmCandidatePool` built once for many calls (its
                embeddings are cached while the weights do not change).
            processor: the :class:`UbmProcessor`.
            catalogue: ``item_id -> record`` for the sessions' items and the candidates.
        """
        if processor is None:
            raise ValueError("recommend needs the processor (UbmProcessor.from_pretrained(path))")
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        was_training = self.training
        self.eval()
        if isinstance(candidates, UbmCandidatePool):
            if not candidates.item_ids:
                raise ValueError(
                    "the candidate pool has no item_ids: build it with UbmCandidatePool.from_items"
                )
            pool = candidates
        else:
            pool = UbmCandidatePool.from_items(processor, list(candidates), catalogue)
        items = self.embed_candidate_pool(pool)
        device = items.device
        out: list[list[tuple[str, float]]] = []
        for start in range(0, len(sessions), batch_size):
            batch = processor(list(sessions[start : start + batch_size]), catalogue)
            h = self.ubm(**{k: v.to(device) for k, v in batch.items()}).session_embeddings
            scores, index = self.score(h, items).topk(min(top_k, len(pool)), dim=1)
            out += [
                [(pool.item_ids[i], float(s)) for i, s in zip(row_i.tolist(), row_s.tolist())]
                for row_i, row_s in zip(index, scores)
            ]
        self.train(was_training)
        return out


class UbmForNextItem(UbmForNextItemPrediction):
    """Deprecated name of :class:`UbmForNextItemPrediction` (heads are named alike across the families, as
    ``TagnnPPForNextItemPrediction``); kept for one release."""

    def __init__(self, config: UbmConfig):
        warnings.warn(
            "UbmForNextItem is renamed UbmForNextItemPrediction; the old name goes in the next release",
            FutureWarning,
            stacklevel=2,
        )
        super().__init__(config)


__all__ = [
    "UbmCandidatePool",
    "UbmForNextItem",
    "UbmForNextItemPrediction",
    "UbmForPreTraining",
    "UbmForPreTrainingOutput",
    "UbmForPurchaseIntent",
    "UbmForRemainingLength",
    "UbmModel",
    "UbmModelOutput",
    "UbmNextItemOutput",
    "UbmPreTrainedModel",
    "UbmSessionEncoder",
    "UbmSessionPredictionOutput",
    "sinusoidal_positions",
]
