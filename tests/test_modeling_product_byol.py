"""Product BYOL: the shared model contract (pretraining head and classification head), the TextCNN's padding
invariance, the loss of Eq. 4, and the EMA target (no gradients, moves only by EMA)."""

import numpy as np
import pytest
import torch
from transformers import AutoModel, AutoModelForPreTraining, AutoModelForSequenceClassification, AutoProcessor

import session_transformers  # noqa: F401  (registers the Auto classes)
from model_tester import ModelTesterMixin
from session_transformers import losses
from session_transformers.models.product_byol import (
    ProductByolConfig,
    ProductByolForPreTraining,
    ProductByolForSequenceClassification,
    ProductByolModel,
    ProductByolProcessor,
)
from session_transformers.optim import byol_momentum

CATALOGUE = {
    "p1": {"item_id": "p1", "title": "Organic Bananas", "category": ["produce", "fruit"]},
    "p2": {"item_id": "p2", "title": "Whole Milk, 1 gallon", "category": ["dairy", "milk"]},
    "p3": {"item_id": "p3", "title": "Chocolate Sandwich Cookies", "category": ["snacks", "cookies"]},
    "p4": {"item_id": "p4", "title": "Crème Fraîche", "category": ["dairy", "cream"]},
    "p5": {"item_id": "p5", "title": "Sea Salt Potato Chips (Family Size)", "category": ["snacks", "chips"]},
    "p6": {"item_id": "p6", "title": "Apples", "category": ["produce", "fruit"]},
    "p7": {"item_id": "p7", "title": "Greek Yogurt with Honey and Oats", "category": ["dairy", "yogurt"]},
}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


_PROCESSOR = None


def _processor() -> ProductByolProcessor:
    global _PROCESSOR
    if _PROCESSOR is None:
        titles = [r["title"] for r in CATALOGUE.values()] * 3
        _PROCESSOR = ProductByolProcessor.train(titles, vocab_size=200, catalogue=CATALOGUE.values())
    return _PROCESSOR


def _tiny_config(**kwargs) -> ProductByolConfig:
    p = _processor()
    defaults = dict(
        vocab_size=p.vocab_size,
        embedding_size=16,
        kernel_sizes=[2, 3],
        num_filters=8,
        projection_hidden_size=32,
        projection_size=8,
        num_categories=p.num_categories,
        num_labels=2,
    )
    return ProductByolConfig(**{**defaults, **kwargs})


def _session(sid: str, items: list[str]) -> dict:
    events = [
        {
            "action": "view",
            "timestamp": float(t),
            "subject": "item",
            "item_id": i,
            "query": None,
            "image": None,
        }
        for t, i in enumerate(items)
    ]
    return {"session_id": sid, "events": events}


SESSIONS = [
    _session("s0", ["p1", "p2", "p1", "p3"]),  # a repeated product
    _session("s1", ["p4"]),  # one product: paired with itself here
    _session("s2", ["p5", "p6"]),
    _session("s3", ["p7", "p2", "p5", "p1"]),
]


def _pair_rows(sessions) -> list[dict]:
    """One pair per session (its first two distinct products), so that outputs are per session."""
    p, rows = _processor(), []
    for s in sessions:
        items = list(dict.fromkeys(e["item_id"] for e in s["events"]))
        a, b = items[0], items[1] if len(items) > 1 else items[0]
        ra, rb = CATALOGUE[a], CATALOGUE[b]
        rows.append(
            {
                "title": ra["title"],
                "pair_title": rb["title"],
                "category": p.category_id(ra["category"]),
                "pair_category": p.category_id(rb["category"]),
            }
        )
    return rows


class TestProductByolPreTraining(ModelTesterMixin):
    config_class = ProductByolConfig
    base_model_class = ProductByolModel
    head_classes = {ProductByolForPreTraining: AutoModelForPreTraining}
    invalid_config_kwargs = [
        {"alpha": 1.5},
        {"alpha": 0.5, "num_categories": 0},
        {"kernel_sizes": []},
        {"num_filters": 0},
        {"tau_base": 1.2},
        {"pad_token_id": 10_000},
    ]

    def get_config(self):
        return _tiny_config()

    def get_sessions(self):
        return SESSIONS

    def collate(self, config, sessions, with_labels=False):
        rows = _pair_rows(sessions)
        batch = _processor().collate(rows)
        if not with_labels:
            batch.pop("labels"), batch.pop("pair_labels")
        return batch

    def session_outputs(self, outputs):
        return torch.cat([outputs.embeddings, outputs.pair_embeddings], dim=-1)


class TestProductByolClassification(ModelTesterMixin):
    config_class = ProductByolConfig
    base_model_class = ProductByolModel
    head_classes = {ProductByolForSequenceClassification: AutoModelForSequenceClassification}

    def get_config(self):
        return _tiny_config(freeze_encoder=False)

    def get_sessions(self):
        return SESSIONS

    def collate(self, config, sessions, with_labels=False):
        rows = [{"title": r["title"]} for r in _pair_rows(sessions)]
        if with_labels:
            for i, r in enumerate(rows):
                r["label"] = i % 2
        return _processor().collate(rows)

    def session_outputs(self, outputs):
        return outputs.embeddings


def test_paper_defaults():
    c = ProductByolConfig()
    assert (c.vocab_size, c.embedding_size, c.kernel_sizes, c.num_filters) == (30_000, 512, [2, 3, 4, 5], 128)
    assert c.hidden_size == 512  # 4 kernel widths x 128 filters, concatenated
    assert (c.projection_hidden_size, c.projection_size, c.alpha, c.tau_base) == (1024, 128, 0.9, 0.996)
    model = ProductByolForPreTraining(ProductByolConfig(num_categories=5))
    assert model.projector.dense.in_features == 512 and model.projector.dense.out_features == 1024
    assert isinstance(model.projector.norm, torch.nn.BatchNorm1d) and model.projector.out.out_features == 128
    assert model.predictor.out.out_features == 128 and model.category_predictor.out.out_features == 5


def test_padding_and_empty_titles():
    """A title's embedding does not depend on the padding around it, also when shorter than the widest kernel."""
    torch.manual_seed(0)
    model = ProductByolModel(_tiny_config(kernel_sizes=[2, 5])).eval()
    p = _processor()
    titles = ["Apples", "Sea Salt Potato Chips (Family Size)", "the and of", "Organic Bananas"]
    together = model.encode_titles(titles, processor=p)
    alone = np.concatenate([model.encode_titles([t], processor=p) for t in titles])
    np.testing.assert_allclose(together, alone, atol=1e-5)
    assert np.isfinite(together).all() and together.shape == (4, model.config.hidden_size)
    # batches are grouped by length inside encode_titles: any batch size gives the rows in input order
    many = titles * 7
    np.testing.assert_allclose(
        model.encode_titles(many, processor=p, batch_size=3), np.tile(alone, (7, 1)), atol=1e-5
    )
    assert model.encode_titles([], processor=p).shape == (0, model.config.hidden_size)
    with pytest.raises(ValueError, match="processor"):
        model.encode_titles(titles)


def test_loss_is_eq4_symmetric():
    torch.manual_seed(0)
    model = ProductByolForPreTraining(_tiny_config(alpha=0.3)).train()
    batch = _processor().collate(_pair_rows(SESSIONS))
    out = model(**batch)
    # swapping the two products of every pair gives the same loss (Eq. 3/4 are symmetric)
    swapped = {
        "input_ids": batch["pair_input_ids"],
        "attention_mask": batch["pair_attention_mask"],
        "pair_input_ids": batch["input_ids"],
        "pair_attention_mask": batch["attention_mask"],
        "labels": batch["pair_labels"],
        "pair_labels": batch["labels"],
    }
    torch.testing.assert_close(model(**swapped).loss, out.loss, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.loss, 0.3 * out.byol_loss + 0.7 * out.category_loss)
    assert 0.0 <= float(out.byol_loss) <= 8.0  # two terms of 2 - 2 cos each
    # alpha = 1: the category predictor gets no gradient signal
    model1 = ProductByolForPreTraining(_tiny_config(alpha=1.0)).train()
    model1(**batch).loss.backward()
    assert float(model1.category_predictor.out.weight.grad.abs().sum()) == 0.0
    assert float(model1.projector.out.weight.grad.abs().sum()) > 0.0


def test_target_gets_no_gradient_and_moves_only_by_ema():
    torch.manual_seed(0)
    model = ProductByolForPreTraining(_tiny_config()).train()
    online = dict(model.product_byol.encoder.named_parameters())
    target = dict(model.target_encoder.named_parameters())
    for k in online:
        assert torch.equal(online[k], target[k]), f"target {k} does not start as a copy"
    assert all(not p.requires_grad for n, p in model.named_parameters() if n.startswith("target_"))
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    batch = _processor().collate(_pair_rows(SESSIONS))
    before = {k: v.detach().clone() for k, v in model.state_dict().items() if k.startswith("target_")}
    model(**batch).loss.backward()
    assert all(p.grad is None for n, p in model.named_parameters() if n.startswith("target_"))
    opt.step()
    after_step = {k: v for k, v in model.state_dict().items() if k.startswith("target_")}
    for k in before:  # the optimiser step did not move the target (BN running stats are not touched either)
        assert torch.equal(before[k], after_step[k]), k
    tau = byol_momentum(1, 10, model.config.tau_base)
    model.update_target(tau)
    w_online = model.product_byol.encoder.convs[0].weight.detach()
    w_target = model.target_encoder.convs[0].weight.detach()
    torch.testing.assert_close(w_target, tau * before["target_encoder.convs.0.weight"] + (1 - tau) * w_online)
    torch.testing.assert_close(
        model.target_projector.norm.running_mean, model.projector.norm.running_mean, atol=0, rtol=0
    )


def test_auto_processor_and_encode_titles_round_trip(tmp_path):
    torch.manual_seed(0)
    model = ProductByolForPreTraining(_tiny_config()).eval()
    model.save_pretrained(tmp_path)
    _processor().save_pretrained(tmp_path)
    processor = AutoProcessor.from_pretrained(tmp_path)
    assert type(processor) is ProductByolProcessor
    base = AutoModel.from_pretrained(tmp_path, dtype=torch.float32)
    emb = base.encode_titles(["Organic Bananas", "Whole Milk"], processor=processor)
    with torch.no_grad():
        expected = model.product_byol(**_processor()(["Organic Bananas", "Whole Milk"])).embeddings.numpy()
    np.testing.assert_array_equal(emb, expected)
    loaded = AutoModelForPreTraining.from_pretrained(tmp_path, dtype=torch.float32)
    for k, v in model.state_dict().items():  # the target network is saved and loaded too
        assert torch.equal(loaded.state_dict()[k], v), k
    cls = AutoModelForSequenceClassification.from_pretrained(tmp_path, dtype=torch.float32, num_labels=2)
    assert torch.equal(cls.product_byol.encoder.convs[0].weight, model.product_byol.encoder.convs[0].weight)


def test_byol_loss_matches_cosine_definition():
    a, b = torch.randn(5, 8), torch.randn(5, 8)
    expected = 2 - 2 * (a / a.norm(dim=1, keepdim=True) * (b / b.norm(dim=1, keepdim=True))).sum(1)
    torch.testing.assert_close(losses.byol_loss(a, b, reduction="none"), expected)
