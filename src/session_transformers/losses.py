"""Shared losses: in-batch InfoNCE (UBM), the BYOL regression loss (Product BYOL) and the cosine hinge (CERES).

All take row-aligned embedding batches: ``query``/``anchor``/``online_pred`` ``(B, D)`` with their positives
``(B, D)`` in the same row order. Similarities are cosine similarities (embeddings are L2-normalised inside).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

Reduction = Literal["mean", "sum", "none"]


def _reduce(loss: torch.Tensor, reduction: Reduction) -> torch.Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def _check_pair(a: torch.Tensor, b: torch.Tensor, names: str) -> None:
    if a.dim() != 2 or a.shape != b.shape:
        raise ValueError(
            f"{names} must both be (B, D) with the same shape, got {tuple(a.shape)} and {tuple(b.shape)}"
        )


def info_nce(
    query: torch.Tensor,
    key: torch.Tensor,
    temperature: float = 0.05,
    *,
    negatives: torch.Tensor | None = None,
    decoupled: bool = False,
    reduction: Reduction = "mean",
    gather: bool = False,
) -> torch.Tensor:
    """In-batch InfoNCE: row ``i`` of ``query`` must pick row ``i`` of ``key`` among all keys.

    ``loss_i = -log( exp(s_ii / t) / sum_j exp(s_ij / t) )`` with ``s_ij = cos(query_i, key_j)``, where ``j``
    runs over the ``B`` keys and the ``M`` extra ``negatives`` (shared by every row). This is the cross-entropy
    of UBM Eq. (1)-(4) (temperature 0.05 in the paper) and SimCSE.

    Args:
        query: ``(B, D)`` anchors.
        key: ``(B, D)`` positives, aligned with ``query``; the other rows are the in-batch negatives.
        temperature: ``t > 0``; smaller sharpens the softmax.
        negatives: optional ``(M, D)`` extra negatives (e.g. hard negatives, or keys gathered from other processes).
        decoupled: drop the positive from the denominator (``sum_{j != i}``, as UBM's equations print it: the
            decoupled contrastive loss). The default is the usual cross-entropy.
        reduction: ``"mean"`` over the batch, ``"sum"`` or ``"none"`` (``(B,)``).
        gather: under ``torch.distributed``, the keys of every process are the negatives
            (:func:`~session_transformers.distributed.gather_with_grad`): with the data-parallel gradient average,
            P processes with batch B give the loss and gradients of one process with batch P * B.
    """
    _check_pair(query, key, "query and key")
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    offset = 0
    if gather:
        from .distributed import gather_with_grad

        key, offset = gather_with_grad(key)
    keys = key if negatives is None else torch.cat([key, negatives.to(key.dtype)], 0)  # (B' + M, D)
    logits = F.normalize(query, dim=-1) @ F.normalize(keys, dim=-1).t() / temperature  # (B, B' + M)
    targets = offset + torch.arange(query.shape[0], device=query.device)
    if not decoupled:
        return F.cross_entropy(logits, targets, reduction=reduction)
    positive = logits.gather(1, targets[:, None]).squeeze(1)  # (B,)
    others = logits.masked_fill(F.one_hot(targets, logits.shape[1]).bool(), float("-inf"))
    return _reduce(torch.logsumexp(others, 1) - positive, reduction)


def byol_loss(
    online_pred: torch.Tensor, target_proj: torch.Tensor, *, reduction: Reduction = "mean"
) -> torch.Tensor:
    """BYOL's normalised regression ``2 - 2 cos(q, z')`` (Product BYOL Eq. 1), averaged over the batch.

    ``target_proj`` is detached (BYOL's stop-gradient ``sg``): only the online network gets gradients. For the
    symmetric loss, call it twice with the two products swapped and add.

    Args:
        online_pred: ``(B, D)`` the online predictor's output ``q_theta(z)``.
        target_proj: ``(B, D)`` the target network's projection ``z'``.
    """
    _check_pair(online_pred, target_proj, "online_pred and target_proj")
    cos = F.cosine_similarity(online_pred, target_proj.detach(), dim=-1)  # (B,)
    return _reduce(2.0 - 2.0 * cos, reduction)


def cosine_hinge_loss(
    anchor: torch.Tensor,
    positive: torch.Tensor,
    negatives: torch.Tensor | None = None,
    margin: float = 0.3,
    *,
    reduction: Reduction = "mean",
) -> torch.Tensor:
    """Hinge on cosine similarities, the CERES fine-tuning loss (CERES Sec. 3.3).

    ``loss = mean over (i, n) of max(0, margin - cos(a_i, p_i) + cos(a_i, n))``.

    Args:
        anchor: ``(B, D)`` session embeddings ``s`` (after their linear map).
        positive: ``(B, D)`` the relevant item embedding ``y`` of each session.
        negatives: ``(B, M, D)`` negatives per row, ``(M, D)`` negatives shared by every row, or ``None`` for
            in-batch negatives (row ``i`` uses every ``positive_j``, ``j != i``; needs ``B >= 2``).
        margin: the required gap between the positive and each negative similarity. The default is
            ``CeresConfig.retrieval_margin``'s (0.3; the paper does not state its margin); the CERES model
            passes its config's value explicitly.
        reduction: ``"mean"`` over all (row, negative) pairs, ``"sum"``, or ``"none"`` (``(B, M)``; in-batch:
            ``(B, B - 1)``).
    """
    _check_pair(anchor, positive, "anchor and positive")
    a, p = F.normalize(anchor, dim=-1), F.normalize(positive, dim=-1)
    pos = (a * p).sum(-1, keepdim=True)  # (B, 1)
    if negatives is None:
        batch = a.shape[0]
        if batch < 2:
            raise ValueError("in-batch negatives need a batch of at least 2")
        sim = a @ p.t()  # (B, B)
        off_diagonal = ~torch.eye(batch, dtype=torch.bool, device=a.device)
        neg = sim[off_diagonal].view(batch, batch - 1)  # (B, B - 1)
    elif negatives.dim() == 2:
        neg = a @ F.normalize(negatives, dim=-1).t()  # (B, M)
    elif negatives.dim() == 3 and negatives.shape[0] == a.shape[0]:
        neg = torch.einsum("bd,bmd->bm", a, F.normalize(negatives, dim=-1))  # (B, M)
    else:
        raise ValueError(f"negatives must be (B, M, D) or (M, D), got {tuple(negatives.shape)}")
    return _reduce(torch.clamp(margin - pos + neg, min=0.0), reduction)


__all__ = ["byol_loss", "cosine_hinge_loss", "info_nce"]
