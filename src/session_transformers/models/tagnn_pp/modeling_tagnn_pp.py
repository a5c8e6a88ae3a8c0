"""TAGNN++ (Mitharan et al., "Improved Representation Learning for Session-based Recommendation").

Pipeline of one batch (``B`` sessions, padded length ``L``, ``|V|`` graph nodes in the batch, ``N`` items, ``H``
hidden):

1. **Item embeddings** of the session-graph nodes: ``(|V|, H)``.
2. **Gated GNN** (SR-GNN / TAGNN, :class:`SRGNNCell`) on the session transition graph from
   :mod:`session_transformers.graphs.transition`: ``gnn_steps`` gated updates of the node states.
3. Node states are scattered to session positions with ``alias``: ``(B, L, H)``.
4. **Transformer** over the positions: the authors' code's causal ``MHA + LayerNorm`` block
   (:class:`TagnnPPCausalResidualLayer`, the default) or the paper's encoder layer
   (:class:`TagnnPPTransformerLayer`: learned position embeddings, multi-head self-attention, residual + LayerNorm,
   token-wise feed-forward layer, bidirectional with a padding mask). With ``transformer_over="nodes"`` it runs
   over each session's graph nodes in item-index order before step 3, as the authors' code does.
5. **Session embeddings** as in SR-GNN: local ``s_l`` = the last item's state, global ``s_g`` = soft attention
   over the positions.
6. **Target-aware readout** of TAGNN (:class:`TargetAwareReadout`): for each candidate item ``v`` a target
   embedding ``s_t(v) = sum_i softmax_i(h_i^T W v) h_i``, session representation ``W_3 [s_l; s_g; s_t(v)]`` and
   score ``v^T W_3 [s_l; s_g; s_t(v)]``, computed over the whole catalogue without materialising ``(B, N, H)``.

The ablation switches of the paper's Table 3 (``use_gnn``, ``use_transformer``, ``use_position_embeddings``)
remove the modules. Adaptive Gradient Clipping (``use_adaptive_gradient_clipping``) acts on gradients, so it
is applied by the training loop with :func:`session_transformers.optim.adaptive_clip_grad_`.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.nn import MessagePassing
from torch_geometric.utils import degree, to_dense_batch
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.utils import ModelOutput, can_return_tuple

from ...modeling_utils import StrictLoadingMixin
from .configuration_tagnn_pp import TagnnPPConfig

# --------------------------------------------------------------------------------------------------------------
# Outputs
# --------------------------------------------------------------------------------------------------------------


@dataclass
class TagnnPPModelOutput(ModelOutput):
    """Output of :class:`TagnnPPModel`.

    Args:
        sequence_hidden: ``(batch, seq_len, hidden)`` state of each session position (zeros at padding).
        last_hidden: ``(batch, hidden)`` local session embedding ``s_l``: the state of the last item.
        global_hidden: ``(batch, hidden)`` global session embedding ``s_g``: SR-GNN's soft attention over positions.
        attention_mask: ``(batch, seq_len)`` 1 for real positions, 0 for padding (the input mask, passed on).
    """

    sequence_hidden: torch.FloatTensor | None = None
    last_hidden: torch.FloatTensor | None = None
    global_hidden: torch.FloatTensor | None = None
    attention_mask: torch.LongTensor | None = None


@dataclass
class TagnnPPNextItemOutput(ModelOutput):
    """Output of :class:`TagnnPPForNextItemPrediction`.

    Args:
        loss: ``()`` mean cross-entropy of the next item over the catalogue (only when ``labels`` are given;
            labels equal to ``-100`` are ignored).
        logits: ``(batch, num_items)`` score of every catalogue item; the padding index 0 holds the dtype's
            minimum so it never ranks and gets zero probability.
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None


# --------------------------------------------------------------------------------------------------------------
# Gated GNN on the session graph (SR-GNN)
# --------------------------------------------------------------------------------------------------------------


class SRGNNCell(MessagePassing):
    r"""One gated update of SR-GNN (Wu et al., 2019), used by TAGNN and TAGNN++.

    With ``A_in`` / ``A_out`` the in- / out-degree-normalised connection matrices of the session graph
    (edge weights ``in_weight`` / ``out_weight`` from :func:`~session_transformers.graphs.session_transition_graph`):

    .. math::
        a^{in}_v = W_{in} \sum_{u \to v} A^{in}_{uv} h_u + b_{in}, \quad
        a^{out}_u = W_{out} \sum_{u \to v} A^{out}_{uv} h_v + b_{out}, \quad
        h'_v = \mathrm{GRU}([a^{in}_v; a^{out}_v], h_v)

    i.e. the reset gate ``r``, update gate ``z`` and candidate ``tanh(W a + r * (U h))`` of SR-GNN's equations
    (2)-(5). With ``style="paper"`` (SR-GNN's equation (1)) the aggregation runs before the linear map, over all
    graphs of the batch at once.

    ``style="code"`` is what SR-GNN's, TAGNN's and TAGNN++'s released code computes: every node is mapped first
    and the maps are aggregated, ``a^{in}_v = \sum_{u \to v} A^{in}_{uv} (W_{in} h_u + b'_{in}) + b_{in}``
    (``b_iah`` / ``b_oah`` there). The weights commute with the aggregation, the edge maps' biases do not: they
    arrive scaled by the node's summed edge weights, 1 with edges and 0 without, so a node with no in-edges (the
    session's first item, unless revisited) or no out-edges (its last item, unless revisited) gets a bias of its
    own.
    """

    def __init__(self, hidden_size: int, style: str = "paper"):
        super().__init__(aggr="add")
        self.linear_edge_in = nn.Linear(hidden_size, hidden_size)
        self.linear_edge_out = nn.Linear(hidden_size, hidden_size)
        self.gru = nn.GRUCell(2 * hidden_size, hidden_size)
        for module in (self.linear_edge_in, self.linear_edge_out, self.gru):
            module._srgnn_uniform_init = True  # read by TagnnPPPreTrainedModel._init_weights
        if style not in ("paper", "code"):
            raise ValueError(f"style={style!r} must be 'paper' or 'code'")
        # style="code": the node biases added after the aggregation (the code's b_iah / b_oah)
        self.bias_in = nn.Parameter(torch.zeros(hidden_size)) if style == "code" else None
        self.bias_out = nn.Parameter(torch.zeros(hidden_size)) if style == "code" else None
        self._srgnn_uniform_init = True  # the cell's own biases too

    def reset_parameters(self) -> None:
        """SR-GNN's init: uniform ``±1/sqrt(H)`` for the GRU and the edge maps (biases included)."""
        super().reset_parameters()
        bound = self.gru.hidden_size**-0.5
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def forward(
        self, h: torch.Tensor, edge_index: torch.Tensor, in_weight: torch.Tensor, out_weight: torch.Tensor
    ) -> torch.Tensor:
        """``h`` ``(|V|, H)``, ``edge_index`` ``(2, |E|)``, weights ``(|E|,)`` -> new node states ``(|V|, H)``."""
        a_in = self._aggregate(h, edge_index, in_weight, self.linear_edge_in, self.bias_in)  # (|V|, H)
        a_out = self._aggregate(h, edge_index.flip(0), out_weight, self.linear_edge_out, self.bias_out)
        return self.gru(torch.cat([a_in, a_out], dim=-1), h)  # (|V|, H)

    def _aggregate(self, h, edge_index, weight, linear: nn.Linear, bias: nn.Parameter | None) -> torch.Tensor:
        """One direction's input ``(|V|, H)``: the paper's ``linear(A h)``, or the code's ``A linear(h) + bias``."""
        if bias is None:  # the paper: aggregate, then map
            return linear(self.propagate(edge_index, x=h, edge_weight=weight))
        # the code: map, aggregate (the map's bias weighted by the edges), then the node bias
        return self.propagate(edge_index, x=linear(h), edge_weight=weight) + bias

    def message(self, x_j: torch.Tensor, edge_weight: torch.Tensor) -> torch.Tensor:
        return edge_weight.to(x_j.dtype).unsqueeze(-1) * x_j  # (|E|, H)


def binary_transition_weights(edge_index: torch.Tensor, num_nodes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """SR-GNN's released code's connection matrices as edge weights: ``1 / in-degree`` of each edge's target and
    ``1 / out-degree`` of its source, degrees counted over *distinct* edges (``edge_index`` holds each transition
    once, as :func:`~session_transformers.graphs.transition.build_graph_batch` writes it). Returns
    ``(in_weight, out_weight)``, each ``(|E|,)``."""
    source, target = edge_index
    in_degree = degree(target, num_nodes)  # (|V|,)
    out_degree = degree(source, num_nodes)  # (|V|,)
    return in_degree[target].reciprocal(), out_degree[source].reciprocal()


class TagnnPPGatedGNN(nn.Module):
    """``gnn_steps`` applications of one weight-shared :class:`SRGNNCell` (SR-GNN's ``step``)."""

    def __init__(self, config: TagnnPPConfig):
        super().__init__()
        self.steps = config.gnn_steps
        self.cell = SRGNNCell(config.hidden_size, style=config.gnn_style)

    def forward(self, h, edge_index, in_weight, out_weight) -> torch.Tensor:
        """``h`` ``(|V|, H)``: the batch's session-graph nodes; ``edge_index`` ``(2, |E|)``; ``in_weight`` /
        ``out_weight`` ``(|E|,)``: each edge's normalised weight into its target / out of its source. Returns the
        nodes after ``steps`` gated propagations, ``(|V|, H)``."""
        for _ in range(self.steps):
            h = self.cell(h, edge_index, in_weight, out_weight)
        return h  # (|V|, H)


# --------------------------------------------------------------------------------------------------------------
# Transformer encoder
# --------------------------------------------------------------------------------------------------------------


def eager_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    dropout: float = 0.0,
    **kwargs,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Plain attention. q/k/v ``(B, heads, L, d)``, additive mask ``(B, 1, 1, L)`` -> ``(B, L, heads, d)``."""
    weights = torch.matmul(query, key.transpose(2, 3)) * scaling  # (B, heads, L, L)
    if attention_mask is not None:
        weights = weights + attention_mask
    weights = F.softmax(weights, dim=-1, dtype=torch.float32).to(query.dtype)
    weights = F.dropout(weights, p=dropout, training=module.training)
    out = torch.matmul(weights, value).transpose(1, 2).contiguous()  # (B, L, heads, d)
    return out, weights


class TagnnPPSelfAttention(nn.Module):
    """Multi-head self-attention (the paper's equation (1)) through ``transformers``' attention interface."""

    def __init__(self, config: TagnnPPConfig):
        super().__init__()
        self.config = config
        self.num_heads = config.num_attention_heads
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.scaling = self.head_dim**-0.5
        self.is_causal = False  # sessions are encoded bidirectionally; sdpa must not default to causal
        self.query = nn.Linear(config.hidden_size, config.hidden_size)
        self.key = nn.Linear(config.hidden_size, config.hidden_size)
        self.value = nn.Linear(config.hidden_size, config.hidden_size)
        self.output = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """``hidden`` ``(B, L, H)``, additive ``attention_mask`` ``(B, 1, 1, L)`` -> ``(B, L, H)``."""
        batch, length, _ = hidden.shape
        shape = (batch, length, self.num_heads, self.head_dim)
        q = self.query(hidden).view(shape).transpose(1, 2)  # (B, heads, L, d)
        k = self.key(hidden).view(shape).transpose(1, 2)
        v = self.value(hidden).view(shape).transpose(1, 2)
        attention = ALL_ATTENTION_FUNCTIONS.get_interface(
            self.config._attn_implementation, eager_attention_forward
        )
        out, _ = attention(
            self,
            q,
            k,
            v,
            attention_mask.to(q.dtype),
            dropout=self.config.attention_probs_dropout_prob if self.training else 0.0,
            scaling=self.scaling,
        )
        return self.output(out.reshape(batch, length, -1))  # (B, L, H)


class TagnnPPTransformerLayer(GradientCheckpointingLayer):
    """Post-LN encoder layer: ``LN(h + Drop(MHA(h)))`` then ``LN(h + Drop(FFL(h)))``."""

    def __init__(self, config: TagnnPPConfig):
        super().__init__()
        self.attention = TagnnPPSelfAttention(config)
        self.attention_layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.intermediate = nn.Linear(config.hidden_size, config.intermediate_size)
        self.activation = ACT2FN[config.hidden_act]
        self.output = nn.Linear(config.intermediate_size, config.hidden_size)
        self.output_layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """``(B, L, H)`` -> ``(B, L, H)``; ``attention_mask`` is additive ``(B, 1, 1, L)``."""
        hidden = self.attention_layer_norm(hidden + self.dropout(self.attention(hidden, attention_mask)))
        ffl = self.output(self.dropout(self.activation(self.intermediate(hidden))))
        return self.output_layer_norm(hidden + self.dropout(ffl))


class TagnnPPCausalResidualLayer(GradientCheckpointingLayer):
    """The attention block of the authors' code: ``MHA(h) + LN(h)`` with a causal mask and no feed-forward layer.

    Each position attends to itself and the positions before it (the code masks the same way, over the session
    graph's nodes in item-ID order; here over session positions, or over the nodes with
    ``config.transformer_over="nodes"``). The residual branch is the LayerNorm of the input, the attention reads the
    input as it is.
    """

    def __init__(self, config: TagnnPPConfig):
        super().__init__()
        self.attention = TagnnPPSelfAttention(config)
        self.layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """``(B, L, H)`` -> ``(B, L, H)``; ``attention_mask`` is additive ``(B, 1, L, L)`` (causal and padding)."""
        return self.attention(hidden, attention_mask) + self.layer_norm(hidden)


class TagnnPPTransformer(nn.Module):
    """Optional learned position embeddings, dropout, then ``num_transformer_layers`` encoder layers (the paper's
    bidirectional post-LN layers, or the causal residual blocks of the authors' code: ``transformer_style``)."""

    def __init__(self, config: TagnnPPConfig):
        super().__init__()
        self.position_embeddings = (
            nn.Embedding(config.max_position_embeddings, config.hidden_size)
            if config.use_position_embeddings
            else None
        )
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.causal = config.transformer_style == "code"
        layer = TagnnPPCausalResidualLayer if self.causal else TagnnPPTransformerLayer
        self.layers = nn.ModuleList(layer(config) for _ in range(config.num_transformer_layers))

    def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """``hidden`` ``(B, L, H)``, ``attention_mask`` ``(B, L)`` of 0/1 -> ``(B, L, H)``."""
        length = hidden.shape[1]
        if self.position_embeddings is not None:
            if length > self.position_embeddings.num_embeddings:
                raise ValueError(
                    f"sessions of length {length} exceed max_position_embeddings="
                    f"{self.position_embeddings.num_embeddings}; truncate them (the processor's max_length)"
                )
            positions = torch.arange(length, device=hidden.device)
            hidden = hidden + self.position_embeddings(positions)[None]  # (B, L, H)
        hidden = self.dropout(hidden)
        allowed = attention_mask[:, None, None, :].bool()  # (B, 1, 1, L)
        if self.causal:  # and only the positions up to one's own
            allowed = allowed & torch.ones(length, length, dtype=torch.bool, device=hidden.device).tril()
        additive = (~allowed).float() * torch.finfo(torch.float32).min  # (B, 1, 1 or L, L)
        for layer in self.layers:
            hidden = layer(hidden, additive)
        return hidden


# --------------------------------------------------------------------------------------------------------------
# Session embeddings and the target-aware readout
# --------------------------------------------------------------------------------------------------------------


def softmax_with_sink(logits: torch.Tensor, sink: torch.Tensor | None) -> torch.Tensor:
    """``softmax`` over dim 1 (positions) of ``logits`` ``(B, L, ...)``; with a ``sink`` logit (a scalar), over the
    positions and one more slot of that logit whose weight is dropped, so the weights sum to less than one."""
    if sink is None:
        return torch.softmax(logits, dim=1)
    total = torch.logaddexp(torch.logsumexp(logits, dim=1, keepdim=True), sink.to(logits.dtype))
    return torch.exp(logits - total)


class SoftAttentionReadout(nn.Module):
    r"""SR-GNN's global embedding: ``alpha_i = q^T sigmoid(W_1 h_last + W_2 h_i + c)``, ``s_g = sum_i alpha_i h_i``.

    With ``config.global_attention_softmax`` the weights are ``softmax_i(alpha_i)`` over the real positions (TAGNN's
    and the TAGNN++ authors' code) instead of SR-GNN's raw ``alpha_i``.
    """

    def __init__(self, config: TagnnPPConfig):
        super().__init__()
        self.softmax = config.global_attention_softmax
        # config.attention_sink: a slot with a learned logit and a zero value (softmax weights only)
        self.sink = nn.Parameter(torch.zeros(())) if config.attention_sink and self.softmax else None
        self.linear_one = nn.Linear(config.hidden_size, config.hidden_size)  # W_1 (with c)
        self.linear_two = nn.Linear(config.hidden_size, config.hidden_size, bias=False)  # W_2
        self.linear_three = nn.Linear(config.hidden_size, 1, bias=False)  # q

    def forward(self, hidden: torch.Tensor, last: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """``hidden`` ``(B, L, H)``, ``last`` ``(B, H)``, ``attention_mask`` ``(B, L)`` -> ``s_g`` ``(B, H)``."""
        alpha = self.linear_three(
            torch.sigmoid(self.linear_one(last)[:, None] + self.linear_two(hidden))
        )  # (B,L,1)
        real = attention_mask[..., None] != 0  # (B, L, 1)
        if self.softmax:
            alpha = softmax_with_sink(alpha.masked_fill(~real, torch.finfo(alpha.dtype).min), self.sink)
        alpha = alpha * real.to(alpha.dtype)
        return (alpha * hidden).sum(dim=1)


class TargetAwareReadout(nn.Module):
    r"""TAGNN's target-aware attention and scoring over the whole catalogue.

    For a candidate item embedding ``v``: ``beta_i(v) = softmax_i(v^T W h_i)`` (over real positions),
    ``s_t(v) = sum_i beta_i(v) h_i``, ``s(v) = W_3 [s_l; s_g; s_t(v)] + b``, ``score(v) = v^T s(v)``.

    Without ``W_3`` (``config.readout_transform=False``, the authors' code) ``s(v) = s_g + s_t(v)``: the last item
    only steers the global attention.

    Splitting ``W_3 = [W_l, W_g, W_t]`` gives ``score(v) = v^T (W_l s_l + W_g s_g + b) +
    sum_i beta_i(v) v^T W_t h_i``, so every term is a ``(B, L, N)`` or ``(B, N)`` product; the catalogue is
    processed ``score_chunk_size`` items at a time and no ``(B, N, H)`` tensor is ever built.
    """

    def __init__(self, config: TagnnPPConfig):
        super().__init__()
        self.hidden_size = config.hidden_size
        self.chunk_size = config.score_chunk_size
        self.sink = nn.Parameter(torch.zeros(())) if config.attention_sink else None  # see softmax_with_sink
        self.linear_t = nn.Linear(
            config.hidden_size, config.hidden_size, bias=False
        )  # W of the target attention
        # W_3 (and b); without it (the authors' code) s(v) = s_g + s_t(v): base = s_g and values = h_i
        self.linear_transform = (
            nn.Linear(3 * config.hidden_size, config.hidden_size) if config.readout_transform else None
        )

    def forward(
        self,
        sequence_hidden: torch.Tensor,
        last_hidden: torch.Tensor,
        global_hidden: torch.Tensor,
        attention_mask: torch.Tensor,
        items: torch.Tensor,
    ) -> torch.Tensor:
        """Positions ``(B, L, H)``, ``s_l``/``s_g`` ``(B, H)``, mask ``(B, L)``, items ``(N, H)`` -> ``(B, N)``."""
        base, keys, values, pad = self._project(sequence_hidden, last_hidden, global_hidden, attention_mask)
        return self._scores(base, keys, values, pad, items)

    def _project(self, sequence_hidden, last_hidden, global_hidden, attention_mask):
        """``base`` ``(B, H)``, ``keys`` and ``values`` ``(B, L, H)`` and the additive padding mask ``(B, L, 1)``."""
        keys = self.linear_t(sequence_hidden)  # v^T W h_i = keys_i . v
        if self.linear_transform is None:  # s(v) = s_g + s_t(v)
            base, values = global_hidden, sequence_hidden
        else:
            w_l, w_g, w_t = self.linear_transform.weight.split(self.hidden_size, dim=1)  # 3 x (H, H)
            base = F.linear(last_hidden, w_l) + F.linear(global_hidden, w_g) + self.linear_transform.bias
            values = F.linear(sequence_hidden, w_t)  # v^T W_t h_i = values_i . v
        pad = (attention_mask[..., None] == 0).to(keys.dtype) * torch.finfo(keys.dtype).min
        return base, keys, values, pad

    def _scores(self, base, keys, values, pad, items) -> torch.Tensor:
        scores = []
        for chunk in items.split(self.chunk_size):  # (C, H)
            beta = softmax_with_sink(keys @ chunk.T + pad, self.sink)  # (B, L, C), over positions
            target = (beta * (values @ chunk.T)).sum(dim=1)  # (B, C) = v^T W_t s_t(v)
            scores.append(base @ chunk.T + target)  # (B, C)
        return torch.cat(scores, dim=1)  # (B, N)

    @torch.no_grad()
    def top_k(
        self,
        sequence_hidden: torch.Tensor,
        last_hidden: torch.Tensor,
        global_hidden: torch.Tensor,
        attention_mask: torch.Tensor,
        items: torch.Tensor,
        k: int,
        exclude: torch.Tensor | None = None,
        return_candidates: bool = False,
    ) -> tuple[torch.Tensor, ...]:
        r"""The ``k`` best items of :meth:`forward`'s scores, ``(B, k)`` scores and indices, best first, computing
        the target-aware attention only for items that can still reach the top ``k``.

        ``s_t(v)`` is a convex combination of the positions (``beta(v)`` sums to 1 over real positions), so
        ``base.v + min_i values_i.v <= score(v) <= base.v + max_i values_i.v`` (with ``config.attention_sink`` the
        weights sum to at most 1, and 0 joins the min and max). Those bounds cost one of the
        readout's two ``(L, H) @ (H, N)`` products; an item whose upper bound is below the ``k``-th largest lower
        bound of its row cannot be among the ``k`` best, and the attention (the other product and the softmax) runs
        on the remaining candidates only. The result is exact: the same items as ``forward(...).topk(k)``, with
        the same scores up to float rounding (a small margin keeps near-ties among the candidates).
        ``exclude``: ``(N,)`` bool, items never returned (padding, items without an ID). ``return_candidates``: also
        return the indices of the items the attention ran on.
        """
        base, keys, values, pad = self._project(sequence_hidden, last_hidden, global_hidden, attention_mask)
        real = attention_mask[..., None] != 0  # (B, L, 1)
        padded = not bool(real.all())
        n = items.shape[0]
        # keep the (B, L, N) values.v products for the candidates' exact scores when they fit the memory bound,
        # so that a session whose bounds prune little costs no more than scoring the whole catalogue
        keep = values.shape[0] * n <= 8 * self.chunk_size  # (B, L, N) within 8 chunks' worth
        lower, upper, kept = [], [], None
        # values and base in one product: for one session the cost is reading the (N, H) item matrix from memory,
        # so read it once
        rows = torch.cat([values, base[:, None]], dim=1)  # (B, L + 1, H)
        length = values.shape[1]
        for chunk in items.split(n if keep else self.chunk_size):  # (C, H)
            products = rows @ chunk.T  # (B, L + 1, C)
            v, b = products[:, :length], products[:, length]  # (B, L, C), (B, C)
            if padded:
                low = v.masked_fill(~real, float("inf")).amin(dim=1)
                high = v.masked_fill(~real, float("-inf")).amax(dim=1)
            else:
                low, high = torch.aminmax(v, dim=1)
            if self.sink is not None:  # the weights sum to less than one: the zero value is in the hull too
                low, high = low.clamp(max=0), high.clamp(min=0)
            lower.append(b + low)
            upper.append(b + high)
            if keep:  # a single chunk: the whole catalogue
                kept = v
        lower, upper = torch.cat(lower, dim=1), torch.cat(upper, dim=1)  # (B, N)
        if exclude is not None:
            lower = lower.masked_fill(exclude, float("-inf"))
            upper = upper.masked_fill(exclude, float("-inf"))
        threshold = lower.topk(k, dim=1).values[:, -1:]  # (B, 1): the k-th best score is at least this
        margin = 1e-4 * (threshold.abs() + 1.0)  # float rounding of the bounds
        # the union over the batch of the items that can reach each row's top k: (M,)
        candidates = (upper >= threshold - margin).any(dim=0).nonzero().squeeze(1)
        chosen = items[candidates]  # (M, H)
        if kept is not None:  # the exact scores of the candidates from the kept products
            beta = softmax_with_sink(keys @ chosen.T + pad, self.sink)  # (B, L, M)
            scores = base @ chosen.T + (beta * kept[:, :, candidates]).sum(dim=1)  # (B, M)
        else:
            scores = self._scores(base, keys, values, pad, chosen)  # (B, M), exact
        if exclude is not None:
            scores = scores.masked_fill(exclude[candidates], float("-inf"))
        best, where = scores.topk(k, dim=1)
        return (best, candidates[where], candidates) if return_candidates else (best, candidates[where])


# --------------------------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------------------------


class TagnnPPPreTrainedModel(StrictLoadingMixin, PreTrainedModel):
    config: TagnnPPConfig
    base_model_prefix = "tagnn_pp"
    main_input_name = "x"  # (|V|,) item index of every graph node: a tensor key of the batch
    supports_gradient_checkpointing = True
    _no_split_modules = ["TagnnPPTransformerLayer"]
    _supports_sdpa = True
    _supports_attention_backend = True

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        if getattr(module, "_srgnn_uniform_init", False) or (
            self.config.uniform_init and isinstance(module, nn.Linear | nn.Embedding | nn.LayerNorm)
        ):
            # The gated GNN keeps SR-GNN's uniform +-1/sqrt(H) init (weights and biases). Modules are visited
            # children first, so this must happen here, on the cell's own Linear / GRUCell modules: a
            # reset_parameters() on the parent afterwards would be skipped by transformers' init guard.
            bound = self.config.hidden_size**-0.5
            for p in module.parameters(recurse=False):
                init.uniform_(p, -bound, bound)
            if isinstance(module, nn.Embedding) and module.padding_idx is not None:
                module.weight[module.padding_idx].zero_()  # the padding row stays zero (the code trains it)
            return
        if isinstance(module, TagnnPPModel) and module.leading_node is not None:  # transformer_over="nodes"
            if self.config.uniform_init:
                bound = self.config.hidden_size**-0.5
                init.uniform_(module.leading_node, -bound, bound)
            else:
                init.normal_(module.leading_node, std=self.config.initializer_range)
        if isinstance(module, SoftAttentionReadout | TargetAwareReadout) and module.sink is not None:
            init.zeros_(module.sink)  # config.attention_sink: the sink starts at logit 0
        super()._init_weights(module)  # nn.Linear / nn.Embedding (padding row zeroed) / LayerNorm


class TagnnPPModel(TagnnPPPreTrainedModel):
    """The TAGNN++ encoder: item embeddings -> gated GNN -> Transformer -> SR-GNN local/global embeddings.

    Inputs are the flat batch of session graphs that :class:`TagnnPPProcessor` builds (see ``forward``).
    """

    def __init__(self, config: TagnnPPConfig):
        super().__init__(config)
        self.item_embeddings = nn.Embedding(config.num_items, config.hidden_size, padding_idx=0)
        self.gnn = TagnnPPGatedGNN(config) if config.use_gnn else None
        self.transformer = TagnnPPTransformer(config) if config.use_transformer else None
        self.global_attention = SoftAttentionReadout(config)
        # transformer_over="nodes": the learned node every session's nodes can attend to (see the config)
        over_nodes = config.use_transformer and config.transformer_over == "nodes"
        self.leading_node = nn.Parameter(torch.zeros(config.hidden_size)) if over_nodes else None
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.item_embeddings

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.item_embeddings = value

    def _transform_nodes(self, h: torch.Tensor, x: torch.Tensor, alias: torch.Tensor) -> torch.Tensor:
        """The Transformer over each session's graph nodes in item-index order after the leading node
        (``transformer_over="nodes"``): node states ``(|V|, H)`` in, node states ``(|V|, H)`` out."""
        num_nodes, batch_size = h.shape[0], alias.shape[0]
        # the batch is a disjoint union in session order: session b's nodes start at the node of its position 0
        starts = alias[:, 0]  # (B,)
        counts = torch.diff(starts, append=starts.new_tensor([num_nodes]))  # (B,)
        session = torch.repeat_interleave(torch.arange(batch_size, device=h.device), counts)  # (|V|,)
        order = torch.argsort(session * self.config.num_items + x)  # session by session, item index ascending
        nodes, real = to_dense_batch(h[order], session[order], batch_size=batch_size)  # (B, n, H), (B, n)
        lead = self.leading_node[None].to(h.dtype)  # (1, H)
        if self.gnn is not None:  # an isolated node of the graph: the GNN's update without messages
            no_edges = torch.zeros(2, 0, dtype=torch.long, device=h.device)
            no_weights = torch.zeros(0, dtype=h.dtype, device=h.device)
            lead = self.gnn(lead, no_edges, no_weights, no_weights)  # (1, H)
        nodes = torch.cat([lead.expand(batch_size, 1, -1), nodes], dim=1)  # (B, 1 + n, H)
        real = torch.cat([real.new_ones(batch_size, 1), real], dim=1)  # (B, 1 + n)
        out = self.transformer(nodes, real.long())[:, 1:][real[:, 1:]]  # (|V|, H) in `order`
        return torch.empty_like(out).index_copy_(0, order, out)  # (|V|, H) in the batch's node order

    @can_return_tuple
    def forward(
        self,
        x: torch.LongTensor,
        edge_index: torch.LongTensor,
        in_weight: torch.FloatTensor,
        out_weight: torch.FloatTensor,
        alias: torch.LongTensor,
        attention_mask: torch.LongTensor,
    ) -> TagnnPPModelOutput:
        r"""Encode a batch of sessions given as one disjoint union of their transition graphs.

        Args:
            x: ``(|V|,)`` item index of every node (1..num_items-1).
            edge_index: ``(2, |E|)`` transitions ``source -> target`` between nodes of the same session.
            in_weight: ``(|E|,)`` edge weights of the in-degree-normalised matrix ``A_in``.
            out_weight: ``(|E|,)`` edge weights of the out-degree-normalised matrix ``A_out``.
            alias: ``(B, L)`` node (index into ``x``) of every session position, right-padded with any valid node.
            attention_mask: ``(B, L)`` 1 at real positions, 0 at padding; every row has at least one 1.
        """
        h = self.item_embeddings(x)  # (|V|, H)
        if self.gnn is not None:
            # transition_weights="binary" (the authors' code): each distinct edge counts once
            if self.config.transition_weights == "binary":
                in_weight, out_weight = binary_transition_weights(edge_index, x.shape[0])
            h = self.gnn(h, edge_index, in_weight, out_weight)  # (|V|, H)
        mask = attention_mask.to(h.dtype)[..., None]  # (B, L, 1)
        if self.leading_node is not None:  # transformer_over="nodes": attend over the nodes, then scatter
            h = self._transform_nodes(h, x, alias)  # (|V|, H)
        hidden = h[alias] * mask  # (B, L, H)
        if self.transformer is not None and self.leading_node is None:
            hidden = self.transformer(hidden, attention_mask) * mask  # (B, L, H)
        last_index = attention_mask.sum(dim=1).clamp(min=1) - 1  # (B,) right padding: last real position
        last = hidden[torch.arange(hidden.shape[0], device=hidden.device), last_index]  # (B, H)
        return TagnnPPModelOutput(
            sequence_hidden=hidden,
            last_hidden=last,
            global_hidden=self.global_attention(hidden, last, attention_mask),
            attention_mask=attention_mask,
        )

    @torch.no_grad()
    def encode_sessions(
        self,
        sessions: Sequence[str] | Sequence[Sequence[str]],
        processor=None,
        batch_size: int = 256,
        unknown_items: str | None = None,
    ) -> np.ndarray:
        """Session embeddings of sessions of *your* item IDs, as a float32 numpy array.

        A session's embedding is ``[s_l; s_g]`` (``2 * hidden_size``): SR-GNN's local embedding (the last item's
        state) and global embedding (soft attention over the positions), concatenated; the target-aware part of
        TAGNN++ depends on a candidate item and has no single vector. One session (a list of IDs) gives a
        ``(2H,)`` vector, a list of sessions ``(B, 2H)``. ``processor`` (a :class:`TagnnPPProcessor`) maps the IDs;
        unknown IDs follow ``unknown_items`` (``"error"`` or ``"skip"``), by default the processor's policy. Runs in
        eval mode.
        """
        if processor is None:
            raise ValueError("encode_sessions() needs the TagnnPPProcessor: pass processor=...")
        single = bool(sessions) and isinstance(sessions[0], str)
        batch_sessions = [list(sessions)] if single else [list(s) for s in sessions]
        was_training = self.training
        self.eval()
        out = []
        for start in range(0, len(batch_sessions), batch_size):
            batch = processor(batch_sessions[start : start + batch_size], unknown_items=unknown_items).to(
                self.device
            )
            enc = self(**{k: batch[k] for k in processor.model_input_names})
            out.append(torch.cat([enc.last_hidden, enc.global_hidden], dim=1).float().cpu())
        self.train(was_training)
        width = 2 * self.config.hidden_size
        vectors = torch.cat(out).numpy() if out else np.zeros((0, width), dtype=np.float32)
        return vectors[0] if single else vectors

    @torch.no_grad()
    def encode_items(self, item_ids: Sequence[str] | None = None, processor=None) -> np.ndarray:
        """Item embeddings (rows of the item embedding matrix, which also scores the catalogue) of *your* item IDs,
        ``(N, hidden_size)`` float32; ``item_ids=None``: every item of the processor, in ``processor.item_vocab``
        order. An unknown ID raises ``KeyError`` naming it."""
        if processor is None:
            raise ValueError("encode_items() needs the TagnnPPProcessor: pass processor=...")
        ids = list(processor.item_vocab if item_ids is None else item_ids)
        index = processor._index
        unknown = [i for i in ids if i not in index]
        if unknown:
            example = processor.item_vocab[:3]
            raise KeyError(
                f"unknown item IDs {unknown[:5]} ({len(unknown)} in all); known IDs look like {example}"
            )
        rows = torch.tensor([index[i] for i in ids], dtype=torch.long, device=self.device)
        return self.item_embeddings.weight[rows].float().cpu().numpy()


class TagnnPPForNextItemPrediction(TagnnPPPreTrainedModel):
    """TAGNN++ with TAGNN's target-aware readout: next-item scores over the whole catalogue.

    Candidate items are scored with the (shared) item embeddings. Training minimises the cross-entropy of the
    next item. For recommendations with your own item IDs use :meth:`recommend` with the processor:
    ``model.recommend(sessions, processor=processor)``.
    """

    accepts_loss_kwargs = False

    def __init__(self, config: TagnnPPConfig):
        super().__init__(config)
        self.tagnn_pp = TagnnPPModel(config)
        self.readout = TargetAwareReadout(config)
        self.processor = None  # optional TagnnPPProcessor used by ``recommend``; not saved with the weights
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.tagnn_pp.item_embeddings

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.tagnn_pp.item_embeddings = value

    def agc_parameters(self) -> list[nn.Parameter]:
        """What adaptive gradient clipping clips: every parameter but the item embeddings.

        The item embedding matrix is also this model's output layer (the readout scores the catalogue with it),
        and Brock et al. leave the final layer unclipped. Clipped at lambda = 0.01, this matrix is what kept
        TAGNN++ from learning on real data. Biases and LayerNorm vectors are clipped as one unit each, as in
        Brock et al.'s implementation.
        """
        if self.config.agc_clip_output_layer:  # the behaviour before the fix, kept for the benchmark
            return list(self.parameters())
        embeddings = self.tagnn_pp.item_embeddings.weight
        return [p for p in self.parameters() if p is not embeddings]

    @can_return_tuple
    def forward(
        self,
        x: torch.LongTensor,
        edge_index: torch.LongTensor,
        in_weight: torch.FloatTensor,
        out_weight: torch.FloatTensor,
        alias: torch.LongTensor,
        attention_mask: torch.LongTensor,
        labels: torch.LongTensor | None = None,
    ) -> TagnnPPNextItemOutput:
        r"""Score every catalogue item as the next item of each session.

        Args:
            x, edge_index, in_weight, out_weight, alias, attention_mask: the session graphs, as in
                :meth:`TagnnPPModel.forward` (what :class:`TagnnPPProcessor` returns).
            labels: ``(B,)`` index of the next item; ``-100`` entries are ignored by the loss.
        """
        out = self.tagnn_pp(x, edge_index, in_weight, out_weight, alias, attention_mask)
        items = self.tagnn_pp.item_embeddings.weight  # (N, H)
        logits = self.readout(out.sequence_hidden, out.last_hidden, out.global_hidden, attention_mask, items)
        is_pad = torch.arange(logits.shape[1], device=logits.device) == self.config.pad_token_id  # (N,)
        logits = logits.masked_fill(is_pad, torch.finfo(logits.dtype).min)  # (B, N)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.float(), labels.to(logits.device), ignore_index=-100)
        return TagnnPPNextItemOutput(loss=loss, logits=logits)

    def encode_sessions(
        self,
        sessions: Sequence[str] | Sequence[Sequence[str]],
        processor=None,
        batch_size: int = 256,
        unknown_items: str | None = None,
    ) -> np.ndarray:
        """Session embeddings ``[s_l; s_g]`` of the encoder (see :meth:`TagnnPPModel.encode_sessions`); ``processor``
        defaults to ``model.processor``."""
        return self.tagnn_pp.encode_sessions(sessions, processor or self.processor, batch_size, unknown_items)

    def encode_items(self, item_ids: Sequence[str] | None = None, processor=None) -> np.ndarray:
        """Item embeddings (see :meth:`TagnnPPModel.encode_items`); ``processor`` defaults to ``model.processor``."""
        return self.tagnn_pp.encode_items(item_ids, processor or self.processor)

    def unrankable_items(self, known: int) -> torch.Tensor:
        """``(N,)`` bool: the catalogue indices ``recommend`` never returns: padding, and indices ``>= known`` (those
        a processor of ``known`` items has no ID for)."""
        unrankable = torch.arange(self.config.num_items, device=self.device) >= known
        unrankable[self.config.pad_token_id] = True
        return unrankable

    @torch.no_grad()
    def recommend(
        self,
        sessions: Sequence[Sequence[str]],
        top_k: int = 20,
        processor: Callable | None = None,
        batch_size: int = 256,
        unknown_items: str | None = None,
    ) -> list[list[tuple[str, float]]]:
        """Top-``k`` next items for sessions of *your* item IDs, as ``[(item_id, score), ...]`` best first.

        ``processor`` (a :class:`TagnnPPProcessor`) maps IDs to indices and back; pass it or attach it once with
        ``model.processor = processor``. Unknown input IDs follow ``unknown_items`` (``"error"``: a ``KeyError``
        naming them; ``"skip"``: dropped with one warning that counts them), by default the processor's policy. The
        padding index and catalogue indices the processor has no ID for are never returned. Runs in eval mode.
        """
        processor = processor if processor is not None else self.processor
        if processor is None:
            raise ValueError(
                "recommend() needs a TagnnPPProcessor: pass processor=... or set model.processor"
            )
        if processor.num_items > self.config.num_items:
            raise ValueError(
                f"the processor knows {processor.num_items - 1} items but the model scores only "
                f"{self.config.num_items - 1}; they do not belong together"
            )
        known = processor.num_items  # indices >= known have no user ID
        top_k = min(top_k, known - 1)
        items = self.tagnn_pp.item_embeddings.weight  # (N, H)
        exclude = self.unrankable_items(known)
        was_training = self.training
        self.eval()
        results: list[list[tuple[str, float]]] = []
        for start in range(0, len(sessions), batch_size):
            batch = processor(list(sessions[start : start + batch_size]), unknown_items=unknown_items).to(
                self.device
            )
            out = self.tagnn_pp(**{k: batch[k] for k in processor.model_input_names})
            # exact top-k without the target-aware attention of items that cannot make it (TargetAwareReadout.top_k)
            scores, indices = self.readout.top_k(
                out.sequence_hidden,
                out.last_hidden,
                out.global_hidden,
                out.attention_mask,
                items,
                top_k,
                exclude,
            )
            ids = processor.decode(indices.tolist())
            results.extend(
                list(zip(row_ids, row_scores)) for row_ids, row_scores in zip(ids, scores.float().tolist())
            )
        self.train(was_training)
        return results


__all__ = [
    "SRGNNCell",
    "SoftAttentionReadout",
    "TagnnPPForNextItemPrediction",
    "TagnnPPModel",
    "TagnnPPModelOutput",
    "TagnnPPNextItemOutput",
    "TagnnPPPreTrainedModel",
    "TargetAwareReadout",
]
