"""MUVCOG models: the shared model contract for the encoder and its three heads, hard-negative selection on a known
batch, the Eq. (9) loss on known inputs, the view ablations, the query-suggestion Avg.Sim."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from transformers import AutoModelForPreTraining

from model_tester import ModelTesterMixin
from session_transformers import AutoModelForClickPrediction, AutoModelForQuerySuggestion
from session_transformers.data.schema import image_event, item_event, query_event
from session_transformers.models.muvcog import (
    MuvcogConfig,
    MuvcogForClickPrediction,
    MuvcogForPreTraining,
    MuvcogForQuerySuggestion,
    MuvcogModel,
    MuvcogProcessor,
)
from session_transformers.models.muvcog.modeling_muvcog import shared_click_mask
from session_transformers.models.muvcog.processing_muvcog import click_code, mask_one_query
from session_transformers.models.muvcog.sources import _click_ids

WORDS = ["red", "dress", "long", "cotton", "summer", "lamp", "oak", "table"]
IMAGE_DIM = 6


def _image(seed: int) -> list[float]:
    return np.random.default_rng(seed).standard_normal(IMAGE_DIM).round(3).tolist()


def sessions() -> list[dict]:
    """Edge cases: one query of one word, an image-only session, a repeated word, product + image queries, long."""
    return [
        {"session_id": "one", "events": [query_event("search", "lamp", 0.0)]},
        {
            "session_id": "image",
            "events": [image_event("search", _image(1), 0.0), item_event("click", "B", 1.0)],
        },
        {
            "session_id": "mm",
            "events": [
                query_event("search", "red dress dress", 0.0),
                item_event("click", "A", 1.0),
                query_event("search", "red long cotton dress", 2.0, product=True),
                image_event("search", _image(2), 2.0),
                query_event("search", "long summer dress", 3.0),
                item_event("click", "C", 4.0),
            ],
        },
        {
            "session_id": "long",
            "events": [
                query_event("search", w, float(t)) for t, w in enumerate(["oak", "oak table", "table lamp"])
            ]
            + [image_event("search", _image(3), 9.0), query_event("search", "oak lamp", 10.0, product=True)],
        },
    ]


def processor() -> MuvcogProcessor:
    vectors = np.random.default_rng(0).standard_normal((len(WORDS), 8)).astype(np.float32)
    return MuvcogProcessor(
        WORDS, vectors, image_dim=IMAGE_DIM, item_vocab=["A", "B", "C"], max_target_words=3
    )


def tiny_config(**kwargs) -> MuvcogConfig:
    return MuvcogConfig(
        vocab_size=len(WORDS),
        word_dim=8,
        image_dim=IMAGE_DIM,
        hidden_size=8,
        discriminator_hidden_sizes=[16, 8],
        query_suggestion_hidden_size=12,
        num_items=3,
        click_hidden_size=8,
        **{"hard_negative_warmup_steps": 0, **kwargs},  # the paper's hard negatives unless a test asks
    )


class _MuvcogTester(ModelTesterMixin):
    config_class = MuvcogConfig
    base_model_class = MuvcogModel
    invalid_config_kwargs = [{"views": "three"}, {"negatives": "semi"}, {"hidden_size": 0}, {"word_dim": -1}]

    def get_config(self):
        return tiny_config()

    def get_sessions(self):
        return sessions()

    def inputs(self, sessions):
        return dict(processor()(sessions))

    def collate(self, config, sessions, with_labels=False):
        return self.inputs(sessions)

    def session_outputs(self, outputs):
        return outputs.session_embedding


class TestMuvcogPreTraining(_MuvcogTester):
    head_classes = {MuvcogForPreTraining: AutoModelForPreTraining}

    def collate(self, config, sessions, with_labels=False):
        batch = self.inputs(sessions)
        if with_labels:
            p = processor()
            encoded = [p.encode(s) for s in sessions]
            positives = p.views([mask_one_query(e, torch.Generator().manual_seed(0)) for e in encoded])
            batch.update(
                positive_global_view=positives["global_view"],
                positive_local_view=positives["local_view"],
                click_ids=_click_ids([[click_code(i) for i in p.clicked_items(s)] for s in sessions]),
            )
        return batch


class TestMuvcogQuerySuggestion(_MuvcogTester):
    head_classes = {MuvcogForQuerySuggestion: AutoModelForQuerySuggestion}

    def collate(self, config, sessions, with_labels=False):
        batch = self.inputs(sessions)
        if with_labels:
            batch["labels"] = processor().target_word_ids(
                ["red dress"] + ["oak table lamp"] * (len(sessions) - 1)
            )
        return batch


class TestMuvcogClickPrediction(_MuvcogTester):
    head_classes = {MuvcogForClickPrediction: AutoModelForClickPrediction}

    def collate(self, config, sessions, with_labels=False):
        batch = self.inputs(sessions)
        if not with_labels:  # the base model is called with these too: encoder inputs only
            return batch
        n = len(sessions)
        batch["query_words"] = torch.tensor([[0, 1], [2, -1], [5, 6], [7, -1]][:n])
        batch["query_image"] = torch.randn(n, IMAGE_DIM, generator=torch.Generator().manual_seed(0))
        batch["query_image_mask"] = torch.tensor([False, True, True, False][:n])
        batch["labels"] = torch.tensor([0, 1, 2, -100][:n])
        return batch


def test_config_defaults_are_the_papers():
    config = MuvcogConfig(vocab_size=10)
    assert (config.word_dim, config.image_dim, config.hidden_size) == (50, 512, 32)
    assert config.discriminator_hidden_sizes == [64, 32] and config.session_embedding_size == 64
    assert (config.views, config.negatives) == ("both", "hard")
    # a documented deviation (the config's docstring): random negatives first, then the paper's hard ones
    assert config.hard_negative_warmup_steps == 150
    assert MuvcogConfig(vocab_size=10, views="hlv").session_embedding_size == 32


def test_shared_click_mask_known_answer():
    anchors = torch.tensor([[1, 2], [3, -1], [-1, -1]])
    candidates = torch.tensor([[2, -1, -1], [4, 5, 3], [7, -1, -1], [-1, -1, -1]])
    expected = [[True, False, False, False], [False, True, False, False], [False, False, False, False]]
    assert shared_click_mask(anchors, candidates).tolist() == expected


def _known_batch(n: int = 6):
    """``n`` copies of the test sessions with click sets: 0 shares with 1 and 2; 3 shares with every session."""
    base = sessions()
    batch_sessions = [base[i % len(base)] for i in range(n)]
    clicks = [[10, 11], [10], [11, 12], [10, 12, 20, 21, 30, 31], [20], [30, 31]]
    clicks[3] = sorted({c for i, cs in enumerate(clicks) if i != 3 for c in cs})
    p = processor()
    encoded = [p.encode(s) for s in batch_sessions]
    positives = p.views([mask_one_query(e, torch.Generator().manual_seed(1)) for e in encoded])
    return {
        **p.views(encoded),
        "positive_global_view": positives["global_view"],
        "positive_local_view": positives["local_view"],
        "click_ids": _click_ids(clicks),
    }, clicks


@pytest.mark.parametrize("negatives", ["hard", "random"])
def test_negative_never_shares_a_click(negatives):
    batch, clicks = _known_batch()
    for seed in range(4):
        torch.manual_seed(seed)
        model = MuvcogForPreTraining(tiny_config(negatives=negatives)).eval()
        with torch.no_grad():
            out = model(**batch)
        for i, j in enumerate(out.negative_index.tolist()):
            if i == 3:  # shares a click with every other session: no negative, no negative term
                assert j == -1 and not out.negative_mask[i]
                continue
            assert j != i and not set(clicks[i]) & set(clicks[j]), (i, j)
        if negatives == "hard":  # the highest-scored allowed session, by the mean over both cross-view pairs
            with torch.no_grad():
                enc = model.muvcog(batch["num_queries"], batch["global_view"], batch["local_view"])
                score = (
                    model.discriminator.all_pairs(enc.agv_embedding, enc.hlv_embedding)
                    + model.discriminator.all_pairs(enc.hlv_embedding, enc.agv_embedding)
                ) / 2
            for i, j in enumerate(out.negative_index.tolist()):
                allowed = [k for k in range(6) if k != i and not set(clicks[i]) & set(clicks[k])]
                if allowed:
                    assert j == max(allowed, key=lambda k: float(score[i, k]))


def test_random_negatives_vary_and_hard_negatives_do_not():
    batch, _ = _known_batch()
    picks = {"hard": set(), "random": set(), "random, evaluation": set()}
    for negatives in picks:
        torch.manual_seed(0)
        model = MuvcogForPreTraining(tiny_config(negatives=negatives.split(",")[0]))
        model.train(negatives != "random, evaluation")  # no dropout: train mode changes only the draws
        for seed in range(8):
            torch.manual_seed(seed)
            with torch.no_grad():
                picks[negatives].add(int(model(**batch).negative_index[4]))
    assert len(picks["hard"]) == 1 and len(picks["random"]) > 1
    assert len(picks["random, evaluation"]) == 1  # evaluation draws from a fixed seed: evaluations compare


def test_hard_negative_warmup_draws_random_negatives_then_hard_ones():
    batch, _ = _known_batch()
    torch.manual_seed(0)
    model = MuvcogForPreTraining(tiny_config(hard_negative_warmup_steps=2))
    model.eval()  # dropout-free forward; the warm-up itself applies in training mode only
    with torch.no_grad():
        hard = model(**batch).negative_index.tolist()
    model.train()
    with pytest.raises(RuntimeError, match="set_training_step"):  # a loop that never says its step
        model(**batch)
    picks = {step: set() for step in (1, 2, 3, 50)}
    for step in picks:
        model.set_training_step(step)
        for seed in range(8):
            torch.manual_seed(seed)
            with torch.no_grad():
                picks[step].add(tuple(model(**batch).negative_index.tolist()))
    assert len(picks[1]) > 1 and len(picks[2]) > 1  # random during the warm-up
    assert picks[3] == picks[50] == {tuple(hard)}  # the discriminator's choice after it
    with pytest.raises(ValueError, match="hard_negative_warmup_steps"):
        tiny_config(hard_negative_warmup_steps=-1)


def test_evaluation_follows_the_warmup_negatives():
    """Issue 27: evaluation always used hard negatives while the warm-up trained on random ones, so the
    validation loss measured another objective than the one trained (and picked an early checkpoint). After step
    ``s`` evaluation uses step ``s``'s negatives: random (from a fixed seed: every evaluation alike) during the
    warm-up, hard after; the discriminator's hard choice is reported either way (the hub effect)."""
    batch, _ = _known_batch()
    torch.manual_seed(0)
    model = MuvcogForPreTraining(tiny_config(hard_negative_warmup_steps=3)).eval()
    with torch.no_grad():
        hard = model(**batch)  # no training step: a loaded model is evaluated with config.negatives
        assert torch.equal(hard.negative_index, hard.hard_negative_index)
        random_picks = set()
        for seed in range(6):
            model.set_training_step(3)  # the warm-up's last step
            torch.manual_seed(seed)  # the global RNG does not decide evaluation's draws
            out = model(**batch)
            random_picks.add(tuple(out.negative_index.tolist()))
            assert torch.equal(out.hard_negative_index, hard.negative_index)
        model.set_training_step(4)
        after = model(**batch)
    assert len(random_picks) == 1  # the same random pairs at every evaluation
    assert random_picks != {tuple(hard.negative_index.tolist())}  # ... and not the hard ones
    assert torch.equal(after.negative_index, hard.negative_index) and torch.equal(after.loss, hard.loss)
    assert not torch.equal(out.loss, hard.loss)


def test_checkpoint_selection_ranks_hard_negative_checkpoints_first():
    """Random (warm-up) and hard negatives are two objectives whose losses do not compare: the kept checkpoint's
    metric ranks every evaluation after the warm-up before any during it, and each phase by its loss."""
    from session_transformers.models.muvcog.recipe import RECIPE, WARMUP_SELECTION_OFFSET

    batch, _ = _known_batch()
    task = RECIPE.pretrain
    assert task.protocol is None and RECIPE.protocol.select_best == "selection_loss"
    torch.manual_seed(0)
    model = MuvcogForPreTraining(tiny_config(hard_negative_warmup_steps=3)).eval()
    figures = {}
    with torch.no_grad():
        for step in (3, 4):
            model.set_training_step(step)
            figures[step] = task.summarize(task.eval_step(model, dict(batch)))
    assert figures[3]["selection_loss"] == pytest.approx(figures[3]["loss"] + WARMUP_SELECTION_OFFSET)
    assert figures[4]["selection_loss"] == figures[4]["loss"]
    assert 1 <= figures[3]["distinct_hard_negatives"] <= 6


def test_negative_pool_size_keeps_negatives_in_their_pool():
    batch, clicks = _known_batch()
    torch.manual_seed(0)
    model = MuvcogForPreTraining(tiny_config()).eval()
    with torch.no_grad():
        out = model(**batch, negative_pool_size=3)
    for i, j in enumerate(out.negative_index.tolist()):
        if j >= 0:
            assert i // 3 == j // 3 and not set(clicks[i]) & set(clicks[j])
    # anchor 5 shares a click with 3 and its pool holds only 3, 4, 5: it still has a negative (4)
    assert out.negative_index[5] == 4 and out.negative_mask[5]


def test_hub_per_example_counts_distinct_negatives_per_pool():
    from session_transformers.models.muvcog.recipe import _pretrain_summarize, hub_per_example

    # pool 0 (rows 0-3): every anchor picks session 3 (a hub) but 3, which picks 0; pool 1 (rows 4-5): 5, -1
    out = hub_per_example(torch.tensor([3, 3, 3, 0, 5, -1]), pool_size=4)
    assert out["negative_share"].sum().item() == pytest.approx(3.0)  # 2 distinct in pool 0, 1 in pool 1
    assert out["pool_weight"].sum().item() == pytest.approx(2.0)
    gathered = {
        **out,
        "loss": torch.ones(6),
        "correct": torch.ones(6),
        "has_negative": torch.ones(6),
        "in_warmup": torch.zeros(6),
    }
    assert _pretrain_summarize(gathered)["distinct_hard_negatives"] == pytest.approx(1.5)


def test_loss_is_eq9_on_known_inputs():
    batch, _ = _known_batch()
    torch.manual_seed(0)
    model = MuvcogForPreTraining(tiny_config()).eval()
    with torch.no_grad():
        out = model(**batch)
        a = model.muvcog(batch["num_queries"], batch["global_view"], batch["local_view"])
        p = model.muvcog(None, batch["positive_global_view"], batch["positive_local_view"])
        n = out.negative_index.clamp_min(0)
        has = out.negative_mask.float()
        d = model.discriminator
        expected = 0.0
        for anchor, pos, cand in (
            (a.agv_embedding, p.hlv_embedding, a.hlv_embedding),
            (a.hlv_embedding, p.agv_embedding, a.agv_embedding),
        ):
            pos_prob, neg_prob = torch.sigmoid(d(anchor, pos)), torch.sigmoid(d(anchor, cand[n]))
            expected = expected + (-torch.log(pos_prob) - has * torch.log(1 - neg_prob)).mean()
    torch.testing.assert_close(out.loss, expected, rtol=1e-5, atol=1e-6)
    # a perfect discriminator has a loss near 0: push the positive logits up, the negatives down
    assert torch.isfinite(out.loss) and out.logits.shape == (6, 2)


@pytest.mark.parametrize("views", ["agv", "hlv", "gat"])
def test_single_view_ablations(views):
    batch, _ = _known_batch()
    model = MuvcogForPreTraining(tiny_config(views=views))
    out = model(**batch)
    assert out.session_embedding.shape == (6, 8) and torch.isfinite(out.loss)
    out.loss.backward()
    encoder = model.muvcog
    assert (encoder.agv is None) == (views == "hlv") and (encoder.hlv is None) == (views != "hlv")


def test_text_only_session_and_session_alone_in_views():
    """AGV and HLV of one session do not depend on the rest of the batch (session-level attention)."""
    model = MuvcogModel(tiny_config()).eval()
    p = processor()
    with torch.no_grad():
        full = model(**p(sessions()))
        alone = model(**p(sessions()[2:3]))
    torch.testing.assert_close(full.agv_embedding[2], alone.agv_embedding[0])
    torch.testing.assert_close(full.hlv_embedding[2], alone.hlv_embedding[0])
    assert torch.equal(full.session_embedding, torch.cat([full.agv_embedding, full.hlv_embedding], 1))


def test_query_suggestion_avg_sim_and_loss():
    model = MuvcogForQuerySuggestion(tiny_config()).eval()
    labels = torch.tensor([[0, 1, -100], [5, -100, -100]])
    logits = torch.zeros(2, len(WORDS))
    logits[0, [0, 1]] = 5.0
    logits[1, 5] = 5.0
    assert torch.allclose(
        model.avg_sim(logits, labels), torch.ones(2), atol=1e-6
    )  # top words are the targets
    logits[1, 5], logits[1, 6] = -5.0, 5.0
    assert model.avg_sim(logits, labels)[1] < 0.999
    out = model(**processor()(sessions()[:2]), labels=labels)
    manual = -torch.cat(
        [F.log_softmax(out.logits[0], -1)[[0, 1]], F.log_softmax(out.logits[1], -1)[[5]]]
    ).mean()
    torch.testing.assert_close(out.loss, manual)


def test_copy_head_features_known_answer():
    """query_suggestion_copy (not the paper's): per session and word, held / log(1 + queries holding it) / held by
    the last query, keyword and product-query words alike, image queries ignored."""
    from session_transformers.models.muvcog.modeling_muvcog import session_word_features

    batch = processor()(sessions())
    got = session_word_features(batch["local_view"], batch["num_queries"], 4, len(WORDS))
    expected = torch.zeros(4, len(WORDS), 3)

    def word(session, w, queries, last):
        expected[session, WORDS.index(w)] = torch.tensor([1.0, float(np.log1p(queries)), float(last)])

    word(0, "lamp", 1, True)
    # "mm": q1 "red dress dress", q2 product "red long cotton dress", q3 image, q4 "long summer dress" (last)
    word(2, "red", 2, False)
    word(2, "dress", 3, True)
    word(2, "long", 2, True)
    word(2, "cotton", 1, False)
    word(2, "summer", 1, True)
    # "long": "oak", "oak table", "table lamp", an image, product query "oak lamp" (last)
    word(3, "oak", 3, True)
    word(3, "table", 2, False)
    word(3, "lamp", 2, True)
    torch.testing.assert_close(got, expected)


def test_copy_head_starts_as_the_papers_and_learns_to_copy():
    """With zero copy weights the copy head scores exactly like the paper's head; trained on "the next query
    repeats the session's last query" it ranks the last query's words first, which the paper's head cannot."""
    torch.manual_seed(0)
    paper = MuvcogForQuerySuggestion(tiny_config(query_suggestion_copy=False)).eval()
    copy = MuvcogForQuerySuggestion(tiny_config(query_suggestion_copy=True)).eval()
    copy.load_state_dict(paper.state_dict(), strict=False)
    batch = processor()(sessions())
    torch.testing.assert_close(copy(**batch).logits, paper(**batch).logits)
    labels = processor().target_word_ids(["lamp", "dress", "long summer dress", "oak lamp"])
    opt = torch.optim.Adam([copy.copy_weights], lr=0.1)
    copy.train()
    for _ in range(100):
        loss = copy(**batch, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    copy.eval()
    top = copy(**batch).logits.topk(2, -1).indices
    assert WORDS.index("lamp") == top[0, 0]
    assert {WORDS.index("oak"), WORDS.index("lamp")} == set(top[3].tolist())
    agv_only = MuvcogForQuerySuggestion(tiny_config(views="agv", query_suggestion_copy=True))
    with pytest.raises(ValueError, match="local_view"):
        agv_only(num_queries=batch["num_queries"], global_view=batch["global_view"])


def test_copy_head_loaded_from_an_encoder_checkpoint_starts_at_zero(tmp_path):
    """A pretraining checkpoint has no copy weights; from_pretrained creates them and must zero them (they were
    left as uninitialised memory: the main job's fine-tuning loss read 1.5e21 and its first scores were noise)."""
    from session_transformers.models.muvcog import MuvcogModel

    torch.manual_seed(0)
    MuvcogModel(tiny_config()).save_pretrained(tmp_path)
    for _ in range(3):  # uninitialised memory is sometimes zero by chance: load a few times
        head = MuvcogForQuerySuggestion.from_pretrained(tmp_path, query_suggestion_copy=True)
        assert torch.equal(head.copy_weights.detach(), torch.zeros(3))


def test_avg_sim_is_measured_in_the_processors_vectors_like_the_baselines():
    """Issue 27: the model's Avg.Sim used its own (pretraining-drifted) word embeddings, the baselines the
    processor's; the recipe's collator now hands the processor's vectors to the model."""
    from session_transformers.models.muvcog.tasks import (
        QuerySuggestionCollator,
        _avg_sim_of,
        query_suggestion_examples,
    )

    p = processor()
    rows = query_suggestion_examples(p, sessions())
    batch = QuerySuggestionCollator(p)(rows)
    assert torch.equal(batch["avg_sim_word_vectors"], p.word_vectors)
    labels = batch.pop("labels")
    torch.manual_seed(0)
    model = MuvcogForQuerySuggestion(tiny_config()).eval()
    model.muvcog.load_word_vectors(p.word_vectors)
    with torch.no_grad():
        model.muvcog.word_embeddings.weight.mul_(-1.0).add_(torch.randn_like(p.word_vectors))  # drift
        out = model(**batch, labels=labels)
        drifted = model(**{k: v for k, v in batch.items() if k != "avg_sim_word_vectors"}, labels=labels)
    # the features moved with the embeddings; Avg.Sim's reference did not: the baseline's formula on the model's
    # own ranking gives the model's figure
    ranked = out.logits.argsort(1, descending=True)
    for b, r in enumerate(rows):
        expected = _avg_sim_of(ranked[b].tolist(), r["target"], p.word_vectors)
        assert out.avg_sim[b].item() == pytest.approx(expected, abs=1e-5)
    assert not torch.allclose(drifted.avg_sim, out.avg_sim)  # the model's own vectors give another figure


def test_session_words_baseline_ranks_the_sessions_words_by_count():
    from types import SimpleNamespace

    from session_transformers.models.muvcog.sources import Rows
    from session_transformers.models.muvcog.tasks import (
        _query_suggestion_baseline,
        query_suggestion_examples,
        session_word_ranking,
    )

    p = processor()
    # "long": oak | oak table | table lamp | image | product query "oak lamp": oak in 3 queries, table and lamp in
    # 2 each, lamp's last query is the later one
    encoded = p.encode(sessions()[3])
    assert session_word_ranking(encoded) == [WORDS.index(w) for w in ("oak", "lamp", "table")]
    # "mm" before its last query: red and dress in both queries (keyword, product), long and cotton in one
    rows = query_suggestion_examples(p, sessions())
    last = next(r for r in rows if r["key"] == ("mm", 4))
    assert session_word_ranking(last["encoded"]) == [
        WORDS.index(w) for w in ("red", "dress", "long", "cotton")
    ]
    baselines = _query_suggestion_baseline(
        SimpleNamespace(processor=p, train_dataset=Rows(rows), test_dataset=Rows(rows))
    )
    assert set(baselines) == {"popularity", "previous query", "session words"}
    assert all(set(b) == set(baselines["popularity"]) for b in baselines.values())
    assert baselines["session words"]["num_samples"] == len(rows)
    # the target "long summer dress": the session's words rank dress 2nd and long 3rd; the previous query (the
    # product query "red long cotton dress") long 2nd and dress 4th; both then rank the same popular words
    one = _query_suggestion_baseline(
        SimpleNamespace(processor=p, train_dataset=Rows(rows), test_dataset=Rows([last]))
    )
    assert one["session words"]["NDCG@10"] > one["previous query"]["NDCG@10"]
    assert one["session words"]["MRR@10"] == one["previous query"]["MRR@10"] == pytest.approx(0.5)


def test_heads_freeze_the_encoder_for_the_trainers():
    from session_transformers.trainer_utils import freeze_parameters

    model = MuvcogForQuerySuggestion(tiny_config())
    freeze_parameters(model)
    assert all(not p.requires_grad for n, p in model.named_parameters() if n.startswith("muvcog."))
    assert all(p.requires_grad for n, p in model.named_parameters() if n.startswith("head."))
    assert (
        model.config.query_suggestion_copy and model.copy_weights.requires_grad
    )  # the default copy head trains
    unfrozen = MuvcogForClickPrediction(tiny_config(freeze_encoder=False))
    freeze_parameters(unfrozen)
    assert all(p.requires_grad for p in unfrozen.parameters())
    fixed_words = MuvcogForPreTraining(tiny_config(freeze_word_embeddings=True))
    freeze_parameters(fixed_words)  # what the trainers do after building or loading a model
    trainable = {n for n, p in fixed_words.named_parameters() if p.requires_grad}
    assert "muvcog.word_embeddings.weight" not in trainable and "discriminator.mlp.0.weight" in trainable


def test_load_word_vectors_and_encode_sessions():
    p = processor()
    model = MuvcogModel(tiny_config())
    model.load_word_vectors(p.word_vectors)
    assert torch.equal(model.word_embeddings.weight, p.word_vectors)
    vectors = model.encode_sessions(sessions(), processor=p, batch_size=3)
    assert vectors.shape == (4, 16) and vectors.dtype == np.float32
    with pytest.raises(ValueError, match="do not fit"):
        model.load_word_vectors(np.zeros((2, 8)))


def _rows_of(batch_sessions, clicks, rows):
    p = processor()
    encoded = [p.encode(batch_sessions[i]) for i in rows]
    positives = p.views([mask_one_query(e, torch.Generator().manual_seed(1)) for e in encoded])
    return {
        **p.views(encoded),
        "positive_global_view": positives["global_view"],
        "positive_local_view": positives["local_view"],
        "click_ids": _click_ids([clicks[i] for i in rows]),
    }


def _known_sessions_and_clicks():
    base = sessions()
    return [base[i % len(base)] for i in range(6)], [[10, 11], [10], [11, 12], [20], [20], [30, 31]]


def _distributed_worker(out_dir: str) -> None:
    import os

    import torch.distributed as dist
    from accelerate import Accelerator

    acc = Accelerator(cpu=True)
    rank = acc.process_index
    torch.manual_seed(0)
    model = MuvcogForPreTraining(tiny_config())
    batch_sessions, clicks = _known_sessions_and_clicks()
    out = model(**_rows_of(batch_sessions, clicks, range(3 * rank, 3 * rank + 3)))
    out.loss.backward()
    loss = out.loss.detach().clone()
    dist.all_reduce(loss)
    grads = {}
    for name, param in model.named_parameters():
        if param.grad is not None:
            dist.all_reduce(param.grad)
            grads[name] = param.grad / 2
    if rank == 0:
        torch.save(
            {"loss": loss / 2, "grads": grads, "index": out.negative_index}, os.path.join(out_dir, "two.pt")
        )


def test_hard_negatives_across_two_processes_equal_one_process():
    """2 processes with batch 3 choose the same negatives among all 6 sessions as 1 process with batch 6, and give
    the same mean loss and (averaged) gradients: negatives are gathered with gradients across processes."""
    import os
    import tempfile

    from launch import launch_processes

    torch.manual_seed(0)
    model = MuvcogForPreTraining(tiny_config())
    batch_sessions, clicks = _known_sessions_and_clicks()
    out = model(**_rows_of(batch_sessions, clicks, range(6)))
    out.loss.backward()
    with tempfile.TemporaryDirectory() as folder:
        launch_processes(_distributed_worker, args=(folder,), num_processes=2)
        two = torch.load(os.path.join(folder, "two.pt"), weights_only=True)
    assert two["index"].tolist() == out.negative_index[:3].tolist()
    torch.testing.assert_close(two["loss"], out.loss.detach())
    for name, param in model.named_parameters():
        torch.testing.assert_close(two["grads"][name], param.grad, msg=name)


def test_feature_extraction_pipeline(tmp_path):
    """A saved MUVCOG checkpoint + processor serve ``pipeline("session-feature-extraction")``."""
    from transformers import pipeline

    model = MuvcogModel(tiny_config()).eval()
    model.save_pretrained(tmp_path)
    processor().save_pretrained(tmp_path)
    extract = pipeline("session-feature-extraction", model=str(tmp_path))
    vectors = extract(sessions())
    assert vectors.shape == (4, 16)
    np.testing.assert_allclose(vectors, model.encode_sessions(sessions(), processor=processor()), atol=1e-6)


def test_encoder_and_heads_load_a_pretraining_checkpoint_without_its_discriminator(tmp_path):
    # the discriminator serves pretraining only: loading the encoder or a head from the pretraining checkpoint
    # reports no unexpected weights (and still refuses a checkpoint that lacks the encoder)
    from transformers import AutoModel

    MuvcogForPreTraining(tiny_config()).save_pretrained(tmp_path)
    for auto in (AutoModel, AutoModelForQuerySuggestion, AutoModelForClickPrediction):
        model, info = auto.from_pretrained(tmp_path, output_loading_info=True)
        assert not info["unexpected_keys"], (auto.__name__, info["unexpected_keys"])
        assert not [k for k in info["missing_keys"] if k.startswith("muvcog.")]
