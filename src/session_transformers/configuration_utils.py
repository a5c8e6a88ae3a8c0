"""Checks every configuration of the package makes of its values, each raising a ``ValueError`` that names the
field and its value (the model configs call them from ``__post_init__``, the synthetic store's from
``validate``): the one wording of "must be >= 1", "must be in [0, 1]", "must be a multiple of" and "must be one
of" across the families."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def check_at_least(config: Any, minimum: float, *names: str) -> None:
    """Each field in ``names`` is at least ``minimum``."""
    for name in names:
        value = getattr(config, name)
        if value < minimum:
            raise ValueError(f"{name} must be >= {minimum}, got {value}")


def check_rates(config: Any, *names: str, open_top: bool = False) -> None:
    """Each field in ``names`` is a probability: in [0, 1] (in [0, 1) with ``open_top``, e.g. a dropout rate)."""
    for name in names:
        value = getattr(config, name)
        if not (0.0 <= value < 1.0 if open_top else 0.0 <= value <= 1.0):
            raise ValueError(f"{name} must be in [0, {'1)' if open_top else '1]'}, got {value}")


def check_multiple(config: Any, name: str, *divisors: str) -> None:
    """Field ``name`` is a multiple of each field in ``divisors`` (e.g. the hidden size of its attention heads)."""
    value = getattr(config, name)
    for divisor in divisors:
        if value % getattr(config, divisor):
            raise ValueError(f"{name} ({value}) must be a multiple of {divisor} ({getattr(config, divisor)})")


def check_choice(config: Any, name: str, choices: Iterable[Any]) -> None:
    """Field ``name`` is one of ``choices``."""
    choices = tuple(choices)
    if getattr(config, name) not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {getattr(config, name)!r}")


def check_token_id(config: Any, name: str = "pad_token_id", size: str = "vocab_size") -> None:
    """Token id field ``name``, when set, indexes the vocabulary (``0 <= id < size``)."""
    value, bound = getattr(config, name), getattr(config, size)
    if value is not None and not 0 <= value < bound:
        raise ValueError(f"{name} ({value}) must be in [0, {size}={bound})")


__all__ = ["check_at_least", "check_choice", "check_multiple", "check_rates", "check_token_id"]
