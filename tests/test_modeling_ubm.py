"""UBM models: the shared contract (one tester per head) and UBM-specific known answers."""

import math

import numpy as np
import pytest
import torch
from transformers import AutoConfig, AutoModel, AutoModelForPreTraining, AutoProcessor, BertConfig, BertModel

from model_tester import ModelTesterMixin
from session_transformers import losses
from session_transformers.auto import (
    AutoModelForNextItemPrediction,
    AutoModelForPurchaseIntent,
    AutoModelForRemainingLength,
)
from session_transformers.baselines import minilm_path
from session_transformers.models.ubm import (
    DropoutMasking,
    UbmCandidatePool,
    UbmConfig,
    UbmForNextItemPrediction,
    UbmForPreTraining,
    UbmForPurchaseIntent,
    UbmForRemainingLength,
    UbmModel,
    UbmProcessor,
    UbmStage1Collator,
    UbmStage2Collator,
    next_item_pairs,
)
from session_transformers.models.ubm.modeling_ubm import sinusoidal_positions
from test_processing_ubm import make_catalogue, make_processor, make_sessions

AutoConfig.register("ubm", UbmConfig, exist_ok=True)
AutoModel.register(UbmConfig, UbmModel, exist_ok=True)
AutoModelForPreTraining.register(UbmConfig, UbmForPreTraining, exist_ok=True)
AutoModelForPurchaseIntent.register(UbmConfig, UbmForPurchaseIntent, exist_ok=True)
AutoModelForRemainingLength.register(UbmConfig, UbmForRemainingLength, exist_ok=True)
AutoModelForNextItemPrediction.register(UbmConfig, UbmForNextItemPrediction, exist_ok=True)
AutoProcessor.register(UbmConfig, UbmProcessor, exist_ok=True)

PROCESSOR = make_processor()
CATALOGUE = make_catalogue()
MINILM = minilm_path()


def tiny_config(**kwargs) -> UbmConfig:
    sizes = dict(
        vocab_size=len(PROCESSOR.tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        num_session_layers=2,
        session_num_attention_heads=4,
        session_intermediate_size=64,
    )
    return UbmConfig(**{**sizes, **kwargs})


class _UbmTester(ModelTesterMixin):
    config_class = UbmConfig
    base_model_class = UbmModel
    invalid_config_kwargs = [
        {"hidden_size": 30},  # not a multiple of the heads
        {"num_session_layers": -1},
        {"interaction_pooling": "max"},
        {"temperature": 0.0},
        {"mask_token_probability": 0.9, "random_token_probability": 0.2},
        {"next_item_similarity": "l2"},
        {"pad_token_id": 10_000},
    ]

    def get_config(self):
        return tiny_config()

    def get_sessions(self):
        return (
            make_sessions()
        )  # a one-interaction session, repeats, different lengths, an image query dropped

    def plain(self, sessions):
        return dict(PROCESSOR(sessions, CATALOGUE))

    def session_outputs(self, outputs):
        return outputs.session_embeddings


class TestUbmPreTraining(_UbmTester):
    head_classes = {UbmForPreTraining: AutoModelForPreTraining}

    def collate(self, config, sessions, with_labels=False):
        if not with_labels:
            return self.plain(sessions)
        return UbmStage2Collator(PROCESSOR, CATALOGUE, config, seed=0)(sessions)


class TestUbmPurchaseIntent(_UbmTester):
    head_classes = {UbmForPurchaseIntent: AutoModelForPurchaseIntent}

    def collate(self, config, sessions, with_labels=False):
        batch = self.plain(sessions)
        if with_labels:
            batch["labels"] = torch.tensor([float(i % 2) for i in range(len(sessions))])
        return batch


class TestUbmRemainingLength(_UbmTester):
    head_classes = {UbmForRemainingLength: AutoModelForRemainingLength}

    def collate(self, config, sessions, with_labels=False):
        batch = self.plain(sessions)
        if with_labels:
            batch["labels"] = torch.arange(len(sessions), dtype=torch.float) + 3.0
        return batch


class TestUbmNextItem(_UbmTester):
    head_classes = {UbmForNextItemPrediction: AutoModelForNextItemPrediction}

    def collate(self, config, sessions, with_labels=False):
        batch = self.plain(sessions)
        items = PROCESSOR.encode_items(list(CATALOGUE), CATALOGUE)
        batch["candidate_input_ids"] = items["input_ids"]
        batch["candidate_attention_mask"] = items["attention_mask"]
        if with_labels:
            batch["labels"] = torch.tensor([i % len(CATALOGUE) for i in range(len(sessions))])
        return batch


# --- UBM specifics -------------------------------------------------------------------------------------------


def _model(cls=UbmModel, **kwargs):
    torch.manual_seed(0)
    return cls(tiny_config(**kwargs)).eval()


def test_sinusoidal_positions_known_answer():
    pe = sinusoidal_positions(3, 8)
    assert torch.allclose(pe[0, 0::2], torch.zeros(4)) and torch.allclose(pe[0, 1::2], torch.ones(4))
    assert pe[1, 0].item() == pytest.approx(math.sin(1.0))
    assert pe[2, 2].item() == pytest.approx(math.sin(2.0 / 10000 ** (2 / 8)))
    assert pe[1, 3].item() == pytest.approx(math.cos(1.0 / 10000 ** (2 / 8)))


def test_interaction_encoder_runs_only_on_real_interactions():
    model = _model()
    batch = PROCESSOR(make_sessions(), CATALOGUE)
    seen = []
    model.interaction_encoder.register_forward_hook(
        lambda m, args, kwargs, out: seen.append(kwargs["input_ids"].shape), with_kwargs=True
    )
    with torch.no_grad():
        out = model(**batch)
    n_real = int(batch["interaction_mask"].sum())
    assert seen == [(n_real, int(batch["attention_mask"].sum(1).max()))]
    assert n_real < batch["interaction_mask"].numel()  # padding slots exist and were skipped
    assert out.interaction_embeddings.shape == (n_real, 32)


def test_session_embedding_is_the_mean_of_real_outputs():
    model = _model()
    batch = PROCESSOR(make_sessions(), CATALOGUE)
    with torch.no_grad():
        out = model(**batch)
        mask = batch["interaction_mask"]
        for b in range(mask.shape[0]):
            real = out.last_hidden_state[b][mask[b]]
            torch.testing.assert_close(out.session_embeddings[b], real.mean(0))
        assert (out.last_hidden_state[~mask] == 0).all()
        # the interaction embedding is the [CLS] output of the BERT encoder
        cls = model.interaction_encoder(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
        ).last_hidden_state[:, 0]
        torch.testing.assert_close(out.interaction_embeddings, cls)


def test_mean_pooled_baseline_is_the_mean_of_interaction_embeddings():
    model = _model(num_session_layers=0, use_session_positions=False, interaction_pooling="mean")
    batch = PROCESSOR(make_sessions(), CATALOGUE)
    with torch.no_grad():
        out = model(**batch)
        mask = batch["attention_mask"][..., None].float()
        tokens = model.interaction_encoder(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
        )
        per_row = (tokens.last_hidden_state * mask).sum(1) / mask.sum(1)
    torch.testing.assert_close(out.interaction_embeddings, per_row)
    counts = batch["interaction_mask"].sum(1).tolist()
    for b, part in enumerate(per_row.split(counts)):
        torch.testing.assert_close(out.session_embeddings[b], part.mean(0))


def test_session_order_matters_through_positions():
    model = _model()
    session = make_sessions()[0]
    swapped = {
        "session_id": "s",
        "events": [session["events"][1], session["events"][0], *session["events"][2:]],
    }
    with torch.no_grad():
        a = model(**PROCESSOR(session, CATALOGUE)).session_embeddings
        b = model(**PROCESSOR(swapped, CATALOGUE)).session_embeddings
    assert not torch.allclose(a, b, atol=1e-5)


def test_stage1_losses_known_answer_and_switches():
    pairs = next_item_pairs(make_sessions()) * 2
    config = tiny_config()
    batch = UbmStage1Collator(PROCESSOR, CATALOGUE, config, seed=0)(pairs)
    model = _model(UbmForPreTraining)
    with torch.no_grad():
        out = model(**batch)
        enc = model.ubm.encode_interactions
        items = enc(batch["item_input_ids"], batch["item_attention_mask"])
        masked = enc(batch["masked_item_input_ids"], batch["item_attention_mask"])
        n = len(pairs)
        l1 = losses.info_nce(items, masked, 0.05)
        l2 = losses.info_nce(items[:n], items[n:], 0.05)
    torch.testing.assert_close(out.loss1, l1, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(out.loss2, l2, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(out.loss, l1 + l2, atol=1e-5, rtol=1e-4)
    no1 = _model(UbmForPreTraining, use_loss1=False)
    with torch.no_grad():
        out = no1(**batch)
    assert out.loss1 is None and torch.allclose(out.loss, out.loss2)
    with pytest.raises(ValueError, match="nothing to train"):
        _model(UbmForPreTraining, use_loss1=False, use_loss2=False)(**batch)


def test_stage2_losses_known_answer_and_switches():
    config = tiny_config()
    batch = UbmStage2Collator(PROCESSOR, CATALOGUE, config, seed=0)(make_sessions())
    model = _model(UbmForPreTraining)
    with torch.no_grad():
        out = model(**batch)
        ubm = model.ubm
        mask = batch["interaction_mask"]
        h = ubm(batch["input_ids"], batch["attention_mask"], mask).session_embeddings
        h_re = ubm(batch["reordered_input_ids"], batch["reordered_attention_mask"], mask).session_embeddings
        h_ma = ubm(batch["masked_input_ids"], batch["attention_mask"], mask).session_embeddings
    torch.testing.assert_close(out.loss3, losses.info_nce(h, h_re, 0.05), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(out.loss4, losses.info_nce(h, h_ma, 0.05), atol=1e-5, rtol=1e-4)
    no3 = _model(UbmForPreTraining, use_loss3=False)
    with torch.no_grad():
        out = no3(**batch)
    assert out.loss3 is None and torch.allclose(out.loss, out.loss4)
    decoupled = _model(UbmForPreTraining, decoupled_contrastive=True)
    with torch.no_grad():
        assert not torch.allclose(decoupled(**batch).loss, model(**batch).loss)


@pytest.mark.parametrize("stage", [1, 2])
def test_activation_checkpointing_recomputes_the_interaction_encoder_per_chunk(stage):
    """Under activation checkpointing the Interaction Encoder runs as a whole on chunks of
    ``checkpoint_chunk_size`` rows, each checkpointed once (its own layers are not checkpointed again inside).
    Without dropout the step's loss and gradients are the plain step's; with dropout they are those of the same
    chunks run without checkpointing (the recompute replays the random draws; chunking changes which draws)."""
    sessions = make_sessions()
    if stage == 1:
        batch = UbmStage1Collator(PROCESSOR, CATALOGUE, tiny_config(), seed=0)(next_item_pairs(sessions) * 2)
        rows = 2 * batch["item_input_ids"].shape[0]  # the items and their masked copies, two calls
    else:
        batch = UbmStage2Collator(PROCESSOR, CATALOGUE, tiny_config(), seed=0)(sessions)
        rows = 3 * batch["input_ids"].shape[0]  # three views

    def step(mode: str, dropout: float, chunks: list):
        model = _model(
            UbmForPreTraining,
            checkpoint_chunk_size=3,
            hidden_dropout_prob=dropout,
            attention_probs_dropout_prob=dropout,
        ).train()
        if mode != "plain":
            model.activation_checkpointing_enable()
            layers = [
                m for m in model.ubm.interaction_encoder.modules() if hasattr(m, "gradient_checkpointing")
            ]
            assert layers and not any(m.gradient_checkpointing for m in layers)
            func = model.ubm._gradient_checkpointing_func if mode == "checkpointed" else (lambda f, *a: f(*a))
            model.ubm._gradient_checkpointing_func = lambda f, ids, mask: (
                chunks.append(len(ids)) or func(f, ids, mask)
            )
        torch.manual_seed(1)
        out = model(**batch)
        out.loss.backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        return model, out.loss.detach(), grads

    def assert_same(a, b):
        torch.testing.assert_close(a[1], b[1], atol=1e-6, rtol=1e-5)
        assert a[2].keys() == b[2].keys()
        for name in a[2]:
            torch.testing.assert_close(a[2][name], b[2][name], atol=1e-6, rtol=1e-4, msg=name)

    chunks: list[int] = []
    checkpointed = step("checkpointed", 0.0, chunks)
    assert sum(chunks) == rows and max(chunks) == 3 and len(chunks) >= rows // 3
    assert_same(checkpointed, step("plain", 0.0, []))
    assert_same(step("checkpointed", 0.1, []), step("chunked", 0.1, []))

    model = checkpointed[0].eval()
    chunks.clear()
    with torch.no_grad():  # inference never goes through the checkpointed path
        model.ubm(**PROCESSOR(sessions, CATALOGUE))
    assert not chunks


def test_dropout_masking_gives_two_views_in_training_only():
    model = _model()
    batch = PROCESSOR(make_sessions()[:2], CATALOGUE)
    doubled = DropoutMasking()(dict(batch))
    model.train()
    with torch.no_grad():
        out = model(**doubled).session_embeddings
    assert not torch.allclose(out[:2], out[2:])
    model.eval()
    with torch.no_grad():
        out = model(**doubled).session_embeddings
    torch.testing.assert_close(out[:2], out[2:])


def test_heads_outputs_and_losses_known_answer():
    batch = dict(PROCESSOR(make_sessions(), CATALOGUE))
    pip = _model(UbmForPurchaseIntent)
    labels = torch.tensor([1.0, 0.0, 1.0, 0.0])
    with torch.no_grad():
        out = pip(**batch, labels=labels)
    expected = torch.nn.functional.binary_cross_entropy(torch.sigmoid(out.logits), labels)
    torch.testing.assert_close(out.loss, expected, atol=1e-5, rtol=1e-4)
    rlp = _model(UbmForRemainingLength, remaining_length_mean=10.0, remaining_length_std=4.0)
    lengths = torch.tensor([3.0, 8.0, 12.0, 20.0])
    with torch.no_grad():
        out = rlp(**batch, labels=lengths)
    torch.testing.assert_close(out.loss, (((out.logits - lengths) / 4.0) ** 2).mean(), atol=1e-5, rtol=1e-4)


def test_next_item_scores_and_pool_cache():
    model = _model(UbmForNextItemPrediction)
    batch = dict(PROCESSOR(make_sessions(), CATALOGUE))
    pool = UbmCandidatePool.from_items(PROCESSOR, list(CATALOGUE), CATALOGUE, chunk_size=3)
    with torch.no_grad():
        out = model(**batch, candidate_pool=pool, labels=torch.tensor([1, 3, 2, -100]))
        items = torch.from_numpy(model.encode_items(list(CATALOGUE), PROCESSOR, CATALOGUE))
        torch.testing.assert_close(out.logits, out.session_embeddings @ items.T, atol=1e-4, rtol=1e-4)
        expected = torch.nn.functional.cross_entropy(out.logits[:3], torch.tensor([1, 3, 2]))
        torch.testing.assert_close(out.loss, expected, atol=1e-5, rtol=1e-4)
        first = model.embed_candidate_pool(pool)
        assert model.embed_candidate_pool(pool) is first  # cached within one evaluation
        model.ubm.session_encoder.encoder.layers[0].linear1.weight.add_(1.0)  # the weights change
        assert model.embed_candidate_pool(pool) is not first


def test_recommend_returns_item_ids_and_ranks_unseen_items():
    model = _model(UbmForNextItemPrediction)
    catalogue = {
        **CATALOGUE,
        "new": {
            "item_id": "new",
            "title": "iphone case clear slim",
            "category": ["phones", "cases"],
            "brand": "apple",
            "attributes": [{"name": "colour", "value": "clear"}],
        },
    }
    sessions = make_sessions()[:2]
    top = model.recommend(sessions, list(catalogue), top_k=3, processor=PROCESSOR, catalogue=catalogue)
    assert len(top) == 2 and all(len(row) == 3 for row in top)
    with torch.no_grad():
        h = model.encode_sessions(sessions, PROCESSOR, catalogue)
        v = model.encode_items(list(catalogue), PROCESSOR, catalogue)
    scores = h @ v.T
    for row, s in zip(top, scores):
        assert [i for i, _ in row] == [list(catalogue)[j] for j in np.argsort(-s)[:3]]
    everything = model.recommend(
        sessions, list(catalogue), top_k=10, processor=PROCESSOR, catalogue=catalogue
    )
    assert "new" in {i for i, _ in everything[0]}  # a never-seen item is ranked from its text


def test_encode_sessions_returns_numpy_equal_to_forward():
    model = _model(UbmForPurchaseIntent)
    emb = model.encode_sessions(make_sessions(), PROCESSOR, CATALOGUE, batch_size=3)
    assert isinstance(emb, np.ndarray) and emb.shape == (4, 32)
    with torch.no_grad():
        ref = model.ubm(**PROCESSOR(make_sessions(), CATALOGUE)).session_embeddings
    np.testing.assert_allclose(emb, ref.numpy(), atol=1e-5)


def test_bad_inputs_are_clear():
    model = _model()
    batch = dict(PROCESSOR(make_sessions(), CATALOGUE))
    with pytest.raises(ValueError, match="real slots"):
        model(batch["input_ids"][:-1], batch["attention_mask"][:-1], batch["interaction_mask"])
    with pytest.raises(ValueError, match="max_interactions"):
        small = _model(max_interactions=2)
        small(**batch)


def test_interaction_encoder_from_a_bert_checkpoint(tmp_path):
    bert_config = BertConfig(
        vocab_size=200, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64
    )
    torch.manual_seed(1)
    bert = BertModel(bert_config).eval()
    bert.save_pretrained(tmp_path)
    config = UbmConfig.from_bert_config(
        bert_config,
        vocab_size=210,
        num_session_layers=1,
        session_num_attention_heads=4,
        session_intermediate_size=64,
    )
    model = UbmModel(config).eval()
    report = model.load_interaction_encoder_from_bert(tmp_path)
    assert any("pooler" in k for k in report["unused"]) and len(report["loaded"]) > 10
    ids = torch.randint(1, 200, (3, 7))
    mask = torch.ones_like(ids)
    with torch.no_grad():
        expected = bert(input_ids=ids, attention_mask=mask).last_hidden_state[:, 0]
        torch.testing.assert_close(model.encode_interactions(ids, mask), expected)
        words = model.get_input_embeddings().weight
        bert_words = bert.get_input_embeddings().weight
        # added rows start near BERT's mean embedding
        assert (words[200:] - bert_words.mean(0)).abs().mean() < (words[200:]).abs().mean()
    with pytest.raises(ValueError, match="layers"):
        UbmModel(
            UbmConfig.from_bert_config(bert_config, num_hidden_layers=3)
        ).load_interaction_encoder_from_bert(tmp_path)


def test_interaction_encoder_from_minilm():
    if MINILM is None:
        pytest.skip("MiniLM checkpoint not installed")
    proc = UbmProcessor.from_bert_tokenizer(str(MINILM), attribute_names=["colour", "size"])
    config = UbmConfig.from_bert_config(
        AutoConfig.from_pretrained(MINILM),
        vocab_size=len(proc.tokenizer),
        num_session_layers=1,
        session_num_attention_heads=4,
        session_intermediate_size=64,
    )
    assert (config.hidden_size, config.num_hidden_layers) == (384, 6)
    model = UbmModel(config).eval()
    report = model.load_interaction_encoder_from_bert(MINILM)
    assert len(report["loaded"]) >= 100
    with torch.no_grad():
        emb = model(**proc(make_sessions()[:2], CATALOGUE)).session_embeddings
    assert emb.shape == (2, 384) and torch.isfinite(emb).all()
