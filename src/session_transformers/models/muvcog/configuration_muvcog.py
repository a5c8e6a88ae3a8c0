"""Configuration of MUVCOG (multi-view contrastive graph network for multi-modal multi-query search sessions)."""

from __future__ import annotations

from huggingface_hub.dataclasses import strict
from transformers import PreTrainedConfig

from ...configuration_utils import check_at_least, check_choice

NEGATIVE_STRATEGIES = ("hard", "random")
VIEWS = ("both", "agv", "hlv", "gat")


@strict
class MuvcogConfig(PreTrainedConfig):
    r"""Configuration of a MUVCOG model (``../papers/muvcog.txt``). Defaults are the paper's where it gives one.

    Args:
        vocab_size: words of the processor's vocabulary (``len(processor.vocab)``).
        word_dim: input word vectors, 50 (Sec. 4.1: "50-dimensional vectors extracted from a word2vec model").
        image_dim: input image-query vectors, 512 (Sec. 4.1); any fixed size works, a learned projection maps
            them into the word space (Sec. 3.2, ``v_i = sigma(W^e v~_i + b)``).
        hidden_size: session embedding of one view, 32 (Sec. 4.1: "The session embedding size ... is 32 for a
            single view"); the concatenated embedding has ``2 * hidden_size`` with ``views="both"``.
        discriminator_hidden_sizes: hidden layers of the discriminator MLP before its 1-unit output: [64, 32]
            (Sec. 4.1: "three layers with [64, 32, 1] neurons").
        views: ``"both"`` (MUVCOG), ``"agv"`` or ``"hlv"`` (the single-view ablations of Figure 4; the
            contrast is then within the one view), or ``"gat"``: Figure 4's homogeneous baseline, one GAT layer
            over the AGV graph with node and edge types ignored (contrasted within its one view).
        negatives: ``"hard"`` (Sec. 3.4: among the batch sessions with no clicked item in common with the anchor,
            the one the discriminator scores highest) or ``"random"`` (a uniform draw among the same sessions,
            the ablation of Figure 5).
        hard_negative_warmup_steps: optimiser steps that draw random negatives before hard ones start; 150 by
            default, **not the paper's** schedule (0: hard from the first step). With the paper's schedule the
            hard negatives chosen by an untrained discriminator kept MUVCOG-M's pretraining loss near chance (2.80
            -> 2.61 over 600 steps, 12,000 synthetic sessions; still ~2.6 after 2,000) and its features below
            those of every other variant; after 150 random-negative steps the same objective learns (1.73 ->
            1.18) and its query-suggestion NDCG@10 rises by 0.025 (``benchmarks/results/muvcog_claims_warmup
            .json``). The trainers tell the model its step (``MuvcogForPreTraining.set_training_step``); ignored
            with ``negatives="random"``.
        agv_self_loops: each node also attends to itself among the neighbours of its own type (as in GAT [27]);
            the paper's Eq. (1) sums over neighbours only, which leaves a one-word session with no signal.
        agv_mask_empty_types: a node's type mix (Eq. 3) and each type's weight (Eq. 4, the mean over the nodes)
            use only the types the node has neighbours of; the paper's equations as printed (``False``) also mix in
            ``sigma(0 + bias)`` for every type a node has no neighbour of, the same constant for every such node.
        attention_negative_slope: LeakyReLU slope of the type-specific attention (Eq. 2), 0.2 as in GAT.
        hlv_undirected: the inter-query GCN (Eq. 7) sees refine edges both ways with self-loops, as the GCN of
            [20] does on an undirected graph; ``False`` keeps only ``q_{t-1} -> q_t`` (plus self-loops).
        projection_act: activation of the image projection (``sigma`` of Sec. 3.2; ``tanh`` keeps the signed
            range of word vectors).
        freeze_word_embeddings: keep the input word vectors fixed during pretraining (the paper initialises the
            nodes with pretrained word vectors and does not say whether they are trained).
        freeze_encoder: downstream heads train on frozen session features (Sec. 4: "we keep the extracted session
            embeddings fixed"); ``False`` fine-tunes the encoder too.
        query_suggestion_hidden_size: the one hidden layer of the query-suggestion head (Sec. 4.5 gives no size).
        query_suggestion_copy: **not in the paper; on by default.** The query-suggestion head also scores the
            session's own words: three learned weights (zero at the start) on whether the session holds a word,
            ``log(1 + n)`` of the ``n`` queries holding it, and whether its last query holds it, added to the
            head's word scores, as the copy mechanisms of session-based query suggestion do (ACG, the paper's
            [8]). Next queries often reuse the session's words, and the paper's head over a 64-d session
            embedding cannot say which: on the reformulation-mix store it loses to ranking the session's own
            words by 0.13-0.17 NDCG@10, and the copy head brings it level (the MUVCOG claims benchmark,
            ``benchmarks/results/muvcog_claims_mix_seed*.json``). ``trainers/finetune.py`` then scales the
            trained weights by the factor with the best validation NDCG@10
            (:func:`~session_transformers.models.muvcog.tasks.choose_copy_scale`). ``False``: the paper's head.
        num_items: catalogue size of the click-prediction head (set by the recipe from the processor).
        click_hidden_size: width of the two towers of the click-prediction head.
        click_use_session_features: concatenate the frozen session embedding into the query tower (Table 2's
            MUVCOG rows); ``False`` is the vanilla click model.
        initializer_range: unused by Glorot init (kept for transformers' generic init of unknown modules).
    """

    model_type = "muvcog"

    vocab_size: int = 2
    word_dim: int = 50
    image_dim: int = 512
    hidden_size: int = 32
    discriminator_hidden_sizes: list[int] | tuple[int, ...] = (64, 32)
    views: str = "both"
    negatives: str = "hard"
    hard_negative_warmup_steps: int = 150
    agv_self_loops: bool = True
    agv_mask_empty_types: bool = True
    attention_negative_slope: float = 0.2
    hlv_undirected: bool = True
    projection_act: str = "tanh"
    freeze_word_embeddings: bool = False
    freeze_encoder: bool = True
    query_suggestion_hidden_size: int = 128
    query_suggestion_copy: bool = True
    num_items: int = 0
    click_hidden_size: int = 64
    click_use_session_features: bool = True
    initializer_range: float = 0.02

    def __post_init__(self, **kwargs):
        self.discriminator_hidden_sizes = list(self.discriminator_hidden_sizes)
        self._check_values()
        super().__post_init__(**kwargs)

    @property
    def session_embedding_size(self) -> int:
        """Width of ``MuvcogModelOutput.session_embedding``: both views concatenated, or the one view."""
        return self.hidden_size * (2 if self.views == "both" else 1)

    def _check_values(self) -> None:
        check_at_least(
            self, 1, "vocab_size", "word_dim", "image_dim", "hidden_size", "query_suggestion_hidden_size"
        )
        check_at_least(self, 1, "click_hidden_size")
        check_at_least(self, 0, "num_items")
        if any(int(h) < 1 for h in self.discriminator_hidden_sizes):
            raise ValueError(
                f"discriminator_hidden_sizes must be >= 1, got {self.discriminator_hidden_sizes}"
            )
        check_choice(self, "views", VIEWS)
        check_choice(self, "negatives", NEGATIVE_STRATEGIES)
        if self.hard_negative_warmup_steps < 0:
            raise ValueError(
                f"hard_negative_warmup_steps must be >= 0, got {self.hard_negative_warmup_steps}"
            )
        if self.projection_act not in ("tanh", "sigmoid", "relu", "identity"):
            raise ValueError(
                f"projection_act must be tanh, sigmoid, relu or identity, got {self.projection_act!r}"
            )
        if self.attention_negative_slope < 0:
            raise ValueError(f"attention_negative_slope must be >= 0, got {self.attention_negative_slope}")


__all__ = ["MuvcogConfig"]
