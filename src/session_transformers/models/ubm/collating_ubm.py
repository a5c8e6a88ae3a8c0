"""UBM's five augmentations (paper, Sec. 3.3, Figure 3) and the pretraining collators built from them.

- **Dropout Masking** (:class:`DropoutMasking`): the encoders' own dropout (``hidden_dropout_prob``, 0.1); two
  passes of the same input in training mode are two views. It needs nothing from a collator, which only
  duplicates a batch when two dropout views are wanted side by side (SimCSE).
- **Item Token Masking** (:class:`TokenMasking`, ``mask_actions=False``): of the item (or query) text tokens,
  10% become ``[MASK]``, 5% a random token, the rest are kept. ``[CLS]``, ``[SEP]``, action tokens and the field
  tokens (``[TITLE]``, ``[SIZE]``...) are never touched.
- **Next Item Pairing** (:func:`next_item_pairs`): an item and the next item of the same session are a positive
  pair.
- **Behaviour Reordering** (:class:`BehaviourReordering`): two interactions of a session, drawn at random,
  swap places.
- **Action and Item Token Masking** (:class:`TokenMasking`, ``mask_actions=True``): the same 15% masking, over
  the text tokens *and* the action tokens (an action token drawn for a random replacement becomes another action
  token).

Stage 1 (:class:`UbmStage1Collator`): N item pairs ``(p, p++)``; the 2N items are also masked (``p+``). Stage 2
(:class:`UbmStage2Collator`): every session with its reordered view ``s+`` and its masked view ``s++``.

**Randomness.** Each augmentation draws from the ``generator`` it is given (a seeded ``torch.Generator``); the
collators draw from their own ``generator``, else from torch's global RNG, or, with ``seed`` set, from a private
generator seeded from the seed, the epoch (``set_epoch``) and the batch's content
(:class:`~session_transformers.processing_utils.SeededCollatorMixin`). The recipe seeds both: training views then
replay exactly in a resumed run (global-RNG draws would not: the loader collates one batch ahead of the
checkpoint that saves the RNG), evaluation views are the same at every evaluation, and neither draws from the
global RNG.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from ...data.schema import InvalidRecordError
from ...processing_utils import SeededCollatorMixin, seeded_generator
from .configuration_ubm import UbmConfig
from .processing_ubm import UbmProcessor, as_catalogue


def _rand(shape, generator: torch.Generator | None) -> torch.Tensor:
    return torch.rand(shape, generator=generator)


def batch_generator(seed: int, keys: Sequence[Any], epoch: int = 0) -> torch.Generator:
    """A private generator seeded from ``seed``, ``epoch`` (when not 0) and the batch's row keys."""
    return seeded_generator(seed, (repr(key) for key in keys), epoch)


class TokenMasking:
    r"""Item Token Masking (``mask_actions=False``) or Action and Item Token Masking (``mask_actions=True``).

    Each maskable token independently: with probability ``mask_probability`` (10%) it becomes ``[MASK]``, with
    ``random_probability`` (5%) a random token (a random word-piece for text, a random action token for an
    action), otherwise it is kept. Maskable: text tokens of the interaction (not the processor's special tokens)
    and, with ``mask_actions``, its action token.

    Args:
        processor: the :class:`UbmProcessor` (its special, action and mask ids).
        mask_probability, random_probability: the paper's 10% and 5% (``UbmConfig`` has both).
        mask_actions: also mask action tokens.
    """

    def __init__(
        self,
        processor: UbmProcessor,
        mask_probability: float = 0.10,
        random_probability: float = 0.05,
        mask_actions: bool = False,
    ):
        if mask_probability < 0 or random_probability < 0 or mask_probability + random_probability > 1:
            raise ValueError("mask_probability and random_probability must be >= 0 and sum to at most 1")
        tok = processor.tokenizer
        self.mask_probability, self.random_probability = mask_probability, random_probability
        self.mask_actions = mask_actions
        self.special_ids = torch.tensor(processor.special_token_ids, dtype=torch.long)
        self.action_ids = torch.tensor(processor.action_token_ids, dtype=torch.long)
        self.word_ids = torch.tensor(
            sorted(set(range(len(tok))) - set(processor.special_token_ids)), dtype=torch.long
        )
        self.mask_token_id = tok.mask_token_id

    def maskable(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """``(N, T)`` bool: the tokens this masking may change."""
        text = attention_mask.bool() & ~torch.isin(input_ids, self.special_ids)
        if self.mask_actions:
            text |= attention_mask.bool() & torch.isin(input_ids, self.action_ids)
        return text

    def __call__(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """A masked copy of ``input_ids`` ``(N, T)``."""
        maskable = self.maskable(input_ids, attention_mask)
        draw = _rand(input_ids.shape, generator)
        to_mask = maskable & (draw < self.mask_probability)
        to_random = maskable & ~to_mask & (draw < self.mask_probability + self.random_probability)
        words = self.word_ids[torch.randint(len(self.word_ids), input_ids.shape, generator=generator)]
        actions = self.action_ids[torch.randint(len(self.action_ids), input_ids.shape, generator=generator)]
        is_action = torch.isin(input_ids, self.action_ids)
        out = torch.where(to_mask, torch.full_like(input_ids, self.mask_token_id), input_ids)
        return torch.where(to_random, torch.where(is_action, actions, words), out)


class BehaviourReordering:
    """Swap two interactions of each session, drawn uniformly without replacement (a session of one interaction
    is left as it is). Works on per-session lists of anything (token id lists, embeddings)."""

    def __call__(
        self, sessions: Sequence[Sequence[Any]], generator: torch.Generator | None = None
    ) -> list[list[Any]]:
        out = []
        for session in sessions:
            session = list(session)
            n = len(session)
            if n >= 2:
                i, j = torch.randperm(n, generator=generator)[:2].tolist()
                session[i], session[j] = session[j], session[i]
            out.append(session)
        return out


class DropoutMasking:
    """The fifth augmentation: the encoders' dropout (``UbmConfig.hidden_dropout_prob``). The model applies it;
    this collator only stacks ``copies`` of a batch's rows so that one training-mode pass gives ``copies``
    dropout views of every row (SimCSE's unsupervised pairing)."""

    def __init__(self, copies: int = 2):
        if copies < 2:
            raise ValueError(f"copies must be >= 2, got {copies}")
        self.copies = copies

    def __call__(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {k: torch.cat([v] * self.copies) for k, v in batch.items()}


def next_item_pairs(sessions: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    """Next Item Pairing: ``{"item_id", "next_item_id"}`` for every item event and the next item event of the same
    session (queries in between are skipped), leaving out a repeat of the same item. An item event is one whose
    ``subject`` is ``"item"`` (or, with no subject, that has an ``item_id``), as for :class:`UbmProcessor`; a
    malformed session raises :class:`~session_transformers.data.schema.InvalidRecordError` naming it (its index in
    ``sessions``) and the field."""
    pairs = []
    for k, session in enumerate(sessions):
        sid = session.get("session_id") if isinstance(session, Mapping) else None
        events = session.get("events") if isinstance(session, Mapping) else None
        if not isinstance(events, list | tuple) or not all(isinstance(ev, Mapping) for ev in events):
            raise InvalidRecordError(
                f"next_item_pairs: session {sid!r}", k, "events", "must be a list of events (mappings)"
            )
        items = []
        for j, ev in enumerate(events):
            if (ev.get("subject") or ("item" if ev.get("item_id") is not None else None)) != "item":
                continue
            if not _is_id(ev.get("item_id")):
                raise InvalidRecordError(
                    f"next_item_pairs: session {sid!r}",
                    k,
                    f"events[{j}].item_id",
                    f"must be a non-empty string, got {ev.get('item_id')!r:.80}",
                )
            items.append(ev["item_id"])
        pairs += [{"item_id": a, "next_item_id": b} for a, b in zip(items, items[1:]) if a != b]
    return pairs


def _is_id(value: Any) -> bool:
    return isinstance(value, str) and bool(value)


class _Seeded(SeededCollatorMixin):
    def __init__(self, generator: torch.Generator | None, seed: int | None):
        self._init_randomness(generator, seed)

    def _generator(self, keys: Sequence[Any]) -> torch.Generator | None:
        return self._batch_generator(repr(key) for key in keys)


class UbmStage1Collator(_Seeded):
    r"""Stage-1 batches: rows ``{"item_id", "next_item_id"}`` -> ``item_input_ids`` / ``item_attention_mask``
    ``(2N, T)`` (the N items, then their N next items, each ``[CLS] item text [SEP]``) and
    ``masked_item_input_ids`` ``(2N, T)`` (Item Token Masking of the same rows).

    Args:
        processor: the :class:`UbmProcessor`.
        catalogue: ``item_id -> record``.
        config: a :class:`UbmConfig` for the masking rates (defaults: the paper's).
        generator / seed: see the module docstring.
    """

    def __init__(
        self, processor: UbmProcessor, catalogue, config: UbmConfig | None = None, generator=None, seed=None
    ):
        super().__init__(generator, seed)
        config = config or UbmConfig()
        self.processor, self.catalogue = processor, as_catalogue(catalogue)
        self.masking = TokenMasking(processor, config.mask_token_probability, config.random_token_probability)

    def __call__(self, rows: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        items = [r["item_id"] for r in rows] + [r["next_item_id"] for r in rows]
        encoded = [[self.processor.encode_item(i, self.catalogue)] for i in items]
        batch = self.processor.pad_interactions(encoded)
        ids, mask = batch["input_ids"], batch["attention_mask"]
        generator = self._generator(items)
        return {
            "item_input_ids": ids,
            "item_attention_mask": mask,
            "masked_item_input_ids": self.masking(ids, mask, generator),
        }


class UbmStage2Collator(_Seeded):
    r"""Stage-2 batches: sessions -> the original view (``input_ids``, ``attention_mask``, ``interaction_mask``),
    the Behaviour Reordering view (``reordered_input_ids``, ``reordered_attention_mask``; the same
    ``interaction_mask``) and the Action and Item Token Masking view (``masked_input_ids``; the original
    ``attention_mask``)."""

    def __init__(
        self, processor: UbmProcessor, catalogue, config: UbmConfig | None = None, generator=None, seed=None
    ):
        super().__init__(generator, seed)
        config = config or UbmConfig()
        self.processor, self.catalogue = processor, as_catalogue(catalogue)
        self.reordering = BehaviourReordering()
        self.masking = TokenMasking(
            processor, config.mask_token_probability, config.random_token_probability, mask_actions=True
        )

    def __call__(self, rows: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        encoded = [self.processor.encode_session(r, self.catalogue, b) for b, r in enumerate(rows)]
        generator = self._generator([r.get("session_id") or repr(r["events"]) for r in rows])
        batch = self.processor.pad_interactions(encoded)
        reordered = self.processor.pad_interactions(self.reordering(encoded, generator))
        batch["reordered_input_ids"] = reordered["input_ids"]
        batch["reordered_attention_mask"] = reordered["attention_mask"]
        batch["masked_input_ids"] = self.masking(batch["input_ids"], batch["attention_mask"], generator)
        return batch


__all__ = [
    "BehaviourReordering",
    "DropoutMasking",
    "TokenMasking",
    "UbmStage1Collator",
    "UbmStage2Collator",
    "batch_generator",
    "next_item_pairs",
]
