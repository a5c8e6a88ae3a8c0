"""Configuration of Product BYOL ("Constraining Latent Space to Improve Deep Self-Supervised e-Commerce Products
Embeddings for Downstream Tasks", ICLR 2021 submission): a TextCNN title encoder trained with BYOL on pairs of
products seen in the same session, plus a category-prediction loss."""

from __future__ import annotations

from huggingface_hub.dataclasses import strict
from transformers import PreTrainedConfig

from ...configuration_utils import check_at_least, check_rates, check_token_id


@strict
class ProductByolConfig(PreTrainedConfig):
    r"""Everything a Product BYOL model is built from. Defaults are the paper's Appendix A.1.

    The representation ``y`` used downstream is ``f(t(title))``: token embeddings ``t`` (``vocab_size`` x
    ``embedding_size`` = 30,000 x 512) -> a TextCNN ``f`` (Kim, 2014): one 1-D convolution per kernel size
    (2, 3, 4, 5 tokens) with ``num_filters`` = 128 filters each, ReLU, global max pooling over time, and the
    **concatenation** of the four pooled 128-d vectors, which is the paper's "output dimension of the encoder is
    512" (4 x 128 = 512; no extra layer). :attr:`hidden_size` is that size.

    Args:
        vocab_size: sentence-piece (Unigram) vocabulary size, special tokens included (paper: 30,000). Set it from
            the processor: ``len(processor.tokenizer)``.
        embedding_size: token embedding dimension (paper: 512).
        kernel_sizes: TextCNN kernel widths in tokens (paper: 2, 3, 4, 5).
        num_filters: filters per kernel width (paper: 128).
        encoder_dropout: dropout on the pooled representation during training (not in the paper: 0).
        projection_hidden_size: hidden width of the projector, predictor and category predictor MLPs. The paper
            writes 1025, certainly a typo for BYOL's power of two; 1024 as the issue states.
        projection_size: output of the projector ``g`` and predictor ``q`` (paper: 128).
        batch_norm_momentum: PyTorch momentum of the MLPs' BatchNorm running statistics. The paper gives a "decay
            rate of 0.9" (TensorFlow convention), i.e. PyTorch momentum 0.1.
        batch_norm_eps: BatchNorm epsilon.
        num_categories: classes of the category predictor ``h`` (set from the processor's category vocabulary,
            ``processor.num_categories``). 0 builds no category predictor; then ``alpha`` must be 1.
        alpha: weight of the BYOL loss in ``alpha * (L_BYOL(i->j) + L_BYOL(j->i)) + (1 - alpha) * (L_CE(i->j) +
            L_CE(j->i))`` (Eq. 4; the paper selects 0.9 on validation).
        tau_base: initial EMA rate of the target network, raised to 1 on BYOL's cosine schedule (paper: 0.996;
            :func:`~session_transformers.optim.byol_momentum`).
        sync_batch_norm: under several processes, normalise the MLPs' BatchNorms with the statistics of the
            global batch, as BYOL's cross-replica BN: ``torch.nn.SyncBatchNorm`` on NCCL,
            ``modeling_product_byol.cross_process_batch_norm`` (the same statistics through autograd-aware
            all-reduces) on other backends (gloo, CPU). Two processes then match one process with the whole batch
            within float tolerance (``benchmarks/process_parity.py``). **Default (False): per-process BatchNorm**, our documented choice: each process
            normalises over its own share of the batch (4096 / P pairs, large enough for stable statistics); after
            every optimiser step ``ProductByolForPreTraining.update_target`` averages the online running statistics
            over the processes before the EMA update copies them into the target, so every process holds identical
            weights, statistics and targets at every step (DDP also broadcasts rank 0's buffers at each forward).
            Per-process BN trains a slightly different objective from one large batch (measured at 4 pairs per
            process: loss 7% apart after 2 steps, shrinking as the share grows). The layer type changes no
            parameter or buffer name, so checkpoints load either way.
        initializer_range: std of the normal init of convolutions and linear layers (biases zero).
        embedding_init_std: std of the normal init of token embeddings (the padding row is zero).
        pad_token_id: id of the padding token (the processor's ``<pad>``, 0).
        num_labels: classes of :class:`ProductByolForSequenceClassification` (a ``PreTrainedConfig`` field).
        freeze_encoder: :class:`ProductByolForSequenceClassification` trains only its linear head (the paper's
            downstream protocol: a linear classifier on frozen embeddings). ``False`` fine-tunes the encoder too.
        classifier_dropout: dropout before the linear head of sequence classification.
    """

    model_type = "product_byol"

    vocab_size: int = 30_000
    embedding_size: int = 512
    kernel_sizes: list[int] | tuple[int, ...] = (2, 3, 4, 5)
    num_filters: int = 128
    encoder_dropout: float | int = 0.0
    projection_hidden_size: int = 1024
    projection_size: int = 128
    batch_norm_momentum: float = 0.1
    batch_norm_eps: float = 1e-5
    num_categories: int = 21
    alpha: float | int = 0.9
    tau_base: float = 0.996
    sync_batch_norm: bool = False
    initializer_range: float = 0.02
    embedding_init_std: float = 1.0
    pad_token_id: int | None = 0
    freeze_encoder: bool = True
    classifier_dropout: float | int = 0.0

    def __post_init__(self, **kwargs):
        self.kernel_sizes = [int(k) for k in self.kernel_sizes]
        self._check_values()
        super().__post_init__(**kwargs)

    @property
    def hidden_size(self) -> int:
        """Size of the representation ``y``: one max-pooled vector of ``num_filters`` per kernel size, concatenated."""
        return len(self.kernel_sizes) * self.num_filters

    def _check_values(self) -> None:
        check_at_least(
            self,
            1,
            "vocab_size",
            "embedding_size",
            "num_filters",
            "projection_hidden_size",
            "projection_size",
        )
        if not self.kernel_sizes or any(k < 1 for k in self.kernel_sizes):
            raise ValueError(f"kernel_sizes must be a non-empty list of widths >= 1, got {self.kernel_sizes}")
        check_at_least(self, 0, "num_categories")
        check_rates(self, "alpha", "tau_base", "batch_norm_momentum")
        check_rates(self, "encoder_dropout", "classifier_dropout", open_top=True)
        if self.num_categories == 0 and self.alpha != 1.0:
            raise ValueError(f"alpha={self.alpha} weighs a category loss but num_categories is 0")
        check_token_id(self)


__all__ = ["ProductByolConfig"]
