"""A shop's own data, the way in: documented formats whose writer and validator agree, a clear error for an item
missing from the catalogue, data set names in ``--help``, one unknown-item policy and one truncation warning across
processor, ``recommend``, pipelines and export, and first-run messages that lead to the right call."""

import subprocess
import sys

import pytest
import torch

from launch import ROOT, run_script
from session_transformers.data.io import load_catalogue, write_catalogue, write_sessions
from session_transformers.data.schema import InvalidRecordError, SchemaSpec, item_event
from session_transformers.models.tagnn_pp import (
    TagnnPPConfig,
    TagnnPPForNextItemPrediction,
    TagnnPPProcessor,
)

sys.path.insert(0, str(ROOT / "trainers"))
import finetune
import pretrain

ITEMS = [f"sku-{i}" for i in range(12)]


# --- the catalogue: the writer writes what the readers read ---------------------------------------------------


def test_catalogue_writer_and_validator_agree_on_what_is_required(tmp_path):
    id_only = [{"item_id": i} for i in ITEMS]
    with pytest.raises(InvalidRecordError, match=r"record 0: field 'title'.*require_text=False"):
        write_catalogue(id_only, tmp_path / "catalogue.jsonl")  # the text models need titles: refused
    assert not (tmp_path / "catalogue.jsonl").exists()  # nothing half-written
    with pytest.raises(InvalidRecordError, match="field 'title'"):
        write_catalogue([{"item_id": "a", "title": "", "category": ["x"]}], tmp_path / "c.jsonl")
    spec = SchemaSpec(require_text=False)
    assert write_catalogue(id_only, tmp_path / "catalogue.jsonl", spec=spec) == len(ITEMS)
    assert load_catalogue(tmp_path / "catalogue.jsonl", spec=spec)["item_id"] == ITEMS
    with pytest.raises(InvalidRecordError, match="field 'title'"):  # read back for a text model: refused too
        load_catalogue(tmp_path / "catalogue.jsonl")


def _sessions_folder(folder, catalogue_items):
    folder.mkdir()
    sessions = [
        {"session_id": f"s{n}", "events": [item_event("view", ITEMS[(n + k) % 10]) for k in range(3)]}
        for n in range(30)
    ]
    write_sessions(sessions, folder / "sessions.jsonl")
    spec = SchemaSpec(require_text=False)
    write_catalogue([{"item_id": i} for i in catalogue_items], folder / "catalogue.jsonl", spec=spec)
    return folder


def _tagnn_args(*argv):
    args, recipe = pretrain.parse_args(["--model", "tagnn_pp", *argv])
    return args, recipe.stage(1).task


def test_sessions_with_an_item_missing_from_the_catalogue_are_refused_by_name(tmp_path):
    ok = _sessions_folder(tmp_path / "ok", ITEMS)  # sku-10 and sku-11 never occur in a session
    args, task = _tagnn_args("--dataset", "sessions", "--data-path", str(ok))
    data = task.prepare(args)
    assert data.processor.item_vocab == sorted(ITEMS[:10])  # the catalogue's items of the training split
    assert "catalogue_items_not_in_training 2" in data.description
    bad = _sessions_folder(tmp_path / "bad", ITEMS[:9])  # sku-9 is in sessions, not in the catalogue
    args, task = _tagnn_args("--dataset", "sessions", "--data-path", str(bad))
    with pytest.raises(
        InvalidRecordError, match=r"sessions.jsonl: record \d+: field 'events\[\d\]\.item_id'.*sku-9"
    ):
        task.prepare(args)


def test_an_id_only_catalogue_for_a_text_model_is_refused_before_training(tmp_path):
    folder = _sessions_folder(tmp_path / "ids", ITEMS)  # written ID-only, as TAGNN++ needs
    args, recipe = pretrain.parse_args(
        ["--model", "product_byol", "--dataset", "sessions", "--data-path", str(folder)]
    )
    with pytest.raises(ValueError, match=r"--data-path .*ids: Product BYOL embeds product titles.*12 items"):
        recipe.stage(1).task.prepare(args)


def test_help_lists_the_data_sets_and_threads(capsys):
    for module, argv in ((pretrain, []), (finetune, ["--task", "next_item"])):
        with pytest.raises(SystemExit):
            module.parse_args(["--model", "tagnn_pp", *argv, "--help"])
        out = " ".join(capsys.readouterr().out.split())
        assert "{synthetic,session_lines,sessions,diginetica}" in out
        assert "session_lines: your own plain sessions" in out and "train_sessions.txt" in out
        assert "--threads N" in out and "OMP_NUM_THREADS" in out and "--dataset-name" in out
    with pytest.raises(SystemExit):
        pretrain.parse_args(["--model", "tagnn_pp", "--dataset", "my-shop"])
    assert "invalid choice: 'my-shop'" in capsys.readouterr().err


def test_threads_flag_sets_torchs_pool():
    before = torch.get_num_threads()
    try:
        pretrain.parse_args(["--model", "tagnn_pp", "--threads", "2"])
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_session_lines_with_string_ids_point_at_the_sessions_format(tmp_path):
    shop = tmp_path / "shop"
    shop.mkdir()
    (shop / "train_sessions.txt").write_text("1 2 3\nsku-4 5\n")
    (shop / "test.tsv").write_text("prefix\ttarget\n1 2\t3\n")
    args, task = _tagnn_args("--dataset", "session_lines", "--data-path", str(shop))
    with pytest.raises(InvalidRecordError, match="line 2: token 'sku-4'.*--dataset sessions"):
        task.prepare(args)


# --- one unknown-item policy, one truncation warning ----------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tagnn")
    processor = TagnnPPProcessor(item_vocab=ITEMS, max_length=4)
    torch.manual_seed(0)
    config = TagnnPPConfig(num_items=processor.num_items, hidden_size=8, num_attention_heads=2)
    TagnnPPForNextItemPrediction(config).save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]


def test_unknown_items_and_truncation_behave_the_same_everywhere(tiny_folder, caplog):
    from transformers import AutoProcessor, pipeline

    from session_transformers.export import item_embeddings

    model = TagnnPPForNextItemPrediction.from_pretrained(tiny_folder)
    processor = AutoProcessor.from_pretrained(tiny_folder)
    recommend = pipeline("session-recommendation", model=str(tiny_folder))
    embed = pipeline("session-feature-extraction", model=str(tiny_folder))
    session = ["sku-1", "nope", "sku-2"]
    calls = {
        "processor": lambda **kw: processor([session], **kw),
        "recommend": lambda **kw: model.recommend(
            [session], top_k=3, processor=AutoProcessor.from_pretrained(tiny_folder, **kw)
        ),
        "pipeline": lambda **kw: recommend(session, top_k=3, **kw),
        "features": lambda **kw: embed(session, **kw),
        "export": lambda **kw: item_embeddings(model, processor, ["sku-1", "nope"], **kw),
    }
    caplog.set_level("WARNING")
    for name, call in calls.items():  # the default: a KeyError naming the ID, the session and the way out
        with pytest.raises(KeyError, match=r"'nope'.*unknown_items='skip'"):
            call()
        caplog.clear()
        call(unknown_items="skip")  # skip: the call goes through, with ONE warning that counts
        (message,) = _warnings(caplog)
        assert "1 unknown item ID(s)" in message and "nope" in message, name
    with pytest.raises(KeyError, match=r"unknown item IDs \['nope'\] \(1 of the 2 given\)"):
        item_embeddings(model, processor, ["sku-1", "nope"])
    ids, vectors = item_embeddings(model, processor, ["sku-1", "nope"], unknown_items="skip")
    assert ids == ["sku-1"] and vectors.shape[0] == 1
    for name, call in (("processor", lambda s: processor(s)), ("pipeline", lambda s: recommend(s, top_k=2))):
        caplog.clear()
        call([ITEMS[:7], ITEMS[:2], ITEMS[:9]])
        (message,) = _warnings(caplog)
        assert "2 of 3 session(s) are longer than max_length=4 items" in message, name
    with pytest.raises(ValueError, match="unknown_items"):
        recommend(session, unknown_items="drop-silently")


# --- first-run messages ------------------------------------------------------------------------------------


def test_base_model_from_a_fine_tuned_folder_loads_without_a_load_report(tiny_folder):
    code = (
        "import session_transformers\nfrom transformers import AutoModel\n"
        f"print(type(AutoModel.from_pretrained({str(tiny_folder)!r})).__name__)"
    )
    res = run_script([sys.executable, "-c", code])
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.strip() == "TagnnPPModel"
    assert "UNEXPECTED" not in res.stderr and "LOAD REPORT" not in res.stderr


def test_a_string_session_gets_the_split_hint(tiny_folder):
    from transformers import pipeline

    recommend = pipeline("session-recommendation", model=str(tiny_folder))
    with pytest.raises(TypeError, match=r"'sku-1 sku-2'\.split\(\)"):
        recommend("sku-1 sku-2")
    with pytest.raises(TypeError, match=r"\.split\(\)"):
        TagnnPPProcessor(item_vocab=ITEMS)("sku-1 sku-2")


def test_integer_ids_and_a_session_that_is_not_a_list_get_clear_errors():
    processor = TagnnPPProcessor(item_vocab=["1", "2", "3"])
    with pytest.raises(TypeError, match=r"list of integers.*\[\[str\(i\) for i in session\]\]"):
        processor([1, 2])
    with pytest.raises(InvalidRecordError, match=r"record 1: field 'item_ids'.*got '2'"):
        processor([["1"], "2"])
    with pytest.raises(InvalidRecordError, match=r"record 1: field 'item_ids'.*got 5"):
        processor([["1"], 5])
    assert processor([("1", "2"), ["3"]])["alias"].shape == (2, 2)  # tuples are sessions too


def test_synthetic_module_runs_without_a_runpy_warning():
    res = subprocess.run(
        [
            sys.executable,
            "-W",
            "error::RuntimeWarning",
            "-m",
            "session_transformers.data.synthetic",
            "--help",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert "RuntimeWarning" not in res.stderr and "found in sys.modules" not in res.stderr


def test_real_data_builds_parse_and_name_their_data_set(tmp_path):
    """``release.py build --real-data``: every family whose data is here has a build, each stage's flags parse, and
    each names a real data set its recipe reads (so the card's data set comes from the training record)."""
    import release
    from session_transformers.hub import CARD_FAMILIES
    from session_transformers.recipes import RECIPES

    stage_one = tmp_path / "stage1"
    stage_one.mkdir()
    (stage_one / "pretraining_stages.json").write_text(
        '{"stages": [{"stage": 1, "name": "interaction_encoder"}]}'
    )
    names = set()
    for model_type in CARD_FAMILIES:
        for name, stages in release.build_plan(model_type, True).items():
            if name == model_type:
                continue
            names.add(name)
            stage = 0
            for flags in stages:
                argv = ["--model", model_type, *flags]
                if release.is_finetune_run(flags):  # a finetune.py run from the previous run's output
                    assert stage, f"{name}: fine-tuning before any pretraining stage"
                    args, _ = finetune.parse_args([*argv, "--init-from", str(stage_one)])
                    assert args.task in RECIPES[model_type].finetune
                else:
                    stage += 1
                    if stage > 1:
                        argv += ["--stage", str(stage), "--init-from", str(stage_one)]
                    args, _ = pretrain.parse_args(argv)
                assert args.dataset != "synthetic" and args.dataset in RECIPES[model_type].datasets
                assert args.data_path, f"{name}: no data path"
    assert {"tagnn_pp-diginetica", "ubm-rees46", "product_byol-instacart", "ceres-homedepot"} <= names
