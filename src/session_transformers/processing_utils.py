"""Helpers shared by the processors and collators: WordPiece tokenizers and attribute tokens (CERES, UBM), the
session checks and row padding of the text processors, seeded batch randomness (the augmenting collators of CERES,
UBM and MUVCOG), and the one unknown-item policy of every processor, model method, pipeline and export function
that maps item IDs (:data:`UNKNOWN_ITEM_POLICIES`)."""

from __future__ import annotations

import hashlib
import logging
import re
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers


def attribute_token(name: str) -> str:
    """The special token of an attribute name: ``"size"`` -> ``"[SIZE]"``, ``"product type"`` -> ``"[PRODUCT_TYPE]"``."""
    cleaned = re.sub(r"[^0-9A-Za-z]+", "_", str(name).strip()).strip("_").upper()
    if not cleaned:
        raise ValueError(f"attribute name {name!r} has no letters or digits to build a special token from")
    return f"[{cleaned}]"


def catalogue_attribute_names(
    catalogue: Mapping[str, Mapping[str, Any]] | Iterable[Mapping[str, Any]],
) -> list[str]:
    """Sorted distinct attribute names of a catalogue (``record["attributes"][*]["name"]``)."""
    records = catalogue.values() if isinstance(catalogue, Mapping) else catalogue
    return sorted({a["name"] for rec in records for a in (rec.get("attributes") or [])})


def as_catalogue(catalogue: Any) -> Mapping[str, Mapping[str, Any]]:
    """``item_id -> record`` from a mapping, an iterable of records or ``None``; a record without a non-empty
    string ``item_id`` raises :class:`~session_transformers.data.schema.InvalidRecordError` naming it."""
    from .data.schema import InvalidRecordError

    if catalogue is None or isinstance(catalogue, Mapping):
        return catalogue or {}
    out = {}
    for i, rec in enumerate(catalogue):
        item_id = rec.get("item_id") if isinstance(rec, Mapping) else None
        if not isinstance(item_id, str) or not item_id:
            raise InvalidRecordError(
                "catalogue", i, "item_id", f"an item ID is a non-empty string, got {item_id!r:.80}"
            )
        out[item_id] = rec
    return out


def is_text(value: str) -> bool:
    """Whether a string can be encoded as UTF-8 (tokenizers refuse a lone surrogate, ``"\\ud800"``)."""
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_catalogue_record(
    record: Any, text_fields: Sequence[str], attribute_values: tuple[type, ...] = (str,)
) -> None:
    """A catalogue record's fields that a text processor reads have the schema's types: ``ValueError`` naming the
    item and the field if not. ``text_fields`` are plain strings (title, brand...); ``category`` is a list of
    strings; ``attributes`` a list of ``{name: str, value}`` with ``value`` of ``attribute_values`` (or None)."""
    if not isinstance(record, Mapping):
        raise ValueError(f"catalogue record {record!r:.80}: field '<record>': must be a mapping")
    where = f"catalogue item {record.get('item_id')!r}"
    for name in text_fields:
        if record.get(name) is not None and not isinstance(record[name], str):
            raise ValueError(f"{where}: field '{name}': must be a string, got {type(record[name]).__name__}")
        if record.get(name) is not None and not is_text(record[name]):
            raise ValueError(f"{where}: field '{name}': contains a lone surrogate: not text")
    category = record.get("category")
    if category is not None and (
        not isinstance(category, list | tuple) or not all(isinstance(c, str) for c in category)
    ):
        raise ValueError(f"{where}: field 'category': must be a list of strings, got {category!r:.80}")
    if category is not None and not all(is_text(c) for c in category):
        raise ValueError(f"{where}: field 'category': contains a lone surrogate: not text")
    attrs = record.get("attributes")
    if attrs is not None and not isinstance(attrs, list | tuple):
        raise ValueError(f"{where}: field 'attributes': must be a list of {{name, value}}, got {attrs!r:.80}")
    for j, a in enumerate(attrs or ()):
        value = a.get("value") if isinstance(a, Mapping) else None
        if (
            not isinstance(a, Mapping)
            or not isinstance(a.get("name"), str)
            or not (value is None or isinstance(value, attribute_values))
        ):
            raise ValueError(
                f"{where}: field 'attributes[{j}]': must be {{name: str, value: str}}, got {a!r:.80}"
            )
        if not is_text(a["name"]) or (isinstance(value, str) and not is_text(value)):
            raise ValueError(f"{where}: field 'attributes[{j}]': contains a lone surrogate: not text")


def train_wordpiece(
    texts: Iterable[str], special_tokens: Sequence[str], vocab_size: int = 30522
) -> Tokenizer:
    """Train a lowercase BERT-style WordPiece tokenizer on ``texts``, reproducibly.

    ``tokenizers``' WordPiece trainer is not deterministic (huggingface/tokenizers#1794, open): it numbers the
    continuing-subword tokens (``##e``) in hash-map order as it meets them, and breaks ties between equally
    frequent merges by those numbers, so two fits on the same corpus give different vocabularies (8 of 533
    tokens, and the ids of most others, differed between runs on the tiny synthetic store). Here every
    character and continuing-subword token of the corpus is numbered up front, in the trainer's own layout (the
    alphabet, then the ``##`` subwords) but sorted (passed to the trainer after the special tokens, so that it
    reuses their numbers), which leaves no order to chance; the trained vocabulary is then
    rebuilt into a plain WordPiece model in which only ``special_tokens`` are special. The result is the same in
    every process and every run.

    Args:
        texts: the corpus; read twice (an iterator is first held as a list).
        special_tokens: the special tokens, numbered first in this order (``[UNK]`` among them).
        vocab_size: target vocabulary size, special tokens included.
    """
    if isinstance(texts, Iterator) or not isinstance(texts, Sequence):
        texts = list(texts)
    normalizer = normalizers.BertNormalizer(lowercase=True)
    pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    alphabet: set[str] = set()
    continuing: set[str] = set()
    for text in texts:
        for word, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text)):
            alphabet.update(word)
            continuing.update(word[1:])
    specials = list(special_tokens)
    # the trainer's own numbering (specials, the alphabet, then the ##-subwords), with the subwords sorted too
    fixed = [t for t in [*sorted(alphabet), *(f"##{c}" for c in sorted(continuing))] if t not in specials]
    fitting = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    fitting.normalizer, fitting.pre_tokenizer = normalizer, pre_tokenizer
    fitting.train_from_iterator(
        texts, trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=specials + fixed)
    )
    tok = Tokenizer(models.WordPiece(fitting.get_vocab(), unk_token="[UNK]"))
    tok.normalizer, tok.pre_tokenizer, tok.decoder = normalizer, pre_tokenizer, decoders.WordPiece()
    tok.add_special_tokens(specials)
    return tok


BERT_SPECIAL_TOKENS: tuple[str, ...] = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
"""BERT's special tokens, numbered first (in this order) in the WordPiece vocabularies of CERES and UBM."""


def wordpiece_tokenizer(texts: Iterable[str], special_tokens: Sequence[str], vocab_size: int = 30522) -> Any:
    """A ``PreTrainedTokenizerFast`` around :func:`train_wordpiece`: ``special_tokens`` start with
    :data:`BERT_SPECIAL_TOKENS` (its pad, unk, cls, sep and mask tokens); the rest are its extra special tokens."""
    from transformers import PreTrainedTokenizerFast

    tok = train_wordpiece(texts, special_tokens, vocab_size)  # reproducible, unlike a bare WordPieceTrainer
    named = dict(zip(("pad_token", "unk_token", "cls_token", "sep_token", "mask_token"), BERT_SPECIAL_TOKENS))
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, extra_special_tokens=list(special_tokens[len(BERT_SPECIAL_TOKENS) :]), **named
    )


def add_special_tokens(tokenizer: Any, tokens: Sequence[str]) -> int:
    """Add the ``tokens`` a tokenizer's vocabulary lacks as extra special tokens (keeping its others); returns
    how many were new (the model's embeddings must then be resized)."""
    known = set(tokenizer.get_vocab())
    new = [t for t in dict.fromkeys(tokens) if t not in known]
    if new:
        tokenizer.add_special_tokens({"extra_special_tokens": new}, replace_extra_special_tokens=False)
    return len(new)


def special_token_ids(tokenizer: Any) -> list[int]:
    """Sorted ids of every special token of a tokenizer (its named and extra ones, and added tokens marked
    special): what masking never chooses."""
    special = set(tokenizer.all_special_ids)
    special |= {tid for tid, added in tokenizer.added_tokens_decoder.items() if added.special}
    vocab = tokenizer.get_vocab()
    special |= {vocab[t] for t in tokenizer.all_special_tokens if t in vocab}
    return sorted(special)


def session_queries(sessions: Iterable[Mapping[str, Any]]) -> Iterator[str]:
    """Every non-empty query of the sessions' events, in order (a tokenizer's corpus)."""
    for session in sessions:
        for ev in session["events"]:
            if ev.get("query"):
                yield ev["query"]


def record_texts(record: Mapping[str, Any], fields: Sequence[str]) -> Iterator[str]:
    """The non-empty text ``fields`` of a catalogue record, then its category path as one text (a tokenizer's
    corpus)."""
    for name in fields:
        if record.get(name):
            yield record[name]
    if record.get("category"):
        yield " ".join(record["category"])


def unknown_attribute_policy(value: str) -> str:
    """Check an ``on_unknown_attribute=`` value: ``"raise"`` or ``"skip"``."""
    if value not in ("raise", "skip"):
        raise ValueError(f"on_unknown_attribute must be 'raise' or 'skip', got {value!r}")
    return value


class AttributeTokensMixin:
    """Token ids of a text processor's ``tokenizer`` and its ``[ATTRTYPE]`` markers (CERES, UBM): an attribute
    name the tokenizer has no token for raises, or is skipped under ``on_unknown_attribute="skip"``."""

    tokenizer: Any
    on_unknown_attribute: str

    def _token_id(self, token: str) -> int | None:
        tid = self.tokenizer.convert_tokens_to_ids(token)
        return None if tid is None or tid == self.tokenizer.unk_token_id else tid

    def _marker(self, name: str, item: Any = None) -> int | None:
        where = "" if item is None else f"catalogue item {item!r}: field 'attributes': "
        try:
            token = attribute_token(name)
        except ValueError as err:  # a name with no letter or digit
            raise ValueError(f"{where}{err}") from err
        tid = self._token_id(token)
        if tid is None and self.on_unknown_attribute == "raise":
            raise ValueError(
                f"{where}attribute {name!r} has no token {attribute_token(name)} in the tokenizer; call "
                f"processor.add_attribute_names([{name!r}]) (then resize the model embeddings) or build the processor "
                "with on_unknown_attribute='skip'"
            )
        return tid

    def _warn_resize(self, owner: str, added: str) -> None:
        """Warn the caller of a public method that grew the vocabulary that the model's embeddings must follow."""
        warnings.warn(
            f"{owner}: added {added}; the vocabulary is now {len(self.tokenizer)}. Call "
            "model.resize_token_embeddings(len(processor.tokenizer)) before using the model.",
            stacklevel=3,
        )


def pad_rows(rows: Sequence[Sequence[int]], pad_token_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token id rows right-padded to the longest (at least 1): ``input_ids`` and ``attention_mask`` ``(N, T)``."""
    width = max((len(r) for r in rows), default=1)
    ids = torch.full((len(rows), width), pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for r, seq in enumerate(rows):
        ids[r, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        mask[r, : len(seq)] = 1
    return ids, mask


def session_events(session: Any, index: int, owner: str) -> tuple[Any, str, Sequence[Any]]:
    """A session's name (its ``session_id``, else ``index``, its place in the batch), the ``source`` its errors
    name (``"<owner>: session <name>"``) and its events; a session without an ``events`` list raises
    :class:`~session_transformers.data.schema.InvalidRecordError` naming it."""
    from .data.schema import InvalidRecordError

    sid = session.get("session_id") if isinstance(session, Mapping) else None
    sid = index if sid is None else sid  # a session without an ID is named by its place in the batch
    source = f"{owner}: session {sid!r}"
    events = session.get("events") if isinstance(session, Mapping) else None
    if not isinstance(events, list | tuple):
        raise InvalidRecordError(
            source, index, "events", "no 'events' list (a session is a mapping with one)"
        )
    return sid, source, events


def event_item_id(event: Mapping[str, Any], source: str, index: int, position: int) -> str:
    """The ``item_id`` of an item event, a non-empty string, else
    :class:`~session_transformers.data.schema.InvalidRecordError` naming the session and the event."""
    from .data.schema import InvalidRecordError

    item_id = event.get("item_id")
    if not isinstance(item_id, str) or not item_id:
        raise InvalidRecordError(
            source, index, f"events[{position}].item_id", f"must be a non-empty string, got {item_id!r:.80}"
        )
    return item_id


def seeded_generator(seed: int, keys: Iterable[str], epoch: int = 0) -> torch.Generator:
    """A private ``torch.Generator`` seeded from ``seed``, ``epoch`` (when not 0) and a batch's row keys.

    What an augmenting collator draws a batch's random views from, so that the views are a pure function of
    (seed, epoch, rows): the same however often, in whatever order and after whatever interruption the batch is
    collated. The global RNG would not do for training: a DataLoader collates batch *k + 1* before step *k* runs
    (Accelerate's loader prefetches one batch to see where the epoch ends), so draws from it land *before* the
    checkpoint of step *k* saves that RNG, and a run resumed from the checkpoint would draw them again,
    differently."""
    digest = hashlib.sha256(str(seed).encode())
    if epoch:
        digest.update(f"\0epoch:{int(epoch)}".encode())
    for key in keys:
        digest.update(b"\0" + key.encode())
    return torch.Generator().manual_seed(int.from_bytes(digest.digest()[:8], "little") >> 1)


class SeededCollatorMixin:
    """Randomness of an augmenting collator: from a ``generator`` it is given, from torch's global RNG (neither
    given), or, with ``seed``, from :func:`seeded_generator` over (seed, epoch, the batch's row keys).

    Training collators take a seed and the training loop calls :meth:`set_epoch` before each epoch (so a batch of
    the same rows in another epoch draws afresh); evaluation collators take another seed and stay at epoch 0
    (the same views at every evaluation). Neither draws from the global RNG, which is left to dropout."""

    def _init_randomness(self, generator: torch.Generator | None, seed: int | None) -> None:
        if generator is not None and seed is not None:
            raise ValueError("pass a generator or a seed, not both")
        self.generator, self.seed, self.epoch = generator, seed, 0

    def set_epoch(self, epoch: int) -> None:
        """Fold the training epoch into seeded draws."""
        self.epoch = int(epoch)

    def _batch_generator(self, keys: Iterable[str]) -> torch.Generator | None:
        if self.seed is None:
            return self.generator
        return seeded_generator(self.seed, keys, self.epoch)


# --- the unknown-item policy --------------------------------------------------------------------------------

logger = logging.getLogger("session_transformers")


def reads_item_ids(processor: Any) -> bool:
    """Whether ``processor`` takes sessions as lists of item IDs from a closed vocabulary (TAGNN++), as opposed to
    sessions of events read as text (CERES, UBM, MUVCOG; MUVCOG's ``item_vocab`` is only its click head's)."""
    return bool(getattr(processor, "sessions_are_item_ids", False))


UNKNOWN_ITEM_POLICIES: tuple[str, ...] = ("error", "skip")
"""What every processor, ``recommend``, pipeline and export function does with an item ID it does not know (not in
the model's vocabulary, or, for a text model, not in the catalogue it was given):

- ``"error"`` (the default everywhere): raise ``KeyError`` naming the session, the unknown IDs, how many of the
  session's items they are, and what the known IDs look like;
- ``"skip"``: drop the unknown IDs from the sessions (an unknown target becomes label ``-100``, which the loss
  ignores and evaluation counts as a miss) and log ONE warning per call with the counts. A session left with no
  known item still raises. ``"drop"``, the processors' earlier name for it, is read as ``"skip"``.

Training and evaluation collators always skip (held-out splits may hold items the training split never had) and
count instead of warning per batch: the trainers report ``num_unknown_targets`` with the metrics."""


def unknown_items_policy(value: str) -> str:
    """Check an ``unknown_items=`` value (``"drop"``, the earlier name of ``"skip"``, is accepted)."""
    if value == "drop":
        return "skip"
    if value not in UNKNOWN_ITEM_POLICIES:
        raise ValueError(f"unknown_items={value!r} must be one of {UNKNOWN_ITEM_POLICIES}")
    return value


def check_item_ids(item_ids: Sequence[Any], session: int, owner: str) -> None:
    """Raise :class:`~session_transformers.data.schema.InvalidRecordError` (from ``owner``) naming the session and
    the position of the first item ID that is not a string."""
    from .data.schema import InvalidRecordError

    bad = next((j for j, item in enumerate(item_ids) if not isinstance(item, str)), None)
    if bad is not None:
        raise InvalidRecordError(
            owner,
            session,
            f"item_ids[{bad}]",
            f"item IDs are strings, got {item_ids[bad]!r:.80} ({type(item_ids[bad]).__name__})",
        )


def unknown_items_error(
    session: int | str | None,
    unknown: Sequence[Any],
    length: int,
    known: Sequence[str],
    what: str = "item IDs",
) -> KeyError:
    """The ``KeyError`` of ``unknown_items="error"``: the session (``None``: a list of items, not a session), the
    unknown IDs, how many, and what the known IDs look like."""
    where = f"session {session}: unknown {what}" if session is not None else f"unknown {what}"
    of = f"of its {length}" if session is not None else f"of the {length} given"
    return KeyError(
        f"{where} {list(unknown[:5])} ({len(unknown)} {of}); the model knows {len(known)} items, whose IDs look "
        f"like {list(known[:3])}. Pass unknown_items='skip' to drop unknown IDs (with a warning)"
    )


def warn_skipped_items(
    where: str, items: int, sessions: int, total_sessions: int, examples: Sequence[Any], targets: int = 0
) -> None:
    """The one warning of a call under ``unknown_items="skip"`` that dropped something (nothing when nothing was);
    ``total_sessions=0``: the call took a list of items, not sessions."""
    if not items and not targets:
        return
    parts = []
    if items and total_sessions:
        parts.append(
            f"dropped {items} unknown item ID(s) from {sessions} of {total_sessions} session(s) "
            f"(e.g. {list(examples[:3])})"
        )
    elif items:  # a list of items, not sessions
        parts.append(f"left out {items} unknown item ID(s) (e.g. {list(examples[:3])})")
    if targets:
        parts.append(
            f"{targets} unknown target(s) got label -100 (ignored by the loss, a miss in evaluation)"
        )
    logger.warning("%s (unknown_items='skip'): %s", where, "; ".join(parts))


def warn_truncated(where: str, truncated: int, total: int, max_length: int, unit: str = "items") -> None:
    """The one warning of a call that cut sessions longer than ``max_length`` (their most recent ones are kept)."""
    if truncated:
        logger.warning(
            "%s: %d of %d session(s) are longer than max_length=%d %s; each keeps its %d most recent %s",
            where,
            truncated,
            total,
            max_length,
            unit,
            max_length,
            unit,
        )


__all__ = [
    "BERT_SPECIAL_TOKENS",
    "UNKNOWN_ITEM_POLICIES",
    "AttributeTokensMixin",
    "SeededCollatorMixin",
    "add_special_tokens",
    "as_catalogue",
    "attribute_token",
    "catalogue_attribute_names",
    "check_catalogue_record",
    "check_item_ids",
    "event_item_id",
    "is_text",
    "pad_rows",
    "seeded_generator",
    "session_events",
    "special_token_ids",
    "train_wordpiece",
    "wordpiece_tokenizer",
    "record_texts",
    "session_queries",
    "unknown_attribute_policy",
    "unknown_items_error",
    "unknown_items_policy",
    "warn_skipped_items",
    "warn_truncated",
]
