"""UBM processor: sessions (package schema) and a catalogue -> interaction token sequences -> model inputs.

An **interaction** is an action and its subject (UBM paper, Sec. 3.1.1), one token sequence:

- a search: ``[CLS] [SEARCH] query words [SEP]`` (keyword and product queries; image queries carry no text
  and are dropped: UBM reads text only);
- an item event: ``[CLS] [VIEW] [TITLE] title [CATEGORY] category path [BRAND] brand [SIZE] large ... [SEP]``:
  the action token, then the item text, a concatenation of title, category and attributes, each behind its own
  special token (``[TITLE]``, ``[CATEGORY]``, one ``[NAME]`` token per attribute name; the brand is the
  attribute ``brand``).

Actions map to the four action tokens ``[SEARCH] [VIEW] [ADD] [BUY]`` through a table the user can change
(:attr:`UbmProcessor.action_table`); by default a click folds into ``[VIEW]``, as in the paper. The title keeps
at most ``max_title_length`` (32) tokens and the whole interaction at most ``max_interaction_length`` (64)
tokens, ``[CLS]`` and ``[SEP]`` included; a session keeps its last ``max_interactions`` (32) interactions. A
candidate item for next-item prediction is an item with no action token (a one-item "session", Sec. 3.4.3).

Batches are flat: every interaction of the batch is one row of ``input_ids`` ``(N, T)``, padded to the longest
interaction of the batch, and ``interaction_mask`` ``(B, L)`` says which of a session's ``L`` slots are real,
in row-major order (``interaction_mask.sum() == N``), so the Interaction Encoder never runs on padding slots.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import torch
from transformers import AutoTokenizer, BatchFeature, ProcessorMixin

from ...data.schema import InvalidRecordError
from ...processing_utils import (
    BERT_SPECIAL_TOKENS,
    AttributeTokensMixin,
    add_special_tokens,
    as_catalogue,
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

ACTION_TOKENS: tuple[str, ...] = ("[SEARCH]", "[VIEW]", "[ADD]", "[BUY]")
"""The paper's four action tokens (Sec. 3.1.1)."""
DEFAULT_ACTION_TABLE: dict[str, str] = {
    "search": "[SEARCH]",
    "view": "[VIEW]",
    "click": "[VIEW]",  # "we use [VIEW] as a more general form that covers item click action"
    "add_to_cart": "[ADD]",
    "purchase": "[BUY]",
}
"""Schema action -> action token (the package's :data:`~session_transformers.DEFAULT_ACTIONS`)."""
TITLE_TOKEN, CATEGORY_TOKEN = "[TITLE]", "[CATEGORY]"
ITEM_FIELD_ATTRIBUTES: tuple[str, ...] = ("brand",)
"""Catalogue fields written as attributes (``[BRAND] gaveres``)."""
TEXT_SUBJECTS = ("keyword_query", "product_query")


def iter_corpus(
    sessions: Iterable[Mapping[str, Any]], catalogue: Mapping[str, Mapping[str, Any]] | None = None
) -> Iterator[str]:
    """Texts to train the WordPiece tokenizer on: every query of the sessions and the catalogue's item text."""
    yield from session_queries(sessions)
    for rec in as_catalogue(catalogue).values():
        yield from record_texts(rec, ("title", "brand"))
        for a in rec.get("attributes") or []:
            if a.get("value"):
                yield a["value"]


class UbmProcessor(AttributeTokensMixin, ProcessorMixin):
    r"""Turns sessions and a catalogue into UBM inputs (see the module docstring for the token layout).

    Args:
        tokenizer: a WordPiece tokenizer whose vocabulary holds the action, field and attribute tokens (build one
            with :meth:`train_tokenizer` or :meth:`from_bert_tokenizer`).
        action_table: schema action -> action token (default :data:`DEFAULT_ACTION_TABLE`). Change it with
            :meth:`set_action_token`.
        max_interaction_length: tokens per interaction, ``[CLS]`` and ``[SEP]`` included (paper: 64).
        max_title_length: tokens of a title (paper: 32).
        max_interactions: interactions kept per session, the most recent (paper: 32).
        on_unknown_attribute: ``"raise"`` or ``"skip"`` an attribute whose token the tokenizer lacks.
    """

    def __init__(
        self,
        tokenizer=None,
        action_table: Mapping[str, str] | None = None,
        max_interaction_length: int = 64,
        max_title_length: int = 32,
        max_interactions: int = 32,
        on_unknown_attribute: str = "raise",
        **kwargs,
    ):
        if max_interaction_length < 4:
            raise ValueError(f"max_interaction_length must be >= 4, got {max_interaction_length}")
        if max_title_length < 1:
            raise ValueError(f"max_title_length must be >= 1, got {max_title_length}")
        if max_interactions < 1:
            raise ValueError(f"max_interactions must be >= 1, got {max_interactions}")
        self.action_table = dict(action_table if action_table is not None else DEFAULT_ACTION_TABLE)
        self.max_interaction_length = max_interaction_length
        self.max_title_length = max_title_length
        self.max_interactions = max_interactions
        self.on_unknown_attribute = unknown_attribute_policy(on_unknown_attribute)
        self._item_cache: dict[tuple, list[int]] = {}
        super().__init__(tokenizer, **kwargs)
        missing = [t for t in dict.fromkeys(self.action_table.values()) if self._token_id(t) is None]
        if missing:
            raise ValueError(f"the tokenizer has no action tokens {missing}; add them with set_action_token")

    # --- building the tokenizer ----------------------------------------------------------------------------
    @staticmethod
    def special_tokens(
        attribute_names: Iterable[str] = (), action_tokens: Iterable[str] = ACTION_TOKENS
    ) -> list[str]:
        """BERT's specials, the action tokens, ``[TITLE] [CATEGORY]``, ``[BRAND]`` and one token per name."""
        attrs = [attribute_token(n) for n in (*ITEM_FIELD_ATTRIBUTES, *attribute_names)]
        return list(
            dict.fromkeys([*BERT_SPECIAL_TOKENS, *action_tokens, TITLE_TOKEN, CATEGORY_TOKEN, *attrs])
        )

    @classmethod
    def train_tokenizer(
        cls, texts: Iterable[str], vocab_size: int = 30522, attribute_names: Iterable[str] = (), **kwargs
    ) -> UbmProcessor:
        """Train a lowercase WordPiece tokenizer (``tokenizers``) on ``texts`` and wrap it in a processor.

        Args:
            texts: the corpus, e.g. :func:`iter_corpus`.
            vocab_size: target vocabulary size, special tokens included.
            attribute_names: the catalogue's attribute names (:func:`catalogue_attribute_names`).
            **kwargs: processor fields (``action_table``, ``max_interaction_length``, ...).
        """
        table = dict(kwargs.get("action_table") or DEFAULT_ACTION_TABLE)
        specials = cls.special_tokens(attribute_names, [*ACTION_TOKENS, *table.values()])
        return cls(wordpiece_tokenizer(texts, specials, vocab_size), **kwargs)

    @classmethod
    def from_bert_tokenizer(cls, path: str, attribute_names: Iterable[str] = (), **kwargs) -> UbmProcessor:
        """Wrap a BERT-family tokenizer folder on disk (e.g. MiniLM), adding the UBM special tokens.

        The vocabulary grows: the model's embeddings follow when the Interaction Encoder is loaded from the
        checkpoint (:meth:`UbmModel.load_interaction_encoder_from_bert` resizes them).
        """
        tokenizer = AutoTokenizer.from_pretrained(path)
        table = dict(kwargs.get("action_table") or DEFAULT_ACTION_TABLE)
        add_special_tokens(
            tokenizer,
            cls.special_tokens(attribute_names, [*ACTION_TOKENS, *table.values()])[
                len(BERT_SPECIAL_TOKENS) :
            ],
        )
        return cls(tokenizer, **kwargs)

    def set_action_token(self, action: str, token: str) -> int:
        """Map a schema ``action`` to ``token`` (e.g. ``("click", "[CLICK]")`` to stop folding clicks into
        ``[VIEW]``); a new token is added to the vocabulary. Returns how many tokens were added: when it is 1,
        resize the model's embeddings (``model.resize_token_embeddings(len(processor.tokenizer))``)."""
        added = add_special_tokens(self.tokenizer, [token])
        self.action_table[action] = token
        if added:
            self._warn_resize("UbmProcessor", token)
        return added

    def add_attribute_names(self, names: Iterable[str]) -> int:
        """Add the tokens of new attribute names; returns how many were new (then resize the model's embeddings)."""
        self._item_cache.clear()
        return add_special_tokens(self.tokenizer, [attribute_token(n) for n in names])

    # --- token ids -----------------------------------------------------------------------------------------
    @property
    def action_token_ids(self) -> list[int]:
        """Ids of every action token in the table."""
        return sorted({self._token_id(t) for t in self.action_table.values()})

    @property
    def special_token_ids(self) -> list[int]:
        """Ids of every special token (BERT's, actions, fields, attributes): never masked as item text."""
        return special_token_ids(self.tokenizer)

    def _text_ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"] if text else []

    def item_tokens(self, record: Mapping[str, Any]) -> list[int]:
        """The item text of a catalogue record, without ``[CLS]``, action or ``[SEP]``: ``[TITLE] title
        [CATEGORY] path [BRAND] brand [NAME] value ...`` (the title cut to ``max_title_length`` tokens).

        Raises ``ValueError`` naming the item and the field when a field the text is built from has the wrong
        type (a title that is not a string, a category path that is not a list of strings, ...)."""
        check_catalogue_record(record, ("title", "brand"), attribute_values=(str, int, float))
        attrs = [("brand", record.get("brand"))] + [
            (a.get("name"), a.get("value")) for a in (record.get("attributes") or [])
        ]
        key = (
            record.get("item_id"),
            record.get("title"),
            tuple(record.get("category") or ()),
            tuple(attrs),
        )
        cached = self._item_cache.get(key)
        if cached is not None:
            return cached
        ids = [
            self._token_id(TITLE_TOKEN),
            *self._text_ids(record.get("title") or "")[: self.max_title_length],
        ]
        if record.get("category"):
            ids += [self._token_id(CATEGORY_TOKEN), *self._text_ids(" ".join(record["category"]))]
        for name, value in attrs:
            if not value:
                continue
            marker = self._marker(name, record.get("item_id"))
            if marker is not None:
                ids += [marker, *self._text_ids(str(value))]
        if len(self._item_cache) < 1_000_000:
            self._item_cache[key] = ids
        return ids

    def _wrap(self, body: list[int]) -> list[int]:
        tok = self.tokenizer
        return [tok.cls_token_id, *body[: self.max_interaction_length - 2], tok.sep_token_id]

    def encode_item(self, item: str | Mapping[str, Any], catalogue=None) -> list[int]:
        """A candidate item as a one-interaction session with no action token: ``[CLS] item text [SEP]``."""
        record = (
            item if isinstance(item, Mapping) else self._record(item, as_catalogue(catalogue), None, None)
        )
        return self._wrap(self.item_tokens(record))

    def _record(self, item_id: str, catalogue, session_id, index) -> Mapping[str, Any]:
        if not isinstance(item_id, str) or not item_id:
            where = "" if session_id is None else f"session {session_id!r}: event {index}: "
            raise ValueError(
                f"{where}field 'item_id': an item ID must be a non-empty string, got {item_id!r:.80}"
            )
        if item_id not in catalogue:
            where = "" if session_id is None else f"session {session_id!r}: event {index}: "
            where += "field 'item_id': "
            raise KeyError(f"{where}item {item_id!r} is not in the catalogue passed to the UBM processor")
        return catalogue[item_id]

    def encode_session(self, session: Mapping[str, Any], catalogue=None, index: int = 0) -> list[list[int]]:
        """Token ids of a session's interactions (its last ``max_interactions``), as in the module docstring.

        Raises:
            ValueError / KeyError naming the session, the event and the field: an action missing from the
            table, a text query with no text, an item missing from the catalogue, or a session with no text
            interaction at all; :class:`~session_transformers.data.schema.InvalidRecordError` (a ``ValueError``)
            naming the session (``index``: its place in the batch) and the field for a malformed record.
        """
        catalogue = as_catalogue(catalogue)
        sid, source, events = session_events(session, index, "UbmProcessor")
        out = []
        for i, ev in enumerate(events):
            if not isinstance(ev, Mapping):
                raise InvalidRecordError(source, index, f"events[{i}]", f"must be a mapping, got {ev!r:.80}")
            action = ev.get("action")
            if not isinstance(action, str) or action not in self.action_table:
                raise ValueError(
                    f"session {sid!r}: event {i}: field 'action': {action!r} is not in the action table "
                    f"{sorted(self.action_table)} (processor.set_action_token adds one)"
                )
            subject = ev.get("subject") or ("item" if ev.get("item_id") is not None else None)
            if subject == "image_query":
                continue  # no text: UBM reads text only
            if subject in TEXT_SUBJECTS:
                query = ev.get("query")
                if not query or (isinstance(query, str) and not query.strip()):
                    raise ValueError(f"session {sid!r}: event {i}: field 'query': a {subject} needs its text")
                if not isinstance(query, str):
                    raise InvalidRecordError(
                        source,
                        index,
                        f"events[{i}].query",
                        f"must be a string, got {type(ev['query']).__name__}",
                    )
                if not is_text(ev["query"]):
                    raise InvalidRecordError(
                        source, index, f"events[{i}].query", "contains a lone surrogate: not text"
                    )
                body = self._text_ids(ev["query"])
            elif subject == "item":
                item_id = event_item_id(ev, source, index, i)
                body = self.item_tokens(self._record(item_id, catalogue, sid, i))
            else:
                raise ValueError(f"session {sid!r}: event {i}: field 'subject': unknown subject {subject!r}")
            out.append(self._wrap([self._token_id(self.action_table[action]), *body]))
        if not out:
            raise ValueError(
                f"session {sid!r}: field 'events': no text interaction (only image queries, or empty)"
            )
        return out[-self.max_interactions :]

    # --- padding ---------------------------------------------------------------------------------------------
    def pad_interactions(
        self, sessions: Sequence[Sequence[Sequence[int]]], prefix: str = ""
    ) -> dict[str, torch.Tensor]:
        """Flat ``input_ids`` / ``attention_mask`` ``(N, T)`` (T = the longest interaction of the batch) and
        ``interaction_mask`` ``(B, L)`` (L = the most interactions of a session in the batch)."""
        ids, mask = pad_rows([seq for session in sessions for seq in session], self.tokenizer.pad_token_id)
        slots = max((len(s) for s in sessions), default=1)
        interaction_mask = torch.zeros((len(sessions), slots), dtype=torch.bool)
        for b, session in enumerate(sessions):
            interaction_mask[b, : len(session)] = True
        return {
            f"{prefix}input_ids": ids,
            f"{prefix}attention_mask": mask,
            f"{prefix}interaction_mask": interaction_mask,
        }

    def __call__(
        self,
        sessions: Mapping[str, Any] | Sequence[Mapping[str, Any]],
        catalogue: Mapping[str, Mapping[str, Any]] | Iterable[Mapping[str, Any]] | None = None,
        return_tensors: str | None = "pt",
        **kwargs,
    ) -> BatchFeature:
        """Encode one session or a list: ``input_ids`` / ``attention_mask`` ``(N, T)``, ``interaction_mask``
        ``(B, L)``."""
        if isinstance(sessions, Mapping):
            sessions = [sessions]
        catalogue = as_catalogue(catalogue)
        encoded = [self.encode_session(s, catalogue, b) for b, s in enumerate(sessions)]
        return BatchFeature(data=self.pad_interactions(encoded), tensor_type=return_tensors)

    def encode_items(self, items: Sequence[str | Mapping[str, Any]], catalogue=None) -> BatchFeature:
        """Candidate items (ids in ``catalogue`` or records) as one-interaction sessions: ``input_ids`` /
        ``attention_mask`` ``(C, T)`` and ``interaction_mask`` ``(C, 1)``."""
        catalogue = as_catalogue(catalogue)
        encoded = [[self.encode_item(i, catalogue)] for i in items]
        return BatchFeature(data=self.pad_interactions(encoded), tensor_type="pt")

    def decode_interaction(self, ids: Sequence[int]) -> str:
        """The tokens of one interaction row, padding dropped (for inspection)."""
        return " ".join(
            self.tokenizer.convert_ids_to_tokens([i for i in ids if i != self.tokenizer.pad_token_id])
        )


__all__ = [
    "ACTION_TOKENS",
    "CATEGORY_TOKEN",
    "DEFAULT_ACTION_TABLE",
    "TITLE_TOKEN",
    "UbmProcessor",
    "as_catalogue",
    "attribute_token",
    "catalogue_attribute_names",
    "iter_corpus",
]
