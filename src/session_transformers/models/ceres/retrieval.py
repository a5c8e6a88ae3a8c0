"""CERES's retrieval tasks: training and evaluation rows, the evaluation pools, the metrics and the baselines.

Fine-tuning (product_search, query_search, entity_linking; see models/ceres/tasks.py for the task builders):
training batches rank the batch's targets (in-batch negatives, as in the paper). Evaluation ranks a FIXED
candidate pool shared by every example of one split, built separately for the validation and for the test
split from that split's own sessions (below, "the eval set" is the split being evaluated), chosen by
``--eval-pool``:

- ``paper`` (default), the CERES paper's protocol (Section 4.1):

  - product search: every purchased product of the eval set plus the first 10 products the search engine
    returned for each search of those sessions (hard negatives). The synthetic store's sessions get the result
    lists of their searches from the store's own search engine (:func:`synthetic_search_results`: re-running
    its deterministic retrieval gives exactly the lists the shopper browsed). REES46 has no search results: the
    pool falls back to the purchased products topped up to ``--num-candidates`` with catalogue products drawn
    with ``--seed``, and the run description says so;
  - query search: all last queries of the eval set (the paper's pool; no search engine is involved);
  - entity linking: every possible product attribute ("60K possible product attributes" in the paper): the
    entities of every catalogue product (brand, category leaf, named attributes) plus every entity of the
    training and eval labels (e.g. the synthetic store's visual ``pattern``, found in no text field), those the
    tokenizer has an ``[ATTRTYPE]`` token for;

- ``random``: all distinct targets of the eval set topped up to ``--num-candidates`` (default 100) with
  candidates drawn (seeded) from the task's universe (the catalogue for products; the training targets for
  queries and entities).

Validation and test rows name their pool (``evaluate``: ``"validation"`` or ``"test"``); the eval batches
carry that pool once tokenised (``candidate_pool``, a CeresCandidatePool); the model embeds it once per
evaluation and reuses it for every batch (CeresForSessionRetrieval.embed_candidate_pool). Each example's ranks
of its relevant candidates are padded with NaN to CERES_MAX_RELEVANT columns, so Trainer can concatenate them
across batches. Metrics (K = 1, 32, 64, ties pessimistic, in percent): ``MAP@K`` (metrics.map_at_k),
``Recall@K``, the paper's: the share of sessions whose relevant items are all in the top K
(metrics.session_recall_at_k), and ``ItemRecall@K``, the share of relevant items in the top K
(metrics.recall_at_k). With one relevant candidate per session (product and query search) the two recalls are
equal. ``NDCG@10`` and ``MRR@10`` (percent) come with them: binary for binary targets, graded for Home Depot's.
Validation ``MAP@1`` selects the checkpoint (the paper picks its fine-tuning learning rate by it).
:func:`evaluate_retrieval` runs this same evaluation outside the trainers.
"""

from __future__ import annotations

import argparse
import math
import random
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from datasets import Dataset

from ... import metrics
from ...data.schema import QUERY_SUBJECTS
from ...processing_utils import SeededCollatorMixin
from ...trainer_utils import (
    PreparedData,
    first_n,
    validation_limit,
)
from . import tasks
from .modeling_ceres import CeresCandidatePool
from .processing_ceres import (
    CeresProcessor,
    _as_catalogue,
    attribute_token,
    candidate_key,
)
from .sources import (
    HOMEDEPOT_POSITIVE_GRADE,
    PAPER_SEARCH_RESULTS,
    _bert_initializer,
    _ceres_config,
    _ceres_processor,
    ceres_source,
    homedepot_eval_examples,
    homedepot_terms,
    homedepot_training_examples,
)

CERES_MAX_RELEVANT = 16
"""Width of the per-example rank rows of the CERES retrieval tasks (most relevant candidates per example)."""
CERES_KS: tuple[int, ...] = (1, 32, 64)
EVAL_POOLS: tuple[str, ...] = ("paper", "random")
"""``--eval-pool`` choices (see the module docstring)."""


def _ceres_examples(task: str, sessions: list[dict], catalogue: dict[str, dict]) -> list[dict]:
    if task == "product_search":
        return tasks.product_search_examples(sessions)
    if task == "query_search":
        return tasks.query_search_examples(sessions)
    return tasks.entity_linking_examples(sessions, catalogue)


def _ceres_universe(task: str, train_examples: list[dict], catalogue: dict[str, dict]) -> list[dict]:
    """Candidates to top the eval pool up from: the catalogue (products), else the training targets."""
    if task == "product_search":
        return [{"item_id": i} for i in catalogue]
    return tasks.candidate_pool(train_examples)


class CeresRetrievalTaskCollator(SeededCollatorMixin):
    """Rows ``{"session_id", "events", "targets"[, "evaluate"]}`` -> CeresForSessionRetrieval inputs.

    Training rows: candidates are the batch's targets (in-batch negatives). With ``sample_targets`` a training row's
    ``targets`` are all its positives, and the row brings ONE of them to the batch, drawn from a generator seeded
    by ``seed``, the epoch (``set_epoch``) and the batch's session ids; ``labels`` then mark every candidate that
    is a positive of the row (drawn for it or for another row), so that no positive is pushed down as a negative.

    Rows with ``evaluate`` set to a name of ``pools`` (``"validation"``, ``"test"``): the candidates are that
    split's fixed pool (the same for every batch of the split), given as ``candidate_pool`` (a
    :class:`CeresCandidatePool` tokenised once, that the model embeds once per evaluation), and ``labels``
    ``(B, len(pool))``: each target's ``gain`` (graded relevance, Home Depot: 1 or more = relevant, between 0 and 1
    partly relevant; see :func:`homedepot_eval_examples`), 1 for a target without one, 0 for the rest of the pool.
    One batch holds rows of one split.
    """

    def __init__(
        self,
        processor,
        catalogue: dict[str, dict],
        pools: Mapping[str, list[dict]],
        chunk_size: int = 256,
        sample_targets: bool = False,
        seed: int | None = None,
    ):
        self.processor, self.catalogue, self.pools = processor, catalogue, dict(pools)
        self.chunk_size = chunk_size
        if sample_targets and seed is None:
            raise ValueError("sample_targets draws from a seeded generator: pass seed")
        self.sample_targets = sample_targets
        self._init_randomness(None, seed)
        self._key = candidate_key
        self._index = {
            name: {candidate_key(c): i for i, c in enumerate(pool)} for name, pool in self.pools.items()
        }
        self._candidate_pools: dict[str, CeresCandidatePool] = {}

    def candidate_pool(self, name: str) -> CeresCandidatePool:
        """The pool ``name`` tokenised once (on first use), what every eval batch of that split carries."""
        if name not in self.pools:
            raise ValueError(f"no eval pool {name!r}; the pools are {list(self.pools)}")
        if name not in self._candidate_pools:
            inputs = self.processor.encode_candidates(self.pools[name], self.catalogue)
            self._candidate_pools[name] = CeresCandidatePool.from_inputs(inputs, chunk_size=self.chunk_size)
        return self._candidate_pools[name]

    def __call__(self, rows: list[dict]) -> dict[str, Any]:
        sessions = [{"session_id": r["session_id"], "events": r["events"]} for r in rows]
        targets = [[{k: v for k, v in t.items() if v is not None} for t in r["targets"]] for r in rows]
        name = rows[0].get("evaluate")
        if not name:
            if self.sample_targets:
                return self._one_target_per_row(sessions, targets)
            return dict(self.processor(sessions, self.catalogue, targets=targets))
        if any(r.get("evaluate") != name for r in rows):
            raise ValueError("an eval batch mixes rows of several splits (pools)")
        candidate_pool = self.candidate_pool(name)
        index = self._index[name]
        labels = torch.zeros(len(rows), len(self.pools[name]))
        for b, specs in enumerate(targets):
            for spec in specs:
                column = index.get(self._key(spec))
                if column is None:
                    raise ValueError(
                        f"target {spec!r} of session {sessions[b]['session_id']!r} is not in the eval pool "
                        f"({name})"
                    )
                labels[b, column] = float(spec.get("gain", 1.0))
        return {
            **self.processor(sessions, self.catalogue),
            "candidate_pool": candidate_pool,
            "labels": labels,
        }

    def _one_target_per_row(self, sessions: list[dict], targets: list[list[dict]]) -> dict[str, Any]:
        generator = self._batch_generator(s["session_id"] for s in sessions)
        drawn = [specs[int(torch.randint(len(specs), (1,), generator=generator))] for specs in targets]
        batch = dict(self.processor(sessions, self.catalogue, targets=drawn))
        columns = list(dict.fromkeys(self._key(spec) for spec in drawn))  # the processor's candidate order
        positives = [{self._key(spec) for spec in specs} for specs in targets]
        batch["labels"] = torch.tensor([[float(c in own) for c in columns] for own in positives])
        return batch


def _known_entity(processor, spec: dict) -> bool:
    """Whether the tokenizer has the ``[ATTRTYPE]`` token of an entity's attribute."""
    try:
        return processor._token_id(attribute_token(spec["attribute"])) is not None
    except ValueError:  # a name with no letters or digits
        return False


def _eval_pool(
    task: str,
    kind: str,
    evaluation: list[dict],
    train: list[dict],
    eval_sessions: list[dict],
    catalogue: dict[str, dict],
    processor,
    args: argparse.Namespace,
) -> tuple[list[dict], str]:
    """The fixed eval pool of ``--eval-pool kind`` and its description (see the module docstring).

    ``evaluation`` are the examples of the split being evaluated (validation or test; each split gets its own
    pool) and ``eval_sessions`` the sessions they come from; ``train`` the task's training examples (before any
    ``--max-train-samples`` cut, so the pool does not depend on it).
    """
    if kind not in EVAL_POOLS:
        raise ValueError(f"--eval-pool must be one of {list(EVAL_POOLS)}, got {kind!r}")
    targets = tasks.candidate_pool(evaluation)
    n_targets = len(targets)
    num_candidates = args.num_candidates

    def topped_up(universe: list[dict]) -> list[dict]:
        in_pool = {candidate_key(p) for p in targets}
        extra = [c for c in universe if candidate_key(c) not in in_pool]
        random.Random(args.seed).shuffle(extra)
        return targets + extra[: max(0, num_candidates - n_targets)]

    if kind == "random":
        pool = topped_up(_ceres_universe(task, train, catalogue))
        return pool, (
            f"eval pool (random): {len(pool)} candidates ({n_targets} distinct eval targets + "
            f"{len(pool) - n_targets} sampled with seed {args.seed})"
        )
    if task == "query_search":
        return targets, f"eval pool (the paper's): all {n_targets} distinct last queries of the eval sessions"
    if task == "entity_linking":
        universe = [e for i in catalogue for e in tasks.product_entities(i, catalogue)]
        universe = [
            e for e in universe + [t for ex in train for t in ex["targets"]] if _known_entity(processor, e)
        ]
        pool = tasks.candidate_pool(evaluation, universe)
        return pool, (
            f"eval pool (the paper's: every possible product attribute): {len(pool)} entities ({n_targets} of "
            f"the eval labels + {len(pool) - n_targets} more of the catalogue's products and the training labels)"
        )
    by_id = {s["session_id"]: s for s in eval_sessions}
    sessions = [by_id[ex["session_id"]] for ex in evaluation]
    if not any("search_results" in s for s in sessions):
        pool = topped_up(_ceres_universe(task, train, catalogue))
        return pool, (
            f"eval pool: {args.dataset} sessions carry no search-engine results, so the paper's pool (purchased "
            f"products + the search engine's first {PAPER_SEARCH_RESULTS} results of each search) falls back to "
            f"the {n_targets} purchased products of the eval sessions + {len(pool) - n_targets} catalogue products "
            f"sampled with seed {args.seed}, {len(pool)} candidates (--num-candidates {num_candidates})"
        )
    searches = [results for s in sessions for results in s.get("search_results", [])]
    shown = [{"item_id": i} for results in searches for i in results[:PAPER_SEARCH_RESULTS]]
    pool = tasks.candidate_pool(evaluation, shown)
    return pool, (
        f"eval pool (the paper's): {len(pool)} products ({n_targets} purchased in the eval sessions + "
        f"{len(pool) - n_targets} more among the search engine's first {PAPER_SEARCH_RESULTS} results of their "
        f"{len(searches)} searches)"
    )


def _eval_rows(examples: list[dict], split: str) -> Dataset:
    """Evaluation rows of one split; ``evaluate`` names the split's pool in the collator."""
    return Dataset.from_list(
        [{**{k: ex[k] for k in ("session_id", "events", "targets")}, "evaluate": split} for ex in examples]
    )


def _homedepot_pool(
    args: argparse.Namespace, rows: list[dict], catalogue: dict[str, dict]
) -> tuple[list[dict], str]:
    """The eval pool of one Home Depot split: the whole catalogue (``--eval-pool paper``, the data's protocol), or
    every product judged for the split's terms topped up to ``--num-candidates`` with catalogue products drawn
    with ``--seed`` (``random``)."""
    if args.eval_pool not in EVAL_POOLS:
        raise ValueError(f"--eval-pool must be one of {list(EVAL_POOLS)}, got {args.eval_pool!r}")
    if args.eval_pool == "paper":
        return [{"item_id": i} for i in catalogue], (
            f"eval pool: the whole catalogue, {len(catalogue)} products (every term ranks every title)"
        )
    judged = list(dict.fromkeys(i for r in rows for i in r["item_ids"]))
    known = set(judged)
    extra = [i for i in catalogue if i not in known]
    random.Random(args.seed).shuffle(extra)
    pool = judged + extra[: max(0, args.num_candidates - len(judged))]
    return [{"item_id": i} for i in pool], (
        f"eval pool (random): {len(pool)} products ({len(judged)} judged for the split's terms + "
        f"{len(pool) - len(judged)} catalogue products sampled with seed {args.seed})"
    )


def _prepare_homedepot_retrieval(task: str, args: argparse.Namespace) -> PreparedData:
    """Product search on Home Depot's search terms (:func:`homedepot_terms`): train on (term, product graded >= 2)
    pairs with in-batch negatives, rank each validation / test term's pool (the whole catalogue by default) with
    graded relevance (:func:`homedepot_eval_examples`)."""
    if task != "product_search":
        raise ValueError(
            f"Home Depot has search terms and the products judged for them: CERES trains product_search on it, "
            f"not {task}"
        )
    terms = homedepot_terms(args.data_path)
    catalogue = terms.catalogue
    sessions = [{"session_id": r["session_id"], "events": r["events"]} for r in terms.train]
    processor = _ceres_processor(args, sessions, catalogue)
    config = _ceres_config(args, processor)
    train = first_n(homedepot_training_examples(terms.train), args.max_train_samples)
    evaluation, pools, notes = {}, {}, []
    for split, rows in (("validation", terms.validation), ("test", terms.test)):
        examples = homedepot_eval_examples(rows)
        kept = {ex["session_id"] for ex in examples}
        limit = validation_limit(args) if split == "validation" else args.max_eval_samples
        evaluation[split] = first_n(examples, limit)
        pools[split], what = _homedepot_pool(args, [r for r in rows if r["session_id"] in kept], catalogue)
        notes.append(
            f"{split}: {len(evaluation[split])} terms ({len(rows) - len(examples)} of {len(rows)} left out: no "
            f"product graded >= 2.5), {what}"
        )
    if not train or not all(evaluation.values()):
        raise ValueError(
            f"{args.data_path} gives {len(train)} training / {len(evaluation['validation'])} validation / "
            f"{len(evaluation['test'])} test product-search terms"
        )
    description = (
        f"{terms.description}; product search: {len(train)} training terms with a product graded >= "
        f"{HOMEDEPOT_POSITIVE_GRADE:g} (a training pair: the term and one of them, drawn afresh per batch; the "
        f"batch's other products are its negatives); " + "; ".join(notes) + "; relevant = graded >= 2.5 "
        "(MAP@K, Recall@K, MRR@10), NDCG@10 with gain grade - 1"
    )
    collate = CeresRetrievalTaskCollator(processor, catalogue, pools, sample_targets=True, seed=args.seed)
    return PreparedData(
        processor,
        Dataset.from_list([{k: ex[k] for k in ("session_id", "events", "targets")} for ex in train]),
        _eval_rows(evaluation["validation"], "validation"),
        collate,
        config,
        description,
        init_weights=_bert_initializer(args),
        test_dataset=_eval_rows(evaluation["test"], "test"),
    )


def _prepare_ceres_retrieval(task: str, args: argparse.Namespace) -> PreparedData:
    if args.dataset == "homedepot":
        return _prepare_homedepot_retrieval(task, args)
    train_sessions, validation_sessions, test_sessions, catalogue, description = ceres_source(args)
    processor = _ceres_processor(args, train_sessions, catalogue)
    config = _ceres_config(args, processor)
    sessions = {"validation": validation_sessions, "test": test_sessions}
    sessions = {split: part for split, part in sessions.items() if part}  # no validation split: test only
    parts = {
        split: _ceres_examples(task, part, catalogue)
        for split, part in {"train": train_sessions, **sessions}.items()
    }
    if task == "entity_linking":
        # entities whose attribute the tokenizer has no [ATTRTYPE] token for are dropped
        def known_only(examples: list[dict]) -> list[dict]:
            out = []
            for ex in examples:
                targets = [t for t in ex["targets"] if processor._marker(t["attribute"]) is not None]
                if targets:
                    out.append({**ex, "targets": targets})
            return out

        processor.on_unknown_attribute, saved = "skip", processor.on_unknown_attribute
        try:
            parts = {split: known_only(part) for split, part in parts.items()}
        finally:
            processor.on_unknown_attribute = saved
    if not all(parts.values()):
        counts = " / ".join(f"{len(part)} {split}" for split, part in parts.items())
        raise ValueError(
            f"{args.dataset} gives {counts} {task} examples"
            + (" (its sessions have no queries)" if task == "query_search" else "")
        )
    all_train = parts["train"]  # before any cut, so the pools ignore --max-train-samples
    train = first_n(all_train, args.max_train_samples)
    evaluation = {
        split: first_n(
            parts[split], validation_limit(args) if split == "validation" else args.max_eval_samples
        )
        for split in sessions
    }
    widest = max(len(ex["targets"]) for part in (train, *evaluation.values()) for ex in part)
    if widest > CERES_MAX_RELEVANT:
        raise ValueError(f"an example has {widest} relevant candidates, more than {CERES_MAX_RELEVANT}")
    # One fixed pool per evaluation split, from that split's own examples and sessions.
    pools, pool_descriptions = {}, []
    for split, examples in evaluation.items():
        pools[split], what = _eval_pool(
            task, args.eval_pool, examples, all_train, sessions[split], catalogue, processor, args
        )
        pool_descriptions.append(f"{split} {what}")
    counts = " / ".join(f"{len(part)} {split}" for split, part in {"train": train, **evaluation}.items())
    description += f"; {task}: {counts} examples; " + "; ".join(pool_descriptions)
    train_ds = Dataset.from_list([{k: ex[k] for k in ("session_id", "events", "targets")} for ex in train])
    test_ds = _eval_rows(evaluation["test"], "test")
    collate = CeresRetrievalTaskCollator(processor, catalogue, pools)
    return PreparedData(
        processor,
        train_ds,
        _eval_rows(evaluation["validation"], "validation") if "validation" in evaluation else None,
        collate,
        config,
        description,
        init_weights=_bert_initializer(args),
        test_dataset=test_ds,
    )


def _ceres_ranks(logits: Any, labels: torch.Tensor) -> dict[str, torch.Tensor]:
    """Ranks (1 = best) of each example's relevant candidates among its candidates, ``(B, CERES_MAX_RELEVANT)``
    padded with NaN, the size of the pool each example was ranked in, and each example's ``NDCG@10`` and
    ``MRR@10`` (``(B,)``, NaN where it has nothing to find). ``labels`` ``(B, C)``: 1 (or more) relevant, 0 other
    candidate, -1 (optional) not a candidate of this example; a value between 0 and 1 is a partly relevant
    candidate (graded relevance, Home Depot): not relevant for the ranks, MAP@K, Recall@K and MRR@10, its value
    the NDCG gain (a relevant candidate's gain is its label)."""
    logits = logits[0] if isinstance(logits, tuple | list) else logits
    labels = labels.to(logits.device)
    scores = (
        logits if logits.dtype == torch.float64 else logits.float()
    )  # baselines' tie-breaking needs float64
    exclude = labels < 0
    any_excluded = bool(exclude.any())
    ranks = metrics.ranks_from_scores(
        scores,
        labels >= 1,
        exclude=exclude if any_excluded else None,
        max_relevant=CERES_MAX_RELEVANT,
    )
    return {
        "ranks": ranks,
        "pool_size": (~exclude).sum(1).float(),
        **_graded_per_example(scores.masked_fill(exclude, -math.inf) if any_excluded else scores, labels),
    }


def _graded_per_example(scores: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-example ``ndcg@10`` and ``mrr@10`` (:func:`metrics.graded_ranking_metrics`, gains = the positive labels,
    relevant = a label of 1 or more); the ranks of the labelled candidates as :func:`metrics.judged_ranks` gives
    them (ties with other candidates pessimistic, as the ranks of :func:`_ceres_ranks`)."""
    gained = labels > 0
    width = max(1, int(gained.sum(1).max()))
    judged = torch.full((labels.shape[0], width), -1, dtype=torch.long, device=labels.device)
    gains = torch.zeros(judged.shape, device=labels.device)
    row, column = torch.nonzero(gained, as_tuple=True)
    slot = torch.cumsum(gained.long(), 1)[row, column] - 1
    judged[row, slot], gains[row, slot] = column, labels[row, column].float()
    ranks = metrics.judged_ranks(scores, judged, ties="pessimistic")
    out = metrics.graded_ranking_metrics(
        ranks, gains, ndcg_ks=(10,), mrr_ks=(10,), recall_ks=(), relevant_grade=1.0, min_grade=0.0
    )
    return {"ndcg@10": out["NDCG@10"], "mrr@10": out["MRR@10"]}


def _ceres_retrieval_summarize(gathered: dict[str, torch.Tensor]) -> dict[str, float]:
    """``MAP@K``, ``Recall@K`` (the paper's: share of sessions with all relevant candidates in the top K) and
    ``ItemRecall@K`` (share of relevant candidates in the top K), in percent; ``NDCG@10`` and ``MRR@10`` in
    percent (the mean over the examples that have something to find) when the per-example figures are there;
    ``num_samples``, ``pool_size``."""
    ranks = gathered["ranks"].float()
    # the mean pool size in float64: a float32 mean of 1,949 pools of 54,667 reads 54666.996
    out = {"num_samples": float(ranks.shape[0]), "pool_size": float(gathered["pool_size"].double().mean())}
    for k in CERES_KS:
        out[f"MAP@{k}"] = 100.0 * float(metrics.map_at_k(ranks=ranks, k=k))
        out[f"Recall@{k}"] = 100.0 * float(metrics.session_recall_at_k(ranks=ranks, k=k))
        out[f"ItemRecall@{k}"] = 100.0 * float(metrics.recall_at_k(ranks=ranks, k=k))
    for key, name in (("ndcg@10", "NDCG@10"), ("mrr@10", "MRR@10")):
        if key in gathered:
            out[name] = 100.0 * float(gathered[key].float().nanmean())
    return out


@torch.no_grad()
def evaluate_retrieval(
    model,
    processor: CeresProcessor,
    examples: list[dict],
    catalogue=None,
    candidates: list[dict] | None = None,
    batch_size: int = 64,
) -> dict[str, float]:
    """Evaluate a CeresForSessionRetrieval on task examples the way fine-tuning does (the same collator, the same
    per-example ranks and the same summary): every example is ranked against one fixed pool, embedded once.

    Args:
        examples: task examples (:mod:`.tasks`); ``targets`` lists each one's relevant candidates.
        candidates: the pool; defaults to the distinct targets of ``examples`` (:func:`tasks.candidate_pool`).

    Returns:
        ``MAP@K``, ``Recall@K`` (the paper's), ``ItemRecall@K`` for K in :data:`CERES_KS`, in percent, and
        ``num_samples``, ``pool_size``.
    """
    pool = list(candidates) if candidates is not None else tasks.candidate_pool(examples)
    collate = CeresRetrievalTaskCollator(processor, _as_catalogue(catalogue), {"eval": pool})
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    outs = []
    for start in range(0, len(examples), batch_size):
        rows = [
            {
                "session_id": ex["session_id"],
                "events": ex["events"],
                "targets": ex["targets"],
                "evaluate": "eval",
            }
            for ex in examples[start : start + batch_size]
        ]
        batch = collate(rows)
        labels = batch.pop("labels")
        batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
        outs.append({k: v.cpu() for k, v in _ceres_ranks(model(**batch).logits, labels).items()})
    model.train(was_training)
    return _ceres_retrieval_summarize({k: torch.cat([o[k] for o in outs]) for k in outs[0]})


def candidate_text(spec: Mapping[str, Any], catalogue: Mapping[str, Mapping[str, Any]]) -> str:
    """A retrieval candidate's words, for text baselines (BM25): a product's title, description, brand, category
    path and attribute values; a query's text; an entity's value."""
    if spec.get("item_id") is not None:
        rec = catalogue.get(spec["item_id"]) or {}
        words = [rec.get("title"), rec.get("description"), rec.get("brand"), *(rec.get("category") or [])]
        words += [a.get("value") for a in rec.get("attributes") or []]
        return " ".join(w for w in words if w)
    if spec.get("query") is not None:
        return spec["query"]
    return str(spec.get("value") or "")


def session_text(events: list[Mapping[str, Any]], catalogue: Mapping[str, Mapping[str, Any]]) -> str:
    """A session's own words, the query of text baselines (BM25): its queries, in order; a session without one
    (REES46 sessions have none), the titles of its products."""
    queries = [ev["query"] for ev in events if ev["subject"] in QUERY_SUBJECTS and ev.get("query")]
    if queries:
        return " ".join(queries)
    titles = [
        (catalogue.get(ev.get("item_id")) or {}).get("title") for ev in events if ev["subject"] == "item"
    ]
    return " ".join(t for t in titles if t)


def retrieval_baselines(
    data: PreparedData, seed: int = 0, chunk_size: int = 256
) -> dict[str, dict[str, float]]:
    """``Task.baseline`` of the retrieval tasks: rankings of the test split's fixed pool by rules that need no
    training of the model, scored with the task's own ranks and summary (same metric names).

    - ``random``: candidates in a random (seeded) order;
    - ``popularity``: candidates by how often they are a target in the training split;
    - ``BM25``: candidates by the BM25 score (:class:`~session_transformers.baselines.BM25Index`, English stop
      words) of their text (:func:`candidate_text`: a product's title, description, brand, category and
      attributes; a query; an entity's value) for the session's own words as the query (:func:`session_text`:
      its queries, else its products' titles). What a search engine that matches words does; on the synthetic
      store's product search it is the baseline to beat, since the store's shoppers buy among the products its
      word-matching search showed them.

    Ties (equal counts, equal BM25 scores, e.g. a candidate sharing no word with the session) are in random
    (seeded) order. Test rows are ranked ``chunk_size`` at a time (a pool of a whole catalogue, Home Depot's
    54,667 products, is scored for a chunk of rows only); graded targets (``gain``) are scored as the model's are.
    """
    from collections import Counter

    from ...baselines import BM25Index

    test = data.test_dataset
    collate = data.collate_fn
    name = test[0]["evaluate"]
    pool, index = collate.pools[name], collate._index[name]

    def key(spec: dict) -> tuple:
        return candidate_key({k: v for k, v in spec.items() if v is not None})

    counts = Counter(key(t) for targets in data.train_dataset["targets"] for t in targets)
    popularity = torch.tensor([float(counts[candidate_key(c)]) for c in pool])
    bm25 = BM25Index([candidate_text(c, collate.catalogue) for c in pool])
    generator = torch.Generator().manual_seed(seed)
    per_example: dict[str, list[dict[str, torch.Tensor]]] = {"random": [], "popularity": [], "BM25": []}
    all_targets, all_events = test["targets"], test["events"]
    for start in range(
        0, len(test), chunk_size
    ):  # a whole catalogue's scores are held for a chunk of rows only
        rows = range(start, min(start + chunk_size, len(test)))
        labels = torch.zeros(len(rows), len(pool))
        for b, n in enumerate(rows):
            for t in all_targets[n]:
                labels[b, index[key(t)]] = float(t.get("gain") if t.get("gain") is not None else 1.0)
        noise = torch.rand(labels.shape, generator=generator)
        scores = bm25.scores([session_text(all_events[n], collate.catalogue) for n in rows])
        # scores -> their order (an integer per distinct value), so that the noise breaks ties and nothing else
        bm25_order = torch.from_numpy(
            np.unique(scores, return_inverse=True)[1].reshape(scores.shape)
        ).double()
        for baseline, ranked in (
            ("random", noise),
            ("popularity", popularity[None] + 0.5 * noise),
            ("BM25", bm25_order + 0.5 * noise),
        ):
            per_example[baseline].append(_ceres_ranks(ranked.double(), labels))
    return {
        baseline: _ceres_retrieval_summarize({k: torch.cat([part[k] for part in parts]) for k in parts[0]})
        for baseline, parts in per_example.items()
    }


__all__ = [
    "CERES_KS",
    "CERES_MAX_RELEVANT",
    "EVAL_POOLS",
    "CeresRetrievalTaskCollator",
    "candidate_text",
    "evaluate_retrieval",
    "retrieval_baselines",
    "session_text",
]
