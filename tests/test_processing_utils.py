"""Shared processor helpers: a reproducible WordPiece fit and seeded batch randomness."""

from __future__ import annotations

import pytest
import torch
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

from session_transformers.data.synthetic import SyntheticStore, SyntheticStoreConfig
from session_transformers.processing_utils import SeededCollatorMixin, seeded_generator, train_wordpiece

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[TITLE]"]


@pytest.fixture(scope="module")
def texts():
    store = SyntheticStore(SyntheticStoreConfig.tiny())
    return [f"{r['title']} {r.get('description') or ''}" for r in store.catalogue]


def _bare_fit(texts):
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(texts, trainers.WordPieceTrainer(special_tokens=SPECIALS))
    return tok


@pytest.mark.parametrize("vocab_size", [150, 30522])
def test_wordpiece_fit_is_reproducible(texts, vocab_size):
    fits = [train_wordpiece(iter(texts), SPECIALS, vocab_size) for _ in range(4)]
    vocab = fits[0].get_vocab()
    assert all(f.get_vocab() == vocab for f in fits[1:])
    assert all(f.encode_batch(texts[:50]) is not None for f in fits)
    encoded = [e.ids for e in fits[0].encode_batch(texts[:50])]
    assert all([e.ids for e in f.encode_batch(texts[:50])] == encoded for f in fits[1:])
    assert len(vocab) <= vocab_size
    assert [vocab[t] for t in SPECIALS] == list(range(len(SPECIALS)))  # specials first, in order


def test_wordpiece_fit_matches_a_bare_fit_in_size_and_keeps_subwords_ordinary(texts):
    ours, bare = train_wordpiece(texts, SPECIALS), _bare_fit(texts)
    # the same algorithm with its ties broken in a fixed order: as many tokens, and about as many subwords (two
    # bare fits differ by a few themselves; numbering the subwords before the alphabet gave 15% more)
    assert len(ours.get_vocab()) == len(bare.get_vocab())
    subwords = [sum(t.startswith("##") for t in tok.get_vocab()) for tok in (ours, bare)]
    assert abs(subwords[0] - subwords[1]) <= 0.03 * subwords[1], subwords
    special = {t.content for t in ours.get_added_tokens_decoder().values() if t.special}
    assert special == set(SPECIALS)  # the numbered-up-front ##x tokens are ordinary word pieces
    encoding = ours.encode("refurbished")
    assert "[UNK]" not in encoding.tokens and ours.decode(encoding.ids) == "refurbished"


def test_seeded_generator_is_a_function_of_seed_epoch_and_keys():
    def draw(seed, keys, epoch=0):
        return torch.rand(4, generator=seeded_generator(seed, keys, epoch))

    assert torch.equal(draw(1, ["a", "b"]), draw(1, ["a", "b"]))
    assert not torch.equal(draw(1, ["a", "b"]), draw(1, ["b", "a"]))
    assert not torch.equal(draw(1, ["a", "b"]), draw(2, ["a", "b"]))
    assert not torch.equal(draw(1, ["a", "b"]), draw(1, ["a", "b"], epoch=1))


def test_seeded_collator_mixin():
    class Collator(SeededCollatorMixin):
        def __init__(self, generator=None, seed=None):
            self._init_randomness(generator, seed)

    with pytest.raises(ValueError, match="generator or a seed"):
        Collator(torch.Generator(), 1)
    given = torch.Generator()
    assert Collator(given)._batch_generator(["x"]) is given
    assert Collator()._batch_generator(["x"]) is None  # the global RNG
    seeded = Collator(seed=3)
    first = torch.rand(3, generator=seeded._batch_generator(["x"]))
    seeded.set_epoch(2)
    assert not torch.equal(first, torch.rand(3, generator=seeded._batch_generator(["x"])))
