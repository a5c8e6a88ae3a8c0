"""The synthetic store: its catalogue, search engine and shoppers."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from datasets import Dataset, Features, IterableDataset

from ..schema import (
    image_event,
    item_event,
    query_event,
)
from .config import SYNTHETIC_CATALOGUE_FEATURES, SYNTHETIC_SESSION_FEATURES, SyntheticStoreConfig
from .queries import ShopperQueryWording
from .vocabulary import (
    _CONSONANTS,
    _EXP,
    _QUERY_CACHE_SIZE,
    _RESERVED,
    _T0,
    _VOWELS,
    ATTRIBUTE_VALUES,
    BULKY_SIZES,
    COLOURS,
    FILLERS,
    FLAG_NAMES,
    OPTIONAL_ATTRIBUTES,
    PATTERNS,
    REFURB_MARKERS,
    SENTENCES,
    SMALL_SIZES,
    tokenize,
)
from .writing import _STORES, _config_key, _generate_shards, summarize

# ----------------------------------------------------------------------------------------------------------
# Text helpers
# ----------------------------------------------------------------------------------------------------------


def _pseudo_words(r: random.Random, n: int, taken: set[str]) -> list[str]:
    """``n`` new pronounceable pseudo-words (consonant-vowel syllables), none in ``taken`` (which grows)."""
    out = []
    while len(out) < n:
        word = "".join(r.choice(_CONSONANTS) + r.choice(_VOWELS) for _ in range(r.randint(2, 3)))
        if r.random() < 0.4:
            word += r.choice("lnrst")
        if word not in taken:
            taken.add(word)
            out.append(word)
    return out


def _misspell(r: random.Random, word: str) -> str:
    """A typo of ``word`` (swap, drop or double a letter); words of < 4 letters are kept."""
    if len(word) < 4:
        return word
    k = r.randrange(1, len(word) - 1)
    kind = r.randrange(3)
    if kind == 0:
        typo = word[: k - 1] + word[k] + word[k - 1] + word[k + 1 :]
    elif kind == 1:
        typo = word[:k] + word[k + 1 :]
    else:
        typo = word[:k] + word[k] + word[k:]
    return word if typo == word or typo in _RESERVED else typo


def _brand_typo(brand: str) -> str:
    """The deterministic misspelling of a brand used by counterfeit listings (two inner letters swapped)."""
    k = len(brand) // 2
    typo = brand[: k - 1] + brand[k] + brand[k - 1] + brand[k + 1 :]
    return typo if typo != brand else brand + brand[-1]


def _match_keys(
    leaf: int, parent: int, attrs: Mapping[str, str], brand: int, pattern: str | None
) -> frozenset:
    """Integer keys of a product (or of an intent) whose overlap measures how well a product fits an intent."""
    keys = [("leaf", leaf), ("parent", parent), *attrs.items()]
    if brand >= 0:
        keys.append(("brand", brand))
    if pattern is not None:
        keys.append(("pattern", pattern))
    return frozenset(hash(k) for k in keys)


@dataclass
class _Leaf:
    """One leaf category: its path, head nouns, attribute values and products."""

    index: int
    path: list[str]
    parent: int
    department: int
    nouns: list[str]
    attributes: dict[str, list[str]]
    patterns: list[str]
    brands: list[int]


# ----------------------------------------------------------------------------------------------------------
# The store
# ----------------------------------------------------------------------------------------------------------


class SyntheticStore:
    """A deterministic synthetic store built from a :class:`SyntheticStoreConfig`.

    The catalogue (tree, brands, products, images, popularity, flags, retrieval index) is built at init; sessions
    are generated on demand by :meth:`session`, each from its own seeded random stream.

    Attributes:
        config: the configuration.
        images: ``(num_items, image_dim)`` float32 product image vectors.
        popularity: ``(num_items,)`` Zipf popularity, sums to 1.
    """

    def __init__(self, config: SyntheticStoreConfig | None = None):
        self.config = config = config or SyntheticStoreConfig()
        config.validate()
        self._r = random.Random(config.seed)
        self._np = np.random.default_rng([config.seed, 7])
        self._taken = set(_RESERVED)
        self._build_tree()
        self._build_brands()
        self._build_items()
        self._build_images()
        self._build_index()
        self._query_cache: dict[tuple[str, ...], list[int]] = {}
        self._catalogue: list[dict[str, Any]] | None = None

    # -- catalogue construction ------------------------------------------------------------------------------

    def _build_tree(self) -> None:
        cfg, r = self.config, self._r
        dept_words = _pseudo_words(r, cfg.num_departments, self._taken)
        self.leaves: list[_Leaf] = []
        self._parent_paths: list[list[str]] = []
        for d, dept in enumerate(dept_words):
            for sub in _pseudo_words(r, cfg.num_subcategories, self._taken):
                parent = len(self._parent_paths)
                self._parent_paths.append([dept, sub])
                for _ in range(cfg.num_leaves):
                    nouns = _pseudo_words(r, cfg.nouns_per_leaf, self._taken)
                    self.leaves.append(
                        _Leaf(
                            len(self.leaves),
                            [dept, sub, nouns[0]],
                            parent,
                            d,
                            nouns,
                            self._leaf_attributes(),
                            r.sample(PATTERNS, r.randint(3, 5)),
                            [],
                        )
                    )
        self._parent_leaves: list[list[int]] = [[] for _ in self._parent_paths]
        for leaf in self.leaves:
            self._parent_leaves[leaf.parent].append(leaf.index)

    def _leaf_attributes(self) -> dict[str, list[str]]:
        """Attribute names of a leaf (colour and size always, 1-2 optional ones) and the values it offers."""
        r = self._r
        attrs = {
            "colour": r.sample(COLOURS, r.randint(4, 7)),
            "size": r.sample(SMALL_SIZES, r.randint(1, 3)) + r.sample(BULKY_SIZES, r.randint(1, 3)),
        }
        for name in sorted(r.sample(OPTIONAL_ATTRIBUTES, r.randint(1, 2))):
            attrs[name] = r.sample(ATTRIBUTE_VALUES[name], r.randint(3, 5))
        return attrs

    def _build_brands(self) -> None:
        cfg, r = self.config, self._r
        self.brands = [w.capitalize() for w in _pseudo_words(r, cfg.num_brands, self._taken)]
        n_shared, n_dept = cfg.num_shared_brands, cfg.num_departments
        dept_brands: list[list[int]] = [[] for _ in range(n_dept)]
        self.brand_departments: list[list[int]] = []
        for b in range(cfg.num_brands):
            if b < n_shared:  # a shared brand sells in two departments half the tree apart
                d = b % n_dept
                depts = [d, (d + max(1, n_dept // 2)) % n_dept]
            else:
                depts = [b % n_dept]
            self.brand_departments.append(depts)
            for d in depts:
                dept_brands[d].append(b)
        by_dept: dict[int, list[_Leaf]] = {}
        for leaf in self.leaves:
            by_dept.setdefault(leaf.department, []).append(leaf)
            own = [b for b in dept_brands[leaf.department] if b >= n_shared]
            leaf.brands = r.sample(own, min(cfg.brands_per_leaf, len(own)))
        for b in range(n_shared):  # every shared brand is really sold in each of its departments
            for d in self.brand_departments[b]:
                for leaf in r.sample(by_dept[d], min(2, len(by_dept[d]))):
                    leaf.brands.append(b)

    def _build_items(self) -> None:
        cfg, r = self.config, self._r
        n = cfg.num_items
        ranks = self._np.permutation(n) + 1.0
        pop = ranks**-cfg.zipf_exponent
        self.popularity = pop / pop.sum()
        self.item_ids = [f"item-{k:06d}" for k in range(n)]
        self._items: list[dict[str, Any]] = []
        for leaf in self.leaves:
            counterfeit_p = min(1.0, cfg.counterfeit_rate * r.uniform(0.3, 1.7))
            refurb_p = min(1.0, cfg.refurbished_rate * r.uniform(0.3, 1.7))
            brand_w = [1.0 / (k + 1) for k in range(len(leaf.brands))]
            for _ in range(cfg.items_per_leaf):
                self._items.append(self._make_item(leaf, brand_w, counterfeit_p, refurb_p))
        self._item_leaf = [it["leaf"] for it in self._items]
        self._item_keys = [
            _match_keys(it["leaf"], it["parent"], it["attrs"], it["brand"], it["pattern"])
            for it in self._items
        ]
        leaf_of = np.asarray(self._item_leaf)
        self._leaf_items = [np.flatnonzero(leaf_of == k).tolist() for k in range(len(self.leaves))]
        self._leaf_cum = [np.cumsum(self.popularity[items]).tolist() for items in self._leaf_items]
        leaf_pop = np.array([self.popularity[items].sum() for items in self._leaf_items]) ** 0.5
        self._leaves_cum = np.cumsum(leaf_pop / leaf_pop.sum()).tolist()
        self._leaf_range = range(len(self.leaves))

    def _make_item(self, leaf: _Leaf, brand_w: list[float], counterfeit_p: float, refurb_p: float) -> dict:
        cfg, r = self.config, self._r
        attrs = {name: r.choice(values) for name, values in leaf.attributes.items()}
        brand = r.choices(leaf.brands, brand_w)[0] if r.random() < cfg.brand_rate else -1
        counterfeit = brand >= 0 and r.random() < counterfeit_p
        refurbished = r.random() < refurb_p
        shown_brand = (
            None if brand < 0 else (_brand_typo(self.brands[brand]) if counterfeit else self.brands[brand])
        )
        title = self._compose_title(leaf, attrs, shown_brand, refurbished)
        description = self._compose_description(leaf, attrs, shown_brand, refurbished)
        truth = {
            "counterfeit": counterfeit,
            "bulky": attrs["size"] in BULKY_SIZES,
            "refurbished": refurbished,
        }
        flags = {k: v != (r.random() < cfg.flag_noise) for k, v in truth.items()}
        return {
            "leaf": leaf.index,
            "parent": leaf.parent,
            "attrs": attrs,
            "pattern": r.choice(leaf.patterns),
            "brand": brand,
            "shown_brand": shown_brand,
            "title": title,
            "description": description,
            "flags": flags,
            "title_tokens": tokenize(title),
        }

    def _compose_title(self, leaf: _Leaf, attrs: dict[str, str], brand: str | None, refurbished: bool) -> str:
        """Brand, some attribute words, a head noun and filler, in one of several word orders, with typos."""
        r, rate = self._r, self.config.misspelling_rate
        shown = [v for name, v in attrs.items() if r.random() < (0.75 if name == "colour" else 0.35)]
        noun = r.choice(leaf.nouns)
        filler = r.sample(FILLERS, r.randint(0, 2))
        shown = [_misspell(r, w) if r.random() < rate else w for w in shown]
        filler = [_misspell(r, w) if r.random() < rate else w for w in filler]
        head = [brand] if brand else []
        order = r.randrange(4)
        if order == 0:
            words = head + shown + [noun] + filler
        elif order == 1:
            words = shown + [noun] + (["by", brand] if brand else []) + filler
        elif order == 2:
            words = head + [noun] + shown + filler
        else:
            words = filler[:1] + head + shown + [noun] + filler[1:]
        if refurbished and r.random() < 0.6:
            marker = r.choice(REFURB_MARKERS)
            words = [marker] + words if r.random() < 0.5 else words + [f"({marker})"]
        return " ".join(words)

    def _compose_description(
        self, leaf: _Leaf, attrs: dict[str, str], brand: str | None, refurbished: bool
    ) -> str | None:
        """A longer text naming every text attribute, the category and filler sentences (sometimes absent)."""
        r = self._r
        if r.random() >= self.config.description_rate:
            return None
        dept, sub = self._parent_paths[leaf.parent]
        noun = r.choice(leaf.nouns)
        parts = [f"{'The ' + brand if brand else 'This'} {noun} from our {sub} range in {dept}."]
        phrases = [
            f"{name}: {value}." if r.random() < 0.5 else f"with {name} {value}."
            for name, value in attrs.items()
        ]
        r.shuffle(phrases)
        parts += phrases
        parts += [s.capitalize() + "." for s in r.sample(SENTENCES, r.randint(1, 3))]
        if refurbished:
            parts.append(f"This item is {r.choice(REFURB_MARKERS)} and fully tested.")
        return " ".join(parts)

    def _build_images(self) -> None:
        """Image = leaf prototype (department + subcategory + leaf parts) + colour + pattern prototypes + noise."""
        cfg, g = self.config, self._np
        dim = cfg.image_dim

        def protos(n: int) -> np.ndarray:
            return g.standard_normal((n, dim)) / math.sqrt(dim)

        dept, parent, leaf = (
            protos(cfg.num_departments),
            protos(len(self._parent_paths)),
            protos(len(self.leaves)),
        )
        self.leaf_prototypes = (
            0.6 * dept[[lf.department for lf in self.leaves]]
            + 0.6 * parent[[lf.parent for lf in self.leaves]]
            + leaf
        )
        self.colour_prototypes = dict(zip(COLOURS, protos(len(COLOURS))))
        self.pattern_prototypes = dict(zip(PATTERNS, protos(len(PATTERNS))))
        parts = [
            self.leaf_prototypes[it["leaf"]]
            + 0.7 * self.colour_prototypes[it["attrs"]["colour"]]
            + 0.7 * self.pattern_prototypes[it["pattern"]]
            for it in self._items
        ]
        noise = g.standard_normal((len(parts), dim)) * (cfg.image_noise / math.sqrt(dim))
        self.images = (np.stack(parts) + noise).astype(np.float32)
        self._projection = (g.standard_normal((dim, cfg.image_projection_dim)) / math.sqrt(dim)).astype(
            np.float32
        )
        proj = self.images @ self._projection
        self._image_index = proj / np.linalg.norm(proj, axis=1, keepdims=True)

    def _build_index(self) -> None:
        """Inverted index word -> (items, weights): title words weigh 1, other fields 0.4."""
        postings: dict[str, dict[int, float]] = {}
        for k, it in enumerate(self._items):
            leaf = self.leaves[it["leaf"]]
            other = tokenize(it["description"]) + leaf.path[:2] + leaf.nouns + list(it["attrs"].values())
            other += tokenize(it["shown_brand"])
            for w in other:
                postings.setdefault(w, {}).setdefault(k, 0.4)
            for w in it["title_tokens"]:
                postings.setdefault(w, {})[k] = 1.0
        self._index = {
            w: (np.fromiter(p.keys(), np.int64, len(p)), np.fromiter(p.values(), np.float64, len(p)))
            for w, p in postings.items()
        }
        logp = np.log(self.popularity)
        self._pop_bonus = 0.5 * (logp - logp.min()) / max(logp.max() - logp.min(), 1e-12)

    # -- public catalogue views ------------------------------------------------------------------------------

    @property
    def categories(self) -> list[list[str]]:
        """Leaf category paths, root first (``[department, subcategory, leaf]``), in leaf index order."""
        return [list(leaf.path) for leaf in self.leaves]

    @property
    def catalogue_features(self) -> Features:
        """:data:`SYNTHETIC_CATALOGUE_FEATURES`."""
        return SYNTHETIC_CATALOGUE_FEATURES

    @property
    def catalogue(self) -> list[dict[str, Any]]:
        """The catalogue records (:data:`SYNTHETIC_CATALOGUE_FEATURES`), built once on first access."""
        if self._catalogue is None:
            images = self.images.tolist()
            self._catalogue = [self._catalogue_record(k, it, images[k]) for k, it in enumerate(self._items)]
        return self._catalogue

    def _catalogue_record(self, k: int, it: dict[str, Any], image: list[float]) -> dict[str, Any]:
        leaf = self.leaves[it["leaf"]]
        return {
            "item_id": self.item_ids[k],
            "title": it["title"],
            "description": it["description"],
            "category": list(leaf.path),
            "brand": it["shown_brand"],
            "attributes": [{"name": n, "value": v} for n, v in it["attrs"].items()],
            "image": image,
            "pattern": it["pattern"],
            "popularity": float(self.popularity[k]),
            **{f"flag_{name}": bool(it["flags"][name]) for name in FLAG_NAMES},
        }

    def catalogue_dataset(self) -> Dataset:
        """The catalogue as an in-memory ``datasets.Dataset``."""
        return Dataset.from_list(self.catalogue, features=SYNTHETIC_CATALOGUE_FEATURES)

    def item_attributes(self, k: int) -> list[dict[str, str]]:
        """All attribute values of product ``k`` (text attributes, then the visual ``pattern``)."""
        it = self._items[k]
        return [{"name": n, "value": v} for n, v in it["attrs"].items()] + [
            {"name": "pattern", "value": it["pattern"]}
        ]

    def item_leaf(self, item_id: str) -> int:
        """Leaf index of a product ID."""
        return self._item_leaf[int(item_id.rsplit("-", 1)[1])]

    # -- retrieval ---------------------------------------------------------------------------------------------

    def search(self, words: Sequence[str]) -> list[int]:
        """Top products for a keyword query: sum of matched word weights plus a popularity bonus (<= 0.5).

        Returns product indices, best first (at most ``results_per_query``; none when no word matches).
        """
        key = tuple(sorted(set(words)))
        hit = self._query_cache.get(key)
        if hit is not None:
            return hit
        found = [self._index[w] for w in key if w in self._index]
        if not found:
            result: list[int] = []
        else:
            idx = np.concatenate([f[0] for f in found])
            wts = np.concatenate([f[1] for f in found])
            scores = np.bincount(idx, weights=wts, minlength=len(self._items))
            cand = np.flatnonzero(scores)
            result = cand[self._top(scores[cand] + self._pop_bonus[cand])].tolist()
        if len(self._query_cache) >= _QUERY_CACHE_SIZE:
            self._query_cache.clear()
        self._query_cache[key] = result
        return result

    def search_image(self, image: np.ndarray) -> list[int]:
        """Top products for an image query: cosine in a random projection plus a small popularity bonus."""
        q = image.astype(np.float32) @ self._projection
        scores = self._image_index @ (q / max(float(np.linalg.norm(q)), 1e-12)) + 0.1 * self._pop_bonus
        return self._top(scores).tolist()

    def _top(self, scores: np.ndarray) -> np.ndarray:
        """Indices of the ``results_per_query`` highest scores, best first, ties broken by index."""
        k = min(self.config.results_per_query, len(scores))
        part = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
        return part[np.lexsort((part, -scores[part]))]

    # -- sessions ----------------------------------------------------------------------------------------------

    def session(self, i: int) -> dict[str, Any]:
        """Session ``i``: ``{"session_id", "events", "labels"}``, a function of ``(seed, i)`` only."""
        if i < 0:
            raise ValueError(f"session index must be >= 0, got {i}")
        return _Shopper(self, i).run()

    def iter_sessions(self, start: int = 0, stop: int | None = None) -> Iterator[dict[str, Any]]:
        """Sessions ``start`` .. ``stop - 1`` (``stop`` defaults to ``config.num_sessions``)."""
        stop = self.config.num_sessions if stop is None else stop
        for i in range(start, stop):
            yield self.session(i)

    def sessions_dataset(
        self, num_sessions: int | None = None, streaming: bool = False, num_shards: int = 64
    ) -> Dataset | IterableDataset:
        """Sessions as a ``datasets.Dataset`` (in memory) or a sharded streaming ``IterableDataset``.

        The streaming dataset's ``gen_kwargs`` hold a list of ``num_shards`` index ranges, so ``datasets`` splits
        it across processes (``split_dataset_by_node``) and DataLoader workers; each shard rebuilds the store from
        the config alone.
        """
        n = self.config.num_sessions if num_sessions is None else num_sessions
        if not streaming:
            return Dataset.from_list(list(self.iter_sessions(0, n)), features=SYNTHETIC_SESSION_FEATURES)
        bounds = np.linspace(0, n, min(num_shards, max(n, 1)) + 1).astype(int).tolist()
        shards = [(a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]
        _STORES.setdefault(_config_key(self.config), self)
        return IterableDataset.from_generator(
            _generate_shards,
            features=SYNTHETIC_SESSION_FEATURES,
            gen_kwargs={"config": asdict(self.config), "shards": shards},
        )

    def stats(self, n: int | None = None) -> dict[str, Any]:
        """Statistics of the first ``n`` sessions (default ``config.num_sessions``), generated and timed here."""
        n = self.config.num_sessions if n is None else n
        start = time.perf_counter()
        sessions = list(self.iter_sessions(0, n))
        elapsed = time.perf_counter() - start
        return summarize(sessions, self, elapsed)


# ----------------------------------------------------------------------------------------------------------
# One shopper: hidden intent -> events
# ----------------------------------------------------------------------------------------------------------


class _Shopper(ShopperQueryWording):
    """Generates one session. All randomness comes from ``random.Random((seed << 64) | index)``."""

    def __init__(self, store: SyntheticStore, index: int):
        cfg = store.config
        self.store, self.cfg, self.index = store, cfg, index
        self.r = r = random.Random((cfg.seed << 64) | index)
        self.events: list[dict[str, Any]] = []
        self.t = _T0 + r.random() * 90 * 86400
        leaf = r.choices(store._leaf_range, cum_weights=store._leaves_cum)[0]
        ideal = r.choices(store._leaf_items[leaf], cum_weights=store._leaf_cum[leaf])[0]
        item = store._items[ideal]
        self.leaf, self.parent, self.ideal = store.leaves[leaf], store.leaves[leaf].parent, ideal
        self.wanted = {n: v for n, v in item["attrs"].items() if r.random() < cfg.want_attribute_rate}
        self.pattern = item["pattern"] if r.random() < cfg.want_pattern_rate else None
        self.brand = item["brand"] if item["brand"] >= 0 and r.random() < cfg.brand_intent_rate else -1
        self.keys = _match_keys(leaf, self.parent, self.wanted, self.brand, self.pattern)
        self.buyer = r.random() < cfg.purchase_rate
        self.product_mode = r.random() < cfg.product_query_rate
        self.image_mode = r.random() < cfg.image_query_rate
        mu = math.log(cfg.mean_session_length) - cfg.session_length_sigma**2 / 2
        self.length = min(
            cfg.max_session_length, max(1, round(r.lognormvariate(mu, cfg.session_length_sigma)))
        )
        self.words: list[str] = []  # the current keyword query
        self.typos: dict[str, str] = {}  # misspelt word -> intended word
        self.results: list[int] = []
        self.weights: list[float] = []
        self.shown: set[int] = set()
        self.viewed: list[int] = []
        self.closeness: dict[int, int] = {}
        self.last_keyword: str | None = None
        self.detour = False  # the current keyword query is a related new intent (see _reformulate)
        self.n_product = self.n_image = 0

    # -- helpers ----------------------------------------------------------------------------------------------

    def _close(self, k: int) -> int:
        """How well product ``k`` matches the intent (leaf 4, parent 1, each wanted value / brand / pattern 1)."""
        c = self.closeness.get(k)
        if c is None:
            c = len(self.store._item_keys[k] & self.keys) + 3 * (self.store._item_leaf[k] == self.leaf.index)
            self.closeness[k] = c
        return c

    def _good(self, k: int) -> bool:
        return self._close(k) >= 5 + max(0, len(self.wanted) - 1)

    def _tick(self, mean: float) -> float:
        """Advance the clock by a gap of mean ``mean`` seconds (a floor of 20% plus an exponential tail)."""
        self.t += mean * (0.2 - 0.8 * math.log(1.0 - self.r.random()))
        return round(self.t, 3)

    def _item(self, action: str, k: int, gap: float) -> None:
        self.events.append(item_event(action, self.store.item_ids[k], self._tick(gap)))
        if action in ("view", "click"):
            self.viewed.append(k)

    def _set_results(self, results: list[int]) -> None:
        self.results = results
        self.shown.update(results)
        self.weights = []  # browsing weights, computed on the first browse of these results

    # -- queries (the wording of keyword queries: ShopperQueryWording) ------------------------------------------

    def _keyword_query(self) -> None:
        r = self.r
        if not self.words:
            words = self._fresh_query()
        elif self.cfg.query_reformulation == "refine":
            words = self._fresh_query() if r.random() < 0.15 else self._refine(self.words)
        else:
            words = self._reformulate(self.words)
        self.words = words
        typed = []
        for w in words:
            if w not in self.typos and r.random() < self.cfg.misspelling_rate:
                typo = _misspell(r, w)
                if typo != w:
                    self.typos[typo] = w
                    w = typo
            typed.append(w)
        self.words = typed
        text = " ".join(typed)
        self.last_keyword = text
        self.events.append(query_event("search", text, self._tick(8.0)))
        self._set_results(self.store.search(typed))

    def _product_query(self) -> None:
        r = self.r
        tokens = self.store._items[r.choice(self.viewed)]["title_tokens"]
        n = min(len(tokens), r.randint(2, 4))
        a = r.randrange(len(tokens) - n + 1)
        words = tokens[a : a + n]
        self.n_product += 1
        self.events.append(query_event("search", " ".join(words), self._tick(6.0), product=True))
        self._set_results(self.store.search(words))

    def _image_query(self) -> None:
        r, cfg = self.r, self.cfg
        g = np.random.default_rng(r.getrandbits(64))
        base = self.store.images[r.choice(self.viewed)]
        vec = base + g.standard_normal(cfg.image_dim) * (cfg.image_query_noise / math.sqrt(cfg.image_dim))
        vec = vec.astype(np.float32)
        self.n_image += 1
        self.events.append(image_event("search", vec.tolist(), self._tick(10.0)))
        self._set_results(self.store.search_image(vec))

    def _query(self) -> None:
        r = self.r
        if self.viewed and self.product_mode and r.random() < (0.9 if self.n_product == 0 else 0.2):
            self._product_query()
        elif self.viewed and self.image_mode and r.random() < (0.9 if self.n_image == 0 else 0.2):
            self._image_query()
        else:
            self._keyword_query()

    # -- browsing and the end of the session -------------------------------------------------------------------

    def _browse(self) -> None:
        """Open one result, favouring products close to the intent and high in the list."""
        r = self.r
        if not self.weights:
            close = self._close
            self.weights = [_EXP[close(k)] / (1.0 + 0.4 * rank) for rank, k in enumerate(self.results)]
        k = r.choices(self.results, self.weights)[0]
        action = "click" if k not in self.viewed and r.random() < self.cfg.click_rate else "view"
        self._item(action, k, 25.0)
        if not self.buyer and self._good(k) and r.random() < self.cfg.abandon_cart_rate:
            self._item("add_to_cart", k, 12.0)

    def _review(self) -> None:
        """View an already viewed product again (the repetitive viewing of shoppers who hesitate)."""
        seen = sorted(set(self.viewed))
        k = self.r.choices(seen, [_EXP[self._close(k)] for k in seen])[0]
        self._item("view", k, 30.0)

    def _step(self) -> None:
        r = self.r
        pending = self.viewed and (
            (self.product_mode and not self.n_product) or (self.image_mode and not self.n_image)
        )
        if not self.results or r.random() < (0.6 if pending else self.cfg.new_query_rate):
            self._query()
        elif self.viewed and r.random() < self.cfg.repeat_view_rate:
            self._review()
        else:
            self._browse()

    def _purchase(self) -> int:
        """The buyer's ending: the best shown product of the intent leaf (else the ideal one), viewed, carted,
        bought."""
        r = self.r
        cands = sorted(k for k in self.shown if self.store._item_leaf[k] == self.leaf.index)
        k = max(cands, key=self._close) if cands else self.ideal
        if not self.viewed or self.viewed[-1] != k:
            self._item("view", k, 25.0)
        if r.random() < 0.4:
            self._item("view", k, 30.0)
        self._item("add_to_cart", k, 12.0)
        self._item("purchase", k, 60.0)
        return k

    def run(self) -> dict[str, Any]:
        bought = None
        budget = max(self.length - 3, 1) if self.buyer else self.length
        while len(self.events) < budget:
            self._step()
        if self.buyer:
            bought = self._purchase()
        return {
            "session_id": f"syn{self.cfg.seed}-{self.index:09d}",
            "events": self.events,
            "labels": self._labels(bought),
        }

    def _labels(self, bought: int | None) -> dict[str, Any]:
        store = self.store
        clicked = list(dict.fromkeys(ev["item_id"] for ev in self.events if ev["action"] == "click"))
        attrs = [{"name": n, "value": v} for n, v in self.wanted.items()]
        if self.pattern is not None:
            attrs.append({"name": "pattern", "value": self.pattern})
        return {
            "purchased": bought is not None,
            "purchased_item_id": None if bought is None else store.item_ids[bought],
            "intent_leaf": " > ".join(self.leaf.path),
            "intent_parent": " > ".join(store._parent_paths[self.parent]),
            "intent_category": list(self.leaf.path),
            "intent_attributes": attrs,
            "intent_brand": None if self.brand < 0 else store.brands[self.brand],
            "purchased_attributes": [] if bought is None else store.item_attributes(bought),
            "clicked_item_ids": clicked,
            "next_query": self.last_keyword,
        }
