"""Processor of TAGNN++: your item IDs <-> item indices, and sessions -> the flat batch of transition graphs.

The graph is SR-GNN's session transition graph, built for a whole batch at once by
:func:`session_transformers.graphs.transition.build_graph_batch` (plain Python and numpy, one tensor conversion per
field, because it runs in DataLoader workers for every batch).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from transformers import BatchFeature, ProcessorMixin

from ...data.schema import InvalidRecordError
from ...graphs.transition import build_graph_batch
from ...processing_utils import (
    check_item_ids,
    unknown_items_error,
    unknown_items_policy,
    warn_skipped_items,
    warn_truncated,
)

PAD_INDEX = 0
IGNORE_INDEX = -100


@dataclass(frozen=True)
class _SpecialItemIds:
    """What ``Trainer(processing_class=processor)`` reads from ``processor.tokenizer`` before training
    (``align_special_tokens``). There is no tokenizer: padding is index 0 and there is no BOS/EOS."""

    pad_token_id: int = PAD_INDEX
    bos_token_id: None = None
    eos_token_id: None = None


class TagnnPPProcessor(ProcessorMixin):
    """Maps item IDs (strings) to indices ``1..N`` (``0`` is padding) and batches sessions as session graphs.

    Args:
        item_vocab: the item IDs; ``item_vocab[i]`` gets index ``i + 1``. Saved in ``processor_config.json``.
            Build it with :meth:`from_sessions`. ``config.num_items`` must be ``len(item_vocab) + 1``
            (:attr:`num_items`).
        max_length: sessions longer than this keep their ``max_length`` most recent items (use at most the
            model's ``max_position_embeddings``); a call that cuts sessions logs one warning with their count.
        unknown_items: what happens to IDs missing from ``item_vocab``, the package's one policy
            (:data:`~session_transformers.processing_utils.UNKNOWN_ITEM_POLICIES`, also the pipelines' and
            ``export``'s), overridable per call (``processor(sessions, unknown_items="skip")``):

            - ``"error"`` (default): any unknown ID raises ``KeyError`` naming it, its session and what known IDs
              look like.
            - ``"skip"``: unknown items are removed from input sessions (a session left empty raises
              ``ValueError`` naming its index in the batch); unknown targets get label ``-100``, which the loss
              ignores. A call that skips something logs one warning with the counts; they also add up in
              :attr:`num_unknown_inputs` / :attr:`num_unknown_targets` (counters of this process; DataLoader
              workers count in their own copies). ``"drop"``, this option's earlier name, is read as ``"skip"``.

            :meth:`collate` (the trainers' collator) always skips and counts without warning: held-out splits
            may hold items the training split never had, and evaluation reports them as
            ``num_unknown_targets``.

    Calling the processor returns exactly the keyword arguments of ``TagnnPPForNextItemPrediction.forward``::

        processor = TagnnPPProcessor.from_sessions(train_sessions)
        batch = processor([["a", "b", "a"], ["c"]], targets=["c", "a"])
        loss = model(**batch).loss
    """

    #: sessions are lists of item IDs (see :func:`~session_transformers.processing_utils.reads_item_ids`)
    sessions_are_item_ids = True

    def __init__(
        self,
        item_vocab: list[str] | None = None,
        max_length: int = 200,
        unknown_items: Literal["error", "skip"] = "error",
        **kwargs,
    ):
        self.item_vocab = list(item_vocab or [])
        self.max_length = max_length
        self.unknown_items = unknown_items_policy(unknown_items)
        if max_length < 1:
            raise ValueError(f"max_length={max_length} must be >= 1")
        bad = next((i for i in self.item_vocab if not isinstance(i, str)), None)
        if bad is not None:
            raise TypeError(f"item IDs must be strings, got {bad!r} ({type(bad).__name__})")
        self._index = {item: i + 1 for i, item in enumerate(self.item_vocab)}
        if len(self._index) != len(self.item_vocab):
            raise ValueError(f"item_vocab has {len(self.item_vocab) - len(self._index)} duplicate IDs")
        self.num_unknown_inputs = 0
        self.num_unknown_targets = 0
        self.num_truncated = 0
        super().__init__(**kwargs)

    @classmethod
    def from_sessions(
        cls,
        sessions: Iterable[Sequence[str]],
        extra_ids: Iterable[str] = (),
        order: Literal["sorted", "first_seen"] = "sorted",
        **kwargs,
    ) -> TagnnPPProcessor:
        """Build the vocabulary from the IDs in ``sessions`` plus ``extra_ids`` (e.g. target-only items).

        ``order="sorted"`` (default) sorts the IDs as strings, so the indices do not depend on the data order;
        ``"first_seen"`` numbers them in order of first appearance (sessions first, then ``extra_ids``).
        Other keyword arguments (``max_length``, ``unknown_items``) go to the constructor.
        """
        seen: dict[str, None] = {}
        for session in sessions:
            seen.update(dict.fromkeys(session))
        seen.update(dict.fromkeys(extra_ids))
        if order not in ("sorted", "first_seen"):
            raise ValueError(f"order={order!r} must be 'sorted' or 'first_seen'")
        vocab = sorted(seen) if order == "sorted" else list(seen)
        return cls(item_vocab=vocab, **kwargs)

    @property
    def tokenizer(self) -> _SpecialItemIds:
        """Stand-in for the tokenizer ``Trainer`` expects a ``ProcessorMixin`` to have (special token ids only)."""
        return _SpecialItemIds()

    @property
    def model_input_names(self) -> list[str]:
        """The keys :meth:`__call__` returns besides ``labels``: the model's ``forward`` inputs."""
        return ["x", "edge_index", "in_weight", "out_weight", "alias", "attention_mask"]

    @property
    def num_items(self) -> int:
        """Catalogue size including the padding index: the model's ``config.num_items``."""
        return len(self.item_vocab) + 1

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(items={len(self.item_vocab)}, max_length={self.max_length}, "
            f"unknown_items={self.unknown_items!r})"
        )

    # --- IDs <-> indices -------------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs):
        """Load a saved processor; a folder whose item vocabulary is missing or empty is refused, never loaded
        as an empty vocabulary that would drop every item."""
        processor = super().from_pretrained(pretrained_model_name_or_path, **kwargs)
        if not processor.item_vocab:
            raise ValueError(
                f"{pretrained_model_name_or_path}: no item vocabulary (processor_config.json missing, or its "
                "item_vocab empty): not a saved TAGNN++ processor"
            )
        return processor

    def encode(
        self,
        item_ids: Sequence[str],
        session: int = 0,
        unknown_items: str | None = None,
        allow_empty: bool = False,
    ) -> list[int]:
        """Indices of one session's items under the ``unknown_items`` policy (before truncation); ``[]`` for a
        session of unknown items only when ``allow_empty`` (else a ``ValueError``)."""
        if not item_ids:
            raise ValueError(
                f"session {session} is empty (field 'item_ids'): a session needs at least one item"
            )
        get = self._index.get
        try:
            indices = [get(item, PAD_INDEX) for item in item_ids]
        except TypeError:  # an unhashable ID (a list, a dict): found below
            indices = [PAD_INDEX]
        if PAD_INDEX in indices:
            check_item_ids(item_ids, session, "TagnnPPProcessor")
            unknown = [item for item, i in zip(item_ids, indices) if i == PAD_INDEX]
            policy = unknown_items_policy(unknown_items) if unknown_items is not None else self.unknown_items
            if policy == "error":
                raise unknown_items_error(session, unknown, len(item_ids), self.item_vocab)
            self.num_unknown_inputs += len(unknown)
            indices = [i for i in indices if i != PAD_INDEX]
            if not indices and not allow_empty:
                raise ValueError(
                    f"session {session}: all of its {len(item_ids)} items are unknown (field 'item_ids'): "
                    f"{unknown[:5]}; known IDs look like {self.item_vocab[:3]}"
                )
        return indices

    def encode_target(self, target: str, session: int = 0, unknown_items: str | None = None) -> int:
        """Label of one target: its index, or ``-100`` when unknown under ``unknown_items="skip"``."""
        index = self._index.get(target) if isinstance(target, str) else None
        if index is None:
            if not isinstance(target, str):
                raise InvalidRecordError(
                    "TagnnPPProcessor", session, "target", f"an item ID is a string, got {target!r:.80}"
                )
            policy = unknown_items_policy(unknown_items) if unknown_items is not None else self.unknown_items
            if policy == "error":
                raise unknown_items_error(session, [target], 1, self.item_vocab, what="target item ID")
            self.num_unknown_targets += 1
            return IGNORE_INDEX
        return index

    def decode(self, indices: Sequence[int] | Sequence[Sequence[int]]) -> list:
        """Item IDs of indices (nested lists keep their nesting); index 0 (padding) is not an item."""
        vocab = self.item_vocab
        if indices and isinstance(indices[0], Sequence):
            return [[vocab[i - 1] for i in row] for row in indices]
        return [vocab[i - 1] for i in indices]

    batch_decode = decode

    # --- batching --------------------------------------------------------------------------------------------
    def __call__(
        self,
        item_ids: Sequence[Sequence[str]],
        targets: Sequence[str] | None = None,
        return_tensors: Literal["pt", "np"] = "pt",
        unknown_items: Literal["error", "skip"] | None = None,
    ) -> BatchFeature:
        """Batch sessions of item IDs into the inputs of ``TagnnPPForNextItemPrediction.forward``.

        Returns a :class:`~transformers.BatchFeature` with ``x`` ``(|V|,)``, ``edge_index`` ``(2, |E|)``,
        ``in_weight`` / ``out_weight`` ``(|E|,)``, ``alias`` ``(B, L)`` and ``attention_mask`` ``(B, L)``
        (right-padded), plus ``labels`` ``(B,)`` when ``targets`` are given. ``unknown_items`` overrides the
        processor's policy for this call. Logs one warning when it skips unknown IDs and one when it cuts sessions
        longer than ``max_length``, each with its count.
        """
        return self._batch(item_ids, targets, return_tensors, unknown_items, warn=True)

    def _batch(
        self, item_ids, targets, return_tensors, unknown_items, warn: bool, unknown_as_miss: bool = False
    ) -> BatchFeature:
        if isinstance(item_ids, str) or (item_ids and isinstance(item_ids[0], str)):
            hint = f" (a string of IDs? split it: {item_ids!r}.split())" if isinstance(item_ids, str) else ""
            raise TypeError(
                f"item_ids must be a list of sessions (lists of item IDs), not one session{hint}: wrap one "
                "session in a list, [session]"
            )
        if item_ids and isinstance(item_ids[0], int):
            raise TypeError(
                f"item_ids must be a list of sessions, each a list of item ID strings; got a list of integers "
                f"({item_ids[:3]!r:.60}...): one session of integer IDs is [[str(i) for i in session]]"
            )
        if targets is not None and len(targets) != len(item_ids):
            raise ValueError(f"got {len(targets)} targets for {len(item_ids)} sessions")
        limit = self.max_length
        before = (self.num_unknown_inputs, self.num_unknown_targets)
        encoded = []
        touched, examples = 0, []
        for i, s in enumerate(item_ids):
            if isinstance(s, (str, bytes)) or not hasattr(s, "__iter__"):
                raise InvalidRecordError(
                    "TagnnPPProcessor",
                    i,
                    "item_ids",
                    f"a session is a list of item ID strings, got {s!r:.80}",
                )
            seen = self.num_unknown_inputs
            encoded.append(self.encode(s, i, unknown_items, allow_empty=unknown_as_miss))
            if self.num_unknown_inputs > seen:
                touched += 1
                if len(examples) < 3:
                    known = self._index
                    examples += [item for item in s if item not in known][: 3 - len(examples)]
        truncated = sum(len(s) > limit for s in encoded)
        self.num_truncated += truncated
        # a session with no known item is one padding node; its label is -100 below, so it ranks as a miss
        sessions = [s[-limit:] or [PAD_INDEX] for s in encoded]
        arrays = build_graph_batch(sessions)
        if targets is not None:
            arrays["labels"] = np.array(
                [
                    self.encode_target(t, i, unknown_items) if encoded[i] else IGNORE_INDEX
                    for i, t in enumerate(targets)
                ],
                dtype=np.int64,
            )
        if warn:
            name = type(self).__name__
            warn_skipped_items(
                name,
                self.num_unknown_inputs - before[0],
                touched,
                len(item_ids),
                examples,
                targets=self.num_unknown_targets - before[1],
            )
            warn_truncated(name, truncated, len(item_ids), limit)
        if return_tensors == "pt":
            return BatchFeature({k: torch.from_numpy(v) for k, v in arrays.items()})
        if return_tensors == "np":
            return BatchFeature(arrays)
        raise ValueError(f"return_tensors={return_tensors!r} must be 'pt' or 'np'")

    def collate(self, examples: Sequence[dict]) -> dict[str, torch.Tensor]:
        """DataLoader / Trainer collator for rows ``{"item_ids": list[str], "target": str}`` (target optional).

        Always ``unknown_items="skip"`` and silent: unknown items and cut sessions are counted
        (:attr:`num_unknown_inputs`, :attr:`num_unknown_targets`, :attr:`num_truncated`), not warned about per
        batch; evaluation reports unknown targets as ``num_unknown_targets``. A case whose items are all unknown
        stays in the batch as a miss (one padding node, label ``-100``): an evaluation keeps every case of its
        split in the denominator."""
        sessions = [e["item_ids"] for e in examples]
        targets = [e["target"] for e in examples] if examples and "target" in examples[0] else None
        return dict(self._batch(sessions, targets, "pt", "skip", warn=False, unknown_as_miss=True))


__all__ = ["TagnnPPProcessor", "build_graph_batch"]  # build_graph_batch lives in graphs.transition
