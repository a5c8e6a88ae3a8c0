"""A corpus of broken inputs, run through the loaders and the processors of every model family: every case is
refused with the package's own error naming file, record and field, or dropped and counted (skip mode), or
accepted and handled safely. Nothing crashes with another exception, and no processor hands a model NaN or an
out-of-range index.

    python -m benchmarks.bad_inputs                       # -> benchmarks/results/bad_inputs.json
    python -m benchmarks.bad_inputs --random-cases 2000   # more seeded random mutations

Kinds (hand-written, each with several variants) plus seeded random mutations of valid records (wrong types,
deleted fields, NaN, control characters, invalid UTF-8, huge values). Each file is loaded in raise and skip mode;
then the records the loader kept (``accepted``) and every JSON record of the file as it is, unvalidated
(``raw``: what a user calling a processor directly may hand it) go through small processors of every family
(:class:`ProcessorSuite`: TAGNN++, CERES and its masking collator, UBM and its stage collators, MUVCOG's views,
Product BYOL's titles and pairs), whose outputs are checked: floats finite, indices within their ranges.
``tests/test_bad_inputs.py`` runs the same corpus at a small size and adds ``hypothesis`` property tests.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from session_transformers.data.io import load_catalogue, load_sessions
from session_transformers.data.schema import (
    InvalidRecordError,
    SchemaSpec,
    ValidationReport,
)
from session_transformers.models.tagnn_pp import TagnnPPProcessor

from ._bad_input_cases import (
    IMAGE_DIM,
    ITEMS,
    _event,
    _jsonl,
    _query,
    hand_written_cases,
    random_mutation,
    rich_session,
    valid_item,
    valid_session,
)

# --- the processors of every family --------------------------------------------------------------------------


def processor_families() -> tuple[str, ...]:
    """The model families the corpus runs through: every registered one (``session_transformers.families``), read
    when called so that a family registered later is there too."""
    from session_transformers.families import discover

    return tuple(discover())


PROCESSORS: tuple[str, ...] = processor_families()
"""The families of :func:`processor_families` when this module was imported (a :class:`ProcessorSuite` reads them
again when built)."""
_NAMED_ERRORS = (ValueError, KeyError, TypeError)  # InvalidRecordError is a ValueError


class UnsafeOutput(AssertionError):
    """A processor returned NaN or an out-of-range index."""


def _finite(name: str, t: torch.Tensor) -> None:
    if t.is_floating_point() and not bool(torch.isfinite(t).all()):
        raise UnsafeOutput(f"{name} holds NaN or inf")


def _in_range(name: str, t: torch.Tensor, high: int, low: int = 0, ignore: int | None = None) -> None:
    """Every value of ``t`` in ``[low, high)`` (``ignore``, e.g. -100, allowed too)."""
    if t.is_floating_point():
        raise UnsafeOutput(f"{name} is a float tensor where indices were expected")
    if t.numel() == 0:
        return
    v = t[t != ignore] if ignore is not None else t
    if v.numel() and (int(v.min()) < low or int(v.max()) >= high):
        raise UnsafeOutput(f"{name} has values in [{int(v.min())}, {int(v.max())}], outside [{low}, {high})")


def _all_finite(batch) -> None:
    for name, t in dict(batch).items():
        if isinstance(t, torch.Tensor):
            _finite(name, t)


def _item_ids(record: Any) -> list | None:
    """The item IDs of a (possibly malformed) record's item events, as a user would hand them to an ID-only
    processor; ``None`` when the record has no event list to read them from."""
    if not isinstance(record, dict) or not isinstance(record.get("events"), list):
        return None
    return [e.get("item_id") for e in record["events"] if isinstance(e, dict) and e.get("subject") == "item"]


class ProcessorSuite:
    """Small processors of every family, built once per run on valid records, and a checker that runs a
    record through each of them and classifies what happened.

    A family's check is its descriptor's ``bad_inputs`` hook (``ModelFamily.bad_inputs(suite)`` returns
    ``check(record, catalogue, kind) -> outcome``; the suite is its fixture: ``items``, ``catalogue``,
    ``train_sessions``, ``image_dim``, ``UnsafeOutput`` and the checks ``check_finite``, ``check_in_range``,
    ``check_all_finite``, ``event_item_ids``), else the suite's own method ``_<model_type>`` (the package's
    five families, written here with the corpus).

    Outcomes, per processor and record: ``ok`` (outputs checked: finite floats, indices in range), ``dropped``
    (ok, and the processor dropped and counted part of the record: unknown item IDs), ``refused`` (raised
    ``ValueError``/``KeyError``/``TypeError`` naming the record and the field), ``n/a`` (nothing for this
    family to read), and the failures: ``unnamed <Error>`` (refused without naming record and field),
    ``CRASH <Error>`` (another exception) and ``UNSAFE`` (NaN or an out-of-range index reached the output).
    """

    # the fixture a family's bad_inputs hook reads
    items = ITEMS
    image_dim = IMAGE_DIM
    UnsafeOutput = UnsafeOutput
    check_finite = staticmethod(_finite)
    check_in_range = staticmethod(_in_range)
    check_all_finite = staticmethod(_all_finite)
    event_item_ids = staticmethod(_item_ids)

    def __init__(self):
        from session_transformers.families import discover
        from session_transformers.models.ceres import CeresMaskingCollator, CeresProcessor
        from session_transformers.models.ceres.processing_ceres import catalogue_attribute_names
        from session_transformers.models.ceres.processing_ceres import iter_corpus as ceres_corpus
        from session_transformers.models.muvcog import MuvcogProcessor
        from session_transformers.models.muvcog.processing_muvcog import iter_corpus as muvcog_corpus
        from session_transformers.models.product_byol import ProductByolProcessor
        from session_transformers.models.ubm import UbmProcessor, UbmStage1Collator, UbmStage2Collator
        from session_transformers.models.ubm.processing_ubm import iter_corpus as ubm_corpus

        self.catalogue = {r["item_id"]: r for r in (valid_item(i) for i in range(len(ITEMS)))}
        train = [valid_session(i) for i in range(8)] + [rich_session(i) for i in range(8)]
        names = catalogue_attribute_names(self.catalogue)
        self.tagnn_pp = TagnnPPProcessor(item_vocab=ITEMS, max_length=50, unknown_items="skip")
        self.ceres = CeresProcessor.train_tokenizer(
            list(ceres_corpus(train, self.catalogue)) * 3,
            vocab_size=120,
            attribute_names=names,
            max_session_items=16,
        )
        self.ceres_collator = CeresMaskingCollator
        self.ubm = UbmProcessor.train_tokenizer(
            list(ubm_corpus(train, self.catalogue)) * 3,
            vocab_size=120,
            attribute_names=names,
            max_interactions=8,
        )
        self.ubm_stage1, self.ubm_stage2 = UbmStage1Collator, UbmStage2Collator
        self.muvcog = MuvcogProcessor.from_corpus(
            muvcog_corpus(train, self.catalogue), word_dim=8, image_dim=IMAGE_DIM, epochs=1, max_queries=16
        )
        self.product_byol = ProductByolProcessor.train(
            [r["title"] for r in self.catalogue.values()] * 4, vocab_size=60, catalogue=self.catalogue
        )
        self.train_sessions = train
        self.checks: dict[str, Callable[[Any, Any, str], str]] = {}
        for name, family in discover().items():
            if family.bad_inputs is not None:
                self.checks[name] = family.bad_inputs(self)
            elif hasattr(self, f"_{name}"):
                self.checks[name] = getattr(self, f"_{name}")
            else:
                raise ValueError(
                    f"model family {name!r} has no bad-input check: give its descriptor (ModelFamily) a "
                    "bad_inputs hook"
                )
        self.names: tuple[str, ...] = tuple(self.checks)
        self.counts = {name: {"accepted": Counter(), "raw": Counter()} for name in self.names}

    # --- one record through one family ---------------------------------------------------------------------
    def _tagnn_pp(self, record, catalogue, kind) -> str:
        if kind != "sessions":
            return "n/a"
        ids = _item_ids(record)
        if ids is None:
            return "n/a"
        p = self.tagnn_pp
        before = p.num_unknown_inputs + p.num_unknown_targets
        batch = p([ids], targets=[ids[-1]] if ids else None)
        _all_finite(batch)
        _in_range("x", batch["x"], p.num_items, low=1)
        _in_range("edge_index", batch["edge_index"], batch["x"].numel())
        _in_range("alias", batch["alias"][batch["attention_mask"].bool()], batch["x"].numel())
        _in_range("labels", batch["labels"], p.num_items, low=1, ignore=-100)
        return "dropped" if p.num_unknown_inputs + p.num_unknown_targets > before else "ok"

    def _check_ceres(self, batch) -> None:
        vocab = len(self.ceres.tokenizer)
        _all_finite(batch)
        if "input_ids" in batch:
            _in_range("input_ids", batch["input_ids"], vocab)
        if "sequence_item_index" in batch:
            items = batch["item_session_index"].numel()
            _in_range("sequence_item_index", batch["sequence_item_index"], items)
            _in_range("edge_index", batch["edge_index"], items)
            _in_range("edge_type", batch["edge_type"], 5)
            _in_range("item_position", batch["item_position"], self.ceres.max_session_items)
        if "labels" in batch and not batch["labels"].is_floating_point():
            _in_range("labels", batch["labels"], vocab, ignore=-100)
        if "candidate_input_ids" in batch:
            _in_range("candidate_input_ids", batch["candidate_input_ids"], vocab)

    def _ceres(self, record, catalogue, kind) -> str:
        collator = self.ceres_collator(self.ceres, catalogue, seed=0)
        if kind == "sessions":
            ids = _item_ids(record) or []
            targets = [{"item_id": ids[-1]}] if ids else None
            self._check_ceres(self.ceres([record], catalogue, targets=targets))
            self._check_ceres(collator([record]))
            return "ok"
        item_id = record.get("item_id") if isinstance(record, dict) else None
        self._check_ceres(self.ceres.encode_candidates([{"item_id": item_id}], catalogue))
        session = {"session_id": "view", "events": [_event(item_id, 0.0)]}
        self._check_ceres(collator([session]))
        return "ok"

    def _check_ubm(self, batch, prefix: str = "") -> None:
        vocab = len(self.ubm.tokenizer)
        _all_finite(batch)
        for name, t in batch.items():
            if name.endswith("input_ids"):
                _in_range(name, t, vocab)
        rows = batch[f"{prefix}input_ids"].size(0)
        if f"{prefix}interaction_mask" in batch and int(batch[f"{prefix}interaction_mask"].sum()) != rows:
            raise UnsafeOutput("interaction_mask does not count the rows of input_ids")

    def _ubm(self, record, catalogue, kind) -> str:
        from session_transformers.models.ubm import next_item_pairs

        stage1 = self.ubm_stage1(self.ubm, catalogue, seed=0)
        if kind == "sessions":
            self._check_ubm(self.ubm([record], catalogue))
            self._check_ubm(self.ubm_stage2(self.ubm, catalogue, seed=0)([record]))
            pairs = next_item_pairs([record])[:64]
            if pairs:
                self._check_ubm(stage1(pairs), "item_")
            return "ok"
        item_id = record.get("item_id") if isinstance(record, dict) else None
        self._check_ubm(self.ubm.encode_items([item_id], catalogue))
        self._check_ubm(stage1([{"item_id": item_id, "next_item_id": item_id}]), "item_")
        return "ok"

    def _check_muvcog(self, batch) -> None:
        vocab = self.muvcog.vocab_size
        for view in (batch["global_view"], batch["local_view"]):
            for t in ("KQ", "PQ"):
                _in_range(f"{t}.x", view[t].x, vocab)
            iq = view["IQ"].x
            _finite("IQ.x", iq)
            if iq.dim() != 2 or iq.size(1) != IMAGE_DIM:
                raise UnsafeOutput(f"IQ.x has shape {tuple(iq.shape)}, expected (n, {IMAGE_DIM})")
            for (src, rel, dst), edges in view.edge_index_dict.items():
                _in_range(f"{src}-{rel}-{dst} source", edges[0], view[src].num_nodes)
                _in_range(f"{src}-{rel}-{dst} target", edges[1], view[dst].num_nodes)

    def _muvcog(self, record, catalogue, kind) -> str:
        from session_transformers.models.muvcog.processing_muvcog import mask_one_query

        p = self.muvcog
        if kind == "sessions":
            self._check_muvcog(p([record]))
            encoded = p.encode(record)
            self._check_muvcog(p.views([mask_one_query(encoded, torch.Generator().manual_seed(0))]))
            return "ok"
        # A product query is words cut from a title ("search similar"): hostile titles reach MUVCOG that way.
        title = record.get("title") if isinstance(record, dict) else None
        query, known = _query(title, 0.0, "product_query"), _query("red", 1.0)
        self._check_muvcog(p([{"session_id": record.get("item_id"), "events": [query, known]}]))
        _in_range("target_word_ids", p.target_word_ids([title]), p.vocab_size, ignore=-100)
        return "ok"

    def _product_byol(self, record, catalogue, kind) -> str:
        p = self.product_byol
        table = p.product_table(catalogue)
        if kind == "sessions":
            ids = _item_ids(record)
            if ids is None:
                return "n/a"
            pairs = p.pairs(ids)
            rows = [
                {
                    "title": table[a][0],
                    "pair_title": table[b][0],
                    "category": table[a][1],
                    "pair_category": table[b][1],
                }
                for a, b in pairs
                if a in table and b in table
            ]
        else:
            item_id = record.get("item_id") if isinstance(record, dict) else None
            known = isinstance(item_id, str) and item_id in table
            rows = [{"title": table[item_id][0], "label": table[item_id][1]}] if known else []
            if not rows:
                return "n/a"
        if not rows:
            return "ok"
        batch = p.collate(rows)
        _all_finite(batch)
        for name, t in batch.items():
            if name.endswith("input_ids"):
                _in_range(name, t, p.vocab_size)
            elif name.endswith("labels"):
                _in_range(name, t, p.num_categories, ignore=-100)
        return "ok"

    # --- classification ------------------------------------------------------------------------------------
    @staticmethod
    def _names_record_and_field(err: BaseException, record: Any) -> bool:
        """The error names the record (its ID, its index 0 in the one-record batch, or the catalogue item at
        fault) and a field."""
        msg = (
            err.args[0] if isinstance(err, KeyError) and err.args else str(err)
        )  # str() of a KeyError is a repr
        msg = str(msg)
        ids = [record.get(k) for k in ("session_id", "item_id")] if isinstance(record, dict) else []
        named = (
            any(x is not None and repr(x)[:40] in msg for x in ids)  # long IDs are cut in messages
            or re.search(r"\b(session|record|row|title) 0\b", msg) is not None
            or "catalogue item '" in msg
        )
        return named and "field" in msg

    def catalogue_with(self, record: Any) -> list[Any]:
        """The suite's catalogue as a list of records, with ``record`` in place of the item of the same ID: the
        processors build their ``item_id -> record`` table themselves (and must refuse a record they cannot key)."""
        item_id = record.get("item_id") if isinstance(record, dict) else None
        return [record] + [r for i, r in self.catalogue.items() if i != item_id]  # first: named "record 0"

    def run(self, record: Any, catalogue: Any, kind: str, path: str) -> dict[str, str]:
        """``record`` through every family; returns ``{family: outcome}`` and adds it to :attr:`counts`.

        ``kind``: ``"sessions"`` (``record`` is a session, read against ``catalogue``, default the suite's) or
        ``"catalogue"`` (``record`` is an item, in a catalogue of the suite's other items unless one is given)."""
        if catalogue is None:
            catalogue = self.catalogue if kind == "sessions" else self.catalogue_with(record)
        out = {}
        for name, check in self.checks.items():
            try:
                outcome = check(record, catalogue, kind)
            except UnsafeOutput as err:
                outcome = f"UNSAFE ({err})"
            except _NAMED_ERRORS as err:
                named = self._names_record_and_field(err, record)
                outcome = "refused" if named else f"unnamed {type(err).__name__}: {str(err)[:160]}"
            except Exception as err:  # the corpus reports crashes instead of stopping
                outcome = f"CRASH {type(err).__name__}: {str(err)[:160]}"
            out[name] = outcome
            self.counts[name][path][outcome.split(":")[0].split(" (")[0]] += 1
        return out


# --- running a case ---------------------------------------------------------------------------------------------

FAILURES = ("CRASH", "unnamed", "UNSAFE")
"""Processor outcomes that are bugs: another exception, an error that does not name record and field, an unsafe
output."""


def _is_failure(outcome: str) -> bool:
    return outcome.startswith(FAILURES)


def raw_records(path: Path) -> list[Any]:
    """Every line of a JSONL file that parses as JSON, as it is (no validation); nothing for other formats."""
    if not path.name.endswith(".jsonl"):
        return []
    out = []
    for line in path.read_bytes().splitlines():
        try:
            out.append(json.loads(line.decode("utf-8")))
        except (UnicodeDecodeError, ValueError):
            continue
    return out


def _run_processors(suite: ProcessorSuite, records: list[Any], kind: str, path: str) -> dict[str, Counter]:
    """Every record through every family; per family, a count of outcomes."""
    seen: dict[str, Counter] = {name: Counter() for name in suite.names}
    for record in records:
        for name, outcome in suite.run(record, None, kind, path).items():
            seen[name][outcome] += 1
    return seen


def _summary(seen: dict[str, Counter]) -> str:
    """``"tagnn_pp: ok 2; ceres: ok 1, refused 1; ..."`` (failures keep their message)."""
    return "; ".join(
        f"{name}: " + ", ".join(f"{o} {n}" for o, n in sorted(c.items())) for name, c in seen.items() if c
    )


def run_case(path: Path, kind: str, expected: str, suite: ProcessorSuite | None = None) -> dict[str, Any]:
    """Load ``path`` in raise and skip modes, then run the kept records (``accepted``) and the file's raw JSON
    records (``raw``) through ``suite``'s processors; returns the outcome (never raises)."""
    loader = load_sessions if kind == "sessions" else load_catalogue
    kwargs: dict[str, Any] = {}
    if expected == "refused_with_catalogue":
        kwargs["item_ids"] = set(ITEMS)
    if expected == "refused_with_image_dim":
        kwargs["spec"] = SchemaSpec(image_dim=IMAGE_DIM)
    out: dict[str, Any] = {}
    try:
        loader(path, **kwargs)
        out["raise_mode"] = "accepted"
    except InvalidRecordError as err:
        named = str(path) in str(err) and "record" in str(err) and "field" in str(err)
        out["raise_mode"] = "refused" if named else "refused without naming file/record/field"
        out["error"] = str(err)[:300]
    except Exception as err:  # the corpus reports crashes instead of stopping
        out["raise_mode"] = f"CRASH {type(err).__name__}"
        out["error"] = repr(err)[:300]
    report = ValidationReport()
    kept: list[Any] = []
    try:
        ds = loader(path, on_error="skip", report=report, **kwargs)
        kept = list(ds)
        out["skip_mode"] = f"kept {len(ds)}, skipped {report.skipped}"
        out["skip_mode_ok"] = report.skipped > 0 or out["raise_mode"] == "accepted"
    except Exception as err:
        out["skip_mode"] = f"CRASH {type(err).__name__}"
        out["skip_mode_ok"] = False
        out["error_skip"] = repr(err)[:300]
    if suite is not None:
        accepted = _run_processors(suite, kept, kind, "accepted")
        raw = _run_processors(suite, raw_records(path), kind, "raw")
        out["processors_accepted"] = _summary(accepted)
        out["processors_raw"] = _summary(raw)
        out["processor_failures"] = sorted(
            {
                f"{path_name} {name}: {o}"
                for path_name, seen in (("accepted", accepted), ("raw", raw))
                for name, c in seen.items()
                for o in c
                if _is_failure(o)
            }
        )
        out["processor_outcomes"] = Counter(
            o.split(":")[0] for seen in (accepted, raw) for c in seen.values() for o in c.elements()
        )
    return out


def run_corpus(random_cases: int = 300, seed: int = 0, suite: ProcessorSuite | None = None) -> dict[str, Any]:
    """The hand-written cases and ``random_cases`` seeded mutations, through the loaders and the processors
    (``suite``; built here when not given)."""
    suite = suite if suite is not None else ProcessorSuite()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for i, (kind, what, build, expected) in enumerate(hand_written_cases()):
            case_dir = tmp / f"case{i}"
            case_dir.mkdir()
            path, data_kind = build(case_dir)
            out = run_case(path, data_kind, expected, suite)
            want = "accepted" if expected == "accepted" else "refused"
            rows.append(
                {
                    "kind": kind,
                    "what": what,
                    "expected": want,
                    **out,
                    "as_expected": out["raise_mode"] == want and not out["processor_failures"],
                }
            )
        rng = random.Random(seed)
        for i in range(random_cases):
            what, record = random_mutation(rng)
            case_dir = tmp / f"random{i}"
            case_dir.mkdir()
            path = _jsonl(case_dir / "m.jsonl", [valid_session(0), record])
            out = run_case(path, "sessions", "either", suite)
            ok = not out["raise_mode"].startswith("CRASH") and "without naming" not in out["raise_mode"]
            rows.append(
                {
                    "kind": "random mutation",
                    "what": what,
                    "expected": "refused or accepted",
                    **out,
                    "as_expected": ok and out["skip_mode_ok"] and not out["processor_failures"],
                }
            )
    by_kind: dict[str, Counter] = {}
    processors_by_kind: dict[str, Counter] = {}
    for r in rows:
        by_kind.setdefault(r["kind"], Counter())[
            r["raise_mode"].split(" ")[0] if r["raise_mode"].startswith("CRASH") else r["raise_mode"]
        ] += 1
        processors_by_kind.setdefault(r["kind"], Counter()).update(r["processor_outcomes"])
    processors = {
        path_name: {
            name: {
                "records": sum(suite.counts[name][path_name].values()),
                **dict(suite.counts[name][path_name]),
            }
            for name in suite.names
        }
        for path_name in ("accepted", "raw")
    }
    return {
        "cases": len(rows),
        "as_expected": sum(r["as_expected"] for r in rows),
        "crashes": sum(
            r["raise_mode"].startswith("CRASH") or r["skip_mode"].startswith("CRASH") for r in rows
        ),
        "processor_failures": sum(bool(r["processor_failures"]) for r in rows),
        "by_kind": {k: dict(v) for k, v in by_kind.items()},
        "processors_by_kind": {k: dict(v) for k, v in processors_by_kind.items()},
        "processors": processors,
        "unexpected": [
            {k: v for k, v in r.items() if k != "processor_outcomes"} for r in rows if not r["as_expected"]
        ][:20],
        "rows": rows,
    }


def main(argv: list[str] | None = None) -> None:
    from ._common import write_result

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--random-cases", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    result = run_corpus(args.random_cases, args.seed)
    hand = [r for r in result["rows"] if r["kind"] != "random mutation"]
    columns = ("kind", "what", "expected", "raise_mode", "skip_mode", "processors_raw", "as_expected")
    figures = {
        "cases": result["cases"],
        "as_expected": result["as_expected"],
        "crashes": result["crashes"],
        "processor_failures": result["processor_failures"],
        "by_kind": result["by_kind"],
        "processor_outcomes_by_kind": result["processors_by_kind"],
        "processors_on_accepted_records": result["processors"]["accepted"],
        "processors_on_raw_records": result["processors"]["raw"],
        "hand_written": [{k: r[k] for k in columns} for r in hand],
        "unexpected": result["unexpected"],
    }
    summary = ("cases", "as_expected", "crashes", "processor_failures", "by_kind")
    print(json.dumps({k: figures[k] for k in summary}, indent=1))
    print(json.dumps(figures["processors_on_raw_records"], indent=1))
    print(
        write_result(
            "bad_inputs",
            figures,
            data=f"hand-written cases + {args.random_cases} seeded mutations (seed {args.seed}), through the "
            "loaders and the processors of all five families",
        )
    )


if __name__ == "__main__":
    main()
