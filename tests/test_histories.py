"""Reading user histories from JSONL and CSV, and ranking items for them with a saved agent."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from metarec.agents.agent import MetaRLAgent
from metarec.agents.policy import SlatePolicy
from metarec.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from metarec.config import ModelConfig, RunConfig
from metarec.data.interactions import InteractionLog
from metarec.errors import DataError
from metarec.histories import rank_histories, read_histories
from metarec.session import CLICK, HISTORY, SKIP

N_ITEMS = 30
# Item ids "100" to "129", so item id "1xx" has index xx.
ITEM_IDS = tuple(str(100 + index) for index in range(N_ITEMS))
ITEM_INDEX = {item_id: index for index, item_id in enumerate(ITEM_IDS)}


@pytest.fixture(scope="module")
def checkpoint(
    tmp_path_factory: pytest.TempPathFactory, build_log: Callable[..., InteractionLog]
) -> Checkpoint:
    config = RunConfig(model=ModelConfig(dim=16, layers=1, heads=2, max_tokens=32))
    torch.manual_seed(0)
    policy = SlatePolicy(N_ITEMS, config.model)
    policy.init_output_bias(np.arange(N_ITEMS) * 3)
    log = build_log([[0, 1, 2]], item_ids=ITEM_IDS)
    folder = tmp_path_factory.mktemp("histories") / "run"
    save_checkpoint(folder, MetaRLAgent(policy, config.adapt), config, log)
    return load_checkpoint(folder)


def write_jsonl(folder: Path, records: list[object]) -> Path:
    path = folder / "users.jsonl"
    lines = [json.dumps(record, ensure_ascii=False) for record in records]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_text(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


# JSONL


def test_jsonl_feedback_tokens(tmp_path: Path) -> None:
    record = {"user_id": "a", "items": ["100", "101"], "clicks": ["102"], "skips": ["103"]}
    users = read_histories(write_jsonl(tmp_path, [record]), ITEM_INDEX)
    assert users[0].user_id == "a"
    assert users[0].session.items.tolist() == [0, 1, 2, 3]
    assert users[0].session.feedback.tolist() == [HISTORY, HISTORY, CLICK, SKIP]


def test_jsonl_numeric_ids_as_strings(tmp_path: Path) -> None:
    users = read_histories(
        write_jsonl(tmp_path, [{"user_id": 42, "items": [105, "106"]}]), ITEM_INDEX
    )
    assert users[0].user_id == "42"
    assert users[0].session.items.tolist() == [5, 6]


def test_jsonl_keeps_order_and_skips_blank_lines(tmp_path: Path) -> None:
    text = '{"user_id": "b", "items": ["101"]}\n\n  \n{"user_id": "a", "items": ["100"]}\n'
    users = read_histories(write_text(tmp_path, "users.jsonl", text), ITEM_INDEX)
    assert [user.user_id for user in users] == ["b", "a"]


def test_jsonl_unicode_user_ids(tmp_path: Path) -> None:
    records = [{"user_id": "ユーザー", "items": ["100"]}, {"user_id": "josé", "items": ["101"]}]
    users = read_histories(write_jsonl(tmp_path, records), ITEM_INDEX)
    assert [user.user_id for user in users] == ["ユーザー", "josé"]


def test_jsonl_unknown_item_names_id_and_line(tmp_path: Path) -> None:
    records = [{"user_id": "a", "items": ["100"]}, {"user_id": "b", "items": ["101", "999"]}]
    path = write_jsonl(tmp_path, records)
    with pytest.raises(DataError, match="unknown item id '999'") as error:
        read_histories(path, ITEM_INDEX)
    assert error.value.line == 2
    assert f"{path}:2:" in str(error.value)
    assert "--ignore-unknown" in str(error.value)


def test_jsonl_unknown_click_rejected(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path, [{"user_id": "a", "items": ["100"], "clicks": ["abc"]}])
    with pytest.raises(DataError, match="unknown item id 'abc'"):
        read_histories(path, ITEM_INDEX)


def test_jsonl_ignore_unknown(tmp_path: Path) -> None:
    record = {"user_id": "a", "items": ["999", "100"], "clicks": ["998"], "skips": ["101"]}
    users = read_histories(write_jsonl(tmp_path, [record]), ITEM_INDEX, ignore_unknown=True)
    assert users[0].session.items.tolist() == [0, 1]
    assert users[0].session.feedback.tolist() == [HISTORY, SKIP]


def test_jsonl_malformed_line(tmp_path: Path) -> None:
    text = '{"user_id": "a", "items": ["100"]}\n{"user_id": "b", "items": [\n'
    path = write_text(tmp_path, "users.jsonl", text)
    with pytest.raises(DataError, match="invalid JSON") as error:
        read_histories(path, ITEM_INDEX)
    assert error.value.line == 2


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"user_id": "a", "items": "100"}, '"items" must be a list of item ids'),
        ({"user_id": "a", "items": ["100"], "skips": 5}, '"skips" must be a list of item ids'),
        ({"user_id": None, "items": ["100"]}, "user_id must be a string or a number"),
        ({"user_id": ["a"], "items": ["100"]}, "user_id must be a string or a number"),
        ({"user_id": "a", "items": [["100"]]}, r"item id \['100'\] must be a string or a number"),
        ({"user_id": "a", "items": [None]}, "item id None must be a string or a number"),
        ({"user_id": "a"}, 'each line must be an object with "user_id" and "items"'),
        (["a", ["100"]], 'each line must be an object with "user_id" and "items"'),
    ],
)
def test_jsonl_wrong_types(tmp_path: Path, record: object, message: str) -> None:
    path = write_jsonl(tmp_path, [record])
    with pytest.raises(DataError, match=message) as error:
        read_histories(path, ITEM_INDEX)
    assert error.value.line == 1


def test_jsonl_empty_file(tmp_path: Path) -> None:
    path = write_text(tmp_path, "users.jsonl", "")
    with pytest.raises(DataError, match="no user histories found"):
        read_histories(path, ITEM_INDEX)


def test_jsonl_only_blank_lines(tmp_path: Path) -> None:
    path = write_text(tmp_path, "users.jsonl", "\n  \n")
    with pytest.raises(DataError, match="no user histories found"):
        read_histories(path, ITEM_INDEX)


def test_jsonl_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "users.jsonl"
    path.write_bytes(b'{"user_id": "caf\xe9", "items": ["100"]}\n')
    with pytest.raises(DataError, match="file is not valid UTF-8"):
        read_histories(path, ITEM_INDEX)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="user history file not found"):
        read_histories(tmp_path / "absent.jsonl", ITEM_INDEX)


# CSV


def test_csv_groups_by_user(tmp_path: Path) -> None:
    text = "user_id,item_id\nb,101\na,100\nb,103\n"
    users = read_histories(write_text(tmp_path, "users.csv", text), ITEM_INDEX)
    assert [user.user_id for user in users] == ["b", "a"]
    assert users[0].session.items.tolist() == [1, 3]
    assert users[0].session.feedback.tolist() == [HISTORY, HISTORY]
    assert users[1].session.items.tolist() == [0]


def test_csv_unicode_user_ids(tmp_path: Path) -> None:
    text = "user,item\nユーザー,100\njosé,101\n"
    users = read_histories(write_text(tmp_path, "users.csv", text), ITEM_INDEX)
    assert [user.user_id for user in users] == ["ユーザー", "josé"]


def test_csv_unknown_item_names_id(tmp_path: Path) -> None:
    path = write_text(tmp_path, "users.csv", "user,item\na,100\na,777\n")
    with pytest.raises(DataError, match="unknown item id '777'") as error:
        read_histories(path, ITEM_INDEX)
    assert str(path) in str(error.value)


def test_csv_ignore_unknown(tmp_path: Path) -> None:
    path = write_text(tmp_path, "users.csv", "user,item\na,100\na,777\na,102\n")
    users = read_histories(path, ITEM_INDEX, ignore_unknown=True)
    assert users[0].session.items.tolist() == [0, 2]


def test_csv_header_only(tmp_path: Path) -> None:
    path = write_text(tmp_path, "users.csv", "user,item\n")
    with pytest.raises(DataError, match="no data rows"):
        read_histories(path, ITEM_INDEX)


# Ranking


def test_rank_excludes_history(tmp_path: Path, checkpoint: Checkpoint) -> None:
    record = {"user_id": "a", "items": ["100", "105"], "clicks": ["110"], "skips": ["111"]}
    users = read_histories(write_jsonl(tmp_path, [record]), checkpoint.item_index)
    rows = rank_histories(checkpoint, users, top=N_ITEMS)
    assert not {"100", "105", "110", "111"} & set(rows[0]["items"])
    assert len(rows[0]["items"]) == N_ITEMS - 4


def test_rank_matches_recommend(tmp_path: Path, checkpoint: Checkpoint) -> None:
    records = [
        {"user_id": "a", "items": ["100", "101", "102"]},
        {"user_id": "b", "items": ["120"], "skips": ["103", "104"]},
    ]
    users = read_histories(write_jsonl(tmp_path, records), checkpoint.item_index)
    rows = rank_histories(checkpoint, users, top=10)
    expected = checkpoint.agent.recommend([user.session for user in users], 10)
    for row, ranked in zip(rows, expected, strict=True):
        assert row["items"] == [checkpoint.item_ids[index] for index in ranked]


def test_rank_rows_shape(tmp_path: Path, checkpoint: Checkpoint) -> None:
    records = [{"user_id": "ユーザー", "items": ["100"]}, {"user_id": 7, "items": ["101"]}]
    users = read_histories(write_jsonl(tmp_path, records), checkpoint.item_index)
    rows = rank_histories(checkpoint, users, top=5)
    assert [row["user_id"] for row in rows] == ["ユーザー", "7"]
    assert [len(row["items"]) for row in rows] == [5, 5]
    assert rows[0]["scores"] == sorted(rows[0]["scores"], reverse=True)
