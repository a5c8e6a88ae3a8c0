"""Configuration of the toy family: a bag-of-items session encoder, the smallest model a family can bring."""

from huggingface_hub.dataclasses import strict
from transformers import PreTrainedConfig


@strict
class ToyConfig(PreTrainedConfig):
    r"""Everything a toy model is built from.

    Args:
        num_items: item indices ``0..num_items-1``, ``0`` the padding (the processor's ``num_items``).
        hidden_size: the size of item and session embeddings.
        initializer_range: standard deviation of the item embeddings at initialisation.
    """

    model_type = "toy"
    num_items: int = 8
    hidden_size: int = 8
    initializer_range: float = 0.02

    def __post_init__(self, **kwargs):
        if self.num_items < 2:
            raise ValueError(f"num_items must be >= 2 (the padding and one item), got {self.num_items}")
        if self.hidden_size < 1:
            raise ValueError(f"hidden_size must be >= 1, got {self.hidden_size}")
        super().__post_init__(**kwargs)


__all__ = ["ToyConfig"]
