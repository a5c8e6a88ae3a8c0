"""The paper's downstream protocol (Sections 3.2, 4.1, 4.2 and Appendix A.1): frozen embeddings + logistic regression.

A product task is titles with a binary label. The titles are split 60/20/20 into train / validation / test
(seeded). For every training size in ``sizes`` (100, 500, 1k, 5k, 10k, 50k, as far as the training split allows),
``repeats`` (5) random subsamples of the training split are drawn; on each, scikit-learn's
``LogisticRegression(solver="liblinear", max_iter=1000)`` is fitted on the frozen features for every inverse
regularisation strength in ``Cs``, the one with the best validation ROC-AUC is kept, and its validation and test
ROC-AUC are recorded. The result per size is the mean and standard deviation over the subsamples.

The paper leaves the classifier's other parameters at scikit-learn's defaults (``C = 1``); choosing ``C`` on the
validation split (``Cs=(1.0,)`` reproduces the paper exactly) is the "regularisation chosen on validation" of
our issue. The paper chooses its BYOL weight ``alpha`` on validation too: compare the ``validation`` curves of
encoders trained with different ``alpha`` and report the ``test`` curve of the best one
(``benchmarks/product_byol_claims.py`` does).

Features come from any encoder: :func:`encoder_features` embeds titles with a Product BYOL model (its
``encode_titles``); a bag of words, averaged word vectors or a sentence encoder work the same way.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

PAPER_TRAIN_SIZES = (100, 500, 1_000, 5_000, 10_000, 50_000)
DEFAULT_CS = (0.1, 1.0, 10.0)


@dataclass
class TaskSplits:
    """Indices of a product task's train / validation / test split (60/20/20) and the labels."""

    labels: np.ndarray
    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray

    @classmethod
    def split(cls, labels: Sequence[int], seed: int = 0) -> TaskSplits:
        labels = np.asarray(labels, dtype=np.int64)
        if set(np.unique(labels).tolist()) - {0, 1}:
            raise ValueError(f"labels must be binary 0/1, got values {np.unique(labels)[:5].tolist()}")
        order = np.random.default_rng(seed).permutation(len(labels))
        a, b = int(0.6 * len(labels)), int(0.8 * len(labels))
        return cls(labels, order[:a], order[a:b], order[b:])


@dataclass
class CurvePoint:
    """One training size: ROC-AUC mean / std over the subsamples, on validation and test, and the chosen Cs."""

    size: int
    validation_mean: float
    validation_std: float
    test_mean: float
    test_std: float
    runs: list[dict[str, float]] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "size": self.size,
            "validation_auc_mean": self.validation_mean,
            "validation_auc_std": self.validation_std,
            "test_auc_mean": self.test_mean,
            "test_auc_std": self.test_std,
            "runs": self.runs,
        }


def _subsample(rng: np.random.Generator, idx: np.ndarray, labels: np.ndarray, size: int) -> np.ndarray:
    """``size`` random training indices holding both classes (redrawn, then forced, when a draw has one)."""
    for _ in range(20):
        pick = rng.choice(idx, size=size, replace=False)
        if len(np.unique(labels[pick])) == 2:
            return pick
    pos, neg = idx[labels[idx] == 1], idx[labels[idx] == 0]
    pick = rng.choice(idx, size=size - 2, replace=False)
    return np.concatenate([pick, rng.choice(pos, 1), rng.choice(neg, 1)])


def learning_curve(
    features: np.ndarray,
    splits: TaskSplits,
    sizes: Sequence[int] = PAPER_TRAIN_SIZES,
    repeats: int = 5,
    Cs: Sequence[float] = DEFAULT_CS,
    seed: int = 0,
    fit: Callable | None = None,
) -> list[CurvePoint]:
    """ROC-AUC of logistic regression on frozen ``features`` ``(n, d)`` at each training size (see module doc).

    Sizes larger than the training split are left out; when none fits, the whole training split is one size.
    ``features`` may be a scipy sparse matrix (a bag of words). ``fit(X, y, C)`` replaces the classifier (it must
    return an object with ``decision_function``): the benchmarks train per-task models this way, with row indices
    as ``features``.
    """
    import scipy.sparse as sp
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    if not sp.issparse(features):
        features = np.asarray(features, dtype=np.float64)
    y = splits.labels
    if features.shape[0] != len(y):
        raise ValueError(f"{features.shape[0]} feature rows for {len(y)} labels")
    for name in ("validation", "test"):
        if len(np.unique(y[getattr(splits, name)])) < 2:
            raise ValueError(f"the {name} split has a single class: ROC-AUC is undefined")
    n_train = len(splits.train)
    usable = [s for s in sizes if s <= n_train] or [n_train]

    def _fit(X, target, C):
        if fit is not None:
            return fit(X, target, C)
        return LogisticRegression(solver="liblinear", max_iter=1000, C=C).fit(X, target)

    rng = np.random.default_rng(seed)
    x_val, y_val = features[splits.validation], y[splits.validation]
    x_test, y_test = features[splits.test], y[splits.test]
    curve = []
    for size in usable:
        runs = []
        for _ in range(1 if size == n_train else repeats):
            pick = _subsample(rng, splits.train, y, size) if size < n_train else splits.train
            best = None
            for C in Cs:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # liblinear convergence warnings at tiny sizes
                    clf = _fit(features[pick], y[pick], C)
                val_auc = roc_auc_score(y_val, clf.decision_function(x_val))
                if best is None or val_auc > best[0]:
                    best = (val_auc, C, clf)
            val_auc, C, clf = best
            runs.append(
                {
                    "validation_auc": float(val_auc),
                    "test_auc": float(roc_auc_score(y_test, clf.decision_function(x_test))),
                    "C": C,
                }
            )
        v = np.array([r["validation_auc"] for r in runs])
        t = np.array([r["test_auc"] for r in runs])
        curve.append(CurvePoint(size, float(v.mean()), float(v.std()), float(t.mean()), float(t.std()), runs))
    return curve


def encoder_features(model, processor, titles: Sequence[str], batch_size: int = 256) -> np.ndarray:
    """Frozen Product BYOL representations of ``titles`` (``model`` is any class with ``encode_titles`` or a
    head holding ``product_byol``)."""
    base = model if hasattr(model, "encode_titles") else model.product_byol
    return base.encode_titles(list(titles), processor=processor, batch_size=batch_size)


__all__ = [
    "DEFAULT_CS",
    "PAPER_TRAIN_SIZES",
    "CurvePoint",
    "TaskSplits",
    "encoder_features",
    "learning_curve",
]
