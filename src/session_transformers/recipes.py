"""Training recipes: for each ``model_type``, how the trainers get its data, processor, config and metrics.

The two entry points (``trainers/pretrain.py`` with Accelerate, ``trainers/finetune.py`` with
``transformers.Trainer``) are generic: everything model-specific they need is one
:class:`~session_transformers.trainer_utils.Recipe` in :data:`RECIPES`, written beside its model
(``models/<family>/recipe.py``) and named by the family's descriptor (``models/<family>/family.py``). A recipe turns a data source (the synthetic store by default, or a named
real-data loader and a path) into a :class:`~session_transformers.trainer_utils.PreparedData`: the processor,
train and eval ``datasets.Dataset`` s, the collate function and a config. Its ``eval_step`` returns per-example
tensors (so scripts can ``accelerator.gather_for_metrics`` them) and ``summarize`` turns the gathered tensors
into metrics.
"""

from __future__ import annotations

import argparse
from collections.abc import MutableMapping

from .families import FamilyView
from .protocol import TrainingProtocol, protocol_parser
from .provenance import SYNTHETIC_DATASET
from .trainer_utils import PreparedData, Recipe, Task, add_data_arguments
from .trainer_utils import resolve_data_arguments as _resolve_data_arguments

RECIPES: MutableMapping[str, Recipe] = FamilyView(lambda family: family.recipe, "RECIPES")
"""``model_type`` -> :class:`Recipe`: a view of the model families' recipes (``ModelFamily.recipe``, see
:mod:`session_transformers.families`), in the families' order. Assigning a key overrides one entry."""

DATASETS: dict[str, str] = {
    "synthetic": "the package's seeded synthetic store (the default; nothing is read)",
    "session_lines": "your own plain sessions: a folder with train_sessions.txt (one session per line, integer "
    "item IDs separated by spaces, oldest first) and test.tsv (header prefix<TAB>target, one test case per line); "
    "the SR-GNN two-file format",
    "diginetica": "Diginetica in the SR-GNN two-file format (the session_lines format; default path "
    "../shared/data/diginetica)",
    "sessions": "your own session files in the package schema: a folder of sessions*.jsonl / *.parquet files and "
    "its catalogue.jsonl / .parquet (README: Train on your own sessions)",
    "rees46": "REES46 e-commerce events (a CSV of view / cart / purchase events; default under ../shared/data)",
    "instacart": "Instacart orders and products (default under ../shared/data)",
    "online_retail": "UCI Online Retail invoices (default under ../shared/data)",
    "homedepot": "Home Depot search relevance: search terms, product titles and graded judgements "
    "(search_relevance.csv.gz; default under ../shared/data), split by search term; each term a one-search session",
}
"""What each ``--dataset`` name reads, for ``--help`` (a recipe lists the names it accepts in ``Recipe.datasets``)."""


def _dataset_help(names) -> str:
    return "; ".join(f"{name}: {DATASETS.get(name, 'a real-data loader')}" for name in names)


def training_parser(
    description: str, argv: list[str] | None, *, with_task: bool = False
) -> tuple[argparse.ArgumentParser, Recipe | None, Task | None]:
    """The parser of a trainer for the model (and task) named in ``argv``.

    ``--model`` (and ``--task`` or ``--stage``) are read first, so that the parser's protocol flags default to that model's
    protocol (``--help`` then shows them) and the model's own flags are added. Returns the parser, the recipe
    and the task (``None`` when ``--model`` is missing or unknown: the full parse then reports it).
    """
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--model")
    pre.add_argument("--task")
    pre.add_argument("--stage", type=int, default=1)
    known, _ = pre.parse_known_args(argv)
    recipe = RECIPES.get(known.model)
    task, protocol = None, TrainingProtocol()
    if recipe is not None and with_task:
        task = recipe.finetune.get(known.task or next(iter(recipe.finetune)))
        protocol = recipe.task_protocol(task) if task is not None else protocol
    elif recipe is not None:
        try:
            stage = recipe.stage(known.stage)
            task, protocol = stage.task, recipe.stage_protocol(stage)
        except ValueError:  # the full parse reports it
            pass
    parser = (
        argparse.ArgumentParser(  # the protocol's flags come from its dataclass, through HfArgumentParser
            description=description,
            formatter_class=argparse.ArgumentDefaultsHelpFormatter,
            parents=[protocol_parser(protocol)],
        )
    )
    parser.add_argument("--model", required=True, choices=sorted(RECIPES), help="model_type to train")
    if with_task:
        parser.add_argument("--task", default=None, help="downstream task (default: the model's first)")
    else:
        stages = recipe.pretraining_stages() if recipe is not None else ()
        parser.add_argument(
            "--stage",
            type=int,
            default=1,
            help="pretraining stage (1-based): "
            + (", ".join(f"{i} = {s.name}" for i, s in enumerate(stages, 1)) or "see the model's recipe"),
        )
    add_data_arguments(parser)
    names = tuple(recipe.datasets) if recipe is not None else tuple(DATASETS)
    for action in parser._actions:  # the data sets this model trains on, each with what it reads
        if action.dest == "dataset":
            action.choices = names
            action.help = f"the training data ({_dataset_help(names)})"
    parser.add_argument(
        "--dataset-name",
        default=None,
        help="the data set's name in the training record and the model card (default: the data folder's name; "
        f"{SYNTHETIC_DATASET} for the synthetic store)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        metavar="N",
        help="CPU threads of torch's intra-op pool (torch.set_num_threads; default: torch's own, which follows "
        "the OMP_NUM_THREADS environment variable when it is set, else one per core)",
    )
    parser.add_argument(
        "--mixed-precision",
        choices=("no", "bf16", "fp16"),
        default=None,
        help="compute in bf16 / fp16 under autocast with fp32 weights (pretrain.py: Accelerate's mixed precision, "
        "default: what `accelerate launch` / its config says; finetune.py: TrainingArguments' bf16 / fp16, default "
        "no). bf16 works on CPUs too; it is fast only where the CPU has native bf16 (amx_bf16 or avx512_bf16 in "
        "lscpu's flags) and otherwise slower than fp32",
    )
    parser.add_argument(
        "--activation-checkpointing",
        action="store_true",
        help="recompute activations in the backward pass instead of keeping them (less memory, more "
        "compute: 1.4x UBM's stage-2 step on CPU; the same gradients up to dropout's random draws); for models with "
        "supports_gradient_checkpointing (UBM: per chunk of interaction rows, config checkpoint_chunk_size)",
    )
    if recipe is not None and recipe.add_arguments is not None:
        recipe.add_arguments(parser.add_argument_group(f"{known.model} options"))
    return parser, recipe, task


def resolve_data_arguments(
    parser: argparse.ArgumentParser, args: argparse.Namespace, recipe: Recipe
) -> argparse.Namespace:
    """:func:`~session_transformers.trainer_utils.resolve_data_arguments` (the dataset against the recipe, the
    default data path, ``--config`` overrides), then ``--threads``: ``torch.set_num_threads(N)`` in this process."""
    args = _resolve_data_arguments(parser, args, recipe)
    threads = getattr(args, "threads", None)
    if threads is not None:
        if threads < 1:
            parser.error(f"--threads must be >= 1, got {threads}")
        import torch

        torch.set_num_threads(threads)
    return args


__all__ = [
    "DATASETS",
    "RECIPES",
    "PreparedData",
    "Recipe",
    "Task",
    "add_data_arguments",
    "resolve_data_arguments",
    "training_parser",
]
