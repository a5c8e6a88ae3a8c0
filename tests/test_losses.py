"""Closed-form tests for the shared contrastive, BYOL and hinge losses."""

import math

import pytest
import torch
import torch.nn.functional as F

from session_transformers.losses import byol_loss, cosine_hinge_loss, info_nce

E = torch.eye(4)  # orthonormal rows e1..e4


def value(x):
    return pytest.approx(float(x), abs=1e-5)


class TestInfoNCE:
    def test_identical_orthonormal_pairs(self):
        # logits: 1/t on the diagonal, 0 elsewhere -> loss = log(1 + (B - 1) exp(-1/t))
        for t in (1.0, 0.5, 0.05):
            assert value(info_nce(E, E, temperature=t)) == math.log(1 + 3 * math.exp(-1 / t))

    def test_orthogonal_query_and_keys_give_log_batch(self):
        assert value(info_nce(E[:2], E[2:], temperature=0.05)) == math.log(2)

    def test_extra_negatives(self):
        q = k = torch.eye(3)[:2]
        far = torch.tensor([[0.0, 0.0, 1.0]])
        assert value(info_nce(q, k, temperature=1.0, negatives=far)) == math.log(1 + 2 * math.exp(-1))
        # same direction as query 0: a negative as good as the positive
        near = torch.tensor([[2.0, 0.0, 0.0]])
        per_row = info_nce(q, k, temperature=1.0, negatives=near, reduction="none")
        assert per_row.tolist() == pytest.approx([math.log(2 + math.exp(-1)), math.log(1 + 2 * math.exp(-1))])

    def test_decoupled_drops_the_positive_from_the_denominator(self):
        # log sum_{j != i} exp(s_ij / t) - s_ii / t = log(3) - 1/t
        assert value(info_nce(E, E, temperature=1.0, decoupled=True)) == math.log(3) - 1
        assert value(info_nce(E, E, temperature=0.5, decoupled=True)) == math.log(3) - 2

    def test_matches_cross_entropy_formula_and_is_scale_invariant(self):
        gen = torch.Generator().manual_seed(0)
        q, k = torch.randn(6, 8, generator=gen), torch.randn(6, 8, generator=gen)
        sim = F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).t() / 0.1
        expected = -(sim.diag() - sim.logsumexp(1)).mean()
        assert value(info_nce(q, k, temperature=0.1)) == float(expected)
        assert value(info_nce(3 * q, 0.5 * k, temperature=0.1)) == float(expected)
        assert value(info_nce(q, k, temperature=0.1, reduction="sum")) == 6 * float(expected)

    def test_lower_temperature_sharpens(self):
        aligned = info_nce(E, E + 0.1, temperature=0.05), info_nce(E, E + 0.1, temperature=1.0)
        assert aligned[0] < aligned[1]  # a correct match is rewarded more at low temperature
        wrong = info_nce(E, E.roll(1, 0), temperature=0.05), info_nce(E, E.roll(1, 0), temperature=1.0)
        assert wrong[0] > wrong[1]  # and a wrong one punished more

    def test_gradients_reach_query_key_and_negatives(self):
        gen = torch.Generator().manual_seed(1)
        q, k, n = (torch.randn(4, 5, generator=gen, requires_grad=True) for _ in range(3))
        info_nce(q, k, negatives=n).backward()
        for t in (q, k, n):
            assert t.grad is not None and torch.isfinite(t.grad).all() and t.grad.abs().sum() > 0

    def test_errors(self):
        with pytest.raises(ValueError, match="temperature"):
            info_nce(E, E, temperature=0.0)
        with pytest.raises(ValueError, match="same shape"):
            info_nce(E, E[:2])


class TestBYOL:
    def test_closed_form(self):
        a = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [3.0, 0.0]])
        b = torch.tensor([[2.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [1.0, 1.0]])
        # identical direction 0, orthogonal 2, opposite 4, 45 degrees 2 - sqrt(2)
        expected = [0.0, 2.0, 4.0, 2 - math.sqrt(2)]
        assert byol_loss(a, b, reduction="none").tolist() == pytest.approx(expected, abs=1e-6)
        assert value(byol_loss(a, b)) == sum(expected) / 4

    def test_equals_mse_of_normalised_vectors(self):
        gen = torch.Generator().manual_seed(2)
        p, z = torch.randn(5, 7, generator=gen), torch.randn(5, 7, generator=gen)
        mse = (F.normalize(p, dim=-1) - F.normalize(z, dim=-1)).pow(2).sum(-1).mean()
        assert value(byol_loss(p, z)) == float(mse)

    def test_stop_gradient_on_the_target(self):
        gen = torch.Generator().manual_seed(3)
        p = torch.randn(3, 4, generator=gen, requires_grad=True)
        z = torch.randn(3, 4, generator=gen, requires_grad=True)
        byol_loss(p, z).backward()
        assert p.grad is not None and p.grad.abs().sum() > 0
        assert z.grad is None


class TestCosineHinge:
    def test_closed_form_with_explicit_negatives(self):
        a, p = E[:1], E[:1]
        assert value(cosine_hinge_loss(a, p, E[1:2], margin=0.5)) == 0.0  # 0.5 - 1 + 0 < 0
        assert value(cosine_hinge_loss(a, p, E[1:2], margin=1.5)) == 0.5  # 1.5 - 1 + 0
        assert value(cosine_hinge_loss(a, p, -E[:1], margin=1.5)) == 0.0  # 1.5 - 1 - 1 < 0
        assert value(cosine_hinge_loss(a, E[1:2], E[:1], margin=0.5)) == 1.5  # 0.5 - 0 + 1: the wrong ranking
        # two negatives for one anchor: mean of max(0, 1 - 1 + 0) and max(0, 1 - 1 + 1)
        assert value(cosine_hinge_loss(a, p, torch.stack([E[1], E[0]]), margin=1.0)) == 0.5

    def test_shared_and_per_row_negatives_agree(self):
        gen = torch.Generator().manual_seed(4)
        a, p, n = (
            torch.randn(3, 6, generator=gen),
            torch.randn(3, 6, generator=gen),
            torch.randn(5, 6, generator=gen),
        )
        shared = cosine_hinge_loss(a, p, n, margin=0.3, reduction="none")
        per_row = cosine_hinge_loss(a, p, n.expand(3, 5, 6), margin=0.3, reduction="none")
        assert shared.shape == (3, 5)
        torch.testing.assert_close(shared, per_row)

    def test_in_batch_negatives(self):
        # a = [e1, e2], p = [e1, e2]: positives 1, negatives 0 -> max(0, m - 1) = 0 for m = 0.5
        assert value(cosine_hinge_loss(E[:2], E[:2], margin=0.5)) == 0.0
        # p = [e1, e1]: row 0 pos 1, neg cos(e1, e1) = 1 -> m; row 1 pos 0, neg cos(e2, e1) = 0 -> m
        per_row = cosine_hinge_loss(E[:2], E[[0, 0]], margin=0.5, reduction="none")
        assert per_row.shape == (2, 1)
        assert per_row.flatten().tolist() == pytest.approx([0.5, 0.5])
        # the in-batch path equals explicit per-row negatives made of the other positives
        gen = torch.Generator().manual_seed(5)
        a, p = torch.randn(4, 3, generator=gen), torch.randn(4, 3, generator=gen)
        explicit = torch.stack([torch.cat([p[:i], p[i + 1 :]]) for i in range(4)])  # (4, 3, 3)
        torch.testing.assert_close(cosine_hinge_loss(a, p), cosine_hinge_loss(a, p, explicit))

    def test_gradients_flow(self):
        gen = torch.Generator().manual_seed(6)
        a = torch.randn(4, 5, generator=gen, requires_grad=True)
        p = torch.randn(4, 5, generator=gen, requires_grad=True)
        cosine_hinge_loss(a, p, margin=2.0).backward()  # margin 2 keeps every hinge active
        assert a.grad.abs().sum() > 0 and p.grad.abs().sum() > 0

    def test_default_margin_is_the_ceres_config_margin(self):
        import inspect

        from session_transformers.models.ceres import CeresConfig

        default = inspect.signature(cosine_hinge_loss).parameters["margin"].default
        assert default == CeresConfig().retrieval_margin == 0.3
        # cos(a, p) = 1, cos(a, n) = 0.8: max(0, 0.3 - 1 + 0.8) = 0.1 (it was 0.3 with the old 0.5 default)
        negative = torch.tensor([[0.8, 0.6, 0.0, 0.0]])
        assert value(cosine_hinge_loss(E[:1], E[:1], negative)) == 0.1

    def test_errors(self):
        with pytest.raises(ValueError, match="at least 2"):
            cosine_hinge_loss(E[:1], E[:1])
        with pytest.raises(ValueError, match="negatives must be"):
            cosine_hinge_loss(E[:2], E[:2], torch.zeros(3, 2, 4))
