"""MUVCOG: a multi-view contrastive heterogeneous GNN over multi-modal multi-query search sessions.

Top to bottom, as in the paper (``../papers/muvcog.txt``, Sec. 3, Figure 3):

1. **Node inputs** (Sec. 3.2): ``KQ`` and ``PQ`` word nodes take their (pretrained, 50-d) word vectors; ``IQ``
   image nodes their image vector projected into the word space, ``v_i = sigma(W^e v~_i + b)``.
2. **Attentive global view** (:class:`MuvcogAGVEncoder`, Eqs. 1-5): for every node and every node type ``p``, a
   GAT-style attention over its neighbours of type ``p`` (co-occur and refine edges together; one
   ``torch_geometric`` ``GATConv`` per ``(p, node type)`` pair, Eqs. 1-2), then a semantic attention over the
   three types (Eqs. 3-4, HAN-style: ``beta^p`` = softmax over ``p`` of the session's mean of
   ``q^T tanh(W^g v_i^p + b^g)``), then the mean over the session's nodes (Eq. 5).
3. **Hierarchical local view** (:class:`MuvcogHLVEncoder`, Eqs. 6-8): ``h_i = W^b v_i``; a ``GCNConv`` from each
   query's words and images to its virtual ``VQ`` node (zero-initialised, Eq. 6), a ``GCNConv`` across the ``VQ``
   nodes along the refine chain (Eq. 7), the mean over the ``VQ`` nodes (Eq. 8).
4. **Multi-view contrast** (:class:`MuvcogForPreTraining`, Sec. 3.4, Eq. 9): a discriminator MLP ``[64, 32, 1]``
   on concatenated session embeddings scores (anchor in one view, positive in the other) against (anchor,
   negative); the positive is the session with one query masked, the hard negative the batch session with no
   clicked item in common with the anchor that the discriminator scores highest, chosen across every process.

Downstream heads on frozen session features (Sec. 4): :class:`MuvcogForQuerySuggestion` (one hidden layer with
sigmoid, Sec. 4.5) and :class:`MuvcogForClickPrediction` (a two-tower click model whose query tower takes the
session embedding concatenated, Sec. 4.2). Intent classification (Sec. 4.6) is a scikit-learn classifier on
:meth:`MuvcogModel.encode_sessions` features (``tasks.evaluate_intent_classification``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch_geometric.nn import GATConv, GCNConv
from torch_geometric.nn.dense.linear import Linear as PygLinear
from torch_geometric.utils import coalesce, scatter
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.utils import ModelOutput, can_return_tuple

from ...distributed import gather_with_grad, world_size
from ...graphs.muvcog import QUERY_NODE_TYPES, WORD_TYPES
from ...modeling_utils import StrictLoadingMixin
from .configuration_muvcog import MuvcogConfig

_ACT = {"tanh": torch.tanh, "sigmoid": torch.sigmoid, "relu": F.relu, "identity": lambda x: x}


# --------------------------------------------------------------------------------------------------------------
# Outputs
# --------------------------------------------------------------------------------------------------------------


@dataclass
class MuvcogModelOutput(ModelOutput):
    """Session embeddings of both views.

    Args:
        session_embedding: ``(B, 2 * hidden_size)`` ``[g^AGV; g^HLV]`` (one view's ``(B, hidden_size)`` when
            ``config.views`` names one view).
        agv_embedding: ``(B, hidden_size)`` attentive-global-view embedding (``None`` with ``views="hlv"``; the
            homogeneous GAT's embedding with ``views="gat"``).
        hlv_embedding: ``(B, hidden_size)`` hierarchical-local-view embedding (``None`` with ``views="agv"``).
    """

    session_embedding: torch.FloatTensor | None = None
    agv_embedding: torch.FloatTensor | None = None
    hlv_embedding: torch.FloatTensor | None = None


@dataclass
class MuvcogForPreTrainingOutput(ModelOutput):
    """Args:
    loss: Eq. (9), summed over the view pairs, mean over anchors (given the positive views).
    logits: ``(B, 2)`` discriminator logits of (anchor, positive) and (anchor, negative), mean over view pairs.
    negative_mask: ``(B,)`` whether the anchor had a negative (a batch session with no common click).
    negative_index: ``(B,)`` row of the chosen negative among the gathered batch (``-1``: none).
    hard_negative_index: ``(B,)`` the hard negative the discriminator would pick now (Sec. 3.4's argmax; ``-1``:
        none), also while the warm-up draws random ones: how many distinct sessions it picks per batch measures
        the hub effect (a few sessions being the negative of most anchors). Computed with hard negatives and in
        evaluation mode; ``None`` otherwise.
    session_embedding: ``(B, E)`` the anchors' session embeddings.
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    negative_mask: torch.BoolTensor | None = None
    negative_index: torch.LongTensor | None = None
    hard_negative_index: torch.LongTensor | None = None
    session_embedding: torch.FloatTensor | None = None


@dataclass
class MuvcogQuerySuggestionOutput(ModelOutput):
    """Args:
    loss: mean cross-entropy of the next query's words over the vocabulary (given ``labels``).
    logits: ``(B, vocab_size)`` word scores of the next query.
    avg_sim: ``(B,)`` cosine of the mean vector of the top-n predicted words (n = the target's word count) and
        the mean vector of the target words (Sec. 4.5's Avg.Sim), given ``labels``; measured in
        ``avg_sim_word_vectors`` when the forward pass gets them (see :func:`query_suggestion_avg_sim`).
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    avg_sim: torch.FloatTensor | None = None


@dataclass
class MuvcogClickPredictionOutput(ModelOutput):
    """Args:
    loss: cross-entropy of the clicked item over the catalogue (given ``labels``).
    logits: ``(B, num_items)`` item scores.
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None


# --------------------------------------------------------------------------------------------------------------
# Encoders
# --------------------------------------------------------------------------------------------------------------


def _edges(view, edge_type) -> torch.Tensor | None:
    return view[edge_type].edge_index if edge_type in view.edge_types else None


class MuvcogAGVEncoder(nn.Module):
    """The attentive global view (Sec. 3.2, Eqs. 1-5) over the batched ``HeteroData`` of the AGV."""

    def __init__(self, config: MuvcogConfig):
        super().__init__()
        d, h = config.word_dim, config.hidden_size
        self.convs = nn.ModuleDict()
        for dst in QUERY_NODE_TYPES:
            for src in QUERY_NODE_TYPES:
                same = src == dst
                self.convs[f"{src}_to_{dst}"] = GATConv(
                    d if same else (d, d),
                    h,
                    heads=1,
                    negative_slope=config.attention_negative_slope,
                    add_self_loops=same and config.agv_self_loops,
                )
        self.semantic = nn.Linear(h, h)  # W^g, b^g of Eq. (4)
        self.semantic_query = nn.Parameter(torch.empty(h, 1))  # q of HAN's semantic attention
        self.self_loops, self.mask_empty_types = config.agv_self_loops, config.agv_mask_empty_types

    def forward(self, x: Mapping[str, torch.Tensor], view, num_sessions: int) -> torch.Tensor:
        """``x``: each query node type's input vectors, ``(n_t, word_dim)``; ``view``: the batched ``HeteroData`` of
        this view (its edges and each node's ``batch``); returns one vector per session, ``(num_sessions, H)``."""
        per_type, present, batches = [], [], []
        for dst in QUERY_NODE_TYPES:
            outs, has = [], []
            for src in QUERY_NODE_TYPES:
                parts = [e for rel in ("CO", "RF") if (e := _edges(view, (src, rel, dst))) is not None]
                size = max(x[src].shape[0], x[dst].shape[0])
                # a pair that both co-occurs and refines counts once
                edge_index = coalesce(torch.cat(parts, 1), num_nodes=size)
                conv = self.convs[f"{src}_to_{dst}"]
                out = conv(x[src], edge_index) if src == dst else conv((x[src], x[dst]), edge_index)
                outs.append(F.elu(out))  # Eq. (1): v_i^p
                degree = torch.bincount(edge_index[1], minlength=x[dst].shape[0]) > 0
                has.append(degree | (src == dst and self.self_loops))
            per_type.append(torch.stack(outs, 1))  # (N_dst, 3, H)
            present.append(torch.stack(has, 1))  # (N_dst, 3): node has a neighbour of type p
            batches.append(view[dst].batch)
        nodes = torch.cat(per_type)  # (N, 3, H): every node's v_i^p for p in KQ, PQ, IQ
        batch = torch.cat(batches)  # (N,)
        score = (torch.tanh(self.semantic(nodes)) @ self.semantic_query).squeeze(-1)  # (N, 3)
        if not self.mask_empty_types:
            score = scatter(score, batch, 0, dim_size=num_sessions, reduce="mean")  # (B, 3), Eq. (4)
            beta = torch.softmax(score, dim=-1)
            z = (beta[batch][..., None] * nodes).sum(1)  # (N, H), Eq. (3)
            return scatter(z, batch, 0, dim_size=num_sessions, reduce="mean")  # (B, H), Eq. (5)
        mask = torch.cat(present).to(score.dtype)  # (N, 3)
        total = scatter(score * mask, batch, 0, dim_size=num_sessions, reduce="sum")
        count = scatter(mask, batch, 0, dim_size=num_sessions, reduce="sum")
        score = torch.where(count > 0, total / count.clamp_min(1), torch.full_like(total, -1e4))  # Eq. (4)
        beta = torch.softmax(score, dim=-1)[batch] * mask  # (N, 3): only the types the node has neighbours of
        beta = beta / beta.sum(1, keepdim=True).clamp_min(1e-12)
        z = (beta[..., None] * nodes).sum(1)  # (N, H), Eq. (3)
        return scatter(z, batch, 0, dim_size=num_sessions, reduce="mean")  # (B, H), Eq. (5)


class MuvcogGATEncoder(nn.Module):
    """The homogeneous baseline of Figure 4 ("GAT"): the AGV graph with node and edge types ignored, one GAT layer
    (``GATConv`` with self-loops) over all nodes, mean over the session's nodes."""

    def __init__(self, config: MuvcogConfig):
        super().__init__()
        self.conv = GATConv(
            config.word_dim, config.hidden_size, heads=1, negative_slope=config.attention_negative_slope
        )

    def forward(self, x: Mapping[str, torch.Tensor], view, num_sessions: int) -> torch.Tensor:
        """``x``: each query node type's input vectors, ``(n_t, word_dim)``; ``view``: the batched ``HeteroData`` of
        this view (its edges and each node's ``batch``); returns one vector per session, ``(num_sessions, H)``."""
        offsets, start = {}, 0
        for t in QUERY_NODE_TYPES:
            offsets[t], start = start, start + x[t].shape[0]
        h = torch.cat([x[t] for t in QUERY_NODE_TYPES])
        parts = []
        for src, _, dst in view.edge_types:
            shift = torch.tensor([[offsets[src]], [offsets[dst]]], device=h.device)
            parts.append(view[src, _, dst].edge_index + shift)
        edge_index = coalesce(torch.cat(parts, 1), num_nodes=h.shape[0])
        batch = torch.cat([view[t].batch for t in QUERY_NODE_TYPES])
        return scatter(F.elu(self.conv(h, edge_index)), batch, 0, dim_size=num_sessions, reduce="mean")


class MuvcogHLVEncoder(nn.Module):
    """The hierarchical local view (Sec. 3.3, Eqs. 6-8) over the batched ``HeteroData`` of the HLV."""

    def __init__(self, config: MuvcogConfig):
        super().__init__()
        h = config.hidden_size
        self.member_projection = nn.Linear(config.word_dim, h, bias=False)  # W^b
        self.query_conv = GCNConv(h, h, add_self_loops=False)  # W^c, Eq. (6): words/images -> VQ
        self.session_conv = GCNConv(h, h, add_self_loops=True)  # W^d, Eq. (7): VQ -> VQ
        self.undirected = config.hlv_undirected

    def forward(self, x: Mapping[str, torch.Tensor], view, num_sessions: int) -> torch.Tensor:
        """``x``: each query node type's input vectors, ``(n_t, word_dim)``; ``view``: the batched ``HeteroData`` of
        this view (its edges and each node's ``batch``); returns one vector per session, ``(num_sessions, H)``."""
        members = [self.member_projection(x[t]) for t in QUERY_NODE_TYPES]
        num_vq = int(view["VQ"].num_nodes)
        offsets, start = {}, 0
        for t, m in zip(QUERY_NODE_TYPES, members):
            offsets[t], start = start, start + m.shape[0]
        h = torch.cat([*members, members[0].new_zeros(num_vq, members[0].shape[1])])  # VQ starts at zero
        shift = torch.tensor([[0], [start]], device=h.device)
        edge_index = torch.cat(
            [
                view[t, "CO", "VQ"].edge_index + shift + torch.tensor([[offsets[t]], [0]], device=h.device)
                for t in QUERY_NODE_TYPES
            ],
            1,
        )
        # both directions: the GCN degrees d_j (queries a node is in) and d_q (members of a query) of Eq. (6)
        edge_index = torch.cat([edge_index, edge_index.flip(0)], 1)
        queries = F.elu(self.query_conv(h, edge_index)[start:])  # (Q, H), Eq. (6)
        chain = view["VQ", "RF", "VQ"].edge_index
        if self.undirected:
            chain = torch.cat([chain, chain.flip(0)], 1)
        z = F.elu(self.session_conv(queries, chain))  # (Q, H), Eq. (7)
        return scatter(z, view["VQ"].batch, 0, dim_size=num_sessions, reduce="mean")  # (B, H), Eq. (8)


# --------------------------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------------------------


class MuvcogPreTrainedModel(StrictLoadingMixin, PreTrainedModel):
    config_class = MuvcogConfig
    base_model_prefix = "muvcog"
    main_input_name = "num_queries"  # (B,) queries per session: the one plain tensor every batch has
    _frozen_parameters: tuple[str, ...] = ()

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        """Glorot (Xavier) uniform for every weight matrix and attention vector, zero biases (Sec. 4.1)."""
        if isinstance(module, (nn.Linear, PygLinear)):
            if (
                getattr(module, "weight", None) is not None
                and module.weight.dim() == 2
                and module.weight.numel()
            ):
                init.xavier_uniform_(module.weight)
            if getattr(module, "bias", None) is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            if module.weight.numel():
                init.xavier_uniform_(module.weight)
        elif isinstance(module, GATConv):
            for name in ("att_src", "att_dst"):
                param = getattr(module, name, None)
                if param is not None:
                    init.xavier_uniform_(param.view(param.shape[-2], param.shape[-1]))
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, GCNConv):
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, MuvcogAGVEncoder):
            init.xavier_uniform_(module.semantic_query)
        elif isinstance(module, MuvcogForQuerySuggestion) and module.copy_weights is not None:
            # zero: an untrained copy head scores like the paper's (also when the head is loaded from a checkpoint
            # without it, where from_pretrained initialises the missing weights here rather than in __init__)
            init.zeros_(module.copy_weights)


class MuvcogModel(MuvcogPreTrainedModel):
    """The MUVCOG session encoder: both views' session embeddings and their concatenation.

    Inputs are what :class:`MuvcogProcessor` returns (``num_queries``, ``global_view``, ``local_view``).
    """

    # a pretraining checkpoint's discriminator serves pretraining only
    _keys_to_ignore_on_load_unexpected = [r"^discriminator\."]

    def __init__(self, config: MuvcogConfig):
        super().__init__(config)
        self.word_embeddings = nn.Embedding(config.vocab_size, config.word_dim)
        self.image_projection = nn.Linear(config.image_dim, config.word_dim)  # W^e, b of Sec. 3.2
        if config.views == "gat":
            self.agv = MuvcogGATEncoder(config)  # the homogeneous baseline takes the AGV's place
        else:
            self.agv = MuvcogAGVEncoder(config) if config.views in ("both", "agv") else None
        self.hlv = MuvcogHLVEncoder(config) if config.views in ("both", "hlv") else None
        if config.freeze_word_embeddings:  # the trainers re-freeze it after loading (see _frozen_parameters)
            self.word_embeddings.weight.requires_grad_(False)
        self._frozen_parameters = ("word_embeddings.",) if config.freeze_word_embeddings else ()
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.word_embeddings

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.word_embeddings = value

    @torch.no_grad()
    def load_word_vectors(self, vectors: torch.Tensor | np.ndarray) -> None:
        """Copy the processor's word vectors (``processor.word_vectors``) into the word embeddings."""
        vectors = torch.as_tensor(np.asarray(vectors, dtype=np.float32))
        if tuple(vectors.shape) != tuple(self.word_embeddings.weight.shape):
            raise ValueError(
                f"word vectors {tuple(vectors.shape)} do not fit the embeddings {tuple(self.word_embeddings.weight.shape)}"
            )
        self.word_embeddings.weight.copy_(vectors)

    def node_inputs(self, view) -> dict[str, torch.Tensor]:
        """``KQ``/``PQ`` word vectors and projected ``IQ`` image vectors, all ``(N_t, word_dim)``."""
        x = {t: self.word_embeddings(view[t].x) for t in ("KQ", "PQ")}
        images = view["IQ"].x.to(self.image_projection.weight.dtype)
        if images.shape[1] != self.config.image_dim:
            if images.shape[0]:
                raise ValueError(
                    f"image vectors have {images.shape[1]} values, the model expects {self.config.image_dim}"
                )
            images = images.new_zeros(0, self.config.image_dim)
        x["IQ"] = _ACT[self.config.projection_act](self.image_projection(images))
        return x

    @can_return_tuple
    def forward(
        self, num_queries: torch.LongTensor | None = None, global_view=None, local_view=None
    ) -> MuvcogModelOutput:
        r"""Encode a batch of sessions.

        Args:
            num_queries: ``(B,)`` queries per session (gives the batch size).
            global_view: the batched AGV ``HeteroData`` (``KQ``/``PQ``/``IQ`` nodes, ``CO``/``RF`` edges).
            local_view: the batched HLV ``HeteroData`` (the same nodes plus ``VQ``).
        """
        view = global_view if global_view is not None else local_view
        if view is None:
            raise ValueError("MuvcogModel needs global_view and/or local_view (what MuvcogProcessor returns)")
        num_sessions = (
            int(num_queries.shape[0]) if num_queries is not None else int(view.num_queries.shape[0])
        )
        x = self.node_inputs(view)
        agv = hlv = None
        if self.agv is not None:
            if global_view is None:
                raise ValueError(f"views={self.config.views!r} needs global_view")
            agv = self.agv(x, global_view, num_sessions)
        if self.hlv is not None:
            if local_view is None:
                raise ValueError(f"views={self.config.views!r} needs local_view")
            hlv = self.hlv(x, local_view, num_sessions)
        session = torch.cat([e for e in (agv, hlv) if e is not None], dim=-1)
        return MuvcogModelOutput(session_embedding=session, agv_embedding=agv, hlv_embedding=hlv)

    @torch.no_grad()
    def encode_sessions(
        self, sessions: Sequence[Mapping[str, Any]], processor=None, batch_size: int = 256
    ) -> np.ndarray:
        """Session embeddings ``(B, session_embedding_size)`` float32 of sessions in the package schema."""
        if processor is None:
            raise ValueError("encode_sessions() needs the MuvcogProcessor: pass processor=...")
        was_training = self.training
        self.eval()
        out = []
        for start in range(0, len(sessions), batch_size):
            batch = processor(list(sessions[start : start + batch_size]))
            batch = {k: v.to(self.device) for k, v in batch.items()}
            out.append(self(**batch).session_embedding.float().cpu())
        self.train(was_training)
        if not out:
            return np.zeros((0, self.config.session_embedding_size), dtype=np.float32)
        return torch.cat(out).numpy()


def _pad_gather(tensor: torch.Tensor, pad_value: int = -1) -> torch.Tensor:
    """``(n_p, C_p)`` integer rows of every process, padded to one width and concatenated in rank order (no grad)."""
    if world_size() == 1:
        return tensor
    shape = torch.tensor([tensor.shape[0], tensor.shape[1]], device=tensor.device)
    shapes = [torch.zeros_like(shape) for _ in range(world_size())]
    dist.all_gather(shapes, shape)
    rows, width = max(int(s[0]) for s in shapes), max(int(s[1]) for s in shapes)
    padded = tensor.new_full((rows, width), pad_value)
    padded[: tensor.shape[0], : tensor.shape[1]] = tensor
    parts = [torch.empty_like(padded) for _ in range(world_size())]
    dist.all_gather(parts, padded)
    return torch.cat([p[: int(s[0])] for p, s in zip(parts, shapes)])


def shared_click_mask(click_ids: torch.Tensor, candidate_click_ids: torch.Tensor) -> torch.Tensor:
    """``(B, B')`` whether anchor ``i`` and candidate ``j`` have a clicked item in common.

    Both are integer item codes padded with ``-1`` (``(B, C)`` and ``(B', C')``).
    """
    codes = torch.cat([click_ids.flatten(), candidate_click_ids.flatten()])
    valid = codes >= 0
    if not bool(valid.any()):
        return torch.zeros(
            click_ids.shape[0], candidate_click_ids.shape[0], dtype=torch.bool, device=codes.device
        )
    _, inverse = torch.unique(codes[valid], return_inverse=True)
    column = torch.full_like(codes, -1)
    column[valid] = inverse
    width = int(inverse.max()) + 1

    def incidence(part: torch.Tensor, col: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(part.shape[0], width + 1, device=codes.device)
        rows = torch.arange(part.shape[0], device=codes.device).repeat_interleave(part.shape[1])
        out[rows, torch.where(col >= 0, col, width)] = 1.0  # padding lands in the extra column
        return out[:, :width]

    n = click_ids.numel()
    return (incidence(click_ids, column[:n]) @ incidence(candidate_click_ids, column[n:]).t()) > 0


class MuvcogDiscriminator(nn.Module):
    """The MLP of Sec. 3.4 on ``[g_s; g_s']``: hidden ReLU layers (64, 32) and a 1-unit output (a logit)."""

    def __init__(self, config: MuvcogConfig):
        super().__init__()
        sizes = [2 * config.hidden_size, *config.discriminator_hidden_sizes]
        layers: list[nn.Module] = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        layers.append(nn.Linear(sizes[-1], 1))
        self.mlp = nn.Sequential(*layers)

    def forward(self, anchor: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
        """Logits ``(...)`` of aligned ``(..., H)`` pairs."""
        return self.mlp(torch.cat([anchor, other], -1)).squeeze(-1)

    def all_pairs(self, anchor: torch.Tensor, others: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, B')`` of every (anchor, candidate) pair."""
        b, c = anchor.shape[0], others.shape[0]
        return self(anchor[:, None].expand(b, c, -1), others[None].expand(b, c, -1))


class MuvcogForPreTraining(MuvcogPreTrainedModel):
    """MUVCOG with its multi-view contrastive objective (Sec. 3.4, Eq. 9) and hard negatives.

    For views ``(a, b)`` in ``[(AGV, HLV), (HLV, AGV)]`` (one view with ``views="agv"|"hlv"``: ``(a, a)``), the loss
    is ``-log D(g_s^a, g_p^b) - log(1 - D(g_s^a, g_n^b))``, ``D`` the discriminator with a sigmoid, averaged over
    anchors ``s`` and summed over the view pairs. ``p`` is ``s`` with one query masked (built by the collator);
    ``n`` is chosen among the anchors of the whole batch (every process's, via ``gather_with_grad``) that share
    no clicked item with ``s``: the one the discriminator scores highest (``negatives="hard"``, scored without
    gradient as the mean over the view pairs) or a uniform draw (``"random"``). An anchor without such a
    session has no negative term.

    With ``config.hard_negative_warmup_steps > 0`` the first optimiser steps draw random negatives; a training
    loop then says which step it is running with :meth:`set_training_step` before the step's forward passes (both
    trainers do, through the recipe's ``before_optimizer_step`` hook). Evaluation follows training: after step
    ``s`` it uses the negatives step ``s`` used (random during the warm-up, drawn from a fixed seed so that every
    evaluation draws alike; hard after it), so that the validation loss measures the objective being trained.
    Evaluated with no training step set (a loaded model), it uses ``config.negatives``.
    """

    def __init__(self, config: MuvcogConfig):
        super().__init__(config)
        self.muvcog = MuvcogModel(config)
        self.discriminator = MuvcogDiscriminator(config)
        self._frozen_parameters = ("muvcog.word_embeddings.",) if config.freeze_word_embeddings else ()
        self.training_step: int | None = None
        self.post_init()

    def set_training_step(self, step: int | None) -> None:
        """The optimiser step (from 1) the next forward passes belong to; decides the negative warm-up. ``None``:
        outside a training run (a loaded model), where evaluation uses ``config.negatives``."""
        self.training_step = None if step is None else int(step)

    def negative_strategy(self) -> str:
        """``"hard"`` or ``"random"`` for the current forward pass: the warm-up's random negatives up to its last
        step, in training and in evaluation between training steps alike."""
        warmup = self.config.hard_negative_warmup_steps
        if self.config.negatives != "hard" or not warmup:
            return self.config.negatives
        if self.training_step is None:
            if not self.training:  # evaluated outside a training run
                return self.config.negatives
            raise RuntimeError(
                f"hard_negative_warmup_steps={warmup} needs the training step: call "
                "model.set_training_step(step) before each optimiser step's forward passes (the trainers do)"
            )
        return "random" if self.training_step <= warmup else "hard"

    def _view_pairs(self, out: MuvcogModelOutput) -> list[tuple[torch.Tensor, torch.Tensor]]:
        if self.config.views == "both":
            return [(out.agv_embedding, out.hlv_embedding), (out.hlv_embedding, out.agv_embedding)]
        one = out.hlv_embedding if self.config.views == "hlv" else out.agv_embedding
        return [(one, one)]

    def choose_negatives(
        self, anchors: list[torch.Tensor], candidates: list[torch.Tensor], valid: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Index ``(B,)`` of each anchor's negative among the candidates, whether it has one, and the hard negative
        index (``None`` when random negatives are drawn in training: it is not needed there).

        ``anchors[k]`` / ``candidates[k]``: the embeddings of view pair ``k`` (anchor view, other view);
        ``valid`` ``(B, B')``: allowed candidates (no common click, not itself).
        """
        strategy = self.negative_strategy()
        with torch.no_grad():
            hard = None
            if strategy == "hard" or not self.training:
                score = sum(self.discriminator.all_pairs(a, c) for a, c in zip(anchors, candidates)) / len(
                    anchors
                )
                hard = score.float().masked_fill(~valid, float("-inf")).argmax(1)
            if strategy == "hard":
                return hard, valid.any(1), hard
            # evaluation draws from a fixed seed: every evaluation of a run scores the same random pairs
            generator = None if self.training else torch.Generator(valid.device).manual_seed(0)
            score = torch.rand(valid.shape, device=valid.device, generator=generator)
            return score.masked_fill(~valid, float("-inf")).argmax(1), valid.any(1), hard

    @can_return_tuple
    def forward(
        self,
        num_queries: torch.LongTensor | None = None,
        global_view=None,
        local_view=None,
        positive_global_view=None,
        positive_local_view=None,
        click_ids: torch.LongTensor | None = None,
        negative_pool_size: int | None = None,
    ) -> MuvcogForPreTrainingOutput:
        r"""Args:
        num_queries, global_view, local_view: the anchor sessions (see :meth:`MuvcogModel.forward`).
        positive_global_view, positive_local_view: the same sessions with one query masked; the loss needs them.
        click_ids: ``(B, C)`` clicked-item codes of each anchor (``processing_muvcog.click_code``), padded with
            ``-1``; sessions sharing one are never each other's negative. ``None``: no click is shared.
        negative_pool_size: negatives are chosen within consecutive blocks of this many (gathered) rows instead of
            the whole batch. The recipe's evaluation collator sets it to the training batch size: an evaluation
            batch is larger, and the hardest of 512 sessions is harder than the hardest of 128. ``None``: the
            whole batch (training).
        """
        anchor = self.muvcog(num_queries, global_view, local_view)
        if positive_global_view is None and positive_local_view is None:
            return MuvcogForPreTrainingOutput(session_embedding=anchor.session_embedding)
        positive = self.muvcog(None, positive_global_view, positive_local_view)
        pairs, positive_pairs = self._view_pairs(anchor), self._view_pairs(positive)
        gathered, offset = [], 0
        for _, other in pairs:
            g, offset = gather_with_grad(other)
            gathered.append(g)
        b = anchor.session_embedding.shape[0]
        device = anchor.session_embedding.device
        if click_ids is None:
            click_ids = torch.full((b, 1), -1, dtype=torch.long, device=device)
        all_clicks = _pad_gather(click_ids.to(device))
        valid = ~shared_click_mask(click_ids.to(device), all_clicks)
        rows = offset + torch.arange(b, device=device)
        valid[torch.arange(b, device=device), rows] = False
        if negative_pool_size:
            pool = int(negative_pool_size)
            columns = torch.arange(valid.shape[1], device=device)
            valid &= (rows // pool)[:, None] == (columns // pool)[None]
        index, has_negative, hard = self.choose_negatives([a for a, _ in pairs], gathered, valid)
        loss = anchor.session_embedding.new_zeros(())
        pos_logits, neg_logits = [], []
        for (a, _), (_, p), candidates in zip(pairs, positive_pairs, gathered):
            pos = self.discriminator(a, p)
            neg = self.discriminator(a, candidates[index])
            weight = has_negative.to(neg.dtype)
            term = F.binary_cross_entropy_with_logits(pos, torch.ones_like(pos), reduction="none")
            term = term + weight * F.binary_cross_entropy_with_logits(
                neg, torch.zeros_like(neg), reduction="none"
            )
            loss = loss + term.mean()
            pos_logits.append(pos)
            neg_logits.append(neg)
        logits = torch.stack([torch.stack(pos_logits).mean(0), torch.stack(neg_logits).mean(0)], 1)
        return MuvcogForPreTrainingOutput(
            loss=loss,
            logits=logits,
            negative_mask=has_negative,
            negative_index=torch.where(has_negative, index, torch.full_like(index, -1)),
            hard_negative_index=None
            if hard is None
            else torch.where(has_negative, hard, torch.full_like(hard, -1)),
            session_embedding=anchor.session_embedding,
        )


@torch.no_grad()
def query_suggestion_avg_sim(
    logits: torch.Tensor, labels: torch.Tensor, word_vectors: torch.Tensor
) -> torch.Tensor:
    """Sec. 4.5's Avg.Sim ``(B,)``: cosine of the mean vector of the top-n scored words (n = the target's word
    count) and the mean vector of the n target words.

    Args:
        logits: ``(B, V)`` word scores.
        labels: ``(B, T)`` target word ids, padded with a negative id.
        word_vectors: ``(V, d)`` the vectors similarity is measured in; every model and baseline of one table must
            use the same ones (the recipe uses the processor's word vectors).
    """
    vectors = word_vectors.float()
    mask = (labels >= 0).float()
    n = mask.sum(1).clamp_min(1)
    top = logits.topk(min(labels.shape[1], logits.shape[1]), dim=1).indices  # (B, T)
    take = (torch.arange(top.shape[1], device=top.device)[None] < n[:, None]).float()
    predicted = (vectors[top] * take[..., None]).sum(1) / n[:, None]
    actual = (vectors[labels.clamp_min(0)] * mask[..., None]).sum(1) / n[:, None]
    return F.cosine_similarity(predicted, actual, dim=-1)


def session_word_features(local_view, num_queries, num_sessions: int, vocab_size: int) -> torch.Tensor:
    """What the query-suggestion copy head knows of each session's own words: ``(B, vocab_size, 3)`` with, per
    word, whether the session holds it (keyword or product-query word), ``log(1 + n)`` for the ``n`` queries
    holding it, and whether its last query holds it (from the HLV's word -> query membership edges)."""
    device = local_view["VQ"].position.device
    if num_queries is None:
        num_queries = local_view.num_queries
    num_queries = num_queries.to(device)
    vq_batch = local_view["VQ"].batch
    is_last = local_view["VQ"].position == num_queries[vq_batch] - 1
    cells, in_last = [], []
    for t in WORD_TYPES:
        if (t, "CO", "VQ") in local_view.edge_types:
            src, dst = local_view[t, "CO", "VQ"].edge_index
            cells.append(local_view[t].batch[src] * vocab_size + local_view[t].x[src])
            in_last.append(is_last[dst].float())
    cell = torch.cat(cells) if cells else torch.zeros(0, dtype=torch.long, device=device)
    last_of = torch.cat(in_last) if in_last else torch.zeros(0, device=device)
    # per (session, word): queries holding it, and how many of them are the last query (0 or 1)
    sums = scatter(
        torch.stack([torch.ones_like(last_of), last_of], -1), cell, 0, dim_size=num_sessions * vocab_size
    )
    count, last = sums.view(num_sessions, vocab_size, 2).unbind(-1)
    return torch.stack([(count > 0).float(), torch.log1p(count), (last > 0).float()], -1)


class _FrozenEncoderHead(MuvcogPreTrainedModel):
    """A downstream head over the MUVCOG encoder; the encoder is frozen by the trainers when
    ``config.freeze_encoder`` (its parameter names are listed in ``_frozen_parameters``)."""

    # a pretraining checkpoint's discriminator serves pretraining only: not a weight a head lacks by mistake
    _keys_to_ignore_on_load_unexpected = [r"^discriminator\."]

    def __init__(self, config: MuvcogConfig):
        super().__init__(config)
        self.muvcog = MuvcogModel(config)
        if config.freeze_encoder:
            self._frozen_parameters = ("muvcog.",)
        else:
            self._frozen_parameters = ("muvcog.word_embeddings.",) if config.freeze_word_embeddings else ()

    def session_features(self, num_queries, global_view, local_view) -> torch.Tensor:
        return self.muvcog(num_queries, global_view, local_view).session_embedding


class MuvcogForQuerySuggestion(_FrozenEncoderHead):
    """Next-query word prediction from the session embedding (Sec. 4.5): one hidden layer with a sigmoid, then
    scores over the word vocabulary; trained with the cross-entropy of each target word."""

    def __init__(self, config: MuvcogConfig):
        super().__init__(config)
        self.head = nn.Sequential(
            nn.Linear(config.session_embedding_size, config.query_suggestion_hidden_size),
            nn.Sigmoid(),
            nn.Linear(config.query_suggestion_hidden_size, config.vocab_size),
        )
        # weights of the session's own words (present, log(1 + queries holding it), in the last query); zero at
        # the start, so that an untrained copy head scores like the paper's
        self.copy_weights = nn.Parameter(torch.zeros(3)) if config.query_suggestion_copy else None
        self.post_init()

    @can_return_tuple
    def forward(
        self,
        num_queries=None,
        global_view=None,
        local_view=None,
        labels: torch.LongTensor | None = None,
        avg_sim_word_vectors: torch.FloatTensor | None = None,
    ) -> MuvcogQuerySuggestionOutput:
        r"""Args:
        labels: ``(B, T)`` word ids of each session's next query, padded with ``-100``.
        avg_sim_word_vectors: ``(vocab_size, d)`` the word vectors Avg.Sim is measured in. The recipe's collator
            passes the processor's (``processor.word_vectors``), the ones its baselines are measured in: the
            encoder's input embeddings move during pretraining (unless ``freeze_word_embeddings``), and a metric
            measured in a model's own vectors is not comparable across models or with the baselines. ``None``:
            the encoder's input word embeddings.
        """
        logits = self.head(self.session_features(num_queries, global_view, local_view))  # (B, V)
        if self.copy_weights is not None:
            if local_view is None:
                raise ValueError(
                    "query_suggestion_copy reads the session's words from local_view: pass what MuvcogProcessor returns"
                )
            features = session_word_features(local_view, num_queries, logits.shape[0], logits.shape[1])
            logits = logits + (features.to(logits.dtype) * self.copy_weights.to(logits.dtype)).sum(-1)
        if labels is None:
            return MuvcogQuerySuggestionOutput(logits=logits)
        labels = labels.to(logits.device)
        mask = labels >= 0
        logp = torch.log_softmax(logits.float(), -1).gather(1, labels.clamp_min(0))
        loss = -(logp * mask).sum() / mask.sum().clamp_min(1)
        avg_sim = self.avg_sim(logits, labels, avg_sim_word_vectors)
        return MuvcogQuerySuggestionOutput(loss=loss, logits=logits, avg_sim=avg_sim)

    @torch.no_grad()
    def avg_sim(
        self, logits: torch.Tensor, labels: torch.Tensor, word_vectors: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Avg.Sim ``(B,)`` (:func:`query_suggestion_avg_sim`) in ``word_vectors``, by default the encoder's input
        word embeddings."""
        if word_vectors is None:
            word_vectors = self.muvcog.word_embeddings.weight
        return query_suggestion_avg_sim(logits, labels, word_vectors.to(logits.device))


class MuvcogForClickPrediction(_FrozenEncoderHead):
    """A two-tower click model (Sec. 4.2) with the session embedding concatenated into the query tower.

    Query tower: the current query (mean of its word vectors, plus its projected image for an image query),
    concatenated with the frozen session embedding when ``config.click_use_session_features``, through a
    two-layer MLP. Item tower: a learned item embedding. Score: their dot product, over the whole catalogue.
    """

    def __init__(self, config: MuvcogConfig):
        super().__init__(config)
        width = config.word_dim + (config.session_embedding_size if config.click_use_session_features else 0)
        self.query_tower = nn.Sequential(
            nn.Linear(width, config.click_hidden_size),
            nn.ReLU(),
            nn.Linear(config.click_hidden_size, config.click_hidden_size),
        )
        self.item_embeddings = nn.Embedding(config.num_items, config.click_hidden_size)
        self.post_init()

    @can_return_tuple
    def forward(
        self,
        num_queries=None,
        global_view=None,
        local_view=None,
        query_words: torch.LongTensor | None = None,
        query_image: torch.FloatTensor | None = None,
        query_image_mask: torch.BoolTensor | None = None,
        labels: torch.LongTensor | None = None,
    ) -> MuvcogClickPredictionOutput:
        r"""Args:
        num_queries, global_view, local_view: the session up to (and including) the current query.
        query_words: ``(B, L)`` word ids of the current query, padded with ``-1``.
        query_image: ``(B, image_dim)`` image of the current query (zeros without one); ``query_image_mask``
            ``(B,)`` marks the rows that have one.
        labels: ``(B,)`` index of the clicked item (``-100``: unknown, ignored).
        """
        encoder = self.muvcog
        b = int(num_queries.shape[0]) if num_queries is not None else int(global_view.num_queries.shape[0])
        device = encoder.word_embeddings.weight.device
        query = torch.zeros(b, self.config.word_dim, device=device)
        count = torch.zeros(b, 1, device=device)
        if query_words is not None:
            mask = (query_words >= 0).to(device)
            words = encoder.word_embeddings(query_words.clamp_min(0).to(device)) * mask[..., None]
            query, count = words.sum(1), mask.sum(1, keepdim=True).float()
        if query_image is not None and query_image_mask is not None:
            image_mask = query_image_mask.to(device)[:, None].float()
            projected = _ACT[self.config.projection_act](
                encoder.image_projection(query_image.to(device).float())
            )
            query, count = query + projected * image_mask, count + image_mask
        query = query / count.clamp_min(1)
        if self.config.click_use_session_features:
            query = torch.cat([query, self.session_features(num_queries, global_view, local_view)], -1)
        logits = self.query_tower(query) @ self.item_embeddings.weight.t()  # (B, N)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.float(), labels.to(device), ignore_index=-100)
        return MuvcogClickPredictionOutput(loss=loss, logits=logits)


__all__ = [
    "MuvcogAGVEncoder",
    "MuvcogClickPredictionOutput",
    "MuvcogDiscriminator",
    "MuvcogForClickPrediction",
    "MuvcogForPreTraining",
    "MuvcogForPreTrainingOutput",
    "MuvcogForQuerySuggestion",
    "MuvcogGATEncoder",
    "MuvcogHLVEncoder",
    "MuvcogModel",
    "MuvcogModelOutput",
    "MuvcogPreTrainedModel",
    "MuvcogQuerySuggestionOutput",
    "query_suggestion_avg_sim",
    "shared_click_mask",
]
