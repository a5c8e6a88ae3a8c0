"""CERES processor (sessions -> model inputs) and the CERES masking collator.

Item text, as in the CERES paper (Section 3.2.1):

- a **query** is one sequence ``[SEARCH] keywords``;
- a **product** is a table of attribute sequences, each ``[ATTRTYPE] value`` where ``[ATTRTYPE]`` names the
  attribute (``[BRAND]``, ``[CATEGORY]``, ``[COLOR]``, ...). The first one is the *product sequence*, the
  concatenation of title and description: ``[TITLE] title [DESCRIPTION] description``. The product embedding is
  the average of its attributes' sentence embeddings.

How a sequence's sentence embedding is pooled from its token outputs is the model's ``config.sentence_pooling``
(the mean of its tokens by default; the paper describes the marker's output, ``"first"``).

Image queries are skipped: CERES is a text-only model.

The processor returns flat tensors whose names are the model's ``forward`` arguments: every text sequence of the
batch is one row of ``input_ids`` ``(num_sequences, T)``; ``sequence_item_index`` says which item each row
belongs to, ``item_session_index`` which session each item belongs to, and the batched session graphs
(:mod:`session_transformers.graphs.ceres`) are flat ``edge_index``/``edge_type``/``item_position`` tensors.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import torch
from transformers import AutoTokenizer, BatchFeature, ProcessorMixin

from ...data.schema import QUERY_SUBJECTS, InvalidRecordError
from ...graphs.ceres import ceres_session_graph, ceres_session_items
from ...processing_utils import (
    BERT_SPECIAL_TOKENS,
    AttributeTokensMixin,
    SeededCollatorMixin,
    add_special_tokens,
    attribute_token,
    catalogue_attribute_names,
    check_catalogue_record,
    event_item_id,
    is_text,
    pad_rows,
    record_texts,
    session_events,
    session_queries,
    special_token_ids,
    unknown_attribute_policy,
    wordpiece_tokenizer,
)
from ...processing_utils import (
    as_catalogue as _as_catalogue,
)
from .configuration_ceres import CeresConfig

SEARCH_TOKEN = "[SEARCH]"
FIELD_ATTRIBUTES: tuple[str, ...] = ("title", "description", "brand", "category")
"""Catalogue fields that are product attributes in every catalogue (each gets its ``[ATTRTYPE]`` token)."""
LONG_SEQUENCE_TOKENS: tuple[str, ...] = ("[TITLE]", "[DESCRIPTION]")
"""Sequences starting with these tokens are *long* for masking (product title and description)."""


def iter_corpus(
    sessions: Iterable[Mapping[str, Any]], catalogue: Mapping[str, Mapping[str, Any]] | None = None
) -> Iterator[str]:
    """Texts to train the tokenizer on: every query of the sessions and every text field of the catalogue."""
    yield from session_queries(sessions)
    for rec in (catalogue or {}).values():
        yield from record_texts(rec, ("title", "description", "brand"))
        for a in rec.get("attributes") or []:
            yield a["value"]


class CeresProcessor(AttributeTokensMixin, ProcessorMixin):
    r"""Turns sessions (package schema) and a catalogue into CERES model inputs.

    Args:
        tokenizer: a WordPiece tokenizer whose special tokens include ``[SEARCH]`` and one ``[ATTRTYPE]`` token per
            product attribute (build one with :meth:`train_tokenizer` or :meth:`from_bert_tokenizer`).
        max_query_length: tokens of a query sequence, ``[SEARCH]`` included.
        max_product_sequence_length: tokens of the product sequence (title + description), markers included.
        max_attribute_length: tokens of every other attribute sequence, ``[ATTRTYPE]`` included.
        max_attributes_per_product: attribute sequences per product besides the product sequence.
        max_session_items: items kept per session (the most recent); at most the model's ``max_session_items``.
        on_unknown_attribute: ``"raise"`` or ``"skip"`` an attribute whose ``[ATTRTYPE]`` token the tokenizer lacks.
    """

    def __init__(
        self,
        tokenizer=None,
        max_query_length: int = 32,
        max_product_sequence_length: int = 128,
        max_attribute_length: int = 16,
        max_attributes_per_product: int = 8,
        max_session_items: int = 64,
        on_unknown_attribute: str = "raise",
        **kwargs,
    ):
        lengths = {
            "max_query_length": max_query_length,
            "max_product_sequence_length": max_product_sequence_length,
            "max_attribute_length": max_attribute_length,
        }
        for name, value in lengths.items():
            if value < 2:
                raise ValueError(f"{name} must be >= 2 (a marker token and one text token), got {value}")
        if max_session_items < 1:
            raise ValueError(f"max_session_items must be >= 1, got {max_session_items}")
        self.max_query_length = max_query_length
        self.max_product_sequence_length = max_product_sequence_length
        self.max_attribute_length = max_attribute_length
        self.max_attributes_per_product = max_attributes_per_product
        self.max_session_items = max_session_items
        self.on_unknown_attribute = unknown_attribute_policy(on_unknown_attribute)
        super().__init__(tokenizer, **kwargs)

    # --- building the tokenizer ----------------------------------------------------------------------------
    @staticmethod
    def special_tokens(attribute_names: Iterable[str] = ()) -> list[str]:
        """BERT's specials, ``[SEARCH]``, then ``[TITLE] [DESCRIPTION] [BRAND] [CATEGORY]`` and one per name."""
        attrs = [attribute_token(n) for n in (*FIELD_ATTRIBUTES, *attribute_names)]
        return list(dict.fromkeys([*BERT_SPECIAL_TOKENS, SEARCH_TOKEN, *attrs]))

    @classmethod
    def train_tokenizer(
        cls, texts: Iterable[str], vocab_size: int = 30522, attribute_names: Iterable[str] = (), **kwargs
    ) -> CeresProcessor:
        """Train a lowercase WordPiece tokenizer on ``texts`` and return a processor around it.

        Args:
            texts: the corpus (e.g. :func:`iter_corpus`).
            vocab_size: target vocabulary size, special tokens included.
            attribute_names: the catalogue's attribute names (e.g. :func:`catalogue_attribute_names`).
            **kwargs: processor fields (``max_query_length``, ...).
        """
        return cls(wordpiece_tokenizer(texts, cls.special_tokens(attribute_names), vocab_size), **kwargs)

    @classmethod
    def from_bert_tokenizer(cls, path: str, attribute_names: Iterable[str] = (), **kwargs) -> CeresProcessor:
        """Wrap a pretrained BERT-family tokenizer folder, adding ``[SEARCH]`` and the ``[ATTRTYPE]`` tokens.

        The vocabulary grows: resize the model's embeddings to ``len(processor.tokenizer)`` after loading the
        item encoder from the BERT checkpoint (:meth:`CeresModel.load_item_encoder_from_bert` does it).
        """
        tokenizer = AutoTokenizer.from_pretrained(path)
        processor = cls(tokenizer, **kwargs)
        add_special_tokens(
            processor.tokenizer, cls.special_tokens(attribute_names)[len(BERT_SPECIAL_TOKENS) :]
        )
        return processor

    def add_attribute_names(self, names: Iterable[str]) -> int:
        """Add ``[ATTRTYPE]`` tokens for new attribute names; returns how many were new (the same name as UBM's).

        The vocabulary grows, so the model's embeddings must follow:
        ``model.resize_token_embeddings(len(processor.tokenizer))``.
        """
        added = add_special_tokens(self.tokenizer, [attribute_token(n) for n in names])
        if added:
            self._warn_resize("CeresProcessor", f"{added} attribute tokens")
        return added

    def add_attribute_types(self, names: Iterable[str]) -> int:
        """Deprecated name of :meth:`add_attribute_names` (one name for the operation across the families); kept
        for one release."""
        warnings.warn(
            "CeresProcessor.add_attribute_types is renamed add_attribute_names; the old name goes in the next release",
            FutureWarning,
            stacklevel=2,
        )
        return self.add_attribute_names(names)

    # --- encoding items ------------------------------------------------------------------------------------
    def _product_fields(self, record: Mapping[str, Any]) -> list[tuple[int, list[str], int]]:
        """``(marker id, [text, ...], max length)`` per attribute sequence of a product (texts joined by markers)."""
        check_catalogue_record(record, ("title", "description", "brand"))
        title, desc = record.get("title") or "", record.get("description") or ""
        fields = [
            (self._marker("title"), [title] + ([desc] if desc else []), self.max_product_sequence_length)
        ]
        short: list[tuple[str, str]] = []
        if record.get("brand"):
            short.append(("brand", record["brand"]))
        if record.get("category"):
            short.append(("category", " > ".join(record["category"])))
        short += [(a["name"], a["value"]) for a in record.get("attributes") or [] if a.get("value")]
        for name, value in short[: self.max_attributes_per_product]:
            marker = self._marker(name, record.get("item_id"))
            if marker is not None:
                fields.append((marker, [value], self.max_attribute_length))
        return fields

    def _item_sequences(self, kind: str, key: Any, catalogue: Mapping[str, Mapping[str, Any]]):
        """The ``(marker, texts, max_len)`` sequences of one item: a query, a product or an entity."""
        if kind == "query":
            return [(self._token_id(SEARCH_TOKEN), [key], self.max_query_length)]
        if kind == "entity":
            name, value = key
            marker = self._marker(name)
            if marker is None:
                raise ValueError(f"entity attribute {name!r} has no [ATTRTYPE] token in the tokenizer")
            return [(marker, [value], self.max_attribute_length)]
        if not isinstance(key, str):
            raise TypeError(f"candidate {key!r:.80}: field 'item_id': an item ID must be a string")
        if key not in catalogue:
            raise KeyError(f"item {key!r} is not in the catalogue passed to the CERES processor")
        return self._product_fields(catalogue[key])

    def _encode_items(self, items: Sequence[tuple[str, Any]], catalogue) -> tuple[list[list[int]], list[int]]:
        """Token ids of every sequence of every item, and each sequence's item index."""
        specs = [
            (i, seq)
            for i, (kind, key) in enumerate(items)
            for seq in self._item_sequences(kind, key, catalogue)
        ]
        texts = [t for _, (_, ts, _) in specs for t in ts]
        encoded = iter(self.tokenizer(texts, add_special_tokens=False)["input_ids"]) if texts else iter(())
        desc_marker = self._marker("description")
        sequences, owner = [], []
        for i, (marker, ts, max_len) in specs:
            ids = [marker, *next(encoded)]
            for _ in ts[1:]:  # the description, after its own marker
                ids += [desc_marker, *next(encoded)] if desc_marker is not None else next(encoded)
            sequences.append(ids[:max_len])
            owner.append(i)
        return sequences, owner

    def _pad(self, sequences: list[list[int]], prefix: str) -> dict[str, torch.Tensor]:
        ids, mask = pad_rows(sequences, self.tokenizer.pad_token_id)
        return {f"{prefix}input_ids": ids, f"{prefix}attention_mask": mask}

    # --- sessions -> inputs --------------------------------------------------------------------------------
    @staticmethod
    def check_session(session: Any, index: int = 0, catalogue: Mapping[str, Any] | None = None) -> None:
        """The fields of a session the processor reads have the schema's types (queries are non-empty strings,
        item IDs non-empty strings in ``catalogue`` when one is given, subjects known); raises
        :class:`~session_transformers.data.schema.InvalidRecordError` (or ``KeyError`` for an item missing from
        the catalogue) naming the session, its ``index`` in the batch and the field."""
        sid, source, events = session_events(session, index, "CeresProcessor")
        for j, ev in enumerate(events):
            if not isinstance(ev, Mapping):
                raise InvalidRecordError(source, index, f"events[{j}]", f"must be a mapping, got {ev!r:.80}")
            subject = ev.get("subject")
            if subject in QUERY_SUBJECTS:
                query = ev.get("query")
                if not isinstance(query, str) or not query.strip():
                    raise InvalidRecordError(
                        source,
                        index,
                        f"events[{j}].query",
                        f"a {subject} needs a non-empty string, got {query!r:.80}",
                    )
                if not is_text(query):
                    raise InvalidRecordError(
                        source, index, f"events[{j}].query", "contains a lone surrogate: not text"
                    )
            elif subject == "item":
                item_id = event_item_id(ev, source, index, j)
                if catalogue is not None and item_id not in catalogue:
                    raise KeyError(
                        f"session {sid!r}: event {j}: field 'item_id': item {item_id!r} is not in the catalogue "
                        "passed to the CERES processor"
                    )
            elif subject != "image_query":  # image queries are skipped: CERES reads text only
                raise InvalidRecordError(
                    source, index, f"events[{j}].subject", f"unknown subject {subject!r:.80}"
                )

    def session_graph(self, session: Mapping[str, Any]):
        """The session's CERES graph, cut to its ``max_session_items`` most recent items.

        A long session is cut *before* the graph is built (:func:`_recent_events`): its query-query edges grow
        with the square of its queries, and a session of 10,000 queries would otherwise build 50 million edges
        only to keep a few."""
        events = session["events"]
        items, _ = ceres_session_items(events)
        if len(items) > self.max_session_items:
            events = _recent_events(events, len(items) - self.max_session_items)
        graph = ceres_session_graph(events)
        n, keep = graph.num_nodes, self.max_session_items
        if n > keep:
            src, dst = graph.edge_index
            kept = (src >= n - keep) & (dst >= n - keep)
            graph.edge_index = graph.edge_index[:, kept] - (n - keep)
            graph.edge_type = graph.edge_type[kept]
            graph.node_kind = graph.node_kind[n - keep :]
            graph.position = torch.arange(keep)
            graph.item_keys = graph.item_keys[n - keep :]
            graph.num_nodes = keep
        return graph

    def __call__(
        self,
        sessions: Mapping[str, Any] | Sequence[Mapping[str, Any]],
        catalogue: Mapping[str, Mapping[str, Any]] | Iterable[Mapping[str, Any]] | None = None,
        targets: Sequence[Any] | None = None,
        negatives: Sequence[Mapping[str, Any]] | None = None,
        return_tensors: str | None = "pt",
        **kwargs,
    ) -> BatchFeature:
        """Encode a batch of sessions (and, for retrieval, their target and negative candidates).

        Args:
            sessions: one session or a list, ``{"session_id", "events"}`` in the package schema.
            catalogue: ``item_id -> record`` (or an iterable of records) for every product in sessions and candidates.
            targets: per session, the relevant candidate(s): a spec or a list of specs, where a spec is
                ``{"item_id": ...}`` (a product), ``{"query": ...}`` or ``{"attribute": name, "value": ...}`` (an
                entity). Candidates are deduplicated across the batch.
            negatives: extra candidate specs shared by the batch (given negatives).

        Returns:
            A :class:`~transformers.BatchFeature` with ``input_ids``/``attention_mask`` ``(S, T)``,
            ``sequence_item_index`` ``(S,)``, ``item_session_index`` ``(I,)``, ``item_position`` ``(I,)``,
            ``edge_index`` ``(2, E)``, ``edge_type`` ``(E,)``; with
            ``targets`` also ``candidate_input_ids``/``candidate_attention_mask`` ``(S_c, T_c)``,
            ``candidate_sequence_index`` ``(S_c,)`` and ``labels`` ``(B, C)`` (1.0 where candidate c is relevant).
        """
        if isinstance(sessions, Mapping):
            sessions = [sessions]
        catalogue = _as_catalogue(catalogue)
        items, item_session, positions, edges, types = [], [], [], [], []
        for b, session in enumerate(sessions):
            self.check_session(session, b, catalogue)
            try:
                graph = self.session_graph(session)
            except ValueError as err:
                raise InvalidRecordError(
                    f"CeresProcessor: session {session.get('session_id', b)!r}", b, "events", str(err)
                ) from err
            edges.append(graph.edge_index + len(items))
            types.append(graph.edge_type)
            items += graph.item_keys
            item_session += [b] * graph.num_nodes
            positions.append(graph.position)
        sequences, owner = self._encode_items(items, catalogue)
        data = {
            **self._pad(sequences, ""),
            "sequence_item_index": torch.tensor(owner, dtype=torch.long),
            "item_session_index": torch.tensor(item_session, dtype=torch.long),
            "item_position": torch.cat(positions),
            "edge_index": torch.cat(edges, dim=1),
            "edge_type": torch.cat(types),
        }
        if targets is not None:
            data.update(self._encode_candidates(targets, negatives or [], len(sessions), catalogue))
        return BatchFeature(data=data, tensor_type=return_tensors)

    def encode_candidates(self, candidates: Sequence[Mapping[str, Any]], catalogue=None) -> BatchFeature:
        """Encode candidates alone (for ranking a pool): ``candidate_input_ids``, ``candidate_attention_mask``,
        ``candidate_sequence_index``."""
        keys = [candidate_key(c) for c in candidates]
        sequences, owner = self._encode_items(keys, _as_catalogue(catalogue))
        data = {**self._pad(sequences, "candidate_"), "candidate_sequence_index": torch.tensor(owner)}
        return BatchFeature(data=data, tensor_type="pt")

    def _encode_candidates(self, targets, negatives, num_sessions: int, catalogue) -> dict[str, torch.Tensor]:
        if len(targets) != num_sessions:
            raise ValueError(f"got {len(targets)} targets for {num_sessions} sessions")
        index: dict[tuple, int] = {}
        relevant: list[list[int]] = []
        for target in targets:
            specs = [target] if isinstance(target, Mapping) else list(target)
            relevant.append([index.setdefault(candidate_key(s), len(index)) for s in specs])
        for spec in negatives:
            index.setdefault(candidate_key(spec), len(index))
        sequences, owner = self._encode_items(list(index), catalogue)
        labels = torch.zeros(num_sessions, len(index))
        for b, cols in enumerate(relevant):
            labels[b, cols] = 1.0
        return {
            **self._pad(sequences, "candidate_"),
            "candidate_sequence_index": torch.tensor(owner, dtype=torch.long),
            "labels": labels,
        }


def _recent_events(events: Sequence[Mapping[str, Any]], first: int) -> list[Mapping[str, Any]]:
    """The events of a session from the one that creates graph node ``first`` on, less the item events of products
    whose node was created before it: their graph is the full graph's nodes ``first, first + 1, ...`` and the edges
    among them, in the same order (nodes are numbered by first appearance; a query event is always a new node)."""
    products: set[str] = set()
    n = 0
    for e, ev in enumerate(events):
        subject = ev.get("subject")
        if subject in QUERY_SUBJECTS or (subject == "item" and ev["item_id"] not in products):
            if n == first:
                return [
                    x for x in events[e:] if not (x.get("subject") == "item" and x["item_id"] in products)
                ]
            n += 1
        if subject == "item":
            products.add(ev["item_id"])
    return list(events)


def candidate_key(spec: Mapping[str, Any]) -> tuple[str, Any]:
    """``(kind, key)`` of a candidate spec: ``("product", id)``, ``("query", text)``, ``("entity", (name, value))``."""
    if spec.get("item_id") is not None:
        return ("product", spec["item_id"])
    if spec.get("query") is not None:
        if not isinstance(spec["query"], str) or not spec["query"].strip():
            raise ValueError(f"candidate {dict(spec)!r:.80}: field 'query' must be a non-empty string")
        return ("query", spec["query"])
    if spec.get("attribute") is not None and spec.get("value") is not None:
        return ("entity", (spec["attribute"], spec["value"]))
    raise ValueError(f"a candidate needs 'item_id', 'query' or 'attribute' + 'value'; got {dict(spec)!r}")


class CeresMaskingCollator(SeededCollatorMixin):
    r"""The CERES token masking strategy (Section 3.1), as a data collator.

    - **Long sequences** (product title and description, i.e. rows starting with ``[TITLE]`` or ``[DESCRIPTION]``):
      each text token is chosen with probability ``mlm_probability`` (15%), following Devlin et al. (2018).
    - **Short sequences** (queries and other attributes): a sequence is masked with probability
      ``short_sequence_mask_probability`` (50%); in a masked one, ``short_token_mask_probability`` (50%) of its
      text tokens (rounded, at least one) are chosen at random.
    - Chosen tokens follow BERT's replacement: 80% ``[MASK]``, 10% a random non-special token, 10% unchanged.
      ``labels`` hold the original id at chosen tokens and ``-100`` elsewhere. Special tokens and padding are
      never chosen.

    **Where the randomness comes from.** By default masks are drawn from ``generator`` (or, without one, from
    torch's global RNG). With ``seed`` set, the masks of a batch called on raw sessions are a pure function of
    ``seed``, the epoch given to :meth:`set_epoch` and the batch's ``session_id`` list (a private generator seeded
    from their digest). Training uses this: a DataLoader collates batch *k + 1* before step *k* has run
    (Accelerate's loader prefetches one batch to know where the epoch ends), so masks drawn from the global RNG
    would be drawn *before* the checkpoint of step *k* saves that RNG, and a run resumed from it would draw them
    again, differently. Seeded masks are the same however the run was interrupted, and drawing them consumes
    nothing from the global RNG (which dropout uses), so turning evaluation on does not change training either.
    Evaluation uses a seeded collator that stays at epoch 0: its masks are the same at every evaluation.

    Args:
        processor: the :class:`CeresProcessor`.
        catalogue: ``item_id -> record`` used when called on raw sessions.
        config: a :class:`CeresConfig` whose masking rates are used (defaults: the paper's).
        generator: a seeded ``torch.Generator`` for reproducible masks.
        seed: masks per batch of sessions as a function of (seed, epoch, session ids), as above; excludes
            ``generator``.
    """

    def __init__(
        self,
        processor: CeresProcessor,
        catalogue=None,
        config: CeresConfig | None = None,
        generator: torch.Generator | None = None,
        seed: int | None = None,
    ):
        self._init_randomness(generator, seed)
        config = config or CeresConfig()
        self.processor = processor
        self.catalogue = _as_catalogue(catalogue)
        self.mlm_probability = config.mlm_probability
        self.short_sequence_mask_probability = config.short_sequence_mask_probability
        self.short_token_mask_probability = config.short_token_mask_probability
        self.mask_replace_probability = config.mask_replace_probability
        self.random_replace_probability = config.random_replace_probability
        tok = processor.tokenizer
        vocab = tok.get_vocab()
        special = special_token_ids(tok)
        self.special_ids = torch.tensor(special, dtype=torch.long)
        self.random_ids = torch.tensor(sorted(set(range(len(tok))) - set(special)), dtype=torch.long)
        self.long_ids = torch.tensor([vocab[t] for t in LONG_SEQUENCE_TOKENS if t in vocab], dtype=torch.long)
        self.mask_token_id = tok.mask_token_id

    def __call__(self, sessions: Sequence[Mapping[str, Any]]) -> BatchFeature:
        """Encode raw sessions with the processor and mask them."""
        for b, s in enumerate(sessions):
            self.processor.check_session(s, b, self.catalogue)
            sid = s.get("session_id")
            if isinstance(sid, str) and not sid.isascii():
                try:
                    sid.encode("utf-8")  # the seeded masks hash it
                except UnicodeEncodeError as err:
                    raise InvalidRecordError(
                        "CeresMaskingCollator", b, "session_id", "contains a lone surrogate: not text"
                    ) from err
        sessions = [{"session_id": s.get("session_id"), "events": s["events"]} for s in sessions]
        generator = self.batch_generator(sessions) if self.seed is not None else self.generator
        return self.mask(self.processor(sessions, self.catalogue), generator=generator)

    def batch_generator(self, sessions: Sequence[Mapping[str, Any]]) -> torch.Generator:
        """The private generator of a batch under ``seed``: seeded from ``seed``, the epoch (when not 0) and the
        batch's session ids (a session without an id is identified by its events)."""
        if self.seed is None:
            raise ValueError("batch_generator needs the collator's seed")
        return self._batch_generator(
            repr(s["events"]) if s.get("session_id") is None else f"id:{s['session_id']}" for s in sessions
        )

    def mask(
        self, batch: Mapping[str, torch.Tensor], generator: torch.Generator | None = None
    ) -> BatchFeature:
        """Mask ``batch["input_ids"]`` in place of a copy; adds ``labels`` ``(S, T)``. Draws from ``generator``,
        else from the collator's own (``generator`` argument of the constructor), else from the global RNG."""
        generator = generator if generator is not None else self.generator

        def rand(*shape: int) -> torch.Tensor:
            return torch.rand(*shape, generator=generator)

        ids = batch["input_ids"]
        maskable = batch["attention_mask"].bool() & ~torch.isin(ids, self.special_ids)  # (S, T)
        is_long = torch.isin(ids[:, 0], self.long_ids)  # (S,)
        chosen_long = (rand(*ids.shape) < self.mlm_probability) & maskable & is_long[:, None]
        # Short sequences: pick round(p * n) (>= 1) of the n maskable tokens of each selected sequence.
        n = maskable.sum(1)
        k = torch.clamp(torch.round(n * self.short_token_mask_probability), min=1).long()
        selected = (rand(ids.size(0)) < self.short_sequence_mask_probability) & ~is_long & (n > 0)
        scores = torch.where(maskable, rand(*ids.shape), torch.full(ids.shape, 2.0))
        rank = scores.argsort(1).argsort(1)
        chosen_short = (rank < k[:, None]) & maskable & selected[:, None]
        chosen = chosen_long | chosen_short
        labels = torch.where(chosen, ids, torch.full_like(ids, -100))
        draw = rand(*ids.shape)
        to_mask = chosen & (draw < self.mask_replace_probability)
        to_random = (
            chosen & ~to_mask & (draw < self.mask_replace_probability + self.random_replace_probability)
        )
        random_tokens = self.random_ids[torch.randint(len(self.random_ids), ids.shape, generator=generator)]
        masked = torch.where(to_mask, torch.full_like(ids, self.mask_token_id), ids)
        masked = torch.where(to_random, random_tokens, masked)
        return BatchFeature(data={**batch, "input_ids": masked, "labels": labels})


__all__ = [
    "FIELD_ATTRIBUTES",
    "LONG_SEQUENCE_TOKENS",
    "SEARCH_TOKEN",
    "CeresMaskingCollator",
    "CeresProcessor",
    "attribute_token",
    "candidate_key",
    "catalogue_attribute_names",
    "iter_corpus",
]
