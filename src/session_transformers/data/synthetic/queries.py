"""How a synthetic shopper words its keyword queries: a fresh wording of its hidden intent, the next query of the
query-log reformulation mix (specialise, generalise, substitute, a related need) or the older one-word refinement.

A mixin of the store's shopper (``store._Shopper``), kept apart so that the shopper's browsing and the store stay
readable; every method draws from the shopper's own ``random.Random``, in the order the store always has, so the
store is the same byte for byte.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .config import SyntheticStoreConfig
    from .store import SyntheticStore, _Leaf


class ShopperQueryWording:
    """The query-wording part of a shopper; the shopper sets the attributes below."""

    r: random.Random
    cfg: SyntheticStoreConfig
    store: SyntheticStore
    leaf: _Leaf  # the intent's leaf category
    parent: int  # its parent category (an index of ``store._parent_paths``)
    wanted: dict[str, str]  # wanted attribute values
    brand: int  # wanted brand, -1 for none
    typos: dict[str, str]  # misspelt word -> intended word
    detour: bool  # the current keyword query is a related new intent

    def _intent_words(self) -> tuple[list[str], list[str]]:
        """(category words from specific to broad, attribute and brand words) of the hidden intent."""
        cat = [self.r.choice(self.leaf.nouns), *reversed(self.store._parent_paths[self.parent])]
        rest = list(self.wanted.values())
        if self.brand >= 0:
            rest.append(self.store.brands[self.brand].lower())
        return cat, rest

    def _fresh_query(self) -> list[str]:
        r = self.r
        cat, rest = self._intent_words()
        if self.brand >= 0 and r.random() < 0.2:
            return [rest[-1]]  # the brand alone: ambiguous for a shared brand
        u = r.random()
        words = [cat[0]] if u < 0.35 else [cat[1]] if u < 0.65 else [cat[2]] if u < 0.8 else []
        words += r.sample(rest, r.randint(0, len(rest)))
        if not words:
            words = [r.choice(cat[:2])]
        if r.random() < 0.3:
            r.shuffle(words)
        return words

    def _refine(self, words: list[str]) -> list[str]:
        """Add, drop or swap one word of the previous query, or fix a typo in it."""
        r = self.r
        words = list(words)
        typos = [w for w in words if w in self.typos]
        if typos and r.random() < 0.7:
            w = typos[0]
            words[words.index(w)] = self.typos[w]
            return words
        cat, rest = self._intent_words()
        missing = [w for w in cat[:2] + rest if w not in words]
        u = r.random()
        if missing and (u < 0.5 or len(words) == 1):
            words.insert(r.randrange(len(words) + 1), r.choice(missing))
        elif len(words) > 1 and u < 0.75:
            words.pop(r.randrange(len(words)))
        elif missing:
            words[r.randrange(len(words))] = r.choice(missing)
        else:
            words = self._fresh_query()
        return words

    def _reformulate(self, words: list[str]) -> list[str]:
        """The next keyword query in the reformulation mix (see :class:`SyntheticStoreConfig`): a typo of the
        previous query corrected, else a specialisation, generalisation, substitution, related new intent or a
        fresh wording of the same intent. A query that follows a new-intent query returns to the intent afresh."""
        r, cfg = self.r, self.cfg
        if self.detour:
            self.detour = False
            return self._fresh_query()
        words = list(words)
        typos = [w for w in words if w in self.typos]
        if typos and r.random() < 0.7:
            words[words.index(typos[0])] = self.typos[typos[0]]
            return words
        u = r.random()
        spec = cfg.specialization_rate
        gen = spec + cfg.generalization_rate
        sub = gen + cfg.substitution_rate
        new = sub + cfg.new_intent_rate
        changed = None
        if u < spec:
            changed = self._specialize(words) or self._substitute(words)
        elif u < gen:
            changed = self._generalize(words)
        elif u < sub:
            changed = self._substitute(words) or self._specialize(words)
        elif u < new:
            self.detour = True
            return self._related_query()
        return changed or self._fresh_query()

    def _specialize(self, words: list[str]) -> list[str] | None:
        """Add one intent word (leaf noun, subcategory, wanted value, brand) the query lacks, if any."""
        cat, rest = self._intent_words()
        missing = [w for w in dict.fromkeys(cat[:2] + rest) if w not in words]
        if not missing:
            return None
        words.insert(self.r.randrange(len(words) + 1), self.r.choice(missing))
        return words

    def _generalize(self, words: list[str]) -> list[str] | None:
        """Drop one word; a one-word query is widened to the next broader category word instead."""
        r = self.r
        if len(words) > 1:
            words.pop(r.randrange(len(words)))
            return words
        path = [*self.leaf.nouns, *reversed(self.store._parent_paths[self.parent])]
        w = words[0]
        if w in self.leaf.nouns:
            return [path[len(self.leaf.nouns)]]  # the subcategory
        if w in path[:-1]:
            return [path[path.index(w) + 1]]  # the subcategory -> the department
        return None

    def _substitute(self, words: list[str]) -> list[str] | None:
        """Replace one word by another of its kind: the leaf's other noun, another value of the same attribute in
        the leaf, another brand of the leaf."""
        leaf, store = self.leaf, self.store
        options: list[tuple[int, str]] = []
        brands = [store.brands[b].lower() for b in leaf.brands]
        for i, w in enumerate(words):
            for kind in (leaf.nouns, *leaf.attributes.values(), brands):
                if w in kind:
                    options += [(i, v) for v in kind if v != w]
        if not options:
            return None
        i, v = self.r.choice(options)
        words[i] = v
        return words

    def _related_query(self) -> list[str]:
        """A query for a related need: a sibling leaf of the intent's (same parent), its noun, half the time with
        one of its attribute values."""
        r, store = self.r, self.store
        siblings = store._parent_leaves[self.parent]
        leaf = store.leaves[r.choice([i for i in siblings if i != self.leaf.index] or siblings)]
        words = [r.choice(leaf.nouns)]
        if r.random() < 0.5:
            values = leaf.attributes[r.choice(sorted(leaf.attributes))]
            words.insert(0, r.choice(values))
        return words
