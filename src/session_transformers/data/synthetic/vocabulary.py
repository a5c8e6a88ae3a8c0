"""The words, attribute values and tokenizer the synthetic store builds its catalogue and queries from."""

from __future__ import annotations

import math
import re

# ----------------------------------------------------------------------------------------------------------
# Vocabulary. Real words for attribute values, pseudo-words (generated from the seed) for names and nouns.
# ----------------------------------------------------------------------------------------------------------

COLOURS = (
    "red",
    "blue",
    "green",
    "black",
    "white",
    "grey",
    "navy",
    "beige",
    "pink",
    "yellow",
    "orange",
    "purple",
    "brown",
    "teal",
    "silver",
    "gold",
)
SMALL_SIZES = ("small", "medium", "mini", "compact", "slim", "petite")
BULKY_SIZES = ("large", "xl", "xxl", "jumbo", "family", "king")
MATERIALS = (
    "cotton",
    "wool",
    "steel",
    "oak",
    "leather",
    "plastic",
    "glass",
    "bamboo",
    "linen",
    "ceramic",
    "aluminium",
    "rubber",
    "walnut",
    "silk",
)
STYLES = (
    "classic",
    "modern",
    "vintage",
    "sport",
    "minimalist",
    "rustic",
    "retro",
    "deluxe",
    "casual",
    "formal",
    "urban",
    "nordic",
)
FINISHES = ("matte", "glossy", "satin", "brushed", "polished", "textured", "lacquered")
PATTERNS = ("striped", "dotted", "checked", "floral", "paisley", "camo", "herringbone", "houndstooth")
"""Visual-only attribute values: they shape the image vector and appear in no text field."""
FILLERS = (
    "premium",
    "quality",
    "new",
    "best",
    "great",
    "durable",
    "everyday",
    "perfect",
    "gift",
    "home",
    "design",
    "edition",
    "pack",
    "set",
    "original",
    "value",
    "essential",
    "series",
    "pro",
    "plus",
    "lightweight",
    "stylish",
    "practical",
    "popular",
)
SENTENCES = (
    "ideal for daily use",
    "easy to clean",
    "ships in recyclable packaging",
    "a customer favourite",
    "built to last",
    "backed by our support team",
    "designed with care",
    "great value for money",
)
REFURB_MARKERS = ("refurbished", "renewed", "reconditioned")

ATTRIBUTE_VALUES: dict[str, tuple[str, ...]] = {
    "colour": COLOURS,
    "size": SMALL_SIZES + BULKY_SIZES,
    "material": MATERIALS,
    "style": STYLES,
    "finish": FINISHES,
}
"""Text attributes: named in the catalogue's ``attributes``, in descriptions and (some of them) in titles."""
OPTIONAL_ATTRIBUTES = ("material", "style", "finish")
FLAG_NAMES = ("counterfeit", "bulky", "refurbished")
"""Product-level binary flags, stored as catalogue columns ``flag_<name>``."""

_RESERVED = (
    set(
        COLOURS
        + SMALL_SIZES
        + BULKY_SIZES
        + MATERIALS
        + STYLES
        + FINISHES
        + PATTERNS
        + FILLERS
        + REFURB_MARKERS
    )
    | {w for s in SENTENCES for w in s.split()}
    | {"by", "in", "of", "the", "with"}
)
_CONSONANTS = "bdfgklmnprstvz"
_VOWELS = "aeiou"
_TOKEN = re.compile(r"[a-z0-9]+")
_EXP = [math.exp(0.8 * c) for c in range(16)]  # browsing weight of a closeness score
_QUERY_CACHE_SIZE = 100_000  # retrieval results kept (about 40 MB at most); cleared when full
_T0 = 1_700_000_000.0  # session start times fall in the 90 days after this instant
_ATTR_IDS = {v: k for k, v in enumerate(sorted({v for vs in ATTRIBUTE_VALUES.values() for v in vs}))}


def tokenize(text: str | None) -> list[str]:
    """Lowercase alphanumeric words of ``text`` (the tokenisation of retrieval, statistics and tests)."""
    return _TOKEN.findall(text.lower()) if text else []
