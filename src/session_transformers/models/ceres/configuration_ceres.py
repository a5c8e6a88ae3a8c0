"""Configuration of CERES (Graph Conditioned Encoder Representations for Session Data)."""

from __future__ import annotations

from huggingface_hub.dataclasses import strict
from transformers import PreTrainedConfig

from ...configuration_utils import check_at_least, check_choice, check_multiple, check_rates, check_token_id


@strict
class CeresConfig(PreTrainedConfig):
    r"""Configuration of a CERES model. Defaults are the paper's base size (Section 4.2: hidden 768, a 12-layer
    item Transformer encoder, a two-layer Graph Attention Network, a three-layer conditioned Transformer, about
    141M parameters) and its masking rates (Section 3.1).

    Args:
        vocab_size: token vocabulary size (set from the tokenizer: ``len(processor.tokenizer)``).
        hidden_size: width of every block.
        num_hidden_layers: layers of the **Item Transformer Encoder**.
        num_attention_heads: attention heads in the item encoder and the cross-attention Transformer.
        intermediate_size: feed-forward width of every Transformer layer.
        hidden_act: feed-forward activation.
        hidden_dropout_prob: dropout on embeddings and block outputs.
        attention_probs_dropout_prob: dropout on attention weights.
        max_position_embeddings: token positions of the item encoder (longest text sequence).
        layer_norm_eps: LayerNorm epsilon.
        initializer_range: std of the normal weight initialisation.
        pad_token_id: id of ``[PAD]``.
        use_gnn: build the **Position-Aware Graph Neural Network** (PGNN). ``False`` is the paper's
            "CERES w/o GNN" ablation: item embeddings become latent tokens directly, with no neighbourhood averaging.
        max_session_items: size of the learned **item position embeddings** (longest session, in items).
        sentence_pooling: how a text sequence's sentence embedding (the paper's ``Pool`` of Eq. 2) is pooled from
            its token outputs, for sessions and candidates alike: ``"mean"`` (the default: the masked mean of all
            its tokens, marker included) or ``"first"`` (the output at its ``[SEARCH]`` / ``[ATTRTYPE]`` marker).
            **Not the paper's choice**: the paper leaves ``Pool`` open in Eq. 2 and describes a query's or
            attribute's embedding as its marker's output. With the marker's output, the main job's CERES (1
            item-encoder layer of 32, 60 pretraining and 300 product-search steps) carries almost no content:
            after pretraining every candidate has cosine 0.946 +- 0.004 to a session, after fine-tuning the
            candidate embeddings vary along one direction (1.28 effective dimensions of 32) and product search
            scores MAP@32 3.08, below ranking by popularity (5.36); with mean pooling and nothing else changed,
            21.3 effective dimensions and MAP@32 32.3 (``benchmarks/results/pooling_spread.json``; BM25 on the
            same pool: 41.0). ``"first"`` is for an item encoder trained to put a sequence's content in its first
            token (a BERT checkpoint's ``[CLS]``-style pooling).
        num_gnn_layers: GAT layers of the PGNN (paper: 2).
        gnn_num_heads: attention heads per GAT layer (concatenated; must divide ``hidden_size``).
        num_edge_types: relation types of the session graph (``previous_query`` + the four product actions).
        num_cross_attention_layers: layers of the **Cross-Attention Transformer** (paper: 3).
        num_latent_tokens: ``K``, latent conditioning tokens per item. The paper does not state its value.
        mlm_probability: share of tokens masked in long sequences (product title + description).
        short_sequence_mask_probability: chance that a short sequence (query, attribute) is masked at all.
        short_token_mask_probability: share of a masked short sequence's tokens that are masked.
        mask_replace_probability: share of masked tokens replaced by ``[MASK]`` (BERT's 80%).
        random_replace_probability: share of masked tokens replaced by a random token (BERT's 10%).
        mlm_loss_weight: weight of the intra-item masked LM loss in pretraining.
        gmlm_loss_weight: weight of the graph-conditioned masked LM loss in pretraining.
        retrieval_use_conditioning: session embedding from graph-conditioned item embeddings (the paper's CERES);
            ``False`` uses the item encoder alone ("CERES w/o Cond" ablation).
        retrieval_projection_size: output size of the separate session and candidate linear maps. Both start
            as the same (truncated) identity map, so fine-tuning starts from the encoder's own similarity.
        retrieval_margin: margin of the cosine hinge loss (not stated in the paper).
    """

    model_type = "ceres"

    vocab_size: int = 30522
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    layer_norm_eps: float = 1e-12
    initializer_range: float = 0.02
    pad_token_id: int | None = 0
    tie_word_embeddings: bool = True
    use_gnn: bool = True
    max_session_items: int = 64
    sentence_pooling: str = "mean"
    num_gnn_layers: int = 2
    gnn_num_heads: int = 1
    num_edge_types: int = 5
    num_cross_attention_layers: int = 3
    num_latent_tokens: int = 4
    mlm_probability: float = 0.15
    short_sequence_mask_probability: float = 0.5
    short_token_mask_probability: float = 0.5
    mask_replace_probability: float = 0.8
    random_replace_probability: float = 0.1
    mlm_loss_weight: float = 1.0
    gmlm_loss_weight: float = 1.0
    retrieval_use_conditioning: bool = True
    retrieval_projection_size: int = 768
    retrieval_margin: float = 0.3

    @classmethod
    def from_bert_config(cls, bert_config, **kwargs) -> CeresConfig:
        """A config whose item encoder has the sizes of a BERT-family config (``BertConfig`` or any config with
        the same field names), for :meth:`CeresModel.load_item_encoder_from_bert`; ``kwargs`` set the rest.
        """
        fields = (
            "vocab_size",
            "hidden_size",
            "num_hidden_layers",
            "num_attention_heads",
            "intermediate_size",
            "hidden_act",
            "hidden_dropout_prob",
            "attention_probs_dropout_prob",
            "max_position_embeddings",
            "layer_norm_eps",
            "initializer_range",
            "pad_token_id",
        )
        values = {f: getattr(bert_config, f) for f in fields if getattr(bert_config, f, None) is not None}
        return cls(**{**values, **kwargs})

    def __post_init__(self, **kwargs):
        # Checked here rather than in a strict ``validate_*`` validator so that callers get a plain ValueError.
        self._check_values()
        super().__post_init__(**kwargs)

    def _check_values(self) -> None:
        check_at_least(
            self,
            1,
            *("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size"),
            *(
                "max_position_embeddings",
                "max_session_items",
                "num_gnn_layers",
                "gnn_num_heads",
                "num_edge_types",
            ),
            *("num_cross_attention_layers", "num_latent_tokens", "retrieval_projection_size"),
        )
        check_multiple(self, "hidden_size", "num_attention_heads", "gnn_num_heads")
        check_token_id(self)
        check_rates(
            self,
            *("mlm_probability", "short_sequence_mask_probability", "short_token_mask_probability"),
            *("mask_replace_probability", "random_replace_probability"),
            *("hidden_dropout_prob", "attention_probs_dropout_prob"),
        )
        if self.mask_replace_probability + self.random_replace_probability > 1.0:
            raise ValueError(
                f"mask_replace_probability ({self.mask_replace_probability}) + random_replace_probability "
                f"({self.random_replace_probability}) must not exceed 1"
            )
        check_choice(self, "sentence_pooling", ("first", "mean"))
        if self.retrieval_margin < 0:
            raise ValueError(f"retrieval_margin must be >= 0, got {self.retrieval_margin}")


__all__ = ["CeresConfig"]
