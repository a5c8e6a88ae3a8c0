"""The synthetic store's configuration and the features of its labelled sessions and catalogue."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from datasets import Features, List, Value

from ...configuration_utils import check_at_least, check_choice, check_rates
from ..schema import (
    CATALOGUE_FEATURES,
    SESSION_FEATURES,
)
from .vocabulary import FLAG_NAMES

# ----------------------------------------------------------------------------------------------------------
# Schema of the synthetic records
# ----------------------------------------------------------------------------------------------------------

_NAME_VALUE = List({"name": Value("string"), "value": Value("string")})
LABEL_FEATURES = {
    "purchased": Value("bool"),
    "purchased_item_id": Value("string"),
    "intent_leaf": Value("string"),
    "intent_parent": Value("string"),
    "intent_category": List(Value("string")),
    "intent_attributes": _NAME_VALUE,
    "intent_brand": Value("string"),
    "purchased_attributes": _NAME_VALUE,
    "clicked_item_ids": List(Value("string")),
    "next_query": Value("string"),
}
"""Labels emitted with every synthetic session (hidden intent and outcomes)."""

SYNTHETIC_SESSION_FEATURES = Features({**SESSION_FEATURES, "labels": LABEL_FEATURES})
"""Schema of a synthetic session: :data:`SESSION_FEATURES` plus a ``labels`` struct."""

CATALOGUE_LABEL_FEATURES = {
    "pattern": Value("string"),
    "popularity": Value("float64"),
    **{f"flag_{name}": Value("bool") for name in FLAG_NAMES},
}
"""Synthetic-only product columns: the visual ``pattern``, the ``popularity`` and one boolean per flag."""

SYNTHETIC_CATALOGUE_FEATURES = Features({**CATALOGUE_FEATURES, **CATALOGUE_LABEL_FEATURES})
"""Schema of a synthetic catalogue record: :data:`CATALOGUE_FEATURES` plus the hidden visual ``pattern``, the
``popularity`` (sums to 1) and one boolean column per product flag."""


QUERY_REFORMULATIONS = ("mix", "refine")
"""Values of :attr:`SyntheticStoreConfig.query_reformulation`."""

_MIX_RATES = ("specialization_rate", "generalization_rate", "substitution_rate", "new_intent_rate")


@dataclass
class SyntheticStoreConfig:
    """Every size, rate and switch of the synthetic store.

    Args:
        seed: seed of the catalogue and of every session (session ``i`` uses ``(seed, i)``).
        num_sessions: sessions in the default dataset.
        num_departments, num_subcategories, num_leaves: the category tree (departments x subcategories per
            department x leaves per subcategory leaf categories, three levels).
        items_per_leaf: products per leaf category.
        nouns_per_leaf: head nouns of each leaf.
        num_brands: brands in total.
        shared_brand_fraction: share of brands sold in two distant departments (a brand-only query is ambiguous).
        brands_per_leaf: department brands offered in each leaf.
        image_dim: length of the image vectors.
        image_noise: per-product image noise, relative to the unit-norm prototypes.
        image_query_noise: noise added to a viewed product's image to make an image query.
        zipf_exponent: exponent of the Zipf popularity of products.
        misspelling_rate: probability that a title or query word is misspelt.
        flag_noise: probability that a product flag is flipped (label noise).
        counterfeit_rate, refurbished_rate: mean rates of those flags (each leaf draws its own rate around them).
        description_rate, brand_rate: probabilities that a product has a description and a brand.
        purchase_rate: share of sessions ending with a purchase.
        abandon_cart_rate: probability that a session without purchase adds a well-matching product to the cart.
        product_query_rate, image_query_rate: share of sessions in a "search similar" mode that issue product
            queries (words cut from a viewed title) or image queries (a viewed image plus noise).
        mean_session_length, session_length_sigma: a lognormal length target (mean and log-space spread).
        max_session_length: hard cap on events per session.
        want_attribute_rate, want_pattern_rate, brand_intent_rate: how much of the ideal product the hidden intent
            keeps (each attribute, the visual pattern, the brand).
        new_query_rate: per-step probability of issuing a new query while browsing.
        query_reformulation: how a keyword query follows the session's previous one. ``"mix"`` (default): the
            reformulation mix of web and site search logs, drawn per query with the four rates below, the rest
            (``1 -`` their sum) a fresh wording of the same intent; a misspelt word of the previous query is
            first corrected with probability 0.7. ``"refine"``: the store before the mix (kept so that figures
            taken on it reproduce): add a word half the time, drop or swap one otherwise, a fresh query 15% of
            the time; there 86% of next queries are the previous one plus at most one word. See the package
            docstring (``session_transformers.data.synthetic``) for the sources of the rates.
        specialization_rate: add one word of the intent the previous query lacks (a narrower query).
        generalization_rate: drop one word, or widen a one-word query to its parent category's word.
        substitution_rate: replace one word by another of its kind: the leaf's other noun (a synonym), another
            value of the same attribute offered in the leaf, another brand of the leaf.
        new_intent_rate: a query for a related need (a sibling leaf category under the intent's parent: its noun,
            sometimes with one of its attribute values); the next keyword query returns to the intent afresh.
        repeat_view_rate: per-step probability of viewing an already viewed product again.
        click_rate: probability that opening a result is a ``click`` rather than a ``view``.
        results_per_query: results returned by the store's retrieval.
        image_projection_dim: dimension of the random projection used for image retrieval.
    """

    seed: int = 0
    num_sessions: int = 20000
    num_departments: int = 8
    num_subcategories: int = 5
    num_leaves: int = 4
    items_per_leaf: int = 25
    nouns_per_leaf: int = 2
    num_brands: int = 120
    shared_brand_fraction: float = 0.1
    brands_per_leaf: int = 5
    image_dim: int = 512
    image_noise: float = 0.5
    image_query_noise: float = 0.3
    zipf_exponent: float = 1.1
    misspelling_rate: float = 0.04
    flag_noise: float = 0.05
    counterfeit_rate: float = 0.08
    refurbished_rate: float = 0.1
    description_rate: float = 0.95
    brand_rate: float = 0.95
    purchase_rate: float = 0.3
    abandon_cart_rate: float = 0.15
    product_query_rate: float = 0.3
    image_query_rate: float = 0.25
    mean_session_length: float = 5.6
    session_length_sigma: float = 0.8
    max_session_length: int = 200
    want_attribute_rate: float = 0.6
    want_pattern_rate: float = 0.5
    brand_intent_rate: float = 0.4
    new_query_rate: float = 0.3
    query_reformulation: str = "mix"
    specialization_rate: float = 0.25
    generalization_rate: float = 0.1
    substitution_rate: float = 0.3
    new_intent_rate: float = 0.15
    repeat_view_rate: float = 0.2
    click_rate: float = 0.35
    results_per_query: int = 10
    image_projection_dim: int = 64

    def __post_init__(self):
        self.validate()

    @property
    def num_leaf_categories(self) -> int:
        return self.num_departments * self.num_subcategories * self.num_leaves

    @property
    def num_items(self) -> int:
        return self.num_leaf_categories * self.items_per_leaf

    @property
    def num_shared_brands(self) -> int:
        return round(self.num_brands * self.shared_brand_fraction)

    def validate(self) -> None:
        """Raise ``ValueError`` naming the numbers of an impossible configuration."""
        check_at_least(
            self,
            1,
            *("num_departments", "num_subcategories", "num_leaves", "nouns_per_leaf", "brands_per_leaf"),
            *("results_per_query", "image_projection_dim"),
        )
        check_at_least(self, 0, "seed", "num_sessions")
        check_at_least(self, 2, "items_per_leaf")
        check_at_least(self, 4, "image_dim")
        rates = [
            f.name
            for f in fields(self)
            if f.name.endswith(("_rate", "_fraction", "_noise"))
            and f.name not in ("image_noise", "image_query_noise")
        ]
        check_rates(self, *rates)
        check_choice(self, "query_reformulation", QUERY_REFORMULATIONS)
        mix = {n: getattr(self, n) for n in _MIX_RATES}
        if sum(mix.values()) > 1.0 + 1e-9:
            raise ValueError(
                f"the reformulation rates must sum to <= 1, got {mix} (sum {sum(mix.values()):.3f})"
            )
        if self.image_noise < 0 or self.image_query_noise < 0:
            raise ValueError(
                f"image noises must be >= 0, got {self.image_noise} and {self.image_query_noise}"
            )
        own = self.num_brands - self.num_shared_brands
        if own < self.num_departments:
            raise ValueError(
                f"num_brands={self.num_brands} with shared_brand_fraction={self.shared_brand_fraction} leaves "
                f"{own} department brands for {self.num_departments} departments; need at least one each"
            )
        if self.num_shared_brands > 0 and self.num_departments < 2:
            raise ValueError(
                f"{self.num_shared_brands} shared brands need >= 2 departments, got {self.num_departments}"
            )
        if self.mean_session_length < 1.0 or self.session_length_sigma <= 0:
            raise ValueError(
                f"mean_session_length must be >= 1 and session_length_sigma > 0, got "
                f"{self.mean_session_length} and {self.session_length_sigma}"
            )
        if self.max_session_length < 4:
            raise ValueError(
                f"max_session_length must be >= 4 (query, view, cart, purchase), "
                f"got {self.max_session_length}"
            )

    @classmethod
    def tiny(cls, **overrides: Any) -> SyntheticStoreConfig:
        """A store small enough for unit tests: 2 x 2 x 2 leaves, 96 products, 16-d images, 200 sessions."""
        base = dict(
            num_sessions=200,
            num_departments=2,
            num_subcategories=2,
            num_leaves=2,
            items_per_leaf=12,
            num_brands=8,
            shared_brand_fraction=0.25,
            brands_per_leaf=3,
            image_dim=16,
            image_projection_dim=8,
        )
        return cls(**{**base, **overrides})
