"""MUVCOG processor: words <-> ids with their word vectors, and sessions -> both views as batched ``HeteroData``.

A session (package schema) becomes its ordered queries (``graphs.muvcog``): keyword queries give ``KQ`` word
nodes, product queries ``PQ`` word nodes (the same word typed and cut from a title are two nodes), image queries
``IQ`` nodes carrying the raw image vector (any fixed size, ``image_dim``; the model projects it). Adjacent query
events with the same timestamp form one query (``grouping="timestamp"``, the paper's "search similar" product
query with its image). Item events are not queries; their clicks are what hard negatives are chosen by.

The word vectors (50-d as in the paper) are trained on the store's or the user's query and title corpus with a
small skip-gram with negative sampling (:func:`train_word_vectors`, seeded, in torch), or read from a word2vec
text file (:meth:`MuvcogProcessor.from_word_vectors_file`). They are saved next to ``processor_config.json`` as
``word_vectors.safetensors`` and initialise the model's word embeddings (:meth:`MuvcogModel.load_word_vectors`).

Graph building is vectorised: :meth:`MuvcogProcessor.encode` turns one session into flat arrays (a few dict
lookups per query), and :func:`~session_transformers.graphs.muvcog.batch_encoded_views` builds both views of a
whole batch with numpy index arithmetic.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from transformers import BatchFeature, ProcessorMixin

from ...data.schema import InvalidRecordError
from ...graphs.muvcog import EncodedSession, batch_encoded_views
from ...processing_utils import session_events

WORD_VECTORS_NAME = "word_vectors.safetensors"
_TOKEN = re.compile(r"[a-z0-9]+")
_TEXT_SUBJECTS = {"keyword_query": 0, "product_query": 1}


def tokenize(text: str | None) -> list[str]:
    """Lower-cased alphanumeric words (the synthetic store's tokenisation)."""
    return _TOKEN.findall(text.lower()) if text else []


def iter_corpus(
    sessions: Iterable[Mapping[str, Any]], catalogue: Mapping[str, Mapping[str, Any]] | Iterable | None = None
) -> Iterable[list[str]]:
    """Word lists to train word vectors on: every text query of the sessions and every catalogue title."""
    for session in sessions:
        for ev in session["events"]:
            if ev.get("subject") in _TEXT_SUBJECTS and ev.get("query"):
                yield tokenize(ev["query"])
    records = catalogue.values() if isinstance(catalogue, Mapping) else (catalogue or [])
    for rec in records:
        if rec.get("title"):
            yield tokenize(rec["title"])


def train_word_vectors(
    sentences: Iterable[Sequence[str]],
    dim: int = 50,
    *,
    window: int = 3,
    negatives: int = 5,
    epochs: int = 5,
    min_count: int = 1,
    batch_size: int = 2048,
    learning_rate: float = 0.01,
    seed: int = 0,
) -> tuple[list[str], torch.Tensor]:
    """A word2vec skip-gram with negative sampling (Mikolov et al.), trained in torch; deterministic per seed.

    Every ``(word, context)`` pair within ``window`` words of each other in a sentence is a positive; each gets
    ``negatives`` noise words drawn from the unigram distribution to the power 0.75. Returns the vocabulary
    (words with at least ``min_count`` occurrences, by decreasing count then alphabetically) and the ``(V, dim)``
    input vectors.
    """
    sentences = [list(s) for s in sentences]
    counts = Counter(w for s in sentences for w in s)
    vocab = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
    if not vocab:
        raise ValueError("the corpus has no word: cannot train word vectors")
    index = {w: i for i, w in enumerate(vocab)}
    ids = [np.asarray([index[w] for w in s if w in index], dtype=np.int64) for s in sentences]
    ids = [s for s in ids if s.size]
    flat = np.concatenate(ids) if ids else np.zeros(0, dtype=np.int64)
    sentence = np.repeat(np.arange(len(ids)), [s.size for s in ids])
    centre, context = [], []
    for offset in range(1, window + 1):
        same = sentence[offset:] == sentence[:-offset] if flat.size > offset else np.zeros(0, dtype=bool)
        a, b = flat[:-offset][same], flat[offset:][same]
        centre += [a, b]
        context += [b, a]
    generator = torch.Generator().manual_seed(seed)
    vectors = ((torch.rand(len(vocab), dim, generator=generator) - 0.5) / dim).requires_grad_()
    if not centre or not sum(
        c.size for c in centre
    ):  # one-word sentences only: the random init is all we have
        return vocab, vectors.detach()
    centre_t = torch.from_numpy(np.concatenate(centre))
    context_t = torch.from_numpy(np.concatenate(context))
    output = torch.zeros(len(vocab), dim, requires_grad=True)
    freq = torch.tensor([counts[w] for w in vocab], dtype=torch.float) ** 0.75
    optimizer = torch.optim.Adam([vectors, output], lr=learning_rate)
    for _ in range(epochs):
        order = torch.randperm(centre_t.numel(), generator=generator)
        for start in range(0, order.numel(), batch_size):
            rows = order[start : start + batch_size]
            # F.embedding, not vectors[...]: the backward of advanced indexing accumulates with several CPU
            # threads in no fixed order, so the vectors (and everything trained on them) differed run to run
            c, o = F.embedding(centre_t[rows], vectors), F.embedding(context_t[rows], output)  # (b, d)
            noise = torch.multinomial(freq, rows.numel() * negatives, True, generator=generator)
            n = F.embedding(noise, output).view(rows.numel(), negatives, dim)  # (b, k, d)
            pos = F.logsigmoid((c * o).sum(-1))
            neg = F.logsigmoid(-(n @ c[:, :, None]).squeeze(-1)).sum(-1)
            loss = -(pos + neg).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return vocab, vectors.detach()


def click_code(item_id: str) -> int:
    """A stable 62-bit integer of an item ID, the same in every process (no shared item vocabulary needed)."""
    return int.from_bytes(hashlib.blake2b(str(item_id).encode(), digest_size=8).digest(), "little") >> 2


@dataclass(frozen=True)
class _SpecialIds:
    """What ``Trainer(processing_class=processor)`` reads from ``processor.tokenizer``: no special tokens."""

    pad_token_id: None = None
    bos_token_id: None = None
    eos_token_id: None = None


class MuvcogProcessor(ProcessorMixin):
    r"""Sessions -> MUVCOG inputs (both views as batched ``HeteroData``), with the word vocabulary and vectors.

    Args:
        vocab: the words; word ``vocab[i]`` has id ``i``. Words outside it are dropped from queries (a query left
            with nothing is no query).
        word_vectors: ``(len(vocab), word_dim)`` float vectors (saved as ``word_vectors.safetensors``).
        image_dim: size of every image-query vector (512 in the paper); a different size raises ``ValueError``.
        grouping: ``"timestamp"`` merges adjacent query events with the same timestamp into one query; ``"event"``
            makes every query event its own query.
        max_queries: a session keeps its last ``max_queries`` queries.
        text_only: drop image queries (MUVCOG-T's input).
        click_actions: the actions whose items count as a session's clicks (hard-negative selection).
        item_vocab: item IDs of the click-prediction head (``item_vocab[i]`` has index ``i``); empty until a click
            task sets it.
        max_target_words: width of the padded word-id targets of query suggestion.

    Calling the processor returns the model's inputs::

        processor = MuvcogProcessor.from_corpus(iter_corpus(train_sessions, catalogue))
        batch = processor(sessions)          # {"num_queries", "global_view", "local_view"}
        embeddings = model(**batch).session_embedding
    """

    def __init__(
        self,
        vocab: list[str] | None = None,
        word_vectors: torch.Tensor | np.ndarray | None = None,
        image_dim: int = 512,
        grouping: str = "timestamp",
        max_queries: int = 50,
        text_only: bool = False,
        click_actions: Sequence[str] = ("click",),
        item_vocab: list[str] | None = None,
        max_target_words: int = 8,
        word_dim: int = 50,
        **kwargs,
    ):
        self.vocab = list(vocab or [])
        self._index = {w: i for i, w in enumerate(self.vocab)}
        if len(self._index) != len(self.vocab):
            raise ValueError(f"vocab has {len(self.vocab) - len(self._index)} duplicate words")
        if grouping not in ("timestamp", "event"):
            raise ValueError(f"grouping must be 'timestamp' or 'event', got {grouping!r}")
        if image_dim < 1 or max_queries < 1 or max_target_words < 1:
            raise ValueError(
                f"image_dim, max_queries and max_target_words must be >= 1, got {image_dim}, {max_queries}, "
                f"{max_target_words}"
            )
        self.image_dim, self.grouping, self.max_queries = int(image_dim), grouping, int(max_queries)
        self.text_only, self.click_actions = bool(text_only), list(click_actions)
        self.item_vocab = list(item_vocab or [])
        self._item_index = {item: i for i, item in enumerate(self.item_vocab)}
        self.max_target_words = int(max_target_words)
        if word_vectors is None:
            word_vectors = torch.zeros(len(self.vocab), word_dim)
        self.word_vectors = torch.as_tensor(np.asarray(word_vectors, dtype=np.float32))
        if self.word_vectors.shape[0] != len(self.vocab) or self.word_vectors.dim() != 2:
            raise ValueError(
                f"word_vectors must be (len(vocab)={len(self.vocab)}, dim), got {tuple(self.word_vectors.shape)}"
            )
        self.word_dim = int(self.word_vectors.shape[1])
        super().__init__(**kwargs)

    # --- building ---------------------------------------------------------------------------------------------
    @classmethod
    def from_corpus(
        cls,
        sentences: Iterable[Sequence[str]],
        word_dim: int = 50,
        *,
        seed: int = 0,
        epochs: int = 5,
        window: int = 3,
        min_count: int = 1,
        **kwargs,
    ) -> MuvcogProcessor:
        """Train word vectors on ``sentences`` (word lists, e.g. :func:`iter_corpus`) and wrap them."""
        vocab, vectors = train_word_vectors(
            sentences, word_dim, seed=seed, epochs=epochs, window=window, min_count=min_count
        )
        return cls(vocab, vectors, **kwargs)

    @classmethod
    def from_word_vectors_file(cls, path: str | os.PathLike, **kwargs) -> MuvcogProcessor:
        """Read a word2vec text file (``word v1 v2 ...`` per line, an optional ``count dim`` header line)."""
        vocab, rows = [], []
        with open(path, encoding="utf-8") as fh:
            for n, line in enumerate(fh):
                parts = line.rstrip().split(" ")
                if n == 0 and len(parts) == 2 and all(p.isdigit() for p in parts):
                    continue
                if len(parts) < 2:
                    continue
                try:
                    rows.append([float(v) for v in parts[1:]])
                except ValueError as err:
                    raise ValueError(
                        f"{path}, line {n + 1}: the vector of {parts[0]!r} is not numbers"
                    ) from err
                if len(rows[-1]) != len(rows[0]):
                    raise ValueError(
                        f"{path}, line {n + 1}: {len(rows[-1])} values, the first line has {len(rows[0])}"
                    )
                vocab.append(parts[0])
        if not vocab:
            raise ValueError(f"{path} holds no word vectors")
        return cls(vocab, np.asarray(rows, dtype=np.float32), **kwargs)

    @property
    def tokenizer(self) -> _SpecialIds:
        return _SpecialIds()

    @property
    def model_input_names(self) -> list[str]:
        return ["num_queries", "global_view", "local_view"]

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(words={len(self.vocab)}, word_dim={self.word_dim}, image_dim={self.image_dim}, "
            f"grouping={self.grouping!r}, text_only={self.text_only}, items={len(self.item_vocab)})"
        )

    def set_item_vocab(self, item_ids: Iterable[str]) -> None:
        """The catalogue of the click-prediction head (sorted, so indices do not depend on data order)."""
        self.item_vocab = sorted(dict.fromkeys(str(i) for i in item_ids))
        self._item_index = {item: i for i, item in enumerate(self.item_vocab)}

    def item_index(self, item_id: str) -> int:
        """Index of an item of the click head; ``-100`` when unknown (ignored by the loss, a miss in metrics)."""
        return self._item_index.get(str(item_id), -100)

    # --- words ------------------------------------------------------------------------------------------------
    def word_ids(self, text: str | None) -> list[int]:
        """Distinct known word ids of a text, in order."""
        get = self._index.get
        return list(dict.fromkeys(i for i in (get(w) for w in tokenize(text)) if i is not None))

    def target_word_ids(self, texts: Sequence[str | None]) -> torch.Tensor:
        """``(B, max_target_words)`` distinct word ids of each text, padded with ``-100``."""
        out = torch.full((len(texts), self.max_target_words), -100, dtype=torch.long)
        for b, text in enumerate(texts):
            ids = self.word_ids(text)[: self.max_target_words]
            out[b, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        return out

    # --- sessions -> arrays -----------------------------------------------------------------------------------
    def encode(self, session: Mapping[str, Any], index: int = 0) -> EncodedSession:
        """One session as flat node memberships (:class:`~session_transformers.graphs.muvcog.EncodedSession`).

        Raises ``ValueError`` naming the session and the field for an image of the wrong size, a query event
        without text, or a session left without any query.
        """
        sid, source, events = session_events(session, index, "MuvcogProcessor")
        # One pass over the events: a query is [keyword word ids, product word ids, indices into `raw`]; word ids
        # and images are made distinct per query at the end, image vectors converted in one call (the per-vector
        # numpy calls were most of the cost of graph building).
        queries: list[list[list]] = []
        raw: list = []  # image vectors as given
        raw_event: list[int] = []  # the event of each
        last_key = None
        get = self._index.get
        by_timestamp, image_dim, text_only = self.grouping == "timestamp", self.image_dim, self.text_only
        for e, ev in enumerate(events):
            if not isinstance(ev, Mapping):
                raise InvalidRecordError(source, index, f"events[{e}]", f"must be a mapping, got {ev!r:.80}")
            subject = ev.get("subject")
            if subject == "item":
                continue
            slot = _TEXT_SUBJECTS.get(subject) if isinstance(subject, str) else None
            if slot is not None:
                text = ev.get("query")
                if text is None:
                    raise ValueError(f"session {sid!r}, event {e}: field 'query' is missing for a {subject}")
                if not isinstance(text, str):
                    raise InvalidRecordError(
                        source, index, f"events[{e}].query", f"must be a string, got {type(text).__name__}"
                    )
                value = [i for i in map(get, tokenize(text)) if i is not None]
            elif subject == "image_query":
                if text_only:
                    continue  # MUVCOG-T: image queries are not part of the session
                image = ev.get("image")
                if not isinstance(image, list | tuple | np.ndarray) or len(image) != image_dim:
                    size = len(image) if isinstance(image, list | tuple | np.ndarray) else None
                    raise ValueError(
                        f"session {sid!r}, event {e}: field 'image' has size {size}, expected {image_dim}"
                    )
                slot, value = 2, [len(raw)]
                raw.append(image)
                raw_event.append(e)
            else:
                raise ValueError(f"session {sid!r}, event {e}: unknown field 'subject' {subject!r}")
            ts = ev.get("timestamp")
            key = ts if (by_timestamp and ts is not None) else None
            if key is not None and key == last_key and queries:
                queries[-1][slot].extend(value)
            else:
                query = [[], [], []]
                query[slot] = value
                queries.append(query)
            last_key = key
        # images: distinct vectors numbered by first appearance in the session
        rows, matrix = self._image_rows(raw, raw_event, source, index)
        for query in queries:
            for t in (0, 1):
                if len(query[t]) > 1:
                    query[t] = list(dict.fromkeys(query[t]))
            if query[2]:
                query[2] = list(dict.fromkeys([rows[r] for r in query[2]]))
        queries = [q for q in queries if q[0] or q[1] or q[2]]
        truncated = len(queries) > self.max_queries
        queries = queries[-self.max_queries :]
        if not queries:
            raise ValueError(f"session {sid!r}: no query with a known word or an image (field 'events')")
        q_rows, t_rows, k_rows = [], [], []
        for q, parts in enumerate(queries):
            for t, keys in enumerate(parts):
                q_rows += [q] * len(keys)
                t_rows += [t] * len(keys)
                k_rows += keys
        if truncated and raw:
            used = sorted({k for q in queries for k in q[2]})
            if len(used) != matrix.shape[0]:  # images of dropped (truncated) queries: renumber the kept ones
                remap = {old: new for new, old in enumerate(used)}
                k_rows = [remap[k] if t == 2 else k for t, k in zip(t_rows, k_rows)]
                matrix = matrix[used]
        rows3 = np.array((q_rows, t_rows, k_rows), dtype=np.int64)  # one conversion, not three
        return EncodedSession(rows3[0], rows3[1], rows3[2], matrix, len(queries))

    def _image_rows(
        self, raw: list, raw_event: list[int], source: str, index: int
    ) -> tuple[list[int], np.ndarray]:
        """Convert a session's image vectors in one call, refuse non-finite or non-numeric ones naming their event,
        and number the distinct vectors by first appearance: the row of each vector, and the ``(I, D)`` distinct
        vectors."""
        if not raw:
            return [], np.zeros((0, self.image_dim), dtype=np.float32)
        matrix = _float32(raw)
        if matrix is None or matrix.shape != (len(raw), self.image_dim) or not np.isfinite(matrix).all():
            for vector, e in zip(raw, raw_event):  # find the first bad vector, in event order
                vec = _float32(vector)
                if vec is None or vec.shape != (self.image_dim,) or not np.isfinite(vec).all():
                    raise InvalidRecordError(
                        source,
                        index,
                        f"events[{e}].image",
                        "must be finite numbers (NaN, inf or not a number)",
                    )
        distinct: dict[bytes, int] = {}
        rows = [distinct.setdefault(vector.tobytes(), len(distinct)) for vector in matrix]
        if len(distinct) == len(raw):
            return rows, matrix
        return rows, matrix[np.unique(rows, return_index=True)[1]]  # rows are numbered by first appearance

    def clicked_items(self, session: Mapping[str, Any]) -> list[str]:
        """Distinct items of the session's click events (``click_actions``), in order."""
        return list(
            dict.fromkeys(
                ev["item_id"]
                for ev in session["events"]
                if ev.get("subject") == "item" and ev.get("action") in self.click_actions
            )
        )

    # --- batching ---------------------------------------------------------------------------------------------
    def views(self, encoded: Sequence[EncodedSession]) -> dict[str, Any]:
        """The model inputs of encoded sessions: ``num_queries`` ``(B,)``, ``global_view``, ``local_view``."""
        agv, hlv = batch_encoded_views(encoded, image_dim=self.image_dim)
        return {"num_queries": agv.num_queries, "global_view": agv, "local_view": hlv}

    def __call__(self, sessions: Sequence[Mapping[str, Any]]) -> BatchFeature:
        """Both views of a batch of sessions (package schema), as ``MuvcogModel.forward`` takes them."""
        if isinstance(sessions, Mapping):
            raise TypeError("pass a list of sessions, not one session")
        return BatchFeature(self.views([self.encode(s, i) for i, s in enumerate(sessions)]))

    # --- saving -----------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out.pop("word_vectors", None)
        return out

    def save_pretrained(self, save_directory, push_to_hub: bool = False, **kwargs):
        files = super().save_pretrained(save_directory, push_to_hub=push_to_hub, **kwargs)
        path = os.path.join(save_directory, WORD_VECTORS_NAME)
        save_file({"word_vectors": self.word_vectors.contiguous()}, path)
        return [*files, path]

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs):
        folder = Path(pretrained_model_name_or_path)
        vectors_path = folder / WORD_VECTORS_NAME
        if not vectors_path.exists():
            from huggingface_hub import hf_hub_download

            vectors_path = Path(hf_hub_download(str(pretrained_model_name_or_path), WORD_VECTORS_NAME))
        vectors = load_file(str(vectors_path))["word_vectors"]
        return super().from_pretrained(pretrained_model_name_or_path, word_vectors=vectors, **kwargs)


def _float32(values) -> np.ndarray | None:
    """``values`` as a float32 array (1e308 becomes inf, for the caller to refuse), or ``None`` if not numbers."""
    try:
        with np.errstate(over="ignore"):
            return np.asarray(values, dtype=np.float32)
    except (TypeError, ValueError):
        return None


def mask_one_query(encoded: EncodedSession, generator: torch.Generator | None = None) -> EncodedSession:
    """The paper's positive sample (Sec. 3.4): the session with one random query removed, its words and images.

    A one-query session cannot lose its only query: one random node of it is removed instead, and a one-node
    session is its own positive.
    """
    n = encoded.num_queries
    if n > 1:
        drop = int(torch.randint(n, (1,), generator=generator))
        keep = encoded.query != drop
        query = encoded.query[keep]
        return encoded._replace(
            query=query - (query > drop),
            node_type=encoded.node_type[keep],
            key=encoded.key[keep],
            num_queries=n - 1,
        )
    if encoded.query.size <= 1:
        return encoded
    drop = int(torch.randint(encoded.query.size, (1,), generator=generator))
    keep = np.arange(encoded.query.size) != drop
    return encoded._replace(
        query=encoded.query[keep], node_type=encoded.node_type[keep], key=encoded.key[keep]
    )


__all__ = [
    "MuvcogProcessor",
    "WORD_VECTORS_NAME",
    "click_code",
    "iter_corpus",
    "mask_one_query",
    "tokenize",
    "train_word_vectors",
]
