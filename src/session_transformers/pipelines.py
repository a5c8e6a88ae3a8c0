"""``transformers`` pipelines for session models, registered on ``import session_transformers``.

Two tasks join ``transformers.pipeline`` (:data:`transformers.pipelines.PIPELINE_REGISTRY`), loaded from a local
folder with no remote code::

    import session_transformers  # registers the models and these pipelines
    from transformers import pipeline

    recommend = pipeline("session-recommendation", model="runs/quickstart/tagnn_pp/pretrain")
    recommend(["item-000017", "item-000004"], top_k=5)  # [{"item_id": ..., "score": ...}, ...] best first
    recommend([["item-000017"], ["item-000004", "item-000005"]])  # a batch: one list per session

    embed = pipeline("session-feature-extraction", model="runs/quickstart/tagnn_pp/pretrain")
    embed(["item-000017", "item-000004"])  # (D,) numpy session embedding
    embed(["item-000017", "item-000004"], embed="items")  # (2, H) numpy item embeddings

**session-recommendation** loads the checkpoint's next-item head (``AutoModelForNextItemPrediction``: TAGNN++
and UBM) and its processor (``AutoProcessor``). A model joins it by implementing ``recommend(sessions, top_k=,
processor=, batch_size=)`` returning ``[[(item_id, score), ...], ...]``, with either

- a processor whose sessions are item IDs (``sessions_are_item_ids``, with ``item_vocab``, the item IDs it knows;
  TAGNN++): sessions are lists of item IDs, and the whole known catalogue is ranked; or
- ``recommend(..., candidates=, catalogue=)`` (a text model, UBM): items are read as text from a ``catalogue``
  (records or ``item_id -> record``, given when building the pipeline or when calling it), so items never seen
  in training can be recommended. ``candidates`` (item IDs or records; default: every catalogue item) is the
  pool ranked; it is tokenised once and reused while it does not change. Sessions may also be dicts in the
  package schema (queries and items with their actions); a list of item IDs reads as views.

Unknown item IDs in a session (not in the vocabulary, or not in the catalogue) follow the package's one policy
(:data:`~session_transformers.processing_utils.UNKNOWN_ITEM_POLICIES`, the processors' and ``export``'s too):
``unknown_items="error"`` (the default) raises ``KeyError`` naming them and showing what known IDs look like;
``unknown_items="skip"`` drops them and logs one warning per call with the counts (a session left with no known
item still raises). Sessions longer than the processor's ``max_length`` keep their most recent items, with one
warning per call.

    recommend = pipeline("session-recommendation", model="runs/quickstart/ubm/finetune", catalogue=records)
    recommend(["item-000017", "item-000004"], top_k=5, candidates=new_arrivals)

**session-feature-extraction** loads the base model (``AutoModel``; or pass ``model=`` a loaded head, with
``processor=``) and calls its ``encode_sessions`` / ``encode_items`` (TAGNN++ and CERES): ``embed="sessions"``
(default) returns session embeddings, ``embed="items"`` item embeddings, as float32 numpy arrays (one input:
a vector; a list of inputs: a matrix). CERES reads products' text from a catalogue: pass ``catalogue=`` (records
or ``item_id -> record``) when building the pipeline or when calling it; its sessions may be dicts in the package
schema (queries and products) or lists of product IDs.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from transformers import AutoModel, Pipeline
from transformers.pipelines import PIPELINE_REGISTRY

from .auto import AutoModelForNextItemPrediction
from .processing_utils import (
    UNKNOWN_ITEM_POLICIES,
    reads_item_ids,
    unknown_items_error,
    unknown_items_policy,
    warn_skipped_items,
)


class _Batch:
    """A batch of sessions (or items) handed to ``Pipeline.__call__`` as one input, so that the whole batch goes
    through one ``preprocess`` / ``_forward`` / ``postprocess`` (a plain list would be split into single inputs,
    one forward pass each)."""

    def __init__(self, items: list):
        self.items = items


def _is_one_session(inputs: Any) -> bool:
    """One session: a dict in the package schema or a list of item IDs (strings); else a batch of sessions."""
    if isinstance(inputs, Mapping):
        return True
    if isinstance(inputs, str):
        raise TypeError(
            f"a session is a list of item IDs, not a string: got {inputs!r:.80}; one ID: [{inputs!r:.40}], "
            f"several IDs in one string: {inputs!r:.40}.split()"
        )
    return isinstance(inputs, Sequence) and len(inputs) > 0 and isinstance(inputs[0], str)


class _SessionPipeline(Pipeline):
    """What both pipelines share: the processor is loaded with ``AutoProcessor``; a session or a batch of
    sessions is one pipeline input."""

    _load_processor = True
    _load_tokenizer = False
    _load_feature_extractor = False
    _load_image_processor = False
    _load_video_processor = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.processor is None:
            raise ValueError(
                f"the {self.task or type(self).__name__} pipeline needs the model's processor: build it from a "
                "checkpoint folder (pipeline(task, model=path)) or pass processor=AutoProcessor.from_pretrained(path)"
            )

    def _run(self, inputs: Any, one: bool, **kwargs):
        batch = _Batch([inputs] if one else list(inputs))
        if not batch.items:
            raise ValueError("got an empty batch: pass a session (a list of item IDs) or a list of sessions")
        out = super().__call__(batch, **kwargs)
        return out[0] if one else out

    def _forward(self, model_inputs: dict, **forward_params) -> dict:  # overridden by both pipelines
        raise NotImplementedError


class SessionRecommendationPipeline(_SessionPipeline):
    """``pipeline("session-recommendation", model=path)``: the next items of a user's session, with scores.

    Call it with one session (a list of item IDs, oldest first) or a list of sessions. Parameters (at build or
    call time): ``top_k`` (default 10), ``unknown_items`` (``"error"``, default, or ``"skip"``), ``batch_size``
    of the model's forward passes (default 256). Returns ``[{"item_id", "score"}, ...]`` best first per session
    (a list of those for a batch).
    """

    def _sanitize_parameters(
        self, top_k=None, unknown_items=None, batch_size=None, catalogue=None, candidates=None, **kwargs
    ):
        if kwargs:
            raise TypeError(f"session-recommendation got unexpected parameters {sorted(kwargs)}")
        preprocess, forward = {}, {}
        if catalogue is not None or candidates is not None:
            if not self._reads_text():
                raise TypeError(
                    f"{type(self.model).__name__} ranks its own item vocabulary: catalogue= and candidates= are "
                    "for text models (UBM)"
                )
            if catalogue is not None:
                preprocess["catalogue"] = forward["catalogue"] = _as_catalogue(catalogue)
            if candidates is not None:
                forward["candidates"] = list(candidates)
        if unknown_items is not None:
            preprocess["unknown_items"] = unknown_items_policy(unknown_items)
        if top_k is not None:
            if int(top_k) < 1:
                raise ValueError(f"top_k must be >= 1, got {top_k}")
            forward["top_k"] = int(top_k)
        if batch_size is not None:
            forward["batch_size"] = int(batch_size)
        return preprocess, forward, {}

    def __call__(self, sessions, **kwargs):
        return self._run(sessions, _is_one_session(sessions), **kwargs)

    def _reads_text(self) -> bool:
        """A text model: ``recommend`` takes ``candidates`` and a ``catalogue`` (UBM)."""
        recommend = getattr(self.model, "recommend", None)
        return recommend is not None and "candidates" in inspect.signature(recommend).parameters

    def preprocess(self, sessions: _Batch, unknown_items: str = "error", catalogue=None) -> dict:
        if self._reads_text():
            return {"sessions": _text_sessions(sessions.items, catalogue, unknown_items)}
        return {"sessions": _id_sessions(sessions.items, self.processor, unknown_items, self.task)}

    def _forward(
        self, model_inputs: dict, top_k: int = 10, batch_size: int = 256, catalogue=None, candidates=None
    ) -> dict:
        if not hasattr(self.model, "recommend"):
            raise TypeError(f"{type(self.model).__name__} has no recommend(): it is not a next-item head")
        kwargs: dict[str, Any] = {"top_k": top_k, "processor": self.processor, "batch_size": batch_size}
        if self._reads_text():
            kwargs.update(catalogue=catalogue, candidates=self._candidate_pool(candidates, catalogue))
        return {"ranked": self.model.recommend(model_inputs["sessions"], **kwargs)}

    def _candidate_pool(self, candidates, catalogue):
        """The tokenised pool of a text model, built once per distinct candidate list and catalogue."""
        if candidates is None:
            candidates = list(catalogue)  # every catalogue item
        key = (id(catalogue), tuple(c if isinstance(c, str) else repr(sorted(c.items())) for c in candidates))
        cached = getattr(self, "_pool_cache", None)
        if cached is None or cached[0] != key:
            from .models.ubm.modeling_ubm import UbmCandidatePool

            try:
                pool = UbmCandidatePool.from_items(self.processor, candidates, catalogue)
            except KeyError as err:
                raise KeyError(f"a candidate is not in the catalogue: {err}") from None
            self._pool_cache = cached = (key, pool)
        return cached[1]

    def postprocess(self, model_outputs: dict) -> list[list[dict[str, Any]]]:
        return [[{"item_id": i, "score": float(s)} for i, s in row] for row in model_outputs["ranked"]]


def _id_sessions(sessions: list, processor, unknown_items: str, where: str) -> list[list[str]]:
    """Sessions for a model with an item vocabulary (TAGNN++): lists of string IDs, the unknown ones handled by
    ``unknown_items`` (one warning per call when skipped)."""
    vocab = getattr(processor, "item_vocab", None)
    if vocab is None:
        raise TypeError(f"{type(processor).__name__} has no item_vocab: it cannot map item IDs")
    known = getattr(processor, "_index", None) or set(vocab)
    cleaned, dropped, touched, examples = [], 0, 0, []
    for b, session in enumerate(sessions):
        if isinstance(session, str | Mapping) or not isinstance(session, Sequence):
            raise TypeError(f"session {b}: expected a list of item IDs, got {session!r}")
        for j, item in enumerate(session):
            if not isinstance(item, str):
                raise TypeError(f"session {b}: item ID {j} must be a string, got {item!r:.80}")
        unknown = [i for i in session if i not in known]
        if unknown and unknown_items == "error":
            raise unknown_items_error(b, unknown, len(session), list(vocab))
        kept = [i for i in session if i in known]
        if not kept:
            raise KeyError(
                f"session {b}: none of its {len(session)} item IDs is known to the model (e.g. {session[:3]}); "
                f"known IDs look like {list(vocab[:3])}"
            )
        if unknown:
            dropped, touched = dropped + len(unknown), touched + 1
            examples += unknown[: 3 - len(examples)]
        cleaned.append(kept)
    warn_skipped_items(where or "pipeline", dropped, touched, len(cleaned), examples)
    return cleaned


def _known_items(items: list, processor, unknown_items: str, where: str) -> list[str]:
    """Item IDs of a model with an item vocabulary under ``unknown_items`` (``"skip"``: the known ones, with one
    warning)."""
    vocab = processor.item_vocab
    known = getattr(processor, "_index", None) or set(vocab)
    unknown = [i for i in items if not isinstance(i, str) or i not in known]
    if unknown and unknown_items == "error":
        raise unknown_items_error(None, unknown, len(items), list(vocab))
    warn_skipped_items(where or "pipeline", len(unknown), 0, 0, unknown)
    return [i for i in items if isinstance(i, str) and i in known]


def _as_catalogue(catalogue) -> dict[str, Mapping[str, Any]]:
    if isinstance(catalogue, Mapping):
        return dict(catalogue)
    records = list(catalogue)
    if not all(isinstance(r, Mapping) and "item_id" in r for r in records):
        raise TypeError(
            "catalogue= must be catalogue records (dicts with 'item_id') or an item_id -> record map"
        )
    return {r["item_id"]: r for r in records}


def _text_sessions(sessions: list, catalogue, unknown_items: str) -> list[dict[str, Any]]:
    """Sessions for a text model: dicts in the package schema, or lists of item IDs read as views; their items
    must be in the catalogue (``unknown_items`` says what to do when they are not)."""
    if catalogue is None:
        raise ValueError(
            "this model reads items as text: pass catalogue= (records or item_id -> record) when building the "
            "pipeline or when calling it"
        )
    out, dropped, touched, examples = [], 0, 0, []
    for b, session in enumerate(sessions):
        if isinstance(session, Mapping):
            events = [dict(e) for e in session.get("events") or []]
            sid = session.get("session_id", f"session-{b}")
        elif isinstance(session, Sequence) and not isinstance(session, str):
            for j, item in enumerate(session):
                if not isinstance(item, str):
                    raise TypeError(f"session {b}: item ID {j} must be a string, got {item!r:.80}")
            events = [
                {"action": "view", "timestamp": float(t), "subject": "item", "item_id": i, "query": None}
                for t, i in enumerate(session)
            ]
            sid = f"session-{b}"
        else:
            raise TypeError(f"session {b}: expected a list of item IDs or a session dict, got {session!r}")
        for e, event in enumerate(events):
            if event.get("item_id") is not None and not isinstance(event["item_id"], str):
                raise TypeError(
                    f"session {b}: events[{e}].item_id must be a string, got {event['item_id']!r:.80}"
                )
        unknown = [
            e["item_id"] for e in events if e.get("item_id") is not None and e["item_id"] not in catalogue
        ]
        if unknown and unknown_items == "error":
            raise unknown_items_error(
                b, unknown, len(events), list(catalogue), what="item IDs (not in the catalogue)"
            )
        events = [e for e in events if e.get("item_id") is None or e["item_id"] in catalogue]
        if not events:
            raise KeyError(f"session {b}: none of its events is a query or a catalogue item")
        if unknown:
            dropped, touched = dropped + len(unknown), touched + 1
            examples += unknown[: 3 - len(examples)]
        out.append({"session_id": sid, "events": events})
    warn_skipped_items("session-recommendation", dropped, touched, len(out), examples)
    return out


class SessionFeatureExtractionPipeline(_SessionPipeline):
    """``pipeline("session-feature-extraction", model=path)``: session (or item) embeddings as numpy arrays.

    Call it with one session or a list of sessions (``embed="sessions"``, default), or with item IDs (CERES also
    takes catalogue records and ``{"query": ...}`` specs) and ``embed="items"``. Parameters: ``embed``,
    ``catalogue`` (CERES: the products' text), ``batch_size``. One session gives a ``(D,)`` vector, a batch a
    ``(B, D)`` matrix; items always give ``(N, D)``. The model must implement ``encode_sessions`` and
    ``encode_items`` (TAGNN++, CERES).
    """

    def _sanitize_parameters(self, embed=None, catalogue=None, batch_size=None, unknown_items=None, **kwargs):
        if kwargs:
            raise TypeError(f"session-feature-extraction got unexpected parameters {sorted(kwargs)}")
        forward = {}
        if unknown_items is not None:
            forward["unknown_items"] = unknown_items_policy(unknown_items)
        if embed is not None:
            if embed not in ("sessions", "items"):
                raise ValueError(f"embed={embed!r} must be 'sessions' or 'items'")
            forward["embed"] = embed
        if catalogue is not None:
            forward["catalogue"] = catalogue
        if batch_size is not None:
            forward["batch_size"] = int(batch_size)
        return {}, forward, {}

    def __call__(self, inputs, embed: str | None = None, **kwargs):
        if embed is not None:
            kwargs["embed"] = embed
        mode = embed or self._forward_params.get("embed", "sessions")
        if mode == "items":
            items = [inputs] if isinstance(inputs, str | Mapping) else list(inputs)
            return self._run(items, one=True, **kwargs)  # the item list is one input: one (N, D) matrix
        return self._run(inputs, _is_one_session(inputs), **kwargs)

    def preprocess(self, inputs: _Batch) -> dict:
        return {"inputs": inputs.items}

    def _encode_kwargs(self, catalogue, batch_size) -> dict:
        kwargs: dict[str, Any] = {"processor": self.processor}
        if catalogue is not None:
            kwargs["catalogue"] = catalogue
        if batch_size is not None:
            kwargs["batch_size"] = batch_size
        return kwargs

    def _forward(
        self,
        model_inputs: dict,
        embed: str = "sessions",
        catalogue=None,
        batch_size=None,
        unknown_items: str = "error",
    ) -> dict:
        method = "encode_items" if embed == "items" else "encode_sessions"
        if not hasattr(self.model, method):
            raise TypeError(f"{type(self.model).__name__} has no {method}()")
        encode = getattr(self.model, method)
        accepted = inspect.signature(encode).parameters
        kwargs = {k: v for k, v in self._encode_kwargs(catalogue, batch_size).items() if k in accepted}
        inputs = model_inputs["inputs"]
        by_id = reads_item_ids(self.processor)
        if embed == "items":  # the item list came as one input
            items = list(inputs[0])
            if by_id:  # an item vocabulary (TAGNN++): the package's unknown-item policy
                items = _known_items(items, self.processor, unknown_items, self.task)
            vectors = encode(items, **kwargs)
        else:
            if by_id:
                inputs = _id_sessions(inputs, self.processor, unknown_items, self.task)
            vectors = encode(inputs, **kwargs)
        return {"vectors": [vectors] if embed == "items" else list(np.asarray(vectors))}

    def postprocess(self, model_outputs: dict) -> list[np.ndarray]:
        return model_outputs["vectors"]

    def _run(self, inputs: Any, one: bool, **kwargs):
        out = super()._run(inputs, one, **kwargs)
        return out if one else np.stack(out)


def register_pipelines() -> None:
    """Register both tasks with ``transformers``' pipeline registry (idempotent: re-registering overwrites)."""
    from transformers.pipelines import SUPPORTED_TASKS

    for task, cls, model_class in (
        ("session-recommendation", SessionRecommendationPipeline, AutoModelForNextItemPrediction),
        ("session-feature-extraction", SessionFeatureExtractionPipeline, AutoModel),
    ):
        if SUPPORTED_TASKS.get(task, {}).get("impl") is cls:
            continue
        PIPELINE_REGISTRY.register_pipeline(task, pipeline_class=cls, pt_model=model_class)


__all__ = [
    "UNKNOWN_ITEM_POLICIES",
    "SessionFeatureExtractionPipeline",
    "SessionRecommendationPipeline",
    "register_pipelines",
]
