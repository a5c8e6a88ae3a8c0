"""Releases on the Hugging Face Hub: model cards, release folders and one-commit publishing.

Three steps, each usable alone (``trainers/release.py`` is their command line):

1. :func:`render_card` turns a trained folder (``trainers/pretrain.py`` or ``trainers/finetune.py`` output:
   ``eval_results.json``, ``pretraining_stages.json``, ``metrics.jsonl``) and, where the family has one, its
   benchmark result (``benchmarks/results/<name>.json``) into a :class:`huggingface_hub.ModelCard`, rendered with
   ``ModelCard.from_template`` from the family's Jinja template in ``hub_cards/<template>``. Its YAML metadata
   (``ModelCardData``) holds ``library_name``, ``pipeline_tag``, tags, datasets, metrics, ``base_model`` and a
   ``model-index`` of :class:`~huggingface_hub.EvalResult` s (the checkpoint's own test-split figures).
2. :func:`build_release` writes the folder that is uploaded: weights (safetensors), config, processor files,
   the evaluation JSON, ``README.md`` (the card) and ``training_curve.png``; :func:`verify_release` reloads it
   with ``AutoConfig`` / ``AutoModel`` / ``AutoProcessor`` / the head's Auto class and checks that every output
   equals the checkpoint's exactly.
3. :func:`publish` creates the repo (``create_repo(exist_ok=True)``) and commits the folder in ONE
   ``create_commit`` (every file added, the files the release dropped deleted); the Hub client leaves out what the
   Hub already holds, so publishing the same folder again makes no commit. Then it tags the release
   (``create_tag``).
   The token comes from the environment (``HF_TOKEN``) and is never written to disk.

Adding a model family: one Jinja template in ``hub_cards/`` and its :class:`CardFamily`, the ``card`` of the family's
descriptor (``models/<family>/family.py``), which :data:`CARD_FAMILIES` lists (see ``hub_cards/README.md``).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from .families import FamilyView

ROOT = Path(__file__).resolve().parents[2]
"""The checkout's root (``hub_cards/``, ``benchmarks/results/`` and ``trainers/`` live there)."""

HUB_CARDS_DIR = Path(os.environ.get("SESSION_TRANSFORMERS_HUB_CARDS", ROOT / "hub_cards"))
BENCHMARK_RESULTS_DIR = ROOT / "benchmarks" / "results"

EVAL_FILE = "eval_results.json"
STAGES_FILE = "pretraining_stages.json"
METRICS_LOG = "metrics.jsonl"
RELEASE_INFO_FILE = "release.json"
"""Written beside a checkpoint by ``trainers/release.py build``: the exact training command(s) and data."""
PLOT_FILE = "training_curve.png"

RELEASE_FILES: tuple[str, ...] = (
    "config.json",
    "model.safetensors",
    "model.safetensors.index.json",
    "processor_config.json",
    "preprocessor_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "word_vectors.safetensors",  # MUVCOG's processor: the word vectors beside processor_config.json
    EVAL_FILE,
    STAGES_FILE,
    "training_record.json",  # provenance.PROVENANCE_FILE: what ran (no machine path in it)
)
"""Files of a checkpoint folder that go into a release (plus sharded ``model-*.safetensors``). Never pickles
(``training_args.bin``), optimiser state or intermediate checkpoints."""

HUB_PIPELINE_TAGS = frozenset(
    {
        "feature-extraction",
        "fill-mask",
        "graph-ml",
        "other",
        "sentence-similarity",
        "text-classification",
        "text-ranking",
        "tabular-classification",
        "tabular-regression",
        "zero-shot-classification",
    }
)
"""The Hub pipeline tags (``PIPELINE_DATA`` of huggingface.js ``packages/tasks/src/pipelines.ts``) that a session
model can sensibly carry; the Hub rejects tags outside its list, so the registry is checked against this."""

INSTALL = "pip install session_transformers"

FAILED_VERDICTS = ("fails", "does not hold")
"""How the benchmark scripts' verdicts start when the rerun contradicts a claim of the paper."""


# --------------------------------------------------------------------------------------------------------------
# The registry: one entry per model family
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Paper:
    """The paper a family implements, for the card's first section and its citation."""

    title: str
    authors: tuple[str, ...]
    year: int
    venue: str
    url: str | None = None
    bibtex_key: str = ""

    @property
    def author_list(self) -> str:
        return ", ".join(self.authors)

    def bibtex(self) -> str:
        lines = [
            f"@article{{{self.bibtex_key},",
            f"  title   = {{{self.title}}},",
            f"  author  = {{{' and '.join(self.authors)}}},",
            f"  journal = {{{self.venue}}},",
            f"  year    = {{{self.year}}},",
        ]
        if self.url:
            lines.append(f"  url     = {{{self.url}}},")
        return "\n".join(lines) + "\n}"


@dataclass(frozen=True)
class BenchmarkTable:
    """One table of a benchmark result, for the card: ``rows`` are ``(name, {column: value})``."""

    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, Mapping[str, Any]], ...]
    note: str = ""

    def markdown(self) -> str:
        return markdown_table(self.rows, self.columns, first="")

    @property
    def checked(self) -> int:
        """Rows that carry a verdict on one of the paper's claims (a ``verdict`` column)."""
        return sum(1 for _, row in self.rows if isinstance(row.get("verdict"), str))

    @property
    def failed(self) -> int:
        """Rows whose verdict says the claim fails in the rerun (``fails...`` or ``does not hold...``)."""
        return sum(
            1
            for _, row in self.rows
            if isinstance(row.get("verdict"), str) and row["verdict"].startswith(FAILED_VERDICTS)
        )


@dataclass(frozen=True)
class CardTask:
    """How a card describes a family's model fine-tuned on one downstream task (``trainers/finetune.py --task
    NAME``): the ``model-index`` task, the metrics shown (keys of ``eval_results.json``) and the head's Auto class
    (what the reload check loads). :meth:`CardFamily.for_task` puts them in place of the family's pretraining
    ones."""

    task_type: str
    task_name: str
    metrics: tuple[str, ...]
    head_auto_class: str
    lower_is_better: tuple[str, ...] = ()


@dataclass(frozen=True)
class CardFamily:
    """What the release path needs to know about one model family (one :data:`CARD_FAMILIES` entry).

    ``metrics`` are the keys of the trainers' evaluation dict shown in the card and the ``model-index`` (with
    ``higher_is_better`` for the plot's labels); ``build_flags`` the small ``trainers/pretrain.py`` flags of
    ``trainers/release.py build`` when the recipe has no ``quickstart`` job (one tuple per pretraining stage);
    ``real_data_builds`` extra builds on real data (``--real-data``): name suffix -> flags, one tuple per run
    (``pretrain.py`` stages; a tuple that names ``--task`` is a ``finetune.py`` run from the previous run's
    output); ``tasks`` the fine-tuned heads' descriptions (:class:`CardTask`, by ``--task`` name);
    ``example_inputs(processor)`` a small batch of model inputs for :func:`verify_release`;
    ``benchmark_tables(result)`` turns ``benchmarks/results/<benchmark>.json`` into card tables.
    """

    model_type: str
    name: str
    template: str
    pipeline_tag: str
    tags: tuple[str, ...]
    paper: Paper
    task_type: str
    task_name: str
    metrics: tuple[str, ...]
    head_auto_class: str
    example_inputs: Callable[[Any], dict]
    lower_is_better: tuple[str, ...] = ()
    benchmark: str | None = None
    benchmark_tables: Callable[[dict], list[BenchmarkTable]] | None = None
    build_flags: tuple[tuple[str, ...], ...] = ()
    real_data_builds: Mapping[str, tuple[tuple[str, ...], ...]] = field(default_factory=dict)
    datasets: Mapping[str, str] = field(default_factory=dict)
    """``--dataset`` value -> the name put in the card's ``datasets`` and ``model-index``."""
    tasks: Mapping[str, CardTask] = field(default_factory=dict)

    def for_task(self, task: str | None) -> CardFamily:
        """This family as a card of a model fine-tuned on ``task`` describes it (its :class:`CardTask`'s model-index
        task, metrics and head); the family itself for ``None`` or a task it has no :class:`CardTask` for."""
        described = self.tasks.get(task) if task else None
        if described is None:
            return self
        return replace(
            self,
            task_type=described.task_type,
            task_name=described.task_name,
            metrics=described.metrics,
            lower_is_better=described.lower_is_better,
            head_auto_class=described.head_auto_class,
        )


def finetuned_task(checkpoint: str | Path) -> str | None:
    """The ``--task`` a folder was fine-tuned on (its training record's, when ``trainers/finetune.py`` wrote it), else
    ``None`` (a pretrained folder, or one without a record)."""
    from .provenance import read_training_record

    record = read_training_record(checkpoint) or {}
    return record.get("task") if record.get("script") == "finetune.py" else None


def _head_auto(name: str):
    import transformers

    from . import auto

    cls = getattr(auto, name, None) or getattr(transformers, name, None)
    if cls is None:
        raise KeyError(f"no Auto class {name!r} in session_transformers.auto or transformers")
    return cls


def _tagnn_pp_inputs(processor) -> dict:
    vocab = processor.item_vocab
    if len(vocab) < 4:
        raise ValueError(f"the processor knows {len(vocab)} items; the example sessions need 4")
    sessions = [[vocab[0], vocab[1], vocab[2]], [vocab[3]], [vocab[1], vocab[0], vocab[1], vocab[3]]]
    return dict(processor(sessions))


def _ceres_inputs(processor) -> dict:
    from .data.schema import item_event, query_event

    def product(pid: str, title: str, description: str, category: list[str], brand: str) -> dict:
        return {
            "item_id": pid,
            "title": title,
            "description": description,
            "category": category,
            "brand": brand,
            "attributes": [],
            "image": None,
        }

    catalogue = {
        "p1": product("p1", "blue cotton shirt", "a soft shirt for summer", ["apparel", "shirts"], "acme"),
        "p2": product("p2", "red ceramic mug", "a large mug for coffee", ["home", "kitchen"], "brewco"),
    }
    sessions = [
        {
            "session_id": "a",
            "events": [
                query_event("search", "cotton shirt"),
                item_event("view", "p1"),
                item_event("view", "p2"),
            ],
        },
        {"session_id": "b", "events": [item_event("view", "p2")]},
    ]
    return dict(processor(sessions, catalogue))


def _example_catalogue() -> dict[str, dict]:
    """Three small products in the package's catalogue schema, for the session families' example inputs."""

    def product(pid: str, title: str, category: list[str], brand: str) -> dict:
        return {"item_id": pid, "title": title, "category": category, "brand": brand, "attributes": []}

    return {
        "p1": product("p1", "blue cotton shirt", ["apparel", "shirts"], "acme"),
        "p2": product("p2", "red ceramic mug", ["home", "kitchen"], "brewco"),
        "p3": product("p3", "wireless earbuds", ["electronics", "audio"], "sonix"),
    }


def _ubm_inputs(processor) -> dict:
    """Two text sessions and, for the next-item head, three candidate items as rows (``UbmModel`` ignores them)."""
    from .data.schema import item_event, query_event

    catalogue = _example_catalogue()
    sessions = [
        {
            "session_id": "a",
            "events": [
                query_event("search", "cotton shirt"),
                item_event("view", "p1"),
                item_event("add_to_cart", "p1"),
                item_event("view", "p2"),
            ],
        },
        {"session_id": "b", "events": [item_event("view", "p3"), item_event("purchase", "p3")]},
    ]
    inputs = dict(processor(sessions, catalogue))
    candidates = processor.encode_items(["p1", "p2", "p3"], catalogue)
    inputs["candidate_input_ids"] = candidates["input_ids"]
    inputs["candidate_attention_mask"] = candidates["attention_mask"]
    return inputs


def _muvcog_inputs(processor) -> dict:
    """Two multi-query sessions of the processor's own words (keyword, product and, unless the processor is
    text-only, image queries with a fixed image vector)."""
    from .data.schema import image_event, item_event, query_event

    words = [w for w in processor.vocab if w.isalpha()] or list(processor.vocab)
    if len(words) < 6:
        raise ValueError(f"the processor knows {len(words)} words; the example sessions need 6")
    image = [((7 * i) % 13) / 13.0 - 0.5 for i in range(processor.image_dim)]
    sessions = [
        {
            "session_id": "a",
            "events": [
                query_event("search", f"{words[0]} {words[1]}", 1.0),
                image_event("search", image, 2.0),
                query_event("search", f"{words[2]} {words[3]}", 3.0, product=True),
                item_event("click", "p1", 4.0),
            ],
        },
        {
            "session_id": "b",
            "events": [
                query_event("search", words[4], 1.0),
                query_event("search", f"{words[4]} {words[5]}", 2.0),
            ],
        },
    ]
    return dict(processor(sessions))


def _product_byol_inputs(processor) -> dict:
    return dict(processor(["Organic Bananas", "Blue Cotton Shirt, Size L", "red ceramic coffee mug 350 ml"]))


def _tagnn_pp_benchmark(result: dict) -> list[BenchmarkTable]:
    figures = result["figures"]
    tables = []
    summary = figures.get("summary") or {}
    if summary:
        columns = tuple(dict.fromkeys(k for row in summary.values() for k in row))
        tables.append(
            BenchmarkTable(
                "Diginetica (reduced), this package's implementation with the paper's architecture (the default "
                "until the peer benchmark below)",
                columns,
                tuple(summary.items()),
                note=str(result.get("data", "")),
            )
        )
    full = _read_json(BENCHMARK_RESULTS_DIR / "tagnn_pp_diginetica_cpu.json")  # the full catalogue, on a CPU
    if full and full.get("figures", {}).get("test_by_epoch"):
        rows = {**full["figures"].get("baselines_test", {}), **full["figures"]["test_by_epoch"]}
        tables.append(
            BenchmarkTable(
                "Full Diginetica (43,097 items), test set after each epoch on a 2-core CPU",
                ("HR@10", "MRR@10", "HR@20", "MRR@20"),
                tuple(rows.items()),
                note=f"{full.get('data', '')}. `benchmarks/results/tagnn_pp_diginetica_cpu.json`: "
                f"{full.get('command', '').split(' --note')[0]}",
            )
        )
    peer = _read_json(BENCHMARK_RESULTS_DIR / "tagnn_pp_peer.json")  # against the authors' code, same data
    if peer and peer.get("figures", {}).get("authors_code"):
        tables.append(_tagnn_pp_peer_table(peer))
    published = figures.get("published_full_diginetica") or {}
    if published:
        columns = tuple(dict.fromkeys(k for row in published.values() for k in row))
        tables.append(
            BenchmarkTable(
                "Published figures on the full Diginetica (for reference, not reproduced here)",
                columns,
                tuple(published.items()),
            )
        )
    return tables


def _tagnn_pp_peer_table(peer: dict) -> BenchmarkTable:
    """Test HR@20 / MRR@20 per epoch: the authors' code, our default architecture and the paper's."""
    figures = peer["figures"]
    sides = {"authors' code (The-Learning-Machines/SBR)": figures["authors_code"]["by_epoch"]}
    default = figures.get("default_variant")
    for name, label in (
        (default, "this package (default: the code's architecture)"),
        ("paper", "the paper's architecture"),
    ):
        if name in figures.get("ours", {}):
            sides[label] = figures["ours"][name]["by_epoch"]
    epochs = sorted({e for by_epoch in sides.values() for e in by_epoch}, key=lambda e: int(e.split()[-1]))
    columns = tuple(f"{m} {e}" for e in epochs for m in ("HR@20", "MRR@20"))
    rows = tuple(
        (label, {f"{m} {e}": by_epoch.get(e, {}).get(m) for e in epochs for m in ("HR@20", "MRR@20")})
        for label, by_epoch in sides.items()
    )
    return BenchmarkTable(
        "Against the authors' code: Diginetica top 3,000 items, same samples and settings, test set after each epoch",
        columns,
        rows,
        note=f"{peer.get('data', '')}. `benchmarks/results/tagnn_pp_peer.json`: {peer.get('command', '')}",
    )


def _ceres_benchmark(result: dict) -> list[BenchmarkTable]:
    figures = result["figures"]
    tables = []
    data = result.get("data") or {}
    for source, by_task in (figures.get("results") or {}).items():
        for i, (task, rows) in enumerate(by_task.items()):
            columns = tuple(
                c for c in ("MAP@1", "MAP@32", "Recall@32", "Recall@64") if any(c in r for r in rows.values())
            )
            note = (data.get(source, "") if isinstance(data, dict) else str(data)) if i == 0 else ""
            tables.append(BenchmarkTable(f"{source}: {task}", columns, tuple(rows.items()), note=note))
    homedepot = _read_json(BENCHMARK_RESULTS_DIR / "product_search_homedepot.json")  # real search terms
    if homedepot:
        tables.append(_homedepot_table(homedepot))
    return tables


def _homedepot_table(result: dict) -> BenchmarkTable:
    """Home Depot product search (real search terms against all product titles): every row with its interval."""
    figures = result["figures"]
    test = next(v for k, v in figures.items() if k.startswith("test"))
    metrics = ("NDCG@10", "MRR@10", "Recall@100")
    rows = []
    for name, row in test.items():
        cells: dict[str, Any] = {}
        for m in metrics:  # three decimals: these are fractions, and the rows differ in the third
            low, _, high = str(row.get(f"{m} 95% CI", "")).partition("-")
            value = row.get(m)
            try:
                cells[m] = f"{value:.3f} [{float(low):.3f}, {float(high):.3f}]"
            except (TypeError, ValueError):
                cells[m] = f"{value:.3f}" if isinstance(value, int | float) else value
        rows.append((name, cells))
    goal = figures.get("goal") or {}
    verdict = (
        f"Our best row by validation NDCG@10 ({goal.get('our best row (by validation NDCG@10)')}): test NDCG@10 "
        f"{_fmt(goal.get('its test NDCG@10'))} against BM25's {_fmt(goal.get('BM25 test NDCG@10'))}; "
        f"beats BM25 with separated intervals: {'yes' if goal.get('beats BM25 with separated intervals') else 'no'}. "
        if goal
        else ""
    )
    return BenchmarkTable(
        "Home Depot product search: real search terms ranked against every product title (test terms)",
        metrics,
        tuple(rows),
        note=f"{verdict}{result.get('data', '')}. `benchmarks/results/product_search_homedepot.json`: "
        f"{result.get('command', '')}",
    )


def _interval(cell: Any) -> Any:
    """A ``{"value", "low", "high"}`` figure as ``"v [low, high]"``; anything else as it is."""
    if isinstance(cell, Mapping) and "value" in cell:
        value, low, high = cell.get("value"), cell.get("low"), cell.get("high")
        if isinstance(low, int | float) and isinstance(high, int | float) and low != high:
            return f"{_fmt(float(value))} [{_fmt(float(low))}, {_fmt(float(high))}]"
        return value
    return cell


def _verdict_table(title: str, orderings: Mapping[str, str], note: str = "") -> BenchmarkTable:
    rows = tuple((claim, {"verdict": str(verdict)}) for claim, verdict in orderings.items())
    return BenchmarkTable(title, ("verdict",), rows, note=note)


UBM_SYNTHETIC_BENCHMARK = "ubm_claims_cpu_scratch"
"""The UBM card's second result: the synthetic store, the only data here where all three tasks can be measured
(REES46's sample has too few purchases and long sessions in its test period), run with a small encoder trained
from nothing because MiniLM on the synthetic store's titles would take ~11 h of the CPU box."""


def _ubm_tables(result: dict, first_note: str) -> list[BenchmarkTable]:
    """One claims result: per dataset, each task's figures (value and bootstrap 95% interval; next item in percent), the
    representation alignment / uniformity, and the paper's orderings with their verdicts."""
    figures = result.get("figures") or {}
    tables: list[BenchmarkTable] = []
    for source, block in figures.items():
        if not isinstance(block, Mapping) or "tasks" not in block:
            continue
        for task, rows in (block.get("tasks") or {}).items():
            columns = tuple(
                dict.fromkeys(k for row in rows.values() for k in row if not k.startswith("num_"))
            )
            tables.append(
                BenchmarkTable(
                    f"{source}: {task} ({'percent, ' if task == 'next_item' else ''}bootstrap 95% interval)",
                    columns,
                    tuple((name, {c: _interval(row.get(c)) for c in columns}) for name, row in rows.items()),
                    note=first_note if not tables else "",
                )
            )
        geometry = block.get("alignment / uniformity") or {}
        if geometry:
            tables.append(
                BenchmarkTable(
                    f"{source}: session-embedding alignment / uniformity (lower is better for both)",
                    ("alignment", "uniformity"),
                    tuple(geometry.items()),
                )
            )
        if block.get("orderings"):
            tables.append(
                _verdict_table(f"{source}: the paper's orderings in this rerun", block["orderings"])
            )
    return tables


def _ubm_benchmark(result: dict) -> list[BenchmarkTable]:
    """The card's result (:func:`_ubm_tables`); the ablation run beside it (``<name>_ablations.json``), when there,
    adds its orderings; the synthetic-store run (:data:`UBM_SYNTHETIC_BENCHMARK`), when there, its tables."""
    tables = _ubm_tables(result, str((result.get("figures") or {}).get("scale", "")))
    ablations = _read_json(BENCHMARK_RESULTS_DIR / f"{result.get('name', '')}_ablations.json")
    for source, block in ((ablations or {}).get("figures") or {}).items():
        if isinstance(block, Mapping) and block.get("orderings"):
            tables.append(
                _verdict_table(
                    f"{source}: loss ablations (the paper's Table 2 orderings)",
                    block["orderings"],
                    note=f"`benchmarks/results/{ablations['name']}.json`: {ablations.get('command', '')}",
                )
            )
    synthetic = _read_json(BENCHMARK_RESULTS_DIR / f"{UBM_SYNTHETIC_BENCHMARK}.json")
    if synthetic and synthetic.get("name") != result.get("name"):
        scale = (synthetic.get("figures") or {}).get("scale", "")
        tables += _ubm_tables(
            synthetic,
            f"`benchmarks/results/{synthetic['name']}.json`: {synthetic.get('command', '')}. {scale}",
        )
    return tables


def _muvcog_benchmark(result: dict) -> list[BenchmarkTable]:
    """Query suggestion (Table 3, with the trivial baselines), intent classification (Table 4), click prediction
    (Table 2) and the checked claims with their verdicts."""
    figures = result.get("figures") or {}
    tables = []
    suggestion = dict(figures.get("table3_query_suggestion") or {})
    for name, row in ((figures.get("table3_baselines") or {}).get("mm") or {}).items():
        suggestion[f"{name} (baseline)"] = row
    if suggestion:
        columns = tuple(
            c for c in ("NDCG@10", "HR@10", "MRR@10", "Avg.Sim") if any(c in r for r in suggestion.values())
        )
        tables.append(
            BenchmarkTable("Query suggestion (Table 3), fractions", columns, tuple(suggestion.items()))
        )
    intent = figures.get("table4_intent") or {}
    if intent:
        columns = tuple(c for c in ("AUC", "Acc", "P", "R", "F1") if any(c in r for r in intent.values()))
        tables.append(
            BenchmarkTable("Intent classification (Table 4), fractions", columns, tuple(intent.items()))
        )
    click = {}
    for name, row in (figures.get("table2_click") or {}).items():
        nested = row.get(name) if isinstance(row.get(name), Mapping) else None
        click[f"{name} (baseline)" if nested else name] = nested or row
    if click:
        columns = tuple(c for c in ("NDCG@10", "HR@10", "MRR@10") if any(c in r for r in click.values()))
        tables.append(BenchmarkTable("Click prediction (Table 2), fractions", columns, tuple(click.items())))
    claims = figures.get("claims") or []
    if claims:
        rows = tuple(
            (c["claim"], {k: c.get(k) for k in ("difference", "±95%", "n", "verdict")}) for c in claims
        )
        tables.append(
            BenchmarkTable("The paper's claims in this rerun", ("difference", "±95%", "n", "verdict"), rows)
        )
    return tables


def _product_byol_benchmark(result: dict) -> list[BenchmarkTable]:
    """The claims' verdicts, the validation AUC per loss weight alpha, and the downstream learning curves (test
    ROC-AUC mean +- std over subsamples, per labelled-set size) of each task."""
    figures = result.get("figures") or {}
    tables = []
    verdicts = {
        k: v for k, v in (figures.get("verdicts") or {}).items() if isinstance(v, str) and k[:1] == "C"
    }
    if verdicts:
        tables.append(_verdict_table("The paper's claims in this rerun", verdicts))
    by_alpha = (figures.get("verdicts") or {}).get("validation_auc_by_alpha") or {}
    if by_alpha:
        tables.append(
            BenchmarkTable(
                "Mean validation ROC-AUC of the downstream tasks per loss weight",
                ("validation ROC-AUC",),
                tuple((k, {"validation ROC-AUC": v}) for k, v in by_alpha.items()),
            )
        )
    for task, rows in (figures.get("learning_curves") or {}).items():
        columns = tuple(dict.fromkeys(k for row in rows.values() for k in row))
        tables.append(
            BenchmarkTable(
                f"{task}: test ROC-AUC by labelled training products",
                columns,
                tuple(rows.items()),
            )
        )
    return tables


CARD_FAMILIES: Mapping[str, CardFamily] = FamilyView(lambda family: family.card, "CARD_FAMILIES")
"""``model_type`` -> :class:`CardFamily`: a view of the model families' card entries (``ModelFamily.card``, written
in ``models/<family>/family.py``; see :mod:`session_transformers.families`)."""


def card_family(model_type: str) -> CardFamily:
    try:
        return CARD_FAMILIES[model_type]
    except KeyError:
        raise KeyError(
            f"no model card family {model_type!r} in session_transformers.hub.CARD_FAMILIES: give the family's "
            f"descriptor (models/<family>/family.py) a card and hub_cards/ a template (known: {sorted(CARD_FAMILIES)})"
        ) from None


# --------------------------------------------------------------------------------------------------------------
# Reading a trained folder
# --------------------------------------------------------------------------------------------------------------


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text()) if path.exists() else None


def split_metrics(results: Mapping[str, Any], split: str) -> dict[str, float]:
    """The numeric metrics of one split of an ``eval_results.json``, with ``transformers.Trainer``'s
    ``<split>_`` prefix removed (``trainers/finetune.py`` writes ``test_HR@20``, ``trainers/pretrain.py`` ``HR@20``)."""
    raw = results.get(split) or {}
    out = {}
    for key, value in raw.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        name = key[len(split) + 1 :] if key.startswith(f"{split}_") else key
        out[name] = float(value)
    return out


def read_training_log(folder: Path) -> list[dict]:
    path = Path(folder) / METRICS_LOG
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def training_curve(folder: Path, out_path: Path, family: CardFamily) -> Path | None:
    """Draw the training loss per optimiser step and the validation metrics (``metrics.jsonl``) into a PNG;
    ``None`` when the folder has no log (or matplotlib is missing). Deterministic bytes (no timestamp in the PNG
    metadata), so a rebuilt release is byte-identical and re-publishing it makes no commit."""
    log = read_training_log(folder)
    if not log:
        return None
    try:
        import matplotlib
    except ImportError:  # an optional dependency (the `benchmarks` extra): the card then has no plot
        warnings.warn("matplotlib is not installed: the release has no training-curve plot", stacklevel=2)
        return None

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["step"] for r in log if "loss" in r]
    losses = [r["loss"] for r in log if "loss" in r]
    # validation curves only where there are at least two checks to draw a line through
    val_keys = [f"validation/{m}" for m in family.metrics if sum(f"validation/{m}" in r for r in log) >= 2]
    fig, axes = plt.subplots(1, 2 if val_keys else 1, figsize=(10 if val_keys else 5, 3.6), squeeze=False)
    ax = axes[0][0]
    ax.plot(steps, losses, lw=1.2)
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("training loss")
    ax.set_title(f"{family.name}: training loss")
    ax.grid(alpha=0.3)
    if val_keys:
        ax = axes[0][1]
        for key in val_keys:
            points = [(r["step"], r[key]) for r in log if key in r]
            name = key.split("/", 1)[1]
            label = f"{name} (lower is better)" if name in family.lower_is_better else name
            ax.plot(*zip(*points), marker="o", ms=3, label=label)
        ax.set_xlabel("optimiser step")
        ax.set_title("validation split")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    out_path = Path(out_path)
    fig.savefig(out_path, format="png", dpi=100, metadata={"Software": None})
    plt.close(fig)
    return out_path


def load_benchmark(family: CardFamily, results_dir: Path | None = None) -> dict | None:
    if family.benchmark is None:
        return None
    return _read_json(Path(results_dir or BENCHMARK_RESULTS_DIR) / f"{family.benchmark}.json")


# --------------------------------------------------------------------------------------------------------------
# The card
# --------------------------------------------------------------------------------------------------------------


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "–"
        return f"{value:.2f}" if abs(value) >= 0.01 or value == 0 else f"{value:.2g}"
    return "–" if value is None else str(value)


def markdown_table(
    rows: Iterable[tuple[str, Mapping[str, Any]]], columns: Iterable[str], first: str = ""
) -> str:
    columns = list(columns)
    lines = [
        "| " + " | ".join([first, *columns]) + " |",
        "|" + "---|" * (len(columns) + 1),
    ]
    for name, row in rows:
        lines.append("| " + " | ".join([str(name), *(_fmt(row.get(c)) for c in columns)]) + " |")
    return "\n".join(lines)


def _metric_type(name: str) -> str:
    return name.lower().replace(" ", "_")


def eval_results_for(
    family: CardFamily, results: Mapping[str, Any], dataset_type: str, dataset_name: str
) -> list:
    """The ``model-index`` entries: the family's metrics on the test split (the validation split when the run
    had no separate test split), as :class:`huggingface_hub.EvalResult` s."""
    from huggingface_hub import EvalResult

    split = "test" if results.get("test") else "validation"
    values = split_metrics(results, split)
    return [
        EvalResult(
            task_type=family.task_type,
            task_name=family.task_name,
            dataset_type=dataset_type,
            dataset_name=dataset_name,
            dataset_split=split,
            metric_type=_metric_type(m),
            metric_name=m,
            metric_value=round(values[m], 4),
        )
        for m in family.metrics
        if m in values
    ]


def _training_commands(history: list[dict], release_info: Mapping | None, command: str | None) -> list[str]:
    """The exact commands, oldest first: ``command`` when given, else the training records', else ``release.json``'s
    (a folder built before records existed); machine paths made portable either way."""
    from .provenance import scrub_paths

    if command:
        return [scrub_paths(command)]
    recorded = [r["command"] for r in history if r.get("command")]
    if recorded:
        return recorded
    if release_info and release_info.get("commands"):
        return [scrub_paths(c) for c in release_info["commands"]]
    return []


UNRECORDED_DATA = (
    "{checkpoint}: the training data is not recorded (no training_record.json: a folder saved before the trainers "
    "recorded what ran, or not by them); name it: render_card(..., dataset_name=NAME), or `trainers/release.py "
    "publish --dataset-name NAME`"
)


def _dataset_of(
    history: list[dict],
    release_info: Mapping | None,
    family: CardFamily,
    override: str | None,
    checkpoint: Path,
) -> tuple[str, list[str]]:
    """``(key, names)``: ``key`` is ``"synthetic"`` for the synthetic store, else the data set's name (the card's
    title and text); ``names`` the data sets for the metadata, the last one the model-index's (where the figures
    come from). From ``override``, else the training records, else ``release.json``; never guessed from a path, and
    never the synthetic store by default: without any of them, ``ValueError``."""
    from .provenance import SYNTHETIC_DATASET

    if override:
        names = [override]
    elif history:
        names = list(dict.fromkeys(r["dataset"]["name"] for r in history if r.get("dataset")))
    elif release_info and release_info.get("dataset"):
        key = str(release_info["dataset"])
        names = [family.datasets.get(key, key) if key != "synthetic" else SYNTHETIC_DATASET]
    else:
        names = []
    if not names:
        raise ValueError(UNRECORDED_DATA.format(checkpoint=checkpoint))
    last = names[-1]
    key = "synthetic" if last == SYNTHETIC_DATASET else last
    # the last data set comes last: the model-index's dataset is the one its figures were measured on
    return key, [n for n in names if n != last] + [last]


def _number(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)


def _protocol_text(protocol: Mapping[str, Any], selected: str) -> str:
    lr = protocol.get("learning_rate")
    schedule = protocol.get("lr_scheduler_type")
    warmup = protocol.get("warmup_ratio")
    text = (
        f"{protocol.get('optimizer')}, learning rate {lr:g} ({schedule}"
        if isinstance(lr, int | float)
        else ""
    )
    if not text:
        return ""
    text += f", warm-up {warmup:g})" if warmup else ")"
    text += f", weight decay {protocol.get('weight_decay', 0):g}, batch {protocol.get('batch_size')}"
    if protocol.get("max_grad_norm"):
        text += f", gradient norm clipped to {protocol['max_grad_norm']:g}"
    return f"Protocol: {text}; {selected}."


def _data_text(dataset: Mapping[str, Any]) -> str:
    name = dataset.get("name", "?")
    if dataset.get("loader") == "synthetic":
        gen = dataset.get("generated") or {}
        size = f", {gen['num_sessions']:,} sessions" if gen.get("num_sessions") else ""
        return (
            f"the package's **synthetic store** (`--dataset synthetic`, preset {gen.get('store_preset', 'default')}"
            f"{size}, seed {gen.get('seed')})"
        )
    parts = [f"`--dataset {dataset.get('loader')}`"]
    if dataset.get("path"):
        parts.append(f"`{dataset['path']}`")
    fp = dataset.get("fingerprint") or {}
    if fp.get("sha256"):
        parts.append(
            f"content SHA-256 `{fp['sha256'][:16]}…` over {fp['files']} file(s), {fp['bytes']:,} bytes"
        )
    return f"**{name}** ({', '.join(parts)})"


def training_section(
    history: list[dict],
    stages: list[dict],
    commands: list[str],
    selected_step: Any = None,
    selected_by: Any = None,
) -> str:
    """The card's training section (markdown): one item per run behind the model (each pretraining stage, the
    fine-tuning) with its data set, split and protocol, then the exact commands. From the training records; for a
    folder without them, from ``pretraining_stages.json`` (paths scrubbed) and whatever commands are known."""
    from .provenance import scrub_paths

    lines = [""]
    if history:
        for record in history:
            if record.get("script") == "finetune.py":
                what = f"**Fine-tuning** (`trainers/finetune.py`, task `{record.get('task')}`)"
            else:
                stage = record.get("stage") or {}
                what = f"**Pretraining stage {stage.get('number', 1)}** ({stage.get('name', 'pretrain')})"
            split = record.get("split") or {}
            sizes = ", ".join(
                f"{_number(split[k])} {k}"
                for k in ("train", "validation", "test")
                if split.get(k) is not None
            )
            steps = record.get("optimizer_steps")
            if record.get("selected_step") is not None:
                selected = (
                    f"the weights of step {record['selected_step']} (best validation {record.get('selected_by')}) "
                    "were kept"
                )
            elif record.get("selected_checkpoint"):
                by = (record.get("protocol") or {}).get("select_best")
                selected = (
                    f"the checkpoint with the best validation {by} ({record['selected_checkpoint']}) was kept"
                    if by
                    else f"the best validation checkpoint ({record['selected_checkpoint']}) was kept"
                )
            else:
                selected = "the last step's weights were kept"
            lines.append(
                f"- {what}: {_number(steps)} optimiser steps on {_data_text(record.get('dataset') or {})}; "
                f"samples: {sizes or 'not recorded'}."
            )
            if split.get("description"):
                lines.append(f"  Data and split: {split['description']}.")
            protocol = _protocol_text(record.get("protocol") or {}, selected)
            if protocol:
                lines.append(f"  {protocol} The test split was scored once, at the end.")
    else:
        for stage in stages:
            protocol = stage.get("protocol") or {}
            selected = (
                f"checkpoint selected by validation {protocol['select_best']}"
                if protocol.get("select_best")
                else "the last step's weights kept"
            )
            lines.append(
                f"- Stage {stage.get('stage')} ({stage.get('name')}): {stage.get('optimizer_steps')} optimiser steps "
                f"on {scrub_paths(str(stage.get('data', '')))}."
            )
            text = _protocol_text(protocol, selected)
            if text:
                lines.append(f"  {text}")
        if selected_step:
            lines.append(
                f"- The weights of step {selected_step} (best validation {selected_by}) were kept, then the test "
                "split was scored once."
            )
    lines.append("")
    if commands:
        lines.append(f"The exact command{'s' if len(commands) > 1 else ''}:")
        lines += ["", "```bash", *commands, "```"]
    else:
        lines.append("The training command was not recorded with this checkpoint.")
    lines.append("")
    return "\n".join(lines)


RUNTIME_COLUMNS = ("runtime", "samples_per_second", "steps_per_second", "epoch", "train_seconds")
"""Keys of ``transformers.Trainer``'s evaluation output (and the trainers' timing) that describe the machine, not
the model: never columns of a card's results table."""


def render_card(
    checkpoint: str | Path,
    model_type: str | None = None,
    *,
    repo_id: str | None = None,
    command: str | None = None,
    base_model: str | None = None,
    license: str = "apache-2.0",
    plot: str | None = PLOT_FILE,
    results: Mapping[str, Any] | None = None,
    benchmark_dir: Path | None = None,
    templates_dir: Path | None = None,
    dataset_name: str | None = None,
):
    """The model card of a trained folder, rendered from its family's template.

    Args:
        checkpoint: a ``trainers/pretrain.py`` / ``finetune.py`` output folder (``config.json``,
            ``eval_results.json``; ``pretraining_stages.json``, ``metrics.jsonl`` and ``release.json`` when there).
        model_type: the family (default: ``config.json``'s ``model_type``).
        repo_id: the Hub repo the card is for (shown in the usage example).
        command: the exact training command, when ``release.json`` does not record it.
        base_model: a Hub id the model was initialised from (e.g. ``--item-encoder-from``).
        plot: the file name of the training-curve PNG in the release folder (``None``: no plot).
        results: evaluation results to show instead of the folder's ``eval_results.json`` (a re-evaluation).
        dataset_name: the training data's name, overriding the training record's (required for a folder without
            ``training_record.json`` or ``release.json``: the data set is never guessed).

    Returns:
        A :class:`huggingface_hub.ModelCard`.
    """
    from huggingface_hub import ModelCard, ModelCardData

    checkpoint = Path(checkpoint)
    config = _read_json(checkpoint / "config.json") or {}
    model_type = model_type or config.get("model_type")
    family = card_family(model_type)
    results = dict(results if results is not None else _read_json(checkpoint / EVAL_FILE) or {})
    stages = (_read_json(checkpoint / STAGES_FILE) or {}).get("stages", [])
    release_info = _read_json(checkpoint / RELEASE_INFO_FILE)
    base_model = base_model or (release_info or {}).get("base_model")
    from .provenance import read_training_record, training_history

    history = training_history(read_training_record(checkpoint))
    family = family.for_task(finetuned_task(checkpoint))
    dataset_key, dataset_names = _dataset_of(history, release_info, family, dataset_name, checkpoint)
    dataset_name = dataset_names[-1]
    eval_results = eval_results_for(family, results, dataset_name, dataset_name)
    card_data = ModelCardData(
        library_name="session_transformers",
        license=license,
        pipeline_tag=family.pipeline_tag,
        tags=["session_transformers", model_type, *family.tags],
        datasets=dataset_names,
        metrics=[_metric_type(m) for m in family.metrics],
        base_model=base_model,
        model_name=repo_id.split("/")[-1] if repo_id else f"{model_type}-{dataset_key}",
        eval_results=eval_results or None,
    )
    splits = [s for s in ("validation", "test") if results.get(s)]
    split_values = {s: split_metrics(results, s) for s in splits}
    shown = [m for m in family.metrics if any(m in v for v in split_values.values())]
    extra = sorted(
        k
        for k in {k for v in split_values.values() for k in v} - set(shown)
        if not k.startswith("num_") and not k.endswith(RUNTIME_COLUMNS)
    )
    table = markdown_table(((s, split_values[s]) for s in splits), [*shown, *extra], first="split")
    baselines = results.get("baseline") or results.get("baselines") or {}
    baseline_table = ""
    if baselines:
        rows = []
        for name, values in baselines.items():
            values = values.get("test", values) if isinstance(values, dict) else {}
            rows.append((name, {k: v for k, v in values.items() if isinstance(v, int | float)}))
        selected_by = results.get("selected_by") or (
            (history[-1].get("protocol") or {}).get("select_best") if history else None
        )
        verdict = _strongest_baseline(
            family, rows, split_values.get(splits[-1]) if splits else None, selected_by
        )
        if split_values:
            rows.insert(0, (f"{family.name} (this model)", split_values[splits[-1]]))
        baseline_table = markdown_table(rows, shown, first="") + (f"\n\n{verdict}" if verdict else "")
    benchmark = load_benchmark(family, benchmark_dir)
    tables = family.benchmark_tables(benchmark) if benchmark and family.benchmark_tables else []
    n_params = None
    weights = checkpoint / "model.safetensors"
    if weights.exists():
        from safetensors import safe_open

        with safe_open(str(weights), "pt") as fh:
            n_params = sum(math.prod(fh.get_slice(k).get_shape()) for k in fh.keys())  # noqa: SIM118
    commands = _training_commands(history, release_info, command)
    template = Path(templates_dir or HUB_CARDS_DIR) / family.template
    if not template.exists():
        raise FileNotFoundError(f"{template}: the card template of {model_type!r} is missing")
    import session_transformers

    card = ModelCard.from_template(
        card_data,
        template_path=str(template),
        family=family,
        paper=family.paper,
        citation=family.paper.bibtex(),
        repo_id=repo_id or f"<user>/{model_type}",
        install=INSTALL,
        head_auto_class=family.head_auto_class,
        config=config,
        num_parameters=f"{n_params:,}" if n_params else "unknown",
        results_table=table if splits else "",
        results_split=splits[-1] if splits else None,
        selected_step=results.get("selected_step"),
        selected_by=results.get("selected_by"),
        optimizer_steps=results.get("optimizer_steps"),
        baseline_table=baseline_table,
        stages=stages,
        dataset_key=dataset_key,
        dataset_name=dataset_name,
        commands=commands,
        training_section=training_section(
            history, stages, commands, results.get("selected_step"), results.get("selected_by")
        ),
        unknown_targets=_unknown_targets(results, splits),
        benchmark=benchmark,
        benchmark_tables=tables,
        plot=plot,
        package_version=session_transformers.__version__,
    )
    return card


def _strongest_baseline(
    family: CardFamily, baselines: list[tuple[str, Mapping]], model: Mapping | None, selected_by: str | None
) -> str:
    """One sentence: the strongest trivial baseline on the metric the run selected by (else the family's first
    shown metric) and where this model stands against it, so that no reader has to compare the rows."""
    if not model or not baselines:
        return ""
    candidates = [selected_by, *family.metrics]
    metric = next(
        (m for m in candidates if m and m in model and any(m in v for _, v in baselines)),
        None,
    )
    if metric is None:
        return ""
    lower = metric in family.lower_is_better
    scored = [(name, v[metric]) for name, v in baselines if isinstance(v.get(metric), int | float)]
    name, best = (min if lower else max)(scored, key=lambda nv: nv[1])
    mine = model[metric]
    if mine == best:
        where = "level with it"
    else:
        where = "above it" if (mine > best) != lower else "below it"
        if lower:
            where = "better" if mine < best else "worse"
    return (
        f"The strongest trivial baseline on {metric} is **{name}** ({_fmt(float(best))}); this model scores "
        f"{_fmt(float(mine))}, {where}{' (lower is better)' if lower else ''}."
    )


def _unknown_targets(results: Mapping[str, Any], splits: list[str]) -> int:
    """Cases of the card's split whose target is outside the model's vocabulary (misses by construction)."""
    if not splits:
        return 0
    return int(split_metrics(results, splits[-1]).get("num_unknown_targets", 0))


def check_card_metadata(text: str) -> dict:
    """Validate a rendered card's YAML metadata offline (``ModelCard.validate`` needs the network): parse it as
    ``ModelCardData``, check the fields the Hub needs and that the ``model-index`` round-trips through
    ``model_index_to_eval_results`` / ``eval_results_to_model_index``. Returns the metadata; raises ``ValueError``."""
    import yaml
    from huggingface_hub import ModelCard
    from huggingface_hub.repocard_data import eval_results_to_model_index, model_index_to_eval_results

    if not text.startswith("---\n"):
        raise ValueError("a model card starts with a YAML block between '---' lines")
    meta = yaml.safe_load(text.split("---\n", 2)[1])
    card = ModelCard(text)  # parses the block into ModelCardData (raises on malformed model-index)
    problems = []
    if meta.get("library_name") != "session_transformers":
        problems.append(f"library_name is {meta.get('library_name')!r}")
    if meta.get("pipeline_tag") not in HUB_PIPELINE_TAGS:
        problems.append(f"pipeline_tag {meta.get('pipeline_tag')!r} is not a Hub pipeline tag")
    for key in ("tags", "datasets", "metrics", "license"):
        if not meta.get(key):
            problems.append(f"{key} is missing")
    index = meta.get("model-index")
    if index:
        name, results = model_index_to_eval_results(index)
        if eval_results_to_model_index(name, results) != index:
            problems.append("model-index does not round-trip through EvalResult")
        if card.data.eval_results is None or len(card.data.eval_results) != len(results):
            problems.append("ModelCardData did not read the model-index")
        for r in results:
            if not isinstance(r.metric_value, int | float) or not math.isfinite(r.metric_value):
                problems.append(f"model-index value {r.metric_name}: {r.metric_value!r}")
    if problems:
        raise ValueError("invalid card metadata: " + "; ".join(problems))
    return meta


# --------------------------------------------------------------------------------------------------------------
# The release folder
# --------------------------------------------------------------------------------------------------------------


def release_files(checkpoint: Path) -> list[Path]:
    checkpoint = Path(checkpoint)
    files = [checkpoint / name for name in RELEASE_FILES if (checkpoint / name).is_file()]
    files += sorted(checkpoint.glob("model-*-of-*.safetensors"))
    if not (checkpoint / "config.json").is_file():
        raise FileNotFoundError(f"{checkpoint} has no config.json: not a saved model folder")
    if not any(f.name.endswith(".safetensors") for f in files):
        raise FileNotFoundError(f"{checkpoint} has no safetensors weights")
    return files


def build_release(
    checkpoint: str | Path,
    out_dir: str | Path,
    *,
    model_type: str | None = None,
    results: Mapping[str, Any] | None = None,
    plot: bool = True,
    **card_kwargs,
) -> Path:
    """Write the release folder of ``checkpoint`` into ``out_dir`` (replaced): weights, config, processor files,
    evaluation JSON (``results`` when re-evaluated), ``README.md`` (the card) and, with ``plot``, the training
    curve. Returns ``out_dir``."""
    checkpoint, out_dir = Path(checkpoint), Path(out_dir)
    files = release_files(checkpoint)
    if out_dir.resolve() == checkpoint.resolve():
        raise ValueError("the release folder must differ from the checkpoint folder")
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    for f in files:
        shutil.copyfile(f, out_dir / f.name)
    if results is not None:
        (out_dir / EVAL_FILE).write_text(json.dumps(results, indent=2) + "\n")
    model_type = model_type or json.loads((checkpoint / "config.json").read_text())["model_type"]
    family = card_family(model_type).for_task(finetuned_task(checkpoint))
    drawn = training_curve(checkpoint, out_dir / PLOT_FILE, family) if plot else None
    card = render_card(
        checkpoint,
        model_type,
        plot=PLOT_FILE if drawn else None,
        results=results,
        **card_kwargs,
    )
    card.save(out_dir / "README.md")
    return out_dir


def _outputs(model, inputs: dict) -> dict[str, torch.Tensor]:
    model.eval()
    with torch.no_grad():
        out = model(**inputs)
    return {k: v for k, v in out.items() if isinstance(v, torch.Tensor)}


def _flat_tensors(value: Any, prefix: str = "") -> dict[str, torch.Tensor]:
    """Every tensor of a model input: a tensor, or a graph batch (``torch_geometric`` ``HeteroData``, via
    ``to_dict``) or mapping of them, by dotted path; other values give none."""
    if isinstance(value, torch.Tensor):
        return {prefix: value}
    if hasattr(value, "to_dict") and not isinstance(value, Mapping):
        value = value.to_dict()
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            out.update(_flat_tensors(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {}


def verify_release(checkpoint: str | Path, release: str | Path) -> dict[str, int]:
    """Reload ``release`` the way a user does (``import session_transformers``, then ``AutoConfig`` /
    ``AutoModel`` / ``AutoProcessor`` / the head's Auto class ``.from_pretrained``) and check that every output
    tensor equals the checkpoint's exactly on the family's example inputs (encoded by both processors, which must
    agree too). Returns ``{class name: tensors compared}``; raises ``AssertionError`` on any difference."""
    from transformers import AutoConfig, AutoModel, AutoProcessor

    import session_transformers  # noqa: F401  (registers the Auto classes)

    checkpoint, release = Path(checkpoint), Path(release)
    config = AutoConfig.from_pretrained(release)
    family = card_family(config.model_type).for_task(finetuned_task(checkpoint))
    ref_config = AutoConfig.from_pretrained(checkpoint)

    def _plain(c) -> dict:
        return {k: v for k, v in c.to_dict().items() if k != "_name_or_path"}

    if _plain(config) != _plain(ref_config):
        raise AssertionError("the released config differs from the checkpoint's")
    inputs = family.example_inputs(AutoProcessor.from_pretrained(release))
    ref_inputs = family.example_inputs(AutoProcessor.from_pretrained(checkpoint))
    for key in ref_inputs:
        a, b = _flat_tensors(inputs[key]), _flat_tensors(ref_inputs[key])
        if a.keys() != b.keys() or any(not torch.equal(a[k], b[k]) for k in b):
            raise AssertionError(f"the released processor encodes {key!r} differently")
    compared = {}
    from transformers.utils import logging as hf_logging

    for auto_cls in (AutoModel, _head_auto(family.head_auto_class)):
        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()  # a base model loaded from a head checkpoint reports the head's keys
        try:
            mine = auto_cls.from_pretrained(release, dtype=torch.float32)
            ref = auto_cls.from_pretrained(checkpoint, dtype=torch.float32)
        finally:
            hf_logging.set_verbosity(verbosity)
        got, expected = _outputs(mine, inputs), _outputs(ref, ref_inputs)
        if set(got) != set(expected):
            raise AssertionError(f"{type(mine).__name__}: outputs {sorted(got)} != {sorted(expected)}")
        for name in expected:
            if not torch.equal(got[name], expected[name]):
                diff = (got[name].float() - expected[name].float()).abs().max().item()
                raise AssertionError(f"{type(mine).__name__}.{name} differs (max abs diff {diff})")
        compared[type(mine).__name__] = len(expected)
    return compared


# --------------------------------------------------------------------------------------------------------------
# Publishing
# --------------------------------------------------------------------------------------------------------------


def local_hashes(folder: Path) -> dict[str, dict[str, str]]:
    """``path in repo`` -> ``{"sha256": ...}`` of every file under ``folder`` (a release's content tag and the
    dry run's check that it holds the built folder's bytes)."""
    folder = Path(folder)
    return {
        path.relative_to(folder).as_posix(): {"sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
        for path in sorted(p for p in folder.rglob("*") if p.is_file())
    }


KEEP_REMOTE = frozenset({".gitattributes"})
"""Remote files a release never deletes (``upload_folder`` keeps the same one)."""


@dataclass
class PublishResult:
    repo_id: str
    tag: str | None
    committed: bool
    """False when the Hub already held every file: ``create_commit`` then makes no commit."""
    commit_oid: str | None
    """The release's commit: the new one, or the revision that already held it."""
    files: list[str]
    deleted: list[str]
    """Files the repo had and the release has not (removed in the same commit)."""


def hf_token() -> str:
    """The Hub token from the environment (``HF_TOKEN``); never read from or written to any file here."""
    token = os.environ.get("HF_TOKEN")
    if not token:
        raise RuntimeError("set HF_TOKEN in the environment to publish (or use --dry-run DIR)")
    return token


def _head(api, repo_id: str, revision: str) -> str | None:
    from huggingface_hub.errors import RevisionNotFoundError

    try:
        return api.repo_info(repo_id, revision=revision, repo_type="model").sha
    except RevisionNotFoundError:  # a branch not created yet
        return None


def publish(
    release_dir: str | Path,
    repo_id: str,
    *,
    private: bool = True,
    tag: str | None = None,
    commit_message: str | None = None,
    revision: str = "main",
    token: str | None = None,
) -> PublishResult:
    """Publish a release folder to ``repo_id`` in one commit, and tag it.

    Creates the repo if needed (``private``; an existing repo keeps its visibility), then ONE ``create_commit``
    with every file of the folder (``CommitOperationAdd``) and a ``CommitOperationDelete`` for every file the repo
    has and the release has not (``.gitattributes`` is kept), what ``upload_folder(delete_patterns="*")`` does
    but always in a single commit (``upload_folder`` may split a large folder into several). The Hub client leaves
    out the files the Hub already holds and makes no commit when nothing is left, so publishing the same folder
    again makes none. A tag ``tag`` (``create_tag``, ``exist_ok``) marks the release.
    """
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi
    from huggingface_hub.errors import EntryNotFoundError, RevisionNotFoundError

    release_dir = Path(release_dir)
    if not (release_dir / "README.md").exists() or not (release_dir / "config.json").exists():
        raise FileNotFoundError(f"{release_dir} is not a release folder (no README.md / config.json)")
    api = HfApi(token=token or hf_token())
    api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    files = sorted(p.relative_to(release_dir).as_posix() for p in release_dir.rglob("*") if p.is_file())
    try:
        remote = api.list_repo_files(repo_id, revision=revision, repo_type="model")
    except (EntryNotFoundError, RevisionNotFoundError):  # a repo without commits (or without that branch yet)
        remote = []
    stale = sorted(p for p in remote if p not in set(files) and p not in KEEP_REMOTE)
    head = _head(api, repo_id, revision)
    operations = [CommitOperationAdd(path_in_repo=p, path_or_fileobj=str(release_dir / p)) for p in files]
    operations += [CommitOperationDelete(path_in_repo=p) for p in stale]
    info = api.create_commit(
        repo_id,
        operations=operations,
        commit_message=commit_message or f"Release {tag or ''}".strip(),
        revision=revision,
        repo_type="model",
    )
    committed = info.oid != head
    if tag:
        api.create_tag(repo_id, tag=tag, revision=info.oid, exist_ok=True, repo_type="model")
    return PublishResult(repo_id, tag, committed, info.oid, files, stale)


def folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())


__all__ = [
    "CARD_FAMILIES",
    "BenchmarkTable",
    "CardFamily",
    "CardTask",
    "Paper",
    "PublishResult",
    "build_release",
    "card_family",
    "check_card_metadata",
    "finetuned_task",
    "folder_size",
    "local_hashes",
    "publish",
    "render_card",
    "split_metrics",
    "training_curve",
    "verify_release",
]
