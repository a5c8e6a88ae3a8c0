"""CERES's training recipe: graph-conditioned masked-LM pretraining and the three retrieval tasks.

Training protocol: the paper's (Section 4.2, :data:`PRETRAIN_PROTOCOL` for pretraining and
:data:`FINETUNE_PROTOCOL` for every retrieval task), the trainers' defaults; ``--model ceres --help`` shows
them. CERES's own flags (``--num-candidates``, ``--eval-pool``, ``--pretrain-corpus``,
``--item-encoder-from``) are added to both trainers' parsers by this recipe (:func:`add_ceres_arguments`).

Pretraining (``--model ceres``): a WordPiece CeresProcessor is fitted on the catalogue text and the queries of
the training sessions (or loaded from ``--processor-path``; or, with ``--item-encoder-from PATH``, the BERT
checkpoint's tokenizer plus the CERES special tokens, its encoder sizes and its weights); batches are
sessions, encoded by the processor and masked by CeresMaskingCollator; the loss is the model's MLM +
graph-conditioned MLM loss. ``--pretrain-corpus products`` trains on one-product "sessions" (every catalogue
product alone): with ``gmlm_loss_weight=0`` and ``use_gnn=False`` that is plain MLM on product text (the
paper's Product-BERT baseline).

Evaluation of pretraining: the masked-LM loss. Its per-example output is **one element per batch** (the
batch's summed token cross-entropy and its masked-token count), so ``summarize`` gives the token-weighted mean
over the split (validation, and test at the end). Under several processes ``gather_for_metrics`` may trim the
last, padded batch's values; the figures are then the mean over the batches kept. Eval masks are fixed:
validation and test rows carry ``evaluate`` and are masked by a CeresMaskingCollator with a ``seed`` (each
batch's masks are a function of the seed and its session ids), so two evaluations of the same weights give the
same loss. Training masks are seeded too (another seed, folded with the epoch: ``CeresPretrainCollator``), so a
resumed run masks exactly as the uninterrupted one, and neither draws from the global RNG (dropout's).
``PreparedData.eval_collate_fn`` is that eval collator. The validation ``loss`` selects the checkpoint
(``--select-best loss``, lower is better).

Where the sessions come from and how they are split: ``models/ceres/sources.py``. The retrieval tasks (fine-tuning,
the evaluation pools, the metrics and the BM25 / popularity baselines): ``models/ceres/retrieval.py``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch

from ...protocol import TrainingProtocol
from ...trainer_utils import (
    PreparedData,
    QuickstartJob,
    Recipe,
    Task,
    limit_splits,
)
from .processing_ceres import (
    CeresMaskingCollator,
)
from .retrieval import (
    EVAL_POOLS,
    _ceres_ranks,
    _ceres_retrieval_summarize,
    _prepare_ceres_retrieval,
    retrieval_baselines,
)
from .sources import _bert_initializer, _ceres_config, _ceres_processor, _ceres_rows, ceres_source


class CeresPretrainCollator:
    """Pretraining rows -> masked batches: training rows through ``train`` (a seeded CeresMaskingCollator whose
    masks are a function of the seed, the epoch and the batch's sessions, so that a resumed run masks exactly as
    the uninterrupted one), rows with ``evaluate`` set through ``evaluation`` (fixed masks: a seeded collator that
    stays at epoch 0), so one ``collate_fn`` serves both loaders. ``set_epoch`` reaches only the training one."""

    def __init__(self, train: CeresMaskingCollator, evaluation: CeresMaskingCollator):
        self.train, self.evaluation = train, evaluation

    def set_epoch(self, epoch: int) -> None:
        self.train.set_epoch(epoch)

    def __call__(self, rows: list[dict]):
        return (self.evaluation if rows and rows[0].get("evaluate") else self.train)(rows)


def _prepare_ceres_pretrain(args: argparse.Namespace) -> PreparedData:
    train, validation, test, catalogue, description = ceres_source(args)
    processor = _ceres_processor(args, train, catalogue)
    config = _ceres_config(args, processor)
    if args.pretrain_corpus == "products":
        # Product-BERT corpus: every catalogue product alone, as a one-view session.
        train = [
            {
                "session_id": f"product-{i}",
                "events": [
                    {
                        "action": "view",
                        "timestamp": 0.0,
                        "subject": "item",
                        "item_id": i,
                        "query": None,
                        "image": None,
                    }
                ],
            }
            for i in catalogue
        ]
        description += "; pretraining corpus: each catalogue product alone (product text only)"
    train, validation, test = limit_splits(args, train, validation, test)
    eval_collate = CeresMaskingCollator(processor, catalogue, config, seed=args.seed)
    # training masks: seeded apart from the evaluation masks (another seed), per epoch and batch
    train_collate = CeresMaskingCollator(processor, catalogue, config, seed=args.seed + 1)
    collate = CeresPretrainCollator(train_collate, eval_collate)
    test_rows = _ceres_rows(test, evaluate=True)
    return PreparedData(
        processor,
        _ceres_rows(train),
        _ceres_rows(validation, evaluate=True) if validation else None,
        collate,
        config,
        description,
        init_weights=_bert_initializer(args),
        test_dataset=test_rows,
        eval_collate_fn=eval_collate,
    )


class CeresPretrainTask(Task):
    """CERES pretraining: its output has no ``logits``, so the eval step reads the masked-position logits."""

    def eval_step(self, model: torch.nn.Module, batch: dict) -> dict[str, torch.Tensor]:
        labels = batch[self.label_names[0]]
        out = model(**batch)
        return self.per_example((out.mlm_logits, out.gmlm_logits), labels)


def _ceres_mlm_per_batch(logits: Any, labels: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per batch (1 element each): summed token cross-entropy and hits of both heads, and the masked count.

    ``logits`` = ``(mlm_logits, gmlm_logits, ...)``, each ``(M, V)`` at the ``M`` labelled positions.
    """
    target = labels[labels != -100]
    out = {"num_masked": torch.tensor([float(target.numel())], device=labels.device)}
    for name, lg in zip(("mlm", "gmlm"), logits[:2], strict=True):
        if target.numel():
            loss = torch.nn.functional.cross_entropy(lg.float(), target, reduction="sum")
            hits = (lg.argmax(-1) == target).sum().float()
        else:
            loss = hits = lg.new_zeros(())
        out[f"{name}_loss_sum"] = loss.detach().reshape(1)
        out[f"{name}_correct"] = hits.reshape(1).float()
    return out


def _ceres_mlm_summarize(gathered: dict[str, torch.Tensor]) -> dict[str, float]:
    n = float(gathered["num_masked"].sum())
    out = {"num_masked_tokens": n}
    for name in ("mlm", "gmlm"):
        out[f"{name}_loss"] = float(gathered[f"{name}_loss_sum"].sum()) / max(n, 1.0)
        out[f"{name}_accuracy"] = 100.0 * float(gathered[f"{name}_correct"].sum()) / max(n, 1.0)
    out["loss"] = out["mlm_loss"] + out["gmlm_loss"]
    return out


def _ceres_pretrain_task() -> Task:
    from transformers import AutoModelForPreTraining

    return CeresPretrainTask(
        _prepare_ceres_pretrain, AutoModelForPreTraining, _ceres_mlm_per_batch, _ceres_mlm_summarize
    )


PRETRAIN_PROTOCOL = TrainingProtocol(
    optimizer="adamw",
    learning_rate=3e-5,
    weight_decay=0.01,
    lr_scheduler_type="linear",
    warmup_ratio=0.01,
    min_learning_rate=1e-5,
    batch_size=512,
    num_epochs=1.0,
    max_grad_norm=1.0,
    select_best="loss",
    greater_is_better=False,
    source="CERES paper, Sec. 4.2, pretraining: Adam, peak lr 3e-5, linear warm-up over 1% of the steps, then "
    "linear decay to 1e-5; batch 512 sessions, the global batch of the paper's 16-GPU run (under N processes "
    "pass --batch-size 512/N); 300,000 steps, about a third of a pass over its 468M sessions (here one pass; "
    "--max-steps 300000 for the paper's length). Not in the paper: decoupled weight decay 0.01 and gradient "
    "clipping at 1.0, the defaults of Megatron-LM, which the paper built on; the checkpoint with the lowest "
    "validation loss is kept",
)
"""CERES pretraining (the paper's Section 4.2): "trained for 300,000 steps with a batch size of 512 sessions. The
parameters are updated with Adam, with peak learning rate as 3e-5, 1% steps for linear warm-up, and linear
learning rate decay after warm-up until the learning rate reaches the minimum 1e-5", on 16 GPUs (so 512 is the
global batch). Weight decay and clipping are not stated: Megatron-LM's defaults (``--weight-decay 0.01``,
``--clip-grad 1.0``, Adam betas 0.9/0.999; its Adam decouples the decay, as AdamW). ``num_epochs=1`` stands in for
the 300,000 steps: the protocol counts passes, and the paper's third of a pass reflects its 468M-session corpus,
not a length that carries over to a smaller one."""

FINETUNE_PROTOCOL = PRETRAIN_PROTOCOL.replace(
    learning_rate=5e-5,
    batch_size=64,
    num_epochs=10.0,
    select_best="MAP@1",
    greater_is_better=True,
    source="CERES paper, Sec. 4.2, fine-tuning: 10 epochs; peak lr chosen from [1e-4, 1e-5, 5e-5, 5e-6] to "
    "maximise validation MAP@1 (the paper does not say which won; here 5e-5), the checkpoint with the best "
    "validation MAP@1 kept; the rest of the optimiser as in pretraining (Adam, 1% linear warm-up, linear decay "
    "to 1e-5: with --learning-rate 1e-5 or 5e-6 also lower --min-learning-rate, e.g. to 0). Not in the paper: "
    "batch 64 sessions (in-batch negatives), weight decay 0.01 and clipping at 1.0 (Megatron-LM's defaults, as "
    "in pretraining)",
)
"""CERES fine-tuning on each retrieval task (the paper's Section 4.2): "we finetune them for 10 epochs with a
maximal learning rate chosen from [1e-4, 1e-5, 5e-5, 5e-6] to maximize MAP@1 on the validation set. The rest of
the configuration of optimizers is the same as in pretraining." The paper's splits are 30,000 training, 3,000
validation and 5,000 test sessions per task. The batch size is not stated: 64 is this recipe's choice."""


def add_ceres_arguments(parser) -> None:
    """CERES's own flags, on both trainers' parsers (``Recipe.add_arguments``)."""
    parser.add_argument(
        "--num-candidates",
        type=int,
        default=100,
        help="retrieval eval: candidate pool size (all eval targets, topped up to this) with --eval-pool random, "
        "and for REES46 product search (no search results) with --eval-pool paper",
    )
    parser.add_argument(
        "--eval-pool",
        choices=EVAL_POOLS,
        default="paper",
        help="retrieval eval pool, one per split (validation, test) from its own sessions: the paper's (product "
        "search: purchased products + the search engine's first 10 results per search; query search: all last "
        "queries; entity linking: every product attribute) or the eval targets topped up with random "
        "candidates to --num-candidates",
    )
    parser.add_argument(
        "--pretrain-corpus",
        choices=("sessions", "products"),
        default="sessions",
        help="pretraining on sessions, or on each product alone (Product-BERT)",
    )
    parser.add_argument(
        "--item-encoder-from",
        default=None,
        metavar="PATH",
        help="a BERT-family checkpoint folder on disk; its tokenizer (plus the CERES special tokens), its encoder "
        "sizes and its weights initialise the item encoder (ignored with --init-from)",
    )


def _ceres_retrieval_task(task: str) -> Task:
    from ...auto import AutoModelForSessionRetrieval

    return Task(
        lambda args: _prepare_ceres_retrieval(task, args),
        AutoModelForSessionRetrieval,
        _ceres_ranks,
        _ceres_retrieval_summarize,
        protocol=FINETUNE_PROTOCOL,
        baseline=retrieval_baselines,
    )


_QUICKSTART_SIZES = (
    "--config",
    "hidden_size=32",
    "num_hidden_layers=1",
    "num_attention_heads=2",
    "intermediate_size=64",
    "num_cross_attention_layers=1",
    "retrieval_projection_size=32",
)
_FULL_RUN = ("--num-sessions", "3000", "--max-steps", "150", "--batch-size", "16", "--learning-rate", "5e-4")
"""The ``--full`` main job's pretraining and fine-tuning length (each 150 steps)."""
_FULL_SIZES = (
    "--config",
    "hidden_size=64",
    "num_hidden_layers=2",
    "num_attention_heads=2",
    "intermediate_size=128",
    "num_cross_attention_layers=1",
    "retrieval_projection_size=64",
)
QUICKSTART = QuickstartJob(
    pretrain_stages=(
        (
            "--num-sessions",
            "3000",
            "--max-steps",
            "60",
            "--batch-size",
            "16",
            "--learning-rate",
            "1e-3",
            "--max-eval-samples",
            "64",
            *_QUICKSTART_SIZES,
        ),
    ),
    finetune_task="product_search",
    finetune_args=(
        "--num-sessions",
        "3000",
        "--max-steps",
        "300",
        "--batch-size",
        "16",
        "--learning-rate",
        "1e-3",
        "--eval-steps",
        "100",
    ),
    metrics=("MAP@1", "MAP@32", "Recall@32", "Recall@64"),
    full_pretrain_stages=((*_FULL_RUN, *_FULL_SIZES),),
    full_finetune_args=_FULL_RUN,
)
"""CERES in the main job (``trainers/quickstart.py``): a small CERES (1 item-encoder layer of 32) pretrained 60
steps with masked LM + graph-conditioned masked LM on the synthetic store, then fine-tuned 300 steps on product
search with ``Trainer`` (validation MAP@1 every 100 steps selects the weights). Per step this size costs about
half of the earlier 2 x 64 one (``--full``: 150 + 150 steps). On the paper's hard-negative pool (1,045 products,
99 test sessions) it scores test MAP@32 32.28 / Recall@64 77.78: far above ranking by popularity (5.36 / 29.29),
below BM25 of the session's own queries (40.95 / 95.96; ``retrieval_baselines``). With the paper's marker-token
pooling (``--config sentence_pooling=first``) it scored 3.08 / 24.24 (``CeresConfig.sentence_pooling``)."""

RECIPE = Recipe(
    pretrain=_ceres_pretrain_task(),
    finetune={t: _ceres_retrieval_task(t) for t in ("product_search", "query_search", "entity_linking")},
    datasets=("synthetic", "rees46", "homedepot"),
    default_data_path={
        "rees46": str(Path("..") / "shared" / "data" / "rees46"),
        "homedepot": str(Path("..") / "shared" / "data" / "homedepot"),
    },
    protocol=PRETRAIN_PROTOCOL,
    add_arguments=add_ceres_arguments,
    quickstart=QUICKSTART,
)
"""``trainers/pretrain.py --model ceres`` and ``trainers/finetune.py --model ceres --task <task>``."""

__all__ = [
    "FINETUNE_PROTOCOL",
    "PRETRAIN_PROTOCOL",
    "QUICKSTART",
    "RECIPE",
    "CeresPretrainCollator",
    "CeresPretrainTask",
    "add_ceres_arguments",
]
