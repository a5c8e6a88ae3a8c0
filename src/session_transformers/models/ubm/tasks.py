"""UBM's downstream metrics and baselines: the paper's Table 1 metrics of purchase intent, remaining length and next
item (scikit-learn / :mod:`session_transformers.metrics`), and each task's baselines, the ones a practitioner tries
before a session encoder among them. :mod:`.recipe` wires them into its :class:`~session_transformers.trainer_utils.Task`\ s.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import torch

from ... import metrics
from ...trainer_utils import PreparedData

NIP_KS = (10, 20)
"""The cut-offs of next item's HR@K and MRR@K."""


def _first(logits: Any) -> torch.Tensor:
    return logits[0] if isinstance(logits, tuple | list) else logits


def _pip_per_example(logits: Any, labels: torch.Tensor) -> dict[str, torch.Tensor]:
    return {"probability": torch.sigmoid(_first(logits).float()), "label": labels.float()}


def pip_metrics(probability: np.ndarray, label: np.ndarray) -> dict[str, float]:
    """Accuracy, AUROC, F1 and Cohen's kappa (threshold 0.5), as the paper's Table 1 (scikit-learn)."""
    from sklearn.metrics import accuracy_score, cohen_kappa_score, f1_score, roc_auc_score

    label = label.astype(int)
    predicted = (probability >= 0.5).astype(int)
    both = len(np.unique(label)) == 2
    return {
        "num_samples": float(len(label)),
        "positive_rate": float(label.mean()) if len(label) else float("nan"),
        "accuracy": float(accuracy_score(label, predicted)),
        "AUROC": float(roc_auc_score(label, probability)) if both else float("nan"),
        "F1": float(f1_score(label, predicted, zero_division=0)),
        "kappa": float(cohen_kappa_score(label, predicted))
        if len(np.unique(np.r_[label, predicted])) > 1
        else 0.0,
    }


def _pip_summarize(gathered: dict[str, torch.Tensor]) -> dict[str, float]:
    return pip_metrics(gathered["probability"].float().numpy(), gathered["label"].float().numpy())


def _rlp_per_example(logits: Any, labels: torch.Tensor) -> dict[str, torch.Tensor]:
    return {"prediction": _first(logits).float(), "label": labels.float()}


def rlp_metrics(prediction: np.ndarray, label: np.ndarray) -> dict[str, float]:
    """MAE, MSE, MSLE (of predictions clipped at 0) and R², as the paper's Table 1 (scikit-learn)."""
    from sklearn.metrics import mean_absolute_error, mean_squared_error, mean_squared_log_error, r2_score

    return {
        "num_samples": float(len(label)),
        "MAE": float(mean_absolute_error(label, prediction)),
        "MSE": float(mean_squared_error(label, prediction)),
        "MSLE": float(mean_squared_log_error(label, np.clip(prediction, 0, None))),
        "R2": float(r2_score(label, prediction)) if len(label) > 1 else float("nan"),
    }


def _rlp_summarize(gathered: dict[str, torch.Tensor]) -> dict[str, float]:
    return rlp_metrics(gathered["prediction"].float().numpy(), gathered["label"].float().numpy())


def _nip_per_example(logits: Any, labels: torch.Tensor) -> dict[str, torch.Tensor]:
    return {"rank": metrics.rank_of_target(_first(logits).float(), labels.long())}


def nip_metrics(ranks: torch.Tensor) -> dict[str, float]:
    """HR@10/20 and MRR@10/20 in percent (misses rank ``inf``)."""
    out = {"num_samples": float(ranks.numel())}
    for k in NIP_KS:
        out[f"HR@{k}"] = 100.0 * metrics.hit_rate_from_ranks(ranks, k)
        out[f"MRR@{k}"] = 100.0 * metrics.mrr_from_ranks(ranks, k)
    return out


def _nip_summarize(gathered: dict[str, torch.Tensor]) -> dict[str, float]:
    return nip_metrics(gathered["rank"].float())


PIP_LAST_ACTIONS = 3
"""How many of a prefix's last actions the purchase-intent baselines one-hot encode."""


def _last_action(events: list[dict]) -> str:
    """The action of a prefix's last event (``""`` for an empty prefix)."""
    return events[-1]["action"] if events else ""


def action_features(events: list[dict], actions: list[str]) -> list[float]:
    """A session prefix as a practitioner featurises it without a model: its length, how often each of
    ``actions`` occurs in it, and which action each of its last :data:`PIP_LAST_ACTIONS` events is."""
    seen = [ev["action"] for ev in events]
    counts = Counter(seen)
    out = [float(len(seen))] + [float(counts.get(a, 0)) for a in actions]
    for back in range(1, PIP_LAST_ACTIONS + 1):
        last = seen[-back] if len(seen) >= back else None
        out += [float(last == a) for a in actions]
    return out


def pip_baseline(data: PreparedData, seed: int = 0) -> dict[str, dict[str, float]]:
    """Purchase-intent baselines on the test split, each fitted on the training split:

    - ``majority class`` (the training split's, with its positive rate as the probability) and ``random``
      (uniform random probabilities), the paper's;
    - ``last action``: the training split's purchase rate among prefixes ending in the same action (a prefix is cut
      before its first purchase, so what comes just before a purchase is the obvious cue);
    - ``action counts``: a logistic regression (scikit-learn) on :func:`action_features`: length, action counts
      and the last actions. What a practitioner tries before a session encoder; the model must beat it.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    train = np.array(data.train_dataset["label"], dtype=float)
    test = np.array(data.test_dataset["label"], dtype=float)
    rate = train.mean()
    majority = np.full(len(test), 1.0 if rate > 0.5 else 0.0)
    rand = np.random.default_rng(seed).random(len(test))
    out = {"majority class": pip_metrics(majority, test), "random": pip_metrics(rand, test)}
    if "events" not in data.train_dataset.column_names:  # labels only: nothing to featurise
        return out
    train_events, test_events = data.train_dataset["events"], data.test_dataset["events"]
    by_last: dict[str, list[float]] = {}
    for events, label in zip(train_events, train, strict=True):
        by_last.setdefault(_last_action(events), []).append(label)
    last_rate = {action: float(np.mean(labels)) for action, labels in by_last.items()}
    last = np.array([last_rate.get(_last_action(events), rate) for events in test_events])
    out["last action"] = pip_metrics(last, test)
    if len(np.unique(train)) == 2:
        actions = sorted({ev["action"] for events in train_events for ev in events})
        x_train = np.array([action_features(ev, actions) for ev in train_events])
        x_test = np.array([action_features(ev, actions) for ev in test_events])
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(x_train, train)
        out["action counts"] = pip_metrics(model.predict_proba(x_test)[:, 1], test)
    return out


def rlp_baseline(data: PreparedData) -> dict[str, dict[str, float]]:
    """FIXED: every session gets the mean remaining length of the training split."""
    train = np.array(data.train_dataset["label"], dtype=float)
    test = np.array(data.test_dataset["label"], dtype=float)
    return {"mean length": rlp_metrics(np.full(len(test), train.mean()), test)}


def nip_baseline(data: PreparedData) -> dict[str, dict[str, float]]:
    """Next-item baselines on the test split:

    - ``popularity`` (POP, the paper's): the most frequent training targets, in order, for every session;
    - ``session items, then popularity``: the session's own items, the most recent first, then the popular ones
      (shoppers return to what they viewed: the "copy the session" baseline a practitioner tries first).
    """
    popularity = Counter(data.train_dataset["target"])
    order = {item: r for r, (item, _) in enumerate(popularity.most_common(), start=1)}
    test = data.test_dataset
    ranks = torch.tensor([float(order.get(t, float("inf"))) for t in test["target"]])
    session_first = []
    for events, target in zip(test["events"], test["target"]):
        recent = list(dict.fromkeys(ev["item_id"] for ev in reversed(events) if ev.get("item_id")))
        if target in recent:
            session_first.append(float(recent.index(target) + 1))
        elif target in order:  # after the session's items, popularity's order without them
            ahead = sum(1 for item in recent if order.get(item, float("inf")) < order[target])
            session_first.append(float(len(recent) + order[target] - ahead))
        else:
            session_first.append(float("inf"))
    return {
        "popularity": nip_metrics(ranks),
        "session items, then popularity": nip_metrics(torch.tensor(session_first)),
    }


__all__ = [
    "NIP_KS",
    "PIP_LAST_ACTIONS",
    "action_features",
    "nip_baseline",
    "nip_metrics",
    "pip_baseline",
    "pip_metrics",
    "rlp_baseline",
    "rlp_metrics",
]
