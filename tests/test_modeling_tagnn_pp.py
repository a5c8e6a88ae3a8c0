"""TAGNN++: the shared model contract, the chunked readout against a naive reference, ablations, the processor."""

import json

import numpy as np
import pytest
import torch
from transformers import AutoModel, AutoModelForPreTraining, AutoProcessor

import session_transformers  # noqa: F401  (registers the Auto classes)
from model_tester import ModelTesterMixin
from session_transformers import AutoModelForNextItemPrediction
from session_transformers.graphs import transition
from session_transformers.modeling_utils import CheckpointError
from session_transformers.models.tagnn_pp import (
    PAPER_ARCHITECTURE,
    SRGNNCell,
    TagnnPPConfig,
    TagnnPPForNextItemPrediction,
    TagnnPPModel,
    TagnnPPProcessor,
    binary_transition_weights,
    build_graph_batch,
)
from session_transformers.optim import adaptive_clip_grad_

ITEMS = [f"item{i}" for i in range(1, 13)]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny models gain nothing from intra-op threads, and on a busy machine they thrash (~100x slower)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _session(sid: str, items: list[str]) -> dict:
    events = [
        {
            "action": "view",
            "timestamp": float(t),
            "subject": "item",
            "item_id": i,
            "query": None,
            "image": None,
        }
        for t, i in enumerate(items)
    ]
    return {"session_id": sid, "events": events}


def _item_ids(session: dict) -> list[str]:
    return [e["item_id"] for e in session["events"] if e["subject"] == "item"]


def _processor(**kwargs) -> TagnnPPProcessor:
    return TagnnPPProcessor(item_vocab=ITEMS, max_length=16, **kwargs)


def _tiny_config(**kwargs) -> TagnnPPConfig:
    defaults = dict(
        num_items=len(ITEMS) + 1,
        hidden_size=16,
        num_attention_heads=2,
        intermediate_size=32,
        gnn_steps=2,
        num_transformer_layers=2,
        max_position_embeddings=16,
        score_chunk_size=5,
    )
    return TagnnPPConfig(**{**defaults, **kwargs})


class TestTagnnPP(ModelTesterMixin):
    config_class = TagnnPPConfig
    base_model_class = TagnnPPModel
    head_classes = {TagnnPPForNextItemPrediction: AutoModelForNextItemPrediction}
    invalid_config_kwargs = [
        {"num_attention_heads": 3},  # 16 % 3
        {"num_items": 1},
        {"gnn_steps": 0},
        {"hidden_dropout_prob": 1.0},
        {"score_chunk_size": 0},
        {"agc_clip_factor": 0.0},
    ]

    def get_config(self):
        return _tiny_config()

    def get_sessions(self):
        return [
            _session("s0", ["item1", "item2", "item3", "item2", "item4"]),  # repeated item, a cycle
            _session("s1", ["item5"]),  # length 1: one node, no edge
            _session("s2", ["item6", "item6", "item7"]),  # a self-loop
            _session("s3", ["item8", "item9", "item10", "item11", "item12", "item1", "item8"]),
        ]

    def collate(self, config, sessions, with_labels=False):
        item_ids = [_item_ids(s) for s in sessions]
        targets = [ids[0] for ids in item_ids] if with_labels else None
        return dict(_processor()(item_ids, targets=targets))

    def session_outputs(self, outputs):
        return torch.cat([outputs.last_hidden, outputs.global_hidden], dim=-1)  # (B, 2H)


# --- the readout ---------------------------------------------------------------------------------------------


def _naive_logits(model: TagnnPPForNextItemPrediction, batch: dict) -> torch.Tensor:
    """TAGNN's readout as written in the paper, materialising ``(B, N, H)``."""
    out = model.tagnn_pp(**batch)
    h, mask = out.sequence_hidden, batch["attention_mask"].bool()  # (B, L, H), (B, L)
    items = model.tagnn_pp.item_embeddings.weight  # (N, H)
    att = torch.einsum("blh,nh->bnl", model.readout.linear_t(h), items)  # (B, N, L)
    att = att.masked_fill(~mask[:, None, :], float("-inf"))
    if model.readout.sink is not None:  # one more slot: the sink's logit, a zero value
        sink = model.readout.sink.expand(*att.shape[:2], 1)
        beta = torch.cat([att, sink], -1).softmax(-1)[..., :-1]
    else:
        beta = att.softmax(-1)
    s_t = torch.einsum("bnl,blh->bnh", beta, h)  # (B, N, H)
    n = items.shape[0]
    if model.readout.linear_transform is None:  # the authors' code: s(v) = s_g + s_t(v)
        rep = out.global_hidden[:, None] + s_t
    else:
        cat = torch.cat(
            [out.last_hidden[:, None].expand(-1, n, -1), out.global_hidden[:, None].expand(-1, n, -1), s_t],
            -1,
        )
        rep = model.readout.linear_transform(cat)  # (B, N, H)
    logits = (rep * items[None]).sum(-1)  # (B, N)
    logits[:, 0] = torch.finfo(logits.dtype).min
    return logits


CODE_STYLE = dict(
    transformer_style="code", readout_transform=False, global_attention_softmax=True, uniform_init=True
)
"""Every switch towards the authors' released code (the defaults)."""


SINK_STYLE = dict(CODE_STYLE, attention_sink=True)
"""The defaults with the readout's attention sinks (``attention_sink``)."""

NODES_STYLE = dict(CODE_STYLE, transformer_over="nodes")
"""The defaults with the Transformer over the session graph's nodes (``transformer_over="nodes"``)."""


def _with_sinks(model: TagnnPPForNextItemPrediction, value: float) -> TagnnPPForNextItemPrediction:
    """Move the sinks' logits off their zero start, so that a test sees them."""
    with torch.no_grad():
        for sink in (model.readout.sink, model.tagnn_pp.global_attention.sink):
            if sink is not None:
                sink.fill_(value)
    return model


@pytest.mark.parametrize(
    "style",
    [PAPER_ARCHITECTURE, CODE_STYLE, SINK_STYLE, NODES_STYLE],
    ids=["paper", "code", "sink", "nodes"],
)
@pytest.mark.parametrize("chunk", [1, 4, 13, 1000])
def test_chunked_scores_equal_naive_reference(chunk, style):
    torch.manual_seed(0)
    model = _with_sinks(
        TagnnPPForNextItemPrediction(_tiny_config(score_chunk_size=chunk, **style)).eval(), 0.7
    )
    batch = dict(_processor()([_item_ids(s) for s in TestTagnnPP().get_sessions()]))
    with torch.no_grad():
        torch.testing.assert_close(model(**batch).logits, _naive_logits(model, batch), atol=1e-5, rtol=1e-5)


def test_padding_index_never_scores_or_recommended():
    torch.manual_seed(0)
    model = TagnnPPForNextItemPrediction(_tiny_config()).eval()
    batch = dict(_processor()([["item1", "item2"]]))
    logits = model(**batch).logits
    assert logits.argmin(1).item() == 0 and logits[0, 0] == torch.finfo(logits.dtype).min
    recs = model.recommend([["item1"]], top_k=100, processor=_processor())
    assert len(recs[0]) == len(ITEMS) and {i for i, _ in recs[0]} == set(ITEMS)


@pytest.mark.parametrize(
    ("seed", "chunk", "transform", "sink"),
    [(0, 128, True, False), (1, 128, False, False), (2, 4096, True, False), (3, 4096, False, False)]
    + [(4, 128, False, True), (5, 4096, False, True)],
)
def test_pruned_top_k_equals_the_full_ranking(seed, chunk, transform, sink):
    """``TargetAwareReadout.top_k`` skips the attention of items that cannot reach the top k: same items as the
    full scores' top k, same scores, for padded batches and single sessions, whether it keeps the bound pass's
    products (chunk 4096) or rescores the candidates (chunk 128); ``recommend`` agrees with the full logits."""
    torch.manual_seed(seed)
    n = 600
    model = TagnnPPForNextItemPrediction(
        _tiny_config(num_items=n, score_chunk_size=chunk, readout_transform=transform, attention_sink=sink)
    ).eval()
    _with_sinks(model, 1.5)  # a strong sink: scores far from the convex hull of the positions' values
    vocab = [f"p{i}" for i in range(1, n - 50)]  # the last 50 indices have no ID: never returned
    processor = TagnnPPProcessor(item_vocab=vocab, max_length=16)
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, 15, (8,), generator=g).tolist()
    sessions = [[vocab[j] for j in torch.randint(len(vocab), (m,), generator=g)] for m in lengths]
    items = model.tagnn_pp.item_embeddings.weight
    exclude = torch.arange(n) >= processor.num_items
    exclude[0] = True
    with torch.no_grad():
        for batch_sessions in (sessions, sessions[:1], sessions[-1:]):
            batch = dict(processor(batch_sessions))
            full = model(**batch).logits[:, : processor.num_items]
            full[:, 0] = float("-inf")
            out = model.tagnn_pp(**{k: batch[k] for k in processor.model_input_names})
            for k in (1, 20, processor.num_items - 1):
                scores, indices, candidates = model.readout.top_k(
                    out.sequence_hidden, out.last_hidden, out.global_hidden, out.attention_mask, items, k,
                    exclude, return_candidates=True,
                )  # fmt: skip
                want_scores, want = full.topk(k, dim=1)
                assert torch.equal(indices, want)
                torch.testing.assert_close(scores, want_scores, atol=1e-5, rtol=1e-5)
                assert candidates.numel() >= k and not exclude[candidates].any()
    recs = model.recommend(sessions, top_k=20, processor=processor)
    full = model(**dict(processor(sessions))).logits[:, : processor.num_items].detach()
    full[:, 0] = float("-inf")
    assert [[i for i, _ in row] for row in recs] == processor.decode(full.topk(20, dim=1).indices.tolist())


def test_code_style_attention_is_causal_and_its_global_weights_sum_to_one():
    """``transformer_style="code"``: a position never sees the items after it; ``global_attention_softmax``: the
    global embedding is a convex combination of the positions (equal states give that state back)."""
    torch.manual_seed(0)
    model = TagnnPPModel(_tiny_config(use_gnn=False, **CODE_STYLE)).eval()
    processor = _processor()
    with torch.no_grad():
        a = model(**dict(processor([["item1", "item2", "item3"]]))).sequence_hidden
        b = model(**dict(processor([["item1", "item2", "item7"]]))).sequence_hidden
        torch.testing.assert_close(a[:, :2], b[:, :2])
        assert not torch.allclose(a[:, 2], b[:, 2])
        state = torch.randn(1, 1, model.config.hidden_size).expand(2, 4, -1)
        mask = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0]])
        torch.testing.assert_close(model.global_attention(state, state[:, 0], mask), state[:, 0])
    paper = TagnnPPModel(_tiny_config(use_gnn=False, **PAPER_ARCHITECTURE)).eval()
    with torch.no_grad():  # the paper's encoder is bidirectional: the last item changes the first position
        a = paper(**dict(processor([["item1", "item2", "item3"]]))).sequence_hidden
        b = paper(**dict(processor([["item1", "item2", "item7"]]))).sequence_hidden
    assert not torch.allclose(a[:, 0], b[:, 0])


def test_transformer_over_nodes_attends_by_item_index_and_ignores_the_batch():
    """``transformer_over="nodes"``: each distinct item is one state (repeats share it); a node sees the leading
    node and the nodes of lower item index, whatever the positions' order; a session's states do not depend on the
    sessions batched with it; the leading node is learned, saved and in the GNN's path."""
    torch.manual_seed(0)
    processor = _processor()
    model = TagnnPPModel(_tiny_config(use_gnn=False, **NODES_STYLE)).eval()
    assert model.leading_node is not None and model.leading_node.abs().sum() > 0
    with torch.no_grad():
        a = model(**dict(processor([["item3", "item1", "item2", "item1"]]))).sequence_hidden[0]
        b = model(**dict(processor([["item2", "item3", "item1"]]))).sequence_hidden[0]
        c = model(**dict(processor([["item1", "item2", "item7"]]))).sequence_hidden[0]
        torch.testing.assert_close(a[1], a[3])  # item1 twice: one node
        # same items in another order: the same node states (no positions, no GNN here)
        torch.testing.assert_close(a[[1, 2, 0]], b[[2, 0, 1]])
        # item3 -> item7: the nodes of lower index (item1, item2) are unchanged, the replaced one is not
        torch.testing.assert_close(c[:2], b[[2, 0]])
        assert not torch.allclose(c[2], b[1])
        alone = model(**dict(processor([["item2", "item3", "item1"]])))
        batched = model(
            **dict(processor([["item4"], ["item2", "item3", "item1"], ["item5"] * 2 + ["item6"] * 4]))
        )
        torch.testing.assert_close(batched.sequence_hidden[1, :3], alone.sequence_hidden[0])
        torch.testing.assert_close(batched.global_hidden[1], alone.global_hidden[0])
    with pytest.raises(ValueError, match="use_position_embeddings=False"):
        _tiny_config(transformer_over="nodes", use_position_embeddings=True)
    with pytest.raises(ValueError, match="'positions' or 'nodes'"):
        _tiny_config(transformer_over="edges")
    # with the GNN, the leading node goes through it as an isolated node and is trained
    gnn = TagnnPPForNextItemPrediction(_tiny_config(**NODES_STYLE)).eval()
    batch = dict(processor([["item2", "item3", "item1"]]))
    with torch.no_grad():
        before = gnn(**batch).logits
        gnn.tagnn_pp.leading_node.add_(0.5)
        assert not torch.allclose(before, gnn(**batch).logits)
    loss = gnn.train()(**batch, labels=torch.tensor([4])).loss
    loss.backward()
    assert gnn.tagnn_pp.leading_node.grad is not None and gnn.tagnn_pp.leading_node.grad.abs().sum() > 0


def test_attention_sinks_take_weight_from_the_positions_and_start_at_zero(tmp_path):
    """``attention_sink``: the global weights sum to less than one (equal states give a
    shrunk state back); the sinks start at logit 0, save and load, and a checkpoint without them is refused."""
    torch.manual_seed(0)
    model = TagnnPPForNextItemPrediction(_tiny_config(use_gnn=False, **SINK_STYLE)).eval()
    readout = model.tagnn_pp.global_attention
    assert model.readout.sink.item() == 0 and readout.sink.item() == 0
    state = torch.randn(1, 1, model.config.hidden_size).expand(2, 4, -1)
    mask = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0]])
    with torch.no_grad():
        _with_sinks(model, 0.5)
        out = readout(state, state[:, 0], mask)
    shrink = out[:, 0] / state[:, 0, 0]  # the weight left to the positions, per session
    assert (shrink < 1).all() and shrink[0] > shrink[
        1
    ]  # three positions outweigh the sink more than one does
    torch.testing.assert_close(
        shrink[1],
        torch.sigmoid(
            -readout.sink
            + readout.linear_three(
                torch.sigmoid(readout.linear_one(state[1:, 0]) + readout.linear_two(state[1:, :1]))
            ).squeeze()
        ),
    )
    model.save_pretrained(tmp_path / "sink")
    loaded = TagnnPPForNextItemPrediction.from_pretrained(tmp_path / "sink")
    assert loaded.readout.sink.item() == 0.5 and loaded.config.attention_sink
    plain = TagnnPPForNextItemPrediction(_tiny_config(use_gnn=False, **CODE_STYLE))
    plain.save_pretrained(tmp_path / "plain")
    with pytest.raises(CheckpointError, match="readout.sink, tagnn_pp.global_attention.sink"):
        TagnnPPForNextItemPrediction.from_pretrained(
            tmp_path / "plain", attention_sink=True
        )  # strict loading


def test_uniform_init_is_the_codes_and_keeps_the_padding_row_zero():
    model = TagnnPPForNextItemPrediction(_tiny_config(**{**PAPER_ARCHITECTURE, "uniform_init": True}))
    bound = model.config.hidden_size**-0.5
    for name, p in model.named_parameters():
        assert p.abs().max() <= bound + 1e-6, name
    weights = model.tagnn_pp.item_embeddings.weight
    assert (
        weights[0].abs().sum() == 0 and weights[1:].abs().max() > 0.8 * bound
    )  # uniform, not normal(0, 0.02)
    assert model.readout.linear_transform is not None  # the switches are independent


# --- the ablations of Table 3 ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("switch", "removed"),
    [
        ("use_gnn", "tagnn_pp.gnn."),
        ("use_transformer", "tagnn_pp.transformer."),
        ("use_position_embeddings", "tagnn_pp.transformer.position_embeddings."),
    ],
)
def test_ablation_removes_component(switch, removed):
    full = {n for n, _ in TagnnPPForNextItemPrediction(_tiny_config(**PAPER_ARCHITECTURE)).named_parameters()}
    assert any(n.startswith(removed) for n in full)
    model = TagnnPPForNextItemPrediction(_tiny_config(**{**PAPER_ARCHITECTURE, switch: False}))
    names = {n for n, _ in model.named_parameters()}
    assert not any(n.startswith(removed) for n in names), f"{switch}=False kept {removed}"
    assert names < full
    item_ids = [_item_ids(s) for s in TestTagnnPP().get_sessions()]
    out = model(**_processor()(item_ids, targets=[ids[-1] for ids in item_ids]))
    out.loss.backward()
    assert torch.isfinite(out.loss)


def test_without_gnn_positions_see_raw_embeddings():
    """No GNN: the Transformer input is the item embedding itself (no message from other items)."""
    torch.manual_seed(0)
    model = TagnnPPModel(_tiny_config(use_gnn=False, use_transformer=False)).eval()
    batch = _processor()([["item1", "item2", "item3"]])
    out = model(**batch)
    emb = model.item_embeddings(torch.tensor([1, 2, 3]))
    torch.testing.assert_close(out.sequence_hidden[0], emb)
    torch.testing.assert_close(out.last_hidden[0], emb[-1])


@pytest.mark.parametrize(
    "style",
    [PAPER_ARCHITECTURE, CODE_STYLE, NODES_STYLE],
    ids=["paper", "code", "nodes"],
)
def test_sdpa_equals_eager(style):
    torch.manual_seed(0)
    model = TagnnPPForNextItemPrediction(_tiny_config(**style)).eval()
    assert model.config._attn_implementation == "sdpa"
    batch = dict(_processor()([_item_ids(s) for s in TestTagnnPP().get_sessions()]))
    with torch.no_grad():
        sdpa = model(**batch).logits
        model.set_attn_implementation("eager")
        eager = model(**batch).logits
    torch.testing.assert_close(sdpa, eager, atol=1e-5, rtol=1e-5)


def test_gated_gnn_known_answer():
    """One SR-GNN step on the chain a -> b -> a -> c by hand (in/out matrices from the SR-GNN paper)."""
    torch.manual_seed(0)
    cell = SRGNNCell(4)
    arrays = build_graph_batch([[7, 8, 7, 9]])  # nodes 7, 8, 9
    h = torch.randn(3, 4)
    got = cell(
        h,
        torch.from_numpy(arrays["edge_index"]),
        torch.from_numpy(arrays["in_weight"]),
        torch.from_numpy(arrays["out_weight"]),
    )
    a = torch.tensor([[0, 1, 1], [1, 0, 0], [0, 0, 0]], dtype=torch.float)  # counts of u -> v
    a_in = (a / a.sum(0).clamp(min=1)).T  # row v: normalised over v's in-edges
    a_out = a / a.sum(1, keepdim=True).clamp(min=1)  # row u: normalised over u's out-edges
    inputs = torch.cat([cell.linear_edge_in(a_in @ h), cell.linear_edge_out(a_out @ h)], -1)
    torch.testing.assert_close(got, cell.gru(inputs, h))

    # style="code", as the released code computes it: A @ (W h + b') + b, the maps' biases riding the edges
    code = SRGNNCell(4, style="code")
    torch.nn.init.normal_(code.bias_in), torch.nn.init.normal_(code.bias_out)
    got = code(h, *(torch.from_numpy(arrays[k]) for k in ("edge_index", "in_weight", "out_weight")))
    a_in_code = a_in @ code.linear_edge_in(h) + code.bias_in
    a_out_code = a_out @ code.linear_edge_out(h) + code.bias_out
    torch.testing.assert_close(got, code.gru(torch.cat([a_in_code, a_out_code], -1), h))
    # node 9 (the last item) has no out-edges: its outgoing input is the node bias alone
    torch.testing.assert_close(a_out_code[2], code.bias_out)
    with pytest.raises(ValueError, match="gnn_style"):
        _tiny_config(gnn_style="torch")


def _codes_matrices(session: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """The authors' code's ``A_in`` / ``A_out`` for one session (nodes sorted, as ``np.unique``), rewritten here:
    ``u_A[u][v] = 1`` per transition, columns / rows divided by their sums (1 where a sum is 0)."""
    node = np.unique(session)
    a = np.zeros((len(node), len(node)))
    for u, v in zip(session, session[1:]):
        a[np.searchsorted(node, u), np.searchsorted(node, v)] = 1
    a_in = (a / np.maximum(a.sum(0), 1)).T  # row v: 1 / in-degree over distinct edges
    a_out = a / np.maximum(a.sum(1, keepdims=True), 1)  # row u: 1 / out-degree over distinct edges
    return a_in, a_out


def test_binary_transition_weights_are_the_codes_matrices():
    """``transition_weights="binary"``: each distinct transition counts once, as in the authors' code; the model's
    output differs from the default (``"counts"``) exactly for the sessions where a node's distinct edges have
    different counts."""
    rng = np.random.default_rng(0)
    sessions = [list(rng.integers(1, 5, size=rng.integers(2, 9))) for _ in range(30)]
    sessions += [
        [1, 2, 1, 2, 3, 2],
        [4, 4, 1, 4, 4, 2],
        [1, 2, 3],
    ]  # counts 2 and 1 into 2 / out of 4; a chain
    for session in sessions:
        arrays = build_graph_batch([session])
        edge_index = torch.from_numpy(arrays["edge_index"])
        w_in, w_out = binary_transition_weights(edge_index, len(arrays["x"]))
        nodes = arrays["x"].tolist()  # first-appearance order
        sorted_index = [sorted(nodes).index(n) for n in nodes]
        want_in, want_out = _codes_matrices(session)
        for (u, v), got_in, got_out in zip(edge_index.T.tolist(), w_in.tolist(), w_out.tolist()):
            su, sv = sorted_index[u], sorted_index[v]
            assert got_in == pytest.approx(want_in[sv, su]) and got_out == pytest.approx(want_out[su, sv])
    with pytest.raises(ValueError, match="transition_weights"):
        _tiny_config(transition_weights="weighted")

    torch.manual_seed(0)
    counts = TagnnPPForNextItemPrediction(_tiny_config()).eval()
    binary = TagnnPPForNextItemPrediction(_tiny_config(transition_weights="binary")).eval()
    binary.load_state_dict(counts.state_dict())
    processor = _processor()
    repeats = [
        ["item1", "item2", "item1", "item2", "item3", "item2"],
        ["item4", "item4", "item5", "item4", "item4"],
    ]
    # the weights agree where a node's edges all have the same count: a chain, a pair repeated as a whole
    chains = [
        ["item1", "item2", "item3"],
        ["item5", "item5", "item6", "item5"],
        ["item7", "item8", "item7", "item8"],
    ]
    batch = processor(repeats + chains)
    with torch.no_grad():
        a, b = counts(**batch).logits, binary(**batch).logits
    assert not torch.allclose(a[:2], b[:2], atol=1e-4)
    torch.testing.assert_close(a[2:], b[2:])


def test_adaptive_gradient_clipping():
    w = torch.nn.Parameter(torch.tensor([[3.0, 4.0], [0.0, 0.0]]))  # row norms 5 and 0 (-> eps)
    w.grad = torch.tensor([[30.0, 40.0], [0.0, 1e-4]])
    adaptive_clip_grad_([w], clip_factor=0.01, eps=1e-3)
    torch.testing.assert_close(
        w.grad, torch.tensor([[0.03, 0.04], [0.0, 1e-5]])
    )  # ||G|| -> 0.01 * max(||W||, eps)
    small = torch.nn.Parameter(torch.ones(3))
    small.grad = torch.full((3,), 1e-4)
    adaptive_clip_grad_([small], 0.01, 1e-3)
    torch.testing.assert_close(small.grad, torch.full((3,), 1e-4))  # under the threshold: unchanged
    config = TagnnPPConfig()
    # off by default: it did not help on Diginetica (see the config docstring and the benchmark)
    assert (config.use_adaptive_gradient_clipping, config.agc_clip_factor, config.agc_eps) == (
        False,
        0.01,
        1e-3,
    )


def test_agc_leaves_the_output_layer_alone():
    from session_transformers.optim import agc_parameters

    model = TagnnPPForNextItemPrediction(TagnnPPConfig(num_items=30, hidden_size=16, num_attention_heads=2))
    clipped = {id(p) for p in agc_parameters(model)}
    names = {n for n, p in model.named_parameters() if id(p) not in clipped}
    assert names == {"tagnn_pp.item_embeddings.weight"}  # the tied input / output matrix only
    plain = torch.nn.Linear(3, 2)
    assert agc_parameters(plain) == list(plain.parameters())


@pytest.mark.parametrize("gnn_style", ["paper", "code"])
def test_gated_gnn_keeps_the_srgnn_uniform_init(gnn_style):
    hidden = 64
    model = TagnnPPForNextItemPrediction(
        TagnnPPConfig(
            num_items=30, hidden_size=hidden, num_attention_heads=2, uniform_init=False, gnn_style=gnn_style
        )
    )
    bound = hidden**-0.5
    names = {name for name, _ in model.tagnn_pp.gnn.cell.named_parameters()}
    assert ({"bias_in", "bias_out"} <= names) == (gnn_style == "code")
    for name, p in model.tagnn_pp.gnn.cell.named_parameters():
        assert p.abs().max() <= bound, name
        assert abs(p.std().item() - bound / 3**0.5) < 0.25 * bound, f"{name} is not uniform(+-1/sqrt(H))"
    # everything else is transformers-style normal(0, initializer_range)
    assert abs(model.readout.linear_t.weight.std().item() - 0.02) < 0.005
    # and it survives save / load untouched (the guarded init never re-draws loaded weights)
    assert model.tagnn_pp.gnn.cell.linear_edge_in.bias.abs().sum() > 0


def test_paper_sizes_and_the_code_architecture_by_default():
    config = TagnnPPConfig()
    assert (config.hidden_size, config.num_attention_heads) == (120, 8)  # the paper's Diginetica sizes
    assert config.use_gnn and config.use_transformer
    # the authors' code's architecture (measured better on the peer benchmark: see the config docstring)
    assert {k: getattr(config, k) for k in CODE_STYLE} == CODE_STYLE
    assert (config.use_position_embeddings, config.hidden_dropout_prob) == (False, 0.0)
    paper = TagnnPPConfig.from_paper(num_items=30)
    assert {k: getattr(paper, k) for k in PAPER_ARCHITECTURE} == PAPER_ARCHITECTURE
    assert paper.num_items == 30 and paper.hidden_dropout_prob == 0.1 and paper.use_position_embeddings
    assert TagnnPPConfig.from_paper(transformer_style="code").transformer_style == "code"  # kwargs win


def test_tiny_model_overfits():
    torch.manual_seed(0)
    model = TagnnPPForNextItemPrediction(
        _tiny_config(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    )
    sessions = [["item1", "item2"], ["item3", "item4", "item3"], ["item5"], ["item6", "item7", "item8"]]
    batch = _processor()(sessions, targets=["item9", "item10", "item11", "item12"])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(50):
        loss = model(**batch).loss
        loss.backward()
        adaptive_clip_grad_(model.parameters(), clip_factor=0.1)
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < 0.1 * losses[0], losses
    assert model(**batch).logits.argmax(1).tolist() == batch["labels"].tolist()


# --- the processor -----------------------------------------------------------------------------------------


def test_processor_outputs_are_the_forward_arguments():
    import inspect

    batch = _processor()([["item1"]], targets=["item2"])
    params = set(inspect.signature(TagnnPPForNextItemPrediction.forward).parameters) - {"self"}
    assert set(batch.keys()) == params
    assert all(isinstance(v, torch.Tensor) for v in batch.values())


def test_processor_save_load_and_auto_processor(tmp_path):
    processor = TagnnPPProcessor.from_sessions(
        [["b", "a"], ["c", "b"]], extra_ids=["z"], max_length=7, unknown_items="error"
    )
    assert processor.item_vocab == ["a", "b", "c", "z"]
    first_seen = TagnnPPProcessor.from_sessions([["b", "a"], ["c", "b"]], extra_ids=["z"], order="first_seen")
    assert first_seen.item_vocab == ["b", "a", "c", "z"]
    processor.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "processor_config.json").read_text())
    assert saved["item_vocab"] == ["a", "b", "c", "z"] and saved["processor_class"] == "TagnnPPProcessor"
    for loaded in (TagnnPPProcessor.from_pretrained(tmp_path), AutoProcessor.from_pretrained(tmp_path)):
        assert type(loaded) is TagnnPPProcessor
        assert (loaded.item_vocab, loaded.max_length, loaded.unknown_items) == (
            ["a", "b", "c", "z"],
            7,
            "error",
        )
    # beside a model checkpoint too
    TagnnPPModel(_tiny_config(num_items=processor.num_items)).save_pretrained(tmp_path)
    assert type(AutoProcessor.from_pretrained(tmp_path)) is TagnnPPProcessor


def test_unknown_item_policy(caplog):
    """The package's one policy: "error" by default, "skip" drops and warns once per call with the counts; the
    trainers' collator always skips, silently, counting."""
    processor = _processor()
    assert processor.unknown_items == "error"
    with pytest.raises(
        KeyError, match=r"session 0: unknown item IDs \['nope'\] \(1 of its 3\).*unknown_items='skip'"
    ):
        processor([["item1", "nope", "item2"]])
    with pytest.raises(KeyError, match="missing"):
        processor([["item1"]], targets=["missing"])
    caplog.set_level("WARNING", logger="session_transformers")
    batch = processor(
        [["item1", "nope", "item2"], ["item3"]], targets=["item4", "missing"], unknown_items="skip"
    )
    assert batch["labels"].tolist() == [4, -100]
    assert batch["x"].tolist() == [1, 2, 3]  # "nope" dropped from the input
    assert (processor.num_unknown_inputs, processor.num_unknown_targets) == (1, 1)
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "dropped 1 unknown item ID(s) from 1 of 2 session(s)" in warnings[0]
    assert "1 unknown target(s) got label -100" in warnings[0]
    with pytest.raises(ValueError, match="session 1: all of its 2 items are unknown"):
        processor([["item1"], ["x", "y"]], unknown_items="skip")
    skipping = _processor(unknown_items="skip")
    caplog.clear()
    skipping([["item1", "nope"]])
    assert len(caplog.records) == 1
    caplog.clear()  # the collator: skips and counts, never warns per batch
    skipping.collate([{"item_ids": ["nope", "item1"], "target": "missing"}])
    assert not caplog.records and (skipping.num_unknown_inputs, skipping.num_unknown_targets) == (2, 1)
    # a case of unknown items only stays in an evaluation as a miss: one padding node, label -100
    batch = skipping.collate(
        [{"item_ids": ["x", "y"], "target": "item2"}, {"item_ids": ["item1"], "target": "item2"}]
    )
    assert batch["labels"].tolist() == [-100, 2] and batch["x"].tolist() == [0, 1]
    model = TagnnPPForNextItemPrediction(_tiny_config()).eval()
    with torch.no_grad():
        logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits
    from session_transformers import metrics

    assert torch.isinf(metrics.rank_of_target(logits, batch["labels"])).tolist() == [True, False]
    assert _processor(unknown_items="drop").unknown_items == "skip"  # the earlier name
    with pytest.raises(ValueError, match="unknown_items"):
        _processor(unknown_items="ignore")


def test_recommend_and_encode_sessions_take_the_policy_per_call(caplog):
    torch.manual_seed(0)
    model = TagnnPPForNextItemPrediction(_tiny_config()).eval()
    processor = _processor()
    with pytest.raises(KeyError, match="nope"):
        model.recommend([["item1", "nope"]], processor=processor)
    caplog.set_level("WARNING", logger="session_transformers")
    skipped = model.recommend([["item1", "nope"]], top_k=3, processor=processor, unknown_items="skip")
    assert skipped == model.recommend([["item1"]], top_k=3, processor=processor)
    assert any("dropped 1 unknown item ID" in r.getMessage() for r in caplog.records)
    vectors = model.encode_sessions([["item1", "nope"]], processor=processor, unknown_items="skip")
    np.testing.assert_allclose(vectors, model.encode_sessions([["item1"]], processor=processor), rtol=1e-6)
    assert processor.unknown_items == "error"  # the processor's own policy is left as it was


def test_truncation_is_warned_once_per_call_with_the_count(caplog):
    processor = TagnnPPProcessor(item_vocab=ITEMS, max_length=3)
    caplog.set_level("WARNING", logger="session_transformers")
    batch = processor([ITEMS[:6], ITEMS[:2], ITEMS[:5]])
    assert batch["attention_mask"].sum(1).tolist() == [3, 2, 3]
    (record,) = caplog.records
    assert (
        "2 of 3 session(s) are longer than max_length=3 items; each keeps its 3 most recent"
        in record.getMessage()
    )
    caplog.clear()
    processor([ITEMS[:2]])
    processor.collate([{"item_ids": ITEMS[:6], "target": ITEMS[0]}])  # counted, not warned per batch
    assert not caplog.records and processor.num_truncated == 3


def test_processor_keeps_most_recent_items():
    processor = TagnnPPProcessor(item_vocab=ITEMS, max_length=3)
    batch = processor([ITEMS[:6]])
    assert batch["x"].tolist() == [4, 5, 6] and batch["attention_mask"].tolist() == [[1, 1, 1]]


def test_collate_equals_batch_transition_graphs():
    rng = np.random.default_rng(0)
    processor = _processor()
    rows = [
        {"item_ids": [ITEMS[j] for j in rng.integers(0, 4, size=rng.integers(1, 9))], "target": ITEMS[0]}
        for _ in range(40)
    ]
    batch = processor.collate(rows)
    reference = transition.batch_transition_graphs(
        [[ITEMS.index(i) + 1 for i in r["item_ids"]] for r in rows]
    )
    assert torch.equal(batch["x"], reference.x)
    assert torch.equal(batch["edge_index"], reference.edge_index)
    torch.testing.assert_close(batch["in_weight"], reference.in_weight)
    torch.testing.assert_close(batch["out_weight"], reference.out_weight)
    mask = batch["attention_mask"].bool()
    assert torch.equal(batch["alias"][mask], reference.alias)
    assert mask.sum(1).tolist() == reference.length.tolist()
    assert batch["labels"].tolist() == [1] * 40


# --- recommend ---------------------------------------------------------------------------------------------


def test_recommend_user_ids_survive_save_and_auto_loading(tmp_path):
    torch.manual_seed(0)
    model = TagnnPPForNextItemPrediction(_tiny_config()).eval()
    processor = _processor(unknown_items="skip")  # the third session's unknown ID is dropped, with a warning
    sessions = [["item1", "item2"], ["item5"], ["item3", "unknown", "item3"]]
    with pytest.raises(ValueError, match="processor"):
        model.recommend(sessions)
    recs = model.recommend(sessions, top_k=5, processor=processor)
    assert [len(r) for r in recs] == [5, 5, 5]
    assert all(isinstance(i, str) and i in ITEMS and isinstance(s, float) for r in recs for i, s in r)
    assert all([s for _, s in r] == sorted((s for _, s in r), reverse=True) for r in recs)
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    loaded = AutoModelForNextItemPrediction.from_pretrained(tmp_path, dtype=torch.float32)
    loaded.processor = AutoProcessor.from_pretrained(tmp_path)
    again = loaded.recommend(sessions, top_k=5)
    # the same items in the same order; scores equal up to float rounding (weights loaded from the
    # memory-mapped safetensors file are not 64-byte aligned, so BLAS may take another kernel path)
    assert [[i for i, _ in r] for r in again] == [[i for i, _ in r] for r in recs]
    assert [[s for _, s in r] for r in again] == [pytest.approx([s for _, s in r], rel=1e-6) for r in recs]
    pretraining = AutoModelForPreTraining.from_pretrained(tmp_path, dtype=torch.float32)
    assert type(pretraining) is TagnnPPForNextItemPrediction
    assert type(AutoModel.from_pretrained(tmp_path, dtype=torch.float32)) is TagnnPPModel


def test_trainer_with_processor_as_processing_class(tmp_path):
    """``Trainer`` trains from raw rows with ``processor.collate`` and saves the processor with the model."""
    from datasets import Dataset
    from transformers import Trainer, TrainingArguments

    rows = [{"item_ids": ITEMS[: i % 4 + 1], "target": ITEMS[i % 4 + 1]} for i in range(16)]
    args = TrainingArguments(
        str(tmp_path), per_device_train_batch_size=8, max_steps=2, use_cpu=True, report_to="none",
        remove_unused_columns=False, save_strategy="no", disable_tqdm=True,
    )  # fmt: skip
    processor = _processor()
    trainer = Trainer(
        model=TagnnPPForNextItemPrediction(_tiny_config()), args=args, train_dataset=Dataset.from_list(rows),
        data_collator=processor.collate, processing_class=processor,
    )  # fmt: skip
    trainer.train()
    trainer.save_model(tmp_path / "final")
    assert type(AutoProcessor.from_pretrained(tmp_path / "final")) is TagnnPPProcessor
    assert (
        type(AutoModelForNextItemPrediction.from_pretrained(tmp_path / "final"))
        is TagnnPPForNextItemPrediction
    )
