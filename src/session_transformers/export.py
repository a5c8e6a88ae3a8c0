"""Export item embeddings: to Parquet (``item_id`` + vector) and to a FAISS index for nearest-neighbour search.

::

    from session_transformers.export import ItemIndex, item_embeddings, write_parquet

    ids, vectors = item_embeddings(model, processor)  # every item the processor knows (CERES: catalogue=...)
    write_parquet("items.parquet", ids, vectors)  # columns item_id (string), embedding (fixed-size float32 list)
    index = ItemIndex.build(ids, vectors)  # faiss-cpu: pip install "session_transformers[faiss]"
    index.search(vectors[:1], k=5)  # [[(item_id, score), ...]] best first

The vectors are the models' ``encode_items`` (TAGNN++: the item embedding matrix that also scores the catalogue;
CERES: the item encoder's pooled embeddings, or with a fine-tuned ``CeresForSessionRetrieval`` the projected ones,
which its ``encode_sessions`` queries directly). FAISS is an optional extra: without it, :class:`ItemIndex` raises
``ImportError`` saying how to install it; the Parquet export needs only pyarrow.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .processing_utils import reads_item_ids, unknown_items_error, unknown_items_policy, warn_skipped_items

INDEX_FILE = "items.faiss"
IDS_FILE = "item_ids.json"
METRICS = ("cosine", "inner_product", "l2")


def _faiss():
    try:
        import faiss
    except ImportError as err:  # an optional extra
        raise ImportError(
            "FAISS export needs faiss-cpu, an optional extra: pip install 'session_transformers[faiss]' "
            "(or pip install faiss-cpu)"
        ) from err
    return faiss


def item_embeddings(
    model,
    processor,
    item_ids: Sequence[Any] | None = None,
    catalogue: Any = None,
    batch_size: int = 64,
    unknown_items: str = "error",
) -> tuple[list[str], np.ndarray]:
    """``(item IDs, (N, D) float32 vectors)`` from ``model.encode_items``.

    ``item_ids=None``: every item of the processor's vocabulary (TAGNN++), else every product of ``catalogue``
    (CERES: records or ``item_id -> record``). CERES also accepts catalogue records as ``item_ids``.
    ``unknown_items`` is the package's one policy (:data:`~session_transformers.processing_utils.UNKNOWN_ITEM_POLICIES`)
    for given ``item_ids`` the model cannot embed (not in its vocabulary; for a text model, not in ``catalogue``):
    ``"error"`` (default) raises ``KeyError`` naming them, ``"skip"`` leaves them out of the returned IDs and
    vectors with one warning.
    """
    policy = unknown_items_policy(unknown_items)
    if item_ids is None:
        vocab = getattr(processor, "item_vocab", None) if reads_item_ids(processor) else None
        if vocab:
            item_ids = list(vocab)
        elif catalogue is not None:
            item_ids = (
                list(catalogue) if isinstance(catalogue, Mapping) else [r["item_id"] for r in catalogue]
            )
        else:
            raise ValueError(
                f"{type(model).__name__}: give item_ids or a catalogue (the processor has no item vocabulary)"
            )
    item_ids = list(item_ids)
    vocab = getattr(processor, "item_vocab", None) if reads_item_ids(processor) else None
    if vocab:
        known = getattr(processor, "_index", None) or set(vocab)
    elif catalogue is not None:
        known = catalogue if isinstance(catalogue, Mapping) else {r["item_id"] for r in catalogue}
    else:
        known = None
    if known is not None:
        unknown = [i for i in item_ids if not isinstance(i, Mapping) and i not in known]
        if unknown and policy == "error":
            raise unknown_items_error(None, unknown, len(item_ids), list(vocab or known))
        if unknown:
            warn_skipped_items("item_embeddings", len(unknown), 0, 0, unknown)
            item_ids = [i for i in item_ids if isinstance(i, Mapping) or i in known]
    ids = [i["item_id"] if isinstance(i, Mapping) else i for i in item_ids]
    accepted = _parameters(model.encode_items)
    kwargs: dict[str, Any] = {"processor": processor}
    if catalogue is not None and "catalogue" in accepted:  # TAGNN++ has no catalogue
        kwargs["catalogue"] = catalogue
    if "batch_size" in accepted:
        kwargs["batch_size"] = batch_size
    vectors = np.asarray(model.encode_items(list(item_ids), **kwargs), dtype=np.float32)
    if vectors.shape[0] != len(ids):
        raise RuntimeError(f"encode_items returned {vectors.shape[0]} vectors for {len(ids)} items")
    return [str(i) for i in ids], vectors


def _parameters(fn) -> set[str]:
    return set(inspect.signature(fn).parameters)


def write_parquet(path: str | Path, item_ids: Sequence[str], vectors: np.ndarray) -> Path:
    """Write ``item_id`` (string) and ``embedding`` (fixed-size list of float32) columns, one row per item."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or vectors.shape[0] != len(item_ids):
        raise ValueError(f"expected ({len(item_ids)}, D) vectors, got shape {vectors.shape}")
    flat = pa.array(vectors.reshape(-1), type=pa.float32())
    table = pa.table(
        {
            "item_id": pa.array([str(i) for i in item_ids], type=pa.string()),
            "embedding": pa.FixedSizeListArray.from_arrays(flat, vectors.shape[1]),
        }
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return path


def read_parquet(path: str | Path) -> tuple[list[str], np.ndarray]:
    """``(item IDs, (N, D) float32 vectors)`` of a file written by :func:`write_parquet`."""
    table = pq.read_table(path, columns=["item_id", "embedding"])
    column = table.column("embedding").combine_chunks()
    dim = column.type.list_size
    vectors = column.flatten().to_numpy(zero_copy_only=False).astype(np.float32).reshape(-1, dim)
    return table.column("item_id").to_pylist(), vectors


def export_item_embeddings(
    model, processor, path: str | Path, item_ids=None, catalogue=None, batch_size: int = 64
) -> Path:
    """:func:`item_embeddings` written to Parquet at ``path``."""
    ids, vectors = item_embeddings(model, processor, item_ids, catalogue, batch_size)
    return write_parquet(path, ids, vectors)


class ItemIndex:
    """A FAISS index of item embeddings with their item IDs (exact search, ``IndexFlat``).

    ``metric``: ``"cosine"`` (default: vectors and queries L2-normalised, inner product), ``"inner_product"``
    (the models' own scoring, e.g. CERES retrieval embeddings) or ``"l2"`` (scores are negative squared
    distances, so higher is always better). Saved as a folder: ``items.faiss`` (``faiss.write_index``) and
    ``item_ids.json`` (the IDs and the metric).
    """

    def __init__(self, index, item_ids: Sequence[str], metric: str):
        if metric not in METRICS:
            raise ValueError(f"metric={metric!r} must be one of {METRICS}")
        if index.ntotal != len(item_ids):
            raise ValueError(f"the index holds {index.ntotal} vectors for {len(item_ids)} item IDs")
        self.index, self.item_ids, self.metric = index, list(item_ids), metric

    @classmethod
    def build(cls, item_ids: Sequence[str], vectors: np.ndarray, metric: str = "cosine") -> ItemIndex:
        faiss = _faiss()
        if metric not in METRICS:
            raise ValueError(f"metric={metric!r} must be one of {METRICS}")
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[0] != len(item_ids):
            raise ValueError(f"expected ({len(item_ids)}, D) vectors, got shape {vectors.shape}")
        index = faiss.IndexFlatL2(vectors.shape[1]) if metric == "l2" else faiss.IndexFlatIP(vectors.shape[1])
        if metric == "cosine":
            vectors = vectors.copy()
            faiss.normalize_L2(vectors)
        index.add(vectors)
        return cls(index, item_ids, metric)

    def __len__(self) -> int:
        return len(self.item_ids)

    def search(self, queries: np.ndarray, k: int = 10) -> list[list[tuple[str, float]]]:
        """The ``k`` nearest items of each query (``(Q, D)`` or one ``(D,)`` vector), ``[(item_id, score)]`` best
        first per query."""
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        if self.metric == "cosine":
            queries = queries.copy()
            _faiss().normalize_L2(queries)
        scores, rows = self.index.search(queries, min(k, len(self)))
        if self.metric == "l2":
            scores = -scores
        return [
            [(self.item_ids[r], float(s)) for r, s in zip(row, score) if r >= 0]
            for row, score in zip(rows, scores)
        ]

    def save(self, folder: str | Path) -> Path:
        faiss = _faiss()
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        faiss.write_index(self.index, str(folder / INDEX_FILE))
        (folder / IDS_FILE).write_text(json.dumps({"metric": self.metric, "item_ids": self.item_ids}) + "\n")
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> ItemIndex:
        faiss = _faiss()
        folder = Path(folder)
        meta = json.loads((folder / IDS_FILE).read_text())
        return cls(faiss.read_index(str(folder / INDEX_FILE)), meta["item_ids"], meta["metric"])


def export_faiss_index(
    model, processor, folder: str | Path, item_ids=None, catalogue=None, metric: str = "cosine"
) -> ItemIndex:
    """:func:`item_embeddings` in an :class:`ItemIndex` saved to ``folder``; returns the index."""
    ids, vectors = item_embeddings(model, processor, item_ids, catalogue)
    index = ItemIndex.build(ids, vectors, metric)
    index.save(folder)
    return index


__all__ = [
    "ItemIndex",
    "export_faiss_index",
    "export_item_embeddings",
    "item_embeddings",
    "read_parquet",
    "write_parquet",
]
