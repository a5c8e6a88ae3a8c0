"""Configuration of UBM (User Behavior Model: two-level Transformer, two-stage contrastive pretraining)."""

from __future__ import annotations

from huggingface_hub.dataclasses import strict
from transformers import BertConfig, PreTrainedConfig

from ...configuration_utils import check_at_least, check_choice, check_multiple, check_rates, check_token_id

_BERT_FIELDS = (
    "vocab_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "hidden_act",
    "hidden_dropout_prob",
    "attention_probs_dropout_prob",
    "max_position_embeddings",
    "type_vocab_size",
    "layer_norm_eps",
    "initializer_range",
    "pad_token_id",
)


@strict
class UbmConfig(PreTrainedConfig):
    r"""Configuration of a UBM model (Li et al., "Contrastive Pre-training for Deep Session Data Understanding").

    Defaults are the paper's (Section 4.2): both the **Interaction Encoder** (a BERT) and the **Session Encoder**
    (a Transformer over interaction embeddings plus sinusoidal positions) have 4 layers of hidden size 256,
    dropout 0.1 (the *Dropout Masking* augmentation), temperature 0.05. The BERT sizes not stated in the paper
    (4 heads, feed-forward 1024) are those of BERT-mini (Turc et al. 2019), the paper's 4-layer / 256 baseline and
    starting point.

    Args:
        vocab_size: token vocabulary (set from the processor: ``len(processor.tokenizer)``).
        hidden_size: width of both encoders (paper: 256).
        num_hidden_layers: layers of the Interaction Encoder (paper: 4).
        num_attention_heads: heads of the Interaction Encoder (BERT-mini: 4).
        intermediate_size: feed-forward width of the Interaction Encoder (BERT-mini: 1024).
        hidden_act: feed-forward activation of both encoders (BERT's ``gelu``).
        hidden_dropout_prob: dropout of both encoders and the task heads (paper: 0.1, Sec. 4.2.1).
        attention_probs_dropout_prob: attention dropout of both encoders (paper: 0.1).
        max_position_embeddings: token positions of the Interaction Encoder (an interaction has at most 64 tokens,
            Sec. 4.1.1; a BERT checkpoint brings its own 512).
        type_vocab_size: BERT segment types (only type 0 is used).
        layer_norm_eps: LayerNorm epsilon of both encoders.
        initializer_range: std of the normal weight initialisation (BERT's 0.02).
        pad_token_id: id of ``[PAD]``.
        interaction_pooling: the interaction embedding ``b'``: ``"cls"``, the Interaction Encoder's ``[CLS]``
            output (the paper's, Sec. 3.1.2), or ``"mean"``, the mean of its token outputs. A small encoder
            trained from scratch (no BERT to start from) starts with near-identical ``[CLS]`` outputs and its
            contrastive losses can sit at chance for a long time; mean pooling starts informative.
        num_session_layers: layers of the Session Encoder (paper: 4). ``0`` leaves the interaction embeddings as
            they are, so the session embedding is their mean (with ``use_session_positions=False``: the paper's
            mean-pooled text-encoder baselines, BERT_mini and others, Sec. 4.1.3).
        use_session_positions: add sinusoidal positions to the interaction embeddings (the paper's).
        session_num_attention_heads: heads of the Session Encoder (not stated; 4, as the Interaction Encoder).
        session_intermediate_size: feed-forward width of the Session Encoder (not stated; 4 x hidden).
        max_interactions: interactions per session the Session Encoder takes (paper: the last 32, Sec. 4.1.1).
        temperature: InfoNCE temperature of losses 1-4 (paper: 0.05).
        decoupled_contrastive: leave the positive out of the InfoNCE denominator (``sum_{j != i}``, as Eq. 1-4
            are printed). The default is the usual cross-entropy form of SimCSE, which the paper builds on; the
            printed equations also mix up their indices, so they are read as the standard loss.
        use_loss1: pretraining loss 1, *Item Token Masking* (stage 1). ``False``: the paper's UBM_no_loss1.
        use_loss2: pretraining loss 2, *Next Item Pairing* (stage 1). ``False``: UBM_no_loss2.
        use_loss3: pretraining loss 3, *Behaviour Reordering* (stage 2). ``False``: UBM_no_loss3.
        use_loss4: pretraining loss 4, *Action and Item Token Masking* (stage 2). ``False``: UBM_no_loss4.
        mask_token_probability: share of maskable tokens replaced by ``[MASK]`` (paper, Sec. 3.3.2: 10%).
        random_token_probability: share of maskable tokens replaced by a random token (paper: 5%); the other
            tokens are kept (15% are "masked" in all, as BERT's MLM).
        next_item_similarity: NIP score of a session and a candidate: ``"dot"`` (the paper's ``h' V^T``) or
            ``"cosine"`` (cosine divided by ``next_item_temperature``).
        next_item_temperature: divisor of the cosine NIP score.
        remaining_length_mean: training mean of the RLP target; the RLP head predicts the standardised length
            and reports it in interactions (set by the recipe from the training split; not in the paper).
        remaining_length_std: training standard deviation of the RLP target (as above).
        checkpoint_chunk_size: under activation checkpointing (``model.activation_checkpointing_enable()``,
            ``--activation-checkpointing`` in the trainers), the Interaction Encoder runs as a whole on chunks of
            this many interaction rows and keeps only each chunk's output, recomputing the chunk in the backward
            pass: a batch's activation memory is then one chunk's, whatever the batch (not in the paper).
    """

    model_type = "ubm"

    vocab_size: int = 30522
    hidden_size: int = 256
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    intermediate_size: int = 1024
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 64
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    initializer_range: float = 0.02
    pad_token_id: int | None = 0
    interaction_pooling: str = "cls"
    num_session_layers: int = 4
    use_session_positions: bool = True
    session_num_attention_heads: int = 4
    session_intermediate_size: int = 1024
    max_interactions: int = 32
    temperature: float = 0.05
    decoupled_contrastive: bool = False
    use_loss1: bool = True
    use_loss2: bool = True
    use_loss3: bool = True
    use_loss4: bool = True
    mask_token_probability: float = 0.10
    random_token_probability: float = 0.05
    next_item_similarity: str = "dot"
    next_item_temperature: float = 0.05
    remaining_length_mean: float = 0.0
    remaining_length_std: float = 1.0
    checkpoint_chunk_size: int = 512

    @classmethod
    def from_bert_config(cls, bert_config, **kwargs) -> UbmConfig:
        """A config whose Interaction Encoder has the sizes of a BERT-family config (e.g. MiniLM's); the Session
        Encoder takes the same width. ``kwargs`` set the rest."""
        values = {
            f: getattr(bert_config, f) for f in _BERT_FIELDS if getattr(bert_config, f, None) is not None
        }
        return cls(**{**values, **kwargs})

    def interaction_encoder_config(self) -> BertConfig:
        """The ``BertConfig`` of the Interaction Encoder."""
        # an encoder: no key/value cache (it would also be switched off, with a warning, under activation checkpointing)
        return BertConfig(**{f: getattr(self, f) for f in _BERT_FIELDS}, use_cache=False)

    def __post_init__(self, **kwargs):
        self._check_values()
        super().__post_init__(**kwargs)

    def _check_values(self) -> None:
        check_at_least(
            self,
            1,
            *("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size"),
            *("max_position_embeddings", "session_num_attention_heads", "session_intermediate_size"),
            *("max_interactions", "checkpoint_chunk_size"),
        )
        check_at_least(self, 0, "num_session_layers")
        check_multiple(self, "hidden_size", "num_attention_heads", "session_num_attention_heads")
        check_token_id(self)
        check_rates(
            self,
            *("hidden_dropout_prob", "attention_probs_dropout_prob"),
            *("mask_token_probability", "random_token_probability"),
        )
        if self.mask_token_probability + self.random_token_probability > 1.0:
            raise ValueError("mask_token_probability + random_token_probability must not exceed 1")
        if self.temperature <= 0 or self.next_item_temperature <= 0:
            raise ValueError("temperature and next_item_temperature must be positive")
        check_choice(self, "interaction_pooling", ("cls", "mean"))
        check_choice(self, "next_item_similarity", ("dot", "cosine"))
        if self.remaining_length_std <= 0:
            raise ValueError(f"remaining_length_std must be positive, got {self.remaining_length_std}")

    @property
    def active_losses(self) -> tuple[int, ...]:
        """The pretraining losses switched on (1-4)."""
        return tuple(i for i in (1, 2, 3, 4) if getattr(self, f"use_loss{i}"))


__all__ = ["UbmConfig"]
