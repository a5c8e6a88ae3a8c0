"""The shared model-test contract every model family's tests use (see docs: style item 11).

A model's test module subclasses :class:`ModelTesterMixin` and gives:

- ``config_class``, ``base_model_class`` and ``head_classes`` (head class -> the Auto class that must load it);
- ``get_config()``: a tiny config;
- ``get_sessions()``: raw sessions in the package schema, with edge cases (a length-1 session, a repeated item,
  sessions of different lengths so that padding is exercised);
- ``collate(config, sessions, with_labels)``: the model inputs for those sessions (the processor + collator);
- ``session_outputs(outputs)``: the per-session tensor ``(batch, ...)`` of the base model's outputs, used to check
  that a session alone gives the same result as inside a batch.

Optional: ``params_without_grad`` (names allowed to get no gradient), ``atol``.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
from huggingface_hub.errors import StrictDataclassError
from transformers import AutoConfig, AutoModel


def _tensors(outputs) -> dict[str, torch.Tensor]:
    return {k: v for k, v in outputs.items() if isinstance(v, torch.Tensor)}


class ModelTesterMixin:
    config_class: type
    base_model_class: type
    head_classes: dict = {}
    params_without_grad: tuple[str, ...] = ()
    atol: float = 1e-5

    # --- to be provided by each model's tester -------------------------------------------------------------
    def get_config(self):
        raise NotImplementedError

    def get_sessions(self) -> list[dict]:
        raise NotImplementedError

    def collate(self, config, sessions, with_labels: bool = False) -> dict:
        raise NotImplementedError

    def session_outputs(self, outputs) -> torch.Tensor:
        raise NotImplementedError

    # --- helpers ---------------------------------------------------------------------------------------------
    def _model(self, cls, config=None):
        torch.manual_seed(0)
        model = cls(config or self.get_config())
        return model.eval()

    def _all_classes(self):
        return [self.base_model_class, *self.head_classes]

    # --- the contract ----------------------------------------------------------------------------------------
    def test_config_round_trip(self, tmp_path):
        config = self.get_config()
        config.save_pretrained(tmp_path)
        loaded = self.config_class.from_pretrained(tmp_path)
        assert loaded.to_dict() == config.to_dict()
        auto = AutoConfig.from_pretrained(tmp_path)
        assert type(auto) is self.config_class

    def test_forward_no_nans(self):
        sessions = self.get_sessions()
        for cls in self._all_classes():
            model = self._model(cls)
            with torch.no_grad():
                out = model(**self.collate(model.config, sessions))
            for name, t in _tensors(out).items():
                if t.is_floating_point():
                    assert torch.isfinite(t).all(), f"{cls.__name__}.{name} has non-finite values"
            assert self.session_outputs(
                self._model(self.base_model_class)(**self.collate(model.config, sessions))
            ).shape[0] == len(sessions)

    def test_loss_only_with_labels(self):
        sessions = self.get_sessions()
        for cls in self.head_classes:
            model = self._model(cls)
            with torch.no_grad():
                out = model(**self.collate(model.config, sessions, with_labels=False))
                assert out.get("loss") is None, f"{cls.__name__} returned a loss without labels"
                out = model(**self.collate(model.config, sessions, with_labels=True))
            assert out.loss is not None and out.loss.ndim == 0 and torch.isfinite(out.loss)
            assert list(out.keys())[0] == "loss", "loss must be the first output field"

    def test_every_parameter_gets_a_gradient(self):
        sessions = self.get_sessions()
        for cls in self.head_classes:
            model = self._model(cls).train()
            out = model(**self.collate(model.config, sessions, with_labels=True))
            out.loss.backward()
            missing = [
                n
                for n, p in model.named_parameters()
                if p.requires_grad and p.grad is None and not any(s in n for s in self.params_without_grad)
            ]
            assert not missing, f"{cls.__name__}: parameters without a gradient: {missing}"
            for n, p in model.named_parameters():
                if p.grad is not None:
                    assert torch.isfinite(p.grad).all(), f"{cls.__name__}.{n} has a non-finite gradient"

    def test_activation_checkpointing_gives_the_same_gradients(self):
        """With ``supports_gradient_checkpointing``, ``activation_checkpointing_enable`` must recompute layers (its
        checkpoint function is called) and leave the loss and every gradient as they were (dropout included:
        the recompute replays the random state)."""
        if not getattr(self.base_model_class, "supports_gradient_checkpointing", False):
            pytest.skip(f"{self.base_model_class.__name__} does not support activation checkpointing")
        sessions = self.get_sessions()
        for cls in self.head_classes:
            runs = []
            for checkpointing in (False, True):
                model = self._model(cls).train()
                calls = []
                if checkpointing:
                    model.activation_checkpointing_enable()
                    assert model.is_activation_checkpointing
                    for module in model.modules():
                        func = getattr(module, "_gradient_checkpointing_func", None)
                        if func is not None and getattr(module, "gradient_checkpointing", False):
                            module._gradient_checkpointing_func = lambda *a, _f=func, _c=calls, **k: (
                                _c.append(1) or _f(*a, **k)
                            )
                torch.manual_seed(1)
                out = model(**self.collate(model.config, sessions, with_labels=True))
                out.loss.backward()
                if checkpointing:
                    assert calls, f"{cls.__name__}: activation checkpointing recomputed no layer"
                grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
                runs.append((out.loss.detach(), grads))
            (loss, grads), (loss_ckpt, grads_ckpt) = runs
            torch.testing.assert_close(loss_ckpt, loss, atol=self.atol, rtol=1e-5)
            assert grads_ckpt.keys() == grads.keys(), (
                f"{cls.__name__}: checkpointing changed which parameters train"
            )
            for n in grads:
                torch.testing.assert_close(
                    grads_ckpt[n], grads[n], atol=self.atol, rtol=1e-4, msg=f"{cls.__name__}.{n}"
                )

    def test_session_alone_equals_session_in_batch(self):
        sessions = self.get_sessions()
        model = self._model(self.base_model_class)
        with torch.no_grad():
            batched = self.session_outputs(model(**self.collate(model.config, sessions)))
            for i, session in enumerate(sessions):
                alone = self.session_outputs(model(**self.collate(model.config, [session])))
                torch.testing.assert_close(alone[0], batched[i], atol=self.atol, rtol=1e-4)

    def test_save_load_equality(self, tmp_path):
        sessions = self.get_sessions()
        for cls in self._all_classes():
            model = self._model(cls)
            path = tmp_path / cls.__name__
            model.save_pretrained(path)
            assert (path / "model.safetensors").exists()
            reloaded = cls.from_pretrained(path, dtype=torch.float32).eval()
            with torch.no_grad():
                a = _tensors(model(**self.collate(model.config, sessions)))
                b = _tensors(reloaded(**self.collate(reloaded.config, sessions)))
            assert a.keys() == b.keys()
            for k in a:
                torch.testing.assert_close(a[k], b[k], atol=0.0, rtol=0.0, msg=f"{cls.__name__}.{k} changed")

    def test_auto_class_loading(self, tmp_path):
        sessions = self.get_sessions()
        base = self._model(self.base_model_class)
        base.save_pretrained(tmp_path / "base")
        loaded = AutoModel.from_pretrained(tmp_path / "base", dtype=torch.float32)
        assert type(loaded) is self.base_model_class
        for head_cls, auto_cls in self.head_classes.items():
            head = self._model(head_cls)
            head.save_pretrained(tmp_path / head_cls.__name__)
            loaded = auto_cls.from_pretrained(tmp_path / head_cls.__name__, dtype=torch.float32).eval()
            assert type(loaded) is head_cls
            # The base model inside a head checkpoint loads with AutoModel and gives the same session outputs.
            base_from_head = AutoModel.from_pretrained(
                tmp_path / head_cls.__name__, dtype=torch.float32
            ).eval()
            prefix = head_cls.base_model_prefix
            with torch.no_grad():
                expected = self.session_outputs(getattr(head, prefix)(**self.collate(head.config, sessions)))
                got = self.session_outputs(base_from_head(**self.collate(head.config, sessions)))
            torch.testing.assert_close(got, expected, atol=0.0, rtol=0.0)

    def test_deterministic_in_eval(self):
        sessions = self.get_sessions()
        model = self._model(self.base_model_class)
        with torch.no_grad():
            a = self.session_outputs(model(**self.collate(model.config, sessions)))
            b = self.session_outputs(model(**self.collate(model.config, sessions)))
        torch.testing.assert_close(a, b, atol=0.0, rtol=0.0)

    def test_config_rejects_impossible_values(self):
        """Each tester lists keyword sets that must raise ``ValueError`` (or the strict-dataclass error)."""
        bad = getattr(self, "invalid_config_kwargs", [])
        if not bad:
            pytest.skip("no invalid config cases given")
        for kwargs in bad:
            with pytest.raises((ValueError, TypeError, StrictDataclassError)):
                self.config_class(**{**self.get_config().to_diff_dict(), **kwargs})

    def test_parameter_count_is_finite(self):
        model = self._model(self.base_model_class)
        n = sum(p.numel() for p in model.parameters())
        assert 0 < n < math.inf
        assert copy.deepcopy(model) is not None
