"""CERES: Graph Conditioned Encoder Representations for Session Data.

Top to bottom, as in the paper (Section 3.2, Figure 2):

1. **Item Transformer Encoder** (:class:`CeresItemEncoder`): a BERT-like encoder over every text sequence of every
   item. A sequence's sentence embedding is pooled from its token outputs (``config.sentence_pooling``: by default
   the mean of its tokens; ``"first"``, the output at its ``[SEARCH]`` / ``[ATTRTYPE]`` marker, is the paper's
   description, which collapses at small scale: see :class:`CeresConfig`); a query's embedding is its sequence's,
   a product's the average of its attributes' sentence embeddings. These are the *intra-item* embeddings ``v_i``.
2. **Position-Aware Graph Neural Network** (:class:`CeresPositionAwareGNN`): learned item position embeddings are
   added to ``v_i``, then a 2-layer graph attention network over the session graph gives ``v_i^h``.
3. **Cross-Attention Transformer** (:class:`CeresCrossAttentionTransformer`): an MLP expands ``v_i^h`` into ``K``
   latent tokens; item ``i``'s **latent conditioning tokens** are the average of the latent tokens over its graph
   neighbourhood, itself included; they are put in front of each of the item's token sequences and a shallow
   Transformer runs where latent tokens attend only among themselves and item tokens attend to everything.
   Its outputs are the *inter-item* token embeddings.

Heads: :class:`CeresForPreTraining` (masked LM on the intra-item token embeddings + graph-conditioned masked LM on
the inter-item ones, summed, Figure 3) and :class:`CeresForSessionRetrieval` (Section 3.3: session embedding =
average of its item embeddings, candidates through the item encoder alone, separate linear maps, cosine
similarity, hinge loss). A fixed candidate pool (:class:`CeresCandidatePool`, what evaluation ranks every session
against) is embedded once and reused for every batch while the weights do not change.

Tensors are flat (see :class:`CeresProcessor`): ``S`` text sequences of ``T`` tokens, ``I`` items, ``B`` sessions,
``E`` graph edges, ``C`` candidates, ``K`` latent tokens, ``H`` hidden size.
"""

from __future__ import annotations

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
from torch_geometric import utils as pyg_utils
from torch_geometric.nn import GATConv
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.utils import ModelOutput

from ... import losses
from ...candidate_pool import CandidatePoolCacheMixin, tensor_digest
from ...distributed import gather_with_grad, global_mean, world_size
from ...modeling_utils import StrictLoadingMixin
from .configuration_ceres import CeresConfig

# --- small blocks --------------------------------------------------------------------------------------------


def eager_attention_forward(module, query, key, value, attention_mask, scaling, dropout=0.0, **kwargs):
    """Plain softmax attention. ``query/key/value`` ``(N, heads, L, d)``; returns ``(N, L, heads, d)``, weights."""
    weights = torch.matmul(query, key.transpose(2, 3)) * scaling
    if attention_mask is not None:
        weights = weights + attention_mask
    weights = F.dropout(F.softmax(weights, dim=-1), p=dropout, training=module.training)
    return torch.matmul(weights, value).transpose(1, 2).contiguous(), weights


def additive_mask(allowed: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``(N, Lq, Lk)`` boolean "may attend" -> ``(N, 1, Lq, Lk)`` additive mask (0 or the dtype's minimum)."""
    return torch.zeros(allowed.shape, dtype=dtype).masked_fill(~allowed, torch.finfo(dtype).min)[:, None]


def latent_attention_mask(attention_mask: torch.Tensor, num_latent: int) -> torch.Tensor:
    """The cross-attention Transformer's boolean mask ``(S, K+T, K+T)``.

    Latent conditioning tokens (the first ``K`` positions) attend only to latent tokens; item tokens attend to the
    latent tokens and to the item's non-padding tokens.
    """
    num_seq, length = attention_mask.shape
    keys = torch.cat([attention_mask.new_ones(num_seq, num_latent), attention_mask], dim=1).bool()  # (S, K+T)
    allowed = keys[:, None, :].expand(num_seq, num_latent + length, num_latent + length).clone()
    allowed[:, :num_latent, num_latent:] = False
    return allowed


def scatter_mean(values: torch.Tensor, index: torch.Tensor, size: int) -> torch.Tensor:
    """Mean of the rows of ``values`` ``(N, ...)`` grouped by ``index`` ``(N,)`` into ``(size, ...)`` (empty: 0)."""
    return pyg_utils.scatter(values, index, dim=0, dim_size=size, reduce="mean")


def pool_sentences(tokens: torch.Tensor, attention_mask: torch.Tensor, how: str) -> torch.Tensor:
    """``(S, T, H)`` token outputs -> ``(S, H)`` sentence embeddings: the first token, or the masked mean."""
    if how == "first":
        return tokens[:, 0]
    mask = attention_mask.unsqueeze(-1).to(tokens.dtype)
    return (tokens * mask).sum(1) / mask.sum(1).clamp(min=1.0)


def neighbourhood_average(latent: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
    """Average each item's latent tokens over its graph neighbourhood, itself included.

    Args:
        latent: ``(I, K, H)`` latent tokens of every item.
        edge_index: ``(2, E)`` edges ``source -> target``; the neighbours of ``i`` are the sources of edges into
            ``i``. Parallel edges (e.g. a view and a purchase of the same product) count once.

    Returns:
        ``(I, K, H)`` latent conditioning tokens.
    """
    num_items = latent.size(0)
    edge_index, _ = pyg_utils.remove_self_loops(edge_index)
    edge_index = pyg_utils.coalesce(edge_index, num_nodes=num_items)  # parallel edges count once
    edge_index, _ = pyg_utils.add_self_loops(edge_index, num_nodes=num_items)  # the item itself
    src, dst = edge_index
    return pyg_utils.scatter(latent[src], dst, dim=0, dim_size=num_items, reduce="mean")


class CeresEmbeddings(nn.Module):
    """Token + position embeddings, LayerNorm and dropout. ``(S, T)`` ids -> ``(S, T, H)``."""

    def __init__(self, config: CeresConfig):
        super().__init__()
        self.word_embeddings = nn.Embedding(
            config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id
        )
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.max_positions = config.max_position_embeddings

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        """``input_ids`` ``(S, T)`` -> ``(S, T, H)``."""
        if input_ids.size(1) > self.max_positions:
            raise ValueError(
                f"sequences have {input_ids.size(1)} tokens but max_position_embeddings is {self.max_positions}"
            )
        positions = torch.arange(input_ids.size(1), device=input_ids.device)
        hidden = self.word_embeddings(input_ids) + self.position_embeddings(positions)[None]
        return self.dropout(self.layer_norm(hidden))


class CeresSelfAttention(nn.Module):
    """Bidirectional multi-head self-attention through the ``transformers`` attention interface."""

    is_causal = False

    def __init__(self, config: CeresConfig):
        super().__init__()
        self.config = config
        self.num_heads = config.num_attention_heads
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.scaling = self.head_dim**-0.5
        self.query = nn.Linear(config.hidden_size, config.hidden_size)
        self.key = nn.Linear(config.hidden_size, config.hidden_size)
        self.value = nn.Linear(config.hidden_size, config.hidden_size)
        self.output = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """``hidden`` ``(N, L, H)``, ``attention_mask`` additive ``(N, 1, L, L)`` -> ``(N, L, H)``."""
        n, length, _ = hidden.shape
        q, k, v = (
            proj(hidden).view(n, length, self.num_heads, self.head_dim).transpose(1, 2)
            for proj in (self.query, self.key, self.value)
        )  # (N, heads, L, d)
        attention = ALL_ATTENTION_FUNCTIONS.get_interface(
            self.config._attn_implementation, eager_attention_forward
        )
        out, _ = attention(
            self,
            q,
            k,
            v,
            attention_mask,
            dropout=self.config.attention_probs_dropout_prob if self.training else 0.0,
            scaling=self.scaling,
        )
        return self.output(out.reshape(n, length, -1))


class CeresLayer(GradientCheckpointingLayer):
    """A post-LayerNorm Transformer layer (BERT's): self-attention, then the feed-forward block."""

    def __init__(self, config: CeresConfig):
        super().__init__()
        self.attention = CeresSelfAttention(config)
        self.attention_layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.intermediate = nn.Linear(config.hidden_size, config.intermediate_size)
        self.act = ACT2FN[config.hidden_act]
        self.output = nn.Linear(config.intermediate_size, config.hidden_size)
        self.output_layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """``hidden`` ``(N, L, H)``, ``attention_mask`` additive ``(N, 1, L, L)`` -> ``(N, L, H)``."""
        hidden = self.attention_layer_norm(hidden + self.dropout(self.attention(hidden, attention_mask)))
        return self.output_layer_norm(hidden + self.dropout(self.output(self.act(self.intermediate(hidden)))))


# --- the three components --------------------------------------------------------------------------------------


class CeresItemEncoder(nn.Module):
    """The Item Transformer Encoder: ``(S, T)`` token ids -> ``(S, T, H)`` intra-item token embeddings."""

    def __init__(self, config: CeresConfig):
        super().__init__()
        self.embeddings = CeresEmbeddings(config)
        self.layers = nn.ModuleList(CeresLayer(config) for _ in range(config.num_hidden_layers))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """``input_ids`` and ``attention_mask`` (1 = token) ``(S, T)`` -> ``(S, T, H)``."""
        hidden = self.embeddings(input_ids)
        allowed = attention_mask.bool()[:, None, :].expand(-1, input_ids.size(1), -1)  # (S, T, T)
        mask = additive_mask(allowed, hidden.dtype).to(hidden.device)
        for layer in self.layers:
            hidden = layer(hidden, mask)
        return hidden


class CeresPositionAwareGNN(nn.Module):
    """Position-Aware GNN (PGNN): item position embeddings added, then ``num_gnn_layers`` GAT layers.

    Edge types (``previous_query``, ``view``, ``click``, ``add_to_cart``, ``purchase``) enter the attention as
    learned edge features. ``(I, H)`` item embeddings -> ``(I, H)`` session-level item embeddings ``v^h``.
    """

    def __init__(self, config: CeresConfig):
        super().__init__()
        self.item_position_embeddings = nn.Embedding(config.max_session_items, config.hidden_size)
        self.edge_type_embeddings = nn.Embedding(config.num_edge_types, config.hidden_size)
        heads = config.gnn_num_heads
        self.layers = nn.ModuleList(
            GATConv(
                config.hidden_size,
                config.hidden_size // heads,
                heads=heads,
                edge_dim=config.hidden_size,
                dropout=config.attention_probs_dropout_prob,
            )
            for _ in range(config.num_gnn_layers)
        )
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.max_session_items = config.max_session_items
        self.num_edge_types = config.num_edge_types

    def forward(self, items, item_position, edge_index, edge_type) -> torch.Tensor:
        """``items`` ``(I, H)``, ``item_position`` ``(I,)`` (position in its session), ``edge_index`` ``(2, E)``,
        ``edge_type`` ``(E,)`` -> ``(I, H)``."""
        if item_position.numel() and int(item_position.max()) >= self.max_session_items:
            raise ValueError(
                f"item position {int(item_position.max())} is out of range: max_session_items is "
                f"{self.max_session_items} (cut sessions with the processor's max_session_items)"
            )
        if edge_type.numel() and int(edge_type.max()) >= self.num_edge_types:
            raise ValueError(f"edge type {int(edge_type.max())} >= num_edge_types ({self.num_edge_types})")
        hidden = items + self.item_position_embeddings(item_position)  # (I, H)
        edge_attr = self.edge_type_embeddings(edge_type)  # (E, H)
        for i, layer in enumerate(self.layers):
            hidden = layer(self.dropout(hidden), edge_index, edge_attr=edge_attr)
            if i < len(self.layers) - 1:
                hidden = F.elu(hidden)
        return hidden


class CeresLatentTokenMLP(nn.Module):
    """Expands each item embedding ``(I, H)`` into ``K`` latent tokens ``(I, K, H)`` with a two-layer MLP."""

    def __init__(self, config: CeresConfig):
        super().__init__()
        self.num_latent_tokens = config.num_latent_tokens
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.act = ACT2FN[config.hidden_act]
        self.expand = nn.Linear(config.hidden_size, config.num_latent_tokens * config.hidden_size)
        self.layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, items: torch.Tensor) -> torch.Tensor:
        """``items`` ``(I, H)`` -> ``(I, K, H)``."""
        latent = self.expand(self.act(self.dense(items))).view(items.size(0), self.num_latent_tokens, -1)
        return self.layer_norm(latent)


class CeresCrossAttentionTransformer(nn.Module):
    """A shallow Transformer over ``[latent conditioning tokens; item tokens]`` (Figure 4).

    ``conditioning`` ``(S, K, H)`` and ``tokens`` ``(S, T, H)`` -> ``(S, K + T, H)``.
    """

    def __init__(self, config: CeresConfig):
        super().__init__()
        self.layers = nn.ModuleList(CeresLayer(config) for _ in range(config.num_cross_attention_layers))

    def forward(self, conditioning, tokens, attention_mask) -> torch.Tensor:
        """``conditioning`` ``(S, K, H)``, ``tokens`` ``(S, T, H)``, ``attention_mask`` (1 = token) ``(S, T)`` ->
        ``(S, K + T, H)``."""
        hidden = torch.cat([conditioning, tokens], dim=1)  # (S, K+T, H)
        allowed = latent_attention_mask(attention_mask, conditioning.size(1))
        mask = additive_mask(allowed, hidden.dtype).to(hidden.device)
        for layer in self.layers:
            hidden = layer(hidden, mask)
        return hidden


# --- outputs -------------------------------------------------------------------------------------------------


@dataclass
class CeresModelOutput(ModelOutput):
    r"""Outputs of :class:`CeresModel`.

    Args:
        last_hidden_state: ``(S, T, H)`` inter-item token embeddings (cross-attention outputs, latents removed).
        item_token_embeddings: ``(S, T, H)`` intra-item token embeddings (Item Transformer Encoder).
        item_embeddings: ``(I, H)`` intra-item pooled embeddings ``v_i``.
        graph_item_embeddings: ``(I, H)`` PGNN outputs ``v_i^h`` (``v_i`` when ``use_gnn=False``).
        latent_conditioning_tokens: ``(I, K, H)`` each item's latent conditioning tokens.
        conditioned_item_embeddings: ``(I, H)`` items pooled from the inter-item token embeddings.
        session_embeddings: ``(B, H)`` average of each session's conditioned item embeddings.
    """

    last_hidden_state: torch.Tensor | None = None
    item_token_embeddings: torch.Tensor | None = None
    item_embeddings: torch.Tensor | None = None
    graph_item_embeddings: torch.Tensor | None = None
    latent_conditioning_tokens: torch.Tensor | None = None
    conditioned_item_embeddings: torch.Tensor | None = None
    session_embeddings: torch.Tensor | None = None


@dataclass
class CeresForPreTrainingOutput(ModelOutput):
    r"""Outputs of :class:`CeresForPreTraining`.

    Args:
        loss: ``()`` weighted sum of the masked LM and graph-conditioned masked LM losses (with ``labels``).
        mlm_loss: ``()`` masked LM loss on the intra-item token embeddings.
        gmlm_loss: ``()`` graph-conditioned masked LM loss on the inter-item token embeddings.
        mlm_logits: ``(S, T, V)`` without labels; ``(M, V)`` at the ``M`` labelled positions with labels.
        gmlm_logits: same shape as ``mlm_logits``, from the inter-item token embeddings.
        session_embeddings: ``(B, H)`` session embeddings of the base model.
    """

    loss: torch.Tensor | None = None
    mlm_loss: torch.Tensor | None = None
    gmlm_loss: torch.Tensor | None = None
    mlm_logits: torch.Tensor | None = None
    gmlm_logits: torch.Tensor | None = None
    session_embeddings: torch.Tensor | None = None


@dataclass
class CeresSessionRetrievalOutput(ModelOutput):
    r"""Outputs of :class:`CeresForSessionRetrieval`.

    Args:
        loss: ``()`` cosine hinge loss (with ``labels``).
        logits: ``(B, C)`` cosine similarity of each session to each candidate (``None`` without candidates).
        session_embeddings: ``(B, P)`` projected, L2-normalised session embeddings.
        candidate_embeddings: ``(C, P)`` projected, L2-normalised candidate embeddings.
    """

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    session_embeddings: torch.Tensor | None = None
    candidate_embeddings: torch.Tensor | None = None


@dataclass(eq=False)
class CeresCandidatePool:
    r"""A fixed candidate pool, tokenised once, that :class:`CeresForSessionRetrieval` embeds once per evaluation.

    Evaluation ranks every session against the same pool. An eval collator puts this object in every eval batch
    as ``candidate_pool``; it is not a tensor, so ``transformers.Trainer`` and Accelerate pass it to the model
    untouched (and a DataLoader worker sends only shared-memory handles of its tensors). The model embeds it
    chunk by chunk and, in eval mode without gradients, keeps the embeddings until its weights change
    (:meth:`CeresForSessionRetrieval.embed_candidate_pool`), so one evaluation runs the candidate encoder over
    the pool once instead of once per batch.

    Args:
        candidate_input_ids, candidate_attention_mask: ``(S_c, T_c)`` from :meth:`CeresProcessor.encode_candidates`.
        candidate_sequence_index: ``(S_c,)`` candidate of each sequence, non-decreasing (as the processor writes it).
        chunk_size: candidates embedded at once.

    ``key`` identifies the content (a digest of the three tensors): copies of one pool (e.g. made by DataLoader
    workers) share the model's cached embeddings; ``len(pool)`` is the number of candidates.
    """

    candidate_input_ids: torch.Tensor
    candidate_attention_mask: torch.Tensor
    candidate_sequence_index: torch.Tensor
    chunk_size: int = 256
    key: str = field(init=False)
    num_candidates: int = field(init=False)

    def __post_init__(self):
        index = self.candidate_sequence_index
        if index.dim() != 1 or index.numel() == 0:
            raise ValueError("a candidate pool needs at least one candidate sequence")
        if bool((index[1:] < index[:-1]).any()):
            raise ValueError("candidate_sequence_index must be non-decreasing (candidates in order)")
        if self.chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {self.chunk_size}")
        self.num_candidates = int(index.max()) + 1
        self.key = tensor_digest(self.candidate_input_ids, self.candidate_attention_mask, index)

    @classmethod
    def from_inputs(cls, inputs: Mapping[str, torch.Tensor], chunk_size: int = 256) -> CeresCandidatePool:
        """From :meth:`CeresProcessor.encode_candidates`'s output."""
        return cls(
            inputs["candidate_input_ids"],
            inputs["candidate_attention_mask"],
            inputs["candidate_sequence_index"],
            chunk_size=chunk_size,
        )

    def __len__(self) -> int:
        return self.num_candidates

    def chunks(self) -> Iterator[dict[str, torch.Tensor]]:
        """:meth:`CeresForSessionRetrieval.embed_candidates` inputs of ``chunk_size`` candidates at a time, cut to
        the chunk's longest sequence."""
        index = self.candidate_sequence_index
        for start in range(0, self.num_candidates, self.chunk_size):
            stop = min(start + self.chunk_size, self.num_candidates)
            lo, hi = (int(i) for i in torch.searchsorted(index, torch.tensor([start, stop])))
            mask = self.candidate_attention_mask[lo:hi]
            width = max(1, int(mask.sum(1).max()))
            yield {
                "candidate_input_ids": self.candidate_input_ids[lo:hi, :width],
                "candidate_attention_mask": mask[:, :width],
                "candidate_sequence_index": index[lo:hi] - start,
            }


# --- encode_sessions / encode_items (numpy, your IDs) -------------------------------------------------------

_RECORD_FIELDS = ("title", "description", "brand", "category", "attributes")


def _view_session(item_ids: Sequence[str], number: int) -> dict:
    """A list of product IDs as a session of ``view`` events (package schema)."""
    events = [
        {"action": "view", "timestamp": None, "subject": "item", "item_id": i, "query": None, "image": None}
        for i in item_ids
    ]
    return {"session_id": f"session-{number}", "events": events}


def _sessions_for_encoding(sessions: Any) -> tuple[list[dict], bool]:
    """``(sessions in the package schema, whether one session was given)``. A session is a dict with ``events``
    or a list of product IDs (read as views)."""
    if isinstance(sessions, Mapping) or (
        isinstance(sessions, Sequence) and sessions and isinstance(sessions[0], str)
    ):
        sessions, single = [sessions], True
    else:
        single = False
    out = []
    for b, session in enumerate(sessions):
        if isinstance(session, Mapping):
            if "events" not in session:
                raise ValueError(
                    f"session {b}: a session dict needs 'events' (package schema), got {sorted(session)}"
                )
            out.append(
                {"session_id": str(session.get("session_id", f"session-{b}")), "events": session["events"]}
            )
        elif isinstance(session, Sequence) and not isinstance(session, str):
            if not session:
                raise ValueError(f"session {b} is empty: a session needs at least one item")
            out.append(_view_session(list(session), b))
        else:
            raise TypeError(
                f"session {b}: expected a dict with 'events' or a list of item IDs, got {session!r}"
            )
    return out, single


def _item_specs(items: Any, catalogue: Any) -> tuple[list[dict], dict]:
    """Candidate specs and the catalogue to encode them with: an item is a product ID (looked up in
    ``catalogue``), a catalogue record (``item_id`` plus text fields: it is its own catalogue entry), or a
    candidate spec (``{"query": ...}``, ``{"attribute": ..., "value": ...}``)."""
    if catalogue is None:
        merged: dict = {}
    elif isinstance(catalogue, Mapping):
        merged = dict(catalogue)
    else:
        merged = {rec["item_id"]: rec for rec in catalogue}
    specs = []
    for n, item in enumerate(items):
        if isinstance(item, str):
            specs.append({"item_id": item})
        elif isinstance(item, Mapping) and item.get("item_id") is not None:
            if any(item.get(f) for f in _RECORD_FIELDS):
                merged[item["item_id"]] = item
            specs.append({"item_id": item["item_id"]})
        elif isinstance(item, Mapping) and (
            item.get("query") is not None or item.get("attribute") is not None
        ):
            specs.append({k: v for k, v in item.items() if v is not None})
        else:
            raise TypeError(
                f"item {n}: expected an item ID, a catalogue record or a candidate spec, got {item!r}"
            )
    missing = [s["item_id"] for s in specs if "item_id" in s and s["item_id"] not in merged]
    if missing:
        raise KeyError(
            f"items {missing[:5]} ({len(missing)} in all) are not in the catalogue: CERES encodes a product from "
            "its text, so pass catalogue=... (records or item_id -> record) or the records themselves"
        )
    return specs, merged


def _require_processor(processor, what: str):
    if processor is None:
        raise ValueError(
            f"{what}() needs the CeresProcessor: pass processor=... (AutoProcessor.from_pretrained)"
        )
    return processor


class _CeresEncodeMixin:
    """``encode_sessions`` / ``encode_items`` of every CERES model: your sessions and items -> numpy arrays.

    Subclasses say how a batch of processor outputs becomes vectors (``_session_vectors``, ``_item_vectors``).
    """

    @torch.no_grad()
    def encode_sessions(self, sessions, processor=None, catalogue=None, batch_size: int = 32) -> np.ndarray:
        """Session embeddings as a float32 numpy array: ``(B, D)`` for a list of sessions, ``(D,)`` for one.

        A session is a dict in the package schema (``{"events": [...]}``, queries and products) or a list of product
        IDs (read as ``view`` events). ``catalogue`` (records, or ``item_id -> record``) gives the products' text.
        """
        processor = _require_processor(processor, "encode_sessions")
        batch, single = _sessions_for_encoding(sessions)
        was_training = self.training
        self.eval()
        out = []
        for start in range(0, len(batch), batch_size):
            inputs = processor(batch[start : start + batch_size], catalogue).to(self.device)
            out.append(self._session_vectors(inputs).float().cpu())
        self.train(was_training)
        vectors = torch.cat(out).numpy()
        return vectors[0] if single else vectors

    @torch.no_grad()
    def _encode_item_list(self, items, processor=None, catalogue=None, batch_size: int = 64) -> np.ndarray:
        processor = _require_processor(processor, "encode_items")
        if isinstance(items, str | Mapping):
            items = [items]
        specs, merged = _item_specs(list(items), catalogue)
        was_training = self.training
        self.eval()
        out = []
        for start in range(0, len(specs), batch_size):
            inputs = processor.encode_candidates(specs[start : start + batch_size], merged).to(self.device)
            out.append(self._item_vectors(inputs).float().cpu())
        self.train(was_training)
        return torch.cat(out).numpy() if out else np.zeros((0, self.config.hidden_size), dtype=np.float32)


# --- models --------------------------------------------------------------------------------------------------


class CeresPreTrainedModel(StrictLoadingMixin, PreTrainedModel):
    config: CeresConfig
    config_class = CeresConfig
    base_model_prefix = "ceres"
    main_input_name = "input_ids"
    supports_gradient_checkpointing = True
    _no_split_modules = ["CeresLayer"]
    _supports_sdpa = True
    _supports_attention_backend = True
    accepts_loss_kwargs = False

    @torch.no_grad()
    def _init_weights(self, module):
        super()._init_weights(module)
        if isinstance(module, GATConv):
            module.reset_parameters()
        if module is getattr(self, "session_projection", None) or module is getattr(
            self, "candidate_projection", None
        ):
            # Both retrieval maps start as the same (truncated) identity: at step 0 a session and a candidate
            # compare as their encoder embeddings do, and fine-tuning moves the two maps apart from there.
            init.eye_(module.weight)
            init.zeros_(module.bias)


class CeresModel(_CeresEncodeMixin, CeresPreTrainedModel):
    """The CERES encoder: Item Transformer Encoder -> PGNN -> Cross-Attention Transformer (no loss).

    With your own data: ``encode_sessions(sessions, processor=..., catalogue=...)`` (the average of a session's
    graph-conditioned item embeddings) and ``encode_items(item_ids or records, processor=..., catalogue=...)``
    (the item encoder's pooled embeddings, the same space), both numpy.
    """

    def __init__(self, config: CeresConfig):
        super().__init__(config)
        self.item_encoder = CeresItemEncoder(config)
        self.pgnn = CeresPositionAwareGNN(config) if config.use_gnn else None
        self.latent_mlp = CeresLatentTokenMLP(config)
        self.cross_attention = CeresCrossAttentionTransformer(config)
        self.post_init()

    def get_input_embeddings(self):
        return self.item_encoder.embeddings.word_embeddings

    def set_input_embeddings(self, value):
        self.item_encoder.embeddings.word_embeddings = value

    def encode_items(
        self,
        input_ids,
        attention_mask=None,
        sequence_item_index=None,
        num_items: int | None = None,
        *,
        processor=None,
        catalogue=None,
        batch_size: int = 64,
    ):
        """Item Transformer Encoder alone: ``(S, T, H)`` token embeddings and ``(I, H)`` pooled item embeddings.

        A sequence's embedding is pooled by ``config.sentence_pooling`` (default: the mean of its tokens;
        ``"first"``: its ``[SEARCH]`` or ``[ATTRTYPE]`` marker's output); an item's is the average over its sequences.

        Given item IDs, catalogue records or candidate specs instead of tensors (``encode_items(["item-000017"],
        processor=processor, catalogue=records)``), returns their pooled embeddings as a ``(N, H)`` float32 numpy
        array.
        """
        if not isinstance(input_ids, torch.Tensor):
            return self._encode_item_list(input_ids, processor, catalogue, batch_size)
        tokens = self.item_encoder(input_ids, attention_mask)  # (S, T, H)
        num_items = int(sequence_item_index.max()) + 1 if num_items is None else num_items
        sentences = pool_sentences(tokens, attention_mask, self.config.sentence_pooling)
        return tokens, scatter_mean(sentences, sequence_item_index, num_items)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        sequence_item_index: torch.Tensor,
        item_session_index: torch.Tensor,
        item_position: torch.Tensor,
        edge_index: torch.Tensor,
        edge_type: torch.Tensor,
    ) -> CeresModelOutput:
        r"""Encode a batch of sessions (inputs as produced by :class:`CeresProcessor`).

        Args:
            input_ids, attention_mask: ``(S, T)`` every text sequence of every item.
            sequence_item_index: ``(S,)`` item of each sequence.
            item_session_index: ``(I,)`` session of each item.
            item_position: ``(I,)`` order of each item in its session.
            edge_index: ``(2, E)`` batched session graph edges ``source -> target``.
            edge_type: ``(E,)`` relation of each edge.
        """
        num_items = item_session_index.numel()
        tokens, items = self.encode_items(input_ids, attention_mask, sequence_item_index, num_items)
        if self.pgnn is not None:
            graph_items = self.pgnn(items, item_position, edge_index, edge_type)  # (I, H)
            conditioning = neighbourhood_average(self.latent_mlp(graph_items), edge_index)  # (I, K, H)
        else:  # "CERES w/o GNN": item embeddings become latent tokens directly, no neighbourhood aggregation
            graph_items = items
            conditioning = self.latent_mlp(items)
        k = conditioning.size(1)
        hidden = self.cross_attention(
            conditioning[sequence_item_index], tokens, attention_mask
        )  # (S, K+T, H)
        conditioned_tokens = hidden[:, k:]
        conditioned_items = scatter_mean(
            pool_sentences(conditioned_tokens, attention_mask, self.config.sentence_pooling),
            sequence_item_index,
            num_items,
        )
        num_sessions = int(item_session_index.max()) + 1
        return CeresModelOutput(
            last_hidden_state=conditioned_tokens,
            item_token_embeddings=tokens,
            item_embeddings=items,
            graph_item_embeddings=graph_items,
            latent_conditioning_tokens=conditioning,
            conditioned_item_embeddings=conditioned_items,
            session_embeddings=scatter_mean(conditioned_items, item_session_index, num_sessions),
        )

    def _session_vectors(self, inputs) -> torch.Tensor:
        return self(**inputs).session_embeddings

    def _item_vectors(self, inputs) -> torch.Tensor:
        _, items = self.encode_items(
            inputs["candidate_input_ids"],
            inputs["candidate_attention_mask"],
            inputs["candidate_sequence_index"],
            int(inputs["candidate_sequence_index"].max()) + 1,
        )
        return items

    def load_item_encoder_from_bert(self, path: str | Path) -> dict[str, list[str]]:
        """Initialise the Item Transformer Encoder from a BERT-family checkpoint folder (or ``.safetensors`` file).

        BERT's ``token_type_embeddings[0]`` is folded into the position embeddings (CERES has one segment), so the
        item encoder reproduces BERT's ``last_hidden_state``. A vocabulary larger than BERT's (added ``[SEARCH]``
        and ``[ATTRTYPE]`` tokens) moves its extra rows to BERT's mean embedding (plus their random init).

        Returns:
            ``{"loaded": [...], "unused": [...]}`` parameter names of this model and of the checkpoint.
        """
        path = Path(path)
        file = path / "model.safetensors" if path.is_dir() else path
        state = {k.removeprefix("bert.").removeprefix("model."): v for k, v in load_file(str(file)).items()}
        own = dict(self.item_encoder.named_parameters())
        mapping = _bert_name_map(self.config.num_hidden_layers)
        if state["embeddings.word_embeddings.weight"].shape[1] != self.config.hidden_size:
            raise ValueError(
                f"BERT hidden size {state['embeddings.word_embeddings.weight'].shape[1]} != CERES hidden_size "
                f"{self.config.hidden_size}"
            )
        bert_layers = 1 + max(int(k.split(".")[2]) for k in state if k.startswith("encoder.layer."))
        if bert_layers != self.config.num_hidden_layers:
            raise ValueError(
                f"BERT has {bert_layers} layers but num_hidden_layers is {self.config.num_hidden_layers}"
            )
        positions = state["embeddings.position_embeddings.weight"].clone()
        if "embeddings.token_type_embeddings.weight" in state:
            positions += state["embeddings.token_type_embeddings.weight"][0]
        state["embeddings.position_embeddings.weight"] = positions
        loaded = []
        with torch.no_grad():
            for bert_name, name in mapping.items():
                source, target = state[bert_name], own[name]
                rows = min(source.shape[0], target.shape[0])
                target[:rows].copy_(source[:rows].to(target.dtype))
                loaded.append(f"item_encoder.{name}")
        bert_vocab = state["embeddings.word_embeddings.weight"].shape[0]
        if bert_vocab < self.config.vocab_size:
            # Added tokens ([SEARCH], [ATTRTYPE]...) start at BERT's mean embedding plus their own small random
            # init (as resize_token_embeddings(mean_resizing=True) does), not as outliers the encoder never saw.
            with torch.no_grad():
                words = self.item_encoder.embeddings.word_embeddings.weight
                words[bert_vocab:] += words[:bert_vocab].mean(0)
        elif bert_vocab > self.config.vocab_size:
            warnings.warn(
                f"BERT vocabulary {bert_vocab} > CERES vocab_size {self.config.vocab_size}: rows past "
                f"{self.config.vocab_size} were dropped",
                stacklevel=2,
            )
        unused = sorted(set(state) - set(mapping) - {"embeddings.token_type_embeddings.weight"})
        return {"loaded": loaded, "unused": unused}


def _bert_name_map(num_layers: int) -> dict[str, str]:
    """BERT parameter name -> CERES item-encoder parameter name."""
    names = {
        "embeddings.word_embeddings.weight": "embeddings.word_embeddings.weight",
        "embeddings.position_embeddings.weight": "embeddings.position_embeddings.weight",
        "embeddings.LayerNorm.weight": "embeddings.layer_norm.weight",
        "embeddings.LayerNorm.bias": "embeddings.layer_norm.bias",
    }
    blocks = {
        "attention.self.query": "attention.query",
        "attention.self.key": "attention.key",
        "attention.self.value": "attention.value",
        "attention.output.dense": "attention.output",
        "attention.output.LayerNorm": "attention_layer_norm",
        "intermediate.dense": "intermediate",
        "output.dense": "output",
        "output.LayerNorm": "output_layer_norm",
    }
    for n in range(num_layers):
        for bert, ours in blocks.items():
            for p in ("weight", "bias"):
                names[f"encoder.layer.{n}.{bert}.{p}"] = f"layers.{n}.{ours}.{p}"
    return names


class CeresLMHead(nn.Module):
    """BERT's masked LM head: dense + activation + LayerNorm, then a decoder tied to the token embeddings."""

    def __init__(self, config: CeresConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.act = ACT2FN[config.hidden_act]
        self.layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.decoder = nn.Linear(config.hidden_size, config.vocab_size)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """``hidden`` ``(..., H)`` -> logits ``(..., V)``."""
        return self.decoder(self.layer_norm(self.act(self.dense(hidden))))


def _masked_lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the masked tokens. Under several processes (training), the mean is over the masked
    tokens of every process (:func:`~session_transformers.distributed.global_mean`): their number differs from
    process to process, and the data-parallel average of per-process means would weigh tokens unequally."""
    if world_size() > 1 and torch.is_grad_enabled():
        return global_mean(F.cross_entropy(logits.float(), labels, reduction="sum"), labels.numel())
    if labels.numel() == 0:  # nothing masked in this batch: a zero that keeps the graph
        return logits.sum() * 0.0
    return F.cross_entropy(logits.float(), labels)


class CeresForPreTraining(_CeresEncodeMixin, CeresPreTrainedModel):
    """CERES pretraining (Figure 3): masked LM on the intra-item token embeddings plus graph-conditioned masked LM
    on the inter-item token embeddings, summed. One LM head, tied to the token embeddings, serves both."""

    _tied_weights_keys = {"lm_head.decoder.weight": "ceres.item_encoder.embeddings.word_embeddings.weight"}

    def __init__(self, config: CeresConfig):
        super().__init__(config)
        self.ceres = CeresModel(config)
        self.lm_head = CeresLMHead(config)
        self.post_init()

    def get_output_embeddings(self):
        return self.lm_head.decoder

    def encode_items(self, items, processor=None, catalogue=None, batch_size: int = 64):
        """The encoder's item embeddings, numpy ``(N, H)`` (see :meth:`CeresModel.encode_items`)."""
        return self._encode_item_list(items, processor, catalogue, batch_size)

    def _session_vectors(self, inputs) -> torch.Tensor:
        return self.ceres._session_vectors(inputs)

    def _item_vectors(self, inputs) -> torch.Tensor:
        return self.ceres._item_vectors(inputs)

    def set_output_embeddings(self, value):
        self.lm_head.decoder = value

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        sequence_item_index: torch.Tensor,
        item_session_index: torch.Tensor,
        item_position: torch.Tensor,
        edge_index: torch.Tensor,
        edge_type: torch.Tensor,
        labels: torch.Tensor | None = None,
    ) -> CeresForPreTrainingOutput:
        r"""Inputs as :meth:`CeresModel.forward`; ``labels`` ``(S, T)``: original ids at masked tokens, -100 elsewhere
        (from :class:`CeresMaskingCollator`)."""
        out = self.ceres(
            input_ids,
            attention_mask,
            sequence_item_index,
            item_session_index,
            item_position,
            edge_index,
            edge_type,
        )
        intra, inter = out.item_token_embeddings, out.last_hidden_state
        if labels is None:
            return CeresForPreTrainingOutput(
                mlm_logits=self.lm_head(intra),
                gmlm_logits=self.lm_head(inter),
                session_embeddings=out.session_embeddings,
            )
        masked = labels != -100  # (S, T)
        mlm_logits, gmlm_logits = self.lm_head(intra[masked]), self.lm_head(inter[masked])  # (M, V)
        mlm_loss = _masked_lm_loss(mlm_logits, labels[masked])
        gmlm_loss = _masked_lm_loss(gmlm_logits, labels[masked])
        loss = self.config.mlm_loss_weight * mlm_loss + self.config.gmlm_loss_weight * gmlm_loss
        return CeresForPreTrainingOutput(
            loss=loss,
            mlm_loss=mlm_loss,
            gmlm_loss=gmlm_loss,
            mlm_logits=mlm_logits,
            gmlm_logits=gmlm_logits,
            session_embeddings=out.session_embeddings,
        )


class CeresForSessionRetrieval(CandidatePoolCacheMixin, _CeresEncodeMixin, CeresPreTrainedModel):
    """Session-to-item retrieval (Section 3.3): product search, query search, entity linking.

    The session embedding is the average of the session's item embeddings: graph-conditioned ones
    (``retrieval_use_conditioning=True``, the paper's CERES) or the item encoder's alone ("CERES w/o Cond").
    Candidates (products, queries or entities) go through the item encoder alone. Separate linear maps project
    sessions and candidates; relevance is their cosine similarity, trained with a hinge loss (margin
    ``config.retrieval_margin``) where every other candidate of the batch (in-batch and given negatives) is a
    negative. Under several processes, a training batch's candidates are gathered from every process
    (:func:`~session_transformers.distributed.gather_with_grad`) and the loss is the mean over the global batch's
    (pair, negative) terms, so P processes with B sessions train as one process with the P * B sessions (a
    candidate of two processes' batches then appears twice, as when two batches are concatenated).

    Candidates come as inputs (``candidate_input_ids``...: training batches), as precomputed
    ``candidate_embeddings``, or as a fixed :class:`CeresCandidatePool` (evaluation), whose embeddings are cached
    in eval mode without gradients and recomputed once the weights change (see :meth:`embed_candidate_pool`).
    The cache is a plain attribute: not in ``state_dict``, never saved, dropped when the model is pickled or
    copied and on every ``train()`` / ``eval()`` call.
    """

    def __init__(self, config: CeresConfig):
        super().__init__(config)
        self.ceres = CeresModel(config)
        self.session_projection = nn.Linear(config.hidden_size, config.retrieval_projection_size)
        self.candidate_projection = nn.Linear(config.hidden_size, config.retrieval_projection_size)
        self.post_init()

    def encode_items(self, items, processor=None, catalogue=None, batch_size: int = 64):
        """Projected, L2-normalised candidate embeddings, numpy ``(N, P)``: products (IDs or records), queries or
        entities; a session embedding from :meth:`encode_sessions` ranks them by inner product (cosine)."""
        return self._encode_item_list(items, processor, catalogue, batch_size)

    def _session_vectors(self, inputs) -> torch.Tensor:
        return self.embed_sessions(**inputs)

    def _item_vectors(self, inputs) -> torch.Tensor:
        return self.embed_candidates(**inputs)

    def embed_candidate_pool(self, pool: CeresCandidatePool) -> torch.Tensor:
        """``(C, P)`` embeddings of a fixed pool, ``pool.chunk_size`` candidates at a time.

        In eval mode without gradients (an evaluation loop) the result is cached, keyed on the pool's content and
        on the weights' version, so every batch of one evaluation reuses it; any weight change, or a
        ``train()`` / ``eval()`` call, makes the next call embed the pool again. In training mode or with
        gradients enabled nothing is cached.
        """
        device = self.candidate_projection.weight.device
        return self._cached_pool_embeddings(
            pool.key,
            lambda: torch.cat(
                [
                    self.embed_candidates(**{k: v.to(device) for k, v in chunk.items()})
                    for chunk in pool.chunks()
                ]
            ),
        )

    def embed_sessions(
        self,
        input_ids,
        attention_mask,
        sequence_item_index,
        item_session_index,
        item_position,
        edge_index,
        edge_type,
    ) -> torch.Tensor:
        """``(B, P)`` projected, L2-normalised session embeddings."""
        if self.config.retrieval_use_conditioning:
            sessions = self.ceres(
                input_ids,
                attention_mask,
                sequence_item_index,
                item_session_index,
                item_position,
                edge_index,
                edge_type,
            ).session_embeddings
        else:
            _, items = self.ceres.encode_items(
                input_ids, attention_mask, sequence_item_index, item_session_index.numel()
            )
            sessions = scatter_mean(items, item_session_index, int(item_session_index.max()) + 1)
        return F.normalize(self.session_projection(sessions), dim=-1)

    def embed_candidates(self, candidate_input_ids, candidate_attention_mask, candidate_sequence_index):
        """``(C, P)`` projected, L2-normalised candidate embeddings (item encoder alone)."""
        _, items = self.ceres.encode_items(
            candidate_input_ids, candidate_attention_mask, candidate_sequence_index
        )
        return F.normalize(self.candidate_projection(items), dim=-1)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        sequence_item_index: torch.Tensor,
        item_session_index: torch.Tensor,
        item_position: torch.Tensor,
        edge_index: torch.Tensor,
        edge_type: torch.Tensor,
        candidate_input_ids: torch.Tensor | None = None,
        candidate_attention_mask: torch.Tensor | None = None,
        candidate_sequence_index: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        candidate_embeddings: torch.Tensor | None = None,
        candidate_pool: CeresCandidatePool | None = None,
    ) -> CeresSessionRetrievalOutput:
        r"""Session inputs as :meth:`CeresModel.forward`; ``labels`` ``(B, C)``: 1 where candidate ``c`` is relevant
        (see :func:`retrieval_hinge_loss` for graded labels).

        Candidates, one of: ``candidate_input_ids`` / ``candidate_attention_mask`` ``(S_c, T_c)`` with their
        ``candidate_sequence_index`` ``(S_c,)``; ``candidate_embeddings`` ``(C, P)`` already projected and
        normalised (:meth:`embed_candidates`); or a fixed ``candidate_pool`` (:class:`CeresCandidatePool`),
        embedded once per evaluation (:meth:`embed_candidate_pool`).
        """
        given = [
            name
            for name, value in (
                ("candidate_input_ids", candidate_input_ids),
                ("candidate_embeddings", candidate_embeddings),
                ("candidate_pool", candidate_pool),
            )
            if value is not None
        ]
        if len(given) > 1:
            raise ValueError(f"pass candidates one way, got {' and '.join(given)}")
        sessions = self.embed_sessions(
            input_ids,
            attention_mask,
            sequence_item_index,
            item_session_index,
            item_position,
            edge_index,
            edge_type,
        )
        if not given:
            if labels is not None:
                raise ValueError("labels were given without candidates")
            return CeresSessionRetrievalOutput(session_embeddings=sessions)
        if candidate_pool is not None:
            candidates = self.embed_candidate_pool(candidate_pool)
        elif candidate_embeddings is not None:
            candidates = candidate_embeddings.to(sessions)
        else:
            candidates = self.embed_candidates(
                candidate_input_ids, candidate_attention_mask, candidate_sequence_index
            )
        logits = sessions @ candidates.T  # (B, C) cosine similarity
        loss = None
        if labels is not None:
            loss = retrieval_hinge_loss(
                sessions,
                candidates,
                labels,
                margin=self.config.retrieval_margin,
                gather=candidate_input_ids is not None,  # in-batch candidates: every process's are negatives
            )
        return CeresSessionRetrievalOutput(
            loss=loss, logits=logits, session_embeddings=sessions, candidate_embeddings=candidates
        )


def retrieval_hinge_loss(
    sessions: torch.Tensor,
    candidates: torch.Tensor,
    labels: torch.Tensor,
    margin: float,
    *,
    gather: bool = False,
) -> torch.Tensor:
    """The shared cosine hinge loss over a batch with (possibly several) relevant candidates per session.

    Every (session ``b``, relevant ``c``) pair is an anchor/positive row; its negatives are the candidates not
    relevant to ``b`` (the other sessions' targets and the given negatives). Mean over (pair, negative). A label
    of 1 (or more) is relevant, 0 (or less) a negative; a label between 0 and 1 (a partly relevant candidate of a
    graded evaluation, e.g. Home Depot's judged products below grade 2.5) is neither.
    ``sessions`` ``(B, P)``, ``candidates`` ``(C, P)``, ``labels`` ``(B, C)``; ``margin``: the model passes its
    ``config.retrieval_margin``. ``gather``: under several processes (training), every process's candidates are
    negatives and the mean runs over the (pair, negative) terms of every process
    (:func:`~session_transformers.distributed.global_mean`); one process: no effect.
    """
    distributed = gather and world_size() > 1 and torch.is_grad_enabled()
    if distributed:
        local = labels.shape[1]
        candidates, offset = gather_with_grad(candidates)  # (sum_p C_p, P); ours at offset
        labels = F.pad(labels, (offset, candidates.shape[0] - offset - local))  # others' are negatives
    row, col = torch.nonzero(labels >= 1, as_tuple=True)  # (R,) relevant pairs
    per_pair = losses.cosine_hinge_loss(
        sessions[row], candidates[col], candidates, margin=margin, reduction="none"
    )  # (R, C)
    negative = labels[row] <= 0
    if distributed:
        return global_mean((per_pair * negative).sum(), negative.sum())
    return (per_pair * negative).sum() / negative.sum().clamp(min=1)


__all__ = [
    "CeresCandidatePool",
    "CeresCrossAttentionTransformer",
    "CeresForPreTraining",
    "CeresForPreTrainingOutput",
    "CeresForSessionRetrieval",
    "CeresItemEncoder",
    "CeresLatentTokenMLP",
    "CeresModel",
    "CeresModelOutput",
    "CeresPositionAwareGNN",
    "CeresPreTrainedModel",
    "CeresSessionRetrievalOutput",
    "latent_attention_mask",
    "neighbourhood_average",
    "pool_sentences",
    "retrieval_hinge_loss",
]
