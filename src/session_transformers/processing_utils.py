"""Helpers shared by the processors and collators: attribute tokens (CERES, UBM), seeded batch randomness
(the augmenting collators of CERES, UBM and MUVCOG), and the one unknown-item policy of every processor, model
method, pipeline and export function that maps item IDs (:data:`UNKNOWN_ITEM_POLICIES`)."""

from __future__ import annotations

import hashlib
import logging
import re
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
    "UNKNOWN_ITEM_POLICIES",
    "SeededCollatorMixin",
    "as_catalogue",
    "attribute_token",
    "catalogue_attribute_names",
    "check_catalogue_record",
    "is_text",
    "seeded_generator",
    "train_wordpiece",
    "unknown_items_error",
    "unknown_items_policy",
    "warn_skipped_items",
    "warn_truncated",
]
