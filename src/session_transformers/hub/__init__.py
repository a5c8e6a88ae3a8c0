"""Releases on the Hugging Face Hub: model cards, release folders and one-commit publishing.

Three steps, each usable alone (``trainers/release.py`` is their command line):

1. :func:`render_card` turns a trained folder (``trainers/pretrain.py`` or ``trainers/finetune.py`` output:
   ``eval_results.json``, ``pretraining_stages.json``, ``metrics.jsonl``) and, where the family has one, its
   benchmark result (``benchmarks/results/<name>.json``) into a :class:`huggingface_hub.ModelCard`, rendered with
   ``ModelCard.from_template`` from the family's Jinja template (``models/<family>/card.md``, package data). Its YAML metadata
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

Three modules: :mod:`.cards` (the registry entry :class:`CardFamily`, the card), :mod:`.release` (release folders)
and :mod:`.publish`. A family's own card parts (its example inputs, its benchmark tables) live with the family, in
``models/<family>/family.py``.

Adding a model family: one Jinja template (``card.md`` in the family's folder) and its :class:`CardFamily`, the ``card`` of the family's
descriptor (``models/<family>/family.py``), which :data:`CARD_FAMILIES` lists (see ``hub_cards/README.md``).
"""

from .cards import (
    CARD_FAMILIES,
    EVAL_FILE,
    FAILED_VERDICTS,
    HUB_CARDS_DIR,
    HUB_PIPELINE_TAGS,
    INSTALL,
    PLOT_FILE,
    RELEASE_INFO_FILE,
    STAGES_FILE,
    BenchmarkTable,
    CardFamily,
    CardTask,
    Paper,
    _head_auto,  # noqa: F401 (trainers/release.py)
    _interval,  # noqa: F401
    card_family,
    check_card_metadata,
    eval_results_for,
    example_catalogue,
    finetuned_task,
    markdown_table,
    render_card,
    training_section,
)
from .publish import KEEP_REMOTE, PublishResult, hf_token, local_hashes, publish
from .records import (
    BENCHMARK_RESULTS_DIR,
    METRICS_LOG,
    ROOT,
    load_benchmark,
    read_training_log,
    split_metrics,
    training_curve,
)
from .release import RELEASE_FILES, build_release, folder_size, release_files, verify_release

__all__ = [
    "BENCHMARK_RESULTS_DIR",
    "CARD_FAMILIES",
    "EVAL_FILE",
    "FAILED_VERDICTS",
    "HUB_CARDS_DIR",
    "HUB_PIPELINE_TAGS",
    "INSTALL",
    "KEEP_REMOTE",
    "METRICS_LOG",
    "PLOT_FILE",
    "RELEASE_FILES",
    "RELEASE_INFO_FILE",
    "ROOT",
    "STAGES_FILE",
    "BenchmarkTable",
    "CardFamily",
    "CardTask",
    "Paper",
    "PublishResult",
    "build_release",
    "card_family",
    "check_card_metadata",
    "eval_results_for",
    "example_catalogue",
    "finetuned_task",
    "folder_size",
    "hf_token",
    "load_benchmark",
    "local_hashes",
    "markdown_table",
    "publish",
    "read_training_log",
    "release_files",
    "render_card",
    "split_metrics",
    "training_curve",
    "training_section",
    "verify_release",
]
