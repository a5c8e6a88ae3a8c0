"""CERES models: the shared contract (one tester per head) and CERES-specific known answers."""

import pytest
import torch
from transformers import AutoConfig, AutoModel, AutoModelForPreTraining, AutoProcessor, BertConfig, BertModel

from model_tester import ModelTesterMixin
from session_transformers.auto import AutoModelForSessionRetrieval
from session_transformers.models.ceres import (
    CeresConfig,
    CeresForPreTraining,
    CeresForSessionRetrieval,
    CeresMaskingCollator,
    CeresModel,
    CeresProcessor,
)
from session_transformers.models.ceres.modeling_ceres import (
    CeresCrossAttentionTransformer,
    latent_attention_mask,
    neighbourhood_average,
)
from test_processing_ceres import make_catalogue, make_processor, make_sessions

AutoConfig.register("ceres", CeresConfig, exist_ok=True)
AutoModel.register(CeresConfig, CeresModel, exist_ok=True)
AutoModelForPreTraining.register(CeresConfig, CeresForPreTraining, exist_ok=True)
AutoModelForSessionRetrieval.register(CeresConfig, CeresForSessionRetrieval, exist_ok=True)
AutoProcessor.register(CeresConfig, CeresProcessor, exist_ok=True)

PROCESSOR = make_processor(max_product_sequence_length=16)
CATALOGUE = make_catalogue()
TARGETS = [
    {"item_id": "book"},
    {"query": "red mug"},
    {"attribute": "color", "value": "red"},
    {"item_id": "mug"},
]


def tiny_config(**kwargs) -> CeresConfig:
    sizes = dict(
        vocab_size=len(PROCESSOR.tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=32,
        max_session_items=16,
        gnn_num_heads=2,
        num_cross_attention_layers=2,
        num_latent_tokens=3,
        retrieval_projection_size=16,
    )
    return CeresConfig(**{**sizes, **kwargs})


class _CeresTester(ModelTesterMixin):
    config_class = CeresConfig
    base_model_class = CeresModel
    invalid_config_kwargs = [
        {"hidden_size": 30},  # not a multiple of 4 heads
        {"gnn_num_heads": 3},
        {"num_latent_tokens": 0},
        {"mlm_probability": 1.5},
        {"mask_replace_probability": 0.95, "random_replace_probability": 0.1},
    ]

    def get_config(self):
        return tiny_config()

    def get_sessions(self):
        return make_sessions()  # queries + a repeated product, a length-1 session, no query, an image query

    def session_outputs(self, outputs):
        return outputs.session_embeddings


class TestCeresPreTraining(_CeresTester):
    head_classes = {CeresForPreTraining: AutoModelForPreTraining}

    def collate(self, config, sessions, with_labels=False):
        batch = PROCESSOR(sessions, CATALOGUE)
        if with_labels:
            collator = CeresMaskingCollator(
                PROCESSOR, config=config, generator=torch.Generator().manual_seed(0)
            )
            batch = collator.mask(batch)
        return dict(batch)


class TestCeresSessionRetrieval(_CeresTester):
    head_classes = {CeresForSessionRetrieval: AutoModelForSessionRetrieval}
    # Base-model-only checks already run in TestCeresPreTraining.
    test_config_round_trip = test_deterministic_in_eval = test_config_rejects_impossible_values = None
    test_parameter_count_is_finite = test_session_alone_equals_session_in_batch = None

    def collate(self, config, sessions, with_labels=False):
        if not with_labels:
            return dict(PROCESSOR(sessions, CATALOGUE))
        return dict(
            PROCESSOR(sessions, CATALOGUE, targets=TARGETS[: len(sessions)], negatives=[{"item_id": "dvd"}])
        )


# --- CERES-specific checks ---------------------------------------------------------------------------------------


def test_latent_attention_mask_pattern():
    allowed = latent_attention_mask(torch.tensor([[1, 1, 0]]), num_latent=2)[0].int()
    expected = torch.tensor(
        [
            [1, 1, 0, 0, 0],  # latent tokens see only latent tokens
            [1, 1, 0, 0, 0],
            [1, 1, 1, 1, 0],  # item tokens see latents and non-padding item tokens
            [1, 1, 1, 1, 0],
            [1, 1, 1, 1, 0],
        ]
    )
    assert torch.equal(allowed, expected)


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_latent_tokens_do_not_see_item_tokens(attn):
    config = tiny_config()
    config._attn_implementation = attn
    torch.manual_seed(0)
    block = CeresCrossAttentionTransformer(config).eval()
    latent, tokens = torch.randn(2, 3, 32), torch.randn(2, 5, 32)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0]])
    with torch.no_grad():
        a = block(latent, tokens, mask)
        b = block(latent, tokens + torch.randn_like(tokens), mask)
    torch.testing.assert_close(a[:, :3], b[:, :3])
    assert not torch.allclose(a[:, 3:], b[:, 3:])


def test_neighbourhood_average_known_answer():
    latent = torch.tensor([1.0, 2.0, 4.0]).view(3, 1, 1).expand(3, 2, 1)
    edge_index = torch.tensor([[0, 0, 1, 2], [1, 1, 2, 2]])  # 0->1 twice (two relations), 1->2, a self loop
    out = neighbourhood_average(latent, edge_index)
    assert out[:, 0, 0].tolist() == [1.0, 1.5, 3.0]
    assert torch.equal(out[:, 0], out[:, 1])


def test_model_uses_the_neighbourhood_of_each_item():
    batch = PROCESSOR(make_sessions()[:1], CATALOGUE)
    model = CeresModel(tiny_config()).eval()
    with torch.no_grad():
        out = model(**batch)
    expected = neighbourhood_average(model.latent_mlp(out.graph_item_embeddings), batch["edge_index"])
    torch.testing.assert_close(out.latent_conditioning_tokens, expected)
    assert out.latent_conditioning_tokens.shape == (6, 3, 32)


def test_tied_mlm_weights_stay_tied_after_reload(tmp_path):
    model = CeresForPreTraining(tiny_config())
    assert model.lm_head.decoder.weight is model.ceres.get_input_embeddings().weight
    model.save_pretrained(tmp_path)
    reloaded = CeresForPreTraining.from_pretrained(tmp_path, dtype=torch.float32)
    assert reloaded.lm_head.decoder.weight is reloaded.ceres.get_input_embeddings().weight
    torch.testing.assert_close(reloaded.lm_head.decoder.weight, model.lm_head.decoder.weight)


def test_resize_token_embeddings_after_adding_attribute_types():
    proc = make_processor()
    model = CeresForPreTraining(tiny_config())
    with pytest.warns(UserWarning):
        proc.add_attribute_names(["pattern"])
    model.resize_token_embeddings(len(proc.tokenizer))
    assert model.lm_head.decoder.weight.shape[0] == len(proc.tokenizer) == model.config.vocab_size
    assert model.lm_head.decoder.bias.shape[0] == len(proc.tokenizer)


def test_item_encoder_from_bert(tmp_path):
    config = tiny_config()
    bert_config = BertConfig(
        vocab_size=config.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=32,
    )
    torch.manual_seed(1)
    bert = BertModel(bert_config).eval()
    bert.save_pretrained(tmp_path)
    model = CeresModel(config).eval()
    report = model.load_item_encoder_from_bert(tmp_path)
    assert len(report["loaded"]) == 4 + 2 * 16 and report["unused"] == [
        "pooler.dense.bias",
        "pooler.dense.weight",
    ]
    enc, src = model.item_encoder, bert.state_dict()
    assert torch.equal(enc.embeddings.word_embeddings.weight, src["embeddings.word_embeddings.weight"])
    assert torch.equal(
        enc.layers[1].attention.query.weight, src["encoder.layer.1.attention.self.query.weight"]
    )
    assert torch.equal(enc.layers[0].output_layer_norm.bias, src["encoder.layer.0.output.LayerNorm.bias"])
    batch = PROCESSOR(make_sessions(), CATALOGUE)
    with torch.no_grad():
        ours = enc(batch["input_ids"], batch["attention_mask"])
        theirs = bert(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    keep = batch["attention_mask"].bool()
    torch.testing.assert_close(ours[keep], theirs[keep], atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="BERT has 2 layers but num_hidden_layers is 3"):
        CeresModel(tiny_config(num_hidden_layers=3)).load_item_encoder_from_bert(tmp_path)


def test_retrieval_without_conditioning_uses_the_item_encoder_only():
    model = CeresForSessionRetrieval(tiny_config(retrieval_use_conditioning=False)).train()
    batch = PROCESSOR(make_sessions(), CATALOGUE, targets=TARGETS)
    model(**batch).loss.backward()
    assert model.ceres.pgnn.layers[0].att_src.grad is None
    assert model.ceres.item_encoder.layers[0].attention.query.weight.grad is not None


def test_without_gnn_ablation_runs():
    model = CeresForPreTraining(tiny_config(use_gnn=False)).eval()
    assert model.ceres.pgnn is None
    batch = CeresMaskingCollator(
        PROCESSOR, config=model.config, generator=torch.Generator().manual_seed(0)
    ).mask(PROCESSOR(make_sessions(), CATALOGUE))
    assert torch.isfinite(model(**batch).loss)


def test_pretraining_reduces_the_mlm_loss():
    torch.manual_seed(0)
    model = CeresForPreTraining(
        tiny_config(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    ).train()
    collator = CeresMaskingCollator(
        PROCESSOR, CATALOGUE, config=model.config, generator=torch.Generator().manual_seed(0)
    )
    batches = [collator(make_sessions()) for _ in range(2)]
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)

    def evaluate():
        with torch.no_grad():
            outs = [model(**b) for b in batches]
        return sum(o.mlm_loss.item() for o in outs) / 2, sum(o.gmlm_loss.item() for o in outs) / 2

    before = evaluate()
    for step in range(20):
        loss = model(**batches[step % 2]).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = evaluate()
    assert after[0] < 0.7 * before[0] and after[1] < 0.7 * before[1], (before, after)


# --- tasks ------------------------------------------------------------------------------------------------------


def test_task_builders():
    from session_transformers.models.ceres.tasks import (
        entity_linking_examples,
        product_search_examples,
        query_search_examples,
    )

    sessions = make_sessions()
    ps = product_search_examples(sessions)
    assert [(e["session_id"], e["targets"]) for e in ps] == [("queries", [{"item_id": "book"}])]
    assert all(ev.get("item_id") != "book" for ev in ps[0]["events"]) and len(ps[0]["events"]) == 6
    qs = query_search_examples(sessions)
    assert [(e["session_id"], e["targets"], len(e["events"])) for e in qs] == [
        ("queries", [{"query": "harry potter book"}], 5)
    ]  # "image": only an image query before its query
    el = entity_linking_examples(sessions, CATALOGUE)
    assert el[0]["targets"] == [
        {"attribute": "category", "value": "books"},
        {"attribute": "color", "value": "red"},
    ]
    labelled = [
        {**sessions[2], "labels": {"purchased_item_id": "razor", "purchased_attributes": {"color": "blue"}}}
    ]
    assert product_search_examples(labelled)[0]["targets"] == [{"item_id": "razor"}]
    assert entity_linking_examples(labelled, CATALOGUE)[0]["targets"] == [
        {"attribute": "color", "value": "blue"}
    ]


def test_evaluate_retrieval_and_collator():
    from session_transformers.models.ceres import tasks
    from session_transformers.models.ceres.retrieval import evaluate_retrieval
    from session_transformers.models.ceres.tasks import CeresRetrievalCollator, entity_linking_examples

    assert not hasattr(tasks, "evaluate_retrieval")  # one evaluation: the recipe's, that the trainers run
    sessions = make_sessions()
    sessions += [
        {
            **sessions[2],
            "session_id": "bought",
            "events": [*sessions[2]["events"], *make_sessions()[0]["events"][-1:]],
        }
    ]
    examples = entity_linking_examples(sessions, CATALOGUE)
    model = CeresForSessionRetrieval(tiny_config())
    batch = CeresRetrievalCollator(PROCESSOR, CATALOGUE, negatives=[{"item_id": "dvd"}])(examples)
    assert batch["labels"].shape == (2, 3) and torch.isfinite(model(**batch).loss)
    result = evaluate_retrieval(model, PROCESSOR, examples, CATALOGUE)
    assert {"MAP@1", "Recall@1", "ItemRecall@1", "MAP@64", "Recall@64", "ItemRecall@64"} <= set(result)
    assert result["num_samples"] == 2 and result["pool_size"] == 2
    assert result["Recall@32"] == result["ItemRecall@32"] == 100.0  # two relevant entities in a pool of two
    assert model.training  # restored
    with pytest.raises(ValueError, match="not in the eval pool"):
        evaluate_retrieval(model, PROCESSOR, examples, CATALOGUE, candidates=[{"item_id": "dvd"}])


def _pool_setup(chunk_size: int = 256):
    from session_transformers.models.ceres import CeresCandidatePool

    model = CeresForSessionRetrieval(tiny_config(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0))
    inputs = PROCESSOR.encode_candidates(TARGETS, CATALOGUE)
    pool = CeresCandidatePool.from_inputs(inputs, chunk_size=chunk_size)
    batches = [PROCESSOR(make_sessions()[i : i + 2], CATALOGUE) for i in (0, 2, 3)]
    return model, inputs, pool, batches


def _count_candidate_encodings(model) -> list[int]:
    calls = [0]
    encode = model.embed_candidates

    def counted(*args, **kwargs):
        calls[0] += 1
        return encode(*args, **kwargs)

    model.embed_candidates = counted
    return calls


def test_candidate_pool_is_embedded_once_per_evaluation_and_scores_as_inputs_do():
    model, inputs, pool, batches = _pool_setup()
    assert len(pool) == len(TARGETS)
    model.eval()
    with torch.no_grad():
        per_batch = [model(**b, **inputs).logits for b in batches]  # the pool's inputs in every batch
        calls = _count_candidate_encodings(model)
        pooled = [model(**b, candidate_pool=pool).logits for b in batches]
    assert calls[0] == 1  # three batches, one embedding of the pool
    for old, new in zip(per_batch, pooled):
        assert torch.equal(old, new)
    with torch.no_grad():  # precomputed embeddings: the same scores
        given = model.embed_candidate_pool(pool)
        assert torch.equal(model(**batches[0], candidate_embeddings=given).logits, per_batch[0])
    with pytest.raises(ValueError, match="one way"):
        model(**batches[0], **inputs, candidate_pool=pool)
    # a copy of the pool (as a DataLoader worker sends it) shares the cache: same content, same key
    import copy

    twin = copy.deepcopy(pool)
    assert twin.key == pool.key and twin is not pool
    with torch.no_grad():
        model(**batches[0], candidate_pool=twin)
    assert calls[0] == 1


def test_candidate_pool_chunks_match_one_pass():
    model, inputs, pool, _ = _pool_setup()
    _, _, chunked, _ = _pool_setup(chunk_size=1)
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model.embed_candidate_pool(chunked), model.embed_candidates(**inputs))
    assert sum(1 for _ in chunked.chunks()) == len(TARGETS)


@pytest.mark.parametrize("fused", [False, True])
def test_candidate_pool_cache_follows_the_weights(fused):
    model, _, pool, batches = _pool_setup()
    model.eval()  # eval mode throughout: only the weights change
    calls = _count_candidate_encodings(model)
    with torch.no_grad():
        first = model(**batches[0], candidate_pool=pool).logits
        model(**batches[1], candidate_pool=pool)
    assert calls[0] == 1
    # an optimizer step (fused AdamW does not bump parameter versions; the step hook sees it)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.05, fused=fused)
    train_batch = PROCESSOR(make_sessions()[:2], CATALOGUE, targets=[TARGETS[0], TARGETS[3]])
    model(**train_batch).loss.backward()  # in-batch candidates: one more encoding
    optimizer.step()
    assert calls[0] == 2
    with torch.no_grad():
        after = model(**batches[0], candidate_pool=pool).logits
    assert calls[0] == 3 and not torch.equal(after, first)
    # an in-place edit under no_grad, and load_state_dict
    with torch.no_grad():
        model.candidate_projection.bias.add_(0.5)
        model(**batches[0], candidate_pool=pool)
        assert calls[0] == 4
        model.load_state_dict(model.state_dict())
        model(**batches[0], candidate_pool=pool)
        assert calls[0] == 5
        model(**batches[0], candidate_pool=pool)
        assert calls[0] == 5
    # train() / eval() start afresh; training mode and gradients never use the cache
    model.train()
    assert model._candidate_pool_cache is None
    model(**batches[0], candidate_pool=pool)
    model(**batches[0], candidate_pool=pool)
    assert calls[0] == 7 and model._candidate_pool_cache is None
    model.eval()
    model(**batches[0], candidate_pool=pool)  # gradients on
    assert calls[0] == 8 and model._candidate_pool_cache is None


def test_candidate_pool_cache_is_never_saved(tmp_path):
    import copy
    import pickle

    from safetensors.torch import load_file

    model, _, pool, batches = _pool_setup()
    model.eval()
    with torch.no_grad():
        model(**batches[0], candidate_pool=pool)
    assert model._candidate_pool_cache is not None
    assert not any("cache" in k for k in model.state_dict())
    model.save_pretrained(tmp_path)
    saved = load_file(str(tmp_path / "model.safetensors"))
    assert set(saved) == set(model.state_dict())
    assert model._candidate_pool_cache is not None  # saving leaves the live cache alone
    assert copy.deepcopy(model)._candidate_pool_cache is None
    assert pickle.loads(pickle.dumps(model))._candidate_pool_cache is None
    reloaded = CeresForSessionRetrieval.from_pretrained(tmp_path)
    assert reloaded._candidate_pool_cache is None


def test_retrieval_loss_uses_the_config_margin(monkeypatch):
    from session_transformers import losses

    seen = []
    hinge = losses.cosine_hinge_loss

    def spy(*args, **kwargs):
        seen.append(kwargs.get("margin"))
        return hinge(*args, **kwargs)

    monkeypatch.setattr(losses, "cosine_hinge_loss", spy)
    batch = PROCESSOR(make_sessions()[:2], CATALOGUE, targets=[TARGETS[0], TARGETS[3]])
    model = CeresForSessionRetrieval(tiny_config(retrieval_margin=0.7)).eval()
    with torch.no_grad():
        out = model(**batch)
    assert seen == [0.7]  # passed explicitly, by keyword
    # the known answer: mean over (session, non-relevant candidate) of max(0, 0.7 - cos(s, y) + cos(s, n))
    s, c = out.session_embeddings, out.candidate_embeddings
    cos = s @ c.T
    expected = torch.stack(
        [(0.7 - cos[0, 0] + cos[0, 1]).clamp(min=0), (0.7 - cos[1, 1] + cos[1, 0]).clamp(min=0)]
    ).mean()
    torch.testing.assert_close(out.loss, expected)


def test_sentence_pooling_mean_is_the_masked_token_mean():
    model = CeresModel(tiny_config(sentence_pooling="mean")).eval()
    batch = PROCESSOR(make_sessions(), CATALOGUE)
    with torch.no_grad():
        tokens, items = model.encode_items(
            batch["input_ids"], batch["attention_mask"], batch["sequence_item_index"]
        )
    mask = batch["attention_mask"].unsqueeze(-1).float()
    sentences = (tokens * mask).sum(1) / mask.sum(1)
    first_item = batch["sequence_item_index"] == 0
    torch.testing.assert_close(items[0], sentences[first_item].mean(0))
    assert not torch.allclose(items[0], tokens[first_item][:, 0].mean(0))  # not the first-token pooling
    with pytest.raises(ValueError, match="sentence_pooling"):
        tiny_config(sentence_pooling="max")


def test_retrieval_projections_start_as_identity_and_load_as_saved(tmp_path):
    model = CeresForSessionRetrieval(tiny_config(retrieval_projection_size=16))
    for proj in (model.session_projection, model.candidate_projection):
        assert torch.equal(proj.weight, torch.eye(16, model.config.hidden_size)) and not proj.bias.any()
    with torch.no_grad():
        model.session_projection.weight.add_(1.0)
    model.save_pretrained(tmp_path)
    loaded = CeresForSessionRetrieval.from_pretrained(tmp_path)
    assert torch.equal(loaded.session_projection.weight, model.session_projection.weight)
