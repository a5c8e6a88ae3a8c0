"""Model families: one descriptor per family, found by one discovery function.

Each model folder declares everything the rest of the package needs to know about its family in one object,
``FAMILY = ModelFamily(...)`` in ``models/<family>/family.py``: its config, its model class per Auto class, its
processor, its training recipe, its model card entry and what the test and benchmark harnesses run for it.
:func:`discover` finds them; every cross-family registry is a view built from it:

- ``auto.MODEL_TABLE`` and the Auto classes (``auto.register_all``);
- ``recipes.RECIPES`` (the trainers' ``--model`` choices, the main job's families);
- ``hub.CARD_FAMILIES`` (model cards and release builds);
- the harnesses' family lists (``tests/test_release.py``'s tiny runs, ``benchmarks/bad_inputs.py``,
  ``benchmarks/kill_trials.py``, ``benchmarks/process_parity.py``).

A family outside the package joins with :func:`register_family` (tests do it with a toy family), or, for processes
started later (``accelerate launch``, the kill trials), by naming its module in the environment variable
:data:`FAMILIES_ENV` (comma-separated module names, each defining ``FAMILY``).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import pkgutil
import shlex
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .hub import CardFamily
    from .trainer_utils import QuickstartJob, Recipe

FAMILIES_ENV = "SESSION_TRANSFORMERS_FAMILIES"
"""Comma-separated module names, each defining ``FAMILY``: families outside the package that :func:`discover`
registers (after the package's own) in every process that reads it."""


def argv(command: str) -> tuple[str, ...]:
    """A command line's arguments as a tuple, split by ``shlex``'s rules: how a descriptor writes trainer flags
    (``argv("--num-sessions 200 --config hidden_size=16")``)."""
    return tuple(shlex.split(command))


@dataclass(frozen=True)
class ModelFamily:
    """Everything the package, its trainers and its harnesses need to know about one model family.

    ``models`` maps each Auto class (``AutoModel``, ``AutoModelForPreTraining``, the task Auto classes of
    :mod:`session_transformers.auto`) to the family's model class for it. ``order`` places the family in every
    listing (the main job runs the families in this order; families with equal ``order`` sort by name).

    The harness fields are flags and hooks of the test and benchmark harnesses (``()`` / ``None``: the harness leaves
    the family out, and the registry-agreement test says so):

    - ``tiny_flags``: ``trainers/pretrain.py`` flags appended to every pretraining stage of the family's release
      build for a toy-size run (``tests/test_release.py``);
    - ``trial_flags``: the ``trainers/pretrain.py`` flags of a small CPU run that ``benchmarks/kill_trials.py`` kills
      and resumes (the harness adds its steps, checkpointing and schedule);
    - ``bad_inputs``: ``hook(fixture) -> check``, given the corpus' shared fixture (``benchmarks/bad_inputs.py``:
      its item IDs, catalogue, training sessions and checks), returns ``check(record, catalogue, kind) -> outcome``
      that runs one record through the family's processor and collators and checks what comes out;
    - ``merge_batches``: ``merge(a, b, pad_id) -> batch``, two collated halves as one batch
      (``benchmarks/process_parity.py``), with ``parity_flags`` the ``trainers/pretrain.py`` flags of its toy case.
    """

    model_type: str
    config: type
    models: Mapping[Any, type]
    processor: type | None = None
    recipe: Recipe | None = None
    card: CardFamily | None = None
    order: int = 100
    tiny_flags: tuple[str, ...] = ()
    trial_flags: tuple[str, ...] = ()
    bad_inputs: Callable[[Any], Callable[[Any, Any, str], str]] | None = None
    merge_batches: Callable[..., dict] | None = None
    parity_flags: tuple[str, ...] = ()

    def __post_init__(self):
        if getattr(self.config, "model_type", None) != self.model_type:
            raise ValueError(
                f"family {self.model_type!r}: its config {self.config.__name__} has model_type "
                f"{getattr(self.config, 'model_type', None)!r}"
            )
        if self.card is not None and self.card.model_type != self.model_type:
            raise ValueError(f"family {self.model_type!r}: its card is {self.card.model_type!r}'s")

    @property
    def quickstart(self) -> QuickstartJob | None:
        """The family's part of the main job (``trainers/quickstart.py``): its recipe's ``quickstart``."""
        return self.recipe.quickstart if self.recipe is not None else None


_REGISTRY: dict[str, ModelFamily] = {}
_STATE = {"discovered": False, "discovering": False}


def _package_families() -> list[ModelFamily]:
    """``FAMILY`` of every ``models/<name>/family.py`` of the package, in ``order``."""
    from . import models

    found = []
    for info in pkgutil.iter_modules(models.__path__):
        name = f"{models.__name__}.{info.name}.family"
        if info.ispkg and importlib.util.find_spec(name) is not None:
            found.append(importlib.import_module(name).FAMILY)
    return sorted(found, key=lambda f: (f.order, f.model_type))


def _environment_families() -> list[ModelFamily]:
    """``FAMILY`` of every module named in :data:`FAMILIES_ENV`."""
    names = [n.strip() for n in os.environ.get(FAMILIES_ENV, "").split(",") if n.strip()]
    return [importlib.import_module(name).FAMILY for name in names]


def discover() -> dict[str, ModelFamily]:
    """``model_type`` -> :class:`ModelFamily`: the package's families (``models/*/family.py``, in ``order``), then
    those named in :data:`FAMILIES_ENV`, then those given to :func:`register_family`, in that order.

    The package's families are imported on the first call; later calls return the registry as it stands.
    """
    if not _STATE["discovered"]:
        if _STATE["discovering"]:
            raise RuntimeError(
                "session_transformers.families.discover() was called while a family.py module was being "
                "imported: read the registries (RECIPES, CARD_FAMILIES, MODEL_TABLE) inside functions, not at the "
                "import of a family's modules"
            )
        _STATE["discovering"] = True
        try:
            found = [*_package_families(), *_environment_families()]
        finally:
            _STATE["discovering"] = False
        for family in found:
            _add(family, replace=False)
        _STATE["discovered"] = True
    return dict(_REGISTRY)


def _add(family: ModelFamily, replace: bool) -> None:
    if not replace and family.model_type in _REGISTRY and _REGISTRY[family.model_type] is not family:
        raise ValueError(f"a model family {family.model_type!r} is already registered")
    _REGISTRY[family.model_type] = family


def register_family(family: ModelFamily, *, replace: bool = False) -> ModelFamily:
    """Add a family from outside the package: every registry view sees it from now on, and its config, models and
    processor are registered with the ``transformers`` Auto classes. Returns ``family``.

    Another family of a ``model_type`` already registered raises ``ValueError`` unless ``replace``; registering the
    same descriptor again changes nothing.
    """
    discover()
    _add(family, replace)
    from .auto import register_family_auto

    register_family_auto(family)
    return family


def unregister_family(model_type: str) -> ModelFamily:
    """Remove a family :func:`register_family` added (tests do it when done) and return it. The registry views no
    longer list it; its ``transformers`` Auto registrations stay (``transformers`` cannot undo them)."""
    discover()
    return _REGISTRY.pop(model_type)


def family(model_type: str) -> ModelFamily:
    """The registered family of ``model_type`` (``KeyError`` naming the known ones otherwise)."""
    families = discover()
    if model_type not in families:
        raise KeyError(f"no model family {model_type!r} (known: {sorted(families)})")
    return families[model_type]


class FamilyView(MutableMapping):
    """A live ``model_type -> value`` mapping read from the registered families: ``value = get(family)``, families for
    which it is ``None`` left out, in :func:`discover`'s order.

    The public registries (``RECIPES``, ``CARD_FAMILIES``, ``MODEL_TABLE``) are such views, so that a family added
    with :func:`register_family` appears in all of them at once. Assigning a key overrides that one entry (tests
    patch a recipe, or add one under a name of their own); deleting an override restores the family's own value;
    a family itself is removed with :func:`unregister_family`.
    """

    def __init__(self, get: Callable[[ModelFamily], Any], what: str):
        self._get, self._what = get, what
        self._overrides: dict[str, Any] = {}

    def _items(self) -> dict[str, Any]:
        out = {}
        for name, fam in discover().items():
            value = self._overrides[name] if name in self._overrides else self._get(fam)
            if value is not None:
                out[name] = value
        out.update({k: v for k, v in self._overrides.items() if k not in out and v is not None})
        return out

    def __getitem__(self, key: str) -> Any:
        return self._items()[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._overrides[key] = value

    def __delitem__(self, key: str) -> None:
        if key not in self._overrides:
            raise KeyError(
                f"{key!r}: {self._what} is built from the model families; remove a family with "
                "session_transformers.families.unregister_family"
            )
        del self._overrides[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items())

    def __len__(self) -> int:
        return len(self._items())

    def __contains__(self, key: object) -> bool:
        return key in self._items()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._what}: {self._items()!r})"


__all__ = [
    "FAMILIES_ENV",
    "FamilyView",
    "ModelFamily",
    "argv",
    "discover",
    "family",
    "register_family",
    "unregister_family",
]
