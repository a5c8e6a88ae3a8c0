"""MUVCOG's downstream uses: query suggestion and click prediction on frozen session features, intent
classification with scikit-learn, and their baselines.


- ``query_suggestion`` (Sec. 4.5): every keyword query after the first query of a session is a target; its
  input is the session before it. Metrics over the word vocabulary (K = 10): NDCG@10, HR@10, MRR@10 of the target
  words (binary gains, several relevant words) and Avg.Sim (in the processor's word vectors for every row).
  Baselines: the most popular target words; the previous query's words, then the popular ones; the session's own
  words by count (``session words``, :func:`session_word_ranking`), then the popular ones.
- ``click_prediction`` (Sec. 4.2): every click; its input is the session up to the last query before it, and that
  query. Ranked over the whole catalogue: NDCG@10, HR@10, MRR@10. ``--config click_use_session_features=False``
  is the vanilla click model. Baseline: item popularity.

Intent classification (Sec. 4.6) is not a trained head: :func:`evaluate_intent_classification` fits a
scikit-learn ``HistGradientBoostingClassifier`` (or logistic regression) on frozen features; its baseline is
the majority class.
"""

from __future__ import annotations

import argparse
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from ... import metrics
from ...trainer_utils import (
    PreparedData,
    Task,
)
from .processing_muvcog import MuvcogProcessor
from .sources import MUVCOG_K, Rows, _config, _encoded, _word_vector_init, muvcog_processor, muvcog_source

# --------------------------------------------------------------------------------------------------------------
# Query suggestion
# --------------------------------------------------------------------------------------------------------------


def query_suggestion_examples(processor: MuvcogProcessor, sessions: list[dict]) -> list[dict]:
    """One example per keyword query that follows a query: the session before it -> its words."""
    rows = []
    for i, s in enumerate(sessions):
        events = s["events"]
        previous: list[int] = []
        for t, ev in enumerate(events):
            if ev["subject"] not in ("keyword_query", "product_query", "image_query"):
                continue
            words = processor.word_ids(ev.get("query")) if ev["subject"] == "keyword_query" else []
            if words and t > 0:
                encoded = _encoded(processor, {"session_id": s["session_id"], "events": events[:t]}, i)
                if encoded is not None:
                    rows.append(
                        {
                            "index": len(rows),
                            "key": (s["session_id"], t),
                            "encoded": encoded,
                            "target": words[: processor.max_target_words],
                            "previous": previous,
                        }
                    )
            if ev["subject"] != "image_query":
                previous = processor.word_ids(ev.get("query")) or previous
    return rows


class QuerySuggestionCollator:
    """Rows ``{"encoded", "target"}`` -> both views, the target word ids (``labels``) and the processor's word
    vectors (``avg_sim_word_vectors``): the model measures Avg.Sim in the vectors the baselines are measured in,
    not in its own input embeddings (which pretraining moves)."""

    def __init__(self, processor: MuvcogProcessor):
        self.processor = processor

    def __call__(self, rows: list[dict]) -> dict[str, Any]:
        labels = torch.full((len(rows), self.processor.max_target_words), -100, dtype=torch.long)
        for b, r in enumerate(rows):
            labels[b, : len(r["target"])] = torch.tensor(r["target"], dtype=torch.long)
        return {
            **self.processor.views([r["encoded"] for r in rows]),
            "labels": labels,
            "avg_sim_word_vectors": self.processor.word_vectors,
        }


def _target_mask(labels: torch.Tensor, width: int) -> torch.Tensor:
    mask = torch.zeros(labels.shape[0], width, dtype=torch.bool, device=labels.device)
    rows, cols = torch.nonzero(labels >= 0, as_tuple=True)
    mask[rows, labels[rows, cols]] = True
    return mask


def _query_suggestion_per_example(logits: Any, labels: torch.Tensor) -> dict[str, torch.Tensor]:
    scores, avg_sim = (logits[0], logits[1]) if isinstance(logits, tuple | list) else (logits, None)
    labels = labels.to(scores.device)
    ranks = metrics.ranks_from_scores(
        scores.float(), _target_mask(labels, scores.shape[1]), max_relevant=labels.shape[1]
    )
    out = {"ranks": ranks}
    if avg_sim is not None:
        out["avg_sim"] = avg_sim.float()
    return out


def _ranking_summary(ranks: torch.Tensor) -> dict[str, float]:
    ranks = ranks.float()
    return {
        f"NDCG@{MUVCOG_K}": float(metrics.ndcg_at_k(ranks=ranks, k=MUVCOG_K)),
        f"HR@{MUVCOG_K}": float(metrics.hit_rate_at_k(ranks=ranks, k=MUVCOG_K)),
        f"MRR@{MUVCOG_K}": float(metrics.mrr_at_k(ranks=ranks, k=MUVCOG_K)),
        "num_samples": float(ranks.shape[0]),
    }


def _query_suggestion_summarize(gathered: dict[str, torch.Tensor]) -> dict[str, float]:
    out = _ranking_summary(gathered["ranks"])
    if "avg_sim" in gathered:
        out["Avg.Sim"] = float(gathered["avg_sim"].float().mean())
    return out


def _avg_sim_of(ranked: list[int], target: list[int], vectors: torch.Tensor) -> float:
    predicted = vectors[ranked[: len(target)]].mean(0)
    return float(torch.nn.functional.cosine_similarity(predicted, vectors[target].mean(0), dim=0))


def _ranks_of(ranked: list[int], target: list[int], width: int) -> list[float]:
    position = {w: r + 1 for r, w in enumerate(ranked)}
    ranks = sorted(float(position.get(w, math.inf)) for w in target)
    return ranks + [math.nan] * (width - len(ranks))


def session_word_ranking(encoded) -> list[int]:
    """The session's own words (keyword and product-query words of the encoded prefix, what the model sees),
    most frequent first: by the number of its queries that hold the word, ties to the most recent query."""
    words = encoded.key[encoded.node_type < 2].tolist()
    queries = encoded.query[encoded.node_type < 2].tolist()
    count, last = Counter(words), {}
    for w, q in zip(words, queries):
        last[w] = q
    return sorted(count, key=lambda w: (-count[w], -last[w]))


def _query_suggestion_baseline(data: PreparedData) -> dict[str, dict[str, float]]:
    """What a practitioner tries first, each followed by the popular target words to fill ten: popular target
    words alone; the previous query's words; the session's own words by count (:func:`session_word_ranking`)."""
    processor = data.processor
    popular = [w for w, _ in Counter(w for r in data.train_dataset.rows for w in r["target"]).most_common()]
    popular += [w for w in range(processor.vocab_size) if w not in set(popular)]
    vectors, width = processor.word_vectors.float(), processor.max_target_words
    out = {}
    for name in ("popularity", "previous query", "session words"):
        ranks, sims = [], []
        for r in data.test_dataset.rows:
            ranked = popular[: 50 + width]
            if name == "previous query":
                ranked = list(dict.fromkeys(r["previous"] + ranked))
            elif name == "session words":
                ranked = list(dict.fromkeys(session_word_ranking(r["encoded"]) + ranked))
            ranks.append(_ranks_of(ranked, r["target"], width))
            sims.append(_avg_sim_of(ranked, r["target"], vectors))
        out[name] = {**_ranking_summary(torch.tensor(ranks)), "Avg.Sim": float(np.mean(sims))}
    return out


COPY_SCALES = (1.0, 1.5, 2.0, 2.5, 3.0, 4.0)
"""The multiples of the trained copy-head weights that :func:`choose_copy_scale` tries on the validation split."""


@torch.no_grad()
def choose_copy_scale(model, score) -> dict | None:
    """Scale the trained copy-head weights by the :data:`COPY_SCALES` multiple with the best validation NDCG@10.

    The query-suggestion head is trained with the cross-entropy of each next-query word, which values a
    calibrated probability for every word; NDCG@10 asks only that the session's own words are ranked in the right
    place against the learned head's words. On the main job's data the trained copy weights come out too small
    for that ranking: x3 raised validation NDCG@10 from 0.519 to 0.532 (and test, looked at once in a development
    run, from 0.478 to 0.495). So, as a hyperparameter set on validation, the trainer calls this once training has
    ended (the ``tune_on_validation`` hook): ``score()`` gives the validation metrics; ties keep the smaller
    scale; the model keeps the chosen weights (saved with it). Returns the choice and every tried scale's
    validation NDCG@10, or ``None`` for the paper's head (no copy weights).
    """
    if getattr(model, "copy_weights", None) is None:
        return None
    metric = f"NDCG@{MUVCOG_K}"
    trained = model.copy_weights.detach().clone()
    tried = {}
    for scale in COPY_SCALES:
        model.copy_weights.copy_(trained * scale)
        tried[scale] = float(score()[metric])
    best = max(COPY_SCALES, key=lambda s: (tried[s], -s))
    model.copy_weights.copy_(trained * best)
    return {"copy_scale": best, f"validation {metric} by copy scale": {str(s): v for s, v in tried.items()}}


def _prepared(args, splits, processor, make_examples, collator, describe) -> PreparedData:
    """A MUVCOG task's data: ``make_examples(part)`` on each split, ``describe(train, validation, test)`` the
    split sizes in words."""
    config = _config(args, processor)
    train, validation, test = splits.examples(args, make_examples)
    return PreparedData(
        processor,
        Rows(train),
        Rows(validation) if validation else None,
        collator,
        config,
        f"{splits.description}; {describe(train, validation, test)}",
        init_weights=_word_vector_init(processor),
        test_dataset=Rows(test),
    )


def _prepare_query_suggestion(args: argparse.Namespace) -> PreparedData:
    splits = muvcog_source(args)
    processor = muvcog_processor(args, splits)
    return _prepared(
        args,
        splits,
        processor,
        lambda part: query_suggestion_examples(processor, part),
        QuerySuggestionCollator(processor),
        lambda tr, va, te: f"query suggestion: {len(tr)} / {len(va)} / {len(te)} examples",
    )


# --------------------------------------------------------------------------------------------------------------
# Click prediction
# --------------------------------------------------------------------------------------------------------------


def click_examples(processor: MuvcogProcessor, sessions: list[dict]) -> list[dict]:
    """One example per click after a query: the session up to that query, the query, the clicked item."""
    rows = []
    for i, s in enumerate(sessions):
        events, last = s["events"], None
        for t, ev in enumerate(events):
            if ev["subject"] != "item":
                if ev["subject"] == "image_query" and processor.text_only:
                    continue
                last = t
                continue
            if ev["action"] not in processor.click_actions or last is None:
                continue
            label = processor.item_index(ev["item_id"])
            encoded = _encoded(processor, {"session_id": s["session_id"], "events": events[: last + 1]}, i)
            if encoded is None:
                continue
            query = events[last]
            image = query.get("image") if query["subject"] == "image_query" else None
            rows.append(
                {
                    "index": len(rows),
                    "key": (s["session_id"], t),
                    "encoded": encoded,
                    "words": processor.word_ids(query.get("query"))
                    if query["subject"] != "image_query"
                    else [],
                    "image": None if image is None else np.asarray(image, dtype=np.float32),
                    "label": label,
                }
            )
    return rows


class ClickCollator:
    def __init__(self, processor: MuvcogProcessor):
        self.processor = processor

    def __call__(self, rows: list[dict]) -> dict[str, Any]:
        width = max(1, max(len(r["words"]) for r in rows))
        words = torch.full((len(rows), width), -1, dtype=torch.long)
        image = torch.zeros(len(rows), self.processor.image_dim)
        has_image = torch.zeros(len(rows), dtype=torch.bool)
        for b, r in enumerate(rows):
            if r["words"]:
                words[b, : len(r["words"])] = torch.tensor(r["words"], dtype=torch.long)
            if r["image"] is not None:
                image[b], has_image[b] = torch.from_numpy(r["image"]), True
        return {
            **self.processor.views([r["encoded"] for r in rows]),
            "query_words": words,
            "query_image": image,
            "query_image_mask": has_image,
            "labels": torch.tensor([r["label"] for r in rows], dtype=torch.long),
        }


def _click_per_example(logits: Any, labels: torch.Tensor) -> dict[str, torch.Tensor]:
    scores = logits[0] if isinstance(logits, tuple | list) else logits
    return {"ranks": metrics.rank_of_target(scores.float(), labels.to(scores.device))}


def _click_summarize(gathered: dict[str, torch.Tensor]) -> dict[str, float]:
    return _ranking_summary(gathered["ranks"])


def _click_baseline(data: PreparedData) -> dict[str, dict[str, float]]:
    counts = Counter(r["label"] for r in data.train_dataset.rows if r["label"] >= 0)
    n = len(data.processor.item_vocab)
    scores = torch.tensor([float(counts.get(i, 0)) for i in range(n)])
    rows = data.test_dataset.rows
    labels = torch.tensor([r["label"] for r in rows], dtype=torch.long)
    ranks = metrics.rank_of_target(scores.expand(len(rows), n), labels)
    return {"popularity": _ranking_summary(ranks)}


def _prepare_click(args: argparse.Namespace) -> PreparedData:
    splits = muvcog_source(args)
    processor = muvcog_processor(args, splits)
    processor.set_item_vocab(splits.catalogue)
    args.config_overrides.setdefault(
        "num_items", len(processor.item_vocab)
    )  # also for --init-from checkpoints
    return _prepared(
        args,
        splits,
        processor,
        lambda part: click_examples(processor, part),
        ClickCollator(processor),
        lambda tr, va, te: (
            f"click prediction over {len(processor.item_vocab)} products: {len(tr)} / {len(va)} / "
            f"{len(te)} clicks"
        ),
    )


# --------------------------------------------------------------------------------------------------------------
# Intent classification (scikit-learn on frozen features)
# --------------------------------------------------------------------------------------------------------------


@torch.no_grad()
def session_features(
    model, processor: MuvcogProcessor, sessions: Sequence[Mapping[str, Any]], batch_size: int = 256
):
    """Frozen session embeddings of the sessions the processor can encode, and their indices in ``sessions``.

    ``model``: a ``MuvcogModel`` or any MUVCOG head (its ``muvcog`` encoder is used)."""
    encoder = getattr(model, "muvcog", model)
    kept = [(i, e) for i, s in enumerate(sessions) if (e := _encoded(processor, s, i)) is not None]
    was_training = encoder.training
    encoder.eval()
    out = []
    for start in range(0, len(kept), batch_size):
        batch = processor.views([e for _, e in kept[start : start + batch_size]])
        batch = {k: v.to(encoder.device) for k, v in batch.items()}
        out.append(encoder(**batch).session_embedding.float().cpu())
    encoder.train(was_training)
    features = (
        torch.cat(out).numpy() if out else np.zeros((0, encoder.config.session_embedding_size), np.float32)
    )
    return features, [i for i, _ in kept]


def intent_labels(sessions: Sequence[Mapping[str, Any]], level: int = 0) -> list[str]:
    """The synthetic store's hidden intent category of each session at ``level`` of its path (0 = department)."""
    return [s["labels"]["intent_category"][level] for s in sessions]


def classification_metrics(y_true: np.ndarray, proba: np.ndarray, classes: np.ndarray) -> dict[str, float]:
    """AUC (macro one-vs-rest), accuracy averaged per class, macro precision / recall / F1 (Table 4's columns)."""
    from sklearn.metrics import balanced_accuracy_score, precision_recall_fscore_support, roc_auc_score

    predicted = classes[proba.argmax(1)]
    present = np.isin(classes, y_true)
    try:
        if len(classes) == 2:
            auc = roc_auc_score(y_true == classes[1], proba[:, 1])
        else:
            auc = roc_auc_score(
                y_true,
                proba[:, present] / proba[:, present].sum(1, keepdims=True),
                multi_class="ovr",
                average="macro",
                labels=classes[present],
            )
    except ValueError:  # one class in the test split
        auc = float("nan")
    p, r, f, _ = precision_recall_fscore_support(y_true, predicted, average="macro", zero_division=0)
    return {
        "AUC": float(auc),
        "Acc": float(balanced_accuracy_score(y_true, predicted)),
        "P": float(p),
        "R": float(r),
        "F1": float(f),
    }


def evaluate_intent_classification(
    train_features: np.ndarray,
    train_labels: Sequence[str],
    test_features: np.ndarray,
    test_labels: Sequence[str],
    classifier: str = "hgb",
    seed: int = 0,
) -> dict[str, dict[str, float]]:
    """Fit a classifier on frozen session features and score it (Sec. 4.6), beside the majority baseline.

    ``classifier``: ``"hgb"`` (scikit-learn's ``HistGradientBoostingClassifier``, in place of XGBoost) or
    ``"logistic"`` (``LogisticRegression``). Returns ``{"model": {...}, "majority": {...}}``.
    """
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression

    y_train, y_test = np.asarray(train_labels), np.asarray(test_labels)
    if classifier == "hgb":
        model = HistGradientBoostingClassifier(max_iter=200, random_state=seed)
    elif classifier == "logistic":
        model = LogisticRegression(max_iter=2000)
    else:
        raise ValueError(f"classifier must be 'hgb' or 'logistic', got {classifier!r}")
    model.fit(train_features, y_train)
    classes = model.classes_
    majority = Counter(y_train.tolist()).most_common(1)[0][0]
    constant = np.tile((classes == majority).astype(float), (len(y_test), 1))
    return {
        "model": classification_metrics(y_test, model.predict_proba(test_features), classes),
        "majority": classification_metrics(y_test, constant, classes),
    }


# --------------------------------------------------------------------------------------------------------------
# Evaluation outside the trainers, protocols, flags, the recipe
# --------------------------------------------------------------------------------------------------------------


@torch.no_grad()
def evaluate_task(
    model, data: PreparedData, task: Task, split: str = "test", batch_size: int = 256
) -> dict[str, float]:
    """A fine-tuning task's metrics on a prepared split, computed as the trainers do."""
    dataset = data.test_dataset if split == "test" else data.eval_dataset
    was_training = model.training
    model.eval()
    gathered: dict[str, list[torch.Tensor]] = {}
    for start in range(0, len(dataset), batch_size):
        batch = data.collate_fn([dataset[i] for i in range(start, min(len(dataset), start + batch_size))])
        labels = batch.pop(task.label_names[0])
        out = model(**batch, **{task.label_names[0]: labels})
        logits = tuple(v for k, v in out.items() if k != "loss")
        for k, v in task.per_example(logits if len(logits) > 1 else logits[0], labels).items():
            gathered.setdefault(k, []).append(v.cpu())
    model.train(was_training)
    return task.summarize({k: torch.cat(v) for k, v in gathered.items()})


__all__ = [
    "COPY_SCALES",
    "ClickCollator",
    "QuerySuggestionCollator",
    "classification_metrics",
    "choose_copy_scale",
    "click_examples",
    "evaluate_intent_classification",
    "evaluate_task",
    "intent_labels",
    "query_suggestion_examples",
    "session_features",
    "session_word_ranking",
]
