"""Model cards: the registry entry of a family (:class:`CardFamily`), the shared table helpers and
:func:`render_card` (see :mod:`session_transformers.hub`)."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from ..families import FamilyView
from .records import (
    ROOT,
    _read_json,
    load_benchmark,
    split_metrics,
)

HUB_CARDS_DIR = Path(os.environ.get("SESSION_TRANSFORMERS_HUB_CARDS", ROOT / "hub_cards"))
"""Where a template named relatively is found; the five families name theirs absolutely (``card.md`` in their folder,
shipped as package data), so a card renders from an installed wheel."""

EVAL_FILE = "eval_results.json"
STAGES_FILE = "pretraining_stages.json"
RELEASE_INFO_FILE = "release.json"
"""Written beside a checkpoint by ``trainers/release.py build``: the exact training command(s) and data."""
PLOT_FILE = "training_curve.png"


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

    @classmethod
    def from_yaml(cls, path: str | Path, **code: Any) -> CardFamily:
        """A family's card entry from its ``card.yaml`` (shipped beside its ``card.md`` as package data): the card's
        metadata (name, paper, Hub tags, task and metrics, data set names, fine-tuned tasks) is data, kept where a
        reader of the template finds it; ``code`` are the parts that are code or command lines (``example_inputs``,
        ``benchmark_tables``, ``build_flags``, ``real_data_builds``). The template defaults to ``card.md`` in the
        same folder. An unknown key or a missing required one is refused, naming the file."""
        import yaml

        path = Path(path)
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if not isinstance(data, dict):
            raise ValueError(
                f"{path}: a card's metadata is a mapping of field names, got {type(data).__name__}"
            )
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known) + sorted(set(data) & set(code))
        if unknown:
            raise ValueError(
                f"{path}: unknown or doubly given card field(s) {unknown}; known: {sorted(known)}"
            )
        data = {key: _tuples(value) for key, value in data.items()}
        try:
            data["paper"] = Paper(**data["paper"])
            data["tasks"] = {name: CardTask(**task) for name, task in (data.get("tasks") or {}).items()}
            if "template" not in code:
                data.setdefault("template", str(path.with_name("card.md")))
            return cls(**data, **code)
        except (KeyError, TypeError) as err:
            raise ValueError(f"{path}: {err}") from None

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


def _tuples(value: Any) -> Any:
    """YAML's lists as the tuples the frozen card dataclasses hold (nested in mappings too)."""
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    if isinstance(value, dict):
        return {key: _tuples(v) for key, v in value.items()}
    return value


def finetuned_task(checkpoint: str | Path) -> str | None:
    """The ``--task`` a folder was fine-tuned on (its training record's, when ``trainers/finetune.py`` wrote it), else
    ``None`` (a pretrained folder, or one without a record)."""
    from ..provenance import read_training_record

    record = read_training_record(checkpoint) or {}
    return record.get("task") if record.get("script") == "finetune.py" else None


def _head_auto(name: str):
    import transformers

    from .. import auto

    cls = getattr(auto, name, None) or getattr(transformers, name, None)
    if cls is None:
        raise KeyError(f"no Auto class {name!r} in session_transformers.auto or transformers")
    return cls


def example_catalogue() -> dict[str, dict]:
    """Three small products in the package's catalogue schema, for the session families' example inputs."""

    def product(pid: str, title: str, category: list[str], brand: str) -> dict:
        return {"item_id": pid, "title": title, "category": category, "brand": brand, "attributes": []}

    return {
        "p1": product("p1", "blue cotton shirt", ["apparel", "shirts"], "acme"),
        "p2": product("p2", "red ceramic mug", ["home", "kitchen"], "brewco"),
        "p3": product("p3", "wireless earbuds", ["electronics", "audio"], "sonix"),
    }


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


CARD_FAMILIES: Mapping[str, CardFamily] = FamilyView(lambda family: family.card, "CARD_FAMILIES")
"""``model_type`` -> :class:`CardFamily`: a view of the model families' card entries (``ModelFamily.card``, written
in ``models/<family>/family.py``; see :mod:`session_transformers.families`)."""


def card_family(model_type: str) -> CardFamily:
    try:
        return CARD_FAMILIES[model_type]
    except KeyError:
        raise KeyError(
            f"no model card family {model_type!r} in session_transformers.hub.CARD_FAMILIES: give the family's "
            f"descriptor (models/<family>/family.py) a card and a template (card.md beside it) (known: {sorted(CARD_FAMILIES)})"
        ) from None


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
    from ..provenance import scrub_paths

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
    from ..provenance import SYNTHETIC_DATASET

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
        # records written before the query-reformulation mix have no entry: their store was "refine"
        reformulation = gen.get("query_reformulation", "refine")
        return (
            f"the package's **synthetic store** (`--dataset synthetic`, preset {gen.get('store_preset', 'default')}"
            f"{size}, seed {gen.get('seed')}, query reformulation `{reformulation}`)"
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
    from ..provenance import scrub_paths

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
    from ..provenance import read_training_record, training_history

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
    """Cases of the card's split scored as misses by construction (``num_unknown_targets``): a target outside the
    model's vocabulary, or a prefix with no item in it."""
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
