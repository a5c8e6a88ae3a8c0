"""The toy family's processor: item IDs <-> indices ``1..N`` (``0`` pads), sessions -> padded index batches."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
from transformers import BatchFeature, ProcessorMixin


@dataclass(frozen=True)
class _SpecialItemIds:
    """What ``Trainer(processing_class=processor)`` reads from ``processor.tokenizer``: padding is index 0."""

    pad_token_id: int = 0
    bos_token_id: None = None
    eos_token_id: None = None


class ToyProcessor(ProcessorMixin):
    """Maps item IDs to indices and batches sessions as ``input_ids`` / ``attention_mask`` ``(batch, seq_len)``.

    Unknown items are refused with a ``KeyError`` naming the session and the field; :meth:`collate` (the trainers'
    collator over next-item rows) leaves them out instead, and gives an unknown target the label ``-100``.
    """

    sessions_are_item_ids = True

    def __init__(self, item_vocab: list[str] | None = None, **kwargs):
        self.item_vocab = list(item_vocab or [])
        self._index = {item: i + 1 for i, item in enumerate(self.item_vocab)}
        super().__init__(**kwargs)

    @classmethod
    def from_sessions(cls, sessions: Iterable[Sequence[str]]) -> ToyProcessor:
        """The sorted item IDs of ``sessions`` as the vocabulary."""
        return cls(item_vocab=sorted({item for session in sessions for item in session}))

    @property
    def tokenizer(self) -> _SpecialItemIds:
        return _SpecialItemIds()

    @property
    def model_input_names(self) -> list[str]:
        return ["input_ids", "attention_mask"]

    @property
    def num_items(self) -> int:
        """Catalogue size including the padding index: the model's ``config.num_items``."""
        return len(self.item_vocab) + 1

    def _indices(self, session: Sequence[str], row: int, skip: bool) -> list[int]:
        if not isinstance(session, list | tuple):
            raise TypeError(
                f"session {row}: field 'item_ids' must be a list of item IDs, got {session!r}"[:200]
            )
        out = []
        for item in session:
            if not isinstance(item, str):
                raise TypeError(
                    f"session {row}: field 'item_ids' holds {item!r}, not an item ID string"[:200]
                )
            if item in self._index:
                out.append(self._index[item])
            elif not skip:
                raise KeyError(f"session {row}: field 'item_ids' holds {item!r}, not in the vocabulary"[:200])
        if not out:
            raise ValueError(f"session {row}: field 'item_ids' holds no known item")
        return out

    def _label(self, target) -> int:
        return self._index.get(target, -100) if isinstance(target, str) else -100

    def _batch(self, rows: list[list[int]]) -> dict[str, torch.Tensor]:
        width = max(len(r) for r in rows)
        ids = torch.zeros(len(rows), width, dtype=torch.long)
        mask = torch.zeros(len(rows), width, dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r)
            mask[i, : len(r)] = 1
        return {"input_ids": ids, "attention_mask": mask}

    def __call__(
        self, sessions: Sequence[Sequence[str]], targets: Sequence[str] | None = None
    ) -> BatchFeature:
        """``sessions`` (lists of item IDs) -> ``input_ids``, ``attention_mask`` and, with ``targets``, ``labels``."""
        batch = self._batch([self._indices(s, i, skip=False) for i, s in enumerate(sessions)])
        if targets is not None:
            batch["labels"] = torch.tensor([self._label(t) for t in targets])
        return BatchFeature(batch)

    def collate(self, examples: Sequence[dict]) -> dict[str, torch.Tensor]:
        """Next-item rows (``item_ids``, ``target``) -> a training batch; unknown items left out."""
        batch = self._batch([self._indices(e["item_ids"], i, skip=True) for i, e in enumerate(examples)])
        batch["labels"] = torch.tensor([self._label(e["target"]) for e in examples])
        return batch


__all__ = ["ToyProcessor"]
