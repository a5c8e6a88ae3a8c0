"""Product BYOL processor: title normalisation, a Unigram sentence-piece tokenizer, session pairs, category labels.

As the paper (Section 3.1):

- **Normalisation** (:func:`normalize_title`): strip accents, lower-case, drop punctuation (and symbols), drop stop
  words, collapse whitespace. The stop-word list is per language (English by default, Spanish, the paper's
  language, built in) or any list given; it is saved in ``processor_config.json``.
- **Tokenizer**: a Unigram model (what SentencePiece trains) with a metaspace pre-tokenizer, trained with
  ``tokenizers`` on the normalised titles *as they appear in the sessions* (30,000 pieces by default; a small
  corpus yields fewer pieces than asked for, and :attr:`ProductByolProcessor.vocab_size` says how many).
- **Pairs** (:func:`session_pairs`): duplicates removed from each session (first occurrence kept), the session
  truncated to its first 10 distinct products, then every unordered pair of distinct products. Pair rows are
  streamed with ``datasets`` (:meth:`ProductByolProcessor.pair_dataset`): a generator feeds an
  ``IterableDataset`` (``streaming=True``) or an Arrow file on disk (``Dataset.from_generator``); no list of the
  corpus's pairs is ever built.
- **Category labels**: the catalogue's category path cut at ``category_level`` (0 = root, e.g. Instacart's
  department; 1 = the next level, e.g. its aisle; -1 = the whole path). A label is the path prefix joined with
  ``" > "`` (so that equal sub-category names under different parents stay apart). Products whose path is shorter
  than the level, or ``["unknown"]``, get label ``-100`` (ignored by the loss).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import torch
from datasets import Dataset, Features, IterableDataset, Value
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from transformers import BatchFeature, PreTrainedTokenizerFast, ProcessorMixin

from ...data.schema import InvalidRecordError
from ...processing_utils import check_item_ids

IGNORE_INDEX = -100
PAD_TOKEN, UNK_TOKEN = "<pad>", "<unk>"


# Our own short lists of function words (articles, prepositions, conjunctions, pronouns, auxiliaries). Product
# titles carry meaning in nouns, brands, numbers and attributes, so only words that never carry it are listed
# ("can" is not: in a title it is a container).
def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


STOP_WORDS: dict[str, tuple[str, ...]] = {
    "english": _words(
        """a an the and or but nor of for with without in into on onto at to by from as is are was were be been
        being it its this that these those than then so such very will just also per via not no only own
        same too i me my we our you your he him his she her they them their what which who whom whose when
        where why how all any both each few more most other some up down out off over under again further
        once here there do does did doing have has had having about above below after before between
        through during until while against because if"""
    ),
    "spanish": _words(
        """a al ante bajo con contra de del desde durante en entre hacia hasta mediante para por segun sin so
        sobre tras el la los las lo un una unos unas y e o u ni que pero sino como cuando donde porque si
        su sus mi mis tu tus se le les me te nos os es son fue ser esta este estos estas ese esa esos esas
        muy mas ya no"""
    ),
}
"""Built-in stop-word lists, by language (lower-case, accents stripped, as normalised text is)."""

_NON_WORD = re.compile(r"[\W_]+")  # punctuation, symbols and whitespace runs -> one space


def strip_accents(text: str) -> str:
    """``"Café Crème"`` -> ``"Cafe Creme"``: NFKD, then combining marks dropped (ASCII text is returned as is)."""
    if text.isascii():
        return text
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


def normalize_title(text: str, stop_words: Iterable[str] | frozenset[str] = frozenset()) -> str:
    """The paper's title normalisation: strip accents, lower-case, drop punctuation and symbols, drop stop words,
    collapse whitespace. ``"The Café-Crème, 2 x 500ml!"`` -> ``"cafe creme 2 x 500ml"`` (English stop words)."""
    if not isinstance(text, str):
        raise TypeError(f"a title must be a string, got {type(text).__name__}: {text!r}")
    stop = stop_words if isinstance(stop_words, frozenset) else frozenset(stop_words)
    words = _NON_WORD.sub(" ", strip_accents(text).lower()).split()
    return " ".join(w for w in words if w not in stop)


def session_products(item_ids: Iterable[str], max_products: int | None = 10) -> list[str]:
    """Distinct products of a session in order of first appearance, truncated to ``max_products``."""
    distinct = list(dict.fromkeys(item_ids))
    return distinct if max_products is None else distinct[:max_products]


def session_pairs(item_ids: Iterable[str], max_products: int | None = 10) -> Iterator[tuple[str, str]]:
    """Every unordered pair of distinct products of one session (each once, ``a`` seen before ``b``), after
    removing duplicates and truncating the session to its first ``max_products`` distinct products."""
    items = session_products(item_ids, max_products)
    for i, a in enumerate(items):
        for b in items[i + 1 :]:
            yield a, b


PAIR_FEATURES = Features(
    {
        "item_id": Value("string"),
        "pair_item_id": Value("string"),
        "title": Value("string"),
        "pair_title": Value("string"),
        "category": Value("int64"),
        "pair_category": Value("int64"),
    }
)
"""A pair row: the two products' IDs, raw titles and category label indices (-100: unknown)."""


def _pair_rows(
    shards: list[list[list[str]]], products: Mapping[str, tuple[str, int]], max_products: int
) -> Iterator[dict[str, Any]]:
    """The pair rows of ``shards`` (lists of sessions of item IDs); ``products``: ID -> (title, category id).

    Module-level so that ``datasets`` can fingerprint it and split ``shards`` across processes and workers."""
    for shard in shards:
        for session in shard:
            known = [i for i in session if i in products]
            for a, b in session_pairs(known, max_products):
                (ta, ca), (tb, cb) = products[a], products[b]
                yield {
                    "item_id": a,
                    "pair_item_id": b,
                    "title": ta,
                    "pair_title": tb,
                    "category": ca,
                    "pair_category": cb,
                }


def _pair_batch(
    batch: dict[str, list], products: Mapping[str, tuple[str, int]], max_products: int
) -> dict[str, list]:
    """Batched ``IterableDataset.map`` function: sessions (package schema ``events``, or ``item_ids`` lists) ->
    their pair rows (:data:`PAIR_FEATURES`), a batch at a time, so a session stream is paired lazily."""
    if "events" in batch:
        sessions = [
            [ev["item_id"] for ev in events if ev.get("subject") == "item" and ev.get("item_id") is not None]
            for events in batch["events"]
        ]
    else:
        sessions = [list(s) for s in batch["item_ids"]]
    out: dict[str, list] = {name: [] for name in PAIR_FEATURES}
    for row in _pair_rows([sessions], products, max_products):
        for name, value in row.items():
            out[name].append(value)
    return out


def _records(catalogue: Any) -> Iterable[Mapping[str, Any]]:
    if isinstance(catalogue, Mapping):
        return catalogue.values()
    return catalogue


class ProductByolProcessor(ProcessorMixin):
    r"""Titles -> token ids, sessions -> product pairs, catalogue category paths -> category labels.

    Args:
        tokenizer: a ``PreTrainedTokenizerFast`` around a Unigram model (build one with :meth:`train`); ``<pad>``
            is id 0.
        language: the built-in stop-word list to use when ``stop_words`` is not given (``english``, ``spanish``).
        stop_words: the stop words (overrides ``language``); saved with the processor.
        max_length: tokens kept per title (titles are short; 32 covers nearly all).
        categories: the category label vocabulary (label strings; index = label id), from :meth:`train`.
        category_level: the level of the category path that is the label (0 = root; -1 = the whole path).
        max_products_per_session: sessions are truncated to this many distinct products before pairing (paper:
            10).

    Calling it on titles returns the model's inputs::

        processor = ProductByolProcessor.train(titles_in_sessions, catalogue=catalogue)
        batch = processor(["Organic Bananas", "Whole Milk"])  # input_ids, attention_mask
        embeddings = model(**batch).embeddings
    """

    def __init__(
        self,
        tokenizer=None,
        language: str = "english",
        stop_words: Sequence[str] | None = None,
        max_length: int = 32,
        categories: Sequence[str] | None = None,
        category_level: int = 0,
        max_products_per_session: int = 10,
        **kwargs,
    ):
        if stop_words is None:
            if language not in STOP_WORDS:
                raise ValueError(
                    f"no built-in stop words for language {language!r} (have {sorted(STOP_WORDS)}); pass "
                    "stop_words=[...]"
                )
            stop_words = STOP_WORDS[language]
        if max_length < 1:
            raise ValueError(f"max_length must be >= 1, got {max_length}")
        if max_products_per_session < 2:
            raise ValueError(f"max_products_per_session must be >= 2, got {max_products_per_session}")
        self.language = language
        self.stop_words = sorted({normalize_title(w) for w in stop_words} - {""})
        self._stop = frozenset(self.stop_words)
        self.max_length = max_length
        self.categories = list(categories or [])
        self._category_index = {c: i for i, c in enumerate(self.categories)}
        if len(self._category_index) != len(self.categories):
            raise ValueError("categories has duplicate labels")
        self.category_level = category_level
        self.max_products_per_session = max_products_per_session
        super().__init__(tokenizer, **kwargs)

    # --- building ------------------------------------------------------------------------------------------
    @classmethod
    def train(
        cls,
        titles: Iterable[str],
        vocab_size: int = 30_000,
        catalogue: Iterable[Mapping[str, Any]] | Mapping[str, Mapping[str, Any]] | None = None,
        **kwargs,
    ) -> ProductByolProcessor:
        """Train the Unigram tokenizer on ``titles`` (normalised here, read once, never held in a list) and take
        the category vocabulary from ``catalogue`` (records with a ``category`` path) at ``category_level``.

        Args:
            titles: the titles of the products as they appear in the sessions (one per occurrence or per product).
            vocab_size: target vocabulary, ``<pad>`` and ``<unk>`` included (paper: 30,000). A small corpus
                gives fewer pieces (see :attr:`vocab_size`).
            catalogue: product records for the category labels.
            **kwargs: processor fields (``language``, ``stop_words``, ``category_level``, ...).
        """
        language = kwargs.get("language", "english")
        stop_words = kwargs.get("stop_words")
        if stop_words is None and language not in STOP_WORDS:
            raise ValueError(f"no built-in stop words for language {language!r}; pass stop_words=[...]")
        stop = frozenset(
            normalize_title(w) for w in (stop_words if stop_words is not None else STOP_WORDS[language])
        )
        tok = Tokenizer(models.Unigram())
        tok.normalizer = normalizers.Sequence(
            [normalizers.NFKD(), normalizers.StripAccents(), normalizers.Lowercase()]
        )
        tok.pre_tokenizer = pre_tokenizers.Metaspace()
        tok.decoder = decoders.Metaspace()
        trainer = trainers.UnigramTrainer(
            vocab_size=vocab_size,
            special_tokens=[PAD_TOKEN, UNK_TOKEN],
            unk_token=UNK_TOKEN,
            max_piece_length=16,
        )
        tok.train_from_iterator((t for t in (normalize_title(x, stop) for x in titles) if t), trainer=trainer)
        tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token=PAD_TOKEN, unk_token=UNK_TOKEN)
        processor = cls(tokenizer, **kwargs)
        if catalogue is not None:
            labels = {processor.category_label(r.get("category") or []) for r in _records(catalogue)}
            processor.categories = sorted(label for label in labels if label is not None)
            processor._category_index = {c: i for i, c in enumerate(processor.categories)}
        return processor

    @property
    def vocab_size(self) -> int:
        """Pieces in the tokenizer, special tokens included: the model's ``config.vocab_size``."""
        return len(self.tokenizer)

    @property
    def num_categories(self) -> int:
        """Category labels: the model's ``config.num_categories``."""
        return len(self.categories)

    @property
    def model_input_names(self) -> list[str]:
        return ["input_ids", "attention_mask"]

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(vocab={len(self.tokenizer) if self.tokenizer else 0}, "
            f"categories={len(self.categories)} at level {self.category_level}, language={self.language!r}, "
            f"stop_words={len(self.stop_words)}, max_length={self.max_length})"
        )

    # --- text ----------------------------------------------------------------------------------------------
    def normalize(self, text: str) -> str:
        """:func:`normalize_title` with this processor's stop words."""
        return normalize_title(text, self._stop)

    def __call__(
        self, titles: str | Sequence[str], return_tensors: str | None = "pt", **kwargs
    ) -> BatchFeature:
        """Normalise and tokenise titles: ``input_ids`` and ``attention_mask`` ``(B, T)``, right-padded with
        ``<pad>`` (0), at most ``max_length`` tokens. An empty title (e.g. only stop words) has no token."""
        if isinstance(titles, str):
            titles = [titles]
        for i, t in enumerate(titles):
            if not isinstance(t, str):
                raise TypeError(f"title {i} must be a string, got {type(t).__name__}: {t!r}")
        enc = self.tokenizer(
            [self.normalize(t) for t in titles],
            add_special_tokens=False,
            truncation=True,
            max_length=self.max_length,
            padding=True,
            return_tensors=return_tensors,
        )
        return BatchFeature({"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]})

    # --- categories ----------------------------------------------------------------------------------------
    def category_label(self, path: Sequence[str]) -> str | None:
        """The label string of a category path at ``category_level`` (``None``: too short or unknown)."""
        path = [p for p in path if p]
        if not path or path == ["unknown"]:
            return None
        if self.category_level < 0:
            return " > ".join(path)
        if len(path) <= self.category_level:
            return None
        return " > ".join(path[: self.category_level + 1])

    def category_id(self, path: Sequence[str]) -> int:
        """The label id of a category path (``-100`` when it has no label in the vocabulary)."""
        label = self.category_label(path)
        return self._category_index.get(label, IGNORE_INDEX) if label is not None else IGNORE_INDEX

    # --- pairs ---------------------------------------------------------------------------------------------
    def product_table(self, catalogue: Any) -> dict[str, tuple[str, int]]:
        """``item_id -> (title, category id)`` for every catalogue record with a title."""
        table = {}
        for i, r in enumerate(_records(catalogue)):
            if not isinstance(r, Mapping):
                raise InvalidRecordError("catalogue", i, "<record>", f"must be a mapping, got {r!r:.80}")
            title, item_id, category = r.get("title"), r.get("item_id"), r.get("category")
            if not isinstance(item_id, str):
                raise InvalidRecordError(
                    "catalogue",
                    i,
                    "item_id",
                    f"missing or not a string, got {item_id!r:.80} ({dict(r)!r:.120})",
                )
            if title is not None and not isinstance(title, str):
                raise ValueError(
                    f"catalogue item {item_id!r}: field 'title': must be a string, got {title!r:.80}"
                )
            if category is not None and (
                not isinstance(category, list | tuple) or not all(isinstance(c, str) for c in category)
            ):
                raise ValueError(
                    f"catalogue item {item_id!r}: field 'category': must be a list of strings, got {category!r:.80}"
                )
            if title:
                table[item_id] = (title, self.category_id(category or []))
        return table

    def pairs(self, item_ids: Iterable[str], session: int = 0) -> list[tuple[str, str]]:
        """The pairs of one session (:func:`session_pairs` with ``max_products_per_session``); an ID that is not a
        string raises :class:`~session_transformers.data.schema.InvalidRecordError` naming ``session`` (its index)
        and the ID's position."""
        item_ids = list(item_ids)
        check_item_ids(item_ids, session, "ProductByolProcessor")
        return list(session_pairs(item_ids, self.max_products_per_session))

    def pair_dataset(
        self,
        sessions: Iterable[Sequence[str]] | IterableDataset,
        catalogue: Any,
        *,
        streaming: bool = False,
        num_shards: int = 16,
        cache_dir: str | None = None,
    ) -> Dataset | IterableDataset:
        """The pair rows (:data:`PAIR_FEATURES`) of ``sessions`` (each a list of item IDs), streamed by ``datasets``.

        ``streaming=True`` returns an ``IterableDataset`` over ``num_shards`` shards of sessions (split across
        processes by ``split_dataset_by_node``); otherwise the generator writes an Arrow file (memory-mapped, in the
        ``datasets`` cache or ``cache_dir``). Products missing from the catalogue, or without a title, are left
        out of their session before pairing.

        ``sessions`` may also be an ``IterableDataset`` of sessions (package-schema rows with ``events``, e.g.
        :func:`~session_transformers.data.streaming.stream_sessions`, or rows with ``item_ids``) with
        ``streaming=True``: it is then paired lazily by a batched ``map`` and never held in memory (a list of every
        session of a corpus larger than memory is what streaming must avoid).
        """
        if isinstance(sessions, IterableDataset):
            if not streaming:
                raise ValueError("an IterableDataset of sessions can only be paired with streaming=True")
            columns = list(sessions.column_names or [])
            if "events" not in columns and "item_ids" not in columns:
                raise ValueError(f"a session stream needs an 'events' or 'item_ids' column, got {columns}")
            return sessions.map(
                _pair_batch,
                batched=True,
                batch_size=256,
                remove_columns=columns,
                features=PAIR_FEATURES,
                fn_kwargs={
                    "products": self.product_table(catalogue),
                    "max_products": self.max_products_per_session,
                },
            )
        sessions = [list(s) for s in sessions]
        for i, s in enumerate(sessions):
            bad = next((x for x in s if not isinstance(x, str)), None)
            if bad is not None:
                raise TypeError(f"session {i}: item IDs must be strings, got {bad!r}")
        n = max(1, min(num_shards, len(sessions)))
        bounds = [round(k * len(sessions) / n) for k in range(n + 1)]
        shards = [sessions[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
        kwargs = {
            "shards": shards,
            "products": self.product_table(catalogue),
            "max_products": self.max_products_per_session,
        }
        if streaming:
            return IterableDataset.from_generator(_pair_rows, features=PAIR_FEATURES, gen_kwargs=kwargs)
        return Dataset.from_generator(
            _pair_rows, features=PAIR_FEATURES, gen_kwargs=kwargs, cache_dir=cache_dir
        )

    # --- collators -----------------------------------------------------------------------------------------
    def collate(self, rows: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        """DataLoader / Trainer collator.

        Pair rows (``title``, ``pair_title``, ``category``, ``pair_category``) give ``input_ids`` /
        ``attention_mask`` (the key products), ``pair_input_ids`` / ``pair_attention_mask`` (the other products),
        ``labels`` / ``pair_labels`` (their categories): the inputs of ``ProductByolForPreTraining``. Product rows
        (``title`` and optionally ``label``) give ``input_ids``, ``attention_mask`` and ``labels``.
        """
        if not rows:
            raise ValueError("cannot collate an empty batch")
        for i, r in enumerate(rows):
            if not isinstance(r.get("title"), str):
                raise ValueError(f"row {i}: field 'title' must be a string, got {r.get('title')!r}")
        out = dict(self([r["title"] for r in rows]))
        if "pair_title" in rows[0]:
            pair = self([r["pair_title"] for r in rows])
            out["pair_input_ids"], out["pair_attention_mask"] = pair["input_ids"], pair["attention_mask"]
            if "category" in rows[0]:
                out["labels"] = torch.tensor([int(r["category"]) for r in rows], dtype=torch.long)
                out["pair_labels"] = torch.tensor([int(r["pair_category"]) for r in rows], dtype=torch.long)
        elif "label" in rows[0]:
            out["labels"] = torch.tensor([int(r["label"]) for r in rows], dtype=torch.long)
        return out


__all__ = [
    "IGNORE_INDEX",
    "PAIR_FEATURES",
    "STOP_WORDS",
    "ProductByolProcessor",
    "normalize_title",
    "session_pairs",
    "session_products",
    "strip_accents",
]
