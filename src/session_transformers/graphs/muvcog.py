"""The two MUVCOG views of a multi-modal multi-query (MM) search session as ``HeteroData`` graphs.

MUVCOG (``../papers/muvcog.txt``) models a session of keyword, product and image queries as a heterogeneous
graph ``G^s = {V, E, Q, A, phi, psi}`` (Sec. 3.1) seen two ways:

**Attentive global view (AGV), Sec. 3.2.** Node types ``Q = {KQ, PQ, IQ}``:

- ``KQ``: one node per distinct word of the session's keyword queries;
- ``PQ``: one node per distinct word of its product queries (a word in both a keyword and a product query
  gets two nodes, one ``KQ`` and one ``PQ``: users type the first, the second is cut from a title);
- ``IQ``: one node per distinct image query.

Edge types ``A = {CO, RF}``:

- ``CO`` (co-occur): two words ``i != j`` in the same query get ``e_ij`` and ``e_ji``. The paper adds ``CO``
  edges between words only, so image nodes join the AGV through ``RF`` edges;
- ``RF`` (refine): for any node ``i`` of a query and any node ``j`` of the immediately following query,
  ``e_ij``. A node in both queries gets a self-loop ``e_ii`` (the word survived the refinement).

**Hierarchical local view (HLV), Sec. 3.3.** The same ``KQ``/``PQ``/``IQ`` nodes (same order) plus one virtual
query node ``VQ`` per query. ``CO`` edges join each query's words and images to its ``VQ`` node, stored in the
direction of Eq. (6) (member ``->`` ``VQ``); ``RF`` edges join each ``VQ`` node to the next query's
(Eq. 7). A GCN over ``(*, CO, VQ)`` then over ``(VQ, RF, VQ)`` aggregates within, then across, queries. Add
``torch_geometric.transforms.ToUndirected()`` for the reverse edges.

Every graph carries all node and edge types (empty where the session has none), so graphs of different
sessions batch with ``Batch.from_data_list`` and share one ``metadata()`` for ``HeteroConv``. Node inputs:

- ``data["KQ"].x``, ``data["PQ"].x``: ``(|V_KQ|,)``, ``(|V_PQ|,)`` word token ids (look up word embeddings);
- ``data["IQ"].x``: ``(|V_IQ|, D)`` image vectors (``D = image_dim``; pass it to batch image-less sessions);
- ``data["VQ"].position``: ``(|V_VQ|,)`` position of each query in the session (HLV only; the paper
  initialises ``VQ`` states to zero);
- ``data[edge_type].edge_index``: ``(2, |E|)``, sorted; ``data.num_queries``: ``(1,)``.

**What a query is.** Each keyword-, product- or image-query event is a query. In Taobao a "search similar"
sends a product query with its image query as *one* query (Sec. 4.1); ``grouping="timestamp"`` (default)
merges adjacent query events that share a timestamp into one query, ``"event"`` never merges. Queries with
no words left after tokenisation are dropped. Item events are not queries (the paper keeps user feedback
out of the graph); ``item_actions=("click",)`` is an extension that adds the items of those actions as
queries of their own, their title words as ``PQ`` nodes and their catalogue image as an ``IQ`` node.

To build the paper's positive sample (a session with one query masked), take :func:`session_queries`,
drop one and call :func:`views_from_queries`. A collator can skip per-session graphs altogether:
:func:`batch_views_from_queries` (queries) and :func:`batch_encoded_views` (:class:`EncodedSession` arrays, what
``MuvcogProcessor`` produces) build both batched views of many sessions at once, vectorised over the batch with
numpy index arithmetic (same tensors as ``Batch.from_data_list`` of the per-session views, which stay as the
reference implementation).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import numpy as np
import torch
from torch_geometric.data import HeteroData

WORD_TYPES: tuple[str, ...] = ("KQ", "PQ")
QUERY_NODE_TYPES: tuple[str, ...] = ("KQ", "PQ", "IQ")
GLOBAL_NODE_TYPES: tuple[str, ...] = QUERY_NODE_TYPES
LOCAL_NODE_TYPES: tuple[str, ...] = (*QUERY_NODE_TYPES, "VQ")
GLOBAL_EDGE_TYPES: tuple[tuple[str, str, str], ...] = (
    *((a, "CO", b) for a in WORD_TYPES for b in WORD_TYPES),
    *((a, "RF", b) for a in QUERY_NODE_TYPES for b in QUERY_NODE_TYPES),
)
LOCAL_EDGE_TYPES: tuple[tuple[str, str, str], ...] = (
    *((t, "CO", "VQ") for t in QUERY_NODE_TYPES),
    ("VQ", "RF", "VQ"),
)

Tokenize = Callable[[str], Sequence[int]] | Mapping[str, int]
Grouping = Literal["timestamp", "event"]
_SUBJECT_TYPE = {"keyword_query": "KQ", "product_query": "PQ"}


@dataclass(frozen=True)
class MuvcogQuery:
    """One query of a session: its distinct words (token ids, by type) and its distinct image vectors."""

    keyword_words: tuple[int, ...] = ()
    product_words: tuple[int, ...] = ()
    images: tuple[tuple[float, ...], ...] = ()

    def nodes(self) -> list[tuple[str, Any]]:
        """``(node_type, key)`` of each node of the query, in order."""
        return [
            *(("KQ", w) for w in self.keyword_words),
            *(("PQ", w) for w in self.product_words),
            *(("IQ", img) for img in self.images),
        ]

    def merge(self, other: MuvcogQuery) -> MuvcogQuery:
        return MuvcogQuery(
            _unique(self.keyword_words + other.keyword_words),
            _unique(self.product_words + other.product_words),
            _unique(self.images + other.images),
        )


class MuvcogViews(NamedTuple):
    """Both views of one session, over the same word and image nodes."""

    global_view: HeteroData
    local_view: HeteroData


def _unique(values: Sequence) -> tuple:
    return tuple(dict.fromkeys(values))


def _as_tokenizer(tokenize: Tokenize) -> Callable[[str], Sequence[int]]:
    """A callable, or a vocabulary (lower-cased whitespace words; unknown words are dropped)."""
    if isinstance(tokenize, Mapping):
        vocab = tokenize
        return lambda text: [vocab[w] for w in text.lower().split() if w in vocab]
    if not callable(tokenize):
        raise TypeError(f"tokenize must be a callable or a vocabulary mapping, got {type(tokenize).__name__}")
    return tokenize


def _event_query(event: Mapping[str, Any], tokenize, catalogue, item_actions) -> MuvcogQuery | None:
    """The query an event contributes, or ``None`` for an item event outside ``item_actions``."""
    subject = event["subject"]
    if subject in _SUBJECT_TYPE:
        words = _unique([int(t) for t in tokenize(event["query"])])
        return MuvcogQuery(**{"keyword_words" if subject == "keyword_query" else "product_words": words})
    if subject == "image_query":
        return MuvcogQuery(images=(tuple(map(float, event["image"])),))
    if event["action"] not in item_actions:
        return None
    if catalogue is None or event["item_id"] not in catalogue:
        raise KeyError(f"item {event['item_id']!r} is not in the catalogue (needed for item_actions)")
    item = catalogue[event["item_id"]]
    image = item.get("image")
    images = (tuple(map(float, image)),) if image is not None else ()
    return MuvcogQuery(product_words=_unique([int(t) for t in tokenize(item["title"])]), images=images)


def session_queries(
    session: Mapping[str, Any],
    tokenize: Tokenize,
    catalogue: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    item_actions: Collection[str] = (),
    grouping: Grouping = "timestamp",
) -> list[MuvcogQuery]:
    """The ordered queries of a session in the package schema (see the module docstring).

    Args:
        session: ``{"session_id": ..., "events": [...]}``.
        tokenize: ``text -> token ids``, or a ``word -> id`` vocabulary.
        catalogue: ``item_id -> {"title": str, "image": list[float] | None, ...}``; needed for ``item_actions``.
        item_actions: actions whose item events become queries (default none, as in the paper).
        grouping: ``"timestamp"`` merges adjacent query events with the same timestamp; ``"event"`` does not.
    """
    if grouping not in ("timestamp", "event"):
        raise ValueError(f"grouping must be 'timestamp' or 'event', got {grouping!r}")
    tokenize = _as_tokenizer(tokenize)
    queries: list[MuvcogQuery] = []
    last_key = None  # (timestamp) of the last query event, when it may absorb the next one
    for event in session["events"]:
        query = _event_query(event, tokenize, catalogue, item_actions)
        if query is None:
            continue
        is_query, ts = event["subject"] != "item", event.get("timestamp")
        key = ts if (grouping == "timestamp" and is_query and ts is not None) else None
        if key is not None and key == last_key and queries:
            queries[-1] = queries[-1].merge(query)
        else:
            queries.append(query)
        last_key = key
    return [q for q in queries if q.nodes()]


class _Nodes:
    """The distinct nodes of a list of queries, in order of first appearance per type, and who is in which query.

    Attributes:
        x: node inputs by type (see the module docstring).
        slices: the columns of each node type in ``membership`` (types in :data:`QUERY_NODE_TYPES` order).
        membership: ``(Q, |V|)`` float, 1 where node ``v`` is in query ``q`` (all types side by side).
    """

    def __init__(self, queries: Sequence[MuvcogQuery], image_dim: int | None):
        if not queries:
            raise ValueError("a MUVCOG graph needs at least one query with a word or an image")
        index: dict[str, dict[Any, int]] = {t: {} for t in QUERY_NODE_TYPES}
        members = [[(t, index[t].setdefault(key, len(index[t]))) for t, key in q.nodes()] for q in queries]
        sizes = [len(index[t]) for t in QUERY_NODE_TYPES]
        offsets = dict(zip(QUERY_NODE_TYPES, [0, sizes[0], sizes[0] + sizes[1]]))
        self.slices = {t: slice(offsets[t], offsets[t] + n) for t, n in zip(QUERY_NODE_TYPES, sizes)}
        self.num_queries, self.num_words = len(queries), sizes[0] + sizes[1]
        rows = [q for q, m in enumerate(members) for _ in m]
        cols = [offsets[t] + i for m in members for t, i in m]
        self.membership = torch.zeros(len(queries), sum(sizes))  # (Q, |V|)
        self.membership[rows, cols] = 1.0
        self.x = {t: torch.tensor(list(index[t]), dtype=torch.long) for t in WORD_TYPES}  # (|V_t|,)
        self.x["IQ"] = _image_matrix(list(index["IQ"]), image_dim)  # (|V_IQ|, D)

    def write(self, data: HeteroData) -> None:
        for node_type, x in self.x.items():
            data[node_type].x = x
        data.num_queries = torch.tensor([self.num_queries])


def _image_matrix(images: list[tuple[float, ...]], image_dim: int | None) -> torch.Tensor:
    dims = {len(img) for img in images} | ({image_dim} if image_dim is not None else set())
    if len(dims) > 1:
        raise ValueError(f"image vectors of different sizes {sorted(dims)} in one session")
    return torch.tensor(images, dtype=torch.float).reshape(len(images), dims.pop() if dims else 0)


def _block_edges(adjacency: torch.Tensor, rows: slice, cols: slice) -> torch.Tensor:
    """``(2, |E|)`` edges of one block of a dense ``(|V|, |V|)`` adjacency, sorted, local to the two types."""
    return adjacency[rows, cols].nonzero().t().contiguous()


def _global_edges(nodes: _Nodes) -> dict[tuple[str, str, str], torch.Tensor]:
    """``(2, |E|)`` edges of every AGV edge type, indices local to each node type."""
    words = nodes.membership[:, : nodes.num_words]  # (Q, |V_KQ| + |V_PQ|)
    co = (words.t() @ words) > 0  # words sharing a query, (|V_w|, |V_w|)
    co.fill_diagonal_(False)
    rf = (nodes.membership[:-1].t() @ nodes.membership[1:]) > 0  # node of q_t -> node of q_{t+1}, (|V|, |V|)
    return {
        (src, rel, dst): _block_edges(co if rel == "CO" else rf, nodes.slices[src], nodes.slices[dst])
        for src, rel, dst in GLOBAL_EDGE_TYPES
    }


def _local_edges(nodes: _Nodes) -> dict[tuple[str, str, str], torch.Tensor]:
    """``(2, |E|)`` edges of every HLV edge type (member -> its ``VQ``; ``VQ_t -> VQ_{t+1}``)."""
    q = nodes.num_queries
    member_of = nodes.membership.t() > 0  # (|V|, Q): node -> its queries
    edges = {(t, "CO", "VQ"): _block_edges(member_of, nodes.slices[t], slice(None)) for t in QUERY_NODE_TYPES}
    edges["VQ", "RF", "VQ"] = torch.stack([torch.arange(q - 1), torch.arange(1, q)])  # (2, Q - 1)
    return edges


def _global_view(nodes: _Nodes) -> HeteroData:
    data = HeteroData()
    nodes.write(data)
    for edge_type, edge_index in _global_edges(nodes).items():
        data[edge_type].edge_index = edge_index
    return data


def _local_view(nodes: _Nodes) -> HeteroData:
    data = HeteroData()
    nodes.write(data)
    data["VQ"].num_nodes = nodes.num_queries
    data["VQ"].position = torch.arange(nodes.num_queries)  # (|V_VQ|,)
    for edge_type, edge_index in _local_edges(nodes).items():
        data[edge_type].edge_index = edge_index
    return data


class EncodedSession(NamedTuple):
    """One session as flat node memberships: what the vectorised :func:`batch_encoded_views` consumes.

    Row ``m`` says that node ``(node_type[m], key[m])`` belongs to query ``query[m]``. Rows are ordered by query
    (non-decreasing ``query``), and within a query the ``(node_type, key)`` pairs are distinct; node order of
    each type is order of first appearance, as in :class:`MuvcogQuery`.

    Attributes:
        query: ``(M,)`` int64 query index of each membership, ``0 .. num_queries - 1``.
        node_type: ``(M,)`` int64: 0 ``KQ``, 1 ``PQ``, 2 ``IQ``.
        key: ``(M,)`` int64 word id (``KQ``, ``PQ``) or row of ``images`` (``IQ``).
        images: ``(I, D)`` float32 distinct image vectors of the session.
        num_queries: queries of the session (at least 1).
    """

    query: np.ndarray
    node_type: np.ndarray
    key: np.ndarray
    images: np.ndarray
    num_queries: int


def encode_queries(queries: Sequence[MuvcogQuery], image_dim: int | None = None) -> EncodedSession:
    """The :class:`EncodedSession` of a list of queries (images deduplicated by value)."""
    if not queries:
        raise ValueError("a MUVCOG graph needs at least one query with a word or an image")
    rows_q, rows_t, rows_k = [], [], []
    images: dict[tuple[float, ...], int] = {}
    for q, query in enumerate(queries):
        for t, keys in ((0, query.keyword_words), (1, query.product_words)):
            rows_q += [q] * len(keys)
            rows_t += [t] * len(keys)
            rows_k += keys
        for img in query.images:
            rows_q.append(q)
            rows_t.append(2)
            rows_k.append(images.setdefault(img, len(images)))
    dims = {len(img) for img in images} | ({image_dim} if image_dim is not None else set())
    if len(dims) > 1:
        raise ValueError(f"image vectors of different sizes {sorted(dims)} in one session")
    dim = dims.pop() if dims else 0
    matrix = np.asarray(list(images), dtype=np.float32).reshape(len(images), dim)
    as_long = lambda v: np.asarray(v, dtype=np.int64)  # noqa: E731
    return EncodedSession(as_long(rows_q), as_long(rows_t), as_long(rows_k), matrix, len(queries))


def _first_seen_ids(code: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Node id of every row (ids numbered by first appearance of their code) and the first row of each id."""
    _, first, inverse = np.unique(code, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    return rank[inverse.reshape(-1)], first[order]


def _pairs(group: np.ndarray, counts: np.ndarray, starts: np.ndarray, partner_group: np.ndarray):
    """Every pair ``(row, partner row)`` where the partner is any row of group ``partner_group[row]``.

    Rows are sorted by group; ``counts``/``starts``: rows and first row of every group. Returns two index arrays.
    """
    n = counts[partner_group]  # partners of each row
    src = np.repeat(np.arange(group.size), n)
    offset = np.arange(src.size) - np.repeat(np.cumsum(n) - n, n)
    return src, starts[partner_group[src]] + offset


def _split_edges(src_type, dst_type, src, dst, types_a, types_b, rel, sizes) -> dict:
    """Deduplicated, sorted ``(2, |E|)`` edge indices of every ``(a, rel, b)`` from flat typed pairs.

    One sort of ``(type pair, source, target)`` codes: duplicates become neighbours, each type pair a contiguous
    run (found by binary search), each run sorted by ``(source, target)``.
    """
    width = int(max(sizes.values(), default=0)) + 1
    block = width * width
    code = np.sort(((src_type * 4 + dst_type) * width + src) * width + dst)
    if code.size:
        code = code[np.concatenate([[True], code[1:] != code[:-1]])]  # np.unique, without its hash path
    bounds = np.searchsorted(code, np.arange(17) * block)
    edges = np.empty((2, code.size), dtype=np.int64)  # (source, target) of every edge, one pass
    np.divmod(code % block, width, out=(edges[0], edges[1]))
    out = {}
    for a in types_a:
        for b in types_b:
            pair = QUERY_NODE_TYPES.index(a) * 4 + LOCAL_NODE_TYPES.index(b)
            out[a, rel, b] = torch.from_numpy(edges[:, bounds[pair] : bounds[pair + 1]].copy())
    return out


def batch_encoded_views(sessions: Sequence[EncodedSession], *, image_dim: int | None = None) -> MuvcogViews:
    """Both views of a batch of encoded sessions, built with array index arithmetic over the whole batch.

    Gives exactly the tensors of ``Batch.from_data_list`` over the per-session views (``x``, ``edge_index``,
    ``batch``, ``ptr``, ``position``, ``num_queries``), edges sorted by ``(source, target)``, as a plain
    ``HeteroData`` per view. No Python loop runs per session or per query: node ids come from one
    ``np.unique`` per node type, co-occurrence and refine pairs from ``np.repeat`` over query groups.
    """
    if not sessions:
        raise ValueError("batch_views_from_queries needs at least one session")
    num_sessions = len(sessions)
    nq = np.asarray([s.num_queries for s in sessions], dtype=np.int64)
    if (nq < 1).any():
        bad = int(np.flatnonzero(nq < 1)[0])
        raise ValueError(f"session {bad} of the batch has no query: a MUVCOG graph needs at least one query")
    rows = np.asarray([len(s.query) for s in sessions], dtype=np.int64)
    dims = {s.images.shape[1] for s in sessions if s.images.shape[0]}
    if image_dim is not None:
        dims.add(image_dim)
    if len(dims) > 1:
        raise ValueError(f"image vectors of different sizes {sorted(dims)} in one batch")
    dim = dims.pop() if dims else 0
    num_images = np.asarray([s.images.shape[0] for s in sessions], dtype=np.int64)
    q_start = np.cumsum(nq) - nq
    total_q = int(nq.sum())
    session = np.repeat(np.arange(num_sessions), rows)
    query = np.concatenate([s.query for s in sessions]) + np.repeat(q_start, rows)  # global query id
    ntype = np.concatenate([s.node_type for s in sessions])
    key = np.concatenate([s.key for s in sessions]).copy()
    is_image = ntype == 2
    key[is_image] += np.repeat(np.cumsum(num_images) - num_images, rows)[is_image]
    images = (
        np.concatenate([s.images for s in sessions if s.images.shape[0]])
        if num_images.sum()
        else np.zeros((0, dim), dtype=np.float32)
    )

    # node ids: per type, numbered by first appearance, session-major (rows are session-major)
    width = int(key.max(initial=0)) + 1
    local = np.empty_like(key)
    node_x, node_session, sizes = {}, {}, {}
    for t, name in enumerate(QUERY_NODE_TYPES):
        sel = np.flatnonzero(ntype == t)
        ids, first = _first_seen_ids(session[sel] * width + key[sel])
        local[sel] = ids
        node_x[name] = key[sel][first]
        node_session[name] = session[sel][first]
        sizes[name] = first.size
    node_session["VQ"] = np.repeat(np.arange(num_sessions), nq)
    sizes["VQ"] = total_q

    # co-occurrence: distinct words of the same query (rows of one query are distinct nodes)
    words = np.flatnonzero(ntype < 2)
    wq = query[words]
    counts = np.bincount(wq, minlength=total_q)
    src, dst = _pairs(wq, counts, np.cumsum(counts) - counts, wq)
    keep = src != dst
    src, dst = words[src[keep]], words[dst[keep]]
    co = _split_edges(ntype[src], ntype[dst], local[src], local[dst], WORD_TYPES, WORD_TYPES, "CO", sizes)

    # refine: any node of a query -> any node of the next query of the same session
    counts = np.bincount(query, minlength=total_q)
    last = np.zeros(total_q, dtype=bool)
    last[np.cumsum(nq) - 1] = True
    nxt = np.where(last[query], query, query + 1)
    partners = np.where(last[query], 0, counts[np.minimum(query + 1, total_q - 1)])
    src = np.repeat(np.arange(query.size), partners)
    offset = np.arange(src.size) - np.repeat(np.cumsum(partners) - partners, partners)
    dst = (np.cumsum(counts) - counts)[nxt[src]] + offset
    rf = _split_edges(
        ntype[src], ntype[dst], local[src], local[dst], QUERY_NODE_TYPES, QUERY_NODE_TYPES, "RF", sizes
    )

    # hierarchical view: member -> its query's VQ node; VQ_t -> VQ_{t+1}
    vq = LOCAL_NODE_TYPES.index("VQ")
    member = _split_edges(
        ntype, np.full_like(ntype, vq), local, query, QUERY_NODE_TYPES, ("VQ",), "CO", {**sizes, "q": total_q}
    )
    chain = np.flatnonzero(~last)
    member["VQ", "RF", "VQ"] = torch.from_numpy(np.stack([chain, chain + 1]))

    sessions_t = torch.arange(num_sessions)
    num_queries = torch.from_numpy(nq)

    def node_store(data: HeteroData, name: str) -> None:
        counts = torch.from_numpy(np.bincount(node_session[name], minlength=num_sessions))
        if name == "VQ":
            data[name].num_nodes = total_q
            data[name].position = torch.from_numpy(np.arange(total_q) - np.repeat(q_start, nq))
        elif name == "IQ":
            data[name].x = torch.from_numpy(images[node_x[name]].reshape(-1, dim))
        else:
            data[name].x = torch.from_numpy(node_x[name])
        data[name].batch = sessions_t.repeat_interleave(counts)
        data[name].ptr = torch.cat([counts.new_zeros(1), counts.cumsum(0)])

    views = []
    for node_types, edges in ((GLOBAL_NODE_TYPES, {**co, **rf}), (LOCAL_NODE_TYPES, member)):
        data = HeteroData()
        for name in node_types:
            node_store(data, name)
        for edge_type in GLOBAL_EDGE_TYPES if node_types is GLOBAL_NODE_TYPES else LOCAL_EDGE_TYPES:
            data[edge_type].edge_index = edges[edge_type]
        data.num_queries = num_queries
        views.append(data)
    return MuvcogViews(*views)


def batch_views_from_queries(
    sessions: Sequence[Sequence[MuvcogQuery]], *, image_dim: int | None = None
) -> MuvcogViews:
    """Both views of many sessions, each view one disjoint union built directly (vectorised).

    Holds the same tensors as ``Batch.from_data_list`` of the per-session views (``x``, ``edge_index``,
    ``batch``, ``ptr``, ``position``, ``num_queries``) at a fraction of the cost; the result is a plain
    ``HeteroData`` (no ``get_example``). Image-less sessions need ``image_dim`` unless another session has images.
    """
    if not sessions:
        raise ValueError("batch_views_from_queries needs at least one session")
    if image_dim is None:
        image_dim = next((len(img) for queries in sessions for q in queries for img in q.images), None)
    return batch_encoded_views([encode_queries(q, image_dim) for q in sessions], image_dim=image_dim)


def global_view_from_queries(queries: Sequence[MuvcogQuery], *, image_dim: int | None = None) -> HeteroData:
    """The attentive global view (Sec. 3.2) of a list of queries."""
    return _global_view(_Nodes(queries, image_dim))


def local_view_from_queries(queries: Sequence[MuvcogQuery], *, image_dim: int | None = None) -> HeteroData:
    """The hierarchical local view (Sec. 3.3) of a list of queries."""
    return _local_view(_Nodes(queries, image_dim))


def views_from_queries(queries: Sequence[MuvcogQuery], *, image_dim: int | None = None) -> MuvcogViews:
    """Both views of a list of queries."""
    nodes = _Nodes(queries, image_dim)  # shared: both views hold the same node tensors
    return MuvcogViews(_global_view(nodes), _local_view(nodes))


def build_global_view(session, tokenize, catalogue=None, *, image_dim=None, **query_options) -> HeteroData:
    """The AGV of a session in the package schema; ``query_options`` go to :func:`session_queries`."""
    return global_view_from_queries(
        session_queries(session, tokenize, catalogue, **query_options), image_dim=image_dim
    )


def build_local_view(session, tokenize, catalogue=None, *, image_dim=None, **query_options) -> HeteroData:
    """The HLV of a session in the package schema; ``query_options`` go to :func:`session_queries`."""
    return local_view_from_queries(
        session_queries(session, tokenize, catalogue, **query_options), image_dim=image_dim
    )


def build_views(session, tokenize, catalogue=None, *, image_dim=None, **query_options) -> MuvcogViews:
    """Both views of a session in the package schema (its queries are read once)."""
    return views_from_queries(
        session_queries(session, tokenize, catalogue, **query_options), image_dim=image_dim
    )


__all__ = [
    "EncodedSession",
    "GLOBAL_EDGE_TYPES",
    "GLOBAL_NODE_TYPES",
    "LOCAL_EDGE_TYPES",
    "LOCAL_NODE_TYPES",
    "MuvcogQuery",
    "MuvcogViews",
    "build_global_view",
    "build_local_view",
    "batch_views_from_queries",
    "build_views",
    "batch_encoded_views",
    "encode_queries",
    "global_view_from_queries",
    "local_view_from_queries",
    "session_queries",
    "views_from_queries",
]
